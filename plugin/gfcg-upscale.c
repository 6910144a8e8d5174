/* gfcg-upscale.c — the upscale choices, and the nearest-neighbour one done
 * here rather than by GIMP: exact blocks of each pixel, whatever GEGL's
 * sampler does at a half-pixel. */
#include "gfcg-upscale.h"

#include <math.h>
#include <string.h>

static const char *const names[] = { "none", "nearest", "smooth" };

gboolean
gfcg_upscale_from_string (const char *name, gboolean scale_to_canvas, GfcgUpscale *upscale)
{
  if (name == NULL || *name == '\0')
    {
      *upscale = scale_to_canvas ? GFCG_UPSCALE_SMOOTH : GFCG_UPSCALE_NONE;
      return TRUE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_ascii_strcasecmp (name, names[i]) == 0)
      {
        *upscale = (GfcgUpscale) i;
        return TRUE;
      }
  return FALSE;
}

const char *
gfcg_upscale_to_string (GfcgUpscale upscale)
{
  return (guint) upscale < G_N_ELEMENTS (names) ? names[upscale] : "none";
}

int
gfcg_upscale_factor (int w, int h, int cw, int ch)
{
  double f = MAX ((double) cw / w, (double) ch / h);

  /* The smallest whole factor that covers the canvas: the blocks stay
   * square and equal, and at most one block row hangs over each side. */
  return MAX (1, (int) ceil (f - 1e-9));
}

guchar *
gfcg_upscale_nearest (const guchar *rgb, int w, int h, int cw, int ch)
{
  int     k = gfcg_upscale_factor (w, h, cw, ch);
  int     ox = (w * k - cw) / 2, oy = (h * k - ch) / 2;
  guchar *out = g_malloc ((gsize) cw * ch * 3);

  for (int y = 0; y < ch; y++)
    {
      const guchar *row = rgb + (gsize) ((y + oy) / k) * w * 3;
      guchar       *o = out + (gsize) y * cw * 3;

      for (int x = 0; x < cw; x++)
        memcpy (o + x * 3, row + ((x + ox) / k) * 3, 3);
    }
  return out;
}
