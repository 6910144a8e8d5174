/* backend.h — the op interface every compute backend implements.
 *
 * Networks (edm2.c, classifier.c) and the sampler are written once against
 * the gfcg_op_* functions below.  Each op checks shapes in this common layer
 * and dispatches to the backend's table, so a second backend (OpenCL) only
 * fills in GfcgBackendOps.
 *
 * Errors are sticky, as in OpenCL command queues: the first failure (an
 * allocation refused, a device error) is recorded in the backend, later ops
 * become no-ops, and callers check gfcg_backend_take_error() once per
 * network evaluation.
 */
#ifndef GFCG_BACKEND_H
#define GFCG_BACKEND_H

#include <gio/gio.h>

typedef struct _GfcgBackend GfcgBackend;
typedef struct _GfcgTensor  GfcgTensor;

#define GFCG_MAX_DIMS 4

struct _GfcgTensor
{
  GfcgBackend *be;
  int          ndim;
  int          shape[GFCG_MAX_DIMS];
  gsize        numel;
  gpointer     data;   /* backend-owned storage: float* on the CPU */
  /* Something derived from the data and kept with it, e.g. the CPU
   * backend's weights packed for oneDNN: freed by cache_free when the
   * tensor is freed or uploaded to (gfcg_tensor_drop_cache). */
  gpointer       cache;
  GDestroyNotify cache_free;
};

typedef enum { GFCG_RESAMPLE_KEEP, GFCG_RESAMPLE_DOWN, GFCG_RESAMPLE_UP } GfcgResample;

/* Element-wise functions of the decoder and ImageNet-classifier networks. */
typedef enum
{
  GFCG_UNARY_SILU,  /* x * sigmoid(x) (plain, not EDM2's magnitude-preserving one) */
  GFCG_UNARY_RELU6, /* clamp(x, 0, 6): MobileNetV2 */
  GFCG_UNARY_TANH,  /* a * tanh(x / a): TAESD's soft clamp of its input */
} GfcgUnary;

/* A general 2-D convolution: zero padding given per side (TensorFlow's SAME
 * padding puts the odd pixel at the bottom/right), and groups (depthwise
 * when groups == C == O).  w [O, C / groups, k, k]. */
typedef struct
{
  int stride;
  int pad_top, pad_left, pad_bottom, pad_right;
  int groups;
} GfcgConvParams;

/* What a convolution's result goes through before it is stored:
 *   y = act (scale (conv (x, w) + bias) + res_scale residual)
 * with act one of the below (CLIP: clamp to [lo, hi]).  The CPU backend
 * fuses these into the convolution (oneDNN post-ops); elsewhere they are
 * the separate ops (axpby, relu, unary, clip) in that order. */
typedef enum
{
  GFCG_ACT_NONE,
  GFCG_ACT_RELU,
  GFCG_ACT_RELU6,
  GFCG_ACT_SILU,  /* x * sigmoid(x) */
  GFCG_ACT_CLIP,
} GfcgAct;

typedef struct
{
  float             scale;     /* 1: none */
  const GfcgTensor *residual;  /* [N, O, Ho, Wo] or NULL */
  float             res_scale;
  GfcgAct           act;
  float             lo, hi;    /* GFCG_ACT_CLIP */
} GfcgConvPost;

typedef struct
{
  const char *name;
  /* Frees be->priv (NULL: g_free).  OpenCL has a context and queue there. */
  void     (*destroy)  (GfcgBackend *be);
  /* One line for people: device, library, threads (gfcg sample --verbose). */
  char    *(*describe) (GfcgBackend *be);
  /* Device bytes held now and at most (tensors, pool, scratch); NULL where
   * tensors live in host memory (the CPU backend's are counted by
   * bytes_live / bytes_peak below). */
  void     (*memory)   (GfcgBackend *be, gsize *now, gsize *peak);
  /* Waits for all queued work (for timing); returns the nanoseconds spent in
   * matrix products since the last call and their FLOPs, when the backend
   * profiles them (else 0).  NULL: work is done when an op returns. */
  guint64  (*sync)     (GfcgBackend *be, guint64 *gemm_flops);
  gboolean (*alloc)    (GfcgBackend *be, GfcgTensor *t);          /* FALSE: out of memory */
  void     (*release)  (GfcgBackend *be, GfcgTensor *t);
  void     (*upload)   (GfcgBackend *be, GfcgTensor *t, const float *src);
  void     (*download) (GfcgBackend *be, const GfcgTensor *t, float *dst);

  /* y = conv(x, w) (+ bias[o]); w [O, I, k, k], zero padding. */
  void (*conv2d)     (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                      const GfcgTensor *bias, int stride, int pad, GfcgTensor *y);
  /* y [N, M] = x [N, K] w^T (+ bias). */
  void (*linear)     (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                      const GfcgTensor *bias, GfcgTensor *y);
  /* x / (eps + rms over channels), per pixel. */
  void (*pixel_norm) (GfcgBackend *be, const GfcgTensor *x, float eps, GfcgTensor *y);
  void (*mp_silu)    (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y);
  void (*relu)       (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y);
  /* y = a*x1 + b*x2 elementwise (mp_sum, residual adds). */
  void (*axpby)      (GfcgBackend *be, float a, const GfcgTensor *x1, float b,
                      const GfcgTensor *x2, GfcgTensor *y);
  /* Per-sample coefficients: y[n] = a[n]*x1[n] + b[n]*x2[n]; x2 may be NULL. */
  void (*axpby_batch)(GfcgBackend *be, const float *a, const GfcgTensor *x1,
                      const float *b, const GfcgTensor *x2, GfcgTensor *y);
  /* Channel concatenation with scales: y = [wa*a, wb*b]. */
  void (*cat)        (GfcgBackend *be, float wa, const GfcgTensor *a, float wb,
                      const GfcgTensor *b, GfcgTensor *y);
  /* Append one constant channel of ones. */
  void (*cat_ones)   (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y);
  void (*resample)   (GfcgBackend *be, const GfcgTensor *x, GfcgResample mode, GfcgTensor *y);
  /* y[n,c,:,:] = x[n,c,:,:] * (s[n,c] + offset). */
  void (*scale_channels) (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *s,
                          float offset, GfcgTensor *y);
  void (*clip)       (GfcgBackend *be, GfcgTensor *x, float lo, float hi);
  /* EDM2 self-attention on qkv [N, 3C, H, W] -> y [N, C, H, W]. */
  void (*attention)  (GfcgBackend *be, const GfcgTensor *qkv, int heads, int head_dim,
                      float eps, GfcgTensor *y);
  /* y [N, C] = sqrt(2) cos(freqs[c] * t[n] + phases[c]). */
  void (*fourier)    (GfcgBackend *be, const float *t, const GfcgTensor *freqs,
                      const GfcgTensor *phases, GfcgTensor *y);
  /* y [N, C] = mean over H, W. */
  void (*avgpool_global) (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y);
  /* Classifier input: v = clamp((x+1)/2, 0, 1), bilinear resize to y's size
   * (half-pixel centres), then (v - mean[c]) / std[c]. */
  void (*image_prep) (GfcgBackend *be, const GfcgTensor *x, const float *mean,
                      const float *std, GfcgTensor *y);

  /* Ops of the decoders and ImageNet classifiers.  A backend may leave any
   * of them NULL: backend.c then runs the CPU version on host copies (slow
   * on a GPU, but one code path and always correct). */
  void (*conv2d_ex)  (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                      const GfcgTensor *bias, const GfcgConvParams *p, GfcgTensor *y);
  /* GroupNorm over (C / groups channels x H x W), then gamma, beta per
   * channel, then SiLU when silu is set (the decoders always follow one
   * with the other). */
  void (*group_norm) (GfcgBackend *be, const GfcgTensor *x, int groups, float eps,
                      const GfcgTensor *gamma, const GfcgTensor *beta, gboolean silu,
                      GfcgTensor *y);
  void (*unary)      (GfcgBackend *be, const GfcgTensor *x, GfcgUnary f, float a,
                      GfcgTensor *y);
  /* k x k max pooling; padding never wins (it counts as -inf). */
  void (*maxpool)    (GfcgBackend *be, const GfcgTensor *x, int k, int stride, int pad,
                      GfcgTensor *y);
  /* y[n, c] = x[n, c] * scale[c] + shift[c] (host arrays of C floats). */
  void (*channel_affine) (GfcgBackend *be, const GfcgTensor *x, const float *scale,
                          const float *shift, GfcgTensor *y);
  /* Plain multi-head attention: q, k, v [N, C, H, W], head h owns channels
   * h*C/heads ..; y = v softmax(scale q^T k)^T over key positions. */
  void (*attention_qkv) (GfcgBackend *be, const GfcgTensor *q, const GfcgTensor *k,
                         const GfcgTensor *v, int heads, float scale, GfcgTensor *y);
  /* conv2d_ex followed by post (see GfcgConvPost), in one pass where the
   * backend can.  Returns FALSE when it did nothing (this shape or post is
   * not fused here): ops-ex.c then runs conv2d_ex and the separate ops.
   * NULL: always the separate ops. */
  gboolean (*conv2d_post) (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                           const GfcgTensor *bias, const GfcgConvParams *p,
                           const GfcgConvPost *post, GfcgTensor *y);
} GfcgBackendOps;

/* The arithmetic a backend's products use (the trace records it).  The
 * element-wise ops, norms and the sampler are fp32 in every one. */
typedef enum
{
  GFCG_PRECISION_FP32,         /* everything fp32 */
  GFCG_PRECISION_BF16,         /* cpu:bf16: convolutions on bf16 weights and
                                * activations, fp32 accumulation (cpu-bf16.c) */
  GFCG_PRECISION_FP16_WEIGHTS, /* opencl:N:fp16: fp16 storage, fp32 arithmetic */
} GfcgPrecision;

const char *gfcg_precision_name (GfcgPrecision p); /* "fp32", "bf16", "fp16-weights" */

struct _GfcgBackend
{
  const GfcgBackendOps *ops;
  GfcgPrecision         precision;
  GError               *error;      /* sticky: first failure */
  gsize                 bytes_live; /* device memory now in tensors */
  gsize                 bytes_peak;
  /* While set, every op first checks it and a cancelled run becomes the
   * sticky error GFCG_ERROR_CANCELLED: a long network evaluation (a VAE
   * decode at 512, an XXL UNet on the CPU) stops within one op. */
  GCancellable         *cancel;
  gpointer              priv;
};

/* A backend for a device string: "auto", "cpu[:bf16]" or "opencl:N[:fp16][:tiled]"
 * (engine/backend-select.c).  A device that cannot be used falls back to the
 * CPU backend after one message on stderr; only a malformed string is an
 * error (GFCG_ERROR_INVALID_ARGUMENT), and cpu:bf16 where this build or CPU
 * cannot run it (GFCG_ERROR_DEVICE: the numbers would not be the ones asked
 * for). */
GfcgBackend *gfcg_backend_open      (const char *device, GError **error);
/* The devices `gfcg devices` lists, as text (one entry per device). */
char        *gfcg_backend_list_devices (void);
char        *gfcg_backend_describe  (GfcgBackend *be);
void         gfcg_backend_memory    (GfcgBackend *be, gsize *now, gsize *peak);
guint64      gfcg_backend_sync      (GfcgBackend *be, guint64 *gemm_flops);

GfcgBackend *gfcg_backend_cpu_new   (int n_threads);
/* The CPU backend's table: the OpenCL backend moves to it when its device fails. */
const GfcgBackendOps *gfcg_backend_cpu_ops (void);
void         gfcg_backend_cpu_set_threads (int n_threads); /* process-wide: BLAS and OpenMP */
int          gfcg_backend_cpu_get_threads (void);          /* the threads large products use */
/* The CPU backend's convolutions and products, process-wide: "onednn" (the
 * default where built with it) or "blas" (im2col + OpenBLAS SGEMM); the
 * environment's GFCG_CPU_CONV sets it at start.  FALSE: not in this build. */
gboolean     gfcg_backend_cpu_set_conv (const char *path);
/* cpu:bf16 for this CPU backend (engine/cpu-bf16.c): FALSE with a clear
 * error where the build lacks oneDNN, the oneDNN path is switched off or the
 * CPU has neither avx512_bf16 nor AMX (gfcg_cpu_bf16_unsupported). */
gboolean     gfcg_backend_cpu_set_bf16 (GfcgBackend *be, GError **error);
void         gfcg_backend_free      (GfcgBackend *be);
/* Records the first error; later ops are skipped until it is taken. */
void         gfcg_backend_fail      (GfcgBackend *be, int code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);
gboolean     gfcg_backend_ok        (GfcgBackend *be);
/* Moves the sticky error into *error; returns FALSE when there was one. */
gboolean     gfcg_backend_take_error (GfcgBackend *be, GError **error);

GfcgTensor  *gfcg_tensor_new        (GfcgBackend *be, int ndim, const int *shape);
GfcgTensor  *gfcg_tensor_new4       (GfcgBackend *be, int n, int c, int h, int w);
GfcgTensor  *gfcg_tensor_new2       (GfcgBackend *be, int n, int c);
GfcgTensor  *gfcg_tensor_from_host  (GfcgBackend *be, int ndim, const int *shape, const float *src);
void         gfcg_tensor_free       (GfcgTensor *t);
void         gfcg_tensor_download   (const GfcgTensor *t, float *dst);
void         gfcg_tensor_upload     (GfcgTensor *t, const float *src);
/* Frees t->cache (the data changed, or the tensor goes). */
void         gfcg_tensor_drop_cache (GfcgTensor *t);
gboolean     gfcg_tensor_same_shape (const GfcgTensor *a, const GfcgTensor *b);

/* Ops returning a new tensor (NULL-safe: they return NULL once the backend
 * has failed, and every op accepts NULL inputs as "skip").  Shapes: N batch,
 * C / Cin channels in, O / Cout out, H x W pixels, k kernel size. */

/* x [N, Cin, H, W], w [Cout, Cin, k, k], bias [Cout] or NULL
 *   -> y [N, Cout, (H + 2 pad - k) / stride + 1, same for W] */
GfcgTensor *gfcg_op_conv2d     (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                                int stride, int pad);
/* x [N, K], w [M, K], bias [M] or NULL -> y [N, M] = x w^T + bias */
GfcgTensor *gfcg_op_linear     (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias);
/* x [N, C, H, W] -> y [N, C, H, W], each pixel's C values over (eps + their rms) */
GfcgTensor *gfcg_op_pixel_norm (const GfcgTensor *x, float eps);
/* Element-wise, y the shape of x: EDM2's silu(x) / 0.596, and max(x, 0). */
GfcgTensor *gfcg_op_mp_silu    (const GfcgTensor *x);
GfcgTensor *gfcg_op_relu       (const GfcgTensor *x);
/* x1, x2 of one shape -> y = a x1 + b x2 */
GfcgTensor *gfcg_op_axpby      (float a, const GfcgTensor *x1, float b, const GfcgTensor *x2);
/* x1, x2 [N, ...], a, b [N] on the host -> y[n] = a[n] x1[n] + b[n] x2[n]; x2 may be NULL */
GfcgTensor *gfcg_op_axpby_batch(const float *a, const GfcgTensor *x1, const float *b,
                                const GfcgTensor *x2);
/* EDM2's magnitude-preserving sum: a, b of one shape
 *   -> y = ((1 - t) a + t b) / sqrt ((1 - t)^2 + t^2) */
GfcgTensor *gfcg_op_mp_sum     (const GfcgTensor *a, const GfcgTensor *b, float t);
/* a [N, Ca, H, W], b [N, Cb, H, W] -> y [N, Ca + Cb, H, W], magnitude-preserving weights */
GfcgTensor *gfcg_op_mp_cat     (const GfcgTensor *a, const GfcgTensor *b, float t);
/* x [N, C, H, W] -> y [N, C + 1, H, W], the last channel all ones */
GfcgTensor *gfcg_op_cat_ones   (const GfcgTensor *x);
/* x [N, C, H, W] -> y [N, C, H, W] (KEEP), [N, C, H / 2, W / 2] (DOWN, 2x2 mean),
 *   [N, C, 2 H, 2 W] (UP, nearest) */
GfcgTensor *gfcg_op_resample   (const GfcgTensor *x, GfcgResample mode);
/* x [N, C, H, W], s [N, C] -> y [N, C, H, W] = x (s + offset) */
GfcgTensor *gfcg_op_scale_channels (const GfcgTensor *x, const GfcgTensor *s, float offset);
/* In place, any shape: x = clamp (x, lo, hi) */
void        gfcg_op_clip       (GfcgTensor *x, float lo, float hi);
/* qkv [N, 3 C, H, W] (C = heads x head_dim) -> y [N, C, H, W], EDM2 attention */
GfcgTensor *gfcg_op_attention  (const GfcgTensor *qkv, int heads, int head_dim, float eps);
/* t [n] on the host, freqs, phases [C] -> y [n, C] = sqrt 2 cos (freqs t + phases) */
GfcgTensor *gfcg_op_fourier    (GfcgBackend *be, int n, const float *t, const GfcgTensor *freqs,
                                const GfcgTensor *phases);
/* x [N, C, H, W] -> y [N, C], the mean over H x W */
GfcgTensor *gfcg_op_avgpool_global (const GfcgTensor *x);
/* x [N, C, H, W] in [-1, 1], mean, std [C] on the host -> y [N, C, size, size] */
GfcgTensor *gfcg_op_image_prep (const GfcgTensor *x, int size, const float *mean, const float *std);
/* x [N, Cin, H, W], w [Cout, Cin / groups, k, k], bias [Cout] or NULL
 *   -> y [N, Cout, (H + pad_top + pad_bottom - k) / stride + 1, likewise W] */
GfcgTensor *gfcg_op_conv2d_ex  (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                                const GfcgConvParams *p);
/* gfcg_op_conv2d_ex, then post (GfcgConvPost; NULL: none):
 *   y = act (scale (conv (x, w) + bias) + res_scale residual), residual of y's shape */
GfcgTensor *gfcg_op_conv2d_post (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                                 const GfcgConvParams *p, const GfcgConvPost *post);
/* The same with symmetric padding and no groups (gfcg_op_conv2d's arguments). */
GfcgTensor *gfcg_op_conv2d_fused (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                                  int stride, int pad, const GfcgConvPost *post);
/* TensorFlow's SAME padding for a k x k kernel at this stride and input size. */
GfcgConvParams gfcg_conv_params_same (int k, int stride, int h, int w);
/* Symmetric padding, groups 1 unless given. */
GfcgConvParams gfcg_conv_params (int stride, int pad, int groups);
/* x [N, C, H, W], gamma, beta [C] -> y [N, C, H, W] (C % groups == 0) */
GfcgTensor *gfcg_op_group_norm (const GfcgTensor *x, int groups, float eps,
                                const GfcgTensor *gamma, const GfcgTensor *beta, gboolean silu);
/* Element-wise, y the shape of x (GfcgUnary) */
GfcgTensor *gfcg_op_unary      (const GfcgTensor *x, GfcgUnary f, float a);
/* x [N, C, H, W] -> y [N, C, (H + 2 pad - k) / stride + 1, likewise W] */
GfcgTensor *gfcg_op_maxpool    (const GfcgTensor *x, int k, int stride, int pad);
/* x [N, C, H, W], scale, shift [C] on the host -> y [N, C, H, W] */
GfcgTensor *gfcg_op_channel_affine (const GfcgTensor *x, const float *scale, const float *shift);
/* q, k, v [N, C, H, W] (C % heads == 0) -> y [N, C, H, W] */
GfcgTensor *gfcg_op_attention_qkv (const GfcgTensor *q, const GfcgTensor *k,
                                   const GfcgTensor *v, int heads, float scale);

/* The usual posts: an activation alone; a residual added, then an activation. */
static inline GfcgConvPost
gfcg_post_act (GfcgAct act)
{
  GfcgConvPost p = { 1.0f, NULL, 0.0f, act, 0.0f, 0.0f };
  return p;
}

static inline GfcgConvPost
gfcg_post_add (const GfcgTensor *residual, GfcgAct act)
{
  GfcgConvPost p = { 1.0f, residual, 1.0f, act, 0.0f, 0.0f };
  return p;
}

/* Replace *dst by src, freeing the old tensor (keeps network code short). */
static inline void
gfcg_tensor_set (GfcgTensor **dst, GfcgTensor *src)
{
  gfcg_tensor_free (*dst);
  *dst = src;
}

#endif
