/* gfcg-pack-offers.c — which other packs draw a class: the installed ones
 * by their pack.json's class list (read, not loaded: no weights), then the
 * catalog's not yet installed by its "classes".  Read afresh each time a
 * class is explained, so a pack installed meanwhile is offered. */
#include "gfcg-pack-offers.h"
#include "gfcg-models-info.h"

#include <glib/gi18n-lib.h>
#include <string.h>

/* TRUE when the pack folder's pack.json lists ImageNet class imagenet. */
static gboolean
folder_draws (const char *dir, int imagenet)
{
  char       *path = g_build_filename (dir, "pack.json", NULL);
  JsonParser *parser = json_parser_new ();
  JsonNode   *root;
  JsonArray  *classes;
  gboolean    found = FALSE;

  if (json_parser_load_from_file (parser, path, NULL)
      && (root = json_parser_get_root (parser)) != NULL && JSON_NODE_HOLDS_OBJECT (root)
      && json_object_has_member (json_node_get_object (root), "classes")
      && JSON_NODE_HOLDS_ARRAY (json_object_get_member (json_node_get_object (root), "classes")))
    {
      classes = json_object_get_array_member (json_node_get_object (root), "classes");
      for (guint i = 0; i < json_array_get_length (classes) && !found; i++)
        {
          JsonNode *c = json_array_get_element (classes, i);

          found = JSON_NODE_HOLDS_OBJECT (c)
                  && json_object_get_int_member_with_default (json_node_get_object (c),
                                                              "imagenet", -1) == imagenet;
        }
    }
  g_object_unref (parser);
  g_free (path);
  return found;
}

static gboolean
same_folder (const char *a, const char *b)
{
  char    *ca, *cb;
  gboolean same;

  if (a == NULL || b == NULL)
    return FALSE;
  ca = g_canonicalize_filename (a, NULL);
  cb = g_canonicalize_filename (b, NULL);
  same = strcmp (ca, cb) == 0;
  g_free (ca);
  g_free (cb);
  return same;
}

static void
add_link (GString *out, const char *href, const char *name, const char *what)
{
  char *a = g_markup_printf_escaped ("<a href=\"%s\">%s</a>", href, name);

  if (out->len > 0)
    g_string_append (out, ", ");
  /* TRANSLATORS: "img64-s-atg (installed)", "img512-xs-cfg (to download)" */
  g_string_append_printf (out, what, a);
  g_free (a);
}

char *
gfcg_pack_offers_markup (int imagenet, const char *current_dir)
{
  GString    *out = g_string_new (NULL);
  char      **installed = gfcg_installed_packs ();
  char       *catalog_path = gfcg_models_catalog_path ();
  Catalog    *cat = catalog_load (catalog_path, NULL);
  GHashTable *names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  char       *text = NULL;

  for (char **d = installed; *d != NULL; d++)
    {
      char *name = g_path_get_basename (*d);
      char *href = g_strconcat ("use:", *d, NULL);

      if (!same_folder (*d, current_dir) && folder_draws (*d, imagenet))
        add_link (out, href, name, _("%s (installed)"));
      g_hash_table_add (names, name);
      g_free (href);
    }
  for (guint i = 0; cat != NULL && i < cat->packs->len; i++)
    {
      CatalogPack *p = cat->packs->pdata[i];
      char        *href = g_strconcat ("get:", p->name, NULL);

      if (!g_hash_table_contains (names, p->name) && catalog_pack_draws (p, imagenet))
        add_link (out, href, p->name, _("%s (Get Models)"));
      g_free (href);
    }
  if (out->len > 0)
    {
      char *lead = g_markup_escape_text (_("Other packs draw it:"), -1);

      text = g_strdup_printf ("%s %s.", lead, out->str);
      g_free (lead);
    }
  catalog_free (cat);
  g_hash_table_unref (names);
  g_free (catalog_path);
  g_strfreev (installed);
  g_string_free (out, TRUE);
  return text;
}
