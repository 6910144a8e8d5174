/* gfcg-models-task.h — the Get models window's actions (install, verify,
 * remove) run in a worker thread through the model manager's own functions
 * (manager/models.h: the checks and atomic installs of `gfcg models`), with
 * download progress marshalled to the caller's main context and a
 * GCancellable that stops a download (its .part is kept for resuming). */
#ifndef GFCG_MODELS_TASK_H
#define GFCG_MODELS_TASK_H

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum
{
  GFCG_MODELS_INSTALL,
  GFCG_MODELS_VERIFY,
  GFCG_MODELS_REMOVE
} GfcgModelsAction;

/* Called in the caller's main context: bytes of file done of total (-1:
 * unknown). */
typedef void (*GfcgModelsProgressFunc) (const char *file,
                                        gint64      done,
                                        gint64      total,
                                        gpointer    user_data);

/* source_object is kept alive until callback; progress gets user_data. */
void   gfcg_models_task_run    (GObject               *source_object,
                                GfcgModelsAction       action,
                                const char            *catalog_path,
                                const char            *pack,
                                GCancellable          *cancellable,
                                GfcgModelsProgressFunc progress,
                                GAsyncReadyCallback    callback,
                                gpointer               user_data);
/* A one-line report (verify's summary), or NULL with the manager's error
 * (GFCG_ERROR_CANCELLED when cancelled). */
char  *gfcg_models_task_finish (GAsyncResult          *result,
                                GError               **error);

G_END_DECLS

#endif /* GFCG_MODELS_TASK_H */
