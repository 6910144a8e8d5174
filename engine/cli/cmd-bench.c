/* cmd-bench.c — `gfcg bench`: times network evaluations of a pack on a
 * device (never part of the tests).  One JSON object on stdout, a readable
 * summary on stderr; bench/bench.py runs it next to PyTorch.  --net picks a
 * UNet (main, guide, uncond), a latent pack's decoder or preview (input:
 * network-space latents of main's shape), its encoder or preview-encoder
 * (input: pictures at the pack's resolution) or the classifier (input:
 * images at the pack's resolution, which it resizes to its own). */
#include "gfcg-cli.h"
#include "gfcg/gfcg-json.h"

#include <math.h>
#include <string.h>

typedef enum { NET_UNET, NET_DECODER, NET_ENCODER, NET_CLASSIFIER } NetKind;

/* One evaluation of the chosen network on x (outputs into out). */
static gboolean
evaluate (GfcgPack *pack, NetKind kind, const char *net, int batch, int res, const float *x,
          const float *sigma, const float *labels, float *out, GError **error)
{
  switch (kind)
    {
    case NET_DECODER:
      return gfcg_pack_decode (pack, net, batch, res, res, x, out, NULL, error) > 0;
    case NET_ENCODER:
      return gfcg_pack_encode (pack, net, batch, res, res, x, out, error) > 0;
    case NET_CLASSIFIER:
      return gfcg_pack_classify (pack, batch, res, res, x, out, error) > 0;
    default:
      return gfcg_pack_denoise (pack, net, batch, x, sigma, labels, out, error);
    }
}

int
cli_bench (int argc, char **argv)
{
  char *pack_dir = NULL, *net = NULL, *device = NULL;
  int batch = 1, evals = 3, warmup = 1, threads = 0, steps = 32;
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name (default: the default pack)", "PACK" },
    { "net", 0, 0, G_OPTION_ARG_STRING, &net, "main (default), guide, uncond, decoder, preview, encoder, preview-encoder or classifier", "NET" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "auto, cpu, cpu:bf16 or opencl:N[:fp16][:tiled]", "DEV" },
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
  int channels, res, label_dim = 0, status = 1;
  NetKind kind = NET_UNET;
  gsize per, per_out;
  float *x = NULL, *sigma = NULL, *labels = NULL, *out = NULL;
  double *times = NULL, best = INFINITY, sum = 0.0;
  guint64 gemm_ns = 0, gemm_flops = 0;
  GfcgCpuCounters cpu = { 0 }, cpu_best = { 0 };
  gboolean on_cpu;
  double sgemm_blas = 0.0, sgemm_dnn = 0.0;
  gsize peak_t = 0, peak_d = 0;
  char *desc = NULL;

  if (!cli_parse ("bench", "", "Times network evaluations of a pack on a device: per "
                  "evaluation, per image, peak memory, GEMM share (GFCG_OPENCL_PROFILE=1).",
                  entries, &argc, &argv))
    return 2;
  /* --threads 0 is the documented "all cores"; a negative count is an error. */
  if (batch < 1 || batch > 256 || evals < 1 || evals > 10000 || warmup < 0 || warmup > 10000 ||
      steps < 1 || steps > 1000 || threads < 0)
    {
      g_printerr ("gfcg bench: --batch 1..256, --evals 1..10000, --warmup 0..10000, "
                  "--steps 1..1000, --threads >= 0 (0: all cores)\n");
      return 2;
    }
  if (net == NULL)
    net = g_strdup ("main");
  if ((pack = cli_load_pack ("bench", pack_dir, device, &ctx)) == NULL)
    goto done;
  if (threads > 0)
    gfcg_context_set_threads (ctx, threads);
  if (strcmp (net, "decoder") == 0 || strcmp (net, "preview") == 0)
    {
      /* Latents of the main network's shape -> pictures f times larger. */
      int f = gfcg_pack_decode (pack, net, 0, 0, 0, NULL, NULL, NULL, &error);
      if (f < 0 || !gfcg_pack_get_net_shape (pack, "main", &channels, &res, NULL, &error))
        {
          cli_fail ("bench", error);
          goto done;
        }
      kind = NET_DECODER;
      per_out = (gsize) 3 * res * f * res * f;
    }
  else if (strcmp (net, "encoder") == 0 || strcmp (net, "preview-encoder") == 0)
    {
      /* Pictures at the pack's resolution -> latents of the main network's shape. */
      int f = gfcg_pack_encode (pack, net, 0, 0, 0, NULL, NULL, &error), lc, lr;
      if (f < 0 || !gfcg_pack_get_net_shape (pack, "main", &lc, &lr, NULL, &error))
        {
          cli_fail ("bench", error);
          goto done;
        }
      kind = NET_ENCODER;
      channels = 3;
      res = lr * f;
      per_out = (gsize) lc * lr * lr;
    }
  else if (strcmp (net, "classifier") == 0)
    {
      int k = gfcg_pack_classify (pack, 0, 0, 0, NULL, NULL, &error);
      if (k < 0)
        {
          cli_fail ("bench", error);
          goto done;
        }
      kind = NET_CLASSIFIER;
      channels = 3;
      res = gfcg_pack_get_resolution (pack);
      per_out = k;
    }
  else if (gfcg_pack_get_net_shape (pack, net, &channels, &res, &label_dim, &error))
    per_out = (gsize) channels * res * res;
  else
    {
      cli_fail ("bench", error);
      goto done;
    }
  per = (gsize) channels * res * res;
  x = g_new (float, per * batch);
  out = g_new (float, per_out * batch);
  sigma = g_new (float, batch);
  labels = label_dim > 0 ? g_new0 (float, (gsize) label_dim * batch) : NULL;
  {
    GRand *r = g_rand_new_with_seed (1);
    /* Images in [-1, 1]; noisy UNet inputs and latents a little wider. */
    double scale = kind == NET_CLASSIFIER || kind == NET_ENCODER ? 1.0 : 2.0;
    for (gsize i = 0; i < per * batch; i++)
      x[i] = (float) (g_rand_double_range (r, -1.0, 1.0) * scale);
    g_rand_free (r);
  }
  for (int i = 0; i < batch; i++)
    {
      sigma[i] = 1.0f;
      if (labels != NULL)
        labels[(gsize) i * label_dim + i % label_dim] = 1.0f;
    }
  times = g_new (double, evals);
  on_cpu = strcmp (gfcg_context_get_backend (ctx), "cpu") == 0;
  for (int i = 0; i < warmup + evals; i++)
    {
      gint64 t0 = g_get_monotonic_time ();
      guint64 ns, fl;
      gfcg_cpu_take_counters (&cpu);
      if (!evaluate (pack, kind, net, batch, res, x, sigma, labels, out, &error))
        {
          cli_fail ("bench", error);
          goto done;
        }
      ns = gfcg_context_sync (ctx, &fl);
      gfcg_cpu_take_counters (&cpu);
      if (i < warmup)
        continue;
      times[i - warmup] = (g_get_monotonic_time () - t0) / 1e3;
      if (times[i - warmup] < best)
        cpu_best = cpu; /* the products of the best evaluation */
      best = MIN (best, times[i - warmup]);
      sum += times[i - warmup];
      gemm_ns += ns;
      gemm_flops += fl;
    }
  gfcg_context_get_memory (ctx, &peak_t, &peak_d);
  desc = gfcg_context_describe (ctx);
  if (on_cpu)
    {
      /* The machine's SGEMM rate at the same thread count, measured now. */
      sgemm_blas = gfcg_cpu_sgemm_gflops ("openblas", 2048, 5, threads);
      sgemm_dnn = gfcg_cpu_sgemm_gflops ("onednn", 2048, 5, threads);
    }
  {
    double mean = sum / evals, gemm_ms = gemm_ns / 1e6 / evals;
    /* Sampling costs 2 steps - 1 UNet evaluations; the other networks run a
     * different number of times per picture, so they get no such figure. */
    double img_s = kind == NET_UNET ? best / batch * (2 * steps - 1) / 1e3 : 0.0;
    char *per_img = kind == NET_UNET
                    ? g_strdup_printf ("; %.1f s per image at %d steps", img_s, steps)
                    : g_strdup ("");
    g_printerr ("gfcg bench: %s\n  %s net '%s', batch %d: best %.2f ms, mean %.2f ms per "
                "evaluation (%.2f ms per image-evaluation)%s\n"
                "  peak memory: tensors %.1f MiB, device %.1f MiB\n",
                desc, gfcg_pack_get_name (pack), net, batch, best, mean, best / batch, per_img,
                peak_t / 1048576.0, peak_d / 1048576.0);
    g_free (per_img);
    double flops = (double) cpu_best.conv_flops + cpu_best.gemm_flops;
    double net_gflops = flops / (best * 1e6), sgemm = MAX (sgemm_blas, sgemm_dnn);
    double conv_gflops = cpu_best.conv_ns > 0 ? cpu_best.conv_flops / (double) cpu_best.conv_ns : 0.0;
    if (gemm_ns > 0)
      g_printerr ("  GEMM: %.2f ms per evaluation (%.0f%% of the mean), %.1f GFLOP/s\n", gemm_ms,
                  100.0 * gemm_ms / mean, gemm_flops / (double) gemm_ns);
    if (on_cpu && flops > 0)
      {
        g_printerr ("  %.2f GFLOP per evaluation: %.1f GFLOP/s = %.0f%% of this machine's fp32 "
                    "SGEMM rate (%.1f GFLOP/s: OpenBLAS %.1f, oneDNN %.1f; %d thread%s)\n",
                    flops / 1e9, net_gflops, 100.0 * net_gflops / sgemm, sgemm, sgemm_blas,
                    sgemm_dnn, gfcg_cpu_threads (), gfcg_cpu_threads () == 1 ? "" : "s");
        g_printerr ("  convolutions (%s): %.0f ms, %.1f GFLOP/s = %.0f%% of SGEMM; other "
                    "products %.0f ms\n", gfcg_cpu_conv_path (), cpu_best.conv_ns / 1e6,
                    conv_gflops, 100.0 * conv_gflops / sgemm, cpu_best.gemm_ns / 1e6);
      }
    {
      /* Device names are the user's text: built and escaped, not printf'd. */
      JsonObject *o = json_object_new ();
      JsonNode *root = json_node_init_object (json_node_alloc (), o);
      char *text;
      json_object_set_string_member (o, "device", device != NULL ? device : "auto");
      json_object_set_string_member (o, "backend", gfcg_context_get_backend (ctx));
      json_object_set_string_member (o, "pack", gfcg_pack_get_name (pack));
      json_object_set_string_member (o, "net", net);
      json_object_set_int_member (o, "batch", batch);
      json_object_set_int_member (o, "evals", evals);
      json_object_set_double_member (o, "best_ms", best);
      json_object_set_double_member (o, "mean_ms", mean);
      json_object_set_double_member (o, "per_image_eval_ms", best / batch);
      json_object_set_double_member (o, "per_image_s", img_s);
      json_object_set_int_member (o, "steps", steps);
      json_object_set_int_member (o, "peak_tensor_bytes", (gint64) peak_t);
      json_object_set_int_member (o, "peak_device_bytes", (gint64) peak_d);
      json_object_set_double_member (o, "gemm_ms", gemm_ms);
      json_object_set_double_member (o, "gemm_gflops",
                                     gemm_ns > 0 ? gemm_flops / (double) gemm_ns : 0.0);
      if (on_cpu)
        {
          json_object_set_string_member (o, "cpu_conv_path", gfcg_cpu_conv_path ());
          json_object_set_int_member (o, "threads", gfcg_cpu_threads ());
          json_object_set_double_member (o, "product_flops", flops);
          json_object_set_double_member (o, "net_gflops", net_gflops);
          json_object_set_double_member (o, "conv_ms", cpu_best.conv_ns / 1e6);
          json_object_set_double_member (o, "conv_gflops", conv_gflops);
          json_object_set_double_member (o, "other_products_ms", cpu_best.gemm_ns / 1e6);
          json_object_set_double_member (o, "sgemm_gflops", sgemm);
          json_object_set_double_member (o, "sgemm_gflops_openblas", sgemm_blas);
          json_object_set_double_member (o, "sgemm_gflops_onednn", sgemm_dnn);
          json_object_set_double_member (o, "pct_of_sgemm", sgemm > 0 ? 100.0 * net_gflops / sgemm : 0.0);
          json_object_set_double_member (o, "conv_pct_of_sgemm", sgemm > 0 ? 100.0 * conv_gflops / sgemm : 0.0);
        }
      text = gfcg_json_to_data (root, FALSE, NULL);
      printf ("%s\n", text);
      g_free (text);
      json_node_unref (root);
    }
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
