/* gfcg-run-ui.c — runs a job behind the progress window.  libgimp is not
 * thread-safe, so the engine runs in a worker thread and only the main
 * thread talks to GIMP and GTK; the Stop button cancels the job's
 * GCancellable, which the engine checks before every op. */
#include "gfcg-run.h"
#include "gfcg-classes.h"
#include "gfcg-run-window.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include <string.h>

typedef struct
{
  GfcgJob       *job;
  int            stop_at;     /* $GFCG_TEST_STOP_AT: press Stop there (tests) */
  gboolean       print;       /* $GFCG_TEST_PROGRESS: each text on stderr     */
  GCancellable  *cancellable;
  GMainLoop     *loop;
  GfcgRunWindow *window;
  GError        *error;
  gboolean       ok;
} Run;

typedef struct
{
  Run    *run;
  int     eval;               /* over all pictures */
  double  fraction;
  char   *text, *detail;
  guchar *preview;
  int     width, height;
} Update;

static gboolean
apply_update (gpointer data)
{
  Update *u = data;

  if (u->run->window != NULL)
    {
      gfcg_run_window_update (u->run->window, u->fraction, u->text, u->detail, u->preview,
                              u->width, u->height);
      if (u->run->print)
        {
          char *line = g_strdelimit (g_strdup (u->text), "\n", '/');
          g_printerr ("PROGRESS %s | %s\n", line, u->detail);
          g_free (line);
        }
      if (u->run->stop_at >= 0 && u->eval >= u->run->stop_at)
        gfcg_run_window_stop (u->run->window);
    }
  gimp_progress_update (u->fraction);
  g_free (u->text);
  g_free (u->detail);
  g_free (u->preview);
  g_free (u);
  return G_SOURCE_REMOVE;
}

/* Worker thread: copy what the window needs and hand it to the main loop. */
static gboolean
thread_progress (GfcgJob *job, int picture, const GfcgProgress *p, gpointer data)
{
  Run    *run = data;
  Update *u = g_new0 (Update, 1);

  u->run = run;
  u->eval = picture * p->n_evals + p->eval;
  u->fraction = gfcg_run_fraction (job, picture, p);
  u->text = gfcg_run_status_text (job, picture, p);
  u->detail = gfcg_run_status_detail (job, picture, p);
  if (p->preview != NULL)
    {
      u->preview = g_memdup2 (p->preview, (gsize) p->width * p->height * 3);
      u->width = p->width;
      u->height = p->height;
    }
  g_idle_add (apply_update, u);
  return !g_cancellable_is_cancelled (run->cancellable);
}

static gboolean
finished (gpointer data)
{
  g_main_loop_quit (((Run *) data)->loop);
  return G_SOURCE_REMOVE;
}

static gpointer
worker (gpointer data)
{
  Run *run = data;

  run->ok = gfcg_job_run (run->job, thread_progress, run, run->cancellable, &run->error);
  g_idle_add (finished, run);
  return NULL;
}

gboolean
gfcg_run_with_window (GfcgJob *job, GError **error)
{
  Run         run = { job };
  GThread    *thread;
  char       *title;
  const char *stop_at = g_getenv ("GFCG_TEST_STOP_AT");

  run.stop_at = stop_at != NULL ? atoi (stop_at) : -1;
  run.print = g_getenv ("GFCG_TEST_PROGRESS") != NULL;
  /* A latent pack's preview is a TAESD decode at full size, which can cost
   * as much as the evaluation itself on a CPU: every 4th is enough to watch. */
  if (g_strcmp0 (gfcg_pack_get_kind (job->pack), "latent") == 0)
    job->req.options.preview_every = 4;
  run.cancellable = g_cancellable_new ();
  run.loop = g_main_loop_new (NULL, FALSE);
  title = g_strdup_printf (_("Drawing %s"), gfcg_classes_name (job->req.imagenet));
  run.window = gfcg_run_window_new (title, run.cancellable);
  g_free (title);
  gimp_progress_init (_("Sampling the diffusion model"));

  thread = g_thread_new ("gfcg-sample", worker, &run);
  g_main_loop_run (run.loop);
  g_thread_join (thread);
  /* Updates still queued refer to the window: run them before it goes. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  gfcg_run_window_destroy (run.window);
  run.window = NULL;

  g_main_loop_unref (run.loop);
  g_object_unref (run.cancellable);
  if (!run.ok)
    g_propagate_error (error, run.error);
  return run.ok;
}
