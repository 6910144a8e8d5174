/* checksums.c — what `gfcg models` knows about a file's bytes: sizes for
 * people, the download cache folder, SHA-256 of a file, the checksums recorded
 * on first use ($XDG_DATA_HOME/gfcg/recorded-checksums.json) and the check of
 * a finished download against them.  Also the Ctrl-C flag every step polls. */
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

volatile sig_atomic_t models_interrupted = 0;

static void
on_signal (int sig)
{
  (void) sig;
  models_interrupted = 1;
}

void
models_catch_signals (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
}

char *
models_format_size (gint64 bytes)
{
  if (bytes < 0)
    return g_strdup ("?");
  if (bytes >= 1000000000)
    return g_strdup_printf ("%.2f GB", bytes / 1e9);
  if (bytes >= 100000000)
    return g_strdup_printf ("%.0f MB", bytes / 1e6);
  if (bytes >= 1000000)
    return g_strdup_printf ("%.1f MB", bytes / 1e6);
  if (bytes >= 1000)
    return g_strdup_printf ("%.0f kB", bytes / 1e3);
  return g_strdup_printf ("%" G_GINT64_FORMAT " B", bytes);
}

char *
models_cache_dir (void)
{
  return g_build_filename (g_get_user_cache_dir (), "gfcg", "downloads", NULL);
}

static GError *
cancelled_error (void)
{
  return g_error_new (GFCG_ERROR, GFCG_ERROR_CANCELLED, "interrupted");
}

char *
models_sha256_file (const char *path, gint64 *size, GError **error)
{
  GChecksum *sum;
  guchar    *buf;
  gint64     total = 0;
  char      *hex = NULL;
  int        fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      return NULL;
    }
  sum = g_checksum_new (G_CHECKSUM_SHA256);
  buf = g_malloc (1 << 20);
  for (;;)
    {
      ssize_t n = read (fd, buf, 1 << 20);

      if (n < 0 && errno == EINTR && !models_interrupted)
        continue;
      if (models_interrupted)
        {
          g_propagate_error (error, cancelled_error ());
          goto out;
        }
      if (n < 0)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
          goto out;
        }
      if (n == 0)
        break;
      g_checksum_update (sum, buf, n);
      total += n;
    }
  hex = g_strdup (g_checksum_get_string (sum));
  if (size != NULL)
    *size = total;
out:
  close (fd);
  g_free (buf);
  g_checksum_free (sum);
  return hex;
}

/* ---- checksums recorded on first use ------------------------------------- */

static char *
records_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "gfcg", "recorded-checksums.json", NULL);
}

static JsonObject *
records_load (void)
{
  JsonParser *parser = json_parser_new ();
  char       *path = records_path ();
  JsonObject *o = NULL;

  if (json_parser_load_from_file (parser, path, NULL) && json_parser_get_root (parser) != NULL
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    o = json_object_ref (json_node_get_object (json_parser_get_root (parser)));
  g_object_unref (parser);
  g_free (path);
  return o != NULL ? o : json_object_new ();
}

char *
models_record_lookup (const char *file, char **when)
{
  JsonObject *all = records_load ();
  JsonObject *r = json_object_has_member (all, file)
                  && JSON_NODE_HOLDS_OBJECT (json_object_get_member (all, file))
                  ? json_object_get_object_member (all, file) : NULL;
  char       *sha = NULL;

  if (r != NULL)
    {
      sha = g_strdup (json_object_get_string_member_with_default (r, "sha256", NULL));
      *when = g_strdup (json_object_get_string_member_with_default (r, "recorded", "?"));
    }
  json_object_unref (all);
  return sha;
}

void
models_record_store (const char *file, const char *sha, gint64 size, const char *url)
{
  JsonObject    *all = records_load ();
  JsonObject    *r = json_object_new ();
  JsonNode      *root = json_node_new (JSON_NODE_OBJECT);
  GDateTime     *now = g_date_time_new_now_utc ();
  char          *path = records_path (), *dir = g_path_get_dirname (path), *when;
  GError        *err = NULL;

  when = g_date_time_format_iso8601 (now);
  json_object_set_string_member (r, "sha256", sha);
  json_object_set_int_member (r, "size", size);
  json_object_set_string_member (r, "url", url);
  json_object_set_string_member (r, "recorded", when);
  json_object_set_object_member (all, file, r);
  json_node_take_object (root, all);
  g_mkdir_with_parents (dir, 0755);
  {
    char *text = gfcg_json_to_data (root, TRUE, NULL);

    /* g_file_set_contents writes a temporary file and renames it. */
    if (!g_file_set_contents (path, text, -1, &err))
      {
        g_printerr ("gfcg models: could not record the checksum: %s\n", err->message);
        g_error_free (err);
      }
    g_free (text);
  }
  g_free (when);
  g_date_time_unref (now);
  g_free (dir);
  g_free (path);
  json_node_unref (root);
}

/* ---- checking a file --------------------------------------------------------- */

/* TRUE when the file at path is f as published (or recorded). */
gboolean
models_check_file (const CatalogFile *f, const char *path, const char *expected,
                   const char *origin, char **sha_out, GError **error)
{
  gint64 size;
  char  *sha = models_sha256_file (path, &size, error);

  if (sha == NULL)
    return FALSE;
  if (f->size >= 0 && size != f->size)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s: %" G_GINT64_FORMAT " bytes, the catalog says %" G_GINT64_FORMAT,
                 f->file, size, f->size);
  else if (expected != NULL && strcmp (sha, expected) != 0)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s: wrong checksum: sha256 %s, %s %s", f->file, sha, origin, expected);
  else if (f->sha256_prefix != NULL && !g_str_has_prefix (sha, f->sha256_prefix))
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s: wrong checksum: sha256 %s does not start with %s as its name says",
                 f->file, sha, f->sha256_prefix);
  else
    {
      if (sha_out != NULL)
        *sha_out = sha;
      else
        g_free (sha);
      return TRUE;
    }
  g_free (sha);
  return FALSE;
}
