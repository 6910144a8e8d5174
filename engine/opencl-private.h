/* opencl-private.h — what the OpenCL backend's files share: the device
 * state (ClPriv), device tensors, kernel indices and the launch helpers.
 *
 *   opencl-device.c   errors, device enumeration, program build and binary cache
 *   opencl-memory.c   buffers, the pool, scratch, transfers, teardown, fallback, launch
 *   opencl-gemm.c     matrix products: convolutions as im2col + GEMM, linear layers
 *   backend-opencl.c  the other ops, the op table and creation
 *
 * Private to those four files; the rest of the engine sees backend-opencl.h. */
#ifndef GFCG_OPENCL_PRIVATE_H
#define GFCG_OPENCL_PRIVATE_H

#include "backend-opencl.h"
#include "gfcg/gfcg.h"
#include "gfcg-kernels.h"

#define CL_TARGET_OPENCL_VERSION 120
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif
#ifdef GFCG_HAVE_CLBLAST
#include <clblast_c.h>
#endif

#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum
{
  K_MP_SILU, K_RELU, K_AXPBY, K_AXPBY_BATCH, K_CLIP, K_CAT, K_CAT_ONES, K_RESAMPLE_UP,
  K_RESAMPLE_DOWN, K_SCALE_CHANNELS, K_ADD_BIAS, K_HALF_TO_FLOAT, K_FLOAT_TO_HALF,
  K_PIXEL_NORM, K_AVGPOOL_GLOBAL, K_FOURIER, K_IMAGE_PREP, K_IM2COL, K_ATTN_NORM,
  K_SOFTMAX_ROWS, K_GEMM_TILED, K_CONV_DEPTHWISE, K_GN_PARTIAL, K_GN_STATS, K_GN_APPLY,
  K_UNARY, K_CHANNEL_AFFINE, K_MAXPOOL, K_COUNT
};

enum { SCR_COLS, SCR_QKV, SCR_ATT, SCR_W, SCR_GN_PART, SCR_GN_STATS, SCR_COUNT };

typedef struct
{
  cl_mem buf;  /* fp32 storage; NULL while only the fp16 copy exists */
  cl_mem half; /* fp16 copy of a weight */
} ClTensor;

typedef struct
{
  cl_event event;
  double   flops;
} GemmEvent;

typedef struct
{
  GfcgClDeviceInfo info;
  GfcgClOptions    opt;
  cl_platform_id   platform;
  cl_device_id     device;
  cl_context       ctx;
  cl_command_queue q;
  cl_program       prog;
  cl_kernel        k[K_COUNT];
  gboolean         clblast, from_cache, profile;
  GHashTable      *live;  /* GfcgTensor* */
  GHashTable      *pool;  /* bytes -> GSList* of cl_mem */
  cl_mem           scratch[SCR_COUNT];
  gsize            scratch_bytes[SCR_COUNT];
  gsize            dev_bytes, dev_peak, budget;
  gsize            slice_bytes; /* most scratch for one im2col slice or attention batch */
  int              fail_alloc_at, fail_kernel_at, n_allocs, n_launches;
  size_t           max_wg;
  GArray          *gemm_events; /* GemmEvent */
  guint64          gemm_ns;
  double           gemm_flops;
} ClPriv;

#define PRIV(be) ((ClPriv *) (be)->priv)
#define CT(t) ((ClTensor *) (t)->data)

typedef struct
{
  int            want;
  cl_platform_id p;
  cl_device_id   d;
} FindDev;

/* Error codes of the fault-injection hooks (tests of the fallback). */
#define ERR_FORCED_ALLOC  ((cl_int) -9999)
#define ERR_FORCED_KERNEL ((cl_int) -9998)

/* ---- launching: LAUNCH (p, K_X, dims, global, local, AM (t), AI (n), ...) ---- */

typedef struct
{
  size_t      size;
  const void *ptr;
} Arg;

#define AM(t) ((Arg) { sizeof (cl_mem), &CT (t)->buf })
#define AB(m) ((Arg) { sizeof (cl_mem), &(m) })
#define AI(v) ((Arg) { sizeof (cl_int), &(cl_int) { (cl_int) (v) } })
#define AF(v) ((Arg) { sizeof (cl_float), &(cl_float) { (cl_float) (v) } })
#define AL(bytes) ((Arg) { (bytes), NULL })

#define LAUNCH(p, k, dims, g, l, ...)                                                     \
  ocl_launch (p, k, dims, g, l, G_N_ELEMENTS (((Arg[]) { __VA_ARGS__ })), (Arg[]) { __VA_ARGS__ })

#define LAUNCH1(p, k, n, ...) LAUNCH (p, k, 1, (size_t[]) { (n) }, NULL, __VA_ARGS__)

/* On failure: fall back and repeat the op on the CPU (CALL uses be->ops). */
#define FAIL_OR_REPEAT(be, err, where, CALL)                                               \
  do {                                                                                     \
    if ((err) != CL_SUCCESS && ocl_fallback (be, err, where))                              \
      CALL;                                                                                \
  } while (0)

/* opencl-device.c */
gboolean ocl_build_program (ClPriv *p, GError **error);
char *ocl_err_text (cl_int err);
void ocl_fill_info (GfcgClDeviceInfo *info, int index, cl_platform_id p, cl_device_id d);
gboolean ocl_find_one (int index, cl_platform_id p, cl_device_id d, gpointer data);
gboolean ocl_for_each_device (gboolean (*fn) (int index, cl_platform_id p, cl_device_id d,
                              gpointer data), gpointer data, GError **error);

/* opencl-memory.c */
cl_int ocl_launch (ClPriv *p, int kernel, cl_uint dims, const size_t *global, const size_t *local,
                   guint nargs, const Arg *args);
gboolean ocl_alloc (GfcgBackend *be, GfcgTensor *t);
void ocl_destroy (GfcgBackend *be);
void ocl_download (GfcgBackend *be, const GfcgTensor *t, float *dst);
void ocl_release (GfcgBackend *be, GfcgTensor *t);
void ocl_upload (GfcgBackend *be, GfcgTensor *t, const float *src);
gboolean ocl_fallback (GfcgBackend *be, cl_int err, const char *where);
cl_mem ocl_host_buffer (ClPriv *p, const float *v, gsize n, cl_int *err);
void ocl_priv_free (ClPriv *p);
cl_int ocl_scratch (ClPriv *p, int which, gsize bytes, cl_mem *out);
void ocl_take_gemm_events (ClPriv *p);

/* opencl-gemm.c */
void ocl_conv2d (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                 const GfcgTensor *bias, int stride, int pad, GfcgTensor *y);
void ocl_conv2d_ex (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                    const GfcgTensor *bias, const GfcgConvParams *cp, GfcgTensor *y);
void ocl_linear (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                 const GfcgTensor *bias, GfcgTensor *y);
cl_int ocl_gemm (ClPriv *p, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
                 cl_mem A, size_t oa, size_t lda, size_t sa, cl_mem B, size_t ob, size_t ldb,
                 size_t sb, float beta, cl_mem C, size_t oc, size_t ldc, size_t sc, int batch);

#endif
