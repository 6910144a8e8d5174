/* gfcg-pack-picker.h — entry widgets bound to the string properties `pack`
 * (a folder or an installed pack's name: the packs gfcg_installed_packs()
 * lists, Browse..., or Get Models... to install one: gfcg-models-window.h) and
 * `device` (auto, cpu, cpu:bf16 where it runs, opencl:N, or typed). */
#ifndef GFCG_PACK_PICKER_H
#define GFCG_PACK_PICKER_H

#include <gtk/gtk.h>

G_BEGIN_DECLS

GtkWidget *gfcg_pack_picker_new   (GObject    *config,
                                   const char *property);
/* Opens (or raises) the Get models window, with pack select chosen when
 * not NULL; the picker lists installed packs again after each install. */
GtkWidget *gfcg_pack_picker_get_models    (GtkWidget  *picker,
                                           const char *select);
/* The open Get models window, or NULL. */
GtkWidget *gfcg_pack_picker_models_window (GtkWidget  *picker);
/* The packs offered, by name, comma-separated (the tests). */
char      *gfcg_pack_picker_describe      (GtkWidget  *picker);
GtkWidget *gfcg_device_picker_new (GObject    *config,
                                   const char *property);

G_END_DECLS

#endif /* GFCG_PACK_PICKER_H */
