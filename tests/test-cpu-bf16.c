/* test-cpu-bf16.c — cpu:bf16's convolutions against the fp32 CPU backend's
 * (the oneDNN path), on small shapes of every kind the networks use, with
 * each fused post-op, batches 1 and 2, 1 and 2 threads.
 *
 * Tolerance: relative RMS error ||y_bf16 - y_fp32|| / ||y_fp32|| <= 1e-2.
 * bf16 keeps 8 significant bits, so rounding x and w costs each product a
 * relative error of up to 2 * 2^-8 (RMS about 3e-3); the fp32 sums add
 * nothing visible.  Those errors have random signs like the products
 * themselves, so the sum's error grows as sqrt(K) with the reduction
 * length K exactly as the sum does: the ratio stays near 3e-3 whatever K
 * (5 to 1152 here), and 1e-2 leaves 3x of room without letting a wrong
 * kernel (a missed block, a wrong post-op: errors of order 1) through.
 * The worst single output is held to 5e-2 of the largest |y_fp32|.
 *
 * Where bf16 must be what ran (shapes with a bf16 kernel), the error must
 * also be above 1e-4: fp32 is at 1e-7, so a silent fp32 run fails.  Also:
 * the weights are packed to bf16 once (changing the data behind the
 * packed copy changes nothing until the tensor is uploaded to), and
 * cpu:bf16 refuses the OpenBLAS path.  Exit 77 (skip) where the CPU or the
 * build has no bf16. */
#include "test-util.h"
#include "backend.h"
#include "gfcg/gfcg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define REL_RMS_TOL 1e-2
#define REL_MAX_TOL 5e-2
#define MIN_BF16_ERR 1e-4 /* below: the convolution ran in fp32 */

static int failures, checks;
static double worst_rms;


typedef struct
{
  const char *name;
  int n, c, o, h, w, k;
  GfcgConvParams p;
  gboolean must_bf16; /* a bf16 kernel exists for it on avx512_core_bf16 */
} Shape;

static float *
download (GfcgTensor *t)
{
  float *v = g_new (float, t->numel);
  gfcg_tensor_download (t, v);
  return v;
}

/* got against want (n values): relative RMS and max errors; FALSE when out
 * of tolerance (or, must_bf16, suspiciously exact). */
static void
compare (const char *what, const float *got, const float *want, gsize n, gboolean must_bf16)
{
  double se = 0.0, sw = 0.0, maxe = 0.0, maxw = 0.0, rms;
  for (gsize i = 0; i < n; i++)
    {
      double e = (double) got[i] - want[i];
      se += e * e;
      sw += (double) want[i] * want[i];
      maxe = MAX (maxe, fabs (e));
      maxw = MAX (maxw, fabs (want[i]));
    }
  rms = sqrt (se / MAX (sw, 1e-30));
  checks++;
  worst_rms = MAX (worst_rms, rms);
  if (!(rms <= REL_RMS_TOL) || !(maxe <= REL_MAX_TOL * maxw))
    {
      printf ("FAIL %s: relative RMS %.3g (tol %g), max %.3g of %.3g\n", what, rms, REL_RMS_TOL,
              maxe, maxw);
      failures++;
    }
  else if (must_bf16 && rms < MIN_BF16_ERR)
    {
      printf ("FAIL %s: relative RMS %.3g: this ran in fp32, not bf16\n", what, rms);
      failures++;
    }
}

/* One shape on the fp32 and bf16 backends, plain and with each post-op. */
static void
run_shape (GfcgBackend *f32, GfcgBackend *b16, const Shape *s)
{
  int kk = s->k * s->k, cg = s->c / s->p.groups;
  int ho = (s->h + s->p.pad_top + s->p.pad_bottom - s->k) / s->p.stride + 1;
  int wo = (s->w + s->p.pad_left + s->p.pad_right - s->k) / s->p.stride + 1;
  gsize nx = (gsize) s->n * s->c * s->h * s->w, nw = (gsize) s->o * cg * kk;
  gsize ny = (gsize) s->n * s->o * ho * wo;
  float *x = test_rnd (nx, 1, 1.0), *w = test_rnd (nw, 2, sqrt (3.0 / (cg * kk))), *b = test_rnd (s->o, 3, 0.5);
  float *res = test_rnd (ny, 4, 1.0);
  GfcgBackend *be[2] = { f32, b16 };
  GfcgTensor *tx[2], *tw[2], *tb[2], *tr[2];
  GfcgConvPost posts[] = {
    { 1.0f, NULL, 0.0f, GFCG_ACT_NONE, 0, 0 },
    { 1.0f, NULL, 0.0f, GFCG_ACT_SILU, 0, 0 },
    { 0.7f, NULL, 0.4f, GFCG_ACT_NONE, 0, 0 },         /* EDM2's mp_sum (residual below) */
    { 1.0f, NULL, 1.0f, GFCG_ACT_RELU, 0, 0 },         /* TAESD, ResNet-50 */
    { 0.6f, NULL, 0.8f, GFCG_ACT_CLIP, -0.5f, 0.5f },  /* mp_sum then EDM2's clip */
  };

  for (int i = 0; i < 2; i++)
    {
      tx[i] = gfcg_tensor_from_host (be[i], 4, (int[]) { s->n, s->c, s->h, s->w }, x);
      tw[i] = gfcg_tensor_from_host (be[i], 4, (int[]) { s->o, cg, s->k, s->k }, w);
      tb[i] = gfcg_tensor_from_host (be[i], 1, (int[]) { s->o }, b);
      tr[i] = gfcg_tensor_from_host (be[i], 4, (int[]) { s->n, s->o, ho, wo }, res);
    }
  for (guint pi = 0; pi < G_N_ELEMENTS (posts); pi++)
    {
      float *y[2];
      char *what = g_strdup_printf ("%s N%d post %u", s->name, s->n, pi);
      for (int i = 0; i < 2; i++)
        {
          GfcgConvPost post = posts[pi];
          GfcgTensor *t;
          if (pi >= 2)
            post.residual = tr[i];
          t = pi == 0 ? gfcg_op_conv2d_ex (tx[i], tw[i], tb[i], &s->p)
                      : gfcg_op_conv2d_post (tx[i], tw[i], tb[i], &s->p, &post);
          y[i] = t != NULL ? download (t) : g_new0 (float, ny);
          gfcg_tensor_free (t);
        }
      compare (what, y[1], y[0], ny, s->must_bf16);
      g_free (y[0]);
      g_free (y[1]);
      g_free (what);
    }
  gfcg_tensor_free (tx[0]), gfcg_tensor_free (tw[0]), gfcg_tensor_free (tb[0]);
  gfcg_tensor_free (tr[0]);
  gfcg_tensor_free (tx[1]), gfcg_tensor_free (tw[1]), gfcg_tensor_free (tb[1]);
  gfcg_tensor_free (tr[1]);
  g_free (x), g_free (w), g_free (b), g_free (res);
}

/* The bf16 weights are made once: new values behind the tensor's back do
 * not reach the convolution (it reads the packed copy), an upload does. */
static void
packed_once (GfcgBackend *b16)
{
  Shape s = { "3x3 32->32", 1, 32, 32, 12, 12, 3, { 1, 1, 1, 1, 1, 1 }, TRUE };
  gsize nw = 32 * 32 * 9;
  float *x = test_rnd (32 * 144, 5, 1.0), *w = test_rnd (nw, 6, 0.06), *w2 = g_new (float, nw);
  GfcgTensor *tx = gfcg_tensor_from_host (b16, 4, (int[]) { 1, 32, 12, 12 }, x);
  GfcgTensor *tw = gfcg_tensor_from_host (b16, 4, (int[]) { 32, 32, 3, 3 }, w);
  GfcgTensor *y0 = gfcg_op_conv2d_ex (tx, tw, NULL, &s.p), *y1, *y2;
  float *v0, *v1, *v2;
  gboolean same = TRUE, changed = FALSE;

  for (gsize i = 0; i < nw; i++)
    w2[i] = -w[i];
  memcpy (tw->data, w2, nw * sizeof (float)); /* behind the packed copy's back */
  y1 = gfcg_op_conv2d_ex (tx, tw, NULL, &s.p);
  gfcg_tensor_upload (tw, w2);
  y2 = gfcg_op_conv2d_ex (tx, tw, NULL, &s.p);
  v0 = download (y0), v1 = download (y1), v2 = download (y2);
  for (gsize i = 0; i < y0->numel; i++)
    {
      same = same && v0[i] == v1[i];
      changed = changed || v2[i] != v0[i];
    }
  checks += 2;
  if (!same)
    {
      printf ("FAIL packed once: the weights were converted again on the second call\n");
      failures++;
    }
  if (!changed)
    {
      printf ("FAIL packed once: new weights uploaded did not reach the convolution\n");
      failures++;
    }
  g_free (v0), g_free (v1), g_free (v2);
  gfcg_tensor_free (y0), gfcg_tensor_free (y1), gfcg_tensor_free (y2);
  gfcg_tensor_free (tx), gfcg_tensor_free (tw);
  g_free (x), g_free (w), g_free (w2);
}

int
main (void)
{
  GfcgBackend *f32 = gfcg_backend_cpu_new (2), *b16 = gfcg_backend_cpu_new (2);
  GError *error = NULL;
  Shape shapes[] = {
    { "1x1", 1, 32, 48, 9, 7, 1, { 1, 0, 0, 0, 0, 1 }, TRUE },
    { "3x3 32->24", 1, 32, 24, 11, 13, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 20->24 (not whole blocks)", 1, 20, 24, 11, 13, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 stride 2", 1, 16, 32, 12, 10, 3, { 2, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 from 5 channels", 1, 5, 64, 16, 16, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 to 3 channels", 1, 64, 3, 16, 16, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "1x1 960->320 at 7x7", 1, 960, 320, 7, 7, 1, { 1, 0, 0, 0, 0, 1 }, TRUE },
    { "1x1 stride 2", 1, 24, 40, 10, 10, 1, { 2, 0, 0, 0, 0, 1 }, TRUE },
    { "depthwise 3x3", 1, 32, 32, 10, 9, 3, { 1, 1, 1, 1, 1, 32 }, FALSE },
    /* jit_bf16 got these wrong (10-35%: bf16_tail in cpu-onednn.c) */
    { "3x3 20->32", 1, 20, 32, 11, 13, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 16->8", 1, 16, 8, 11, 13, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
    { "3x3 16->24 stride 2", 1, 16, 24, 11, 13, 3, { 2, 1, 1, 1, 1, 1 }, TRUE },
    /* EDM2-XS's widest 3x3 (K = 4608) at its 8x8 level */
    { "3x3 512->512 at 8x8", 1, 512, 512, 8, 8, 3, { 1, 1, 1, 1, 1, 1 }, TRUE },
  };

  if (!gfcg_backend_cpu_set_bf16 (b16, &error))
    {
      printf ("SKIP cpu-bf16: %s\n", error->message);
      g_error_free (error);
      gfcg_backend_free (f32);
      gfcg_backend_free (b16);
      return 77;
    }
  for (int threads = 1; threads <= 2; threads++)
    {
      gfcg_backend_cpu_set_threads (threads);
      for (guint si = 0; si < G_N_ELEMENTS (shapes); si++)
        for (int batch = 1; batch <= 2; batch++)
          {
            Shape s = shapes[si];
            s.n = batch;
            if (threads == 1 && batch > 1)
              continue;
            run_shape (f32, b16, &s);
          }
    }
  packed_once (b16);

  /* bf16 needs the oneDNN path: refused with the reason when it is off. */
  gfcg_backend_cpu_set_conv ("blas");
  {
    GfcgBackend *other = gfcg_backend_cpu_new (1);
    checks++;
    if (gfcg_backend_cpu_set_bf16 (other, &error))
      {
        printf ("FAIL cpu:bf16 accepted with GFCG_CPU_CONV=blas\n");
        failures++;
      }
    else if (strstr (error->message, "GFCG_CPU_CONV=blas") == NULL)
      {
        printf ("FAIL cpu:bf16 with blas: unclear error '%s'\n", error->message);
        failures++;
      }
    g_clear_error (&error);
    gfcg_backend_free (other);
  }
  gfcg_backend_cpu_set_conv ("onednn");

  for (int i = 0; i < 2; i++)
    if (!gfcg_backend_take_error (i == 0 ? f32 : b16, &error))
      {
        printf ("FAIL backend: %s\n", error->message);
        g_clear_error (&error);
        failures++;
      }
  gfcg_backend_free (f32);
  gfcg_backend_free (b16);
  printf ("cpu-bf16: worst relative RMS error against fp32 %.2g (tol %g)\n", worst_rms,
          REL_RMS_TOL);
  printf ("%d checks, %d failures\n", checks, failures);
  return failures > 0;
}
