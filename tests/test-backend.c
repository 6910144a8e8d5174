/* test-backend.c — the common op layer (engine/backend.c) without a device.
 *
 * A backend may leave the decoder and classifier ops (conv2d_ex, group_norm,
 * unary, maxpool, channel_affine, attention_qkv) NULL; backend.c then runs
 * the CPU version on host copies (run_on_host).  A CPU backend with those
 * six entries cleared must give exactly the full CPU backend's results, and
 * describe, memory and sync must answer through the op table. */
#include "backend.h"
#include "gfcg/gfcg.h"

#include <stdio.h>
#include <string.h>

static int failures, checks;

static GfcgTensor *
rnd4 (GfcgBackend *be, int n, int c, int h, int w, guint32 seed)
{
  GRand *r = g_rand_new_with_seed (seed);
  gsize numel = (gsize) n * c * h * w;
  float *v = g_new (float, numel);
  GfcgTensor *t;
  for (gsize i = 0; i < numel; i++)
    v[i] = (float) g_rand_double_range (r, -2.0, 2.0);
  t = gfcg_tensor_from_host (be, 4, (int[]) { n, c, h, w }, v);
  g_rand_free (r);
  g_free (v);
  return t;
}

/* Bit-identical: the same CPU code ran on the same numbers. */
static void
same (const char *what, GfcgTensor *a, GfcgTensor *b)
{
  float *x, *y;
  checks++;
  if (a == NULL || b == NULL || a->numel != b->numel)
    {
      printf ("FAIL %s: no result\n", what);
      failures++;
      return;
    }
  x = g_new (float, a->numel);
  y = g_new (float, b->numel);
  gfcg_tensor_download (a, x);
  gfcg_tensor_download (b, y);
  if (memcmp (x, y, a->numel * sizeof (float)) != 0)
    {
      printf ("FAIL %s: the host fallback differs from the CPU op\n", what);
      failures++;
    }
  g_free (x);
  g_free (y);
  gfcg_tensor_free (a);
  gfcg_tensor_free (b);
}

int
main (void)
{
  GfcgBackendOps lean = *gfcg_backend_cpu_ops ();
  GfcgBackend *full = gfcg_backend_cpu_new (1), *part = gfcg_backend_cpu_new (1);
  GfcgTensor *x[2], *w[2], *b[2], *g[2], *q[2], *k[2];
  GfcgBackend *be[2] = { full, part };
  GfcgConvParams cp = gfcg_conv_params_same (3, 2, 9, 7);
  float scale[6] = { 1, -2, 0.5f, 3, 0, 1 }, shift[6] = { 0, 1, -1, 2, 0.25f, 0 };
  gsize now = 1, peak = 1;
  guint64 flops = 1;
  char *d;

  lean.conv2d_ex = NULL;
  lean.group_norm = NULL;
  lean.unary = NULL;
  lean.maxpool = NULL;
  lean.channel_affine = NULL;
  lean.attention_qkv = NULL;
  part->ops = &lean;
  for (int i = 0; i < 2; i++)
    {
      x[i] = rnd4 (be[i], 2, 6, 9, 7, 1);
      w[i] = rnd4 (be[i], 4, 3, 3, 3, 2);   /* groups 2: [O, C / 2, 3, 3] */
      b[i] = rnd4 (be[i], 1, 4, 1, 1, 3);
      g[i] = rnd4 (be[i], 1, 6, 1, 1, 4);
      q[i] = rnd4 (be[i], 2, 6, 4, 4, 5);
      k[i] = rnd4 (be[i], 2, 6, 4, 4, 6);
    }
  cp.groups = 2;
  same ("conv2d_ex", gfcg_op_conv2d_ex (x[0], w[0], b[0], &cp),
        gfcg_op_conv2d_ex (x[1], w[1], b[1], &cp));
  same ("group_norm", gfcg_op_group_norm (x[0], 3, 1e-5f, g[0], g[0], TRUE),
        gfcg_op_group_norm (x[1], 3, 1e-5f, g[1], g[1], TRUE));
  same ("unary", gfcg_op_unary (x[0], GFCG_UNARY_TANH, 1.5f),
        gfcg_op_unary (x[1], GFCG_UNARY_TANH, 1.5f));
  same ("maxpool", gfcg_op_maxpool (x[0], 3, 2, 1), gfcg_op_maxpool (x[1], 3, 2, 1));
  same ("channel_affine", gfcg_op_channel_affine (x[0], scale, shift),
        gfcg_op_channel_affine (x[1], scale, shift));
  same ("attention_qkv", gfcg_op_attention_qkv (q[0], k[0], q[0], 2, 0.3f),
        gfcg_op_attention_qkv (q[1], k[1], q[1], 2, 0.3f));

  /* describe, memory and sync through the table: the CPU has no device
   * memory and nothing queued. */
  checks++;
  d = gfcg_backend_describe (full);
  gfcg_backend_memory (full, &now, &peak);
  if (!(g_str_has_prefix (d, "cpu (OpenBLAS, 1 thread)") ||
        (g_str_has_prefix (d, "cpu (oneDNN ") && strstr (d, ", 1 thread)") != NULL)) ||
      now != 0 || peak != 0 ||
      gfcg_backend_sync (full, &flops) != 0 || flops != 0)
    {
      printf ("FAIL describe/memory/sync: '%s', %zu, %zu, %" G_GUINT64_FORMAT "\n", d, now, peak,
              flops);
      failures++;
    }
  g_free (d);

  for (int i = 0; i < 2; i++)
    {
      GError *error = NULL;
      if (!gfcg_backend_take_error (be[i], &error))
        {
          printf ("FAIL backend %d: %s\n", i, error->message);
          g_error_free (error);
          failures++;
        }
      gfcg_tensor_free (x[i]);
      gfcg_tensor_free (w[i]);
      gfcg_tensor_free (b[i]);
      gfcg_tensor_free (g[i]);
      gfcg_tensor_free (q[i]);
      gfcg_tensor_free (k[i]);
      gfcg_backend_free (be[i]);
    }
  printf ("%d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
