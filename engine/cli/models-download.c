/* models-download.c — fetching one catalog file into the download cache.
 *
 * Bytes go to FILE.part in $XDG_CACHE_HOME/gfcg/downloads; an interrupted
 * transfer leaves the .part behind and the next fetch asks only for the rest
 * (an HTTP Range request; a server that answers with the whole file instead
 * is handled by starting over).  The finished file is checked against the
 * catalog's size and SHA-256 before it is renamed to FILE: a wrong file is
 * deleted and refused.  Files the publisher gives no checksum for are
 * trusted on first use: the first fetch records their SHA-256 in
 * $XDG_DATA_HOME/gfcg/recorded-checksums.json and later fetches must match. */
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

static char *
record_lookup (const char *file, char **when)
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

static void
record_store (const char *file, const char *sha, gint64 size, const char *url)
{
  JsonObject    *all = records_load ();
  JsonObject    *r = json_object_new ();
  JsonNode      *root = json_node_new (JSON_NODE_OBJECT);
  JsonGenerator *gen = json_generator_new ();
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
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
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
  g_object_unref (gen);
  json_node_unref (root);
}

/* ---- checking a file --------------------------------------------------------- */

/* TRUE when the file at path is f as published (or recorded). */
static gboolean
check_file (const CatalogFile *f, const char *path, const char *expected, const char *origin,
            char **sha_out, GError **error)
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

#ifdef GFCG_HAVE_CURL

/* ---- one transfer -------------------------------------------------------------- */

typedef struct
{
  CURL       *curl;
  int         fd;
  const char *part;
  const char *label;
  gint64      offset;     /* bytes kept from an earlier transfer          */
  gint64      known_size;
  gboolean    first;
  gboolean    restarted;  /* the server ignored the Range request         */
  int         write_errno;
  gboolean    quiet, tty;
  gint64      t0, last;
  int         last_decile;
} Xfer;

static size_t
on_write (char *data, size_t size, size_t nmemb, void *user)
{
  Xfer  *x = user;
  size_t n = size * nmemb, done = 0;

  if (x->first)
    {
      long code = 0;

      x->first = FALSE;
      curl_easy_getinfo (x->curl, CURLINFO_RESPONSE_CODE, &code);
      if (x->offset > 0 && code == 200)
        {
          /* The whole file instead of the rest: start the .part over. */
          if (ftruncate (x->fd, 0) != 0 || lseek (x->fd, 0, SEEK_SET) != 0)
            {
              x->write_errno = errno;
              return 0;
            }
          x->restarted = TRUE;
          if (!x->quiet)
            g_printerr ("  %s: the server does not resume; starting over\n", x->label);
        }
    }
  while (done < n)
    {
      ssize_t w = write (x->fd, data + done, n - done);

      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        {
          x->write_errno = w < 0 ? errno : ENOSPC;
          return 0; /* libcurl stops with CURLE_WRITE_ERROR */
        }
      done += w;
    }
  return n;
}

static void
print_progress (Xfer *x, gint64 now_bytes, gint64 total, gboolean final)
{
  gint64 now = g_get_monotonic_time ();
  double secs = (now - x->t0) / 1e6;
  char  *have, *all;

  if (x->quiet)
    return;
  if (!final)
    {
      int decile = total > 0 ? (int) (10 * now_bytes / total) : 0;

      /* A terminal gets a live line; a log one line per tenth. */
      if (x->tty ? now - x->last < 250000
                 : decile == x->last_decile || decile <= 0 || decile >= 10)
        return;
      x->last_decile = decile;
    }
  x->last = now;
  have = models_format_size (now_bytes);
  all = models_format_size (total > 0 ? total : -1);
  g_printerr ("%s  %s: %s / %s", x->tty ? "\r" : "", x->label, have, all);
  if (total > 0)
    g_printerr (" (%d%%)", (int) (100 * now_bytes / total));
  if (secs > 0.5)
    g_printerr ("  %.1f MB/s", (now_bytes - x->offset) / 1e6 / secs);
  g_printerr ("%s", final ? ", done\n" : x->tty ? "   " : "\n");
  g_free (have);
  g_free (all);
}

static int
on_progress (void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  Xfer  *x = user;
  gint64 base = x->restarted ? 0 : x->offset;
  gint64 total = dltotal > 0 ? base + dltotal : x->known_size;

  if (models_interrupted)
    return 1;
  print_progress (x, base + dlnow, total, FALSE);
  return 0;
}

static gboolean
transfer (const CatalogFile *f, const char *url, const char *part, gboolean quiet, GError **error)
{
  CURL    *curl = curl_easy_init ();
  char     errbuf[CURL_ERROR_SIZE] = "";
  Xfer     x = { .curl = curl, .fd = -1, .part = part, .label = f->file, .first = TRUE,
                 .known_size = f->size, .quiet = quiet, .tty = isatty (2), .last_decile = -1 };
  CURLcode res;
  long     code = 0;
  char    *range = NULL;
  gboolean ok = FALSE;

  if (curl == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "libcurl could not start");
      return FALSE;
    }
  x.fd = open (part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (x.fd < 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", part, g_strerror (errno));
      curl_easy_cleanup (curl);
      return FALSE;
    }
  if (flock (x.fd, LOCK_EX | LOCK_NB) != 0)
    {
      /* Two fetches writing one .part would interleave their bytes. */
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                   "%s is being downloaded by another gfcg (%s)", f->file, part);
      goto out;
    }
  x.offset = lseek (x.fd, 0, SEEK_END);
  if (x.offset < 0 || (f->size >= 0 && x.offset > f->size))
    {
      /* Longer than the file can be: not a prefix of it. */
      if (ftruncate (x.fd, 0) != 0 || lseek (x.fd, 0, SEEK_SET) != 0)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", part, g_strerror (errno));
          goto out;
        }
      x.offset = 0;
    }
  if (f->size >= 0 && x.offset == f->size)
    {
      ok = TRUE; /* complete already: stopped between the last byte and the check */
      goto out;
    }
  if (x.offset > 0)
    {
      /* CURLOPT_RANGE rather than RESUME_FROM: a server that ignores the range
       * is not an error, on_write starts the file over instead. */
      range = g_strdup_printf ("%" G_GINT64_FORMAT "-", x.offset);
      curl_easy_setopt (curl, CURLOPT_RANGE, range);
      if (!quiet)
        {
          char *have = models_format_size (x.offset);
          g_printerr ("  %s: resuming after %s\n", f->file, have);
          g_free (have);
        }
    }
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (curl, CURLOPT_MAXREDIRS, 10L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt (curl, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt (curl, CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt (curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A stalled server (under 1 kB/s for a minute) is an error, not a hang. */
  curl_easy_setopt (curl, CURLOPT_LOW_SPEED_LIMIT, 1000L);
  curl_easy_setopt (curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt (curl, CURLOPT_USERAGENT, "gfcg/" GFCG_VERSION);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (curl, CURLOPT_XFERINFODATA, &x);
  x.t0 = x.last = g_get_monotonic_time ();
  res = curl_easy_perform (curl);
  curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &code);
  if (res == CURLE_OK)
    {
      gint64 end = lseek (x.fd, 0, SEEK_END);

      print_progress (&x, end, end, TRUE);
      if (fsync (x.fd) != 0)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing %s: %s", part, g_strerror (errno));
      else
        ok = TRUE;
    }
  else if (res == CURLE_ABORTED_BY_CALLBACK || models_interrupted)
    {
      gint64 kept = lseek (x.fd, 0, SEEK_END);
      char  *k = models_format_size (kept);

      if (!quiet && x.tty)
        g_printerr ("\n");
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED,
                   "interrupted: %s kept in %s; fetching again resumes there", k, part);
      g_free (k);
    }
  else if (res == CURLE_WRITE_ERROR && x.write_errno != 0)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing %s: %s%s", part,
                 g_strerror (x.write_errno),
                 x.write_errno == ENOSPC || x.write_errno == EFBIG || x.write_errno == EDQUOT
                 ? " (the disk is full or the file size limit is reached; the partial download "
                   "is kept: free some space and fetch again)" : "");
  else if (res == CURLE_HTTP_RETURNED_ERROR && code == 416 && x.offset > 0)
    ok = TRUE; /* nothing left to send: the check decides */
  else if (res == CURLE_HTTP_RETURNED_ERROR)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: HTTP %ld", url, code);
  else
    {
      gint64 kept = lseek (x.fd, 0, SEEK_END);
      char  *k = models_format_size (kept);

      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s%s%s%s", url,
                   *errbuf != '\0' ? errbuf : curl_easy_strerror (res),
                   kept > 0 ? " (" : "", kept > 0 ? k : "",
                   kept > 0 ? " kept: fetching again resumes there)" : "");
      g_free (k);
    }
out:
  close (x.fd);
  g_free (range);
  curl_easy_cleanup (curl);
  return ok;
}

#else /* !GFCG_HAVE_CURL */

/* Built without libcurl (meson -Dmodels=disabled, e.g. the GPU hosts' build):
 * everything but the download works (list, verify, remove, installs from
 * files already in the cache). */
static gboolean
transfer (const CatalogFile *f, const char *url, const char *part, gboolean quiet, GError **error)
{
  (void) f;
  (void) part;
  (void) quiet;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
               "cannot download %s: this gfcg was built without libcurl "
               "(install libcurl4-gnutls-dev and rebuild with meson -Dmodels=enabled)", url);
  return FALSE;
}

#endif /* GFCG_HAVE_CURL */

char *
models_download (const CatalogFile *f, gboolean quiet, char **sha256, GError **error)
{
  char       *dir = models_cache_dir ();
  char       *path = g_build_filename (dir, f->file, NULL);
  char       *part = g_strconcat (path, ".part", NULL);
  char       *when = NULL, *recorded = f->sha256 == NULL ? record_lookup (f->file, &when) : NULL;
  const char *expected = f->sha256 != NULL ? f->sha256 : recorded;
  char       *origin = f->sha256 != NULL ? g_strdup ("the catalog says")
                       : g_strdup_printf ("its first download (%s) had", when != NULL ? when : "?");
  char       *sha = NULL;
  GError     *err = NULL;
  gboolean    ok = FALSE;
  const char *url = f->urls[0];

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", dir, g_strerror (errno));
      goto out;
    }
  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      if (check_file (f, path, expected, origin, &sha, &err))
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
      if (transfer (f, url, part, quiet, &err))
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
  if (!check_file (f, part, expected, origin, &sha, &err))
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
      record_store (f->file, sha, size, url);
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
