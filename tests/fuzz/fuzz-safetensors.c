/* fuzz-safetensors.c — libFuzzer harness for the safetensors reader.
 *
 * The input is one safetensors file.  It is written to a private temporary
 * directory (gfcg_st_open maps a path), opened, and every entry the header
 * validated is converted to floats with its own shape, so the range and
 * overlap checks and the F32/F16/BF16 conversions all run.
 * Build: meson setup build-fuzz -Dfuzz=true (CC=clang); see tools/fuzz. */
#include "gfcg/gfcg-safetensors.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <stdlib.h>

static char *path;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  char *dir = g_dir_make_tmp ("fuzz-st-XXXXXX", NULL);
  if (dir == NULL)
    abort ();
  path = g_build_filename (dir, "x.safetensors", NULL);
  g_free (dir);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GfcgSafetensors *st;

  if (!g_file_set_contents (path, (const char *) data, (gssize) size, NULL))
    abort ();
  st = gfcg_st_open (path, NULL);
  if (st != NULL)
    {
      for (guint i = 0; i < gfcg_st_n (st); i++)
        {
          const GfcgStEntry *e = gfcg_st_entry (st, i);
          float *x = gfcg_st_read (st, e->name, e->ndim, e->shape, NULL);
          if (x != NULL && e->numel > 0)
            {
              volatile float sink = x[0] + x[e->numel - 1];
              (void) sink;
            }
          g_free (x);
        }
      (void) gfcg_st_n_unused (st);
      gfcg_st_close (st);
    }
  return 0;
}
