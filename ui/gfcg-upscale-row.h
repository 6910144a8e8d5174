/* gfcg-upscale-row.h — the dialog's Upscale choice (none, nearest, smooth),
 * bound to the `upscale` argument and kept in step with the older
 * `scale-to-canvas`. */
#ifndef GFCG_UPSCALE_ROW_H
#define GFCG_UPSCALE_ROW_H

#include <libgimp/gimpui.h>

G_BEGIN_DECLS

GtkWidget *gfcg_upscale_row_new (GObject *config);

G_END_DECLS

#endif /* GFCG_UPSCALE_ROW_H */
