/* ops.c — the ops of the EDM2 network and the sampler's helpers: each
 * checks its inputs' shapes, makes the output and calls the backend's op. */
#include "ops-private.h"

#include <math.h>

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
