/* gfcg-upscale.h — how a picture smaller than the canvas is brought to it
 * (the `upscale` argument): a 64-px pack on a real canvas is otherwise a
 * postage stamp, and the default interpolation turns it into a smear. */
#ifndef GFCG_UPSCALE_H
#define GFCG_UPSCALE_H

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  GFCG_UPSCALE_NONE,     /* centred at its own size                         */
  GFCG_UPSCALE_NEAREST,  /* whole-number blocks of pixels, cropped to the
                            canvas                                          */
  GFCG_UPSCALE_SMOOTH,   /* GIMP's LoHalo, cropped to the canvas            */
} GfcgUpscale;

#define GFCG_UPSCALE_NAMES "none, nearest, smooth"

/* "none", "nearest" or "smooth"; "" follows the older boolean
 * scale-to-canvas (TRUE: smooth, FALSE: none).  FALSE for anything else. */
gboolean    gfcg_upscale_from_string (const char  *name,
                                      gboolean     scale_to_canvas,
                                      GfcgUpscale *upscale);
const char *gfcg_upscale_to_string   (GfcgUpscale  upscale);

/* The whole-number factor that covers a cw x ch canvas with a w x h picture
 * (at least 1: a picture larger than the canvas is only cropped). */
int         gfcg_upscale_factor      (int w, int h, int cw, int ch);

/* The w x h RGB picture blown up by gfcg_upscale_factor, each pixel a k x k
 * block, centred and cropped to cw x ch (RGB, cw * 3 bytes a row). */
guchar     *gfcg_upscale_nearest     (const guchar *rgb, int w, int h, int cw, int ch);

G_END_DECLS

#endif /* GFCG_UPSCALE_H */
