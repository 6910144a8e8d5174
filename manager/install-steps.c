/* install-steps.c — the pieces of an install: file-system helpers (rm -rf,
 * fsync, free space, stale staging folders), running a catalog step (one of
 * the project's converters, or a copy of a download) and the manifest of the
 * installed files with their SHA-256.
 *
 * convert-edm2 and convert-classifier run natively, in this process
 * (manager/convert/: no Python needed); GFCG_CONVERTER=python runs the
 * Python converters of converters/ instead, as any other tool a catalog
 * names is run. */
#include "models.h"
#include "convert.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* g_ptr_array_sort passes pointers to the elements (sort_values needs GLib 2.76). */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}


/* ---- small file-system helpers ------------------------------------------------ */

gboolean
models_rm_rf (const char *path, GError **error)
{
  GStatBuf st;

  if (g_lstat (path, &st) != 0)
    {
      if (errno == ENOENT)
        return TRUE;
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      return FALSE;
    }
  if (S_ISDIR (st.st_mode))
    {
      GDir       *dir = g_dir_open (path, 0, NULL);
      const char *name;

      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          char    *child = g_build_filename (path, name, NULL);
          gboolean ok = models_rm_rf (child, error);

          g_free (child);
          if (!ok)
            {
              g_dir_close (dir);
              return FALSE;
            }
        }
      if (dir != NULL)
        g_dir_close (dir);
      if (g_rmdir (path) != 0 && errno != ENOENT)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
          return FALSE;
        }
      return TRUE;
    }
  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

void
models_fsync_path (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd >= 0)
    {
      (void) fsync (fd);
      close (fd);
    }
}

gint64
models_free_bytes (const char *path)
{
  struct statvfs s;

  if (statvfs (path, &s) != 0)
    return -1;
  return (gint64) s.f_bavail * (gint64) s.f_frsize;
}

static gboolean
is_staging_name (const char *name)
{
  return name[0] == '.' && (strstr (name, ".partial-") != NULL || strstr (name, ".trash-") != NULL);
}

void
models_sweep_stale (void)
{
  char       *top = gfcg_models_dir ();
  GDir       *dir = g_dir_open (top, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      char    *path, *lock;
      int      fd;
      gboolean stale = FALSE;
      GStatBuf st;

      if (!is_staging_name (name))
        continue;
      path = g_build_filename (top, name, NULL);
      lock = g_build_filename (path, LOCK_NAME, NULL);
      fd = open (lock, O_RDWR | O_CLOEXEC);
      if (fd >= 0)
        {
          /* Free lock: its owner is gone. */
          stale = flock (fd, LOCK_EX | LOCK_NB) == 0;
          close (fd);
        }
      else if (strstr (name, ".trash-") != NULL)
        stale = TRUE;
      else
        /* No lock yet: only a folder made a while ago and never locked. */
        stale = g_lstat (path, &st) == 0 && st.st_mtime < time (NULL) - 60;
      if (stale)
        {
          GError *err = NULL;

          if (!models_rm_rf (path, &err))
            {
              g_printerr ("gfcg models: could not remove %s: %s\n", path, err->message);
              g_error_free (err);
            }
        }
      g_free (lock);
      g_free (path);
    }
  if (dir != NULL)
    g_dir_close (dir);
  g_free (top);
}

/* ---- conversion steps ------------------------------------------------------------ */

static char *
find_tool (const char *tool, GError **error)
{
  const char *env = g_getenv ("GFCG_TOOLS_DIR");
  const char *dirs[] = { env, GFCG_SOURCE_DIR "/converters", GFCG_LIBEXEC_DIR };

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      char *p;

      if (dirs[i] == NULL || *dirs[i] == '\0')
        continue;
      p = g_build_filename (dirs[i], tool, NULL);
      if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
        return p;
      g_free (p);
    }
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
               "converter '%s' not found (looked in $GFCG_TOOLS_DIR, %s/converters and %s)",
               tool, GFCG_SOURCE_DIR, GFCG_LIBEXEC_DIR);
  return NULL;
}

static void
child_setup (gpointer data)
{
  (void) data;
#ifdef __linux__
  /* The converter dies with us, so it never writes into a staging folder
   * that the next run is deleting. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
#endif
  /* Its chatter goes to stderr with ours: stdout stays for results. */
  dup2 (2, 1);
}

static gboolean
run_tool (const char *tool, char **args, gboolean quiet, GError **error)
{
  const char *py_env = g_getenv ("GFCG_PYTHON");
  char       *python = g_find_program_in_path (py_env != NULL && *py_env != '\0' ? py_env : "python3");
  char       *script = NULL;
  GPtrArray  *argv = g_ptr_array_new ();
  GError     *err = NULL;
  GPid        pid;
  int         status = 0;
  gint64      killed_at = 0;
  gboolean    ok = FALSE;

  if (python == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                   "python3 not found: %s is run as a Python program here (GFCG_CONVERTER=python, "
                   "or a converter without a native one; see docs/models.md)", tool);
      goto out;
    }
  if ((script = find_tool (tool, error)) == NULL)
    goto out;
  g_ptr_array_add (argv, python);
  g_ptr_array_add (argv, script);
  for (char **a = args; *a != NULL; a++)
    g_ptr_array_add (argv, *a);
  g_ptr_array_add (argv, NULL);
  if (!quiet)
    {
      char *line = g_strjoinv (" ", args);
      g_printerr ("  converting: %s %s\n", tool, line);
      g_free (line);
    }
  if (!g_spawn_async (NULL, (char **) argv->pdata, NULL, G_SPAWN_DO_NOT_REAP_CHILD,
                      child_setup, NULL, &pid, &err))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", tool, err->message);
      g_error_free (err);
      goto out;
    }
  for (;;)
    {
      pid_t r = waitpid (pid, &status, WNOHANG);

      if (r == pid || (r < 0 && errno != EINTR))
        break;
      if (models_interrupted && killed_at == 0)
        {
          kill (pid, SIGTERM);
          killed_at = g_get_monotonic_time ();
        }
      else if (killed_at != 0 && g_get_monotonic_time () - killed_at > 5 * G_USEC_PER_SEC)
        kill (pid, SIGKILL);
      g_usleep (20000);
    }
  g_spawn_close_pid (pid);
  if (models_interrupted)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "interrupted during %s", tool);
  else if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    ok = TRUE;
  else if (WIFSIGNALED (status))
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s was killed by signal %d", tool,
                 WTERMSIG (status));
  else
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s failed (exit status %d; its message "
                 "is above)", tool, WEXITSTATUS (status));
out:
  g_free (script);
  g_free (python);
  g_ptr_array_free (argv, TRUE);
  return ok;
}

/* A downloaded file into the pack (raw fds: errno says why a write fails). */
static gboolean
copy_file (const char *from, const char *to, GError **error)
{
  char    *dir = g_path_get_dirname (to);
  guchar  *buf = g_malloc (1 << 20);
  int      in = -1, out = -1;
  gboolean ok = FALSE;

  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", dir, g_strerror (errno));
      goto done;
    }
  if ((in = open (from, O_RDONLY | O_CLOEXEC)) < 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", from, g_strerror (errno));
      goto done;
    }
  if ((out = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", to, g_strerror (errno));
      goto done;
    }
  for (;;)
    {
      ssize_t n = read (in, buf, 1 << 20), done = 0;

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", from, g_strerror (errno));
          goto done;
        }
      if (n == 0)
        break;
      while (done < n)
        {
          ssize_t w = write (out, buf + done, n - done);

          if (w < 0 && errno == EINTR)
            continue;
          if (w <= 0)
            {
              int e = w < 0 ? errno : ENOSPC;

              g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing %s: %s%s", to, g_strerror (e),
                           e == ENOSPC || e == EFBIG || e == EDQUOT
                           ? " (the disk is full or the file size limit is reached)" : "");
              goto done;
            }
          done += w;
        }
    }
  ok = TRUE;
done:
  if (in >= 0)
    close (in);
  if (out >= 0)
    close (out);
  g_free (buf);
  g_free (dir);
  return ok;
}

/* The native converter, in this process: the same arguments, its progress on stderr. */
static gboolean
run_native (const char *tool, char **args, gboolean quiet, GError **error)
{
  GError *err = NULL;
  int     status;

  if (!quiet)
    {
      char *line = g_strjoinv (" ", args);
      g_printerr ("  converting: %s %s\n", tool, line);
      g_free (line);
    }
  status = gfcg_convert_run (tool, (int) g_strv_length (args), args, stderr, &models_interrupted, &err);
  if (models_interrupted)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "interrupted during %s", tool);
      g_clear_error (&err);
      return FALSE;
    }
  if (status == 0)
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s failed: %s", tool,
               err != NULL ? err->message : "no reason given");
  g_clear_error (&err);
  return FALSE;
}

/* Which converters run: "native" (the default) or "python" ($GFCG_CONVERTER). */
static gboolean
use_native (const char *tool, GError **error)
{
  const char *how = g_getenv ("GFCG_CONVERTER");

  if (how == NULL || *how == '\0' || strcmp (how, "native") == 0)
    return gfcg_convert_is_native (tool);
  if (strcmp (how, "python") == 0)
    return FALSE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
               "GFCG_CONVERTER=%s: use native (the default) or python", how);
  return FALSE;
}

gboolean
models_run_step (CatalogPack *pack, CatalogStep *step, const char *staging,
                 GHashTable *role_paths, gboolean quiet, GError **error)
{
  gboolean ok;

  if (step->tool != NULL)
    {
      char **args = catalog_step_expand (pack, step, staging, role_paths, error);

      GError  *err = NULL;
      gboolean native;

      if (args == NULL)
        return FALSE;
      native = use_native (step->tool, &err);
      if (err != NULL)
        {
          g_propagate_error (error, err);
          g_strfreev (args);
          return FALSE;
        }
      ok = native ? run_native (step->tool, args, quiet, error) : run_tool (step->tool, args, quiet, error);
      g_strfreev (args);
      return ok;
    }
  else
    {
      char *from = catalog_expand_string (pack, step->copy_from, staging, role_paths, error);
      char *to = g_build_filename (staging, step->copy_to, NULL);

      ok = from != NULL && copy_file (from, to, error);
      g_free (from);
      g_free (to);
      return ok;
    }
}

/* ---- the manifest --------------------------------------------------------------- */

/* Relative paths of the regular files under dir, sorted (not the lock). */
static void
list_files (const char *top, const char *rel, GPtrArray *out)
{
  char       *path = rel != NULL ? g_build_filename (top, rel, NULL) : g_strdup (top);
  GDir       *dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      char    *r = rel != NULL ? g_build_filename (rel, name, NULL) : g_strdup (name);
      char    *full = g_build_filename (top, r, NULL);
      GStatBuf st;

      if (rel == NULL && (strcmp (name, LOCK_NAME) == 0 || strcmp (name, MODELS_MANIFEST) == 0))
        g_free (r);
      else if (g_lstat (full, &st) == 0 && S_ISDIR (st.st_mode))
        {
          list_files (top, r, out);
          g_free (r);
        }
      else
        g_ptr_array_add (out, r);
      g_free (full);
    }
  if (dir != NULL)
    g_dir_close (dir);
  g_free (path);
  if (rel == NULL)
    g_ptr_array_sort (out, compare_names);
}

gboolean
models_write_manifest (Catalog *cat, CatalogPack *pack, const char *staging,
                       GHashTable *role_sha, GHashTable *role_url, GError **error)
{
  JsonBuilder   *b = json_builder_new ();
  GPtrArray     *files = g_ptr_array_new_with_free_func (g_free);
  GDateTime     *now = g_date_time_new_now_utc ();
  char          *when = g_date_time_format_iso8601 (now);
  char          *path = g_build_filename (staging, MODELS_MANIFEST, NULL);
  JsonNode      *root;
  char          *text;
  gboolean       ok = FALSE;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "format");
  json_builder_add_string_value (b, "gfcg-install");
  json_builder_set_member_name (b, "format_version");
  json_builder_add_int_value (b, 1);
  json_builder_set_member_name (b, "pack");
  json_builder_add_string_value (b, pack->name);
  json_builder_set_member_name (b, "licence");
  json_builder_add_string_value (b, pack->licence != NULL ? pack->licence : "");
  json_builder_set_member_name (b, "catalog");
  json_builder_add_string_value (b, cat->path);
  json_builder_set_member_name (b, "installed");
  json_builder_add_string_value (b, when);
  json_builder_set_member_name (b, "engine");
  json_builder_add_string_value (b, gfcg_version ());
  json_builder_set_member_name (b, "downloads");
  json_builder_begin_object (b);
  for (guint i = 0; pack->roles[i] != NULL; i++)
    {
      CatalogFile *f = pack->files->pdata[i];

      json_builder_set_member_name (b, pack->roles[i]);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "file");
      json_builder_add_string_value (b, f->file);
      json_builder_set_member_name (b, "url");
      json_builder_add_string_value (b, g_hash_table_lookup (role_url, pack->roles[i]));
      json_builder_set_member_name (b, "sha256");
      json_builder_add_string_value (b, g_hash_table_lookup (role_sha, pack->roles[i]));
      json_builder_end_object (b);
    }
  json_builder_end_object (b);
  json_builder_set_member_name (b, "files");
  json_builder_begin_object (b);
  list_files (staging, NULL, files);
  for (guint i = 0; i < files->len; i++)
    {
      char  *full = g_build_filename (staging, files->pdata[i], NULL);
      gint64 size;
      char  *sha = models_sha256_file (full, &size, error);

      /* Everything is on disk before the rename makes the pack visible. */
      models_fsync_path (full);
      g_free (full);
      if (sha == NULL)
        goto out;
      json_builder_set_member_name (b, files->pdata[i]);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "sha256");
      json_builder_add_string_value (b, sha);
      json_builder_set_member_name (b, "size");
      json_builder_add_int_value (b, size);
      json_builder_end_object (b);
      g_free (sha);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  text = gfcg_json_to_data (root, TRUE, NULL);
  {
    GError *err = NULL;

    ok = g_file_set_contents (path, text, -1, &err);
    if (!ok)
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "writing the install manifest: %s",
                     err->message);
        g_error_free (err);
      }
  }
  g_free (text);
  json_node_unref (root);
out:
  g_object_unref (b);
  g_ptr_array_unref (files);
  g_free (path);
  g_free (when);
  g_date_time_unref (now);
  return ok;
}
