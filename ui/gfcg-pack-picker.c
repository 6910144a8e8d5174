/* gfcg-pack-picker.c — the pack folder and device pickers. */
#include "gfcg-pack-picker.h"

#include <gfcg/gfcg.h>
#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

typedef struct
{
  GObject *config;
  char    *property;
} Picker;

static void
picker_free (gpointer data)
{
  Picker *p = data;

  g_free (p->property);
  g_free (p);
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
  GtkWidget *combo, *entry, *button, *more;
  Picker    *p = g_new0 (Picker, 1);
  char      *def = gfcg_default_pack_dir (), *hint;
  char     **packs = gfcg_installed_packs ();

  p->config = config;
  p->property = g_strdup (property);
  g_object_set_data_full (G_OBJECT (outer), "gfcg-pack-picker", p, picker_free);
  combo = gtk_combo_box_text_new_with_entry ();
  /* The default pack, those shipped beside it, then those `gfcg models
   * fetch` installed: the engine's list, so the names match the command's. */
  /* By name, which `pack` resolves as the command line does: a name reads
   * better than an install path and survives a move of the data folder. */
  for (char **d = packs; *d != NULL; d++)
    {
      char *name = g_path_get_basename (*d);

      gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (combo), name);
      g_free (name);
    }
  g_strfreev (packs);
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
  gtk_box_pack_start (GTK_BOX (outer), box, FALSE, FALSE, 0);
  more = gtk_label_new (_("More models: gfcg models list, then gfcg models fetch NAME"));
  gtk_label_set_xalign (GTK_LABEL (more), 0.0);
  gtk_label_set_selectable (GTK_LABEL (more), TRUE);
  gimp_label_set_attributes (GTK_LABEL (more), PANGO_ATTR_SCALE, PANGO_SCALE_SMALL, -1);
  gtk_box_pack_start (GTK_BOX (outer), more, FALSE, FALSE, 0);
  g_free (hint);
  g_free (def);
  return outer;
}

GtkWidget *
gfcg_device_picker_new (GObject *config, const char *property)
{
  GtkWidget  *combo = gtk_combo_box_text_new_with_entry ();
  const char *ids[] = { "auto", "cpu", "opencl:0", "opencl:1" };

  for (guint i = 0; i < G_N_ELEMENTS (ids); i++)
    gtk_combo_box_text_append_text (GTK_COMBO_BOX_TEXT (combo), ids[i]);
  g_object_bind_property (config, property, gtk_bin_get_child (GTK_BIN (combo)), "text",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);
  gtk_widget_set_tooltip_text (combo, _("auto: the first OpenCL GPU, else the CPU; "
                                        "cpu; or opencl:N (see `gfcg devices`)"));
  return combo;
}
