/* gfcg-dialog.c — the plug-in's dialog.  The widgets are bound to the
 * GimpProcedureConfig, so GIMP keeps the last values and Repeat Last works;
 * what depends on the pack (drawable classes, modes, defaults, the time and
 * memory estimate) comes from a GfcgPackProbe run off the main thread. */
#include "gfcg-dialog.h"
#include "gfcg-args.h"
#include "gfcg-classes.h"
#include "gfcg-help.h"
#include "gfcg-class-picker.h"
#include "gfcg-models-window.h"
#include "gfcg-pack-offers.h"
#include "gfcg-pack-picker.h"
#include "gfcg-pack-probe.h"
#include "gfcg-upscale-row.h"

#include <glib/gi18n-lib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gfcg-dialog-private.h"

static void start_probe (Dialog *d);

/* ---- state that depends on the pack ------------------------------------ */

static gboolean
mode_possible (const GfcgPackProbe *pr, GfcgMode m)
{
  GfcgModeNeeds needs = gfcg_mode_get_info (m)->needs;

  return pr == NULL || pr->error != NULL ||
         ((!(needs & GFCG_NEEDS_CLASSIFIER) || pr->has_classifier) &&
          (!(needs & GFCG_NEEDS_GUIDE) || pr->has_guide));
}

static gboolean
config_mode (Dialog *d, GfcgMode *mode)
{
  char    *nick = NULL;
  gboolean ok;

  g_object_get (d->config, "mode", &nick, NULL);
  ok = nick != NULL && gfcg_mode_from_string (nick, mode);
  g_free (nick);
  return ok;
}

static gboolean
mode_sensitive (const gchar *id, gpointer data)
{
  Dialog  *d = data;
  GfcgMode m;

  return !gfcg_mode_from_string (id, &m) || mode_possible (d->probe, m);
}

/* "20–30 s", "2–3 min": whole units, the low end rounded down and the high
 * end up, so that the range holds what was measured. */
static char *
format_range (double lo, double hi)
{
  const char *unit;
  double      div = 1.0;
  int         a, b;

  if (hi < 1.0)
    return g_strdup (_("under a second"));
  if (hi < 300.0)
    unit = _("s");
  else if (hi < 5400.0)
    unit = _("min"), div = 60.0;
  else
    unit = _("h"), div = 3600.0;
  a = (int) floor (lo / div);
  b = (int) ceil (hi / div);
  if (a >= b || a < 1)
    a = MAX (0, b - 1);
  /* TRANSLATORS: a range of times, "20–30 s" */
  return a > 0 ? g_strdup_printf (_("%d–%d %s"), a, b, unit)
               : g_strdup_printf (_("under %d %s"), b, unit);
}

/* Updates the estimate and whether OK can be pressed. */
static void
update_state (Dialog *d)
{
  GfcgPackProbe *pr = d->probe;
  GfcgMode       mode = GFCG_MODE_GFCG;
  int            cls, steps, count;
  double         guidance;
  gboolean       ok;
  char          *text, *secs, *mem;

  const char    *no_source = NULL;

  g_object_get (d->config, "class-index", &cls, "steps", &steps, "count", &count,
                "guidance", &guidance, NULL);
  ok = config_mode (d, &mode);
  ok = ok && pr != NULL && pr->error == NULL && mode_possible (pr, mode) &&
       gfcg_class_picker_is_drawable (GFCG_CLASS_PICKER (d->picker), cls) &&
       gfcg_source_section_possible (G_OBJECT (d->config), &d->where, &no_source);
  /* A refine runs only the last strength x steps steps. */
  steps = MAX (1, gfcg_source_section_run_steps (G_OBJECT (d->config), steps));
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK, ok);
  gtk_widget_set_tooltip_text (d->mode_combo, _(gfcg_mode_get_info (mode)->help));
  /* A weight the mode does not use is greyed: moving it would change nothing. */
  gtk_widget_set_sensitive (d->weight, gfcg_mode_get_info (mode)->weight != GFCG_WEIGHT_NONE);
  gtk_widget_set_sensitive (d->strength, gfcg_mode_get_info (mode)->ref != GFCG_REF_NONE);

  d->est_lo = d->est_hi = 0.0;
  if (pr == NULL || d->probing)
    text = g_strdup (_("Estimating time and memory..."));
  else if (pr->error != NULL)
    text = g_strdup (_("No estimate: the pack could not be loaded."));
  else if (!mode_possible (pr, mode))
    text = g_strdup (_("This pack lacks the network or classifier this guidance mode needs."));
  else if (!gfcg_class_picker_is_drawable (GFCG_CLASS_PICKER (d->picker), cls))
    text = g_strdup (_("Pick a class this pack can draw."));
  else if (no_source != NULL)
    text = g_strdup (no_source);
  else
    {
      gfcg_pack_probe_estimate (pr, mode, steps, guidance < 0 ? pr->guidance[mode] : guidance,
                                count, &d->est_lo, &d->est_hi);
      secs = format_range (d->est_lo, d->est_hi);
      mem = g_format_size (pr->memory);
      /* TRANSLATORS: "About 40 s and 120 MB for 63 guided evaluations of 64x64 px" */
      text = g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                           "About %s and %s for %d guided evaluations of "
                                           "%dx%d px",
                                           "About %s and %s for %d guided evaluations of "
                                           "%dx%d px",
                                           (2 * steps - 1) * count),
                              secs, mem, (2 * steps - 1) * count, pr->resolution,
                              pr->resolution);
      g_free (secs);
      g_free (mem);
    }
  gtk_label_set_text (GTK_LABEL (d->estimate), text);
  g_free (text);
}

static void
set_mode_from_pack (Dialog *d)
{
  g_object_set (d->config, "mode", gfcg_mode_to_string (d->probe->defaults.mode), NULL);
}

static void
on_reset_defaults (GtkButton *button, Dialog *d)
{
  GfcgMode mode;

  if (d->probe == NULL || d->probe->error != NULL)
    return;
  set_mode_from_pack (d);
  /* The weight of the pack's mode (its CFG and ATG weights may differ). */
  mode = d->probe->defaults.mode;
  g_object_set (d->config, "guidance", d->probe->guidance[mode],
                "gfcg-strength", d->probe->defaults.s_max,
                "steps", d->probe->defaults.steps, NULL);
}

/* ---- other packs for a class this one cannot draw ------------------------ */

static char *
offers (int imagenet, gpointer data)
{
  Dialog *d = data;

  return gfcg_pack_offers_markup (imagenet, d->probe != NULL ? d->probe->dir : NULL);
}

/* use:FOLDER switches to an installed pack and the class it was offered
 * for; get:NAME opens Get models with that pack chosen. */
static void
on_offer (const char *uri, int imagenet, gpointer data)
{
  Dialog *d = data;

  if (g_str_has_prefix (uri, "use:"))
    g_object_set (d->config, "pack", uri + 4, "class-index", imagenet, NULL);
  else if (g_str_has_prefix (uri, "get:"))
    gfcg_pack_picker_get_models (d->pack_picker, uri + 4);
}

static void
on_probe_done (GObject *source, GAsyncResult *result, gpointer data)
{
  Dialog        *d = data;
  GfcgPackProbe *pr = gfcg_pack_probe_finish (result);
  gboolean       new_pack;
  char          *text;

  d->probing = FALSE;
  new_pack = d->probe == NULL || g_strcmp0 (d->probe->dir, pr->dir) != 0;
  gfcg_pack_probe_free (d->probe);
  d->probe = pr;

  if (pr->error != NULL)
    {
      text = g_markup_printf_escaped ("<span foreground=\"#c01c28\">%s</span>",
                                      pr->error->message);
      /* Not "1000 of 1000 classes": none can be drawn without a pack. */
      gfcg_class_picker_set_failed (GFCG_CLASS_PICKER (d->picker));
      gtk_widget_set_tooltip_text (d->pack_status, NULL);
    }
  else
    {
      GfcgMode mode;
      char    *tip;

      /* The pack's own words, short; where it lives and its licence (a
       * paragraph for some packs) go to the tooltip. */
      text = g_markup_printf_escaped (_("<b>%s</b>: %s (%dx%d px, %d classes)"), pr->name,
                                      pr->title, pr->resolution, pr->resolution, pr->n_classes);
      tip = g_strdup_printf (_("Folder: %s\nLicence: %s"), pr->dir, pr->licence);
      gtk_widget_set_tooltip_text (d->pack_status, tip);
      g_free (tip);
      gfcg_class_picker_set_drawable (GFCG_CLASS_PICKER (d->picker), pr->imagenet,
                                      pr->n_classes);
      if (d->mode_from_pack)
        set_mode_from_pack (d);
      if (new_pack && d->weights_from_pack && config_mode (d, &mode))
        g_object_set (d->config, "guidance", pr->guidance[mode],
                      "gfcg-strength", pr->defaults.s_max, NULL);
      d->weights_from_pack = d->mode_from_pack = FALSE;
    }
  gtk_label_set_markup (GTK_LABEL (d->pack_status), text);
  g_free (text);
  gtk_widget_queue_draw (d->mode_combo);
  update_state (d);

  if (d->reprobe)
    start_probe (d);
  else if (d->capture != NULL && d->script == NULL)
    g_timeout_add (800, gfcg_dialog_capture, d);
  else if (d->script != NULL && d->script_source == 0)
    d->script_source = g_timeout_add (200, gfcg_dialog_script_step, d);
}

static void
start_probe (Dialog *d)
{
  char *pack = NULL, *device = NULL;

  d->reprobe = FALSE;
  if (d->probing)
    {
      d->reprobe = TRUE;
      return;
    }
  d->probing = TRUE;
  update_state (d);
  g_object_get (d->config, "pack", &pack, "device", &device, NULL);
  gfcg_pack_probe_async (pack, device, NULL, on_probe_done, d);
  g_free (pack);
  g_free (device);
}

static gboolean
probe_later_cb (gpointer data)
{
  Dialog *d = data;

  d->probe_source = 0;
  start_probe (d);
  return G_SOURCE_REMOVE;
}

/* Typing a path should not load a pack per key stroke. */
static void
on_pack_or_device (GObject *config, GParamSpec *pspec, Dialog *d)
{
  if (d->probe_source != 0)
    g_source_remove (d->probe_source);
  d->probe_source = g_timeout_add (500, probe_later_cb, d);
}

static void
on_setting (GObject *config, GParamSpec *pspec, Dialog *d)
{
  update_state (d);
}

/* Another mode, the pack's weight for it: CFG and autoguidance weights
 * differ (2.1 against the guide is 1.4 against the unconditional net), so a
 * weight kept from the last mode would be wrong for the new one. */
static void
on_mode (GObject *config, GParamSpec *pspec, Dialog *d)
{
  GfcgMode mode;

  if (d->probe != NULL && d->probe->error == NULL && config_mode (d, &mode))
    g_object_set (d->config, "guidance", d->probe->guidance[mode], NULL);
}

/* ---- widgets ------------------------------------------------------------- */

static GtkWidget *
spin_scale (Dialog *d, const char *prop, double lower, double upper, double scale_upper,
            double step, double page, int digits)
{
  GtkWidget     *w = gimp_prop_spin_scale_new (G_OBJECT (d->config), prop, step, page, digits);
  GtkAdjustment *adj = gtk_spin_button_get_adjustment (GTK_SPIN_BUTTON (w));

  gtk_adjustment_set_lower (adj, lower);
  gtk_adjustment_set_upper (adj, upper);
  gimp_spin_scale_set_scale_limits (GIMP_SPIN_SCALE (w), lower, scale_upper);
  gtk_widget_set_hexpand (w, TRUE);
  return w;
}

/* A new random seed, shown in the seed field: what Draw will use. */
static void
roll_seed (Dialog *d)
{
  d->rolling = TRUE;
  g_object_set (d->config, "seed", (int) g_random_int_range (0, G_MAXINT), NULL);
  d->rolling = FALSE;
}

static void
on_new_seed (GtkButton *button, Dialog *d)
{
  roll_seed (d);
}

/* A seed the artist typed is the one they want, now and on Repeat Last. */
static void
on_seed (GObject *config, GParamSpec *pspec, Dialog *d)
{
  if (!d->rolling)
    g_object_set (d->config, "random-seed", FALSE, NULL);
}

static GtkWidget *
seed_row (Dialog *d)
{
  GtkWidget     *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget     *spin, *button, *toggle, *label;
  GtkAdjustment *adj;

  label = gtk_label_new_with_mnemonic (_("Se_ed:"));
  gtk_box_pack_start (GTK_BOX (box), label, FALSE, FALSE, 0);
  spin = d->seed_spin = gimp_prop_spin_button_new (G_OBJECT (d->config), "seed", 1.0, 100.0, 0);
  adj = gtk_spin_button_get_adjustment (GTK_SPIN_BUTTON (spin));
  gtk_adjustment_set_lower (adj, 0.0);
  gtk_adjustment_set_upper (adj, G_MAXINT);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), spin);
  gtk_box_pack_start (GTK_BOX (box), spin, TRUE, TRUE, 0);
  button = gtk_button_new_with_mnemonic (_("_New Seed"));
  gtk_widget_set_tooltip_text (button, _("Pick a random seed"));
  g_signal_connect (button, "clicked", G_CALLBACK (on_new_seed), d);
  gtk_box_pack_start (GTK_BOX (box), button, FALSE, FALSE, 0);
  toggle = d->randomize = gimp_prop_check_button_new (G_OBJECT (d->config), "random-seed",
                                                      _("_Randomize"));
  gtk_widget_set_tooltip_text (toggle, _("A new seed each time the dialog opens and on "
                                         "Repeat Last.  Typing a seed turns it off, so that "
                                         "seed is kept."));
  gtk_box_pack_start (GTK_BOX (box), toggle, FALSE, FALSE, 0);
  return box;
}

static GtkWidget *
mode_combo (Dialog *d)
{
  GtkListStore *store = gtk_list_store_new (2, G_TYPE_STRING, G_TYPE_STRING);
  GtkWidget    *combo;

  for (int i = 0; i < GFCG_N_MODES; i++)
    {
      const GfcgModeInfo *m = gfcg_mode_get_info ((GfcgMode) i);
      gtk_list_store_insert_with_values (store, NULL, -1, 0, m->name, 1, _(m->label), -1);
    }
  combo = gimp_prop_string_combo_box_new (G_OBJECT (d->config), "mode", GTK_TREE_MODEL (store),
                                          0, 1);
  g_object_unref (store);
  gimp_string_combo_box_set_sensitivity (GIMP_STRING_COMBO_BOX (combo), mode_sensitive, d,
                                         NULL);
  return combo;
}

static void
attach (GtkGrid *grid, int row, const char *mnemonic, GtkWidget *widget)
{
  if (mnemonic != NULL)
    {
      GtkWidget *label = gtk_label_new_with_mnemonic (mnemonic);

      gtk_label_set_xalign (GTK_LABEL (label), 0.0);
      if (GTK_IS_BOX (widget))
        {
          GList *children = gtk_container_get_children (GTK_CONTAINER (widget));

          gtk_label_set_mnemonic_widget (GTK_LABEL (label), children->data);
          g_list_free (children);
        }
      else
        {
          gtk_label_set_mnemonic_widget (GTK_LABEL (label), widget);
        }
      gtk_grid_attach (grid, label, 0, row, 1, 1);
      gtk_grid_attach (grid, widget, 1, row, 1, 1);
    }
  else
    {
      gtk_grid_attach (grid, widget, 0, row, 2, 1);
    }
}

static GtkWidget *
settings (Dialog *d)
{
  GtkWidget *grid = gtk_grid_new ();
  GtkWidget *w;
  int        row = 0;

  gtk_grid_set_row_spacing (GTK_GRID (grid), 6);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 12);

  d->pack_picker = gfcg_pack_picker_new (G_OBJECT (d->config), "pack");
  attach (GTK_GRID (grid), row++, _("_Model pack:"), d->pack_picker);
  d->pack_status = gtk_label_new (_("Loading the pack..."));
  gtk_label_set_xalign (GTK_LABEL (d->pack_status), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->pack_status), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (d->pack_status), 50);
  gimp_label_set_attributes (GTK_LABEL (d->pack_status), PANGO_ATTR_SCALE, PANGO_SCALE_SMALL,
                             -1);
  gtk_grid_attach (GTK_GRID (grid), d->pack_status, 1, row++, 1, 1);
  attach (GTK_GRID (grid), row++, _("_Device:"),
          gfcg_device_picker_new (G_OBJECT (d->config), "device"));
  d->mode_combo = mode_combo (d);
  attach (GTK_GRID (grid), row++, _("_Guidance:"), d->mode_combo);
  d->weight = spin_scale (d, "guidance", 0, 100, 5, 0.1, 1, 2);
  gtk_widget_set_tooltip_text (d->weight,
                               _("How hard classifier-free guidance (CFG) or autoguidance "
                                 "(ATG) pushes the picture toward the class: 1 = off, "
                                 "higher = stronger.  Choosing a guidance mode sets the "
                                 "pack's weight for it."));
  attach (GTK_GRID (grid), row++, NULL, d->weight);
  d->strength = spin_scale (d, "gfcg-strength", 0, 100, 4, 0.1, 1, 2);
  gtk_widget_set_tooltip_text (d->strength,
                               _("How hard GFCG pushes away from the class the classifier "
                                 "confuses with yours: 0 = off, higher = stronger."));
  attach (GTK_GRID (grid), row++, NULL, d->strength);
  attach (GTK_GRID (grid), row++, NULL, spin_scale (d, "steps", 1, 1000, 128, 1, 8, 0));
  attach (GTK_GRID (grid), row++, NULL, seed_row (d));
  attach (GTK_GRID (grid), row++, NULL, spin_scale (d, "count", 1, 100, 16, 1, 4, 0));
  attach (GTK_GRID (grid), row++, _("_Upscale:"), gfcg_upscale_row_new (G_OBJECT (d->config)));
  w = gtk_button_new_with_mnemonic (_("Use the _pack's defaults"));
  gtk_widget_set_tooltip_text (w, _("Guidance mode, weights and steps as the pack recommends"));
  gtk_widget_set_halign (w, GTK_ALIGN_START);
  g_signal_connect (w, "clicked", G_CALLBACK (on_reset_defaults), d);
  attach (GTK_GRID (grid), row++, NULL, w);

  d->estimate = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (d->estimate), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->estimate), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (d->estimate), 50);
  gimp_label_set_attributes (GTK_LABEL (d->estimate), PANGO_ATTR_STYLE, PANGO_STYLE_ITALIC, -1);
  attach (GTK_GRID (grid), row++, NULL, d->estimate);
  return grid;
}

/* Values a script left in the config that the widgets cannot show. */
static void
normalise_config (Dialog *d)
{
  int      cls;
  char    *name = NULL, *nick = NULL, *source = NULL;
  double   guidance, strength, redraw;
  GfcgMode mode;
  GfcgSampleOptions builtin;

  g_object_get (d->config, "class-index", &cls, "class-name", &name, "mode", &nick,
                "guidance", &guidance, "gfcg-strength", &strength, NULL);
  if (name != NULL && *name != '\0' && gfcg_imagenet_find (name) >= 0)
    cls = gfcg_imagenet_find (name);
  g_object_set (d->config, "class-index", CLAMP (cls, 0, GFCG_N_IMAGENET_CLASSES - 1),
                "class-name", "", NULL);
  d->mode_from_pack = nick == NULL || *nick == '\0';
  if (nick == NULL || !gfcg_mode_from_string (nick, &mode))
    mode = GFCG_MODE_GFCG;
  /* The canonical name: the combo's ids ("gfcg-cfg" from older last values
   * becomes "gfcg+cfg"). */
  g_object_set (d->config, "mode", gfcg_mode_to_string (mode), NULL);
  /* -1 means "the pack's default": shown as the built-in value until the
   * pack is loaded, then as the pack's. */
  gfcg_sample_options_init (&builtin, NULL);
  d->weights_from_pack = guidance < 0.0 || strength < 0.0;
  if (guidance < 0.0)
    g_object_set (d->config, "guidance", builtin.guidance, NULL);
  if (strength < 0.0)
    g_object_set (d->config, "gfcg-strength", builtin.s_max, NULL);
  /* -1: the redraw strength that suits the source. */
  g_object_get (d->config, "strength", &redraw, "source", &source, NULL);
  if (redraw < 0.0)
    g_object_set (d->config, "strength", g_strcmp0 (source, "selection") == 0
                                         ? GFCG_DEFAULT_FILL_STRENGTH
                                         : GFCG_DEFAULT_REFINE_STRENGTH, NULL);
  g_free (source);
  g_free (name);
  g_free (nick);
}

gboolean
gfcg_dialog_run (GimpProcedure *procedure, GimpProcedureConfig *config,
                 const GfcgDialogContext *where, GfcgLoadedPack **loaded)
{
  Dialog     *d = g_new0 (Dialog, 1);
  GtkWidget  *hbox, *vbox, *frame;
  gboolean    run;

  d->config = config;
  d->where = *where;
  d->help_id = gimp_procedure_get_help_id (procedure);
  d->capture = g_getenv ("GFCG_CAPTURE_DIALOG");
  if (g_getenv ("GFCG_TEST_DIALOG") != NULL)
    d->script = g_strsplit (g_getenv ("GFCG_TEST_DIALOG"), ";", -1);
  normalise_config (d);
  /* Randomize: the seed of this run, shown before Draw (not for the
   * screenshots of tools/capture-dialog, which show the seed asked for). */
  {
    gboolean random = FALSE;

    g_object_get (config, "random-seed", &random, NULL);
    if (random && d->capture == NULL)
      roll_seed (d);
  }

  d->dialog = gimp_procedure_dialog_new (procedure, config,
                                         _("Diffusion Class Sample (GFCG)"));
  gimp_procedure_dialog_set_ok_label (GIMP_PROCEDURE_DIALOG (d->dialog), _("_Draw"));

  hbox = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  gtk_container_set_border_width (GTK_CONTAINER (hbox), 12);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (d->dialog))), hbox,
                      TRUE, TRUE, 0);

  frame = gimp_frame_new (_("Class"));
  gtk_box_pack_start (GTK_BOX (hbox), frame, TRUE, TRUE, 0);
  d->picker = gfcg_class_picker_new ();
  gfcg_class_picker_set_offers (GFCG_CLASS_PICKER (d->picker), offers, on_offer, d);
  gtk_container_add (GTK_CONTAINER (frame), d->picker);
  g_object_bind_property (config, "class-index", d->picker, "class-index",
                          G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE);

  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_box_pack_start (GTK_BOX (hbox), vbox, FALSE, FALSE, 0);
  frame = gimp_frame_new (_("Start from"));
  gtk_box_pack_start (GTK_BOX (vbox), frame, FALSE, FALSE, 0);
  gtk_container_add (GTK_CONTAINER (frame), gfcg_source_section_new (G_OBJECT (config), where));
  frame = gimp_frame_new (_("Settings"));
  gtk_box_pack_start (GTK_BOX (vbox), frame, FALSE, FALSE, 0);
  gtk_container_add (GTK_CONTAINER (frame), settings (d));
  gtk_widget_show_all (hbox);

  g_signal_connect (config, "notify::pack", G_CALLBACK (on_pack_or_device), d);
  g_signal_connect (config, "notify::device", G_CALLBACK (on_pack_or_device), d);
  g_signal_connect (config, "notify::mode", G_CALLBACK (on_mode), d);
  g_signal_connect (config, "notify::seed", G_CALLBACK (on_seed), d);
  g_signal_connect (config, "notify", G_CALLBACK (on_setting), d);
  start_probe (d);
  /* Screenshots: of the dialog, or the Get models window (m-capture:). */
  if (d->capture != NULL ||
      (g_getenv ("GFCG_TEST_DIALOG") != NULL && strstr (g_getenv ("GFCG_TEST_DIALOG"), "m-capture:")))
    gfcg_dialog_pointer_away (d->dialog);

  run = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (d->dialog));

  g_signal_handlers_disconnect_by_data (config, d);
  if (d->probe_source != 0)
    g_source_remove (d->probe_source);
  if (d->script_source != 0)
    g_source_remove (d->script_source);
  /* A probe still running calls back into d: let it finish first. */
  d->capture = NULL;
  g_clear_pointer (&d->script, g_strfreev);
  d->reprobe = FALSE;
  while (d->probing)
    g_main_context_iteration (NULL, TRUE);
  /* A download still running stops cleanly (its .part kept) first. */
  if (gfcg_pack_picker_models_window (d->pack_picker) != NULL)
    {
      gfcg_models_window_stop (gfcg_pack_picker_models_window (d->pack_picker));
      if (gfcg_pack_picker_models_window (d->pack_picker) != NULL)
        gtk_widget_destroy (gfcg_pack_picker_models_window (d->pack_picker));
    }
  gtk_widget_destroy (d->dialog);
  *loaded = run && d->probe != NULL ? g_steal_pointer (&d->probe->loaded) : NULL;
  gfcg_pack_probe_free (d->probe);
  g_free (d);
  return run;
}
