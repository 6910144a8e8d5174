/* cmd-sample.c — `gfcg sample`: draw pictures of a class, with progress on
 * stderr, Ctrl-C stopping cleanly between evaluations, and the parameters
 * recorded in the PNG and the optional JSON trace. */
#include "gfcg-cli.h"
#include "gfcg/gfcg-safetensors.h"

#include <math.h>
#include <string.h>
#include <unistd.h>


/* What the callbacks need: the progress line, previews, and the outputs. */
typedef struct
{
  gboolean    quiet, tty, verbose;
  const char *previews;   /* --previews DIR, or NULL */
  GError     *error;      /* writing a preview failed */
  const char *out, *trace, *out_raw;
  GfcgContext *ctx;
  float      *raw_all;    /* --out-raw: every picture's final state */
  const GfcgSource *source; /* --init: pictures go back to its size */
  GCancellable *cancel;   /* Ctrl-C cancels it (cli-signals.c) */
} Progress;

static gboolean
progress_cb (const GfcgProgress *p, gpointer data)
{
  Progress *pr = data;
  const GfcgStepInfo *s = p->info;
  if (!pr->quiet)
    {
      g_printerr ("%s[%d/%d] eval %2d/%d  sigma %8.4f", pr->tty ? "\r" : "", p->picture + 1,
                  p->n_pictures, p->eval + 1, p->n_evals, s->sigma);
      if (s->c_ref >= 0)
        g_printerr ("  c_ref %3d  p_c %.3f  p_ref %.3f  s %.3f", s->c_ref, s->p_c, s->p_ref, s->s);
      else
        g_printerr ("%41s", "");
      g_printerr ("%s", pr->tty ? "" : "\n");
    }
  if (pr->previews != NULL && p->preview != NULL && pr->error == NULL)
    {
      char *name = g_strdup_printf ("preview-%04d-%03d.png", p->picture, p->eval);
      char *path = g_build_filename (pr->previews, name, NULL);
      gfcg_write_png (path, p->preview, p->width, p->height, NULL, &pr->error);
      g_free (path);
      g_free (name);
    }
  return !g_cancellable_is_cancelled (pr->cancel) && pr->error == NULL;
}

/* out.png -> out-0002.png for image j of several. */
static char *
numbered (const char *path, int j, int count)
{
  const char *dot = strrchr (path, '.');
  if (count == 1)
    return g_strdup (path);
  if (dot == NULL || strchr (dot, '/') != NULL)
    return g_strdup_printf ("%s-%04d", path, j);
  return g_strdup_printf ("%.*s-%04d%s", (int) (dot - path), path, j, dot);
}

/* One finished picture: its PNG (with the trace as a comment), the trace
 * file, and its raw state for --out-raw, written once all are in. */
static gboolean
picture_cb (const GfcgRequest *req, int j, GfcgImage *img, gpointer data, GError **error)
{
  Progress *pr = data;
  char *json = gfcg_image_get_trace_json (img), *path = numbered (pr->out, j, req->count);
  gboolean ok = TRUE;
  int c, h, w;
  const float *raw;
  const guchar *pixels = gfcg_image_get_pixels (img);
  guchar *composite = NULL;

  if (pr->tty && !pr->quiet)
    g_printerr ("\n");
  w = gfcg_image_get_width (img);
  h = gfcg_image_get_height (img);
  if (pr->source != NULL)
    {
      /* Back at the source's size; unmasked pixels exactly the source's. */
      ok = (pixels = composite = gfcg_source_composite (pr->source, img, error)) != NULL;
      w = gfcg_source_get_width (pr->source);
      h = gfcg_source_get_height (pr->source);
    }
  ok = ok && gfcg_write_png (path, pixels, w, h, json, error);
  g_free (composite);
  if (ok && !pr->quiet)
    g_printerr ("gfcg sample: wrote %s (seed %" G_GUINT64_FORMAT ", %d network evaluations)\n",
                path, gfcg_request_get_seed (req, j), gfcg_image_get_nfe (img));
  g_free (path);
  if (ok && pr->verbose)
    {
      gsize peak_tensors = 0, peak_device = 0;
      gfcg_context_get_memory (pr->ctx, &peak_tensors, &peak_device);
      g_printerr ("gfcg sample: %.2f s, peak memory %.1f MiB in tensors, %.1f MiB on the device\n",
                  gfcg_image_get_seconds (img), peak_tensors / 1048576.0,
                  peak_device / 1048576.0);
    }
  if (ok && pr->trace != NULL)
    {
      path = numbered (pr->trace, j, req->count);
      ok = g_file_set_contents (path, json, -1, error);
      g_free (path);
    }
  g_free (json);
  raw = gfcg_image_get_raw (img, &c, &h, &w);
  if (ok && pr->out_raw != NULL)
    {
      gsize per = (gsize) c * h * w;
      if (pr->raw_all == NULL)
        pr->raw_all = g_new (float, per * req->count);
      memcpy (pr->raw_all + per * j, raw, per * sizeof (float));
      if (j == req->count - 1)
        {
          GfcgStWrite t = { "x", 4, { req->count, c, h, w }, pr->raw_all };
          ok = gfcg_st_write (pr->out_raw, &t, 1, error);
        }
    }
  gfcg_image_free (img);
  return ok;
}

/* An output's folder must be there and writable before the pack is loaded
 * and sampled: a typo in --out should not cost the whole run. */
static gboolean
check_output (const char *option, const char *path, GError **error)
{
  char       *dir;
  const char *why = NULL;

  if (path == NULL)
    return TRUE;
  if (*path == '\0' || g_file_test (path, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                   "--%s '%s' is a folder: give a file name in it", option, path);
      return FALSE;
    }
  dir = g_path_get_dirname (path);
  if (!g_file_test (dir, G_FILE_TEST_EXISTS))
    why = "does not exist";
  else if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    why = "is not a folder";
  else if (access (dir, W_OK | X_OK) != 0)
    why = "is not writable";
  if (why != NULL)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                 "--%s %s: the folder '%s' %s (nothing was drawn)", option, path, dir, why);
  g_free (dir);
  return why == NULL;
}

int
cli_sample (int argc, char **argv)
{
  char *pack_dir = NULL, *class_spec = NULL, *mode = NULL, *out = NULL, *out_raw = NULL;
  char *trace = NULL, *device = NULL, *previews = NULL;
  /* Text, NULL when left out: only leaving an option out means the pack's
   * default (or, for --seed, a random seed); every value given is checked. */
  char *guidance = NULL, *s_max = NULL, *temperature = NULL, *sigma_lo = NULL;
  char *sigma_hi = NULL, *sigma_min = NULL, *sigma_max = NULL, *rho = NULL;
  char *steps = NULL, *seed_text = NULL, *imagenet_text = NULL, *pack_class_text = NULL;
  char *init = NULL, *mask = NULL, *init_raw = NULL, *strength = NULL;
  char *view = NULL, *classify_every = NULL;
  gint64 n_every = 0;
  int count = 1, threads = 0, preview_every = 1;
  gint64 seed = -1, imagenet = -1, pack_class = -1, n_steps = 0;
  gboolean lagged = FALSE, no_lagged = FALSE, quiet = FALSE, verbose = FALSE;
  char *mode_names = gfcg_mode_list (", ");
  char *mode_help = g_strdup_printf ("Guidance: %s (default: the pack's)", mode_names);
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name (default: the default pack)", "PACK" },
    { "class", 'c', 0, G_OPTION_ARG_STRING, &class_spec, "Class: ImageNet-1k index (0..999), name, synonym or wnid", "CLASS" },
    { "imagenet", 0, 0, G_OPTION_ARG_STRING, &imagenet_text, "Class by ImageNet-1k index (as --class N)", "N" },
    { "pack-class", 0, 0, G_OPTION_ARG_STRING, &pack_class_text, "Class by the pack's own index (`gfcg info` lists them)", "N" },
    { "mode", 'm', 0, G_OPTION_ARG_STRING, &mode, mode_help, "MODE" },
    { "steps", 'n', 0, G_OPTION_ARG_STRING, &steps, "Sampler steps (2N-1 evaluations)", "N" },
    { "seed", 's', 0, G_OPTION_ARG_STRING, &seed_text, "Noise seed (default: random, printed)", "SEED" },
    { "count", 0, 0, G_OPTION_ARG_INT, &count, "Pictures to draw, seeds SEED, SEED+1, ...", "N" },
    { "guidance", 'w', 0, G_OPTION_ARG_STRING, &guidance, "CFG/ATG weight w (1 = off)", "W" },
    { "s-max", 0, 0, G_OPTION_ARG_STRING, &s_max, "GFCG strength", "S" },
    { "temperature", 0, 0, G_OPTION_ARG_STRING, &temperature, "Classifier softmax temperature", "T" },
    { "sigma-lo", 0, 0, G_OPTION_ARG_STRING, &sigma_lo, "GFCG window, lower noise level", "SIGMA" },
    { "sigma-hi", 0, 0, G_OPTION_ARG_STRING, &sigma_hi, "GFCG window, upper noise level", "SIGMA" },
    { "lagged", 0, 0, G_OPTION_ARG_NONE, &lagged, "Reference class from the previous evaluation (batched)", NULL },
    { "no-lagged", 0, 0, G_OPTION_ARG_NONE, &no_lagged, "Reference class from this evaluation", NULL },
    { "gfcg-view", 0, 0, G_OPTION_ARG_STRING, &view, "What GFCG's classifier sees: full, or half (the estimate 2x pooled first: a quarter of a latent pack's decode)", "VIEW" },
    { "classify-every", 0, 0, G_OPTION_ARG_STRING, &classify_every, "Classify every Kth evaluation of the GFCG window and keep its reference between (1)", "K" },
    { "sigma-min", 0, 0, G_OPTION_ARG_STRING, &sigma_min, "Lowest noise level (0.002)", "SIGMA" },
    { "sigma-max", 0, 0, G_OPTION_ARG_STRING, &sigma_max, "Highest noise level (80)", "SIGMA" },
    { "rho", 0, 0, G_OPTION_ARG_STRING, &rho, "Schedule exponent (7)", "RHO" },
    { "init", 0, 0, G_OPTION_ARG_FILENAME, &init, "Start from this picture (PNG): refine it, or fill the part --mask shows", "FILE" },
    { "strength", 0, 0, G_OPTION_ARG_STRING, &strength, "With --init: how much changes, 0 (nothing) .. 1 (all: the picture only where the mask keeps it); default 1 with --mask, 0.7 without", "S" },
    { "mask", 0, 0, G_OPTION_ARG_FILENAME, &mask, "With --init: grey PNG of its size, white = regenerate, black = keep", "FILE" },
    { "init-raw", 0, 0, G_OPTION_ARG_FILENAME, &init_raw, "Start from a network-space state instead (safetensors: x [1, C, R, R], optional mask [R, R])", "FILE" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "PNG to write (several: FILE-0000.png, ...)", "FILE" },
    { "out-raw", 0, 0, G_OPTION_ARG_FILENAME, &out_raw, "Also write the final float state (safetensors, tensor x)", "FILE" },
    { "trace", 0, 0, G_OPTION_ARG_FILENAME, &trace, "Write the per-evaluation trace as JSON", "FILE" },
    { "previews", 0, 0, G_OPTION_ARG_FILENAME, &previews, "Write every evaluation's preview (the denoised estimate; latent packs: through the preview decoder) as DIR/preview-IMAGE-EVAL.png", "DIR" },
    { "preview-every", 0, 0, G_OPTION_ARG_INT, &preview_every, "With --previews: only every Nth evaluation's preview, and the last (1)", "N" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "auto, cpu, cpu:bf16 or opencl:N[:fp16]", "DEV" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "CPU threads (default: all cores)", "N" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress on stderr", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Also print the device, time and peak memory", NULL },
    { NULL }
  };
  GfcgContext *ctx = NULL;
  GfcgPack *pack = NULL;
  GfcgRequest req;
  GfcgSampleOptions *opt = &req.options;
  GCancellable *cancel = NULL;
  GError *error = NULL;
  Progress pr = { 0 };
  CliSource src = { 0 };
  int status = 1;
  gboolean ok;

  if (!cli_parse ("sample", "", "Draws COUNT pictures of a class with the chosen guidance.\n"
                  "Example: gfcg sample --class 574 --mode gfcg --steps 32 --seed 3 --out x.png\n"
                  "(574 is ImageNet's golf ball: --class \"golf ball\" draws the same)",
                  entries, &argc, &argv))
    return 2;
  if (argc > 1)
    {
      g_printerr ("gfcg sample: unexpected argument '%s'\n", argv[1]);
      return 2;
    }
  if (!cli_parse_int ("sample", "seed", seed_text, 0, G_MAXINT64, &seed) ||
      !cli_parse_int ("sample", "imagenet", imagenet_text, 0, 999, &imagenet) ||
      !cli_parse_int ("sample", "pack-class", pack_class_text, 0, G_MAXINT, &pack_class))
    return 2;
  if (threads < 0)
    {
      g_printerr ("gfcg sample: --threads must be >= 0 (0: all cores)\n");
      return 2;
    }
  if (out == NULL || (class_spec == NULL && imagenet_text == NULL && pack_class_text == NULL))
    {
      g_printerr ("gfcg sample: --out and --class (or --imagenet, --pack-class) are required "
                  "(see --help)\n");
      return 2;
    }
  if ((class_spec != NULL) + (imagenet_text != NULL) + (pack_class_text != NULL) > 1)
    {
      g_printerr ("gfcg sample: give one of --class, --imagenet and --pack-class\n");
      return 2;
    }
  if ((strength != NULL || mask != NULL) && init == NULL && init_raw == NULL)
    {
      g_printerr ("gfcg sample: --strength and --mask need a picture to start from (--init)\n");
      return 2;
    }
  if (init_raw != NULL && (init != NULL || mask != NULL))
    {
      g_printerr ("gfcg sample: --init-raw holds its own mask: give it without --init and --mask\n");
      return 2;
    }
  if (count < 1 || count > GFCG_MAX_REQUEST_COUNT)
    {
      g_printerr ("gfcg sample: --count must lie in 1..%d\n", GFCG_MAX_REQUEST_COUNT);
      return 2;
    }
  if (!check_output ("out", out, &error) || !check_output ("trace", trace, &error) ||
      !check_output ("out-raw", out_raw, &error))
    {
      cli_fail ("sample", error);
      goto done;
    }
  if ((pack = cli_load_pack ("sample", pack_dir, device, &ctx)) == NULL)
    goto done;
  if (threads > 0)
    gfcg_context_set_threads (ctx, threads);

  gfcg_request_init (&req, pack);
  req.count = count;
  /* Pictures of each evaluation cost a decode on latent packs: only on request. */
  opt->no_previews = previews == NULL;
  opt->preview_every = preview_every;
  if (preview_every < 1)
    {
      g_printerr ("gfcg sample: --preview-every must be >= 1\n");
      goto done;
    }
  if (previews != NULL && g_mkdir_with_parents (previews, 0755) != 0)
    {
      g_set_error (&error, GFCG_ERROR, GFCG_ERROR_IO, "%s: cannot create the directory", previews);
      cli_fail ("sample", error);
      goto done;
    }
  if (pack_class_text != NULL)
    class_spec = g_strdup_printf ("pack:%" G_GINT64_FORMAT, pack_class);
  ok = class_spec != NULL ? gfcg_request_set_class (&req, class_spec, GFCG_CLASS_SPEC_DEFAULT, &error)
                          : gfcg_request_set_imagenet (&req, (int) imagenet, &error);
  /* The weight follows the chosen mode unless given (CFG and ATG differ). */
  if (!ok || !gfcg_request_set_mode (&req, mode, &error))
    {
      cli_fail ("sample", error);
      goto done;
    }
  if (!cli_parse_int ("sample", "steps", steps, G_MININT, G_MAXINT, &n_steps))
    goto done;
  if (steps != NULL)
    opt->steps = (int) n_steps;
  if (!cli_parse_double ("sample", "guidance", guidance, &opt->guidance) ||
      !cli_parse_double ("sample", "s-max", s_max, &opt->s_max) ||
      !cli_parse_double ("sample", "temperature", temperature, &opt->temperature) ||
      !cli_parse_double ("sample", "sigma-lo", sigma_lo, &opt->sigma_lo) ||
      !cli_parse_double ("sample", "sigma-hi", sigma_hi, &opt->sigma_hi) ||
      !cli_parse_double ("sample", "sigma-min", sigma_min, &opt->sigma_min) ||
      !cli_parse_double ("sample", "sigma-max", sigma_max, &opt->sigma_max) ||
      !cli_parse_double ("sample", "rho", rho, &opt->rho))
    goto done;
  /* Left out with --init: a fill (a mask) replaces what it covers, a refine
   * keeps the picture's layout, as in the plug-in. */
  if (init != NULL && strength == NULL)
    opt->strength = mask != NULL ? 1.0 : 0.7;
  if (!cli_parse_double ("sample", "strength", strength, &opt->strength))
    goto done;
  if (!cli_source_load (pack, init, mask, init_raw, &src, opt, &error))
    {
      cli_fail ("sample", error);
      goto done;
    }
  pr.source = src.source;
  if (view != NULL && !gfcg_view_from_string (view, &opt->view))
    {
      g_printerr ("gfcg sample: --gfcg-view must be full or half, not '%s'\n", view);
      goto done;
    }
  if (!cli_parse_int ("sample", "classify-every", classify_every, 1, 1000, &n_every))
    goto done;
  if (classify_every != NULL)
    opt->classify_every = (int) n_every;
  if (lagged)
    opt->lagged = TRUE;
  if (no_lagged)
    opt->lagged = FALSE;
  if (seed < 0)
    {
      seed = g_random_int_range (0, G_MAXINT32);
      if (!quiet)
        g_printerr ("gfcg sample: seed %" G_GINT64_FORMAT "\n", seed);
    }
  opt->seed = (guint64) seed;
  if (!gfcg_sample_options_validate (opt, pack, &error))
    {
      cli_fail ("sample", error);
      goto done;
    }

  if (verbose)
    {
      char *d = gfcg_context_describe (ctx);
      g_printerr ("gfcg sample: %s\n", d);
      g_free (d);
    }
  cancel = g_cancellable_new ();
  opt->cancellable = cancel;
  pr.cancel = cancel;
  cli_signals_cancel_on_sigint (cancel);
  pr.quiet = quiet;
  pr.verbose = verbose;
  pr.tty = isatty (2);
  pr.previews = previews;
  pr.out = out;
  pr.trace = trace;
  pr.out_raw = out_raw;
  pr.ctx = ctx;
  if (!gfcg_request_run (&req, progress_cb, picture_cb, &pr, &error))
    {
      if (pr.tty && !quiet)
        g_printerr ("\n");
      /* A preview that could not be written stopped the run: say why. */
      if (pr.error != NULL)
        {
          g_clear_error (&error);
          error = g_steal_pointer (&pr.error);
        }
      cli_fail ("sample", error);
      goto done;
    }
  status = 0;

done:
  cli_signals_cancel_on_sigint (NULL);
  g_clear_object (&cancel);
  g_clear_error (&pr.error);
  g_free (pr.raw_all);
  cli_source_clear (&src);
  gfcg_pack_free (pack);
  gfcg_context_free (ctx);
  g_free (pack_dir);
  g_free (class_spec);
  g_free (mode);
  g_free (mode_names);
  g_free (mode_help);
  g_free (out);
  g_free (out_raw);
  g_free (trace);
  g_free (device);
  g_free (previews);
  g_free (guidance);
  g_free (s_max);
  g_free (temperature);
  g_free (sigma_lo);
  g_free (sigma_hi);
  g_free (sigma_min);
  g_free (sigma_max);
  g_free (rho);
  g_free (steps);
  g_free (seed_text);
  g_free (imagenet_text);
  g_free (pack_class_text);
  g_free (init);
  g_free (mask);
  g_free (init_raw);
  g_free (strength);
  g_free (view);
  g_free (classify_every);
  return status;
}
