/* gfcg-pack-picker.h — entry widgets bound to the string properties `pack`
 * (a folder or an installed pack's name: the packs gfcg_installed_packs()
 * lists, or Browse..., with a line on how to fetch more) and
 * `device` (auto, cpu, cpu:bf16 where it runs, opencl:N, or typed). */
#ifndef GFCG_PACK_PICKER_H
#define GFCG_PACK_PICKER_H

#include <gtk/gtk.h>

G_BEGIN_DECLS

GtkWidget *gfcg_pack_picker_new   (GObject    *config,
                                   const char *property);
GtkWidget *gfcg_device_picker_new (GObject    *config,
                                   const char *property);

G_END_DECLS

#endif /* GFCG_PACK_PICKER_H */
