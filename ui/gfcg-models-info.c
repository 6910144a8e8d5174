/* gfcg-models-info.c — what the Get models window says about a catalog
 * pack: what it draws, sizes, time, licence, and whether it is installed
 * or partly downloaded, read from the same folders the manager uses. */
#include "gfcg-models-info.h"

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>
#include <string.h>

gboolean
gfcg_models_is_installed (const char *name)
{
  char    *top = gfcg_models_dir ();
  char    *json = g_build_filename (top, name, "pack.json", NULL);
  gboolean ok = g_file_test (json, G_FILE_TEST_IS_REGULAR);

  g_free (json);
  g_free (top);
  return ok;
}

/* Bytes of the pack's files already in the download cache, whole or in a
 * .part that Download resumes. */
gint64
gfcg_models_downloaded (const CatalogPack *pack)
{
  char       *cache = models_cache_dir ();
  GHashTable *seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  gint64      have = 0;

  for (guint i = 0; i < pack->files->len; i++)
    {
      CatalogFile *f = pack->files->pdata[i];
      char        *path = g_build_filename (cache, f->file, NULL);
      char        *part = g_strconcat (path, ".part", NULL);
      GStatBuf     st;

      if (g_hash_table_add (seen, f))
        {
          if (g_stat (path, &st) == 0 || g_stat (part, &st) == 0)
            have += st.st_size;
        }
      g_free (part);
      g_free (path);
    }
  g_hash_table_unref (seen);
  g_free (cache);
  return have;
}

gboolean
gfcg_models_is_non_commercial (const char *licence)
{
  char    *l = g_ascii_strdown (licence != NULL ? licence : "", -1);
  gboolean nc = strstr (l, "-nc") != NULL || strstr (l, "non-commercial") != NULL
                || strstr (l, "noncommercial") != NULL;

  g_free (l);
  return nc;
}

char *
gfcg_models_state (const CatalogPack *pack)
{
  gint64   have;
  gboolean exact;

  if (gfcg_models_is_installed (pack->name))
    return g_strdup (_("Installed"));
  have = gfcg_models_downloaded (pack);
  if (have > 0 && have >= catalog_pack_download_size (pack, &exact))
    return g_strdup (_("Downloaded, not installed"));
  if (have > 0)
    {
      char *h = g_format_size (have), *s;

      /* TRANSLATORS: "Partly downloaded (12 MB)" */
      s = g_strdup_printf (_("Partly downloaded (%s)"), h);
      g_free (h);
      return s;
    }
  return g_strdup (_("Not installed"));
}

char *
gfcg_models_size_text (const CatalogPack *pack)
{
  gboolean exact;
  gint64   dl = catalog_pack_download_size (pack, &exact);
  char    *size = g_format_size (dl), *s;

  s = exact ? g_strdup (size) : g_strdup_printf (_("about %s"), size);
  g_free (size);
  return s;
}

/* "1000 ImageNet classes (all of ImageNet-1k) at 64x64 px" or the names
 * of a few. */
static char *
draws_text (const CatalogPack *pack)
{
  GString *names;

  if (pack->n_classes == 0)
    return g_strdup (_("not stated by the catalog"));
  if (pack->classes == NULL)
    return pack->resolution > 0
           ? g_strdup_printf (_("all 1000 ImageNet classes at %dx%d px"), pack->resolution,
                              pack->resolution)
           : g_strdup (_("all 1000 ImageNet classes"));
  names = g_string_new (NULL);
  for (int i = 0; i < pack->n_classes && i < 8; i++)
    g_string_append_printf (names, "%s%s", i > 0 ? ", " : "",
                            gfcg_imagenet_name (pack->classes[i]));
  if (pack->n_classes > 8)
    g_string_append (names, ", ...");
  {
    char *s = pack->resolution > 0
              ? g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d class (%s) at %dx%d px",
                                              "%d classes (%s) at %dx%d px", pack->n_classes),
                                 pack->n_classes, names->str, pack->resolution,
                                 pack->resolution)
              : g_strdup_printf (g_dngettext (GETTEXT_PACKAGE, "%d class (%s)",
                                              "%d classes (%s)", pack->n_classes),
                                 pack->n_classes, names->str);
    g_string_free (names, TRUE);
    return s;
  }
}

/* One "Label: value" line, the value escaped. */
static void
add_line (GString *out, const char *label, const char *value)
{
  char *v = g_markup_escape_text (value, -1);

  g_string_append_printf (out, "\n<b>%s</b> %s", label, v);
  g_free (v);
}

char *
gfcg_models_details (const CatalogPack *pack, const char *device)
{
  GString *out = g_string_new (NULL);
  char    *draws = draws_text (pack), *size = gfcg_models_size_text (pack);
  char    *title = g_markup_escape_text (pack->title != NULL ? pack->title : pack->name, -1);
  char    *time, *line;

  g_string_append_printf (out, "<big>%s</big>", title);
  add_line (out, _("Draws:"), draws);
  if (pack->installed_size > 0)
    {
      char *i = g_format_size (pack->installed_size);

      /* TRANSLATORS: "1.2 GB, about 830 MB installed" */
      line = g_strdup_printf (_("%s, about %s installed"), size, i);
      g_free (i);
    }
  else
    line = g_strdup (size);
  add_line (out, _("Download:"), line);
  g_free (line);
  /* The engine measures a pack only once it is loaded (the dialog's
   * estimate); the catalog's figure is for the publisher's machines. */
  time = gfcg_models_is_installed (pack->name)
         ? g_strdup_printf (_("on %s: in the dialog's estimate once the pack is chosen"), device)
         : g_strdup_printf (_("on %s: after install"), device);
  add_line (out, _("Time per picture:"), time);
  if (pack->time != NULL)
    add_line (out, _("Publisher's machines:"), pack->time);
  if (pack->memory != NULL)
    add_line (out, _("Memory:"), pack->memory);
  if (pack->about != NULL)
    {
      char *a = g_markup_escape_text (pack->about, -1);

      g_string_append_printf (out, "\n<small>%s</small>", a);
      g_free (a);
    }
  g_free (time);
  g_free (title);
  g_free (size);
  g_free (draws);
  return g_string_free (out, FALSE);
}
