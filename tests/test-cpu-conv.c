/* test-cpu-conv.c — the CPU backend's convolutions on both of its paths
 * ("blas": im2col + OpenBLAS SGEMM; "onednn": oneDNN's direct kernels, in
 * builds with it) against a float64 direct convolution: every kind of
 * convolution the networks use (1x1, 3x3, 7x7, stride 2, symmetric and
 * TensorFlow SAME padding, groups, depthwise), batches 1 and 8 (oneDNN
 * 3.7.2 has computed 1x1 convolutions wrongly at batch >= 8 in one layout:
 * bench/onednn-1x1-check.c), 1 and 2 threads, with and without bias, and
 * every fused post-op (GfcgConvPost).  Tolerance 1e-4 max abs on outputs of
 * order 1.  Also: a weight tensor uploaded to again is repacked, and the
 * products of attention agree between the paths. */
#include "test-util.h"
#include "backend.h"
#include "gfcg/gfcg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TOL 1e-4

static int failures, checks;
static double worst[2];


typedef struct
{
  const char *name;
  int n, c, o, h, w, k, groups;
  GfcgConvParams p;
} Shape;

/* y [n, o, ho, wo] in float64, post included. */
static double *
reference (const Shape *s, const float *x, const float *w, const float *b, int ho, int wo,
           const GfcgConvPost *post, const float *res)
{
  int cg = s->c / s->groups, og = s->o / s->groups;
  gsize ny = (gsize) s->n * s->o * ho * wo;
  double *y = g_new (double, ny);
  for (int bn = 0; bn < s->n; bn++)
    for (int oc = 0; oc < s->o; oc++)
      for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
          {
            int g = oc / og;
            double acc = b != NULL ? b[oc] : 0.0;
            gsize i = (((gsize) bn * s->o + oc) * ho + oy) * wo + ox;
            for (int ci = 0; ci < cg; ci++)
              for (int ky = 0; ky < s->k; ky++)
                for (int kx = 0; kx < s->k; kx++)
                  {
                    int iy = oy * s->p.stride - s->p.pad_top + ky;
                    int ix = ox * s->p.stride - s->p.pad_left + kx;
                    if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                      continue;
                    acc += (double) w[(((gsize) oc * cg + ci) * s->k + ky) * s->k + kx] *
                           x[(((gsize) bn * s->c + g * cg + ci) * s->h + iy) * s->w + ix];
                  }
            if (post != NULL)
              {
                acc = post->scale * acc + (res != NULL ? post->res_scale * res[i] : 0.0);
                switch (post->act)
                  {
                  case GFCG_ACT_NONE:  break;
                  case GFCG_ACT_RELU:  acc = MAX (acc, 0.0); break;
                  case GFCG_ACT_RELU6: acc = CLAMP (acc, 0.0, 6.0); break;
                  case GFCG_ACT_SILU:  acc = acc / (1.0 + exp (-acc)); break;
                  case GFCG_ACT_CLIP:  acc = CLAMP (acc, post->lo, post->hi); break;
                  }
              }
            y[i] = acc;
          }
  return y;
}

static void
compare (const char *what, const char *path, const GfcgTensor *t, const double *ref, gsize n)
{
  float *got;
  double maxe = 0.0;
  checks++;
  if (t == NULL || t->numel != n)
    {
      printf ("FAIL %s [%s]: no result\n", what, path);
      failures++;
      return;
    }
  got = g_new (float, n);
  gfcg_tensor_download (t, got);
  for (gsize i = 0; i < n; i++)
    maxe = MAX (maxe, fabs (got[i] - ref[i]));
  g_free (got);
  worst[strcmp (path, "blas") != 0] = MAX (worst[strcmp (path, "blas") != 0], maxe);
  if (!(maxe <= TOL))
    {
      printf ("FAIL %s [%s]: max abs %.3g > %g\n", what, path, maxe, TOL);
      failures++;
    }
}

static void
run_shape (GfcgBackend *be, const char *path, const Shape *s, gboolean with_bias)
{
  int kk = s->k * s->k, cg = s->c / s->groups;
  gsize nx = (gsize) s->n * s->c * s->h * s->w, nw = (gsize) s->o * cg * kk;
  int ho = (s->h + s->p.pad_top + s->p.pad_bottom - s->k) / s->p.stride + 1;
  int wo = (s->w + s->p.pad_left + s->p.pad_right - s->k) / s->p.stride + 1;
  gsize ny = (gsize) s->n * s->o * ho * wo;
  float *x = test_rnd (nx, 1, 1.0), *w = test_rnd (nw, 2, sqrt (3.0 / (cg * kk))), *b = test_rnd (s->o, 3, 0.5);
  float *res = test_rnd (ny, 4, 1.0);
  GfcgTensor *tx = gfcg_tensor_from_host (be, 4, (int[]) { s->n, s->c, s->h, s->w }, x);
  GfcgTensor *tw = gfcg_tensor_from_host (be, 4, (int[]) { s->o, cg, s->k, s->k }, w);
  GfcgTensor *tb = with_bias ? gfcg_tensor_from_host (be, 1, (int[]) { s->o }, b) : NULL;
  GfcgTensor *tr = gfcg_tensor_from_host (be, 4, (int[]) { s->n, s->o, ho, wo }, res);
  const float *bb = with_bias ? b : NULL;
  GfcgConvPost posts[] = {
    { 1.0f, NULL, 0.0f, GFCG_ACT_RELU, 0, 0 },
    { 1.0f, NULL, 0.0f, GFCG_ACT_RELU6, 0, 0 },
    { 1.0f, NULL, 0.0f, GFCG_ACT_SILU, 0, 0 },
    { 0.7f, tr, 0.4f, GFCG_ACT_NONE, 0, 0 },         /* EDM2's mp_sum */
    { 1.0f, tr, 1.0f, GFCG_ACT_RELU, 0, 0 },         /* TAESD, ResNet-50 */
    { 0.6f, tr, 0.8f, GFCG_ACT_CLIP, -0.5f, 0.5f },  /* mp_sum then EDM2's clip */
    { 1.7f, NULL, 0.0f, GFCG_ACT_NONE, 0, 0 },
  };
  char *what;
  double *ref = reference (s, x, w, bb, ho, wo, NULL, NULL);
  GfcgTensor *y = s->groups == 1 && s->p.pad_top == s->p.pad_left &&
                  s->p.pad_top == s->p.pad_bottom && s->p.pad_top == s->p.pad_right
                  ? gfcg_op_conv2d (tx, tw, tb, s->p.stride, s->p.pad_top)
                  : gfcg_op_conv2d_ex (tx, tw, tb, &s->p);

  what = g_strdup_printf ("%s N%d%s", s->name, s->n, with_bias ? " bias" : "");
  compare (what, path, y, ref, ny);
  gfcg_tensor_free (y);
  g_free (ref);
  y = gfcg_op_conv2d_ex (tx, tw, tb, &s->p);
  ref = reference (s, x, w, bb, ho, wo, NULL, NULL);
  compare (what, path, y, ref, ny);
  gfcg_tensor_free (y);
  g_free (ref);
  g_free (what);
  for (guint i = 0; i < G_N_ELEMENTS (posts); i++)
    {
      what = g_strdup_printf ("%s N%d%s post %u", s->name, s->n, with_bias ? " bias" : "", i);
      ref = reference (s, x, w, bb, ho, wo, &posts[i], posts[i].residual ? res : NULL);
      y = gfcg_op_conv2d_post (tx, tw, tb, &s->p, &posts[i]);
      compare (what, path, y, ref, ny);
      gfcg_tensor_free (y);
      g_free (ref);
      g_free (what);
    }
  /* New weights in the same tensor: the packed copy must follow. */
  for (gsize i = 0; i < nw; i++)
    w[i] = -0.5f * w[i];
  gfcg_tensor_upload (tw, w);
  ref = reference (s, x, w, bb, ho, wo, NULL, NULL);
  y = gfcg_op_conv2d_ex (tx, tw, tb, &s->p);
  what = g_strdup_printf ("%s N%d%s (weights uploaded again)", s->name, s->n,
                          with_bias ? " bias" : "");
  compare (what, path, y, ref, ny);
  gfcg_tensor_free (y);
  g_free (ref);
  g_free (what);
  gfcg_tensor_free (tx);
  gfcg_tensor_free (tw);
  gfcg_tensor_free (tb);
  gfcg_tensor_free (tr);
  g_free (x);
  g_free (w);
  g_free (b);
  g_free (res);
}

/* attention (two products) on one path, as the host values. */
static float *
attention (GfcgBackend *be, const float *qkv, int n, int heads, int dim, int hw)
{
  GfcgTensor *t = gfcg_tensor_from_host (be, 4, (int[]) { n, 3 * heads * dim, hw, 1 }, qkv);
  GfcgTensor *y = gfcg_op_attention (t, heads, dim, 1e-4f);
  float *out = g_new (float, (gsize) n * heads * dim * hw);
  gfcg_tensor_download (y, out);
  gfcg_tensor_free (t);
  gfcg_tensor_free (y);
  return out;
}

int
main (void)
{
  GfcgBackend *be = gfcg_backend_cpu_new (2);
  const char *paths[] = { "blas", "onednn" };
  Shape shapes[] = {
    { "1x1", 1, 32, 48, 9, 7, 1, 1, { 1, 0, 0, 0, 0, 1 } },
    { "3x3", 1, 20, 24, 11, 13, 3, 1, { 1, 1, 1, 1, 1, 1 } },
    { "3x3 stride 2", 1, 16, 32, 12, 10, 3, 1, { 2, 1, 1, 1, 1, 1 } },
    { "3x3 stride 2 SAME", 1, 16, 24, 9, 7, 3, 1, { 0 } },
    { "1x1 stride 2", 1, 24, 40, 10, 10, 1, 1, { 2, 0, 0, 0, 0, 1 } },
    { "7x7 stride 2 pad 3", 1, 3, 16, 20, 18, 7, 1, { 2, 3, 3, 3, 3, 1 } },
    { "3x3 groups 2", 1, 12, 8, 9, 7, 3, 2, { 1, 1, 1, 1, 1, 2 } },
    { "depthwise 3x3", 1, 32, 32, 10, 9, 3, 32, { 1, 1, 1, 1, 1, 32 } },
    { "depthwise 3x3 stride 2 SAME", 1, 32, 32, 10, 9, 3, 32, { 0 } },
    { "3x3 from 5 channels", 1, 5, 64, 16, 16, 3, 1, { 1, 1, 1, 1, 1, 1 } },
    { "3x3 to 3 channels", 1, 64, 3, 16, 16, 3, 1, { 1, 1, 1, 1, 1, 1 } },
    { "1x1 960->320 at 7x7", 1, 960, 320, 7, 7, 1, 1, { 1, 0, 0, 0, 0, 1 } },
    /* oneDNN 3.7.2 dies (SIGFPE) making this one as a strided primitive */
    { "1x1 stride 2 512->1024 at 16x16", 1, 512, 1024, 16, 16, 1, 1, { 2, 0, 0, 0, 0, 1 } },
  };
  int status = 0;

  /* The SAME paddings depend on the input size. */
  shapes[3].p = gfcg_conv_params_same (3, 2, shapes[3].h, shapes[3].w);
  shapes[8].p = gfcg_conv_params_same (3, 2, shapes[8].h, shapes[8].w);
  shapes[8].p.groups = 32;
  for (guint pi = 0; pi < G_N_ELEMENTS (paths); pi++)
    {
      if (!gfcg_backend_cpu_set_conv (paths[pi]))
        {
          printf ("SKIP path %s: not in this build\n", paths[pi]);
          continue;
        }
      for (int threads = 1; threads <= 2; threads++)
        {
          gfcg_backend_cpu_set_threads (threads);
          for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
            for (int batch = 1; batch <= 8; batch += 7)
              {
                Shape s = shapes[si];
                s.n = batch;
                /* 1 thread: batch 1 only (the kernels are the same) */
                if (threads == 1 && batch > 1)
                  continue;
                run_shape (be, paths[pi], &s, TRUE);
                if (si < 2)
                  run_shape (be, paths[pi], &s, FALSE);
              }
        }
    }

  /* The attention products (SGEMM) agree between the paths. */
  if (gfcg_backend_cpu_set_conv ("onednn"))
    {
      int n = 2, heads = 2, dim = 16, hw = 64;
      float *qkv = test_rnd ((gsize) n * 3 * heads * dim * hw, 7, 1.0), *a, *b;
      double maxe = 0.0;
      gfcg_backend_cpu_set_conv ("blas");
      a = attention (be, qkv, n, heads, dim, hw);
      gfcg_backend_cpu_set_conv ("onednn");
      b = attention (be, qkv, n, heads, dim, hw);
      for (gsize i = 0; i < (gsize) n * heads * dim * hw; i++)
        maxe = MAX (maxe, fabs (a[i] - b[i]));
      checks++;
      if (!(maxe <= 1e-5))
        {
          printf ("FAIL attention: blas and onednn differ by %.3g\n", maxe);
          failures++;
        }
      g_free (qkv);
      g_free (a);
      g_free (b);
    }
  {
    GError *error = NULL;
    if (!gfcg_backend_take_error (be, &error))
      {
        printf ("FAIL backend: %s\n", error->message);
        g_error_free (error);
        failures++;
      }
  }
  gfcg_backend_free (be);
  printf ("cpu-conv: max abs error blas %.2g, onednn %.2g\n", worst[0], worst[1]);
  printf ("%d checks, %d failures\n", checks, failures);
  status = failures > 0;
  return status;
}
