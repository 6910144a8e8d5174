/* gfcg-models-info.h — the Get models window's texts about a catalog pack
 * (gfcg-models-info.c). */
#ifndef GFCG_MODELS_INFO_H
#define GFCG_MODELS_INFO_H

#include "models.h"

G_BEGIN_DECLS

gboolean gfcg_models_is_installed      (const char        *name);
/* Bytes of its files in the download cache, whole or partial. */
gint64   gfcg_models_downloaded        (const CatalogPack *pack);
/* A licence with non-commercial terms (CC BY-NC, NVIDIA's EDM2 weights):
 * acknowledged before a download. */
gboolean gfcg_models_is_non_commercial (const char        *licence);
/* "Installed", "Downloaded, not installed", "Partly downloaded (12 MB)",
 * "Not installed". */
char    *gfcg_models_state             (const CatalogPack *pack);
char    *gfcg_models_size_text         (const CatalogPack *pack);
/* Markup: title, what it draws, sizes, time on device, memory, about. */
char    *gfcg_models_details           (const CatalogPack *pack,
                                        const char        *device);

G_END_DECLS

#endif /* GFCG_MODELS_INFO_H */
