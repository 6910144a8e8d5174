/* backend.c — the common half of the op interface: tensor bookkeeping, shape
 * checks and the sticky error.  Backends only see well-formed calls. */
#include "backend.h"
#include "gfcg/gfcg.h"

#include <math.h>
#include <stdarg.h>

void
gfcg_backend_fail (GfcgBackend *be, int code, const char *fmt, ...)
{
  va_list ap;
  if (be->error != NULL)
    return;
  va_start (ap, fmt);
  be->error = g_error_new_valist (GFCG_ERROR, code, fmt, ap);
  va_end (ap);
}

gboolean
gfcg_backend_ok (GfcgBackend *be)
{
  if (be->error == NULL && be->cancel != NULL && g_cancellable_is_cancelled (be->cancel))
    gfcg_backend_fail (be, GFCG_ERROR_CANCELLED, "cancelled during a network evaluation");
  return be->error == NULL;
}

gboolean
gfcg_backend_take_error (GfcgBackend *be, GError **error)
{
  if (be->error == NULL)
    return TRUE;
  g_propagate_error (error, be->error);
  be->error = NULL;
  return FALSE;
}

void
gfcg_backend_free (GfcgBackend *be)
{
  if (be == NULL)
    return;
  g_clear_error (&be->error);
  if (be->ops->destroy != NULL)
    be->ops->destroy (be);
  else
    g_free (be->priv);
  g_free (be);
}

char *
gfcg_backend_describe (GfcgBackend *be)
{
  return be->ops->describe != NULL ? be->ops->describe (be) : g_strdup (be->ops->name);
}

void
gfcg_backend_memory (GfcgBackend *be, gsize *now, gsize *peak)
{
  gsize n = 0, p = 0;
  if (be->ops->memory != NULL)
    be->ops->memory (be, &n, &p);
  if (now != NULL)
    *now = n;
  if (peak != NULL)
    *peak = p;
}

guint64
gfcg_backend_sync (GfcgBackend *be, guint64 *gemm_flops)
{
  guint64 flops = 0, ns = be->ops->sync != NULL ? be->ops->sync (be, &flops) : 0;
  if (gemm_flops != NULL)
    *gemm_flops = flops;
  return ns;
}

GfcgTensor *
gfcg_tensor_new (GfcgBackend *be, int ndim, const int *shape)
{
  GfcgTensor *t;
  gsize numel = 1;

  if (!gfcg_backend_ok (be))
    return NULL;
  g_assert (ndim >= 1 && ndim <= GFCG_MAX_DIMS);
  t = g_new0 (GfcgTensor, 1);
  t->be = be;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    {
      g_assert (shape[i] > 0);
      t->shape[i] = shape[i];
      numel *= (gsize) shape[i];
    }
  t->numel = numel;
  if (!be->ops->alloc (be, t))
    {
      gfcg_backend_fail (be, GFCG_ERROR_NO_MEMORY,
                         "out of memory on %s: a tensor of %" G_GSIZE_FORMAT " MiB was refused",
                         be->ops->name, numel * sizeof (float) >> 20);
      g_free (t);
      return NULL;
    }
  be->bytes_live += numel * sizeof (float);
  be->bytes_peak = MAX (be->bytes_peak, be->bytes_live);
  return t;
}

GfcgTensor *
gfcg_tensor_new4 (GfcgBackend *be, int n, int c, int h, int w)
{
  int shape[4] = { n, c, h, w };
  return gfcg_tensor_new (be, 4, shape);
}

GfcgTensor *
gfcg_tensor_new2 (GfcgBackend *be, int n, int c)
{
  int shape[2] = { n, c };
  return gfcg_tensor_new (be, 2, shape);
}

GfcgTensor *
gfcg_tensor_from_host (GfcgBackend *be, int ndim, const int *shape, const float *src)
{
  GfcgTensor *t = gfcg_tensor_new (be, ndim, shape);
  if (t != NULL)
    be->ops->upload (be, t, src);
  return t;
}

void
gfcg_tensor_free (GfcgTensor *t)
{
  if (t == NULL)
    return;
  t->be->bytes_live -= t->numel * sizeof (float);
  t->be->ops->release (t->be, t);
  g_free (t);
}

void
gfcg_tensor_download (const GfcgTensor *t, float *dst)
{
  if (t != NULL && gfcg_backend_ok (t->be))
    t->be->ops->download (t->be, t, dst);
}

void
gfcg_tensor_upload (GfcgTensor *t, const float *src)
{
  if (t != NULL && gfcg_backend_ok (t->be))
    t->be->ops->upload (t->be, t, src);
}

gboolean
gfcg_tensor_same_shape (const GfcgTensor *a, const GfcgTensor *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return FALSE;
  return TRUE;
}

/* A shape mismatch between networks and weights is caught at load time, so
 * one here is a programming error: fail loudly but without crashing. */
static gboolean
check (GfcgBackend *be, gboolean cond, const char *what)
{
  if (!cond)
    gfcg_backend_fail (be, GFCG_ERROR_MODEL, "internal shape mismatch in %s", what);
  return cond;
}

#define READY(x) ((x) != NULL && gfcg_backend_ok ((x)->be))

GfcgTensor *
gfcg_op_conv2d (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                int stride, int pad)
{
  GfcgBackend *be;
  GfcgTensor *y;
  int k, ho, wo;

  if (!READY (x) || w == NULL)
    return NULL;
  be = x->be;
  k = w->ndim == 4 ? w->shape[2] : 1;
  if (!check (be, x->ndim == 4 && w->shape[1] == x->shape[1] &&
                    (bias == NULL || bias->numel == (gsize) w->shape[0]), "conv2d"))
    return NULL;
  ho = (x->shape[2] + 2 * pad - k) / stride + 1;
  wo = (x->shape[3] + 2 * pad - k) / stride + 1;
  y = gfcg_tensor_new4 (be, x->shape[0], w->shape[0], ho, wo);
  if (y != NULL)
    be->ops->conv2d (be, x, w, bias, stride, pad, y);
  return y;
}

GfcgTensor *
gfcg_op_linear (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias)
{
  GfcgTensor *y;
  if (!READY (x) || w == NULL)
    return NULL;
  if (!check (x->be, x->ndim == 2 && x->shape[1] == w->shape[1], "linear"))
    return NULL;
  y = gfcg_tensor_new2 (x->be, x->shape[0], w->shape[0]);
  if (y != NULL)
    x->be->ops->linear (x->be, x, w, bias, y);
  return y;
}

static GfcgTensor *
like (const GfcgTensor *x)
{
  return gfcg_tensor_new (x->be, x->ndim, x->shape);
}

GfcgTensor *
gfcg_op_pixel_norm (const GfcgTensor *x, float eps)
{
  GfcgTensor *y;
  if (!READY (x) || !check (x->be, x->ndim == 4, "pixel_norm"))
    return NULL;
  if ((y = like (x)) != NULL)
    x->be->ops->pixel_norm (x->be, x, eps, y);
  return y;
}

GfcgTensor *
gfcg_op_mp_silu (const GfcgTensor *x)
{
  GfcgTensor *y;
  if (!READY (x))
    return NULL;
  if ((y = like (x)) != NULL)
    x->be->ops->mp_silu (x->be, x, y);
  return y;
}

GfcgTensor *
gfcg_op_relu (const GfcgTensor *x)
{
  GfcgTensor *y;
  if (!READY (x))
    return NULL;
  if ((y = like (x)) != NULL)
    x->be->ops->relu (x->be, x, y);
  return y;
}

GfcgTensor *
gfcg_op_axpby (float a, const GfcgTensor *x1, float b, const GfcgTensor *x2)
{
  GfcgTensor *y;
  if (!READY (x1) || x2 == NULL)
    return NULL;
  if (!check (x1->be, gfcg_tensor_same_shape (x1, x2), "axpby"))
    return NULL;
  if ((y = like (x1)) != NULL)
    x1->be->ops->axpby (x1->be, a, x1, b, x2, y);
  return y;
}

GfcgTensor *
gfcg_op_axpby_batch (const float *a, const GfcgTensor *x1, const float *b, const GfcgTensor *x2)
{
  GfcgTensor *y;
  if (!READY (x1))
    return NULL;
  if (!check (x1->be, x2 == NULL || gfcg_tensor_same_shape (x1, x2), "axpby_batch"))
    return NULL;
  if ((y = like (x1)) != NULL)
    x1->be->ops->axpby_batch (x1->be, a, x1, b, x2, y);
  return y;
}

/* EDM2's magnitude-preserving sum: lerp(a, b, t) / sqrt((1-t)^2 + t^2). */
GfcgTensor *
gfcg_op_mp_sum (const GfcgTensor *a, const GfcgTensor *b, float t)
{
  double d = sqrt ((1.0 - t) * (1.0 - t) + (double) t * t);
  return gfcg_op_axpby ((float) ((1.0 - t) / d), a, (float) (t / d), b);
}

/* EDM2's magnitude-preserving concatenation along channels. */
GfcgTensor *
gfcg_op_mp_cat (const GfcgTensor *a, const GfcgTensor *b, float t)
{
  GfcgTensor *y;
  double na, nb, c;

  if (!READY (a) || b == NULL)
    return NULL;
  if (!check (a->be, a->ndim == 4 && b->ndim == 4 && a->shape[0] == b->shape[0] &&
                       a->shape[2] == b->shape[2] && a->shape[3] == b->shape[3], "mp_cat"))
    return NULL;
  na = a->shape[1];
  nb = b->shape[1];
  c = sqrt ((na + nb) / ((1.0 - t) * (1.0 - t) + (double) t * t));
  y = gfcg_tensor_new4 (a->be, a->shape[0], a->shape[1] + b->shape[1], a->shape[2], a->shape[3]);
  if (y != NULL)
    a->be->ops->cat (a->be, (float) (c / sqrt (na) * (1.0 - t)), a,
                     (float) (c / sqrt (nb) * t), b, y);
  return y;
}

GfcgTensor *
gfcg_op_cat_ones (const GfcgTensor *x)
{
  GfcgTensor *y;
  if (!READY (x) || !check (x->be, x->ndim == 4, "cat_ones"))
    return NULL;
  y = gfcg_tensor_new4 (x->be, x->shape[0], x->shape[1] + 1, x->shape[2], x->shape[3]);
  if (y != NULL)
    x->be->ops->cat_ones (x->be, x, y);
  return y;
}

GfcgTensor *
gfcg_op_resample (const GfcgTensor *x, GfcgResample mode)
{
  GfcgTensor *y;
  int h, w;
  if (!READY (x))
    return NULL;
  if (mode == GFCG_RESAMPLE_KEEP)
    {
      if ((y = like (x)) != NULL)
        x->be->ops->axpby (x->be, 1.0f, x, 0.0f, x, y);
      return y;
    }
  if (!check (x->be, x->ndim == 4 && (mode == GFCG_RESAMPLE_UP ||
                                      (x->shape[2] % 2 == 0 && x->shape[3] % 2 == 0)),
              "resample"))
    return NULL;
  h = mode == GFCG_RESAMPLE_UP ? x->shape[2] * 2 : x->shape[2] / 2;
  w = mode == GFCG_RESAMPLE_UP ? x->shape[3] * 2 : x->shape[3] / 2;
  y = gfcg_tensor_new4 (x->be, x->shape[0], x->shape[1], h, w);
  if (y != NULL)
    x->be->ops->resample (x->be, x, mode, y);
  return y;
}

GfcgTensor *
gfcg_op_scale_channels (const GfcgTensor *x, const GfcgTensor *s, float offset)
{
  GfcgTensor *y;
  if (!READY (x) || s == NULL)
    return NULL;
  if (!check (x->be, x->ndim == 4 && s->ndim == 2 && s->shape[0] == x->shape[0] &&
                       s->shape[1] == x->shape[1], "scale_channels"))
    return NULL;
  if ((y = like (x)) != NULL)
    x->be->ops->scale_channels (x->be, x, s, offset, y);
  return y;
}

void
gfcg_op_clip (GfcgTensor *x, float lo, float hi)
{
  if (READY (x))
    x->be->ops->clip (x->be, x, lo, hi);
}

GfcgTensor *
gfcg_op_attention (const GfcgTensor *qkv, int heads, int head_dim, float eps)
{
  GfcgTensor *y;
  if (!READY (qkv))
    return NULL;
  if (!check (qkv->be, qkv->ndim == 4 && qkv->shape[1] == 3 * heads * head_dim, "attention"))
    return NULL;
  y = gfcg_tensor_new4 (qkv->be, qkv->shape[0], heads * head_dim, qkv->shape[2], qkv->shape[3]);
  if (y != NULL)
    qkv->be->ops->attention (qkv->be, qkv, heads, head_dim, eps, y);
  return y;
}

GfcgTensor *
gfcg_op_fourier (GfcgBackend *be, int n, const float *t, const GfcgTensor *freqs,
                 const GfcgTensor *phases)
{
  GfcgTensor *y;
  if (!gfcg_backend_ok (be) || freqs == NULL || phases == NULL)
    return NULL;
  y = gfcg_tensor_new2 (be, n, (int) freqs->numel);
  if (y != NULL)
    be->ops->fourier (be, t, freqs, phases, y);
  return y;
}

GfcgTensor *
gfcg_op_avgpool_global (const GfcgTensor *x)
{
  GfcgTensor *y;
  if (!READY (x) || !check (x->be, x->ndim == 4, "avgpool_global"))
    return NULL;
  y = gfcg_tensor_new2 (x->be, x->shape[0], x->shape[1]);
  if (y != NULL)
    x->be->ops->avgpool_global (x->be, x, y);
  return y;
}

GfcgTensor *
gfcg_op_image_prep (const GfcgTensor *x, int size, const float *mean, const float *std)
{
  GfcgTensor *y;
  if (!READY (x) || !check (x->be, x->ndim == 4, "image_prep"))
    return NULL;
  y = gfcg_tensor_new4 (x->be, x->shape[0], x->shape[1], size, size);
  if (y != NULL)
    x->be->ops->image_prep (x->be, x, mean, std, y);
  return y;
}

/* ---- decoder and ImageNet-classifier ops ------------------------------------------
 *
 * A backend without one of these ops gets the CPU version run on host copies
 * of the tensors: correct everywhere, fast where it matters (the CPU), and
 * the OpenCL backend can add kernels one at a time. */

/* A host-side stand-in for a device tensor (data = float array).  NULL in,
 * NULL out, so optional inputs pass through. */
static GfcgTensor *
host_copy (const GfcgTensor *t, gboolean fill)
{
  GfcgTensor *h;
  if (t == NULL)
    return NULL;
  h = g_new (GfcgTensor, 1);
  *h = *t;
  h->data = g_try_malloc (t->numel * sizeof (float));
  if (h->data == NULL)
    {
      gfcg_backend_fail (t->be, GFCG_ERROR_NO_MEMORY,
                         "out of host memory for a %" G_GSIZE_FORMAT " MiB tensor",
                         t->numel * sizeof (float) >> 20);
      g_free (h);
      return NULL;
    }
  if (fill)
    t->be->ops->download (t->be, t, h->data);
  return h;
}

static void
host_free (GfcgTensor *h)
{
  if (h != NULL)
    g_free (h->data);
  g_free (h);
}

/* The CPU version of an op, on host copies of its (up to four) input tensors:
 * the one "run on the device or fall back" path of every op below.  The
 * adapter `fn` calls the CPU table's op with the copies; unused inputs are
 * NULL. */
typedef void (*HostOp) (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args);

static void
run_on_host (HostOp fn, gconstpointer args, GfcgTensor *y, const GfcgTensor *a,
             const GfcgTensor *b, const GfcgTensor *c, const GfcgTensor *d)
{
  GfcgBackend *be = y->be;
  GfcgTensor *in[4] = { host_copy (a, TRUE), host_copy (b, TRUE), host_copy (c, TRUE),
                        host_copy (d, TRUE) };
  GfcgTensor *hy = host_copy (y, FALSE);
  if (hy != NULL && gfcg_backend_ok (be))
    {
      fn (be, in, hy, args);
      if (gfcg_backend_ok (be))
        be->ops->upload (be, y, hy->data);
    }
  host_free (hy);
  for (int i = 0; i < 4; i++)
    host_free (in[i]);
}

#define CPU_OPS (gfcg_backend_cpu_ops ())

GfcgConvParams
gfcg_conv_params (int stride, int pad, int groups)
{
  GfcgConvParams p = { stride, pad, pad, pad, pad, groups };
  return p;
}

GfcgConvParams
gfcg_conv_params_same (int k, int stride, int h, int w)
{
  GfcgConvParams p = { .stride = stride, .groups = 1 };
  int ho = (h + stride - 1) / stride, wo = (w + stride - 1) / stride;
  int ph = MAX ((ho - 1) * stride + k - h, 0), pw = MAX ((wo - 1) * stride + k - w, 0);
  p.pad_top = ph / 2;
  p.pad_bottom = ph - ph / 2;
  p.pad_left = pw / 2;
  p.pad_right = pw - pw / 2;
  return p;
}

static void
host_conv2d_ex (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer p)
{
  CPU_OPS->conv2d_ex (be, in[0], in[1], in[2], p, y);
}

GfcgTensor *
gfcg_op_conv2d_ex (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                   const GfcgConvParams *p)
{
  GfcgBackend *be;
  GfcgTensor *y;
  int k, ho, wo;

  if (!READY (x) || w == NULL)
    return NULL;
  be = x->be;
  k = w->ndim == 4 ? w->shape[2] : 1;
  if (!check (be, x->ndim == 4 && p->groups >= 1 && p->stride >= 1 &&
                    x->shape[1] % p->groups == 0 && w->shape[0] % p->groups == 0 &&
                    w->shape[1] * p->groups == x->shape[1] &&
                    (bias == NULL || bias->numel == (gsize) w->shape[0]), "conv2d_ex"))
    return NULL;
  ho = (x->shape[2] + p->pad_top + p->pad_bottom - k) / p->stride + 1;
  wo = (x->shape[3] + p->pad_left + p->pad_right - k) / p->stride + 1;
  if (!check (be, ho > 0 && wo > 0, "conv2d_ex (output size)"))
    return NULL;
  y = gfcg_tensor_new4 (be, x->shape[0], w->shape[0], ho, wo);
  if (y == NULL)
    return NULL;
  if (be->ops->conv2d_ex != NULL)
    be->ops->conv2d_ex (be, x, w, bias, p, y);
  else
    run_on_host (host_conv2d_ex, p, y, x, w, bias, NULL);
  return y;
}

typedef struct { int groups; float eps; gboolean silu; } GroupNormArgs;

static void
host_group_norm (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args)
{
  const GroupNormArgs *a = args;
  CPU_OPS->group_norm (be, in[0], a->groups, a->eps, in[1], in[2], a->silu, y);
}

GfcgTensor *
gfcg_op_group_norm (const GfcgTensor *x, int groups, float eps, const GfcgTensor *gamma,
                    const GfcgTensor *beta, gboolean silu)
{
  GfcgBackend *be;
  GfcgTensor *y;
  if (!READY (x) || gamma == NULL || beta == NULL)
    return NULL;
  be = x->be;
  if (!check (be, x->ndim == 4 && groups >= 1 && x->shape[1] % groups == 0 &&
                    gamma->numel == (gsize) x->shape[1] && beta->numel == (gsize) x->shape[1],
              "group_norm"))
    return NULL;
  if ((y = like (x)) == NULL)
    return NULL;
  if (be->ops->group_norm != NULL)
    be->ops->group_norm (be, x, groups, eps, gamma, beta, silu, y);
  else
    run_on_host (host_group_norm, &(GroupNormArgs) { groups, eps, silu }, y, x, gamma, beta, NULL);
  return y;
}

typedef struct { GfcgUnary f; float a; } UnaryArgs;

static void
host_unary (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args)
{
  const UnaryArgs *a = args;
  CPU_OPS->unary (be, in[0], a->f, a->a, y);
}

GfcgTensor *
gfcg_op_unary (const GfcgTensor *x, GfcgUnary f, float a)
{
  GfcgBackend *be;
  GfcgTensor *y;
  if (!READY (x) || (y = like (x)) == NULL)
    return NULL;
  be = x->be;
  if (be->ops->unary != NULL)
    be->ops->unary (be, x, f, a, y);
  else
    run_on_host (host_unary, &(UnaryArgs) { f, a }, y, x, NULL, NULL, NULL);
  return y;
}

static void
host_maxpool (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args)
{
  const int *k_stride_pad = args;
  CPU_OPS->maxpool (be, in[0], k_stride_pad[0], k_stride_pad[1], k_stride_pad[2], y);
}

GfcgTensor *
gfcg_op_maxpool (const GfcgTensor *x, int k, int stride, int pad)
{
  GfcgBackend *be;
  GfcgTensor *y;
  int ho, wo;
  if (!READY (x))
    return NULL;
  be = x->be;
  if (!check (be, x->ndim == 4 && k >= 1 && stride >= 1 && pad >= 0 && pad < k, "maxpool"))
    return NULL;
  ho = (x->shape[2] + 2 * pad - k) / stride + 1;
  wo = (x->shape[3] + 2 * pad - k) / stride + 1;
  if (!check (be, ho > 0 && wo > 0, "maxpool (output size)"))
    return NULL;
  if ((y = gfcg_tensor_new4 (be, x->shape[0], x->shape[1], ho, wo)) == NULL)
    return NULL;
  if (be->ops->maxpool != NULL)
    be->ops->maxpool (be, x, k, stride, pad, y);
  else
    run_on_host (host_maxpool, (int[]) { k, stride, pad }, y, x, NULL, NULL, NULL);
  return y;
}

static void
host_channel_affine (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args)
{
  const float *const *scale_shift = args;
  CPU_OPS->channel_affine (be, in[0], scale_shift[0], scale_shift[1], y);
}

GfcgTensor *
gfcg_op_channel_affine (const GfcgTensor *x, const float *scale, const float *shift)
{
  GfcgBackend *be;
  GfcgTensor *y;
  if (!READY (x) || !check (x->be, x->ndim == 4, "channel_affine") || (y = like (x)) == NULL)
    return NULL;
  be = x->be;
  if (be->ops->channel_affine != NULL)
    be->ops->channel_affine (be, x, scale, shift, y);
  else
    run_on_host (host_channel_affine, (const float *const[]) { scale, shift }, y, x, NULL, NULL,
                 NULL);
  return y;
}

typedef struct { int heads; float scale; } AttentionArgs;

static void
host_attention_qkv (GfcgBackend *be, GfcgTensor *const *in, GfcgTensor *y, gconstpointer args)
{
  const AttentionArgs *a = args;
  CPU_OPS->attention_qkv (be, in[0], in[1], in[2], a->heads, a->scale, y);
}

GfcgTensor *
gfcg_op_attention_qkv (const GfcgTensor *q, const GfcgTensor *k, const GfcgTensor *v,
                       int heads, float scale)
{
  GfcgBackend *be;
  GfcgTensor *y;
  if (!READY (q) || k == NULL || v == NULL)
    return NULL;
  be = q->be;
  if (!check (be, q->ndim == 4 && gfcg_tensor_same_shape (q, k) && gfcg_tensor_same_shape (q, v) &&
                    heads >= 1 && q->shape[1] % heads == 0, "attention_qkv"))
    return NULL;
  if ((y = like (q)) == NULL)
    return NULL;
  if (be->ops->attention_qkv != NULL)
    be->ops->attention_qkv (be, q, k, v, heads, scale, y);
  else
    run_on_host (host_attention_qkv, &(AttentionArgs) { heads, scale }, y, q, k, v, NULL);
  return y;
}
