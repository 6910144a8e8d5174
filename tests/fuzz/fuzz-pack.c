/* fuzz-pack.c — libFuzzer harness for the model pack loader.
 *
 * gfcg_pack_load reads a directory, so the input is a small container that
 * the harness unpacks into a private temporary directory before each run:
 *
 *     <pack.json bytes>
 *     \n--file NAME\n<bytes of NAME>
 *     \n--file NAME\n<bytes of NAME>
 *     ...
 *
 * i.e. everything before the first "\n--file " line is pack.json, and each
 * "\n--file NAME\n" line starts a file that runs to the next such line or
 * the end.  NAME is 1..64 characters of [A-Za-z0-9._-] and not all dots
 * (other names are skipped); at most 8 files.  The files of the previous run
 * are removed first.  The loader only parses and validates (pack.json, the
 * safetensors headers, shapes against configs): no network is evaluated.
 * Build: meson setup build-fuzz -Dfuzz=true (CC=clang); see tools/fuzz. */
#include "gfcg/gfcg.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARK "\n--file "
#define MAX_FILES 8

static char *dir;
static GfcgContext *ctx;
static GPtrArray *written; /* paths of the previous run */

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* Networks load onto the CPU backend; one context for every run. */
  dir = g_dir_make_tmp ("fuzz-pack-XXXXXX", NULL);
  ctx = gfcg_context_new ("cpu", NULL);
  if (dir == NULL || ctx == NULL)
    abort ();
  written = g_ptr_array_new_with_free_func (g_free);
  return 0;
}

static gboolean
good_name (const char *s, gsize n)
{
  gboolean dots = TRUE;
  if (n == 0 || n > 64)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      if (!g_ascii_isalnum (s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
        return FALSE;
      dots &= s[i] == '.';
    }
  return !dots;
}

static void
put (const char *name, const uint8_t *data, gsize size)
{
  char *path = g_build_filename (dir, name, NULL);
  if (!g_file_set_contents (path, (const char *) data, (gssize) size, NULL))
    abort ();
  g_ptr_array_add (written, path);
}

static const uint8_t *
find_mark (const uint8_t *p, const uint8_t *end)
{
  gsize n = strlen (MARK);
  while (p != NULL && (gsize) (end - p) >= n)
    {
      p = memchr (p, '\n', end - p);
      if (p == NULL || (gsize) (end - p) < n)
        return NULL;
      if (memcmp (p, MARK, n) == 0)
        return p;
      p++;
    }
  return NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const uint8_t *end = data + size, *m = find_mark (data, end);
  GfcgPack *pack;
  GError *error = NULL;
  int files = 0;

  for (guint i = 0; i < written->len; i++)
    g_unlink (written->pdata[i]);
  g_ptr_array_set_size (written, 0);

  put ("pack.json", data, (m != NULL ? m : end) - data);
  while (m != NULL && files < MAX_FILES)
    {
      const uint8_t *name = m + strlen (MARK);
      const uint8_t *nl = memchr (name, '\n', end - name);
      const uint8_t *body, *next;
      if (nl == NULL)
        break;
      body = nl + 1;
      next = find_mark (body, end);
      if (good_name ((const char *) name, nl - name))
        {
          char *n = g_strndup ((const char *) name, nl - name);
          put (n, body, (next != NULL ? next : end) - body);
          g_free (n);
          files++;
        }
      m = next;
    }

  pack = gfcg_pack_load (ctx, dir, &error);
  if (pack != NULL)
    {
      char *s = gfcg_pack_describe (pack);
      g_free (s);
      for (int k = 0; k < gfcg_pack_get_n_classes (pack); k++)
        gfcg_pack_get_class (pack, k, NULL, NULL, NULL);
      gfcg_pack_free (pack);
    }
  else if (error == NULL)
    abort (); /* a failure must say why */
  if (getenv ("FUZZ_VERBOSE") != NULL)
    fprintf (stderr, "fuzz-pack: %s\n", error != NULL ? error->message : "loaded");
  g_clear_error (&error);
  return 0;
}
