/* gfcg-source-section.h — the dialog's "Start from" section: noise, this
 * layer or the selection (the string property `source`), and the redraw
 * strength slider (`strength`), usable only when the image offers them. */
#ifndef GFCG_SOURCE_SECTION_H
#define GFCG_SOURCE_SECTION_H

#include <libgimp/gimpui.h>

G_BEGIN_DECLS

/* What the image offers as a source: one active layer, a selection. */
typedef struct
{
  gboolean has_layer;
  gboolean has_selection;
} GfcgDialogContext;

GtkWidget *gfcg_source_section_new       (GObject                 *config,
                                          const GfcgDialogContext *where);
/* Whether config's source can run on this image; when not, *why (may be
 * NULL) gets a sentence for the dialog. */
gboolean   gfcg_source_section_possible  (GObject                 *config,
                                          const GfcgDialogContext *where,
                                          const char             **why);
/* The sampler steps a run of steps will take: all from noise, the last
 * ceil(strength x steps) from a picture. */
int        gfcg_source_section_run_steps (GObject                 *config,
                                          int                      steps);

G_END_DECLS

#endif /* GFCG_SOURCE_SECTION_H */
