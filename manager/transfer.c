/* transfer.c — one HTTP(S) transfer with libcurl into FILE.part: resume by
 * Range, framing read from the headers (Content-Length, Content-Range,
 * chunked), a length cap, progress, and whether the bytes are known whole.
 * Without libcurl (meson -Dmodels=disabled) only the stand-in at the end. */
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

static ModelsProgressFunc progress_func;
static gpointer           progress_data;

void
models_set_progress (ModelsProgressFunc func, gpointer user_data)
{
  progress_func = func;
  progress_data = user_data;
}

#ifdef GFCG_HAVE_CURL

/* ---- one transfer ---------------------------------------------------------------------- */

typedef struct
{
  CURL       *curl;
  int         fd;
  const char *part;
  const char *label;
  gint64      offset;     /* bytes kept from an earlier transfer          */
  gint64      known_size;
  gint64      cap;        /* more bytes than this: not the file (limit_of) */
  gint64      pos;        /* bytes of the file in the .part now           */
  gboolean    first;
  gboolean    restarted;  /* the server ignored the Range request         */
  gboolean    too_big;    /* stopped at the cap                           */
  gboolean    bad_range;  /* a 206 from another byte than asked for       */
  int         write_errno;
  /* The last response's framing, from its headers (redirects reset it). */
  gboolean    chunked;
  gint64      range_start, range_total; /* Content-Range; -1 unknown      */
  gboolean    quiet, tty;
  gint64      t0, last;
  int         last_decile;
} Xfer;

/* The most bytes f can have: its catalog size, else 4 times the catalog's
 * estimate (estimates are within a factor of 2 of the real files), else
 * MODELS_MAX_UNSIZED.  A server that sends more is not sending f. */
static gint64
limit_of (const CatalogFile *f)
{
  if (f->size >= 0)
    return f->size;
  if (f->approx_size > 0 && f->approx_size < MODELS_MAX_UNSIZED / 4)
    return 4 * f->approx_size;
  return MODELS_MAX_UNSIZED;
}

/* Content-Range: "bytes START-END/TOTAL", or a 416's "bytes *" then "/TOTAL";
 * TOTAL may be "*" (unknown). */
static void
parse_content_range (const char *v, gint64 *start, gint64 *total)
{
  const char *slash;
  char       *end;

  *start = *total = -1;
  v += strspn (v, " \t");
  if (g_ascii_strncasecmp (v, "bytes", 5) != 0 || (slash = strchr (v, '/')) == NULL)
    return;
  v += 5 + strspn (v + 5, " \t");
  if (g_ascii_isdigit (*v))
    *start = g_ascii_strtoll (v, NULL, 10);
  if (g_ascii_isdigit (slash[1]))
    {
      *total = g_ascii_strtoll (slash + 1, &end, 10);
      if (*end != '\0' && !g_ascii_isspace (*end))
        *total = -1;
    }
}

static size_t
on_header (char *data, size_t size, size_t nmemb, void *user)
{
  Xfer  *x = user;
  size_t n = size * nmemb;
  char  *line = g_strstrip (g_strndup (data, n));

  if (g_str_has_prefix (line, "HTTP/"))
    {
      /* A new response (after a redirect): forget the last one's framing. */
      x->chunked = FALSE;
      x->range_start = x->range_total = -1;
    }
  else if (g_ascii_strncasecmp (line, "transfer-encoding:", 18) == 0)
    {
      char *v = g_ascii_strdown (line + 18, -1);

      x->chunked = strstr (v, "chunked") != NULL;
      g_free (v);
    }
  else if (g_ascii_strncasecmp (line, "content-range:", 14) == 0)
    parse_content_range (line + 14, &x->range_start, &x->range_total);
  g_free (line);
  return n;
}

/* The first bytes of a response: a whole file instead of the rest, a range
 * that is not the one asked for, or a declared size over the cap. */
static gboolean
on_first_write (Xfer *x)
{
  long       code = 0;
  curl_off_t length = -1;
  gint64     declared;

  curl_easy_getinfo (x->curl, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo (x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  if (code == 206 && x->range_start != x->offset)
    {
      x->bad_range = TRUE;
      return FALSE;
    }
  declared = code == 206 ? x->range_total : length;
  if (declared > x->cap)
    {
      x->too_big = TRUE;
      return FALSE;
    }
  if (x->offset > 0 && code != 206)
    {
      /* The whole file instead of the rest: start the .part over. */
      if (ftruncate (x->fd, 0) != 0 || lseek (x->fd, 0, SEEK_SET) != 0)
        {
          x->write_errno = errno;
          return FALSE;
        }
      x->restarted = TRUE;
      x->pos = 0;
      if (!x->quiet)
        g_printerr ("  %s: the server does not resume; starting over\n", x->label);
    }
  return TRUE;
}

static size_t
on_write (char *data, size_t size, size_t nmemb, void *user)
{
  Xfer  *x = user;
  size_t n = size * nmemb, done = 0;

  if (x->first)
    {
      x->first = FALSE;
      if (!on_first_write (x))
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
  if (x->pos + (gint64) n > x->cap)
    {
      /* Stopped before the byte that makes it too long. */
      x->too_big = TRUE;
      return 0;
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
      x->pos += w;
    }
  return n;
}

/* After a clean end (CURLE_OK): TRUE when the response says the .part now
 * holds the whole file.  libcurl fails a transfer cut short of its
 * Content-Length, of a chunked body's last chunk or of an HTTP/2 or 3
 * stream's end (CURLE_PARTIAL_FILE and kin); a body with none of those
 * ends when the connection closes, and then nothing tells a cut from the
 * end.  A 206 must reach the total of its Content-Range. */
static gboolean
transfer_complete (Xfer *x, long code, gint64 end)
{
  curl_off_t length = -1;
  long       version = 0;
  gboolean   framed;

  curl_easy_getinfo (x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  curl_easy_getinfo (x->curl, CURLINFO_HTTP_VERSION, &version);
  framed = length >= 0 || x->chunked || version >= CURL_HTTP_VERSION_2_0;
  if (!framed)
    return FALSE;
  if (code == 206)
    return x->range_total >= 0 && end == x->range_total;
  return length < 0 || end == length;
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
  if (progress_func != NULL)
    progress_func (x->label, base + dlnow, total, progress_data);
  print_progress (x, base + dlnow, total, FALSE);
  return 0;
}

static void
set_options (CURL *curl, const char *url, char *errbuf, Xfer *x)
{
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
  curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (curl, CURLOPT_HEADERDATA, x);
  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, x);
  curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (curl, CURLOPT_XFERINFODATA, x);
}

/* Opens and locks FILE.part; x->offset gets the bytes to keep.  A .part
 * longer than the file can be is not a prefix of it: it starts over. */
static gboolean
open_part (Xfer *x, const CatalogFile *f, GError **error)
{
  x->fd = open (x->part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (x->fd < 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", x->part, g_strerror (errno));
      return FALSE;
    }
  if (flock (x->fd, LOCK_EX | LOCK_NB) != 0)
    {
      /* Two fetches writing one .part would interleave their bytes. */
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                   "%s is being downloaded by another gfcg (%s)", f->file, x->part);
      close (x->fd);
      x->fd = -1;
      return FALSE;
    }
  x->offset = lseek (x->fd, 0, SEEK_END);
  if (x->offset < 0 || x->offset > x->cap)
    {
      if (ftruncate (x->fd, 0) != 0 || lseek (x->fd, 0, SEEK_SET) != 0)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", x->part, g_strerror (errno));
          return FALSE;
        }
      x->offset = 0;
    }
  x->pos = x->offset;
  return TRUE;
}

/* A 416 to "the rest from OFFSET": the .part is whole when the file's total
 * (its Content-Range TOTAL) is OFFSET; otherwise it is not a prefix of
 * the server's file and is emptied (the caller deletes an empty .part). */
static gboolean
range_not_satisfiable (Xfer *x, const char *url, gboolean *complete, GError **error)
{
  if (x->range_total == x->offset)
    {
      *complete = TRUE;
      return TRUE;
    }
  if (ftruncate (x->fd, 0) != 0)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", x->part, g_strerror (errno));
  else
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                 "%s: HTTP 416: the partial download does not fit the server's file; it was "
                 "deleted and fetching again starts over", url);
  return FALSE;
}

/* What a finished curl_easy_perform means; TRUE when the .part may be checked. */
static gboolean
transfer_result (Xfer *x, CURLcode res, const char *url, const char *errbuf, gboolean *complete,
                 GError **error)
{
  long   code = 0;
  gint64 kept = lseek (x->fd, 0, SEEK_END);
  char  *k = models_format_size (kept);
  char  *cap = models_format_size (x->cap);
  gboolean ok = FALSE;

  curl_easy_getinfo (x->curl, CURLINFO_RESPONSE_CODE, &code);
  if (res == CURLE_OK)
    {
      print_progress (x, kept, kept, TRUE);
      *complete = transfer_complete (x, code, kept);
      if (fsync (x->fd) != 0)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing %s: %s", x->part, g_strerror (errno));
      else
        ok = TRUE;
    }
  else if (res == CURLE_ABORTED_BY_CALLBACK || models_interrupted)
    {
      if (!x->quiet && x->tty)
        g_printerr ("\n");
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED,
                   "interrupted: %s kept in %s; fetching again resumes there", k, x->part);
    }
  else if (res == CURLE_WRITE_ERROR && x->too_big)
    {
      /* Not the file (or not only it): nothing of it is worth resuming. */
      if (ftruncate (x->fd, 0) != 0)
        g_warning ("%s: %s", x->part, g_strerror (errno));
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: %s sends more than %s (%" G_GINT64_FORMAT " bytes, %s); stopped, the "
                   "partial download was deleted and nothing was installed", x->label, url, cap,
                   x->cap, x->known_size >= 0 ? "the catalog's size"
                   : "the most the catalog's estimate allows");
    }
  else if (res == CURLE_WRITE_ERROR && x->bad_range)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                 "%s: asked for the bytes from %" G_GINT64_FORMAT ", the server sent others "
                 "(Content-Range from %" G_GINT64_FORMAT ")", url, x->offset, x->range_start);
  else if (res == CURLE_WRITE_ERROR && x->write_errno != 0)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing %s: %s%s", x->part,
                 g_strerror (x->write_errno),
                 x->write_errno == ENOSPC || x->write_errno == EFBIG || x->write_errno == EDQUOT
                 ? " (the disk is full or the file size limit is reached; the partial download "
                   "is kept: free some space and fetch again)" : "");
  else if (res == CURLE_HTTP_RETURNED_ERROR && code == 416 && x->offset > 0)
    ok = range_not_satisfiable (x, url, complete, error);
  else if (res == CURLE_HTTP_RETURNED_ERROR)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: HTTP %ld", url, code);
  else
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s%s%s%s", url,
                 *errbuf != '\0' ? errbuf : curl_easy_strerror (res),
                 kept > 0 ? " (" : "", kept > 0 ? k : "",
                 kept > 0 ? " kept: fetching again resumes there)" : "");
  g_free (cap);
  g_free (k);
  return ok;
}

/* Downloads url into part, resuming it.  TRUE when the .part can be checked;
 * *complete then says whether the server's framing proved it whole (FALSE:
 * unknown, only the catalog's size or a checksum can tell). */
gboolean
models_transfer (const CatalogFile *f, const char *url, const char *part, gboolean quiet,
                 gboolean *complete, GError **error)
{
  CURL    *curl = curl_easy_init ();
  char     errbuf[CURL_ERROR_SIZE] = "";
  Xfer     x = { .curl = curl, .fd = -1, .part = part, .label = f->file, .first = TRUE,
                 .known_size = f->size, .cap = limit_of (f), .range_start = -1,
                 .range_total = -1, .quiet = quiet, .tty = isatty (2), .last_decile = -1 };
  char    *range = NULL;
  gboolean ok = FALSE;

  *complete = FALSE;
  if (curl == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "libcurl could not start");
      return FALSE;
    }
  if (!open_part (&x, f, error))
    goto out;
  if (f->size >= 0 && x.offset == f->size)
    {
      /* complete already: stopped between the last byte and the check */
      ok = *complete = TRUE;
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
  set_options (curl, url, errbuf, &x);
  x.t0 = x.last = g_get_monotonic_time ();
  ok = transfer_result (&x, curl_easy_perform (curl), url, errbuf, complete, error);
out:
  if (x.fd >= 0)
    {
      /* An empty .part (refused, not found, nothing sent, too long) is
       * litter: only a .part with bytes is worth resuming.  We hold its lock. */
      if (!ok && lseek (x.fd, 0, SEEK_END) == 0)
        g_unlink (part);
      close (x.fd);
    }
  g_free (range);
  curl_easy_cleanup (curl);
  return ok;
}

#else /* !GFCG_HAVE_CURL */

/* Built without libcurl (meson -Dmodels=disabled, e.g. the GPU hosts' build):
 * everything but the download works (list, verify, remove, installs from
 * files already in the cache). */
gboolean
models_transfer (const CatalogFile *f, const char *url, const char *part, gboolean quiet,
                 gboolean *complete, GError **error)
{
  (void) f;
  (void) part;
  (void) quiet;
  *complete = FALSE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
               "cannot download %s: this gfcg was built without libcurl "
               "(install libcurl4-gnutls-dev and rebuild with meson -Dmodels=enabled)", url);
  return FALSE;
}

#endif /* GFCG_HAVE_CURL */
