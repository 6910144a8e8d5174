/* gfcg-class-picker.c — the searchable ImageNet class list.  Typing picks
 * the first match the pack can draw, a line under the list says what Draw
 * will draw, and a greyed row, a typo or a class the pack lacks is explained
 * on the line below it. */
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
  COL_STYLE,     /* PangoStyle: italic for classes the pack lacks            */
  COL_MARK,      /* "—" before classes the pack lacks, so not only a colour  */
  COL_TOOLTIP,
  N_COLS
};

enum
{
  PROP_0,
  PROP_CLASS_INDEX,
  N_PROPS
};

/* What is known of the pack's classes. */
typedef enum
{
  PACK_LOADING,   /* every class shown as drawable until the pack is in      */
  PACK_LOADED,
  PACK_FAILED,    /* no class can be drawn                                  */
} PackState;

struct _GfcgClassPicker
{
  GtkBox        parent_instance;

  GtkListStore *store;
  GtkTreeModel *filter;
  GtkWidget    *entry;
  GtkWidget    *only_drawable;
  GtkWidget    *view;
  GtkWidget    *will_draw;
  GtkWidget    *hint;
  GtkWidget    *count;
  char         *needle;
  int           class_index;
  int           n_drawable;
  gboolean     *drawable;   /* [1000], as in the store, for quick looks     */
  PackState     state;
  gboolean      updating;
  GfcgClassOffersFunc      offers;
  GfcgClassOfferChosenFunc chosen;
  gpointer                 offers_data;
  int                      explained; /* the class the offers are for     */
};

G_DEFINE_TYPE (GfcgClassPicker, gfcg_class_picker, GTK_TYPE_BOX)

static GParamSpec *props[N_PROPS];

static gboolean
drawable (GfcgClassPicker *p, int imagenet)
{
  return imagenet >= 0 && imagenet < GFCG_N_IMAGENET_CLASSES && p->state != PACK_FAILED &&
         p->drawable[imagenet];
}

static gboolean
row_visible (GtkTreeModel *model, GtkTreeIter *iter, gpointer data)
{
  GfcgClassPicker *p = data;
  int      index;
  gboolean d;

  gtk_tree_model_get (model, iter, COL_INDEX, &index, COL_DRAWABLE, &d, -1);
  if (p->only_drawable != NULL && !d &&
      gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (p->only_drawable)))
    return FALSE;
  return gfcg_classes_filter (gfcg_classes_get (index), p->needle);
}

/* ---- the two lines under the list ---------------------------------------- */

static void
set_hint (GfcgClassPicker *p, const char *markup)
{
  gtk_label_set_markup (GTK_LABEL (p->hint), markup != NULL ? markup : "");
  gtk_widget_set_visible (p->hint, markup != NULL && *markup != '\0');
}

static void
update_will_draw (GfcgClassPicker *p)
{
  char *markup;

  if (p->state == PACK_FAILED)
    markup = g_markup_printf_escaped ("%s", _("Will draw nothing: the pack could not be loaded"));
  else if (drawable (p, p->class_index))
    {
      char *name = g_markup_printf_escaped ("<b>%s</b>", gfcg_classes_name (p->class_index));

      /* TRANSLATORS: %s is an ImageNet class name, e.g. "golden retriever" */
      markup = g_strdup_printf (_("Will draw: %s"), name);
      g_free (name);
    }
  else
    markup = g_markup_printf_escaped ("%s", _("Choose a class this pack can draw"));
  gtk_label_set_markup (GTK_LABEL (p->will_draw), markup);
  g_free (markup);
}

/* "'goldfish' is not in this pack. It draws: tench, ..." about class
 * imagenet, or with typed (imagenet -1) "No class matching 'gold' is in
 * this pack. It draws: ..." */
static void
explain_not_drawable (GfcgClassPicker *p, int imagenet, const char *typed)
{
  char *what, *draws, *text, *markup;

  if (p->state == PACK_FAILED)
    {
      char *m = g_markup_escape_text (_("The pack could not be loaded: choose a pack that "
                                        "loads to draw."), -1);

      set_hint (p, m);
      g_free (m);
      return;
    }
  if (imagenet >= 0)
    what = g_strdup_printf (_("'%s' is not in this pack."), gfcg_classes_name (imagenet));
  else
    what = g_strdup_printf (_("No class matching '%s' is in this pack."), typed);
  if (p->n_drawable <= 10)
    {
      GString *list = g_string_new (NULL);

      for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
        if (p->drawable[i])
          g_string_append_printf (list, "%s%s", list->len ? ", " : "", gfcg_classes_name (i));
      /* TRANSLATORS: %s is a list of class names: "tench, chain saw" */
      draws = g_strdup_printf (_("It draws: %s."), list->str);
      g_string_free (list, TRUE);
    }
  else
    draws = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                          "It draws %d class: tick \"Only classes this pack "
                                          "can draw\" to list it.",
                                          "It draws %d classes: tick \"Only classes this pack "
                                          "can draw\" to list them.", p->n_drawable),
                             p->n_drawable);
  text = g_strconcat (what, " ", draws, NULL);
  markup = g_markup_escape_text (text, -1);
  /* Where else the class can be drawn: an installed pack to switch to, or
   * one to download. */
  if (imagenet >= 0 && p->offers != NULL)
    {
      char *more = p->offers (imagenet, p->offers_data);

      p->explained = imagenet;
      if (more != NULL)
        {
          char *all = g_strconcat (markup, " ", more, NULL);

          g_free (markup);
          markup = all;
        }
      g_free (more);
    }
  set_hint (p, markup);
  g_free (markup);
  g_free (text);
  g_free (draws);
  g_free (what);
}

/* "No class 'golden retreiver'. Did you mean: golden retriever?", each
 * suggestion a link that picks it. */
static void
suggest (GfcgClassPicker *p, const char *typed)
{
  int      near[4], n = gfcg_imagenet_suggest (typed, near, G_N_ELEMENTS (near));
  char    *none, *markup;
  GString *links = g_string_new (NULL);

  none = g_markup_escape_text (typed, -1);
  for (int i = 0; i < n; i++)
    {
      char *a = g_markup_printf_escaped ("<a href=\"%d\">%s</a>", near[i],
                                         gfcg_classes_name (near[i]));
      g_string_append_printf (links, "%s%s", i ? ", " : "", a);
      g_free (a);
    }
  if (n > 0)
    /* TRANSLATORS: "No class 'golden retreiver'. Did you mean: golden retriever?" */
    markup = g_strdup_printf (_("No class '%s'. Did you mean: %s?"), none, links->str);
  else
    markup = g_strdup_printf (_("No class '%s'."), none);
  set_hint (p, markup);
  g_free (markup);
  g_free (none);
  g_string_free (links, TRUE);
}

static gboolean
on_hint_link (GtkLabel *label, const char *uri, GfcgClassPicker *p)
{
  gint64 k;

  if (g_ascii_string_to_signed (uri, 10, 0, GFCG_N_IMAGENET_CLASSES - 1, &k, NULL))
    gtk_entry_set_text (GTK_ENTRY (p->entry), gfcg_classes_name ((int) k));
  else if (p->chosen != NULL)
    p->chosen (uri, p->explained, p->offers_data);
  return TRUE;
}

static void
update_count (GfcgClassPicker *p)
{
  char *text;

  if (p->state == PACK_LOADING)
    text = g_strdup (_("Loading the pack's classes..."));
  else if (p->state == PACK_FAILED)
    text = g_strdup (_("No class can be drawn: the pack could not be loaded"));
  else
    text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                         "%d of 1000 classes can be drawn with this pack",
                                         "%d of 1000 classes can be drawn with this pack",
                                         p->n_drawable), p->n_drawable);
  gtk_label_set_text (GTK_LABEL (p->count), text);
  g_free (text);
}

/* ---- the list -------------------------------------------------------------- */

/* A click (or the cursor) on a greyed row does not select it: say why. */
static gboolean
row_selectable (GtkTreeSelection *sel, GtkTreeModel *model, GtkTreePath *path,
                gboolean selected, gpointer data)
{
  GfcgClassPicker *p = data;
  GtkTreeIter      iter;
  gboolean         d = FALSE;
  int              index = -1;

  if (gtk_tree_model_get_iter (model, &iter, path))
    gtk_tree_model_get (model, &iter, COL_DRAWABLE, &d, COL_INDEX, &index, -1);
  if (!d && !selected && !p->updating && p->state != PACK_LOADING)
    explain_not_drawable (p, index, NULL);
  return d || selected;
}

/* Shows the current class in the list when the filter lets it through. */
static void
select_current (GfcgClassPicker *p)
{
  GtkTreeSelection *sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (p->view));
  GtkTreePath      *child, *path = NULL;
  gboolean          was = p->updating;

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
  p->updating = was;
}

static void
refilter (GfcgClassPicker *p)
{
  gboolean was = p->updating;

  p->updating = TRUE;
  gtk_tree_model_filter_refilter (GTK_TREE_MODEL_FILTER (p->filter));
  p->updating = was;
  select_current (p);
}

/* reselect: show it in the list (not when the list itself picked it: the
 * row clicked stays where it is). */
static void
set_class (GfcgClassPicker *p, int imagenet, gboolean reselect)
{
  if (imagenet == p->class_index)
    return;
  p->class_index = imagenet;
  if (reselect)
    select_current (p);
  update_will_draw (p);
  g_object_notify_by_pspec (G_OBJECT (p), props[PROP_CLASS_INDEX]);
}

/* The first class the filter shows that the pack can draw, -1 when none;
 * *shown gets the first it shows at all. */
static int
first_match (GfcgClassPicker *p, int *shown)
{
  GtkTreeIter iter;
  gboolean    valid = gtk_tree_model_get_iter_first (p->filter, &iter);

  *shown = -1;
  for (; valid; valid = gtk_tree_model_iter_next (p->filter, &iter))
    {
      int      index;
      gboolean d;

      gtk_tree_model_get (p->filter, &iter, COL_INDEX, &index, COL_DRAWABLE, &d, -1);
      if (*shown < 0)
        *shown = index;
      if (d)
        return index;
    }
  return -1;
}

static gboolean
prefer_drawable (int imagenet, gpointer data)
{
  return drawable (data, imagenet);
}

/* What is typed picks a class, so that Draw draws what the artist typed: the
 * class of that very name (or synonym, or wnid) when the pack draws it, else
 * the first match it draws.  What cannot be drawn is said below the list. */
static void
pick_typed (GfcgClassPicker *p)
{
  char *typed = g_strstrip (g_strdup (gtk_entry_get_text (GTK_ENTRY (p->entry))));
  int   exact, first, shown;

  if (*typed == '\0')
    {
      set_hint (p, NULL);
      g_free (typed);
      return;
    }
  exact = gfcg_imagenet_find_preferring (typed, prefer_drawable, p);
  first = first_match (p, &shown);
  if (drawable (p, exact))
    first = exact;
  if (first >= 0)
    set_class (p, first, TRUE);
  set_hint (p, NULL);
  if (p->state == PACK_LOADING)
    ;
  else if (exact >= 0 && !drawable (p, exact))
    explain_not_drawable (p, exact, NULL);      /* "goldfish" */
  else if (first < 0 && shown >= 0)
    explain_not_drawable (p, -1, typed);        /* "gold" */
  else if (first < 0)
    {
      /* Nothing shown: a typo, or classes hidden by "Only classes ...". */
      gboolean only = gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (p->only_drawable));
      gboolean hidden = FALSE;

      for (int i = 0; i < GFCG_N_IMAGENET_CLASSES && only && !hidden; i++)
        hidden = gfcg_classes_filter (gfcg_classes_get (i), p->needle);
      if (hidden)
        explain_not_drawable (p, -1, typed);
      else
        suggest (p, typed);
    }
  g_free (typed);
}

static void
on_search (GtkSearchEntry *entry, GfcgClassPicker *p)
{
  g_free (p->needle);
  p->needle = g_utf8_strdown (gtk_entry_get_text (GTK_ENTRY (entry)), -1);
  g_strstrip (p->needle);
  refilter (p);
  pick_typed (p);
}

/* Enter in the search field picks the first class it shows (typing has
 * already, unless the search has not run yet). */
static void
on_search_activate (GtkEntry *entry, GfcgClassPicker *p)
{
  on_search (GTK_SEARCH_ENTRY (entry), p);
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
      set_hint (p, NULL);
      set_class (p, index, FALSE);
    }
}

static void
on_map (GtkWidget *widget, GfcgClassPicker *p)
{
  select_current (p);
}

static void
on_only_drawable (GtkToggleButton *button, GfcgClassPicker *p)
{
  refilter (p);
  if (*p->needle != '\0')
    pick_typed (p);
}

/* A class the pack lacks is drawn in the theme's own text colour at under
 * half its opacity: GTK's insensitive colour is barely dimmer than the
 * normal one in GIMP's dark theme, and a fixed grey would suit only one of
 * the themes.  The italics and the "—" mark say it without colour too. */
static void
dim_undrawable (GtkTreeViewColumn *column, GtkCellRenderer *cell, GtkTreeModel *model,
                GtkTreeIter *iter, gpointer data)
{
  GfcgClassPicker *p = data;
  gboolean         d;

  gtk_tree_model_get (model, iter, COL_DRAWABLE, &d, -1);
  if (!d)
    {
      GtkStyleContext *style = gtk_widget_get_style_context (p->view);
      GdkRGBA          fg;

      gtk_style_context_get_color (style, GTK_STATE_FLAG_NORMAL, &fg);
      fg.alpha *= 0.45;
      g_object_set (cell, "foreground-rgba", &fg, "foreground-set", TRUE, NULL);
    }
  else
    {
      g_object_set (cell, "foreground-set", FALSE, NULL);
    }
}

static GtkTreeViewColumn *
add_column (GfcgClassPicker *p, const char *title, int col, gboolean expand)
{
  GtkCellRenderer   *cell = gtk_cell_renderer_text_new ();
  GtkTreeViewColumn *column;

  if (expand)
    g_object_set (cell, "ellipsize", PANGO_ELLIPSIZE_END, NULL);
  /* Classes the pack lacks: insensitive (for assistive tools), dimmed by
   * dim_undrawable, italic and marked. */
  column = gtk_tree_view_column_new_with_attributes (title, cell, "text", col,
                                                     "sensitive", COL_DRAWABLE,
                                                     "style", COL_STYLE, NULL);
  gtk_tree_view_column_set_cell_data_func (column, cell, dim_undrawable, p, NULL);
  gtk_tree_view_column_set_expand (column, expand);
  gtk_tree_view_column_set_resizable (column, col != COL_MARK);
  gtk_tree_view_append_column (GTK_TREE_VIEW (p->view), column);
  return column;
}

static GtkWidget *
small_label (gboolean italic)
{
  GtkWidget *label = gtk_label_new (NULL);

  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 40);
  if (italic)
    gimp_label_set_attributes (GTK_LABEL (label), PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC, -1);
  return label;
}

static void
gfcg_class_picker_init (GfcgClassPicker *p)
{
  GtkWidget        *scrolled;
  GtkTreeSelection *sel;

  p->class_index = -1;
  p->needle = g_strdup ("");
  p->drawable = g_new (gboolean, GFCG_N_IMAGENET_CLASSES);
  p->state = PACK_LOADING;
  gtk_orientable_set_orientation (GTK_ORIENTABLE (p), GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (GTK_BOX (p), 6);

  p->store = gtk_list_store_new (N_COLS, G_TYPE_INT, G_TYPE_STRING, G_TYPE_STRING,
                                 G_TYPE_BOOLEAN, PANGO_TYPE_STYLE, G_TYPE_STRING, G_TYPE_STRING);
  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
    {
      const GfcgClassInfo *c = gfcg_classes_get (i);
      char *syn = *c->wnid ? g_strdup_printf ("%s%s%s", c->synonyms, *c->synonyms ? ", " : "",
                                              c->wnid)
                           : g_strdup (c->synonyms);

      gtk_list_store_insert_with_values (p->store, NULL, -1, COL_INDEX, i, COL_NAME, c->name,
                                         COL_SYNONYMS, syn, COL_DRAWABLE, TRUE,
                                         COL_STYLE, PANGO_STYLE_NORMAL, COL_MARK, "",
                                         COL_TOOLTIP, NULL, -1);
      p->drawable[i] = TRUE;
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
  gtk_tree_view_set_tooltip_column (GTK_TREE_VIEW (p->view), COL_TOOLTIP);
  add_column (p, "", COL_MARK, FALSE);
  add_column (p, "#", COL_INDEX, FALSE);
  add_column (p, _("Class"), COL_NAME, FALSE);
  add_column (p, _("Also known as"), COL_SYNONYMS, TRUE);
  gtk_container_add (GTK_CONTAINER (scrolled), p->view);
  sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (p->view));
  gtk_tree_selection_set_mode (sel, GTK_SELECTION_BROWSE);
  gtk_tree_selection_set_select_function (sel, row_selectable, p, NULL);
  g_signal_connect (sel, "changed", G_CALLBACK (on_selection), p);
  g_signal_connect_after (p->view, "map", G_CALLBACK (on_map), p);

  p->will_draw = small_label (FALSE);
  gtk_box_pack_start (GTK_BOX (p), p->will_draw, FALSE, FALSE, 0);
  p->hint = small_label (FALSE);
  g_signal_connect (p->hint, "activate-link", G_CALLBACK (on_hint_link), p);
  gtk_box_pack_start (GTK_BOX (p), p->hint, FALSE, FALSE, 0);

  p->only_drawable = gtk_check_button_new_with_mnemonic (_("_Only classes this pack can draw"));
  g_signal_connect (p->only_drawable, "toggled", G_CALLBACK (on_only_drawable), p);
  gtk_box_pack_start (GTK_BOX (p), p->only_drawable, FALSE, FALSE, 0);

  p->count = small_label (TRUE);
  gtk_box_pack_start (GTK_BOX (p), p->count, FALSE, FALSE, 0);
  update_count (p);
  update_will_draw (p);
  gtk_widget_show_all (GTK_WIDGET (p));
  gtk_widget_hide (p->hint);
}

static void
gfcg_class_picker_finalize (GObject *object)
{
  GfcgClassPicker *p = GFCG_CLASS_PICKER (object);

  g_clear_object (&p->filter);
  g_clear_object (&p->store);
  g_free (p->needle);
  g_free (p->drawable);
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

/* Marks each row drawable or not as ok[] says (NULL: every one). */
static void
mark_rows (GfcgClassPicker *p, const gboolean *ok)
{
  GtkTreeIter iter;
  gboolean    valid;
  int         i = 0;

  p->updating = TRUE;
  p->n_drawable = 0;
  valid = gtk_tree_model_get_iter_first (GTK_TREE_MODEL (p->store), &iter);
  for (; valid; valid = gtk_tree_model_iter_next (GTK_TREE_MODEL (p->store), &iter), i++)
    {
      gboolean d = ok == NULL || ok[i];

      p->drawable[i] = d;
      gtk_list_store_set (p->store, &iter, COL_DRAWABLE, d,
                          COL_STYLE, d ? PANGO_STYLE_NORMAL : PANGO_STYLE_ITALIC,
                          COL_MARK, d ? "" : "—",
                          COL_TOOLTIP, d ? NULL : _("Not in this pack"), -1);
      p->n_drawable += d;
    }
  p->updating = FALSE;
}

void
gfcg_class_picker_set_drawable (GfcgClassPicker *p, const int *imagenet, int n)
{
  gboolean *ok = g_new0 (gboolean, GFCG_N_IMAGENET_CLASSES);
  gboolean  changed = p->state != PACK_LOADED;

  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES && imagenet == NULL; i++)
    ok[i] = TRUE;
  for (int k = 0; imagenet != NULL && k < n; k++)
    if (imagenet[k] >= 0 && imagenet[k] < GFCG_N_IMAGENET_CLASSES)
      ok[imagenet[k]] = TRUE;
  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES && !changed; i++)
    changed = ok[i] != p->drawable[i];
  p->state = PACK_LOADED;
  mark_rows (p, ok);
  g_free (ok);
  update_count (p);
  /* A pack of a few classes (the default one draws 10): list only them,
   * unless the artist chose otherwise for this very pack. */
  if (changed)
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (p->only_drawable),
                                  p->n_drawable < 100);
  refilter (p);
  /* What was typed before the pack was in picks again among its classes. */
  if (*p->needle != '\0')
    pick_typed (p);
  else if (changed)
    set_hint (p, NULL);
  update_will_draw (p);
}

void
gfcg_class_picker_set_failed (GfcgClassPicker *p)
{
  p->state = PACK_FAILED;
  /* Every row stays readable and selectable: only the pack is at fault. */
  mark_rows (p, NULL);
  p->n_drawable = 0;
  update_count (p);
  refilter (p);
  set_hint (p, NULL);
  update_will_draw (p);
}

gboolean
gfcg_class_picker_is_drawable (GfcgClassPicker *p, int imagenet)
{
  return drawable (p, imagenet);
}

int
gfcg_class_picker_get_class (GfcgClassPicker *p)
{
  return p->class_index;
}

void
gfcg_class_picker_set_class (GfcgClassPicker *p, int imagenet)
{
  if (imagenet < -1 || imagenet >= GFCG_N_IMAGENET_CLASSES)
    return;
  set_class (p, imagenet, TRUE);
}

void
gfcg_class_picker_click (GfcgClassPicker *p, int imagenet)
{
  GtkTreeSelection *sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (p->view));
  GtkTreePath      *child, *path;

  child = gtk_tree_path_new_from_indices (imagenet, -1);
  path = gtk_tree_model_filter_convert_child_path_to_path (GTK_TREE_MODEL_FILTER (p->filter),
                                                           child);
  gtk_tree_path_free (child);
  if (path == NULL)
    return;
  gtk_tree_view_set_cursor (GTK_TREE_VIEW (p->view), path, NULL, FALSE);
  gtk_tree_selection_select_path (sel, path);
  gtk_tree_path_free (path);
}

void
gfcg_class_picker_set_only_drawable (GfcgClassPicker *p, gboolean only)
{
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (p->only_drawable), only);
}

void
gfcg_class_picker_type (GfcgClassPicker *p, const char *text)
{
  gtk_entry_set_text (GTK_ENTRY (p->entry), text);
  /* At once, not after the entry's typing delay. */
  on_search (GTK_SEARCH_ENTRY (p->entry), p);
}

char *
gfcg_class_picker_describe (GfcgClassPicker *p)
{
  return g_strdup_printf ("class=%d\twill-draw=%s\thint=%s\tcount=%s\tonly=%d",
                          p->class_index, gtk_label_get_text (GTK_LABEL (p->will_draw)),
                          gtk_widget_get_visible (p->hint)
                          ? gtk_label_get_text (GTK_LABEL (p->hint)) : "",
                          gtk_label_get_text (GTK_LABEL (p->count)),
                          gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (p->only_drawable)));
}

void
gfcg_class_picker_set_offers (GfcgClassPicker *p, GfcgClassOffersFunc offers,
                              GfcgClassOfferChosenFunc chosen, gpointer user_data)
{
  p->offers = offers;
  p->chosen = chosen;
  p->offers_data = user_data;
}

void
gfcg_class_picker_activate_link (GfcgClassPicker *p, const char *prefix)
{
  char       *pattern = g_strdup_printf ("href=\"(%s[^\"]*)\"", prefix);
  GRegex     *re = g_regex_new (pattern, 0, 0, NULL);
  GMatchInfo *match = NULL;

  /* The first link shown whose target starts with prefix, as a click. */
  if (re != NULL && gtk_widget_get_visible (p->hint)
      && g_regex_match (re, gtk_label_get_label (GTK_LABEL (p->hint)), 0, &match))
    {
      char    *escaped = g_match_info_fetch (match, 1);
      GString *plain = g_string_new (NULL);

      /* Undo the markup's escape of '&' in a folder name. */
      for (const char *c = escaped; *c != '\0'; c++)
        {
          if (g_str_has_prefix (c, "&amp;"))
            {
              g_string_append_c (plain, '&');
              c += 4;
            }
          else
            g_string_append_c (plain, *c);
        }
      on_hint_link (GTK_LABEL (p->hint), plain->str, p);
      g_string_free (plain, TRUE);
      g_free (escaped);
    }
  g_match_info_free (match);
  if (re != NULL)
    g_regex_unref (re);
  g_free (pattern);
}
