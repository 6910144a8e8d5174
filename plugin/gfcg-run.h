/* gfcg-run.h — running a job headless with GIMP's progress (the window's
 * run, gfcg_run_with_window, is in ui/gfcg-run-window.h). */
#ifndef GFCG_RUN_H
#define GFCG_RUN_H

#include "gfcg-job.h"

G_BEGIN_DECLS

gboolean gfcg_run_headless    (GfcgJob  *job,
                               GError  **error);
/* Overall progress of picture `picture` of the job, 0..1. */
double   gfcg_run_fraction    (GfcgJob            *job,
                               int                 picture,
                               const GfcgProgress *p);
/* "Step 3 of 32\nsteering away from Welsh springer spaniel" for people. */
char    *gfcg_run_status_text (GfcgJob            *job,
                               int                 picture,
                               const GfcgProgress *p);
/* The numbers behind it, for a tooltip: "Noise level sigma = 12.5; GFCG
 * strength s = 0.42". */
char    *gfcg_run_status_detail (GfcgJob            *job,
                                 int                 picture,
                                 const GfcgProgress *p);

G_END_DECLS

#endif /* GFCG_RUN_H */
