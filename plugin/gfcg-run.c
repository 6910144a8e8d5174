/* gfcg-run.c — drives a job without a window (GIMP's own progress bar), and
 * the progress texts the window (ui/gfcg-run-ui.c) shows too. */
#include "gfcg-run.h"
#include "gfcg-classes.h"

#include <libgimp/gimp.h>
#include <glib/gi18n-lib.h>
#include <stdlib.h>
#include <string.h>

double
gfcg_run_fraction (GfcgJob *job, int picture, const GfcgProgress *p)
{
  return (picture + (p->eval + 1.0) / p->n_evals) / job->req.count;
}

char *
gfcg_run_status_text (GfcgJob *job, int picture, const GfcgProgress *p)
{
  const GfcgStepInfo *s = p->info;
  char *text, *ref, *joined;
  int   inet = -1;

  if (job->req.count > 1)
    text = g_strdup_printf (_("Picture %d of %d: step %d of %d"), picture + 1,
                            job->req.count, s->step + 1, job->req.options.steps);
  else
    text = g_strdup_printf (_("Step %d of %d"), s->step + 1, job->req.options.steps);
  if (s->c_ref < 0)
    return text;
  gfcg_pack_get_class (job->pack, s->c_ref, &inet, NULL, NULL);
  ref = g_strdup_printf (_("steering away from %s"), gfcg_classes_name (inet));
  joined = g_strconcat (text, "\n", ref, NULL);
  g_free (text);
  g_free (ref);
  return joined;
}

char *
gfcg_run_status_detail (GfcgJob *job, int picture, const GfcgProgress *p)
{
  const GfcgStepInfo *s = p->info;
  char *noise = g_strdup_printf (_("Noise level sigma = %.3g"), s->sigma), *text;

  if (s->c_ref < 0)
    return noise;
  text = g_strdup_printf (_("%s; GFCG strength s = %.2f"), noise, s->s);
  g_free (noise);
  return text;
}

/* ---- headless ------------------------------------------------------------ */

static gboolean
headless_progress (GfcgJob *job, int picture, const GfcgProgress *p, gpointer data)
{
  gimp_progress_update (gfcg_run_fraction (job, picture, p));
  return TRUE;
}

gboolean
gfcg_run_headless (GfcgJob *job, GError **error)
{
  gimp_progress_init (_("Sampling the diffusion model"));
  job->req.options.no_previews = TRUE; /* nobody sees them: latent packs skip a decode each */
  return gfcg_job_run (job, headless_progress, NULL, NULL, error);
}
