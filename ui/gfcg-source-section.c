/* gfcg-source-section.c — "Start from": a combo over the three sources and
 * the strength slider, both bound to the procedure config.  A source the
 * image cannot offer stays listed but greyed, so the choice is visible. */
#include "gfcg-source-section.h"
#include "gfcg-source.h"

#include <glib/gi18n-lib.h>
#include <math.h>

typedef struct
{
  GObject           *config;
  GfcgDialogContext  where;
  GtkWidget         *strength;
} Section;

static gboolean
source_sensitive (const gchar *id, gpointer data)
{
  Section       *s = data;
  GfcgSourceKind kind;

  if (!gfcg_source_parse (id, &kind, NULL))
    return FALSE;
  return kind == GFCG_SOURCE_NOISE ||
         (kind == GFCG_SOURCE_LAYER && s->where.has_layer) ||
         (kind == GFCG_SOURCE_SELECTION && s->where.has_layer && s->where.has_selection);
}

static GfcgSourceKind
config_source (GObject *config)
{
  char          *name = NULL;
  GfcgSourceKind kind = GFCG_SOURCE_NOISE;

  g_object_get (config, "source", &name, NULL);
  if (!gfcg_source_parse (name, &kind, NULL))
    kind = GFCG_SOURCE_NOISE;
  g_free (name);
  return kind;
}

static void
on_source (GObject *config, GParamSpec *pspec, Section *s)
{
  gtk_widget_set_sensitive (s->strength, config_source (config) != GFCG_SOURCE_NOISE);
}

/* The section's state lives as long as its widget; the config outlives it. */
static void
on_destroy (GtkWidget *box, Section *s)
{
  g_signal_handlers_disconnect_by_data (s->config, s);
  g_free (s);
}

gboolean
gfcg_source_section_possible (GObject *config, const GfcgDialogContext *where, const char **why)
{
  switch (config_source (config))
    {
    case GFCG_SOURCE_LAYER:
      if (!where->has_layer)
        {
          if (why)
            *why = _("Select one layer to redraw, or start from noise.");
          return FALSE;
        }
      break;
    case GFCG_SOURCE_SELECTION:
      if (!where->has_layer || !where->has_selection)
        {
          if (why)
            *why = _("Make a selection on one layer to fill it, or start from noise.");
          return FALSE;
        }
      break;
    default:
      break;
    }
  return TRUE;
}

int
gfcg_source_section_run_steps (GObject *config, int steps)
{
  double strength = 1.0;

  if (config_source (config) == GFCG_SOURCE_NOISE)
    return steps;
  g_object_get (config, "strength", &strength, NULL);
  return (int) ceil (CLAMP (strength, 0.0, 1.0) * steps);
}

GtkWidget *
gfcg_source_section_new (GObject *config, const GfcgDialogContext *where)
{
  Section       *s = g_new0 (Section, 1);
  GtkWidget     *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkListStore  *store = gtk_list_store_new (2, G_TYPE_STRING, G_TYPE_STRING);
  GtkWidget     *combo;
  GtkAdjustment *adj;

  s->config = config;
  s->where = *where;
  gtk_list_store_insert_with_values (store, NULL, -1, 0, "noise", 1, _("Noise (a new picture)"), -1);
  gtk_list_store_insert_with_values (store, NULL, -1, 0, "layer", 1, _("This layer"), -1);
  gtk_list_store_insert_with_values (store, NULL, -1, 0, "selection", 1, _("The selection"), -1);
  combo = gimp_prop_string_combo_box_new (config, "source", GTK_TREE_MODEL (store), 0, 1);
  g_object_unref (store);
  gimp_string_combo_box_set_sensitivity (GIMP_STRING_COMBO_BOX (combo), source_sensitive, s,
                                         NULL);
  gtk_widget_set_tooltip_text (combo, _("This layer: redraw it as the class.  The selection: "
                                        "fill it with the class; every pixel outside it "
                                        "stays as it is."));
  gtk_box_pack_start (GTK_BOX (box), combo, FALSE, FALSE, 0);

  s->strength = gimp_prop_spin_scale_new (config, "strength", 0.01, 0.1, 2);
  adj = gtk_spin_button_get_adjustment (GTK_SPIN_BUTTON (s->strength));
  gtk_adjustment_set_lower (adj, 0.0);
  gtk_adjustment_set_upper (adj, 1.0);
  gimp_spin_scale_set_scale_limits (GIMP_SPIN_SCALE (s->strength), 0.0, 1.0);
  gtk_widget_set_tooltip_text (s->strength, _("How much is redrawn: low keeps the picture's "
                                              "layout and colours, 1 paints anew"));
  gtk_box_pack_start (GTK_BOX (box), s->strength, FALSE, FALSE, 0);
  g_signal_connect (config, "notify::source", G_CALLBACK (on_source), s);
  on_source (config, NULL, s);
  g_signal_connect (box, "destroy", G_CALLBACK (on_destroy), s);
  return box;
}
