/* gfcg-classes.h — the 1000 ImageNet-1k classes of the engine's table
 * (gfcg_imagenet_get) as the dialog's class picker shows and filters them;
 * names are found by the engine's gfcg_imagenet_find. */
#ifndef GFCG_CLASSES_H
#define GFCG_CLASSES_H

#include <gfcg/gfcg.h>

G_BEGIN_DECLS

#define GFCG_N_IMAGENET_CLASSES 1000

typedef GfcgImagenetClass GfcgClassInfo;

/* Class i (0..999), or NULL.  The table is read on first use. */
const GfcgClassInfo *gfcg_classes_get    (int index);

/* A label for menus and layer names: the name, or "class N" when unknown. */
const char          *gfcg_classes_name   (int index);

/* Whether class c matches a filter typed in the picker: a substring of the
 * name, a synonym or the wnid, or the index itself.  needle is lower-case. */
gboolean             gfcg_classes_filter (const GfcgClassInfo *c, const char *needle);

G_END_DECLS

#endif /* GFCG_CLASSES_H */
