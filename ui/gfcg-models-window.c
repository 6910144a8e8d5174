/* gfcg-models-window.c — the Get models window: a list of the catalog's
 * packs, the chosen one's details and licence, and its actions.  Only one
 * action runs at a time (the manager's interrupt flag and progress hook are
 * per process); closing the window cancels it. */
#include "gfcg-models-window-private.h"
#include "gfcg-models-info.h"
#include "gfcg-models-task.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>
#include <string.h>

Models *
gfcg_models_get (GtkWidget *window)
{
  return g_object_get_data (G_OBJECT (window), "gfcg-models");
}

CatalogPack *
gfcg_models_selected (Models *m)
{
  GtkTreeModel *model;
  GtkTreeIter   iter;
  char         *name = NULL;
  CatalogPack  *pack = NULL;

  if (m->cat == NULL
      || !gtk_tree_selection_get_selected (gtk_tree_view_get_selection (GTK_TREE_VIEW (m->view)),
                                           &model, &iter))
    return NULL;
  gtk_tree_model_get (model, &iter, COL_NAME, &name, -1);
  pack = catalog_find_pack (m->cat, name);
  g_free (name);
  return pack;
}

static gboolean
licence_ok (Models *m, CatalogPack *pack)
{
  return !gfcg_models_is_non_commercial (pack->licence)
         || g_hash_table_contains (m->accepted, pack->name);
}

/* Buttons, licence and details for the selected pack. */
static void
update (Models *m)
{
  CatalogPack *pack = gfcg_models_selected (m);
  gboolean     installed = pack != NULL && gfcg_models_is_installed (pack->name);
  gboolean     idle = m->busy == NULL, nc;
  char        *text;

  gtk_widget_set_sensitive (m->cancel, !idle);
  gtk_widget_set_sensitive (m->view, idle);
  if (pack == NULL)
    {
      gtk_label_set_text (GTK_LABEL (m->details), "");
      gtk_label_set_text (GTK_LABEL (m->licence), "");
      gtk_widget_hide (m->accept);
      for (GtkWidget **b = (GtkWidget *[]) { m->download, m->verify, m->remove, m->use, NULL };
           *b != NULL; b++)
        gtk_widget_set_sensitive (*b, FALSE);
      return;
    }
  text = gfcg_models_details (pack, m->device);
  gtk_label_set_markup (GTK_LABEL (m->details), text);
  g_free (text);
  nc = gfcg_models_is_non_commercial (pack->licence);
  text = g_strdup_printf (nc ? _("Licence: %s.  Non-commercial use only: the pictures of "
                                 "this pack may not be used commercially.")
                             : _("Licence: %s"),
                          pack->licence != NULL ? pack->licence : _("not stated"));
  gtk_label_set_text (GTK_LABEL (m->licence), text);
  g_free (text);
  gtk_widget_set_visible (m->accept, nc && !installed);
  g_signal_handlers_block_matched (m->accept, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, m);
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (m->accept),
                                g_hash_table_contains (m->accepted, pack->name));
  g_signal_handlers_unblock_matched (m->accept, G_SIGNAL_MATCH_DATA, 0, 0, NULL, NULL, m);
  gtk_widget_set_sensitive (m->accept, idle);
  gtk_widget_set_sensitive (m->download, idle && !installed && licence_ok (m, pack));
  gtk_widget_set_sensitive (m->verify, idle && installed);
  gtk_widget_set_sensitive (m->remove, idle && installed);
  gtk_widget_set_sensitive (m->use, idle && installed);
}

/* The list's state column, after an action changed what is installed. */
static void
refresh_rows (Models *m)
{
  GtkTreeIter iter;
  gboolean    more = gtk_tree_model_get_iter_first (GTK_TREE_MODEL (m->store), &iter);

  while (more)
    {
      char        *name = NULL, *state;
      CatalogPack *pack;

      gtk_tree_model_get (GTK_TREE_MODEL (m->store), &iter, COL_NAME, &name, -1);
      pack = catalog_find_pack (m->cat, name);
      state = gfcg_models_state (pack);
      gtk_list_store_set (m->store, &iter, COL_STATE, state, -1);
      g_free (state);
      g_free (name);
      more = gtk_tree_model_iter_next (GTK_TREE_MODEL (m->store), &iter);
    }
  update (m);
}

static void
set_status (Models *m, const char *text)
{
  gtk_label_set_text (GTK_LABEL (m->status), text);
}

/* ---- actions --------------------------------------------------------------------- */

static void
on_progress (const char *file, gint64 done, gint64 total, gpointer data)
{
  Models *m = data;
  gint64  sum = 0;
  char   *d, *t, *text;
  GHashTableIter it;
  gpointer value;

  if (m->busy == NULL)
    return;                         /* a late one, after the end */
  g_hash_table_insert (m->file_done, g_strdup (file), g_memdup2 (&done, sizeof done));
  g_hash_table_iter_init (&it, m->file_done);
  while (g_hash_table_iter_next (&it, NULL, &value))
    sum += *(gint64 *) value;
  d = g_format_size (done);
  t = g_format_size (MAX (total, 0));
  /* TRANSLATORS: "main.safetensors: 12 MB of 34 MB" */
  text = total > 0 ? g_strdup_printf (_("%s: %s of %s"), file, d, t)
                   : g_strdup_printf ("%s: %s", file, d);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (m->bar), text);
  if (m->total > 0)
    gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (m->bar), CLAMP ((double) sum / m->total, 0, 1));
  g_free (text);
  g_free (t);
  g_free (d);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer data)
{
  Models *m = data;
  GError *error = NULL;
  char   *report = gfcg_models_task_finish (result, &error);
  char   *text;

  if (report != NULL && strcmp (report, "installed") == 0)
    text = g_strdup_printf (_("%s is installed: press Use, or choose it under Model pack."),
                            m->busy);
  else if (report != NULL && strcmp (report, "removed") == 0)
    text = g_strdup_printf (_("%s was removed."), m->busy);
  else if (report != NULL)
    text = g_strdup_printf (_("%s: %s"), m->busy, report);
  else if (g_error_matches (error, GFCG_ERROR, GFCG_ERROR_CANCELLED))
    text = g_strdup (_("Cancelled.  Nothing was installed; what was downloaded is kept, and "
                       "Download goes on from there."));
  else
    text = g_strdup_printf (_("Failed: %s"), error->message);
  set_status (m, text);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (m->bar), report != NULL ? 1.0 : 0.0);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (m->bar), report != NULL ? _("Done") : "");
  g_free (text);
  g_free (report);
  g_clear_error (&error);
  g_clear_pointer (&m->busy, g_free);
  g_clear_object (&m->cancellable);
  refresh_rows (m);
  if (m->changed != NULL)
    m->changed (m->user_data);
  if (m->close_when_done)
    gtk_widget_destroy (m->window);
}

static void
start (Models *m, GfcgModelsAction action, const char *status)
{
  CatalogPack *pack = gfcg_models_selected (m);
  gboolean     exact;

  if (pack == NULL || m->busy != NULL)
    return;
  if (action == GFCG_MODELS_INSTALL && !licence_ok (m, pack))
    {
      /* The button is greyed; this is for a script pressing it anyway. */
      set_status (m, _("Tick the licence box first."));
      return;
    }
  m->busy = g_strdup (pack->name);
  m->cancellable = g_cancellable_new ();
  g_hash_table_remove_all (m->file_done);
  m->total = catalog_pack_download_size (pack, &exact);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (m->bar), 0.0);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (m->bar), "");
  set_status (m, status);
  update (m);
  gfcg_models_task_run (G_OBJECT (m->window), action, m->catalog_path, pack->name,
                        m->cancellable, on_progress, on_done, m);
}

static void
on_download (GtkButton *b, Models *m)
{
  start (m, GFCG_MODELS_INSTALL, _("Downloading, checking and installing..."));
}

static void
on_verify (GtkButton *b, Models *m)
{
  start (m, GFCG_MODELS_VERIFY, _("Verifying..."));
}

static void
on_remove (GtkButton *b, Models *m)
{
  start (m, GFCG_MODELS_REMOVE, _("Removing..."));
}

static void
on_cancel (GtkButton *b, Models *m)
{
  if (m->cancellable != NULL)
    g_cancellable_cancel (m->cancellable);
  set_status (m, _("Cancelling..."));
}

static void
on_use (GtkButton *b, Models *m)
{
  CatalogPack *pack = gfcg_models_selected (m);

  if (pack != NULL && m->use_func != NULL)
    m->use_func (pack->name, m->user_data);
}

static void
on_accept (GtkToggleButton *t, Models *m)
{
  CatalogPack *pack = gfcg_models_selected (m);

  if (pack == NULL)
    return;
  if (gtk_toggle_button_get_active (t))
    g_hash_table_add (m->accepted, g_strdup (pack->name));
  else
    g_hash_table_remove (m->accepted, pack->name);
  update (m);
}

static void
on_selection (GtkTreeSelection *sel, Models *m)
{
  update (m);
}

/* Close while busy: cancel, and go once the manager has cleaned up. */
static void
on_response (GtkDialog *dialog, gint response, Models *m)
{
  if (m->busy == NULL)
    {
      gtk_widget_destroy (m->window);
      return;
    }
  m->close_when_done = TRUE;
  on_cancel (NULL, m);
  gtk_widget_hide (m->window);
}

static void
on_destroy (GtkWidget *w, Models *m)
{
  g_object_set_data (G_OBJECT (m->window), "gfcg-models", NULL);
  catalog_free (m->cat);
  g_object_unref (m->store);
  g_hash_table_unref (m->accepted);
  g_hash_table_unref (m->file_done);
  g_free (m->catalog_path);
  g_free (m->device);
  g_free (m);
}

/* ---- widgets --------------------------------------------------------------------- */

static GtkWidget *
pack_list (Models *m)
{
  GtkWidget       *scrolled = gtk_scrolled_window_new (NULL, NULL);
  GtkCellRenderer *r = gtk_cell_renderer_text_new ();

  m->store = gtk_list_store_new (N_COLS, G_TYPE_STRING, G_TYPE_STRING, G_TYPE_STRING);
  for (guint i = 0; m->cat != NULL && i < m->cat->packs->len; i++)
    {
      CatalogPack *p = m->cat->packs->pdata[i];
      char        *state = gfcg_models_state (p), *size = gfcg_models_size_text (p);

      gtk_list_store_insert_with_values (m->store, NULL, -1, COL_NAME, p->name, COL_STATE, state,
                                         COL_SIZE, size, -1);
      g_free (state);
      g_free (size);
    }
  m->view = gtk_tree_view_new_with_model (GTK_TREE_MODEL (m->store));
  gtk_tree_view_insert_column_with_attributes (GTK_TREE_VIEW (m->view), -1, _("Pack"), r,
                                               "text", COL_NAME, NULL);
  gtk_tree_view_insert_column_with_attributes (GTK_TREE_VIEW (m->view), -1, _("State"), r,
                                               "text", COL_STATE, NULL);
  gtk_tree_view_insert_column_with_attributes (GTK_TREE_VIEW (m->view), -1, _("Download"), r,
                                               "text", COL_SIZE, NULL);
  g_signal_connect (gtk_tree_view_get_selection (GTK_TREE_VIEW (m->view)), "changed",
                    G_CALLBACK (on_selection), m);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scrolled), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_widget_set_size_request (scrolled, -1, 120);
  gtk_container_add (GTK_CONTAINER (scrolled), m->view);
  return scrolled;
}

static GtkWidget *
button (GtkWidget *box, const char *mnemonic, GCallback cb, Models *m)
{
  GtkWidget *b = gtk_button_new_with_mnemonic (mnemonic);

  g_signal_connect (b, "clicked", cb, m);
  gtk_box_pack_start (GTK_BOX (box), b, FALSE, FALSE, 0);
  return b;
}

static GtkWidget *
label (GtkWidget *box)
{
  GtkWidget *l = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (l), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (l), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (l), 70);
  gtk_label_set_selectable (GTK_LABEL (l), TRUE);
  gtk_box_pack_start (GTK_BOX (box), l, FALSE, FALSE, 0);
  return l;
}

GtkWidget *
gfcg_models_window_new (GtkWindow *parent, const char *device, GfcgModelsChangedFunc changed,
                        GfcgModelsUseFunc use, gpointer user_data)
{
  Models    *m = g_new0 (Models, 1);
  GtkWidget *vbox, *row;
  GError    *error = NULL;
  GtkTreeIter first;

  m->catalog_path = gfcg_models_catalog_path ();
  m->cat = catalog_load (m->catalog_path, &error);
  m->device = g_strdup (device != NULL && *device != '\0' ? device : "auto");
  m->accepted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  m->file_done = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  m->changed = changed;
  m->use_func = use;
  m->user_data = user_data;
  m->window = gimp_dialog_new (_("Get Models"), "gfcg-models", GTK_WIDGET (parent), 0, NULL,
                               NULL, _("_Close"), GTK_RESPONSE_CLOSE, NULL);
  /* The plug-in's dialog is modal: this window takes the input above it. */
  gtk_window_set_modal (GTK_WINDOW (m->window), TRUE);
  g_object_set_data (G_OBJECT (m->window), "gfcg-models", m);
  g_signal_connect (m->window, "response", G_CALLBACK (on_response), m);
  g_signal_connect (m->window, "destroy", G_CALLBACK (on_destroy), m);

  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  gtk_container_set_border_width (GTK_CONTAINER (vbox), 12);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (m->window))), vbox,
                      TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (vbox), pack_list (m), TRUE, TRUE, 0);
  m->details = label (vbox);
  m->licence = label (vbox);
  m->accept = gtk_check_button_new_with_mnemonic (_("I _accept the licence: non-commercial "
                                                    "use only"));
  g_signal_connect (m->accept, "toggled", G_CALLBACK (on_accept), m);
  gtk_box_pack_start (GTK_BOX (vbox), m->accept, FALSE, FALSE, 0);
  m->bar = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (m->bar), TRUE);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (m->bar), "");
  gtk_box_pack_start (GTK_BOX (vbox), m->bar, FALSE, FALSE, 0);
  m->status = label (vbox);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_box_pack_start (GTK_BOX (vbox), row, FALSE, FALSE, 0);
  m->download = button (row, _("_Download"), G_CALLBACK (on_download), m);
  m->cancel = button (row, _("C_ancel"), G_CALLBACK (on_cancel), m);
  m->verify = button (row, _("_Verify"), G_CALLBACK (on_verify), m);
  m->remove = button (row, _("_Remove"), G_CALLBACK (on_remove), m);
  m->use = button (row, _("_Use"), G_CALLBACK (on_use), m);
  gtk_widget_set_tooltip_text (m->use, _("Draw with this pack"));
  gtk_widget_show_all (vbox);
  if (m->cat == NULL)
    set_status (m, error->message);
  else if (gtk_tree_model_get_iter_first (GTK_TREE_MODEL (m->store), &first))
    gtk_tree_selection_select_iter (gtk_tree_view_get_selection (GTK_TREE_VIEW (m->view)),
                                    &first);
  g_clear_error (&error);
  update (m);
  gtk_window_set_default_size (GTK_WINDOW (m->window), 560, -1);
  gtk_widget_show (m->window);
  return m->window;
}

/* ---- the rest of the interface ------------------------------------------------------ */

void
gfcg_models_window_select (GtkWidget *window, const char *pack)
{
  Models     *m = gfcg_models_get (window);
  GtkTreeIter iter;
  gboolean    more;

  if (m == NULL || m->busy != NULL)
    return;
  more = gtk_tree_model_get_iter_first (GTK_TREE_MODEL (m->store), &iter);
  while (more)
    {
      char *name = NULL;

      gtk_tree_model_get (GTK_TREE_MODEL (m->store), &iter, COL_NAME, &name, -1);
      if (g_strcmp0 (name, pack) == 0)
        gtk_tree_selection_select_iter (gtk_tree_view_get_selection (GTK_TREE_VIEW (m->view)),
                                        &iter);
      g_free (name);
      more = gtk_tree_model_iter_next (GTK_TREE_MODEL (m->store), &iter);
    }
}

gboolean
gfcg_models_window_is_busy (GtkWidget *window)
{
  Models *m = gfcg_models_get (window);

  return m != NULL && m->busy != NULL;
}

void
gfcg_models_window_stop (GtkWidget *window)
{
  Models *m = gfcg_models_get (window);

  if (m == NULL || m->busy == NULL)
    return;
  on_cancel (NULL, m);
  while (gfcg_models_get (window) != NULL && gfcg_models_get (window)->busy != NULL)
    g_main_context_iteration (NULL, TRUE);
}
