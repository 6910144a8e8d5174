/* cmd-bench.c — `gfcg bench`: times network evaluations of a pack on a
 * device (never part of the tests).  One JSON object on stdout, a readable
 * summary on stderr; bench/bench.py runs it next to PyTorch. */
#include "gfcg-cli.h"

#include <math.h>
#include <string.h>

int
cli_bench (int argc, char **argv)
{
  char *pack_dir = NULL, *net = NULL, *device = NULL;
  int batch = 1, evals = 3, warmup = 1, threads = 0, steps = 32;
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name (default: the default pack)", "PACK" },
    { "net", 0, 0, G_OPTION_ARG_STRING, &net, "main (default), guide or uncond", "NET" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "auto, cpu or opencl:N[:fp16][:tiled]", "DEV" },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Images per network evaluation (1)", "N" },
    { "evals", 'n', 0, G_OPTION_ARG_INT, &evals, "Timed evaluations (3)", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &warmup, "Untimed evaluations first (1)", "N" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &steps, "Sampler steps for the per-image figure (32)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads (default: all cores)", "N" },
    { NULL }
  };
  GfcgContext *ctx = NULL;
  GfcgPack *pack = NULL;
  GError *error = NULL;
  int channels, res, label_dim, status = 1;
  gsize per;
  float *x = NULL, *sigma = NULL, *labels = NULL, *out = NULL;
  double *times = NULL, best = INFINITY, sum = 0.0;
  guint64 gemm_ns = 0, gemm_flops = 0;
  gsize peak_t = 0, peak_d = 0;
  char *desc = NULL;

  if (!cli_parse ("bench", "", "Times network evaluations of a pack on a device: per "
                  "evaluation, per image, peak memory, GEMM share (GFCG_OPENCL_PROFILE=1).",
                  entries, &argc, &argv))
    return 2;
  if (batch < 1 || batch > 256 || evals < 1 || evals > 10000 || warmup < 0 || steps < 1)
    {
      g_printerr ("gfcg bench: --batch 1..256, --evals >= 1, --warmup >= 0, --steps >= 1\n");
      return 2;
    }
  if (net == NULL)
    net = g_strdup ("main");
  if ((pack = cli_load_pack ("bench", pack_dir, device, &ctx)) == NULL)
    goto done;
  if (threads > 0)
    gfcg_context_set_threads (ctx, threads);
  if (!gfcg_pack_get_net_shape (pack, net, &channels, &res, &label_dim, &error))
    {
      cli_fail ("bench", error);
      goto done;
    }
  per = (gsize) channels * res * res;
  x = g_new (float, per * batch);
  out = g_new (float, per * batch);
  sigma = g_new (float, batch);
  labels = label_dim > 0 ? g_new0 (float, (gsize) label_dim * batch) : NULL;
  {
    GRand *r = g_rand_new_with_seed (1);
    for (gsize i = 0; i < per * batch; i++)
      x[i] = (float) (g_rand_double_range (r, -1.0, 1.0) * 2.0);
    g_rand_free (r);
  }
  for (int i = 0; i < batch; i++)
    {
      sigma[i] = 1.0f;
      if (labels != NULL)
        labels[(gsize) i * label_dim + i % label_dim] = 1.0f;
    }
  times = g_new (double, evals);
  for (int i = 0; i < warmup + evals; i++)
    {
      gint64 t0 = g_get_monotonic_time ();
      guint64 ns, fl;
      if (!gfcg_pack_denoise (pack, net, batch, x, sigma, labels, out, &error))
        {
          cli_fail ("bench", error);
          goto done;
        }
      ns = gfcg_context_sync (ctx, &fl);
      if (i < warmup)
        continue;
      times[i - warmup] = (g_get_monotonic_time () - t0) / 1e3;
      best = MIN (best, times[i - warmup]);
      sum += times[i - warmup];
      gemm_ns += ns;
      gemm_flops += fl;
    }
  gfcg_context_get_memory (ctx, &peak_t, &peak_d);
  desc = gfcg_context_describe (ctx);
  {
    double mean = sum / evals, gemm_ms = gemm_ns / 1e6 / evals;
    double img_s = best / batch * (2 * steps - 1) / 1e3;
    g_printerr ("gfcg bench: %s\n  %s net '%s', batch %d: best %.2f ms, mean %.2f ms per "
                "evaluation (%.2f ms per image-evaluation); %.1f s per image at %d steps\n"
                "  peak memory: tensors %.1f MiB, device %.1f MiB\n",
                desc, gfcg_pack_get_name (pack), net, batch, best, mean, best / batch, img_s,
                steps, peak_t / 1048576.0, peak_d / 1048576.0);
    if (gemm_ns > 0)
      g_printerr ("  GEMM: %.2f ms per evaluation (%.0f%% of the mean), %.1f GFLOP/s\n", gemm_ms,
                  100.0 * gemm_ms / mean, gemm_flops / (double) gemm_ns);
    printf ("{\"device\": \"%s\", \"backend\": \"%s\", \"pack\": \"%s\", \"net\": \"%s\", "
            "\"batch\": %d, \"evals\": %d, \"best_ms\": %.4f, \"mean_ms\": %.4f, "
            "\"per_image_eval_ms\": %.4f, \"per_image_s\": %.4f, \"steps\": %d, "
            "\"peak_tensor_bytes\": %" G_GSIZE_FORMAT ", \"peak_device_bytes\": %" G_GSIZE_FORMAT
            ", \"gemm_ms\": %.4f, \"gemm_gflops\": %.3f}\n",
            device != NULL ? device : "auto", gfcg_context_get_backend (ctx),
            gfcg_pack_get_name (pack), net, batch, evals, best, mean, best / batch, img_s, steps,
            peak_t, peak_d, gemm_ms, gemm_ns > 0 ? gemm_flops / (double) gemm_ns : 0.0);
  }
  status = 0;

done:
  g_free (desc);
  g_free (times);
  g_free (x);
  g_free (out);
  g_free (sigma);
  g_free (labels);
  gfcg_pack_free (pack);
  gfcg_context_free (ctx);
  g_free (pack_dir);
  g_free (net);
  g_free (device);
  return status;
}
