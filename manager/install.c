/* install.c — installing, verifying and removing packs so that a pack
 * folder is either complete or absent.
 *
 * A pack is converted into a hidden staging folder ".NAME.partial-XXXXXX"
 * beside the installed packs (same file system, so the final rename(2) is
 * atomic), checked by loading it, given a manifest of its files' SHA-256 and
 * renamed to NAME.  Any failure, Ctrl-C included, removes the staging folder.
 * A run killed outright cannot clean up; its staging folder holds a lock
 * (flock on ".lock") that dies with the process, and the next `gfcg models`
 * command removes staging folders whose lock is free.  Hidden folders are
 * never listed as packs (gfcg_pack_name_is_valid). */
#include "models.h"

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

/* ---- install --------------------------------------------------------------------- */

/* 5% and 100 MB to spare: the sizes of unpublished files are estimates. */
#define SPACE_MARGIN(need) ((need) / 20 + 100000000)

static gboolean
check_space (const char *dir, gint64 need, const char *what, GError **error)
{
  gint64 have = models_free_bytes (dir);
  gint64 required = need + SPACE_MARGIN (need);

  if (need <= 0 || have < 0 || have >= required)
    return TRUE;
  {
    char *r = models_format_size (required), *n = models_format_size (need);
    char *m = models_format_size (SPACE_MARGIN (need)), *h = models_format_size (have);

    /* The figures of the test above, not just the estimate. */
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO,
                 "not enough free space: %s need %s free in %s (about %s, plus %s to spare: 5%% "
                 "and 100 MB), it has %s", what, r, dir, n, m, h);
    g_free (r);
    g_free (n);
    g_free (m);
    g_free (h);
  }
  return FALSE;
}

/* Bytes still to download (files not yet complete in the cache). */
static gint64
missing_bytes (CatalogPack *pack)
{
  char       *cache = models_cache_dir ();
  GHashTable *seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  gint64      need = 0;

  for (guint i = 0; i < pack->files->len; i++)
    {
      CatalogFile *f = pack->files->pdata[i];
      char        *path = g_build_filename (cache, f->file, NULL);
      char        *part = g_strconcat (path, ".part", NULL);
      GStatBuf     st;
      gint64       size = f->size >= 0 ? f->size : f->approx_size;

      if (g_hash_table_add (seen, f) && !g_file_test (path, G_FILE_TEST_IS_REGULAR))
        need += MAX (0, size - (g_stat (part, &st) == 0 ? (gint64) st.st_size : 0));
      g_free (part);
      g_free (path);
    }
  g_hash_table_unref (seen);
  g_free (cache);
  return need;
}

gboolean
models_install (Catalog *cat, CatalogPack *pack, gboolean force, gboolean quiet, GError **error)
{
  char       *top = gfcg_models_dir ();
  char       *final = g_build_filename (top, pack->name, NULL);
  char       *cache = models_cache_dir ();
  char       *staging = NULL, *trash = NULL, *lock = NULL;
  GHashTable *role_paths = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  GHashTable *role_sha = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  GHashTable *role_url = g_hash_table_new (g_str_hash, g_str_equal);
  GError     *err = NULL;
  int         lock_fd = -1;
  gboolean    ok = FALSE;

  if (g_mkdir_with_parents (top, 0755) != 0 || g_mkdir_with_parents (cache, 0755) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", top, g_strerror (errno));
      goto out;
    }
  models_sweep_stale ();
  if (!check_space (cache, missing_bytes (pack), "the downloads", error)
      || !check_space (top, pack->installed_size, "the converted pack", error))
    goto out;

  /* 1. The files, each checked. */
  for (guint i = 0; pack->roles[i] != NULL; i++)
    {
      CatalogFile *f = pack->files->pdata[i];
      char        *sha = NULL;
      char        *path = models_download (f, quiet, &sha, error);

      if (path == NULL)
        goto out;
      g_hash_table_insert (role_paths, pack->roles[i], path);
      g_hash_table_insert (role_sha, pack->roles[i], sha);
      g_hash_table_insert (role_url, pack->roles[i], f->urls[0]);
    }

  /* 2. Convert into the staging folder, locked while we live. */
  staging = g_strdup_printf ("%s/.%s.partial-XXXXXX", top, pack->name);
  if (g_mkdtemp_full (staging, 0755) == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", staging, g_strerror (errno));
      g_clear_pointer (&staging, g_free);
      goto out;
    }
  lock = g_build_filename (staging, LOCK_NAME, NULL);
  if ((lock_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock (lock_fd, LOCK_EX) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", lock, g_strerror (errno));
      goto out;
    }
  if (!quiet)
    g_printerr ("  converting into %s\n", staging);
  for (guint i = 0; i < pack->steps->len; i++)
    {
      if (models_interrupted)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "interrupted");
          goto out;
        }
      if (!models_run_step (pack, pack->steps->pdata[i], staging, role_paths, quiet, error))
        goto out;
    }

  /* 3. It must load before anyone sees it. */
  {
    GfcgContext *ctx = gfcg_context_new ("cpu", &err);
    GfcgPack    *p = ctx != NULL ? gfcg_pack_load (ctx, staging, &err) : NULL;

    if (p == NULL)
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "the converted pack does not load: %s",
                     err->message);
        g_clear_error (&err);
        if (ctx != NULL)
          gfcg_context_free (ctx);
        goto out;
      }
    gfcg_pack_free (p);
    gfcg_context_free (ctx);
  }
  if (models_interrupted)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "interrupted");
      goto out;
    }
  if (!models_write_manifest (cat, pack, staging, role_sha, role_url, error))
    goto out;
  models_fsync_path (staging);

  /* 4. Into place: the old copy (--force) goes to a trash name first. */
  if (g_file_test (final, G_FILE_TEST_EXISTS))
    {
      if (!force)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s appeared meanwhile", final);
          goto out;
        }
      trash = g_strdup_printf ("%s/.%s.trash-XXXXXX", top, pack->name);
      if (g_mkdtemp_full (trash, 0700) == NULL || g_rename (final, trash) != 0)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", final, g_strerror (errno));
          goto out;
        }
    }
  if (g_rename (staging, final) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", final, g_strerror (errno));
      if (trash != NULL)
        (void) g_rename (trash, final);
      goto out;
    }
  g_clear_pointer (&staging, g_free);
  models_fsync_path (top);
  {
    char *moved = g_build_filename (final, LOCK_NAME, NULL);

    g_unlink (moved);
    g_free (moved);
  }
  ok = TRUE;
out:
  if (staging != NULL && !models_rm_rf (staging, &err))
    {
      g_printerr ("gfcg models: could not remove %s: %s\n", staging, err->message);
      g_clear_error (&err);
    }
  if (trash != NULL && !models_rm_rf (trash, &err))
    {
      g_printerr ("gfcg models: could not remove %s: %s\n", trash, err->message);
      g_clear_error (&err);
    }
  if (lock_fd >= 0)
    close (lock_fd);
  g_hash_table_unref (role_url);
  g_hash_table_unref (role_sha);
  g_hash_table_unref (role_paths);
  g_free (lock);
  g_free (trash);
  g_free (staging);
  g_free (cache);
  g_free (final);
  g_free (top);
  return ok;
}

/* ---- verify and remove ---------------------------------------------------------- */

gboolean
models_verify (const char *dir, char **report, GError **error)
{
  char        *path = g_build_filename (dir, MODELS_MANIFEST, NULL);
  JsonParser  *parser = json_parser_new ();
  GfcgContext *ctx = NULL;
  GfcgPack    *pack = NULL;
  gboolean     have_manifest = g_file_test (path, G_FILE_TEST_EXISTS);
  gboolean     ok = FALSE;
  gint64       total = 0;
  guint        n = 0;
  GError      *err = NULL;

  /* Checksums first: "this file changed" says more than a loader error. */
  if (have_manifest)
    {
      JsonNode   *root;
      JsonObject *files;
      GList      *names;

      if (!json_parser_load_from_file (parser, path, &err)
          || (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root)
          || !json_object_has_member (json_node_get_object (root), "files")
          || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (json_node_get_object (root), "files")))
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: unreadable install manifest%s%s",
                       path, err != NULL ? ": " : "", err != NULL ? err->message : "");
          g_clear_error (&err);
          goto out;
        }
      files = json_object_get_object_member (json_node_get_object (root), "files");
      names = json_object_get_members (files);
      for (GList *l = names; l != NULL; l = l->next, n++)
        {
          JsonObject *e = json_object_get_object_member (files, l->data);
          const char *want = e != NULL ? json_object_get_string_member_with_default (e, "sha256", "") : "";
          char       *full = g_build_filename (dir, l->data, NULL);
          gint64      size;
          char       *sha;

          if (!g_file_test (full, G_FILE_TEST_EXISTS))
            {
              g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                           "%s is missing (installed with the pack)", (char *) l->data);
              g_free (full);
              g_list_free (names);
              goto out;
            }
          sha = models_sha256_file (full, &size, error);
          g_free (full);
          if (sha == NULL)
            {
              g_list_free (names);
              goto out;
            }
          if (strcmp (sha, want) != 0)
            {
              g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                           "%s changed since it was installed (sha256 %s, installed %s)",
                           (char *) l->data, sha, want);
              g_free (sha);
              g_list_free (names);
              goto out;
            }
          total += size;
          g_free (sha);
        }
      g_list_free (names);
    }
  if ((ctx = gfcg_context_new ("cpu", error)) == NULL)
    goto out;
  if ((pack = gfcg_pack_load (ctx, dir, &err)) == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "does not load: %s", err->message);
      g_clear_error (&err);
      goto out;
    }
  if (have_manifest)
    {
      char *t = models_format_size (total);
      *report = g_strdup_printf ("ok: loads; %u files match their install checksums (%s)", n, t);
      g_free (t);
    }
  else
    *report = g_strdup ("ok: loads (no install manifest: not installed by `gfcg models fetch`, "
                        "files not checksummed)");
  ok = TRUE;
out:
  if (pack != NULL)
    gfcg_pack_free (pack);
  if (ctx != NULL)
    gfcg_context_free (ctx);
  g_object_unref (parser);
  g_free (path);
  return ok;
}

gboolean
models_remove (const char *name, GError **error)
{
  char    *top = gfcg_models_dir ();
  char    *dir = g_build_filename (top, name, NULL);
  char    *trash = NULL;
  gboolean ok = FALSE;

  if (!gfcg_pack_name_is_valid (name))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "'%s' is not a pack name", name);
      goto out;
    }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      char *found = gfcg_pack_resolve (name, NULL);

      if (found != NULL)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                     "'%s' (%s) came with gfcg, not from `gfcg models fetch`; it is not removed",
                     name, found);
      else
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                     "'%s' is not installed in %s", name, top);
      g_free (found);
      goto out;
    }
  models_sweep_stale ();
  /* Renamed away first: readers see the whole pack or none of it. */
  trash = g_strdup_printf ("%s/.%s.trash-XXXXXX", top, name);
  if (g_mkdtemp_full (trash, 0700) == NULL || g_rename (dir, trash) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", dir, g_strerror (errno));
      if (g_file_test (trash, G_FILE_TEST_IS_DIR))
        g_rmdir (trash);
      goto out;
    }
  ok = models_rm_rf (trash, error);
out:
  g_free (trash);
  g_free (dir);
  g_free (top);
  return ok;
}
