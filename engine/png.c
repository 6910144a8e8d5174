/* png.c — 8-bit RGB PNG in and out with libpng's simplified API. */
#include "gfcg-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <png.h>
#include <string.h>
#include <unistd.h>

gboolean
gfcg_write_png (const char *path, const guchar *rgb, int width, int height,
                const char *comment, GError **error)
{
  png_structp png;
  png_infop info;
  FILE *f;
  volatile gboolean ok = FALSE; /* survives png's longjmp */
  /* Written beside the target and renamed at the end, so that a failed or
   * interrupted write never leaves a broken file in place of a good one. */
  char *tmp = g_strdup_printf ("%s.part-%d", path, (int) getpid ());

  f = g_fopen (tmp, "wb");
  if (f == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      g_free (tmp);
      return FALSE;
    }
  png = png_create_write_struct (PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  info = png != NULL ? png_create_info_struct (png) : NULL;
  if (info != NULL && setjmp (png_jmpbuf (png)) == 0)
    {
      png_init_io (png, f);
      png_set_IHDR (png, info, (png_uint_32) width, (png_uint_32) height, 8, PNG_COLOR_TYPE_RGB,
                    PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
      if (comment != NULL)
        {
          /* The parameters that reproduce the picture travel with it. */
          png_text text = { 0 };
          text.compression = PNG_TEXT_COMPRESSION_NONE;
          text.key = (png_charp) "gfcg";
          text.text = (png_charp) comment;
          png_set_text (png, info, &text, 1);
        }
      png_write_info (png, info);
      for (int y = 0; y < height; y++)
        png_write_row (png, rgb + (gsize) y * width * 3);
      png_write_end (png, NULL);
      ok = TRUE;
    }
  png_destroy_write_struct (&png, &info);
  if (fclose (f) != 0)
    ok = FALSE;
  if (ok && g_rename (tmp, path) != 0)
    ok = FALSE;
  if (!ok)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: could not write the PNG (%s)", path,
                   g_strerror (errno));
      g_unlink (tmp);
    }
  g_free (tmp);
  return ok;
}

guchar *
gfcg_read_png (const char *path, int *width, int *height, GError **error)
{
  png_image img;
  guchar *buf;

  memset (&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file (&img, path))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, img.message);
      return NULL;
    }
  if (img.width == 0 || img.height == 0 || img.width > 16384 || img.height > 16384)
    {
      png_image_free (&img);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: unsupported size %ux%u", path,
                   img.width, img.height);
      return NULL;
    }
  img.format = PNG_FORMAT_RGB;
  buf = g_malloc (PNG_IMAGE_SIZE (img));
  if (!png_image_finish_read (&img, NULL, buf, 0, NULL))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, img.message);
      g_free (buf);
      png_image_free (&img);
      return NULL;
    }
  *width = (int) img.width;
  *height = (int) img.height;
  return buf;
}
