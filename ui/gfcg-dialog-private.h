/* gfcg-dialog-private.h — the dialog's state, shared by gfcg-dialog.c (the
 * dialog) and gfcg-dialog-script.c (the screenshots' and tests' hooks). */
#ifndef GFCG_DIALOG_PRIVATE_H
#define GFCG_DIALOG_PRIVATE_H

#include "gfcg-dialog.h"
#include "gfcg-pack-probe.h"

G_BEGIN_DECLS

typedef struct
{
  GimpProcedureConfig *config;
  GtkWidget           *dialog;
  GtkWidget           *picker;
  GtkWidget           *pack_picker;
  GtkWidget           *pack_status;
  GtkWidget           *mode_combo;
  GtkWidget           *estimate;
  GtkWidget           *seed_spin;
  GtkWidget           *randomize;
  gboolean             rolling;      /* the dialog itself sets the seed    */
  GtkWidget           *weight;       /* the CFG/ATG weight's spin scale    */
  GtkWidget           *strength;     /* GFCG strength's                    */
  GfcgPackProbe       *probe;        /* the latest result, or NULL         */
  double               est_lo, est_hi; /* the estimate shown, in seconds    */
  gboolean             probing;
  gboolean             reprobe;      /* pack or device changed meanwhile   */
  gboolean             weights_from_pack;
  gboolean             mode_from_pack;
  guint                probe_source;
  const char          *capture;      /* $GFCG_CAPTURE_DIALOG               */
  GfcgDialogContext    where;        /* the sources the image offers       */
  const char          *help_id;      /* the procedure's, for Help          */
  char               **script;       /* $GFCG_TEST_DIALOG's steps (tests)   */
  int                  step;         /* the next one                       */
  guint                script_source;
} Dialog;

/* gfcg-dialog-script.c.  The pointer to the screen's corner (no tooltip in a
 * screenshot). */
void     gfcg_dialog_pointer_away (GtkWidget *widget);
/* A GSourceFunc (data: the Dialog): saves the dialog to $GFCG_CAPTURE_DIALOG
 * and closes it as if cancelled. */
gboolean gfcg_dialog_capture      (gpointer data);
/* A GSourceFunc (data: the Dialog): runs the next step of $GFCG_TEST_DIALOG
 * once the pack is in, and schedules the one after. */
gboolean gfcg_dialog_script_step  (gpointer data);

G_END_DECLS

#endif /* GFCG_DIALOG_PRIVATE_H */
