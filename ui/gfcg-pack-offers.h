/* gfcg-pack-offers.h — the packs that can draw a class the current pack
 * cannot, for the class picker's explanation line (gfcg-pack-offers.c). */
#ifndef GFCG_PACK_OFFERS_H
#define GFCG_PACK_OFFERS_H

#include <glib.h>

G_BEGIN_DECLS

/* "Other packs draw it: A (installed), B (Get Models)." with links
 * "use:FOLDER" (an installed pack other than current_dir) and "get:NAME"
 * (a catalog pack not installed); NULL when no pack draws imagenet. */
char *gfcg_pack_offers_markup (int         imagenet,
                               const char *current_dir);

G_END_DECLS

#endif /* GFCG_PACK_OFFERS_H */
