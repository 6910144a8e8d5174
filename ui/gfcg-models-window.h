/* gfcg-models-window.h — "Get models": the catalog `gfcg models` reads
 * ($GFCG_CATALOG or the installed one), each pack with what it draws, its
 * download size, licence (non-commercial terms acknowledged before a
 * download) and whether it is installed; Download (progress, Cancel, resumed
 * next time), Verify, Remove and Use, run by gfcg-models-task.c. */
#ifndef GFCG_MODELS_WINDOW_H
#define GFCG_MODELS_WINDOW_H

#include <gtk/gtk.h>

G_BEGIN_DECLS

/* changed: a pack was installed or removed (the pack picker lists again);
 * use: the artist pressed Use on installed pack name. */
typedef void (*GfcgModelsChangedFunc) (gpointer user_data);
typedef void (*GfcgModelsUseFunc)     (const char *name, gpointer user_data);

GtkWidget *gfcg_models_window_new      (GtkWindow            *parent,
                                        const char           *device,
                                        GfcgModelsChangedFunc changed,
                                        GfcgModelsUseFunc     use,
                                        gpointer              user_data);
void       gfcg_models_window_select   (GtkWidget            *window,
                                        const char           *pack);
gboolean   gfcg_models_window_is_busy  (GtkWidget            *window);
/* Cancels a running action and waits for it to stop (the plug-in is
 * about to end: the manager then leaves its .part, never a staging folder). */
void       gfcg_models_window_stop     (GtkWidget            *window);

/* For the dialog's test script: a step as a user would do it (select:NAME,
 * accept:0|1, download, cancel, verify, remove, use), pressing only what
 * is sensitive; bytes of file (NULL: all) the running action downloaded
 * so far; the state in one
 * line of tab-separated KEY=VALUE. */
void       gfcg_models_window_step     (GtkWidget            *window,
                                        const char           *step);
gint64     gfcg_models_window_bytes    (GtkWidget            *window,
                                        const char           *file);
char      *gfcg_models_window_describe (GtkWidget            *window);

G_END_DECLS

#endif /* GFCG_MODELS_WINDOW_H */
