/* gfcg-class-picker.c — the searchable ImageNet class list. */
#include "gfcg-class-picker.h"
#include "gfcg-classes.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

enum
{
  COL_INDEX,
  COL_NAME,
  COL_SYNONYMS,
  COL_DRAWABLE,
  N_COLS
};

enum
{
  PROP_0,
  PROP_CLASS_INDEX,
  N_PROPS
};

struct _GfcgClassPicker
{
  GtkBox        parent_instance;

  GtkListStore *store;
  GtkTreeModel *filter;
  GtkWidget    *entry;
  GtkWidget    *only_drawable;
  GtkWidget    *view;
  GtkWidget    *count;
  char         *needle;
  int           class_index;
  int           n_drawable;
  gboolean      updating;
};

G_DEFINE_TYPE (GfcgClassPicker, gfcg_class_picker, GTK_TYPE_BOX)

static GParamSpec *props[N_PROPS];

static gboolean
row_visible (GtkTreeModel *model, GtkTreeIter *iter, gpointer data)
{
  GfcgClassPicker *p = data;
  int      index;
  gboolean drawable;

  gtk_tree_model_get (model, iter, COL_INDEX, &index, COL_DRAWABLE, &drawable, -1);
  if (p->only_drawable != NULL && !drawable &&
      gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (p->only_drawable)))
    return FALSE;
  return gfcg_classes_filter (gfcg_classes_get (index), p->needle);
}

static gboolean
row_selectable (GtkTreeSelection *sel, GtkTreeModel *model, GtkTreePath *path,
                gboolean selected, gpointer data)
{
  GtkTreeIter iter;
  gboolean    drawable = FALSE;

  if (gtk_tree_model_get_iter (model, &iter, path))
    gtk_tree_model_get (model, &iter, COL_DRAWABLE, &drawable, -1);
  return drawable || selected;
}

/* Shows the current class in the list when the filter lets it through. */
static void
select_current (GfcgClassPicker *p)
{
  GtkTreeSelection *sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (p->view));
  GtkTreePath      *child, *path = NULL;

  p->updating = TRUE;
  gtk_tree_selection_unselect_all (sel);
  if (p->class_index >= 0)
    {
      child = gtk_tree_path_new_from_indices (p->class_index, -1);
      path = gtk_tree_model_filter_convert_child_path_to_path (GTK_TREE_MODEL_FILTER (p->filter),
                                                               child);
      gtk_tree_path_free (child);
    }
  if (path != NULL)
    {
      gtk_tree_selection_select_path (sel, path);
      if (gtk_widget_get_realized (p->view))
        gtk_tree_view_scroll_to_cell (GTK_TREE_VIEW (p->view), path, NULL, TRUE, 0.5, 0.0);
      gtk_tree_path_free (path);
    }
  p->updating = FALSE;
}

static void
update_count (GfcgClassPicker *p)
{
  char *text;

  text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                       "%d of 1000 classes can be drawn with this pack",
                                       "%d of 1000 classes can be drawn with this pack",
                                       p->n_drawable), p->n_drawable);
  gtk_label_set_text (GTK_LABEL (p->count), text);
  g_free (text);
}

static void
refilter (GfcgClassPicker *p)
{
  gtk_tree_model_filter_refilter (GTK_TREE_MODEL_FILTER (p->filter));
  select_current (p);
}

static void
on_search (GtkSearchEntry *entry, GfcgClassPicker *p)
{
  g_free (p->needle);
  p->needle = g_utf8_strdown (gtk_entry_get_text (GTK_ENTRY (entry)), -1);
  g_strstrip (p->needle);
  refilter (p);
}

/* Enter in the search field picks the first class it shows. */
static void
on_search_activate (GtkEntry *entry, GfcgClassPicker *p)
{
  GtkTreeIter iter;
  gboolean    valid = gtk_tree_model_get_iter_first (p->filter, &iter);

  for (; valid; valid = gtk_tree_model_iter_next (p->filter, &iter))
    {
      int      index;
      gboolean drawable;

      gtk_tree_model_get (p->filter, &iter, COL_INDEX, &index, COL_DRAWABLE, &drawable, -1);
      if (drawable)
        {
          gfcg_class_picker_set_class (p, index);
          return;
        }
    }
}

static void
on_selection (GtkTreeSelection *sel, GfcgClassPicker *p)
{
  GtkTreeModel *model;
  GtkTreeIter   iter;
  int           index;

  if (p->updating || !gtk_tree_selection_get_selected (sel, &model, &iter))
    return;
  gtk_tree_model_get (model, &iter, COL_INDEX, &index, -1);
  if (index != p->class_index)
    {
      p->class_index = index;
      g_object_notify_by_pspec (G_OBJECT (p), props[PROP_CLASS_INDEX]);
    }
}

static void
on_map (GtkWidget *widget, GfcgClassPicker *p)
{
  select_current (p);
}

static GtkTreeViewColumn *
add_column (GfcgClassPicker *p, const char *title, int col, gboolean expand)
{
  GtkCellRenderer   *cell = gtk_cell_renderer_text_new ();
  GtkTreeViewColumn *column;

  if (expand)
    g_object_set (cell, "ellipsize", PANGO_ELLIPSIZE_END, NULL);
  column = gtk_tree_view_column_new_with_attributes (title, cell, "text", col,
                                                     "sensitive", COL_DRAWABLE, NULL);
  gtk_tree_view_column_set_expand (column, expand);
  gtk_tree_view_column_set_resizable (column, TRUE);
  gtk_tree_view_append_column (GTK_TREE_VIEW (p->view), column);
  return column;
}

static void
gfcg_class_picker_init (GfcgClassPicker *p)
{
  GtkWidget        *scrolled;
  GtkTreeSelection *sel;

  p->class_index = -1;
  p->needle = g_strdup ("");
  gtk_orientable_set_orientation (GTK_ORIENTABLE (p), GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (GTK_BOX (p), 6);

  p->store = gtk_list_store_new (N_COLS, G_TYPE_INT, G_TYPE_STRING, G_TYPE_STRING,
                                 G_TYPE_BOOLEAN);
  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
    {
      const GfcgClassInfo *c = gfcg_classes_get (i);
      char *syn = *c->wnid ? g_strdup_printf ("%s%s%s", c->synonyms, *c->synonyms ? ", " : "",
                                              c->wnid)
                           : g_strdup (c->synonyms);

      gtk_list_store_insert_with_values (p->store, NULL, -1, COL_INDEX, i, COL_NAME, c->name,
                                         COL_SYNONYMS, syn, COL_DRAWABLE, TRUE, -1);
      g_free (syn);
    }
  p->n_drawable = GFCG_N_IMAGENET_CLASSES;
  p->filter = gtk_tree_model_filter_new (GTK_TREE_MODEL (p->store), NULL);
  gtk_tree_model_filter_set_visible_func (GTK_TREE_MODEL_FILTER (p->filter), row_visible, p,
                                          NULL);

  p->entry = gtk_search_entry_new ();
  gtk_entry_set_placeholder_text (GTK_ENTRY (p->entry),
                                  _("Search by name, synonym, wnid or number"));
  g_signal_connect (p->entry, "search-changed", G_CALLBACK (on_search), p);
  g_signal_connect (p->entry, "activate", G_CALLBACK (on_search_activate), p);
  gtk_box_pack_start (GTK_BOX (p), p->entry, FALSE, FALSE, 0);

  scrolled = gtk_scrolled_window_new (NULL, NULL);
  gtk_scrolled_window_set_policy (GTK_SCROLLED_WINDOW (scrolled), GTK_POLICY_NEVER,
                                  GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_shadow_type (GTK_SCROLLED_WINDOW (scrolled), GTK_SHADOW_IN);
  gtk_widget_set_size_request (scrolled, 320, 300);
  gtk_box_pack_start (GTK_BOX (p), scrolled, TRUE, TRUE, 0);

  p->view = gtk_tree_view_new_with_model (p->filter);
  gtk_tree_view_set_enable_search (GTK_TREE_VIEW (p->view), FALSE);
  add_column (p, "#", COL_INDEX, FALSE);
  add_column (p, _("Class"), COL_NAME, FALSE);
  add_column (p, _("Also known as"), COL_SYNONYMS, TRUE);
  gtk_container_add (GTK_CONTAINER (scrolled), p->view);
  sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (p->view));
  gtk_tree_selection_set_mode (sel, GTK_SELECTION_BROWSE);
  gtk_tree_selection_set_select_function (sel, row_selectable, p, NULL);
  g_signal_connect (sel, "changed", G_CALLBACK (on_selection), p);
  g_signal_connect_after (p->view, "map", G_CALLBACK (on_map), p);

  p->only_drawable = gtk_check_button_new_with_mnemonic (_("_Only classes this pack can draw"));
  g_signal_connect_swapped (p->only_drawable, "toggled", G_CALLBACK (refilter), p);
  gtk_box_pack_start (GTK_BOX (p), p->only_drawable, FALSE, FALSE, 0);

  p->count = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (p->count), 0.0);
  gimp_label_set_attributes (GTK_LABEL (p->count), PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC, -1);
  gtk_box_pack_start (GTK_BOX (p), p->count, FALSE, FALSE, 0);
  update_count (p);
  gtk_widget_show_all (GTK_WIDGET (p));
}

static void
gfcg_class_picker_finalize (GObject *object)
{
  GfcgClassPicker *p = GFCG_CLASS_PICKER (object);

  g_clear_object (&p->filter);
  g_clear_object (&p->store);
  g_free (p->needle);
  G_OBJECT_CLASS (gfcg_class_picker_parent_class)->finalize (object);
}

static void
gfcg_class_picker_set_property (GObject *object, guint id, const GValue *value,
                                GParamSpec *pspec)
{
  if (id == PROP_CLASS_INDEX)
    gfcg_class_picker_set_class (GFCG_CLASS_PICKER (object), g_value_get_int (value));
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gfcg_class_picker_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  if (id == PROP_CLASS_INDEX)
    g_value_set_int (value, GFCG_CLASS_PICKER (object)->class_index);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gfcg_class_picker_class_init (GfcgClassPickerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = gfcg_class_picker_finalize;
  object_class->set_property = gfcg_class_picker_set_property;
  object_class->get_property = gfcg_class_picker_get_property;
  props[PROP_CLASS_INDEX] = g_param_spec_int ("class-index", NULL, NULL, -1,
                                              GFCG_N_IMAGENET_CLASSES - 1, -1,
                                              G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

GtkWidget *
gfcg_class_picker_new (void)
{
  return g_object_new (GFCG_TYPE_CLASS_PICKER, NULL);
}

void
gfcg_class_picker_set_drawable (GfcgClassPicker *p, const int *imagenet, int n)
{
  gboolean   *ok = g_new0 (gboolean, GFCG_N_IMAGENET_CLASSES);
  GtkTreeIter iter;
  gboolean    valid;
  int         i = 0;

  for (int k = 0; k < n; k++)
    if (imagenet[k] >= 0 && imagenet[k] < GFCG_N_IMAGENET_CLASSES)
      ok[imagenet[k]] = TRUE;
  p->n_drawable = 0;
  valid = gtk_tree_model_get_iter_first (GTK_TREE_MODEL (p->store), &iter);
  for (; valid; valid = gtk_tree_model_iter_next (GTK_TREE_MODEL (p->store), &iter), i++)
    {
      gboolean d = imagenet == NULL || ok[i];

      gtk_list_store_set (p->store, &iter, COL_DRAWABLE, d, -1);
      p->n_drawable += d;
    }
  g_free (ok);
  update_count (p);
  refilter (p);
}

gboolean
gfcg_class_picker_is_drawable (GfcgClassPicker *p, int imagenet)
{
  GtkTreeIter iter;
  gboolean    d = FALSE;

  if (imagenet < 0 || imagenet >= GFCG_N_IMAGENET_CLASSES ||
      !gtk_tree_model_iter_nth_child (GTK_TREE_MODEL (p->store), &iter, NULL, imagenet))
    return FALSE;
  gtk_tree_model_get (GTK_TREE_MODEL (p->store), &iter, COL_DRAWABLE, &d, -1);
  return d;
}

int
gfcg_class_picker_get_class (GfcgClassPicker *p)
{
  return p->class_index;
}

void
gfcg_class_picker_set_class (GfcgClassPicker *p, int imagenet)
{
  if (imagenet < -1 || imagenet >= GFCG_N_IMAGENET_CLASSES || imagenet == p->class_index)
    return;
  p->class_index = imagenet;
  select_current (p);
  g_object_notify_by_pspec (G_OBJECT (p), props[PROP_CLASS_INDEX]);
}
