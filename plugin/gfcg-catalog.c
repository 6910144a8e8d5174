/* gfcg-catalog.c — looks a pack name up in the catalog of published packs. */
#include "gfcg-catalog.h"

#include <json-glib/json-glib.h>
#include <glib/gi18n-lib.h>

char *
gfcg_catalog_pack_title (const char *name)
{
  char       *path = gfcg_models_catalog_path ();
  JsonParser *parser = json_parser_new ();
  JsonNode   *root, *packs;
  JsonObject *pack;
  char       *title = NULL;

  /* The catalog's "packs" is an object keyed by pack name. */
  if (name != NULL && json_parser_load_from_file (parser, path, NULL) &&
      (root = json_parser_get_root (parser)) != NULL && JSON_NODE_HOLDS_OBJECT (root) &&
      (packs = json_object_get_member (json_node_get_object (root), "packs")) != NULL &&
      JSON_NODE_HOLDS_OBJECT (packs) &&
      json_object_has_member (json_node_get_object (packs), name))
    {
      pack = json_object_get_object_member (json_node_get_object (packs), name);
      title = g_strdup (pack != NULL && json_object_has_member (pack, "title")
                        ? json_object_get_string_member (pack, "title") : name);
    }
  g_object_unref (parser);
  g_free (path);
  return title;
}

gboolean
gfcg_catalog_check_installed (const char *spec, GError **error)
{
  char *dir, *title;

  /* Only a bare name that names no installed pack can be a catalog pack. */
  if (spec == NULL || !gfcg_pack_name_is_valid (spec) || g_file_test (spec, G_FILE_TEST_IS_DIR))
    return TRUE;
  if ((dir = gfcg_pack_resolve (spec, NULL)) != NULL)
    {
      g_free (dir);
      return TRUE;
    }
  if ((title = gfcg_catalog_pack_title (spec)) == NULL)
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
               _("'%s' (%s) is a published pack that is not installed: get it with "
                 "`gfcg models fetch %s`, or with Get Models... beside the dialog's pack"),
               spec, title, spec);
  g_free (title);
  return FALSE;
}
