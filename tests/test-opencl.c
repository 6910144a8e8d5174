/* test-opencl.c — every op of the OpenCL backend against the CPU backend on
 * the same random inputs (max abs error <= 1e-4; fp16 weights: <= 1e-2
 * relative), with CLBlast and with the built-in tiled GEMM.  The decoder and
 * classifier ops (conv2d_ex, group_norm, unary, maxpool, channel_affine,
 * attention_qkv) are held to a max abs error <= 1e-5 x max |y| (fp16
 * weights: 1e-2 x max |y|), and the products once more with im2col and the
 * attention scores cut into small slices (GFCG_OPENCL_SLICE_KB).  Device:
 * $GFCG_TEST_OPENCL_DEVICE (default 0).  Exit 77 (skipped) when there is no
 * OpenCL device at all, so that hosts without PoCL still pass. */
#include "test-util.h"
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
static double rtol = 1e-5; /* the newer ops: relative to max |y| */
static const char *variant = "";

/* The same host data on both backends. */
typedef struct
{
  GfcgTensor *c, *o;
} Pair;

static float *
rnd (gsize n, double scale, guint32 seed)
{
  return test_rnd (n, seed, scale);
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

/* Compares, frees both results: max abs error <= limit, where limit is t,
 * or t * max |y| when relative (or, for the old checks, max(1, max |y|) with
 * fp16 weights). */
static void
check_core (const char *what, GfcgTensor *c, GfcgTensor *o, gboolean relative, double t)
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
  if (!(err <= (relative ? t * mx : t * MAX (1.0, t > 1e-4 ? mx : 1.0))) || c->numel != o->numel ||
      (relative && !(mx > 0.0)))
    {
      printf ("FAIL %s%s: max abs error %.3g (%s %g, max |y| %.3g)\n", variant, what, err,
              relative ? "rel tol" : "tol", t, mx);
      failures++;
    }
  else if (relative)
    printf ("ok   %s%s: max abs error %.3g, relative %.3g (max |y| %.3g)\n", variant, what, err,
            err / mx, mx);
  else
    printf ("ok   %s%s: max abs error %.3g\n", variant, what, err);
  g_free (a);
  g_free (b);
  gfcg_tensor_free (c);
  gfcg_tensor_free (o);
}

static void
check (const char *what, GfcgTensor *c, GfcgTensor *o)
{
  check_core (what, c, o, FALSE, tol);
}

static void
check_rel (const char *what, GfcgTensor *c, GfcgTensor *o)
{
  check_core (what, c, o, TRUE, rtol);
}

/* Like pair, with every value moved by shift (a mean far from 0). */
static Pair
pair_shift (int n, int c, int h, int w, double scale, double shift, guint32 seed)
{
  gsize len = (gsize) n * c * h * w;
  float *v = rnd (len, scale, seed);
  const int shape[4] = { n, c, h, w };
  Pair p;
  for (gsize i = 0; i < len; i++)
    v[i] += (float) shift;
  p.c = gfcg_tensor_from_host (cpu, 4, shape, v);
  p.o = gfcg_tensor_from_host (ocl, 4, shape, v);
  g_free (v);
  return p;
}

/* conv2d_ex with the given padding (SAME when same is set) and groups. */
static void
test_conv_ex (int n, int c, int h, int w, int o, int k, int stride, int pad, gboolean same,
              int groups, gboolean bias)
{
  Pair x = P4 (n, c, h, w, 1.0, 21), wt = P4 (o, c / groups, k, k, 0.3, 22), b = P1 (o, 0.5, 23);
  GfcgConvParams cp = same ? gfcg_conv_params_same (k, stride, h, w)
                           : gfcg_conv_params (stride, pad, groups);
  char *what;
  cp.groups = groups;
  what = g_strdup_printf ("conv2d_ex %dx%dx%dx%d o%d k%d s%d pad t%d l%d b%d r%d g%d%s%s", n, c,
                          h, w, o, k, stride, cp.pad_top, cp.pad_left, cp.pad_bottom,
                          cp.pad_right, groups, groups == c && groups == o ? " (depthwise)" : "",
                          bias ? " bias" : "");
  check_rel (what, gfcg_op_conv2d_ex (x.c, wt.c, bias ? b.c : NULL, &cp),
             gfcg_op_conv2d_ex (x.o, wt.o, bias ? b.o : NULL, &cp));
  g_free (what);
  pair_free (x);
  pair_free (wt);
  pair_free (b);
}

static void
test_attention_qkv (int n, int c, int heads, int h, int w)
{
  Pair q = P4 (n, c, h, w, 2.0, 24), k = P4 (n, c, h, w, 2.0, 25), v = P4 (n, c, h, w, 1.0, 26);
  float scale = 1.0f / sqrtf ((float) (c / heads));
  char *what = g_strdup_printf ("attention_qkv n%d c%d heads%d %dx%d", n, c, heads, h, w);
  check_rel (what, gfcg_op_attention_qkv (q.c, k.c, v.c, heads, scale),
             gfcg_op_attention_qkv (q.o, k.o, v.o, heads, scale));
  g_free (what);
  pair_free (q);
  pair_free (k);
  pair_free (v);
}

static void
test_group_norm (int n, int c, int h, int w, int groups, double shift)
{
  Pair x = pair_shift (n, c, h, w, 3.0, shift, 27), ga = P1 (c, 1.5, 28), be = P1 (c, 0.5, 29);
  for (int silu = 0; silu < 2; silu++)
    {
      char *what = g_strdup_printf ("group_norm %dx%dx%dx%d groups%d mean %g%s", n, c, h, w,
                                    groups, shift, silu ? " silu" : "");
      check_rel (what, gfcg_op_group_norm (x.c, groups, 1e-6f, ga.c, be.c, silu),
                 gfcg_op_group_norm (x.o, groups, 1e-6f, ga.o, be.o, silu));
      g_free (what);
    }
  pair_free (x);
  pair_free (ga);
  pair_free (be);
}

static void
test_maxpool (int n, int c, int h, int w, int k, int stride, int pad)
{
  /* All negative: a zero from the padding would win. */
  Pair x = pair_shift (n, c, h, w, 1.0, -5.0, 30);
  char *what = g_strdup_printf ("maxpool %dx%dx%dx%d k%d s%d p%d", n, c, h, w, k, stride, pad);
  check_rel (what, gfcg_op_maxpool (x.c, k, stride, pad), gfcg_op_maxpool (x.o, k, stride, pad));
  g_free (what);
  pair_free (x);
}

/* The decoder and classifier ops that run products (conv2d_ex, attention_qkv). */
static void
run_products_ex (void)
{
  test_conv_ex (2, 3, 9, 8, 5, 3, 2, 0, TRUE, 1, TRUE);    /* SAME s2: pads 1,0,1,1 */
  test_conv_ex (1, 4, 8, 8, 6, 3, 2, 0, TRUE, 1, FALSE);   /* SAME s2: pads 0,0,1,1 */
  test_conv_ex (1, 4, 7, 7, 6, 3, 1, 0, TRUE, 1, FALSE);   /* SAME s1 = pad 1 */
  test_conv_ex (2, 3, 11, 11, 8, 3, 2, 0, FALSE, 1, TRUE); /* stem-like, no padding */
  test_conv_ex (2, 6, 7, 5, 4, 3, 1, 1, FALSE, 2, TRUE);
  test_conv_ex (1, 8, 9, 9, 6, 3, 2, 0, TRUE, 2, FALSE);
  test_conv_ex (2, 8, 5, 5, 6, 1, 1, 0, FALSE, 2, TRUE);   /* grouped 1x1: no im2col */
  test_conv_ex (2, 6, 5, 7, 12, 3, 1, 1, FALSE, 6, FALSE); /* groups == C, 2 outputs each */
  test_conv_ex (2, 8, 9, 7, 8, 3, 1, 1, FALSE, 8, TRUE);   /* depthwise */
  test_conv_ex (1, 5, 8, 8, 5, 3, 2, 0, TRUE, 5, FALSE);   /* depthwise, SAME s2 */
  test_conv_ex (1, 4, 11, 11, 4, 5, 2, 0, TRUE, 4, TRUE);  /* depthwise 5x5, SAME s2 */
  test_conv_ex (1, 32, 16, 16, 16, 3, 1, 1, FALSE, 1, TRUE);
  /* Sized for the 16 KiB slices: one image at a time, and 56 pixels at a time. */
  test_conv_ex (2, 4, 10, 10, 6, 3, 1, 1, FALSE, 2, TRUE);
  test_conv_ex (2, 8, 12, 12, 8, 3, 1, 1, FALSE, 2, FALSE);
  test_attention_qkv (2, 16, 1, 8, 8);
  test_attention_qkv (1, 16, 2, 5, 7);
  test_attention_qkv (2, 16, 2, 5, 7); /* sliced: 3 heads, then 1 */
  test_attention_qkv (2, 8, 2, 3, 3);
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
  run_products_ex ();
  if (weights_only)
    return;
  test_group_norm (2, 64, 5, 7, 32, 0.0);
  test_group_norm (1, 32, 3, 5, 32, 4.0);  /* one channel per group */
  test_group_norm (1, 8, 100, 90, 2, 10.0); /* 36000 values a group: several slices */
  test_maxpool (2, 3, 9, 8, 3, 2, 1);
  test_maxpool (1, 2, 7, 7, 2, 2, 0);
  test_maxpool (1, 3, 5, 6, 3, 1, 1);
  {
    Pair x = P4 (2, 5, 7, 3, 8.0, 31);
    float scale[5] = { 0.5f, -1.25f, 2.0f, 0.0f, 3.5f }, shift[5] = { 0.1f, -2.0f, 0.0f, 1.0f, -0.3f };
    check_rel ("unary silu", gfcg_op_unary (x.c, GFCG_UNARY_SILU, 0.0f),
               gfcg_op_unary (x.o, GFCG_UNARY_SILU, 0.0f));
    check_rel ("unary relu6", gfcg_op_unary (x.c, GFCG_UNARY_RELU6, 0.0f),
               gfcg_op_unary (x.o, GFCG_UNARY_RELU6, 0.0f));
    check_rel ("unary tanh a=3", gfcg_op_unary (x.c, GFCG_UNARY_TANH, 3.0f),
               gfcg_op_unary (x.o, GFCG_UNARY_TANH, 3.0f));
    check_rel ("channel_affine", gfcg_op_channel_affine (x.c, scale, shift),
               gfcg_op_channel_affine (x.o, scale, shift));
    pair_free (x);
  }
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
  GfcgClOptions opts[4] = { { FALSE, FALSE }, { FALSE, TRUE }, { TRUE, FALSE }, { FALSE, FALSE } };
  const char *names[4] = { "", "[tiled] ", "[fp16] ", "[sliced] " };

  if (devs == NULL || devs->len == 0)
    {
      printf ("SKIP: no OpenCL device (%s)\n", error ? error->message : "none");
      return 77;
    }
  g_array_unref (devs);
  cpu = gfcg_backend_cpu_new (1);
  for (int v = 0; v < 4; v++)
    {
      /* Last: 16 KiB slices, so that im2col goes a few images or a few
       * pixels at a time and attention one head at a time. */
      if (v == 3)
        g_setenv ("GFCG_OPENCL_SLICE_KB", "16", TRUE);
      ocl = gfcg_backend_opencl_new (index, &opts[v], &error);
      if (ocl == NULL)
        {
          printf ("FAIL: opencl:%d: %s\n", index, error->message);
          return 1;
        }
      variant = names[v];
      tol = opts[v].fp16_weights ? 1e-2 : 1e-4; /* fp16: relative to max |y| */
      rtol = opts[v].fp16_weights ? 1e-2 : 1e-5;
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
