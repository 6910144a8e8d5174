/* ops-ex.c — the ops the decoders and ImageNet classifiers add, and the
 * one fallback for a backend that lacks any of them (run_on_host). */
#include "ops-private.h"

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
  h->cache = NULL; /* the device tensor's; a host copy makes its own */
  h->cache_free = NULL;
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
    {
      gfcg_tensor_drop_cache (h);
      g_free (h->data);
    }
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

/* The post-ops of a convolution as separate ops, in GfcgConvPost's order. */
static GfcgTensor *
conv_post_ops (GfcgTensor *y, const GfcgConvPost *post)
{
  if (post->residual != NULL)
    gfcg_tensor_set (&y, gfcg_op_axpby (post->scale, y, post->res_scale, post->residual));
  else if (post->scale != 1.0f)
    gfcg_tensor_set (&y, gfcg_op_axpby (post->scale, y, 0.0f, y));
  switch (post->act)
    {
    case GFCG_ACT_NONE:  break;
    case GFCG_ACT_RELU:  gfcg_tensor_set (&y, gfcg_op_relu (y)); break;
    case GFCG_ACT_RELU6: gfcg_tensor_set (&y, gfcg_op_unary (y, GFCG_UNARY_RELU6, 0.0f)); break;
    case GFCG_ACT_SILU:  gfcg_tensor_set (&y, gfcg_op_unary (y, GFCG_UNARY_SILU, 0.0f)); break;
    case GFCG_ACT_CLIP:  gfcg_op_clip (y, post->lo, post->hi); break;
    }
  return y;
}

GfcgTensor *
gfcg_op_conv2d_post (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                     const GfcgConvParams *p, const GfcgConvPost *post)
{
  GfcgBackend *be;
  GfcgTensor *y;
  int k, ho, wo;

  if (post == NULL)
    return gfcg_op_conv2d_ex (x, w, bias, p);
  if (!READY (x) || w == NULL)
    return NULL;
  be = x->be;
  if (!check (be, x->ndim == 4 && p->stride >= 1, "conv2d_post"))
    return NULL;
  k = w->ndim == 4 ? w->shape[2] : 1;
  ho = (x->shape[2] + p->pad_top + p->pad_bottom - k) / p->stride + 1;
  wo = (x->shape[3] + p->pad_left + p->pad_right - k) / p->stride + 1;
  if (!check (be, (post->residual == NULL ||
                                   (post->residual->ndim == 4 &&
                                    post->residual->shape[0] == x->shape[0] &&
                                    post->residual->shape[1] == w->shape[0] &&
                                    post->residual->shape[2] == ho &&
                                    post->residual->shape[3] == wo)), "conv2d_post"))
    return NULL;
  if (be->ops->conv2d_post != NULL && p->groups >= 1 && p->stride >= 1 &&
      x->shape[1] % p->groups == 0 && w->shape[0] % p->groups == 0 &&
      w->shape[1] * p->groups == x->shape[1] &&
      (bias == NULL || bias->numel == (gsize) w->shape[0]) && ho > 0 && wo > 0)
    {
      y = gfcg_tensor_new4 (be, x->shape[0], w->shape[0], ho, wo);
      if (y == NULL || be->ops->conv2d_post (be, x, w, bias, p, post, y))
        return y;
      gfcg_tensor_free (y);
    }
  /* The separate ops; the plain convolution (every backend's conv2d) when it is one. */
  if (p->groups == 1 && p->pad_top == p->pad_left && p->pad_top == p->pad_bottom &&
      p->pad_top == p->pad_right)
    y = gfcg_op_conv2d (x, w, bias, p->stride, p->pad_top);
  else
    y = gfcg_op_conv2d_ex (x, w, bias, p);
  return conv_post_ops (y, post);
}

GfcgTensor *
gfcg_op_conv2d_fused (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
                      int stride, int pad, const GfcgConvPost *post)
{
  GfcgConvParams p = gfcg_conv_params (stride, pad, 1);
  if (post == NULL)
    return gfcg_op_conv2d (x, w, bias, stride, pad);
  return gfcg_op_conv2d_post (x, w, bias, &p, post);
}
