/* gfcg-dialog-script.c — the dialog's hooks for screenshots
 * ($GFCG_CAPTURE_DIALOG, tools/capture-dialog) and tests ($GFCG_TEST_DIALOG:
 * a script of steps that act on the dialog and print what it shows).  Kept
 * apart from gfcg-dialog.c so that the dialog reads as the dialog. */
#include "gfcg-dialog-private.h"
#include "gfcg-class-picker.h"
#include "gfcg-help.h"
#include "gfcg-models-window.h"
#include "gfcg-pack-picker.h"

#include <stdlib.h>
#include <string.h>

/* Under Xvfb the pointer starts in the middle of the screen, over the
 * dialog, and the tooltip it raises came out as a black box in the
 * screenshots: the pointer goes to the screen's corner first. */
void
gfcg_dialog_pointer_away (GtkWidget *widget)
{
  GdkDisplay *display = gtk_widget_get_display (widget);
  GdkDevice  *pointer = gdk_seat_get_pointer (gdk_display_get_default_seat (display));
  GdkScreen  *screen = gtk_widget_get_screen (widget);

  gdk_device_warp (pointer, screen, 0, 0);
}

/* A picture of window w as path (PNG): the screenshots. */
static void
save_window (GtkWidget *w, const char *path)
{
  GdkWindow *win = gtk_widget_get_window (w);
  GdkPixbuf *pb;
  GError    *error = NULL;

  gdk_display_sync (gdk_window_get_display (win));
  pb = gdk_pixbuf_get_from_window (win, 0, 0, gdk_window_get_width (win),
                                   gdk_window_get_height (win));
  if (pb == NULL || !gdk_pixbuf_save (pb, path, "png", &error, NULL))
    g_printerr ("gfcg-render: could not capture the window to %s: %s\n", path,
                error ? error->message : "no picture");
  g_clear_error (&error);
  g_clear_object (&pb);
}

gboolean
gfcg_dialog_capture (gpointer data)
{
  Dialog *d = data;

  save_window (d->dialog, d->capture);
  gtk_dialog_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_CANCEL);
  return G_SOURCE_REMOVE;
}

/* ---- tests: $GFCG_TEST_DIALOG ------------------------------------------ */

/* One line on stderr with what the artist sees: "DIALOG " and tab-separated
 * KEY=VALUE. */
static void
print_state (Dialog *d)
{
  char     *picker = gfcg_class_picker_describe (GFCG_CLASS_PICKER (d->picker));
  char     *mode = NULL, *pack = NULL;
  char     *packs = gfcg_pack_picker_describe (d->pack_picker);
  double    guidance;
  int       seed;
  gboolean  random;
  GtkWidget *ok = gtk_dialog_get_widget_for_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK);
  char     *tip = gtk_widget_get_tooltip_text (d->pack_status);

  /* The tooltip on one line, like the rest. */
  if (tip != NULL)
    g_strdelimit (tip, "\n", ' ');

  g_object_get (d->config, "mode", &mode, "guidance", &guidance, "seed", &seed,
                "random-seed", &random, "pack", &pack, NULL);
  g_printerr ("DIALOG %s\tmode=%s\tguidance=%g\tweight=%s%s\tstrength=%s%s\tseed=%d"
              "\trandom=%d\tdraw=%d\testimate=%s\test-lo=%.6f\test-hi=%.6f\tpack=%s"
              "\tpack-tip=%s\tpack-setting=%s\tpacks=%s\n", picker, mode, guidance,
              gimp_spin_scale_get_label (GIMP_SPIN_SCALE (d->weight)),
              gtk_widget_get_sensitive (d->weight) ? "" : " (greyed)",
              gimp_spin_scale_get_label (GIMP_SPIN_SCALE (d->strength)),
              gtk_widget_get_sensitive (d->strength) ? "" : " (greyed)", seed, random,
              ok != NULL && gtk_widget_get_sensitive (ok),
              gtk_label_get_text (GTK_LABEL (d->estimate)), d->est_lo, d->est_hi,
              gtk_label_get_text (GTK_LABEL (d->pack_status)), tip != NULL ? tip : "", pack,
              packs);
  g_free (tip);
  g_free (packs);
  g_free (pack);
  g_free (mode);
  g_free (picker);
}

/* Get models steps: models[:NAME] opens the window (NAME chosen), m-print
 * prints its state ("MODELS " and KEY=VALUE), m-wait waits for its action
 * to end, m-wait-bytes:FILE:N until N bytes of FILE are downloaded (or
 * the action ended), m-capture:PNG saves a picture of it
 * (tools/capture-dialog), m-STEP is the window's step
 * (gfcg_models_window_step).  FALSE: wait, run this step again later. */
static gboolean
models_step (Dialog *d, const char *step)
{
  GtkWidget *w = gfcg_pack_picker_models_window (d->pack_picker);

  if (strcmp (step, "models") == 0 || g_str_has_prefix (step, "models:"))
    gfcg_pack_picker_get_models (d->pack_picker, step[6] == ':' ? step + 7 : NULL);
  else if (w == NULL)
    g_printerr ("gfcg-render: '%s' without a Get models window\n", step);
  else if (strcmp (step, "m-wait") == 0)
    return !gfcg_models_window_is_busy (w);
  else if (g_str_has_prefix (step, "m-wait-bytes:") && strchr (step + 13, ':') != NULL)
    {
      const char *n = strrchr (step, ':') + 1;
      char       *file = g_strndup (step + 13, n - 1 - (step + 13));
      gboolean    done = !gfcg_models_window_is_busy (w)
                         || gfcg_models_window_bytes (w, file) >= g_ascii_strtoll (n, NULL, 10);

      g_free (file);
      return done;
    }
  else if (g_str_has_prefix (step, "m-capture:"))
    save_window (w, step + 10);
  else if (strcmp (step, "m-print") == 0)
    {
      char *state = gfcg_models_window_describe (w);

      g_printerr ("MODELS %s\n", state);
      g_free (state);
    }
  else
    gfcg_models_window_step (w, step + 2);
  return TRUE;
}

/* The script's steps, one at a time, each once the pack is in: ok (press
 * Draw), cancel, print, type:TEXT (in the class search), click:N (class N's
 * row), only:0|1 ("Only classes this pack can draw"), mode:NAME, seed:N
 * (typed in the seed field), random:0|1 (Randomize), pack:PATH, steps:N,
 * help (prints the page Help opens), link:PREFIX (the first link of the class
 * picker's explanation to PREFIX...), pause:MS, and the Get models window's
 * (models_step). */
gboolean
gfcg_dialog_script_step (gpointer data)
{
  Dialog     *d = data;
  const char *step;

  d->script_source = 0;
  if (d->probing || d->probe_source != 0)
    return G_SOURCE_REMOVE;              /* on_probe_done calls again */
  if (d->script == NULL || (step = d->script[d->step]) == NULL)
    {
      /* tools/capture-dialog sets the scene with steps, then takes it. */
      if (d->script != NULL && d->capture != NULL)
        g_timeout_add (800, gfcg_dialog_capture, d);
      return G_SOURCE_REMOVE;
    }
  if (g_str_has_prefix (step, "models") || g_str_has_prefix (step, "m-"))
    {
      if (models_step (d, step))
        d->step++;
      d->script_source = g_timeout_add (100, gfcg_dialog_script_step, d);
      return G_SOURCE_REMOVE;
    }
  d->step++;
  if (strcmp (step, "ok") == 0)
    {
      gtk_dialog_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK);
      return G_SOURCE_REMOVE;
    }
  if (strcmp (step, "cancel") == 0)
    {
      gtk_dialog_response (GTK_DIALOG (d->dialog), GTK_RESPONSE_CANCEL);
      return G_SOURCE_REMOVE;
    }
  if (strcmp (step, "print") == 0)
    print_state (d);
  else if (strcmp (step, "help") == 0)
    {
      /* What Help opens, as GIMP's help plug-in finds it. */
      char *uri = gfcg_help_page_uri (d->help_id);

      g_printerr ("HELP %s %s\n", d->help_id, uri != NULL ? uri : "(none)");
      g_free (uri);
    }
  else if (g_str_has_prefix (step, "type:"))
    gfcg_class_picker_type (GFCG_CLASS_PICKER (d->picker), step + 5);
  else if (g_str_has_prefix (step, "click:"))
    gfcg_class_picker_click (GFCG_CLASS_PICKER (d->picker), atoi (step + 6));
  else if (g_str_has_prefix (step, "only:"))
    gfcg_class_picker_set_only_drawable (GFCG_CLASS_PICKER (d->picker), atoi (step + 5));
  else if (g_str_has_prefix (step, "mode:"))
    g_object_set (d->config, "mode", step + 5, NULL);
  else if (g_str_has_prefix (step, "seed:"))
    gtk_spin_button_set_value (GTK_SPIN_BUTTON (d->seed_spin), atoi (step + 5));
  else if (g_str_has_prefix (step, "random:"))
    gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (d->randomize), atoi (step + 7));
  else if (g_str_has_prefix (step, "steps:"))
    g_object_set (d->config, "steps", atoi (step + 6), NULL);
  else if (g_str_has_prefix (step, "pack:"))
    g_object_set (d->config, "pack", step + 5, NULL);
  else if (g_str_has_prefix (step, "link:"))
    gfcg_class_picker_activate_link (GFCG_CLASS_PICKER (d->picker), step + 5);
  else if (g_str_has_prefix (step, "pause:"))
    {
      /* Time for a window to be drawn before a picture of it. */
      d->script_source = g_timeout_add (atoi (step + 6), gfcg_dialog_script_step, d);
      return G_SOURCE_REMOVE;
    }
  else
    g_printerr ("gfcg-render: unknown test step '%s'\n", step);
  d->script_source = g_timeout_add (100, gfcg_dialog_script_step, d);
  return G_SOURCE_REMOVE;
}
