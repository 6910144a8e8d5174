/* gfcg-source.h — the picture a refine or fill starts from: the `source`
 * argument read from GIMP (the active layer, or the selection's bounding box
 * on it, with the selection as the mask), as plain 8-bit arrays the job can
 * hand to the engine without calling GIMP. */
#ifndef GFCG_SOURCE_H
#define GFCG_SOURCE_H

#include <libgimp/gimp.h>

G_BEGIN_DECLS

typedef enum
{
  GFCG_SOURCE_NOISE,      /* paint from noise: no picture is read     */
  GFCG_SOURCE_LAYER,      /* redraw the whole active layer            */
  GFCG_SOURCE_SELECTION,  /* redraw the selection; keep the rest      */
} GfcgSourceKind;

typedef struct
{
  GfcgSourceKind kind;
  GimpDrawable  *drawable;      /* the source layer, not owned             */
  int            x, y;          /* the region, in the drawable's pixels    */
  int            width, height;
  guchar        *rgb;           /* width x height x 3, R'G'B' u8           */
  guchar        *mask;          /* width x height, 255 = redraw; NULL: all */
} GfcgSourceRegion;

/* "noise", "layer" or "selection" ("" = noise). */
gboolean gfcg_source_parse (const char     *name,
                            GfcgSourceKind *kind,
                            GError        **error);
/* Reads the source the argument names.  Refusals are calling errors that
 * start with "source: " (no drawable, several, an empty selection or one
 * that misses the layer). */
gboolean gfcg_source_read  (GfcgSourceRegion     *source,
                            const char     *name,
                            GimpImage      *image,
                            GimpDrawable  **drawables,
                            GError        **error);
void     gfcg_source_clear (GfcgSourceRegion     *source);

G_END_DECLS

#endif /* GFCG_SOURCE_H */
