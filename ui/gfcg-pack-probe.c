/* gfcg-pack-probe.c — loads a pack off the main thread and times one
 * evaluation of each network, for the dialog's pickers and estimate. */
#include "gfcg-pack-probe.h"
#include "gfcg-catalog.h"
#include "gfcg-job.h"

#include <stdio.h>
#include <string.h>

/* A field of /proc/self/status in bytes (Linux), 0 elsewhere. */
static gsize
proc_status (const char *field)
{
  char  *text = NULL, *p;
  gsize  kb = 0;

  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return 0;
  if ((p = strstr (text, field)) != NULL)
    kb = g_ascii_strtoull (p + strlen (field) + 1, NULL, 10);
  g_free (text);
  return kb * 1024;
}

static double
time_net (GfcgPack *pack, const char *net)
{
  int     c, res, label_dim;
  float  *x, *out, *labels = NULL, sigma = 1.0f;
  gint64  t0;
  double  t = 0.0;

  if (!gfcg_pack_get_net_shape (pack, net, &c, &res, &label_dim, NULL))
    return 0.0;
  x = g_new (float, (gsize) c * res * res);
  out = g_new (float, (gsize) c * res * res);
  for (gsize i = 0; i < (gsize) c * res * res; i++)
    x[i] = (float) ((i % 7) - 3) * 0.3f;
  if (label_dim > 0)
    {
      labels = g_new0 (float, label_dim);
      labels[0] = 1.0f;
    }
  t0 = g_get_monotonic_time ();
  if (gfcg_pack_denoise (pack, net, 1, x, &sigma, labels, out, NULL))
    t = (g_get_monotonic_time () - t0) / 1e6;
  g_free (labels);
  g_free (out);
  g_free (x);
  return t;
}

static double
time_classifier (GfcgPack *pack, int res)
{
  int     n = gfcg_pack_classify (pack, 1, res, res, NULL, NULL, NULL);
  float  *x, *logits;
  gint64  t0;
  double  t = 0.0;

  if (n <= 0)
    return 0.0;
  x = g_new0 (float, (gsize) 3 * res * res);
  logits = g_new (float, n);
  t0 = g_get_monotonic_time ();
  if (gfcg_pack_classify (pack, 1, res, res, x, logits, NULL) == n)
    t = (g_get_monotonic_time () - t0) / 1e6;
  g_free (logits);
  g_free (x);
  return t;
}

/* One decode of a latent pack's decoder or preview (0 when it has none). */
static double
time_decoder (GfcgPack *pack, const char *decoder)
{
  int     c, res, label_dim, f;
  float  *x, *rgb;
  gint64  t0;
  double  t = 0.0;

  if (!gfcg_pack_has_component (pack, decoder) ||
      !gfcg_pack_get_net_shape (pack, "main", &c, &res, &label_dim, NULL) ||
      (f = gfcg_pack_decode (pack, decoder, 1, res, res, NULL, NULL, NULL, NULL)) <= 0)
    return 0.0;
  x = g_new0 (float, (gsize) c * res * res);
  rgb = g_new (float, (gsize) 3 * res * f * res * f);
  t0 = g_get_monotonic_time ();
  if (gfcg_pack_decode (pack, decoder, 1, res, res, x, rgb, NULL, NULL) == f)
    t = (g_get_monotonic_time () - t0) / 1e6;
  g_free (rgb);
  g_free (x);
  return t;
}

static void
probe_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  GfcgPackProbe *pr = data;
  GfcgContext   *ctx;
  GfcgPack      *pack;
  gsize          rss0 = proc_status ("VmRSS:");

  if (!gfcg_catalog_check_installed (pr->spec, &pr->error) ||
      (ctx = gfcg_context_new (pr->device, &pr->error)) == NULL)
    return;
  if ((pack = gfcg_pack_load (ctx, pr->dir, &pr->error)) == NULL)
    {
      gfcg_context_free (ctx);
      return;
    }
  pr->name = g_strdup (gfcg_pack_get_name (pack));
  pr->title = g_strdup (gfcg_pack_get_title (pack));
  pr->licence = g_strdup (gfcg_pack_get_licence (pack));
  pr->resolution = gfcg_pack_get_resolution (pack);
  pr->n_classes = gfcg_pack_get_n_classes (pack);
  pr->imagenet = g_new (int, MAX (pr->n_classes, 1));
  for (int k = 0; k < pr->n_classes; k++)
    gfcg_pack_get_class (pack, k, &pr->imagenet[k], NULL, NULL);
  pr->has_guide = gfcg_pack_has_component (pack, "guide");
  pr->has_uncond = gfcg_pack_has_component (pack, "uncond");
  pr->has_classifier = gfcg_pack_has_component (pack, "classifier");
  gfcg_sample_options_init (&pr->defaults, pack);
  for (int m = 0; m < GFCG_N_MODES; m++)
    pr->guidance[m] = gfcg_pack_get_guidance (pack, (GfcgMode) m);

  if (!g_cancellable_is_cancelled (cancellable))
    {
      pr->t_main = time_net (pack, "main");
      pr->t_guide = pr->has_guide ? time_net (pack, "guide") : 0.0;
      pr->t_classifier = pr->has_classifier ? time_classifier (pack, pr->resolution) : 0.0;
      pr->t_uncond = pr->has_uncond ? time_net (pack, "uncond") : pr->t_main;
      /* Latent packs: the final decode, and the quick view of every
       * evaluation (the classifier's input and the live preview). */
      pr->t_decoder = time_decoder (pack, "decoder");
      pr->t_preview = gfcg_pack_has_component (pack, "preview") ? time_decoder (pack, "preview")
                                                                : pr->t_decoder;
    }
  pr->memory = proc_status ("VmHWM:");
  pr->memory = pr->memory > rss0 ? pr->memory - rss0 : 0;
  /* Kept: if the user draws with this pack, the job takes it. */
  pr->loaded = g_new0 (GfcgLoadedPack, 1);
  pr->loaded->dir = g_strdup (pr->dir);
  pr->loaded->device = g_strdup (pr->device);
  pr->loaded->ctx = ctx;
  pr->loaded->pack = pack;
}

void
gfcg_pack_probe_async (const char *pack, const char *device, GCancellable *cancellable,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  GfcgPackProbe *pr = g_new0 (GfcgPackProbe, 1);
  GTask         *task = g_task_new (NULL, cancellable, callback, user_data);

  pr->spec = g_strdup (pack != NULL ? pack : "");
  pr->dir = gfcg_job_pack_dir (pack);
  pr->device = g_strdup (device != NULL && *device ? device : "auto");
  g_task_set_task_data (task, pr, NULL);
  g_task_run_in_thread (task, probe_thread);
  g_object_unref (task);
}

GfcgPackProbe *
gfcg_pack_probe_finish (GAsyncResult *result)
{
  return g_task_get_task_data (G_TASK (result));
}

void
gfcg_pack_probe_free (GfcgPackProbe *pr)
{
  if (pr == NULL)
    return;
  g_clear_error (&pr->error);
  gfcg_loaded_pack_free (pr->loaded);
  g_free (pr->spec);
  g_free (pr->dir);
  g_free (pr->device);
  g_free (pr->name);
  g_free (pr->title);
  g_free (pr->licence);
  g_free (pr->imagenet);
  g_free (pr);
}

double
gfcg_pack_probe_estimate (const GfcgPackProbe *pr, GfcgMode mode, int steps, double guidance,
                          int count)
{
  double   t_guide = pr->t_guide > 0.0 ? pr->t_guide : pr->t_main;
  double   t_uncond = pr->t_uncond > 0.0 ? pr->t_uncond : pr->t_main;
  GfcgRunCost c;

  gfcg_mode_cost (mode, steps, guidance != 1.0, &c);
  if (!pr->has_classifier)
    c.classifier = 0;
  /* Each classification decodes a preview (latent packs); so does the live
   * preview of every 4th evaluation (gfcg-run.c's preview_every). */
  return (c.main * pr->t_main + c.guide * t_guide + c.uncond * t_uncond +
          c.classifier * (pr->t_classifier + pr->t_preview) +
          (2.0 * steps - 1.0) * pr->t_preview / 4.0 + pr->t_decoder) * count;
}
