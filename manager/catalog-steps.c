/* catalog-steps.c — what a loaded catalog pack turns into: the download
 * size it announces, and its conversion steps with the {ROLE}, {out} and
 * {name} placeholders expanded into a command line. */
#include "models.h"

#include <string.h>

gint64
catalog_pack_download_size (const CatalogPack *pack, gboolean *exact)
{
  GHashTable *seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  gint64      total = 0;

  *exact = TRUE;
  for (guint i = 0; i < pack->files->len; i++)
    {
      CatalogFile *f = pack->files->pdata[i];

      if (!g_hash_table_add (seen, f)) /* a file used in two roles counts once */
        continue;
      if (f->size < 0)
        *exact = FALSE;
      total += f->size >= 0 ? f->size : f->approx_size;
    }
  g_hash_table_unref (seen);
  return total;
}

char *
catalog_expand_string (const CatalogPack *pack, const char *s, const char *out,
                       GHashTable *role_paths, GError **error)
{
  GString *r = g_string_new (NULL);

  while (*s != '\0')
    {
      const char *open = strchr (s, '{'), *close;
      char       *key;
      const char *value;

      if (open == NULL)
        {
          g_string_append (r, s);
          break;
        }
      g_string_append_len (r, s, open - s);
      if ((close = strchr (open, '}')) == NULL)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "catalog pack '%s': unclosed '{' in \"%s\"", pack->name, open);
          g_string_free (r, TRUE);
          return NULL;
        }
      key = g_strndup (open + 1, close - open - 1);
      if (strcmp (key, "out") == 0)
        value = out;
      else if (strcmp (key, "name") == 0)
        value = pack->name;
      else
        value = g_hash_table_lookup (role_paths, key);
      if (value == NULL)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "catalog pack '%s': unknown placeholder {%s} (use {out}, {name} or a role "
                       "of its 'files')", pack->name, key);
          g_free (key);
          g_string_free (r, TRUE);
          return NULL;
        }
      g_string_append (r, value);
      g_free (key);
      s = close + 1;
    }
  return g_string_free (r, FALSE);
}

char **
catalog_step_expand (const CatalogPack *pack, const CatalogStep *step, const char *out,
                     GHashTable *role_paths, GError **error)
{
  guint  n = g_strv_length (step->args);
  char **argv = g_new0 (char *, n + 1);

  for (guint i = 0; i < n; i++)
    if ((argv[i] = catalog_expand_string (pack, step->args[i], out, role_paths, error)) == NULL)
      {
        g_strfreev (argv);
        return NULL;
      }
  return argv;
}
