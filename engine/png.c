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

/* ---- Reading ----------------------------------------------------------------
 *
 * The low-level libpng API, not the simplified one, because only it lets us
 * bound what a hostile file can make libpng do before a single row is read:
 *  - the pixel count, checked from IHDR before any row buffer exists
 *    (GFCG_MAX_IMAGE_PIXELS; libpng's own width/height limits are set to it too);
 *  - ancillary chunks: at most PNG_CHUNK_MALLOC_MAX bytes for any one chunk
 *    (a tEXt/zTXt/iTXt/sPLT chunk claiming 2^31 bytes made libpng 1.6.39 allocate
 *    2 GB for a 49-byte file), decompressed zTXt/iCCP included, and at most
 *    PNG_CHUNK_CACHE_MAX of them kept;
 *  - the engine reads no metadata, so every ancillary chunk is skipped unread
 *    (png_set_keep_unknown_chunks ... PNG_HANDLE_CHUNK_NEVER for all of them). */
#define PNG_CHUNK_MALLOC_MAX (4u << 20)
#define PNG_CHUNK_CACHE_MAX  64u

typedef struct
{
  const char   *name;
  char          message[200];
  const guint8 *mem;     /* memory source, or NULL for a FILE */
  gsize         len, pos;
  FILE         *file;
  gboolean      grey;    /* a mask: grey samples as they are (8 or 16 bits) */
} PngSource;

static void
png_fail (png_structp png, png_const_charp msg)
{
  PngSource *src = png_get_error_ptr (png);
  g_strlcpy (src->message, msg, sizeof src->message);
  png_longjmp (png, 1);
}

static void
png_quiet (png_structp png, png_const_charp msg)
{
  /* Warnings (bad CRC in an ancillary chunk, odd profiles) are not errors. */
}

static void
png_mem_read (png_structp png, png_bytep out, size_t n)
{
  PngSource *src = png_get_io_ptr (png);
  if (n > src->len - src->pos)
    png_error (png, "file truncated");
  memcpy (out, src->mem + src->pos, n);
  src->pos += n;
}

/* libpng's own FILE reader says only "Read Error". */
static void
png_file_read (png_structp png, png_bytep out, size_t n)
{
  PngSource *src = png_get_io_ptr (png);
  if (fread (out, 1, n, src->file) != n)
    png_error (png, ferror (src->file) ? g_strerror (errno) : "file truncated");
}

/* src->grey: the samples of a grey PNG (1 byte each, or 2 big-endian at 16
 * bits), else 8-bit RGB. */
static guchar *
read_png (PngSource *src, FILE *f, int *width, int *height, int *depth, GError **error)
{
  png_structp png;
  png_infop info = NULL;
  guchar *volatile buf = NULL;
  png_bytep *volatile rows = NULL;
  volatile gboolean ok = FALSE;
  volatile png_uint_32 w = 0, h = 0; /* read after a longjmp */
  volatile int bytes = 3;            /* per pixel, as read */

  /* The signature first, so that a file of another kind says so (libpng
   * would call a short one truncated). */
  {
    png_byte sig[8];
    gsize got = f != NULL ? fread (sig, 1, 8, f) : MIN (src->len, 8);
    if (f == NULL && got > 0)
      memcpy (sig, src->mem, got);
    src->pos = got;
    if (got < 8 || png_sig_cmp (sig, 0, 8) != 0)
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: not a PNG file", src->name);
        return NULL;
      }
  }
  png = png_create_read_struct (PNG_LIBPNG_VER_STRING, src, png_fail, png_quiet);
  if (png == NULL || (info = png_create_info_struct (png)) == NULL)
    {
      png_destroy_read_struct (&png, NULL, NULL);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "%s: no memory for libpng", src->name);
      return NULL;
    }
  if (setjmp (png_jmpbuf (png)) == 0)
    {
      src->file = f;
      png_set_read_fn (png, src, f != NULL ? png_file_read : png_mem_read);
      png_set_sig_bytes (png, 8);
      png_set_user_limits (png, GFCG_MAX_IMAGE_PIXELS, GFCG_MAX_IMAGE_PIXELS);
      png_set_chunk_cache_max (png, PNG_CHUNK_CACHE_MAX);
      png_set_chunk_malloc_max (png, PNG_CHUNK_MALLOC_MAX);
      png_set_keep_unknown_chunks (png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
      png_read_info (png, info);
      w = png_get_image_width (png, info);
      h = png_get_image_height (png, info);
      if ((guint64) w * h > GFCG_MAX_IMAGE_PIXELS)
        {
          g_snprintf (src->message, sizeof src->message,
                      "%ux%u pixels is too large (at most %u pixels, e.g. %ux%u)", w, h,
                      GFCG_MAX_IMAGE_PIXELS, GFCG_MAX_IMAGE_SIDE, GFCG_MAX_IMAGE_SIDE);
          png_longjmp (png, 2);
        }
      if (src->grey)
        {
          /* A mask: grey of any depth, 16 bits kept; alpha ignored. */
          if (png_get_color_type (png, info) & PNG_COLOR_MASK_COLOR)
            {
              g_strlcpy (src->message, "a mask must be a grey PNG (8 or 16 bits), this one has "
                         "colour", sizeof src->message);
              png_longjmp (png, 4);
            }
          bytes = png_get_bit_depth (png, info) == 16 ? 2 : 1;
          png_set_expand (png);
          png_set_strip_alpha (png);
        }
      else
        {
          /* Any bit depth and colour type to 8-bit RGB: palette and grey
           * expanded, 16 bits scaled, alpha dropped (the file's gamma is
           * not applied). */
          png_set_expand (png);
          png_set_scale_16 (png);
          png_set_strip_alpha (png);
          png_set_gray_to_rgb (png);
        }
      png_set_interlace_handling (png);
      png_read_update_info (png, info);
      if (png_get_rowbytes (png, info) != (gsize) w * bytes)
        png_error (png, "unexpected row layout");
      buf = g_try_malloc ((gsize) w * h * bytes);
      rows = g_try_new (png_bytep, h);
      if (buf == NULL || rows == NULL)
        {
          g_strlcpy (src->message, "no memory for the picture", sizeof src->message);
          png_longjmp (png, 3);
        }
      for (png_uint_32 y = 0; y < h; y++)
        rows[y] = buf + (gsize) y * w * bytes;
      png_read_image (png, rows);
      png_read_end (png, NULL);
      ok = TRUE;
    }
  png_destroy_read_struct (&png, &info, NULL);
  g_free (rows);
  if (!ok)
    {
      g_free (buf);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", src->name,
                   src->message[0] ? src->message : "not a readable PNG");
      return NULL;
    }
  *width = (int) w;
  *height = (int) h;
  if (depth != NULL)
    *depth = bytes == 2 ? 16 : 8;
  return buf;
}

guchar *
gfcg_read_png (const char *path, int *width, int *height, GError **error)
{
  PngSource src = { .name = path };
  guchar *rgb;
  FILE *f = g_fopen (path, "rb");

  if (f == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      return NULL;
    }
  rgb = read_png (&src, f, width, height, NULL, error);
  fclose (f);
  return rgb;
}

guchar *
gfcg_read_png_from_memory (const char *name, const guint8 *data, gsize len, int *width,
                           int *height, GError **error)
{
  PngSource src = { .name = name, .mem = data, .len = len };
  return read_png (&src, NULL, width, height, NULL, error);
}

float *
gfcg_read_png_mask (const char *path, int *width, int *height, GError **error)
{
  PngSource src = { .name = path, .grey = TRUE };
  guchar *buf;
  float *mask;
  int depth;
  gsize n;
  FILE *f = g_fopen (path, "rb");

  if (f == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      return NULL;
    }
  buf = read_png (&src, f, width, height, &depth, error);
  fclose (f);
  if (buf == NULL)
    return NULL;
  n = (gsize) *width * *height;
  if ((mask = g_try_new (float, n)) == NULL)
    {
      g_free (buf);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "%s: no memory for the mask", path);
      return NULL;
    }
  for (gsize i = 0; i < n; i++)
    mask[i] = depth == 16 ? (float) (((buf[2 * i] << 8) | buf[2 * i + 1]) / 65535.0)
                          : (float) (buf[i] / 255.0);
  g_free (buf);
  return mask;
}
