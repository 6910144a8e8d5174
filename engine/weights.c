/* weights.c — reading weights from a pack into backend tensors. */
#include "gfcg-private.h"

#include <math.h>

static gsize
numel (int ndim, const gint64 *shape)
{
  gsize n = 1;
  for (int i = 0; i < ndim; i++)
    n *= (gsize) shape[i];
  return n;
}

static GfcgTensor *
upload (GfcgBackend *be, int ndim, const gint64 *shape, const float *host, GError **error)
{
  int s[GFCG_MAX_DIMS];
  GfcgTensor *t;
  for (int i = 0; i < ndim; i++)
    s[i] = (int) shape[i];
  t = gfcg_tensor_from_host (be, ndim, s, host);
  if (t == NULL)
    gfcg_backend_take_error (be, error);
  return t;
}

/* The tensor `name`, checked to be [shape[0], .., shape[ndim - 1]], values unchanged. */
GfcgTensor *
weight_load (GfcgBackend *be, GfcgSafetensors *st, const char *name, int ndim,
             const gint64 *shape, GError **error)
{
  float *w = gfcg_st_read (st, name, ndim, shape, error);
  GfcgTensor *t;
  if (w == NULL)
    return NULL;
  t = upload (be, ndim, shape, w, error);
  g_free (w);
  return t;
}

/* As weight_load, viewed as [rows = shape[0], fan_in = the rest] (conv [Cout, Cin, k, k]:
 * [Cout, Cin k k]; linear [M, K]): EDM2's normalisation, each row w becoming
 * gain w / (eps sqrt(fan_in) + |w|). */
GfcgTensor *
weight_load_mp (GfcgBackend *be, GfcgSafetensors *st, const char *name, int ndim,
                const gint64 *shape, float gain, GError **error)
{
  const double eps = 1e-4;
  float *w = gfcg_st_read (st, name, ndim, shape, error);
  gsize rows, fan_in;
  GfcgTensor *t;

  if (w == NULL)
    return NULL;
  rows = (gsize) shape[0];
  fan_in = numel (ndim, shape) / rows;
  for (gsize o = 0; o < rows; o++)
    {
      float *row = w + o * fan_in;
      double ss = 0.0, scale;
      for (gsize i = 0; i < fan_in; i++)
        ss += (double) row[i] * row[i];
      scale = gain / (sqrt ((double) fan_in) * eps + sqrt (ss));
      for (gsize i = 0; i < fan_in; i++)
        row[i] = (float) (row[i] * scale);
    }
  t = upload (be, ndim, shape, w, error);
  g_free (w);
  return t;
}

/* A scalar tensor `name` of shape [] into *out. */
gboolean
scalar_load (GfcgSafetensors *st, const char *name, float *out, GError **error)
{
  float *v = gfcg_st_read (st, name, 0, NULL, error);
  if (v == NULL)
    return FALSE;
  *out = v[0];
  g_free (v);
  return TRUE;
}
