/* gfcg-dialog.h — the plug-in's GimpProcedureDialog: class picker, guidance
 * settings with the pack's defaults, seed, pack and device pickers, where
 * to start from (noise, the layer, the selection), and an estimate of time
 * and memory. */
#ifndef GFCG_DIALOG_H
#define GFCG_DIALOG_H

#include <libgimp/gimpui.h>
#include "gfcg-job.h"
#include "gfcg-source-section.h"

G_BEGIN_DECLS

/* Runs the dialog on config; TRUE when the user pressed OK.  With
 * $GFCG_CAPTURE_DIALOG set to a PNG path the dialog saves a picture of
 * itself there once it is shown and the estimate is in (after the steps of
 * $GFCG_TEST_DIALOG, when set), and returns FALSE (tools/capture-dialog); $GFCG_TEST_DIALOG is a script of steps for the
 * tests, separated by ';' ("type:golden retreiver;print;ok": type in the
 * class search, print the dialog's state on stderr, press Draw; the steps
 * are listed at gfcg_dialog_script_step in gfcg-dialog-script.c).  *loaded gets the pack the
 * dialog loaded last (or NULL), for gfcg_job_new.  where says which sources
 * the image offers. */
gboolean gfcg_dialog_run (GimpProcedure           *procedure,
                          GimpProcedureConfig     *config,
                          const GfcgDialogContext *where,
                          GfcgLoadedPack         **loaded);

G_END_DECLS

#endif /* GFCG_DIALOG_H */
