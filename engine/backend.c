/* backend.c — the common half of the op interface: the sticky error,
 * describe / memory / sync, and tensor bookkeeping.  The op wrappers, which
 * check shapes so that backends only see well-formed calls, are in ops.c
 * and ops-ex.c. */
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

const char *
gfcg_precision_name (GfcgPrecision p)
{
  switch (p)
    {
    case GFCG_PRECISION_FP32:         return "fp32";
    case GFCG_PRECISION_BF16:         return "bf16";
    case GFCG_PRECISION_FP16_WEIGHTS: return "fp16-weights";
    }
  return "fp32";
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
  gfcg_tensor_drop_cache (t);
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
    {
      gfcg_tensor_drop_cache (t);
      t->be->ops->upload (t->be, t, src);
    }
}

void
gfcg_tensor_drop_cache (GfcgTensor *t)
{
  if (t != NULL && t->cache != NULL)
    {
      if (t->cache_free != NULL)
        t->cache_free (t->cache);
      t->cache = NULL;
      t->cache_free = NULL;
    }
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
