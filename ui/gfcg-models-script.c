/* gfcg-models-script.c — the Get models window as the dialog's test
 * script drives and reads it ($GFCG_TEST_DIALOG's m- steps, gfcg-dialog.c):
 * buttons pressed only when a user could, and the state in one line. */
#include "gfcg-models-window-private.h"
#include "gfcg-models-info.h"

#include <string.h>

static void
press (GtkWidget *b)
{
  /* As a click: a greyed button does nothing. */
  if (gtk_widget_is_sensitive (b) && gtk_widget_get_visible (b))
    gtk_button_clicked (GTK_BUTTON (b));
}

void
gfcg_models_window_step (GtkWidget *window, const char *step)
{
  Models *m = gfcg_models_get (window);

  if (m == NULL)
    return;
  if (g_str_has_prefix (step, "select:"))
    gfcg_models_window_select (window, step + 7);
  else if (g_str_has_prefix (step, "accept:"))
    {
      if (gtk_widget_is_sensitive (m->accept) && gtk_widget_get_visible (m->accept))
        gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (m->accept), step[7] == '1');
    }
  else if (strcmp (step, "download") == 0)
    press (m->download);
  else if (strcmp (step, "cancel") == 0)
    press (m->cancel);
  else if (strcmp (step, "verify") == 0)
    press (m->verify);
  else if (strcmp (step, "remove") == 0)
    press (m->remove);
  else if (strcmp (step, "use") == 0)
    press (m->use);
  else if (strcmp (step, "close") == 0)
    gtk_dialog_response (GTK_DIALOG (m->window), GTK_RESPONSE_CLOSE);
  else
    g_printerr ("gfcg-render: unknown Get models step '%s'\n", step);
}

gint64
gfcg_models_window_bytes (GtkWidget *window, const char *file)
{
  Models        *m = gfcg_models_get (window);
  gint64         sum = 0;
  GHashTableIter it;
  gpointer       key, value;

  if (m == NULL)
    return 0;
  g_hash_table_iter_init (&it, m->file_done);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (file == NULL || strcmp (key, file) == 0)
      sum += *(gint64 *) value;
  return sum;
}

char *
gfcg_models_window_describe (GtkWidget *window)
{
  Models      *m = gfcg_models_get (window);
  GString     *s = g_string_new (NULL), *packs = g_string_new (NULL);
  CatalogPack *pack;

  if (m == NULL)
    return g_strdup ("closed=1");
  for (guint i = 0; m->cat != NULL && i < m->cat->packs->len; i++)
    {
      CatalogPack *p = m->cat->packs->pdata[i];
      char        *state = gfcg_models_state (p);

      g_string_append_printf (packs, "%s%s:%s", i > 0 ? "," : "", p->name, state);
      g_free (state);
    }
  pack = gfcg_models_selected (m);
  g_string_append_printf (s, "packs=%s\tselected=%s\tbusy=%d\taccept=%s\tdownload=%d"
                          "\tcancel=%d\tverify=%d\tremove=%d\tuse=%d\tprogress=%s"
                          "\tfraction=%.2f\tstatus=%s\tlicence=%s", packs->str,
                          pack != NULL ? pack->name : "", m->busy != NULL,
                          !gtk_widget_get_visible (m->accept) ? "none"
                          : gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (m->accept))
                          ? "ticked" : "unticked",
                          gtk_widget_is_sensitive (m->download),
                          gtk_widget_is_sensitive (m->cancel),
                          gtk_widget_is_sensitive (m->verify),
                          gtk_widget_is_sensitive (m->remove), gtk_widget_is_sensitive (m->use),
                          gtk_progress_bar_get_text (GTK_PROGRESS_BAR (m->bar)),
                          gtk_progress_bar_get_fraction (GTK_PROGRESS_BAR (m->bar)),
                          gtk_label_get_text (GTK_LABEL (m->status)),
                          gtk_label_get_text (GTK_LABEL (m->licence)));
  /* The details, one line: the labels' text without markup. */
  {
    char *d = g_strdup (gtk_label_get_text (GTK_LABEL (m->details)));

    g_strdelimit (d, "\n\t", ' ');
    g_string_append_printf (s, "\tdetails=%s", d);
    g_free (d);
  }
  g_string_free (packs, TRUE);
  return g_string_free (s, FALSE);
}
