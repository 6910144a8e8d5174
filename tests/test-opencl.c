/* test-opencl.c — every op of the OpenCL backend against the CPU backend on
 * the same random inputs (max abs error <= 1e-4; fp16 weights: <= 1e-2
 * relative), with CLBlast and with the built-in tiled GEMM.  Device:
 * $GFCG_TEST_OPENCL_DEVICE (default 0).  Exit 77 (skipped) when there is no
 * OpenCL device at all, so that hosts without PoCL still pass. */
#include "backend.h"
#include "backend-opencl.h"
#include "gfcg/gfcg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static GfcgBackend *cpu, *ocl;
static int failures, checks;
static double tol = 1e-4;
static const char *variant = "";

/* The same host data on both backends. */
typedef struct
{
  GfcgTensor *c, *o;
} Pair;

static float *
rnd (gsize n, double scale, guint32 seed)
{
  GRand *r = g_rand_new_with_seed (seed);
  float *v = g_new (float, n);
  for (gsize i = 0; i < n; i++)
    v[i] = (float) (g_rand_double_range (r, -1.0, 1.0) * scale);
  g_rand_free (r);
  return v;
}

static Pair
pair (int ndim, const int *shape, double scale, guint32 seed)
{
  gsize n = 1;
  float *v;
  Pair p;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  v = rnd (n, scale, seed);
  p.c = gfcg_tensor_from_host (cpu, ndim, shape, v);
  p.o = gfcg_tensor_from_host (ocl, ndim, shape, v);
  g_free (v);
  return p;
}

#define P4(n, c, h, w, s, seed) pair (4, (int[]) { n, c, h, w }, s, seed)
#define P2(n, c, s, seed) pair (2, (int[]) { n, c }, s, seed)
#define P1(n, s, seed) pair (1, (int[]) { n }, s, seed)

static void
pair_free (Pair p)
{
  gfcg_tensor_free (p.c);
  gfcg_tensor_free (p.o);
}

/* Compares, frees both results. */
static void
check (const char *what, GfcgTensor *c, GfcgTensor *o)
{
  GError *error = NULL;
  double err = 0.0, mx = 0.0;
  float *a, *b;

  checks++;
  if (c == NULL || o == NULL || !gfcg_backend_ok (ocl) || !gfcg_backend_opencl_active (ocl))
    {
      gfcg_backend_take_error (ocl, &error);
      printf ("FAIL %s%s: no result (%s)\n", variant, what, error ? error->message : "fell back");
      g_clear_error (&error);
      failures++;
      gfcg_tensor_free (c);
      gfcg_tensor_free (o);
      return;
    }
  a = g_new (float, c->numel);
  b = g_new (float, o->numel);
  gfcg_tensor_download (c, a);
  gfcg_tensor_download (o, b);
  for (gsize i = 0; i < c->numel; i++)
    {
      err = MAX (err, fabs ((double) a[i] - b[i]));
      mx = MAX (mx, fabs ((double) a[i]));
    }
  if (!(err <= tol * MAX (1.0, tol > 1e-4 ? mx : 1.0)) || c->numel != o->numel)
    {
      printf ("FAIL %s%s: max abs error %.3g (tol %g, max |y| %.3g)\n", variant, what, err, tol, mx);
      failures++;
    }
  else
    printf ("ok   %s%s: max abs error %.3g\n", variant, what, err);
  g_free (a);
  g_free (b);
  gfcg_tensor_free (c);
  gfcg_tensor_free (o);
}

static void
test_conv (int n, int c, int h, int w, int o, int k, int stride, int pad, gboolean bias)
{
  Pair x = P4 (n, c, h, w, 1.0, 1), wt = P4 (o, c, k, k, 0.3, 2), b = P1 (o, 0.5, 3);
  char *what = g_strdup_printf ("conv2d %dx%dx%dx%d o%d k%d s%d p%d%s", n, c, h, w, o, k, stride,
                                pad, bias ? " bias" : "");
  check (what, gfcg_op_conv2d (x.c, wt.c, bias ? b.c : NULL, stride, pad),
         gfcg_op_conv2d (x.o, wt.o, bias ? b.o : NULL, stride, pad));
  g_free (what);
  pair_free (x);
  pair_free (wt);
  pair_free (b);
}

static void
test_attention (int n, int heads, int dim, int h, int w)
{
  Pair qkv = P4 (n, 3 * heads * dim, h, w, 2.0, 4);
  char *what = g_strdup_printf ("attention n%d heads%d dim%d %dx%d", n, heads, dim, h, w);
  check (what, gfcg_op_attention (qkv.c, heads, dim, 1e-4f),
         gfcg_op_attention (qkv.o, heads, dim, 1e-4f));
  g_free (what);
  pair_free (qkv);
}

static void
run_all (gboolean weights_only)
{
  test_conv (2, 5, 9, 7, 6, 3, 1, 1, FALSE);
  test_conv (1, 4, 16, 16, 8, 3, 2, 1, TRUE);
  test_conv (3, 16, 8, 8, 12, 1, 1, 0, FALSE);
  test_conv (2, 6, 7, 7, 4, 1, 2, 0, TRUE);
  test_conv (1, 32, 16, 16, 32, 3, 1, 1, FALSE);
  {
    Pair x = P2 (3, 40, 1.0, 5), w = P2 (24, 40, 0.2, 6), b = P1 (24, 1.0, 7);
    check ("linear", gfcg_op_linear (x.c, w.c, NULL), gfcg_op_linear (x.o, w.o, NULL));
    check ("linear bias", gfcg_op_linear (x.c, w.c, b.c), gfcg_op_linear (x.o, w.o, b.o));
    pair_free (x);
    pair_free (w);
    pair_free (b);
  }
  test_attention (2, 1, 16, 8, 8);
  test_attention (1, 3, 16, 5, 5);
  test_attention (2, 2, 8, 16, 16);
  if (weights_only)
    return;
  {
    Pair x = P4 (2, 7, 6, 5, 3.0, 8), x2 = P4 (2, 7, 6, 5, 1.0, 9), s = P2 (2, 7, 1.0, 10);
    Pair e = P4 (2, 7, 6, 6, 1.0, 11), y = P4 (2, 3, 6, 6, 1.0, 12);
    float a[2] = { 0.3f, -1.7f }, b[2] = { 2.0f, 0.25f };
    check ("pixel_norm", gfcg_op_pixel_norm (x.c, 1e-4f), gfcg_op_pixel_norm (x.o, 1e-4f));
    check ("mp_silu", gfcg_op_mp_silu (x.c), gfcg_op_mp_silu (x.o));
    check ("relu", gfcg_op_relu (x.c), gfcg_op_relu (x.o));
    check ("axpby", gfcg_op_axpby (0.7f, x.c, -1.3f, x2.c), gfcg_op_axpby (0.7f, x.o, -1.3f, x2.o));
    check ("mp_sum", gfcg_op_mp_sum (x.c, x2.c, 0.3f), gfcg_op_mp_sum (x.o, x2.o, 0.3f));
    check ("axpby_batch", gfcg_op_axpby_batch (a, x.c, b, x2.c), gfcg_op_axpby_batch (a, x.o, b, x2.o));
    check ("axpby_batch x2=NULL", gfcg_op_axpby_batch (a, x.c, NULL, NULL),
           gfcg_op_axpby_batch (a, x.o, NULL, NULL));
    check ("mp_cat", gfcg_op_mp_cat (e.c, y.c, 0.4f), gfcg_op_mp_cat (e.o, y.o, 0.4f));
    check ("cat_ones", gfcg_op_cat_ones (x.c), gfcg_op_cat_ones (x.o));
    check ("resample keep", gfcg_op_resample (x.c, GFCG_RESAMPLE_KEEP),
           gfcg_op_resample (x.o, GFCG_RESAMPLE_KEEP));
    check ("resample up", gfcg_op_resample (x.c, GFCG_RESAMPLE_UP),
           gfcg_op_resample (x.o, GFCG_RESAMPLE_UP));
    check ("resample down", gfcg_op_resample (e.c, GFCG_RESAMPLE_DOWN),
           gfcg_op_resample (e.o, GFCG_RESAMPLE_DOWN));
    check ("scale_channels", gfcg_op_scale_channels (x.c, s.c, 1.0f),
           gfcg_op_scale_channels (x.o, s.o, 1.0f));
    {
      GfcgTensor *cc = gfcg_op_axpby (1.0f, x.c, 0.0f, x.c), *oc = gfcg_op_axpby (1.0f, x.o, 0.0f, x.o);
      gfcg_op_clip (cc, -1.5f, 0.8f);
      gfcg_op_clip (oc, -1.5f, 0.8f);
      check ("clip", cc, oc);
    }
    check ("avgpool_global", gfcg_op_avgpool_global (x.c), gfcg_op_avgpool_global (x.o));
    {
      float mean[3] = { 0.45f, 0.5f, 0.55f }, std[3] = { 0.5f, 0.45f, 0.6f };
      Pair img = P4 (2, 3, 20, 20, 1.3, 13);
      check ("image_prep 20->13", gfcg_op_image_prep (img.c, 13, mean, std),
             gfcg_op_image_prep (img.o, 13, mean, std));
      check ("image_prep 20->32", gfcg_op_image_prep (img.c, 32, mean, std),
             gfcg_op_image_prep (img.o, 32, mean, std));
      pair_free (img);
    }
    {
      Pair fr = P1 (48, 6.28, 14), ph = P1 (48, 6.28, 15);
      float t[3] = { -1.5f, 0.1f, 1.1f };
      check ("fourier", gfcg_op_fourier (cpu, 3, t, fr.c, ph.c), gfcg_op_fourier (ocl, 3, t, fr.o, ph.o));
      pair_free (fr);
      pair_free (ph);
    }
    pair_free (x);
    pair_free (x2);
    pair_free (s);
    pair_free (e);
    pair_free (y);
  }
}

int
main (void)
{
  GError *error = NULL;
  const char *dev = g_getenv ("GFCG_TEST_OPENCL_DEVICE");
  int index = dev != NULL ? atoi (dev) : 0;
  GArray *devs = gfcg_opencl_list_devices (&error);
  GfcgClOptions opts[3] = { { FALSE, FALSE }, { FALSE, TRUE }, { TRUE, FALSE } };
  const char *names[3] = { "", "[tiled] ", "[fp16] " };

  if (devs == NULL || devs->len == 0)
    {
      printf ("SKIP: no OpenCL device (%s)\n", error ? error->message : "none");
      return 77;
    }
  g_array_unref (devs);
  cpu = gfcg_backend_cpu_new (1);
  for (int v = 0; v < 3; v++)
    {
      ocl = gfcg_backend_opencl_new (index, &opts[v], &error);
      if (ocl == NULL)
        {
          printf ("FAIL: opencl:%d: %s\n", index, error->message);
          return 1;
        }
      variant = names[v];
      tol = opts[v].fp16_weights ? 1e-2 : 1e-4; /* fp16: relative to max |y| */
      run_all (v > 0);
      if (ocl->bytes_live != 0)
        {
          printf ("FAIL %sleaked %" G_GSIZE_FORMAT " bytes of tensors\n", variant, ocl->bytes_live);
          failures++;
        }
      gfcg_backend_free (ocl);
    }
  gfcg_backend_free (cpu);
  printf ("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
