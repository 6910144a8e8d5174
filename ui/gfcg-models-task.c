/* gfcg-models-task.c — a model manager action in a worker thread.
 *
 * The manager stops on its process-wide models_interrupted flag (the CLI's
 * Ctrl-C); here the GCancellable raises it.  The window runs one action at
 * a time, so the flag and the progress hook are this task's while it runs. */
#include "gfcg-models-task.h"
#include "models.h"

typedef struct
{
  GfcgModelsAction       action;
  char                  *catalog_path;
  char                  *pack;
  GfcgModelsProgressFunc progress;
  gpointer               user_data;
  GMainContext          *context;   /* the caller's, for progress         */
  gint64                 last_post; /* throttles progress to 10 a second  */
} TaskData;

typedef struct
{
  GTask *task;                      /* keeps source object and data alive */
  char  *file;
  gint64 done, total;
} Progress;

static void
task_data_free (gpointer data)
{
  TaskData *t = data;

  g_free (t->catalog_path);
  g_free (t->pack);
  g_main_context_unref (t->context);
  g_free (t);
}

static gboolean
progress_in_main (gpointer data)
{
  Progress *p = data;
  TaskData *t = g_task_get_task_data (p->task);

  t->progress (p->file, p->done, p->total, t->user_data);
  return G_SOURCE_REMOVE;
}

static void
progress_free (gpointer data)
{
  Progress *p = data;

  g_object_unref (p->task);
  g_free (p->file);
  g_free (p);
}

/* libcurl's progress, in the worker thread. */
static void
on_progress (const char *file, gint64 done, gint64 total, gpointer data)
{
  GTask    *task = data;
  TaskData *t = g_task_get_task_data (task);
  gint64    now = g_get_monotonic_time ();
  Progress *p;

  if (t->progress == NULL || (now - t->last_post < 100000 && done != total))
    return;
  t->last_post = now;
  p = g_new0 (Progress, 1);
  p->task = g_object_ref (task);
  p->file = g_strdup (file);
  p->done = done;
  p->total = total;
  g_main_context_invoke_full (t->context, G_PRIORITY_DEFAULT, progress_in_main, p,
                              progress_free);
}

static void
on_cancelled (GCancellable *cancellable, gpointer data)
{
  models_interrupted = 1;
}

static char *
run_action (TaskData *t, GError **error)
{
  Catalog     *cat;
  CatalogPack *pack;
  char        *top, *dir, *report = NULL;

  if (t->action == GFCG_MODELS_REMOVE)
    return models_remove (t->pack, error) ? g_strdup ("removed") : NULL;
  if (t->action == GFCG_MODELS_VERIFY)
    {
      top = gfcg_models_dir ();
      dir = g_build_filename (top, t->pack, NULL);
      if (!models_verify (dir, &report, error))
        g_clear_pointer (&report, g_free);
      g_free (dir);
      g_free (top);
      return report;
    }
  /* The worker's own copy: nothing is shared with the window's thread. */
  if ((cat = catalog_load (t->catalog_path, error)) == NULL)
    return NULL;
  if ((pack = catalog_find_pack (cat, t->pack)) == NULL)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "'%s' is not in the catalog",
                 t->pack);
  else if (models_install (cat, pack, FALSE, TRUE, error))
    report = g_strdup ("installed");
  catalog_free (cat);
  return report;
}

static void
worker (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  TaskData *t = task_data;
  GError   *error = NULL;
  gulong    id = 0;
  char     *report;

  models_interrupted = 0;
  if (cancellable != NULL)
    id = g_cancellable_connect (cancellable, G_CALLBACK (on_cancelled), NULL, NULL);
  models_set_progress (on_progress, task);
  report = run_action (t, &error);
  models_set_progress (NULL, NULL);
  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, id);
  models_interrupted = 0;
  if (report != NULL)
    g_task_return_pointer (task, report, g_free);
  else
    g_task_return_error (task, error);
}

void
gfcg_models_task_run (GObject *source_object, GfcgModelsAction action, const char *catalog_path,
                      const char *pack, GCancellable *cancellable,
                      GfcgModelsProgressFunc progress, GAsyncReadyCallback callback,
                      gpointer user_data)
{
  GTask    *task = g_task_new (source_object, cancellable, callback, user_data);
  TaskData *t = g_new0 (TaskData, 1);

  t->action = action;
  t->catalog_path = g_strdup (catalog_path);
  t->pack = g_strdup (pack);
  t->progress = progress;
  t->user_data = user_data;
  t->context = g_main_context_ref_thread_default ();
  g_task_set_task_data (task, t, task_data_free);
  /* A cancelled action still returns what the manager did (the .part
   * kept, the staging folder removed), not a bare "cancelled". */
  g_task_set_check_cancellable (task, FALSE);
  g_task_run_in_thread (task, worker);
  g_object_unref (task);
}

char *
gfcg_models_task_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
