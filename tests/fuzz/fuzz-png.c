/* fuzz-png.c — libFuzzer harness for the engine's PNG reader.
 *
 * The input is one PNG file, read from memory by gfcg_read_png_from_memory
 * (the same code as gfcg_read_png, with the same pixel cap and libpng chunk
 * limits).  A decoded picture is checked to be the size it claims.
 * Build: meson setup build-fuzz -Dfuzz=true (CC=clang); see tools/fuzz. */
#include "gfcg/gfcg.h"

#include <stdint.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int w = 0, h = 0;
  GError *error = NULL;
  guchar *rgb = gfcg_read_png_from_memory ("fuzz.png", data, size, &w, &h, &error);

  if (rgb != NULL)
    {
      volatile guchar sink;
      if (w <= 0 || h <= 0 || (guint64) w * h > GFCG_MAX_IMAGE_PIXELS)
        abort ();
      sink = rgb[0] ^ rgb[(gsize) w * h * 3 - 1]; /* ASan checks the extent */
      (void) sink;
      g_free (rgb);
    }
  else if (error == NULL)
    abort (); /* a failure must say why */
  g_clear_error (&error);
  return 0;
}
