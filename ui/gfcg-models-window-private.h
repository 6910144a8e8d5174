/* gfcg-models-window-private.h — the Get models window's state, shared by
 * its widgets (gfcg-models-window.c) and its test hooks
 * (gfcg-models-script.c). */
#ifndef GFCG_MODELS_WINDOW_PRIVATE_H
#define GFCG_MODELS_WINDOW_PRIVATE_H

#include "gfcg-models-window.h"
#include "models.h"

G_BEGIN_DECLS

enum { COL_NAME, COL_STATE, COL_SIZE, N_COLS };

typedef struct
{
  GtkWidget            *window;
  GtkListStore         *store;
  GtkWidget            *view;
  GtkWidget            *details;
  GtkWidget            *licence;
  GtkWidget            *accept;
  GtkWidget            *bar;
  GtkWidget            *status;
  GtkWidget            *download, *cancel, *verify, *remove, *use;
  char                 *catalog_path;
  Catalog              *cat;
  char                 *device;
  GHashTable           *accepted;  /* pack names whose licence was ticked   */
  GCancellable         *cancellable;
  char                 *busy;      /* the pack of the running action        */
  gboolean              close_when_done;
  GHashTable           *file_done; /* file -> bytes, of the running install */
  gint64                total;
  GfcgModelsChangedFunc changed;
  GfcgModelsUseFunc     use_func;
  gpointer              user_data;
} Models;

Models      *gfcg_models_get      (GtkWidget *window);
/* The pack chosen in the list, or NULL. */
CatalogPack *gfcg_models_selected (Models    *m);

G_END_DECLS

#endif /* GFCG_MODELS_WINDOW_PRIVATE_H */
