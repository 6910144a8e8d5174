/* gfcg-run-window.h — the window shown while the engine samples: a live
 * preview of the denoised estimate, a progress bar and a Stop button. */
#ifndef GFCG_RUN_WINDOW_H
#define GFCG_RUN_WINDOW_H

#include <gtk/gtk.h>
#include "gfcg-job.h"

G_BEGIN_DECLS

typedef struct _GfcgRunWindow GfcgRunWindow;

/* Stop (or closing the window) cancels cancellable. */
GfcgRunWindow *gfcg_run_window_new     (const char    *title,
                                        GCancellable  *cancellable);
/* text: the step in words; detail: its numbers (sigma, s), a tooltip; rgb:
 * width x height 8-bit RGB, or NULL to keep the last preview. */
void           gfcg_run_window_update  (GfcgRunWindow *window,
                                        double         fraction,
                                        const char    *text,
                                        const char    *detail,
                                        const guchar  *rgb,
                                        int            width,
                                        int            height);
/* What the Stop button does. */
void           gfcg_run_window_stop    (GfcgRunWindow *window);
void           gfcg_run_window_destroy (GfcgRunWindow *window);

/* Runs job in a worker thread behind the window (gfcg-run-ui.c); FALSE with
 * error when it failed or was stopped (GFCG_ERROR_CANCELLED). */
gboolean       gfcg_run_with_window    (GfcgJob       *job,
                                        GError       **error);

G_END_DECLS

#endif /* GFCG_RUN_WINDOW_H */
