/* gfcg-source.c — reads the picture a refine or fill starts from.  The
 * pixels come out of GEGL as "R'G'B' u8", as the layers go back in
 * (gfcg-layers.c), so an untouched pixel makes the round trip unchanged.
 * Alpha is dropped: the engine draws opaque pictures, and the new layer is
 * opaque inside the region (a transparent source pixel gives its colour
 * channels, whatever they hold). */
#include "gfcg-source.h"
#include <gfcg/gfcg.h>

#include <glib/gi18n-lib.h>
#include <string.h>

static gboolean
source_error (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
source_error (GError **error, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "source: %s", msg);
  g_free (msg);
  return FALSE;
}

gboolean
gfcg_source_parse (const char *name, GfcgSourceKind *kind, GError **error)
{
  if (name == NULL || *name == '\0' || g_ascii_strcasecmp (name, "noise") == 0)
    *kind = GFCG_SOURCE_NOISE;
  else if (g_ascii_strcasecmp (name, "layer") == 0)
    *kind = GFCG_SOURCE_LAYER;
  else if (g_ascii_strcasecmp (name, "selection") == 0)
    *kind = GFCG_SOURCE_SELECTION;
  else
    return source_error (error, "unknown source '%s' (noise, layer or selection)", name);
  return TRUE;
}

/* The selection's bounding box on the drawable, in its pixels, and the
 * selection's values there as the mask. */
static gboolean
read_selection (GfcgSourceRegion *s, GimpImage *image, GError **error)
{
  gboolean    non_empty = FALSE;
  int         x1, y1, x2, y2, ox, oy;
  int         dw = gimp_drawable_get_width (s->drawable);
  int         dh = gimp_drawable_get_height (s->drawable);
  GeglBuffer *buffer;

  if (!gimp_selection_bounds (image, &non_empty, &x1, &y1, &x2, &y2) || !non_empty)
    return source_error (error, "'selection' needs a selection, and the image has none "
                         "(select a region, or use source 'layer')");
  gimp_drawable_get_offsets (s->drawable, &ox, &oy);
  /* Image to drawable coordinates, clipped to the drawable. */
  x1 = MAX (x1 - ox, 0);
  y1 = MAX (y1 - oy, 0);
  x2 = MIN (x2 - ox, dw);
  y2 = MIN (y2 - oy, dh);
  if (x2 <= x1 || y2 <= y1)
    return source_error (error, "the selection does not overlap the layer '%s'",
                         gimp_item_get_name (GIMP_ITEM (s->drawable)));
  s->x = x1;
  s->y = y1;
  s->width = x2 - x1;
  s->height = y2 - y1;
  s->mask = g_malloc ((gsize) s->width * s->height);
  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (gimp_image_get_selection (image)));
  gegl_buffer_get (buffer, GEGL_RECTANGLE (x1 + ox, y1 + oy, s->width, s->height), 1.0,
                   babl_format ("Y u8"), s->mask, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  return TRUE;
}

gboolean
gfcg_source_read (GfcgSourceRegion *s, const char *name, GimpImage *image, GimpDrawable **drawables,
                  GError **error)
{
  GeglBuffer *buffer;
  int         n = 0;

  memset (s, 0, sizeof *s);
  if (!gfcg_source_parse (name, &s->kind, error))
    return FALSE;
  if (s->kind == GFCG_SOURCE_NOISE)
    return TRUE;
  while (drawables != NULL && drawables[n] != NULL)
    n++;
  if (image == NULL || n == 0)
    return source_error (error, "'%s' needs an image with an active layer", name);
  if (n > 1)
    return source_error (error, "'%s' needs one active layer, and %d are selected", name, n);
  if (!GIMP_IS_LAYER (drawables[0]))
    return source_error (error, "'%s' needs a layer, and '%s' is not one", name,
                         gimp_item_get_name (GIMP_ITEM (drawables[0])));
  s->drawable = drawables[0];
  s->width = gimp_drawable_get_width (s->drawable);
  s->height = gimp_drawable_get_height (s->drawable);
  if (s->kind == GFCG_SOURCE_SELECTION && !read_selection (s, image, error))
    {
      gfcg_source_clear (s);
      return FALSE;
    }
  if ((guint64) s->width * s->height > GFCG_MAX_IMAGE_PIXELS)
    {
      source_error (error, "the region is %d x %d pixels; the largest source is %u pixels "
                    "(select a smaller part)", s->width, s->height, GFCG_MAX_IMAGE_PIXELS);
      gfcg_source_clear (s);
      return FALSE;
    }
  s->rgb = g_malloc ((gsize) s->width * s->height * 3);
  buffer = gimp_drawable_get_buffer (s->drawable);
  gegl_buffer_get (buffer, GEGL_RECTANGLE (s->x, s->y, s->width, s->height), 1.0,
                   babl_format ("R'G'B' u8"), s->rgb, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  return TRUE;
}

void
gfcg_source_clear (GfcgSourceRegion *s)
{
  g_clear_pointer (&s->rgb, g_free);
  g_clear_pointer (&s->mask, g_free);
  s->drawable = NULL;
}
