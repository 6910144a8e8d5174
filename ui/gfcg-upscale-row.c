/* gfcg-upscale-row.c — the Upscale combo.  An empty `upscale` (last values
 * or a script from before it existed) is shown as what it means, the choice
 * scale-to-canvas implies; a choice made here sets scale-to-canvas to match,
 * so a later run by an older script that reads only the boolean agrees. */
#include "gfcg-upscale-row.h"
#include "gfcg-upscale.h"

#include <glib/gi18n-lib.h>

static void
on_upscale (GObject *config, GParamSpec *pspec, gpointer data)
{
  char       *name = NULL;
  gboolean    scale = FALSE;
  GfcgUpscale up;

  g_object_get (config, "upscale", &name, "scale-to-canvas", &scale, NULL);
  if (gfcg_upscale_from_string (name, scale, &up) && scale != (up != GFCG_UPSCALE_NONE))
    g_object_set (config, "scale-to-canvas", up != GFCG_UPSCALE_NONE, NULL);
  g_free (name);
}

/* Refines and fills keep their region's place and size: the choice would
 * change nothing, so it is greyed. */
static void
on_source (GObject *config, GParamSpec *pspec, GtkWidget *combo)
{
  char *source = NULL;

  g_object_get (config, "source", &source, NULL);
  gtk_widget_set_sensitive (combo, source == NULL || *source == '\0' ||
                                   g_strcmp0 (source, "noise") == 0);
  g_free (source);
}

GtkWidget *
gfcg_upscale_row_new (GObject *config)
{
  GtkListStore *store = gtk_list_store_new (2, G_TYPE_STRING, G_TYPE_STRING);
  GtkWidget    *combo;
  char         *name = NULL;
  gboolean      scale = FALSE;
  GfcgUpscale   up;

  gtk_list_store_insert_with_values (store, NULL, -1, 0, "none", 1,
                                     _("None: centred at its own size"), -1);
  gtk_list_store_insert_with_values (store, NULL, -1, 0, "nearest", 1,
                                     _("Nearest: crisp blocks of pixels"), -1);
  gtk_list_store_insert_with_values (store, NULL, -1, 0, "smooth", 1,
                                     _("Smooth: interpolated (LoHalo)"), -1);
  g_object_get (config, "upscale", &name, "scale-to-canvas", &scale, NULL);
  if (!gfcg_upscale_from_string (name, scale, &up))
    up = GFCG_UPSCALE_NONE;
  g_object_set (config, "upscale", gfcg_upscale_to_string (up), NULL);
  g_free (name);
  combo = gimp_prop_string_combo_box_new (config, "upscale", GTK_TREE_MODEL (store), 0, 1);
  g_object_unref (store);
  gtk_widget_set_tooltip_text (combo, _("How a new picture is brought to the canvas: packs "
                                        "draw small pictures (64 px for the default pack).  "
                                        "Nearest and Smooth cover the canvas, keeping the "
                                        "aspect, and crop to it."));
  g_signal_connect_object (config, "notify::upscale", G_CALLBACK (on_upscale), combo, 0);
  on_upscale (config, NULL, NULL);
  g_signal_connect_object (config, "notify::source", G_CALLBACK (on_source), combo, 0);
  on_source (config, NULL, combo);
  return combo;
}
