/* gfcg-catalog.h — what the plug-in knows of the catalog of published packs
 * (the one `gfcg models` reads): enough to tell an artist who names a pack
 * that is published but not installed how to get it, instead of "no such
 * model pack directory".  It reads the catalog's JSON itself rather than
 * linking manager/, which pulls in libcurl and the converters. */
#ifndef GFCG_CATALOG_H
#define GFCG_CATALOG_H

#include <gfcg/gfcg.h>

G_BEGIN_DECLS

/* The title of the catalog pack called name, or NULL when the catalog (at
 * gfcg_models_catalog_path) has no such pack or cannot be read. */
char     *gfcg_catalog_pack_title (const char *name);

/* FALSE with GFCG_ERROR_INVALID_ARGUMENT when spec is the bare name of a
 * catalog pack that is not installed (the message says how to fetch it);
 * TRUE otherwise, whether or not spec will load. */
gboolean  gfcg_catalog_check_installed (const char *spec, GError **error);

G_END_DECLS

#endif /* GFCG_CATALOG_H */
