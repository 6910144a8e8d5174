/* cpu-private.h — what the CPU backend's files (backend-cpu.c, cpu-gemm.c)
 * share.  Tensors are float arrays in NCHW order. */
#ifndef GFCG_CPU_PRIVATE_H
#define GFCG_CPU_PRIVATE_H

#include "backend.h"
#include "gfcg/gfcg.h"

#include <cblas.h>

#define F(t) ((float *) (t)->data)
#define CF(t) ((const float *) (t)->data)

/* Every product of the backend holds this lock: OpenBLAS's and OpenMP's
 * thread counts are process-wide (see cpu-gemm.c). */
extern GMutex cpu_compute_lock;

/* Row-major SGEMM, serialised and with the thread count the size deserves. */
void cpu_sgemm (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The ops of cpu-gemm.c (see GfcgBackendOps). */
void cpu_conv2d        (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                        const GfcgTensor *bias, int stride, int pad, GfcgTensor *y);
void cpu_conv2d_ex     (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                        const GfcgTensor *bias, const GfcgConvParams *p, GfcgTensor *y);
void cpu_linear        (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                        const GfcgTensor *bias, GfcgTensor *y);
void cpu_attention     (GfcgBackend *be, const GfcgTensor *qkv, int heads, int dim, float eps,
                        GfcgTensor *y);
gboolean cpu_conv2d_post (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                          const GfcgTensor *bias, const GfcgConvParams *p,
                          const GfcgConvPost *post, GfcgTensor *y);
void cpu_attention_qkv (GfcgBackend *be, const GfcgTensor *q, const GfcgTensor *k,
                        const GfcgTensor *v, int heads, float scale, GfcgTensor *y);

/* Threads for an element-wise op over `work` values: the OpenMP team that
 * oneDNN uses, when oneDNN runs the products (no OpenBLAS pool left to spin
 * against) and the op is large enough to gain (CPU_PAR_FOR before a loop
 * with a local `nt`); else 1. */
int cpu_par_threads (gsize work);
#ifdef GFCG_HAVE_ONEDNN
#define CPU_PAR_FOR _Pragma ("omp parallel for num_threads (nt) if (nt > 1) schedule (static)")
#else
#define CPU_PAR_FOR (void) nt;
#endif

/* cpu-onednn.c: oneDNN's convolutions and SGEMM, when built with it and not
 * switched off (GFCG_CPU_CONV=blas).  cpu_onednn_conv returns FALSE when it
 * did nothing (no fast oneDNN kernel for this shape). */
gboolean cpu_onednn_enabled (void);
gboolean cpu_onednn_available (void); /* in this build and started, whatever the switch */
/* cpu-bf16.c: whether this backend's convolutions run in bf16 (cpu:bf16). */
gboolean cpu_bf16_wanted    (const GfcgBackend *be);
#ifdef GFCG_HAVE_ONEDNN
char    *cpu_onednn_version (void);
gboolean cpu_onednn_conv    (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                             const GfcgTensor *bias, const GfcgConvParams *p,
                             const GfcgConvPost *post, GfcgTensor *y);
void     cpu_onednn_sgemm   (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                             float alpha, const float *a, int lda, const float *b, int ldb,
                             float beta, float *c, int ldc);
#endif

#endif
