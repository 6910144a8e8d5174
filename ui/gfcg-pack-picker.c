/* gfcg-pack-picker.c — the pack folder and device pickers. */
#include "gfcg-pack-picker.h"
#include "gfcg-models-window.h"

#include <gfcg/gfcg.h>
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include <string.h>

typedef struct
{
  GObject   *config;
  char      *property;
  GtkWidget *combo;
  GtkWidget *models;   /* the Get models window, while open */
} Picker;

static void
picker_free (gpointer data)
{
  Picker *p = data;

  if (p->models != NULL)
    {
      /* Stopped before the plug-in ends: the manager then removes its
       * staging folder and keeps the partial download for next time. */
      gfcg_models_window_stop (p->models);
      if (p->models != NULL)
        gtk_widget_destroy (p->models);
    }
  g_free (p->property);
  g_free (p);
}

/* The default pack, those shipped beside it, then those `gfcg models
 * fetch` or Get models installed: the engine's list, so the names match
 * the command's. */
static void
fill_packs (Picker *p)
{
  char **packs = gfcg_installed_packs ();

  gtk_combo_box_text_remove_all (GTK_COMBO_BOX_TEXT (p->combo));
  /* The default pack, those shipped beside it, then those `gfcg models
   * fetch` or Get Models installed: the engine's list, so the names match the
   * command's.  By name, which `pack` resolves as the command line does: a
   * name reads better than an install path and survives a move of the data
   * folder. */
  for (char **d = packs; *d != NULL; d++)
    {
      char *name = g_path_get_basename (*d);

      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (p->combo), name);
      g_free (name);
    }
  g_strfreev (packs);
}

static void
on_models_changed (gpointer data)
{
  Picker *p = data;
  char   *pack = NULL;

  /* Removing the entries must not clear the pack the entry shows. */
  g_object_get (p->config, p->property, &pack, NULL);
  fill_packs (p);
  g_object_set (p->config, p->property, pack, NULL);
  g_free (pack);
}

static void
on_models_use (const char *name, gpointer data)
{
  Picker *p = data;

  g_object_set (p->config, p->property, name, NULL);
}

static void
on_models_destroyed (GtkWidget *window, Picker *p)
{
  p->models = NULL;
}

static GtkWidget *
open_models (Picker *p, GtkWidget *from, const char *select)
{
  if (p->models == NULL)
    {
      char *device = NULL;

      if (g_object_class_find_property (G_OBJECT_GET_CLASS (p->config), "device") != NULL)
        g_object_get (p->config, "device", &device, NULL);
      p->models = gfcg_models_window_new (GTK_WINDOW (gtk_widget_get_toplevel (from)), device,
                                          on_models_changed, on_models_use, p);
      g_signal_connect (p->models, "destroy", G_CALLBACK (on_models_destroyed), p);
      g_free (device);
    }
  if (select != NULL)
    gfcg_models_window_select (p->models, select);
  gtk_window_present (GTK_WINDOW (p->models));
  return p->models;
}

static void
on_get_models (GtkButton *button, Picker *p)
{
  open_models (p, GTK_WIDGET (button), NULL);
}

GtkWidget *
gfcg_pack_picker_get_models (GtkWidget *picker, const char *select)
{
  Picker *p = g_object_get_data (G_OBJECT (picker), "gfcg-pack-picker");

  return open_models (p, picker, select);
}

GtkWidget *
gfcg_pack_picker_models_window (GtkWidget *picker)
{
  Picker *p = g_object_get_data (G_OBJECT (picker), "gfcg-pack-picker");

  return p->models;
}

char *
gfcg_pack_picker_describe (GtkWidget *picker)
{
  Picker       *p = g_object_get_data (G_OBJECT (picker), "gfcg-pack-picker");
  GtkTreeModel *model = gtk_combo_box_get_model (GTK_COMBO_BOX (p->combo));
  GString      *s = g_string_new (NULL);
  GtkTreeIter   iter;
  gboolean      more = gtk_tree_model_get_iter_first (model, &iter);

  while (more)
    {
      char *dir = NULL, *name;

      gtk_tree_model_get (model, &iter, 0, &dir, -1);
      name = g_path_get_basename (dir);
      g_string_append_printf (s, "%s%s", s->len > 0 ? "," : "", name);
      g_free (name);
      g_free (dir);
      more = gtk_tree_model_iter_next (model, &iter);
    }
  return g_string_free (s, FALSE);
}

static void
on_browse (GtkButton *button, Picker *p)
{
  GtkWidget *chooser, *top = gtk_widget_get_toplevel (GTK_WIDGET (button));
  char      *pack = NULL;

  chooser = gtk_file_chooser_dialog_new (_("Choose a Model Pack Folder"), GTK_WINDOW (top),
                                         GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER,
                                         _("_Cancel"), GTK_RESPONSE_CANCEL,
                                         _("_Open"), GTK_RESPONSE_ACCEPT, NULL);
  g_object_get (p->config, p->property, &pack, NULL);
  if (pack != NULL && *pack != '\0')
    gtk_file_chooser_set_filename (GTK_FILE_CHOOSER (chooser), pack);
  if (gtk_dialog_run (GTK_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    {
      char *dir = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));

      g_object_set (p->config, p->property, dir, NULL);
      g_free (dir);
    }
  g_free (pack);
  gtk_widget_destroy (chooser);
}

GtkWidget *
gfcg_pack_picker_new (GObject *config, const char *property)
{
  GtkWidget *outer = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *combo, *entry, *button;
  Picker    *p = g_new0 (Picker, 1);
  char      *def = gfcg_default_pack_dir (), *hint;

  p->config = config;
  p->property = g_strdup (property);
  g_object_set_data_full (G_OBJECT (outer), "gfcg-pack-picker", p, picker_free);
  combo = p->combo = gtk_combo_box_text_new_with_entry ();
  fill_packs (p);
  entry = gtk_bin_get_child (GTK_BIN (combo));
  {
    char *name = g_path_get_basename (def), *tip;

    hint = g_strdup_printf (_("Default: %s"), name);
    tip = g_strdup_printf (_("A model pack: the name of an installed one, or a folder "
                             "(empty: the default pack, %s)"), def);
    gtk_widget_set_tooltip_text (combo, tip);
    g_free (tip);
    g_free (name);
  }
  gtk_entry_set_placeholder_text (GTK_ENTRY (entry), hint);
  g_object_bind_property (config, property, entry, "text",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);
  gtk_widget_set_hexpand (combo, TRUE);
  gtk_box_pack_start (GTK_BOX (box), combo, TRUE, TRUE, 0);
  button = gtk_button_new_with_mnemonic (_("_Browse..."));
  g_signal_connect (button, "clicked", G_CALLBACK (on_browse), p);
  gtk_box_pack_start (GTK_BOX (box), button, FALSE, FALSE, 0);
  button = gtk_button_new_with_mnemonic (_("_Get Models..."));
  gtk_widget_set_tooltip_text (button, _("Download and install the published model packs "
                                         "(as gfcg models fetch NAME does)"));
  g_signal_connect (button, "clicked", G_CALLBACK (on_get_models), p);
  gtk_box_pack_start (GTK_BOX (box), button, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (outer), box, FALSE, FALSE, 0);
  g_free (hint);
  g_free (def);
  return outer;
}

GtkWidget *
gfcg_device_picker_new (GObject *config, const char *property)
{
  GtkWidget  *combo = gtk_combo_box_text_new_with_entry ();
  const char *ids[] = { "auto", "cpu", "cpu:bf16", "opencl:0", "opencl:1" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    /* cpu:bf16 only where it runs: elsewhere it is an error, not a fallback */
    if (strcmp (ids[i], "cpu:bf16") != 0 || gfcg_cpu_bf16_unsupported () == NULL)
      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (combo), ids[i]);
  g_object_bind_property (config, property, gtk_bin_get_child (GTK_BIN (combo)), "text",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);
  gtk_widget_set_tooltip_text (combo, _("auto: the first OpenCL GPU, else the CPU; "
                                        "cpu; or opencl:N (see `gfcg devices`)"));
  return combo;
}
