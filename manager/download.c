/* download.c — fetching one catalog file into the download cache.
 *
 * Bytes go to FILE.part in $XDG_CACHE_HOME/gfcg/downloads; an interrupted
 * transfer leaves the .part behind and the next fetch asks only for the rest
 * (an HTTP Range request; a server that answers with the whole file instead
 * is handled by starting over).  The finished file is checked against the
 * catalog's size and SHA-256 before it is renamed to FILE: a wrong file is
 * deleted and refused.  Files the publisher gives no checksum for are
 * trusted on first use: the first fetch records their SHA-256 in
 * $XDG_DATA_HOME/gfcg/recorded-checksums.json and later fetches must match.
 *
 * Only a file known whole is checked, installed or recorded: the response
 * framed it (a Content-Length, or a 206's Content-Range total, that the bytes
 * reach, the last chunk of a chunked body, an HTTP/2 or 3 stream's end), or
 * the catalog gives a size or checksum that tells a cut file from the whole.
 * A body that just stops when the server closes the connection could be
 * either.  A transfer is stopped, and its .part deleted, as soon as it passes
 * the catalog's size (or, without one, limit_of's cap): a .part is kept only
 * when it holds bytes worth resuming from. */
#include "models.h"

#ifdef GFCG_HAVE_CURL
#include <curl/curl.h>
#endif
#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* TRUE when models_check_file can tell a truncated f from the whole one: the
 * catalog gives its size, or a checksum (published, recorded at the first
 * download, or the digits in its name) is known. */
static gboolean
checkable (const CatalogFile *f, const char *expected)
{
  return f->size >= 0 || expected != NULL || f->sha256_prefix != NULL;
}

static void
unverifiable_error (const CatalogFile *f, const char *url, const char *part, GError **error)
{
  GStatBuf st;
  char    *k = models_format_size (g_stat (part, &st) == 0 ? (gint64) st.st_size : 0);

  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
               "%s: cannot tell whether the download is complete: %s gave neither a "
               "Content-Length nor a chunked end, and the catalog has no size or sha256 for it; "
               "nothing was installed or recorded (%s kept in %s: fetching again asks for the "
               "rest)", f->file, url, k, part);
  g_free (k);
}

char *
models_download (const CatalogFile *f, gboolean quiet, char **sha256, GError **error)
{
  char       *dir = models_cache_dir ();
  char       *path = g_build_filename (dir, f->file, NULL);
  char       *part = g_strconcat (path, ".part", NULL);
  char       *when = NULL, *recorded = f->sha256 == NULL ? models_record_lookup (f->file, &when) : NULL;
  const char *expected = f->sha256 != NULL ? f->sha256 : recorded;
  char       *origin = f->sha256 != NULL ? g_strdup ("the catalog says")
                       : g_strdup_printf ("its first download (%s) had", when != NULL ? when : "?");
  char       *sha = NULL;
  GError     *err = NULL;
  gboolean    ok = FALSE, complete = FALSE;
  const char *url = f->urls[0];

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", dir, g_strerror (errno));
      goto out;
    }
  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      if (models_check_file (f, path, expected, origin, &sha, &err))
        {
          if (!quiet)
            g_printerr ("  %s: in the download cache, checked\n", f->file);
          ok = TRUE;
          goto out;
        }
      if (g_error_matches (err, GFCG_ERROR, GFCG_ERROR_CANCELLED))
        {
          g_propagate_error (error, err);
          goto out;
        }
      g_printerr ("  %s (cached copy deleted, downloading again)\n", err->message);
      g_clear_error (&err);
      g_unlink (path);
    }
  for (guint i = 0; f->urls[i] != NULL; i++)
    {
      url = f->urls[i];
      if (!quiet)
        g_printerr ("  %s: from %s\n", f->file, url);
      if (models_transfer (f, url, part, quiet, &complete, &err))
        break;
      if (g_error_matches (err, GFCG_ERROR, GFCG_ERROR_CANCELLED) || f->urls[i + 1] == NULL
          || err->code != GFCG_ERROR_IO || strstr (err->message, "writing ") == err->message)
        {
          g_propagate_error (error, err);
          goto out;
        }
      g_printerr ("  %s; trying the next address\n", err->message);
      g_clear_error (&err);
    }
  if (!complete && !checkable (f, expected))
    {
      unverifiable_error (f, url, part, error);
      goto out;
    }
  if (!models_check_file (f, part, expected, origin, &sha, &err))
    {
      if (!g_error_matches (err, GFCG_ERROR, GFCG_ERROR_CANCELLED))
        {
          /* A wrong file is never kept, nor resumed from. */
          g_unlink (part);
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s (from %s); the file was deleted and nothing was installed",
                       err->message, url);
          g_clear_error (&err);
        }
      else
        g_propagate_error (error, err);
      goto out;
    }
  if (g_rename (part, path) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      goto out;
    }
  ok = TRUE;
out:
  if (ok && expected == NULL)
    {
      gint64 size = 0;
      GStatBuf st;

      if (g_stat (path, &st) == 0)
        size = st.st_size;
      models_record_store (f->file, sha, size, url);
      if (!quiet)
        g_printerr ("  %s: no published checksum; recorded sha256 %s (later fetches must match)\n",
                    f->file, sha);
    }
  if (ok && sha256 != NULL)
    *sha256 = g_steal_pointer (&sha);
  g_free (sha);
  g_free (origin);
  g_free (recorded);
  g_free (when);
  g_free (part);
  g_free (dir);
  if (!ok)
    g_clear_pointer (&path, g_free);
  return path;
}
