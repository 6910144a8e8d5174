/* models.c — where model packs live: the packs shipped beside the default
 * pack, the ones `gfcg models fetch` installed in the user's data folder, and
 * turning a pack name into its folder.  Shared by the command and the
 * plug-in, so both see the same packs under the same names. */
#include "gfcg/gfcg.h"

#include <string.h>

/* g_ptr_array_sort passes pointers to the elements (sort_values needs GLib 2.76). */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

char *
gfcg_models_dir (void)
{
  return g_build_filename (g_get_user_data_dir (), "gfcg", "models", NULL);
}

char *
gfcg_models_catalog_path (void)
{
  const char *env = g_getenv ("GFCG_CATALOG");
  char *p;

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  /* Same rule as the default pack: an uninstalled build reads its source tree. */
  p = g_build_filename (GFCG_SOURCE_DIR, "data", "models", "catalog.json", NULL);
  if (g_file_test (p, G_FILE_TEST_IS_REGULAR) && !g_file_test (GFCG_PACKS_DIR, G_FILE_TEST_IS_DIR))
    return p;
  g_free (p);
  return g_build_filename (GFCG_PACKS_DIR, "catalog.json", NULL);
}

gboolean
gfcg_pack_name_is_valid (const char *name)
{
  /* A plain folder name: no separators, no "..", not hidden (staging and
   * trash folders are hidden, so they never pass for packs). */
  if (name == NULL || !g_ascii_isalnum (name[0]) || strlen (name) > 100)
    return FALSE;
  for (const char *c = name; *c != '\0'; c++)
    if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return strstr (name, "..") == NULL;
}

static gboolean
is_pack_dir (const char *dir)
{
  char    *json = g_build_filename (dir, "pack.json", NULL);
  gboolean ok = g_file_test (json, G_FILE_TEST_IS_REGULAR);

  g_free (json);
  return ok;
}

/* Pack folders directly under parent (first, when given, then by name),
 * appended to out unless a pack of the same name is already there. */
static void
add_packs (GPtrArray *out, GHashTable *seen, const char *parent, const char *first)
{
  GDir       *dir = g_dir_open (parent, 0, NULL);
  GPtrArray  *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (dir == NULL)
    {
      g_ptr_array_unref (names);
      return;
    }
  while ((name = g_dir_read_name (dir)) != NULL)
    if (gfcg_pack_name_is_valid (name))
      g_ptr_array_add (names, g_strdup (name));
  g_dir_close (dir);
  g_ptr_array_sort (names, compare_names);
  for (guint i = 1; first != NULL && i < names->len; i++)
    if (strcmp (names->pdata[i], first) == 0)
      {
        gpointer f = names->pdata[i];

        memmove (names->pdata + 1, names->pdata, i * sizeof (gpointer));
        names->pdata[0] = f;
        break;
      }
  for (guint i = 0; i < names->len; i++)
    {
      char *path = g_build_filename (parent, names->pdata[i], NULL);

      if (!g_hash_table_contains (seen, names->pdata[i]) && is_pack_dir (path))
        {
          g_hash_table_add (seen, g_strdup (names->pdata[i]));
          g_ptr_array_add (out, path);
        }
      else
        g_free (path);
    }
  g_ptr_array_unref (names);
}

char **
gfcg_installed_packs (void)
{
  GPtrArray  *out = g_ptr_array_new ();
  GHashTable *seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  char       *def = gfcg_default_pack_dir ();
  char       *shipped = g_path_get_dirname (def);
  char       *user = gfcg_models_dir ();
  char       *def_name = g_path_get_basename (def);

  /* The shipped folder first (the default pack leads the list), then the
   * user's; a name seen once hides later ones, as gfcg_pack_resolve does. */
  add_packs (out, seen, shipped, def_name);
  if (g_strcmp0 (user, shipped) != 0)
    add_packs (out, seen, user, NULL);
  g_ptr_array_add (out, NULL);
  g_hash_table_unref (seen);
  g_free (def_name);
  g_free (user);
  g_free (shipped);
  g_free (def);
  return (char **) g_ptr_array_free (out, FALSE);
}

char *
gfcg_pack_resolve (const char *spec, GError **error)
{
  char **packs;
  char  *found = NULL;

  if (spec == NULL || *spec == '\0')
    return gfcg_default_pack_dir ();
  /* A path (or a folder of that name here) is taken as it is. */
  if (strchr (spec, G_DIR_SEPARATOR) != NULL || g_file_test (spec, G_FILE_TEST_IS_DIR)
      || !gfcg_pack_name_is_valid (spec))
    return g_strdup (spec);
  packs = gfcg_installed_packs ();
  for (char **p = packs; *p != NULL && found == NULL; p++)
    {
      char *base = g_path_get_basename (*p);

      if (strcmp (base, spec) == 0)
        found = g_strdup (*p);
      g_free (base);
    }
  g_strfreev (packs);
  if (found == NULL)
    {
      char *user = gfcg_models_dir ();

      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "'%s' is neither a pack folder nor an installed pack (in %s; "
                   "see `gfcg models list`)", spec, user);
      g_free (user);
    }
  return found;
}
