/* gfcg-run-window.c — progress, preview and Stop while a job runs. */
#include "gfcg-run-window.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

#define PREVIEW_SIZE 256

struct _GfcgRunWindow
{
  GtkWidget    *dialog;
  GtkWidget    *image;
  GtkWidget    *bar;
  GtkWidget    *label;
  GCancellable *cancellable;
};

static void
on_response (GtkDialog *dialog, gint response, GfcgRunWindow *w)
{
  g_cancellable_cancel (w->cancellable);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (w->bar), _("Stopping..."));
  gtk_dialog_set_response_sensitive (dialog, GTK_RESPONSE_CANCEL, FALSE);
}

static gboolean
on_delete (GtkWidget *widget, GdkEvent *event, GfcgRunWindow *w)
{
  on_response (GTK_DIALOG (w->dialog), GTK_RESPONSE_CANCEL, w);
  return TRUE;
}

GfcgRunWindow *
gfcg_run_window_new (const char *title, GCancellable *cancellable)
{
  GfcgRunWindow *w = g_new0 (GfcgRunWindow, 1);
  GtkWidget     *vbox, *frame;

  w->cancellable = g_object_ref (cancellable);
  w->dialog = gimp_dialog_new (title, "gfcg-render-progress", NULL, 0, NULL, NULL,
                               _("_Stop"), GTK_RESPONSE_CANCEL, NULL);
  gtk_window_set_resizable (GTK_WINDOW (w->dialog), FALSE);
  g_signal_connect (w->dialog, "response", G_CALLBACK (on_response), w);
  g_signal_connect (w->dialog, "delete-event", G_CALLBACK (on_delete), w);

  vbox = gtk_box_new (GTK_ORIENTATION_VERTICAL, 8);
  gtk_container_set_border_width (GTK_CONTAINER (vbox), 12);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (w->dialog))), vbox,
                      TRUE, TRUE, 0);

  frame = gtk_frame_new (NULL);
  gtk_frame_set_shadow_type (GTK_FRAME (frame), GTK_SHADOW_IN);
  gtk_widget_set_halign (frame, GTK_ALIGN_CENTER);
  gtk_box_pack_start (GTK_BOX (vbox), frame, FALSE, FALSE, 0);
  w->image = gtk_image_new ();
  gtk_widget_set_size_request (w->image, PREVIEW_SIZE, PREVIEW_SIZE);
  gtk_widget_set_tooltip_text (w->image, _("The denoised estimate of the current step"));
  gtk_container_add (GTK_CONTAINER (frame), w->image);

  w->label = gtk_label_new (_("Loading..."));
  gtk_label_set_xalign (GTK_LABEL (w->label), 0.0);
  gtk_label_set_width_chars (GTK_LABEL (w->label), 40);
  gtk_label_set_max_width_chars (GTK_LABEL (w->label), 40);
  gtk_label_set_line_wrap (GTK_LABEL (w->label), TRUE);
  gtk_box_pack_start (GTK_BOX (vbox), w->label, FALSE, FALSE, 0);

  w->bar = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (w->bar), TRUE);
  gtk_box_pack_start (GTK_BOX (vbox), w->bar, FALSE, FALSE, 0);

  gtk_widget_show_all (w->dialog);
  return w;
}

void
gfcg_run_window_update (GfcgRunWindow *w, double fraction, const char *text,
                        const char *detail, const guchar *rgb, int width, int height)
{
  char *pct;

  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (w->bar), CLAMP (fraction, 0.0, 1.0));
  if (!g_cancellable_is_cancelled (w->cancellable))
    {
      pct = g_strdup_printf ("%d %%", (int) (100.0 * fraction + 0.5));
      gtk_progress_bar_set_text (GTK_PROGRESS_BAR (w->bar), pct);
      g_free (pct);
    }
  if (text != NULL)
    gtk_label_set_text (GTK_LABEL (w->label), text);
  if (detail != NULL)
    gtk_widget_set_tooltip_text (w->label, detail);
  if (rgb != NULL && width > 0 && height > 0)
    {
      GdkPixbuf *pb, *scaled;
      int        m = MAX (width, height), s = PREVIEW_SIZE / m;

      pb = gdk_pixbuf_new_from_data (rgb, GDK_COLORSPACE_RGB, FALSE, 8, width, height,
                                     width * 3, NULL, NULL);
      /* Whole pixels when enlarging, as the layer will have them. */
      if (s >= 1)
        scaled = gdk_pixbuf_scale_simple (pb, width * s, height * s, GDK_INTERP_NEAREST);
      else
        scaled = gdk_pixbuf_scale_simple (pb, MAX (1, width * PREVIEW_SIZE / m),
                                          MAX (1, height * PREVIEW_SIZE / m),
                                          GDK_INTERP_BILINEAR);
      gtk_image_set_from_pixbuf (GTK_IMAGE (w->image), scaled);
      g_object_unref (scaled);
      g_object_unref (pb);
    }
}

void
gfcg_run_window_stop (GfcgRunWindow *w)
{
  on_response (GTK_DIALOG (w->dialog), GTK_RESPONSE_CANCEL, w);
}

void
gfcg_run_window_destroy (GfcgRunWindow *w)
{
  if (w == NULL)
    return;
  gtk_widget_destroy (w->dialog);
  g_object_unref (w->cancellable);
  g_free (w);
}
