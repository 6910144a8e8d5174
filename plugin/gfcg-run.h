/* gfcg-run.h — running a job: headless with GIMP's progress, or in a worker
 * thread behind the progress window (Stop button, live preview). */
#ifndef GFCG_RUN_H
#define GFCG_RUN_H

#include "gfcg-job.h"

G_BEGIN_DECLS

gboolean gfcg_run_headless    (GfcgJob  *job,
                               GError  **error);
gboolean gfcg_run_with_window (GfcgJob  *job,
                               GError  **error);

G_END_DECLS

#endif /* GFCG_RUN_H */
