/* gfcg-pack-probe.c — loads a pack off the main thread and times the
 * evaluations of each network, for the dialog's pickers and estimate. */
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

/* Runs of each network: one to warm up (the first evaluation builds the
 * backend's kernels and primitives and once made the first estimate of a
 * dialog four times too long), then TIMED_RUNS timed ones; the fastest and
 * slowest of those bound the estimate. */
#define TIMED_RUNS 3

typedef gboolean (*RunFunc) (GfcgPack *pack, const char *what, gpointer data);

static GfcgProbeTime
time_runs (GfcgPack *pack, const char *what, RunFunc run, gpointer data)
{
  GfcgProbeTime t = { 0.0, 0.0 };

  if (!run (pack, what, data))
    return t;
  for (int i = 0; i < TIMED_RUNS; i++)
    {
      gint64 t0 = g_get_monotonic_time ();
      double s;

      if (!run (pack, what, data))
        return (GfcgProbeTime) { 0.0, 0.0 };
      s = (g_get_monotonic_time () - t0) / 1e6;
      t.lo = i == 0 ? s : MIN (t.lo, s);
      t.hi = MAX (t.hi, s);
    }
  return t;
}

typedef struct
{
  float *x, *out, *labels, sigma;
  int    res, f, n;
} Buffers;

static gboolean
run_net (GfcgPack *pack, const char *net, gpointer data)
{
  Buffers *b = data;
  float    sigma[2] = { b->sigma, b->sigma };

  return gfcg_pack_denoise (pack, net, b->n, b->x, sigma, b->labels, b->out, NULL);
}

/* Evaluations of net at a batch of n (1 or 2): terms on the same network
 * run as one batch, which costs less than one evaluation per term (CFG
 * without an unconditional network runs main at the class and the zero
 * label together). */
static GfcgProbeTime
time_net (GfcgPack *pack, const char *net, int n)
{
  int           c, res, label_dim;
  Buffers       b = { NULL, NULL, NULL, 1.0f, 0, 0, n };
  GfcgProbeTime t;
  gsize         size;

  if (!gfcg_pack_get_net_shape (pack, net, &c, &res, &label_dim, NULL))
    return (GfcgProbeTime) { 0.0, 0.0 };
  size = (gsize) n * c * res * res;
  b.x = g_new (float, size);
  b.out = g_new (float, size);
  for (gsize i = 0; i < size; i++)
    b.x[i] = (float) ((i % 7) - 3) * 0.3f;
  if (label_dim > 0)
    {
      b.labels = g_new0 (float, (gsize) n * label_dim);
      b.labels[0] = 1.0f;
    }
  t = time_runs (pack, net, run_net, &b);
  g_free (b.labels);
  g_free (b.out);
  g_free (b.x);
  return t;
}

static gboolean
run_classifier (GfcgPack *pack, const char *what, gpointer data)
{
  Buffers *b = data;

  return gfcg_pack_classify (pack, 1, b->res, b->res, b->x, b->out, NULL) == b->n;
}

static GfcgProbeTime
time_classifier (GfcgPack *pack, int res)
{
  Buffers       b = { NULL, NULL, NULL, 1.0f, res, 0, 0 };
  GfcgProbeTime t;

  b.n = gfcg_pack_classify (pack, 1, res, res, NULL, NULL, NULL);
  if (b.n <= 0)
    return (GfcgProbeTime) { 0.0, 0.0 };
  b.x = g_new0 (float, (gsize) 3 * res * res);
  b.out = g_new (float, b.n);
  t = time_runs (pack, "classifier", run_classifier, &b);
  g_free (b.out);
  g_free (b.x);
  return t;
}

static gboolean
run_decoder (GfcgPack *pack, const char *decoder, gpointer data)
{
  Buffers *b = data;

  return gfcg_pack_decode (pack, decoder, 1, b->res, b->res, b->x, b->out, NULL, NULL) == b->f;
}

/* Decodes of a latent pack's decoder or preview (0 when it has none). */
static GfcgProbeTime
time_decoder (GfcgPack *pack, const char *decoder)
{
  int           c, res, label_dim;
  Buffers       b = { NULL, NULL, NULL, 1.0f, 0, 0, 0 };
  GfcgProbeTime t;

  if (!gfcg_pack_has_component (pack, decoder) ||
      !gfcg_pack_get_net_shape (pack, "main", &c, &res, &label_dim, NULL) ||
      (b.f = gfcg_pack_decode (pack, decoder, 1, res, res, NULL, NULL, NULL, NULL)) <= 0)
    return (GfcgProbeTime) { 0.0, 0.0 };
  b.res = res;
  b.x = g_new0 (float, (gsize) c * res * res);
  b.out = g_new (float, (gsize) 3 * res * b.f * res * b.f);
  t = time_runs (pack, decoder, run_decoder, &b);
  g_free (b.out);
  g_free (b.x);
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
      pr->t_main = time_net (pack, "main", 1);
      pr->t_main2 = time_net (pack, "main", 2);
      pr->t_classifier = pr->has_classifier ? time_classifier (pack, pr->resolution)
                                            : (GfcgProbeTime) { 0.0, 0.0 };
      pr->t_uncond = pr->has_uncond ? time_net (pack, "uncond", 1) : pr->t_main;
      pr->t_guide = pr->has_guide ? time_net (pack, "guide", 1) : pr->t_main;
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

/* One bound of the estimate, per evaluation: the fastest (lo) or slowest
 * (hi) timed run of each network, as guidance.c batches the terms. */
static double
estimate_bound (const GfcgPackProbe *pr, GfcgMode mode, gboolean weighted, gboolean hi)
{
#define T(x) (hi ? pr->x.hi : pr->x.lo)
  const GfcgModeInfo *m = gfcg_mode_get_info (mode);
  gboolean ref_main = m->ref == GFCG_REF_MAIN;
  gboolean lagged = pr->defaults.lagged;
  /* Terms on main in its first batch: the class, the zero label standing in
   * for a missing unconditional network, a reference known beforehand. */
  int      first = 1 + (m->push == GFCG_PUSH_UNCOND && weighted && !pr->has_uncond) +
                   (ref_main && lagged);
  double   per_extra = MAX (0.0, T (t_main2) - T (t_main));
  double   t = T (t_main) + (first - 1) * per_extra;

  if (ref_main && !lagged)
    t += T (t_main);                        /* after the classifier's look   */
  if (m->push == GFCG_PUSH_UNCOND && weighted && pr->has_uncond)
    t += T (t_uncond);
  if (m->push == GFCG_PUSH_GUIDE && weighted)
    t += T (t_guide);
  if (m->ref == GFCG_REF_GUIDE_MIX)
    t += T (t_guide);
  /* Each classification decodes a preview (latent packs); so does the live
   * preview of every 4th evaluation (gfcg-run.c's preview_every). */
  if (m->ref != GFCG_REF_NONE && pr->has_classifier)
    t += T (t_classifier) + T (t_preview);
  return t + T (t_preview) / 4.0;
#undef T
}

void
gfcg_pack_probe_estimate (const GfcgPackProbe *pr, GfcgMode mode, int steps, double guidance,
                          int count, double *lo, double *hi)
{
  int evals = MAX (2 * steps - 1, 0);

  *lo = (evals * estimate_bound (pr, mode, guidance != 1.0, FALSE) + pr->t_decoder.lo) * count;
  *hi = (evals * estimate_bound (pr, mode, guidance != 1.0, TRUE) + pr->t_decoder.hi) * count;
}
