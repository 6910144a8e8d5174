/* gfcg-help.c — the help domain and the look-up of its pages. */
#include "gfcg-help.h"

#include <string.h>

/* help/ beside the binary, as plugin/meson.build installs it and
 * tools/gimp-batch copies it. */
static char *
help_dir (void)
{
  char *bin = g_path_get_dirname (gimp_get_progname ());
  char *dir = g_build_filename (bin, "help", NULL);

  g_free (bin);
  return dir;
}

void
gfcg_help_register (GimpPlugIn *plug_in)
{
  char  *dir = help_dir ();
  GFile *file = g_file_new_for_path (dir);

  gimp_plug_in_set_help_domain (plug_in, GFCG_HELP_DOMAIN, file);
  g_object_unref (file);
  g_free (dir);
}

typedef struct
{
  const char *id;
  char       *ref;
} Lookup;

static void
on_element (GMarkupParseContext *context, const char *element, const char **names,
            const char **values, gpointer data, GError **error)
{
  Lookup     *l = data;
  const char *id = NULL, *ref = NULL;

  if (strcmp (element, "help-item") != 0 || l->ref != NULL)
    return;
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp (names[i], "id") == 0)
      id = values[i];
    else if (strcmp (names[i], "ref") == 0)
      ref = values[i];
  if (id != NULL && ref != NULL && strcmp (id, l->id) == 0)
    l->ref = g_strdup (ref);
}

/* The page of help_id in one language's folder, or NULL. */
static char *
page_in (const char *dir, const char *help_id)
{
  static const GMarkupParser parser = { on_element, NULL, NULL, NULL, NULL };
  char   *map = g_build_filename (dir, "gimp-help.xml", NULL), *text = NULL, *uri = NULL;
  gsize   len;
  Lookup  l = { help_id, NULL };

  if (g_file_get_contents (map, &text, &len, NULL))
    {
      GMarkupParseContext *ctx = g_markup_parse_context_new (&parser, 0, &l, NULL);

      if (g_markup_parse_context_parse (ctx, text, len, NULL) && l.ref != NULL)
        {
          char *hash = strchr (l.ref, '#');
          char *file = g_build_filename (dir, l.ref, NULL), *fragment = NULL;

          if (hash != NULL)
            {
              fragment = g_strdup (hash);
              g_free (file);
              *hash = '\0';
              file = g_build_filename (dir, l.ref, NULL);
            }
          if (g_file_test (file, G_FILE_TEST_IS_REGULAR))
            {
              char *base = g_filename_to_uri (file, NULL, NULL);

              uri = g_strconcat (base, fragment, NULL);
              g_free (base);
            }
          g_free (fragment);
          g_free (file);
        }
      g_markup_parse_context_free (ctx);
    }
  g_free (l.ref);
  g_free (text);
  g_free (map);
  return uri;
}

char *
gfcg_help_page_uri (const char *help_id)
{
  const char *const *langs = g_get_language_names ();
  char *root = help_dir (), *uri = NULL;

  for (int i = 0; uri == NULL && langs[i] != NULL; i++)
    {
      char *dir = g_build_filename (root, langs[i], NULL);

      uri = page_in (dir, help_id);
      g_free (dir);
    }
  if (uri == NULL)
    {
      char *dir = g_build_filename (root, "en", NULL);

      uri = page_in (dir, help_id);
      g_free (dir);
    }
  g_free (root);
  return uri;
}
