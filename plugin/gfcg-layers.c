/* gfcg-layers.c — new layers from the engine's 8-bit RGB pictures.  The
 * bytes go in through GEGL as "R'G'B' u8", the format of an 8-bit
 * perceptual RGB layer, so no colour conversion alters them there. */
#include "gfcg-layers.h"

#include <glib/gi18n-lib.h>
#include <string.h>

static GimpImageType
layer_type (GimpImage *image)
{
  switch (gimp_image_get_base_type (image))
    {
    case GIMP_GRAY:
      return GIMP_GRAY_IMAGE;
    case GIMP_INDEXED:
      return GIMP_INDEXED_IMAGE;
    default:
      return GIMP_RGB_IMAGE;
    }
}

/* With nearest, the layer is made at the canvas's size from blocks of the
 * picture's pixels (gfcg-upscale.c). */
static GimpLayer *
new_layer (GimpImage *image, GfcgJob *job, int j, gboolean nearest)
{
  int           w, h;
  const guchar *pixels = gfcg_job_get_pixels (job, j, &w, &h);
  guchar       *blocks = NULL;
  char         *name = gfcg_job_layer_name (job, j);
  char         *json = gfcg_job_parameters (job, j);
  GimpLayer    *layer;
  GeglBuffer   *buffer;
  GimpParasite *parasite;

  if (nearest)
    {
      int cw = gimp_image_get_width (image), ch = gimp_image_get_height (image);

      pixels = blocks = gfcg_upscale_nearest (pixels, w, h, cw, ch);
      w = cw;
      h = ch;
    }
  layer = gimp_layer_new (image, name, w, h, layer_type (image), 100.0,
                          gimp_image_get_default_new_layer_mode (image));
  g_free (name);
  if (layer == NULL)
    {
      g_free (blocks);
      g_free (json);
      return NULL;
    }
  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));
  gegl_buffer_set (buffer, GEGL_RECTANGLE (0, 0, w, h), 0, babl_format ("R'G'B' u8"),
                   pixels, w * 3);
  gegl_buffer_flush (buffer);
  g_object_unref (buffer);
  g_free (blocks);

  parasite = gimp_parasite_new (GFCG_PARASITE, GIMP_PARASITE_PERSISTENT | GIMP_PARASITE_UNDOABLE,
                                (guint32) strlen (json) + 1, json);
  gimp_item_attach_parasite (GIMP_ITEM (layer), parasite);
  gimp_parasite_free (parasite);
  g_free (json);
  return layer;
}

/* Centres the layer on the canvas; smooth first scales it to cover the
 * canvas, keeping its aspect ratio, with LoHalo (GIMP's choice for large
 * factors: a 64-px picture on a photo's canvas grows 20 times or more), then
 * crops it to the canvas so that nothing hangs outside. */
static void
place (GimpImage *image, GimpLayer *layer, GfcgUpscale upscale)
{
  int    iw = gimp_image_get_width (image), ih = gimp_image_get_height (image);
  int    lw = gimp_drawable_get_width (GIMP_DRAWABLE (layer));
  int    lh = gimp_drawable_get_height (GIMP_DRAWABLE (layer));

  if (upscale == GFCG_UPSCALE_SMOOTH && (lw != iw || lh != ih))
    {
      double f = MAX ((double) iw / lw, (double) ih / lh);

      lw = MAX (iw, (int) (lw * f + 0.5));
      lh = MAX (ih, (int) (lh * f + 0.5));
      gimp_context_push ();
      gimp_context_set_interpolation (GIMP_INTERPOLATION_LOHALO);
      gimp_layer_scale (layer, lw, lh, FALSE);
      gimp_context_pop ();
      gimp_layer_resize (layer, iw, ih, -(lw - iw) / 2, -(lh - ih) / 2);
      lw = iw;
      lh = ih;
    }
  gimp_layer_set_offsets (layer, (iw - lw) / 2, (ih - lh) / 2);
}

GimpImage *
gfcg_layers_add (GimpImage *image, GfcgJob *job, GfcgUpscale upscale, gboolean display,
                 GError **error)
{
  gboolean created = image == NULL;
  gboolean ok = TRUE;

  if (job->images->len == 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "no picture was drawn");
      return NULL;
    }
  if (created)
    {
      GfcgImage *img = g_ptr_array_index (job->images, 0);

      image = gimp_image_new (gfcg_image_get_width (img), gfcg_image_get_height (img), GIMP_RGB);
      gimp_image_undo_disable (image);
    }
  else
    {
      gimp_image_undo_group_start (image);
    }

  for (guint j = 0; j < job->images->len; j++)
    {
      const GfcgSourceRegion *src = job->source;
      gboolean   from_noise = src == NULL || src->kind == GFCG_SOURCE_NOISE;
      GimpLayer *layer = new_layer (image, job, (int) j,
                                    from_noise && !created && upscale == GFCG_UPSCALE_NEAREST);
      gboolean inserted;

      /* A refine or fill goes right above its source, over its region. */
      if (src != NULL && src->kind != GFCG_SOURCE_NOISE)
        inserted = layer != NULL &&
                   gimp_image_insert_layer (image, layer,
                                            GIMP_LAYER (gimp_item_get_parent (GIMP_ITEM (src->drawable))),
                                            gimp_image_get_item_position (image,
                                                                          GIMP_ITEM (src->drawable)));
      else
        inserted = layer != NULL && gimp_image_insert_layer (image, layer, NULL, -1);
      if (!inserted)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, _("GIMP refused the new layer"));
          ok = FALSE;
          break;
        }
      if (src != NULL && src->kind != GFCG_SOURCE_NOISE)
        {
          int ox, oy;
          gimp_drawable_get_offsets (src->drawable, &ox, &oy);
          gimp_layer_set_offsets (layer, ox + src->x, oy + src->y);
        }
      else
        place (image, layer, upscale);
    }

  if (created)
    {
      gimp_image_undo_enable (image);
      if (display)
        gimp_display_new (image);
    }
  else
    {
      gimp_image_undo_group_end (image);
    }
  if (!ok)
    return NULL;
  gimp_displays_flush ();
  return image;
}
