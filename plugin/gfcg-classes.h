/* gfcg-classes.h — the 1000 ImageNet-1k classes of the engine's table
 * (gfcg_imagenet_get): the look-ups the PDB argument `class-name` and the
 * dialog's class picker use (names with '_' as space, filters). */
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

/* Matches spec (case-insensitive; '_' counts as a space) against the names,
 * then the wnids, then the synonyms.  When several classes match, the first
 * for which drawable (may be NULL) returns TRUE wins, else the first.
 * Returns the ImageNet index or -1. */
int                  gfcg_classes_find   (const char *spec,
                                          gboolean  (*drawable) (int imagenet, gpointer data),
                                          gpointer    data);

/* Whether class c matches a filter typed in the picker: a substring of the
 * name, a synonym or the wnid, or the index itself.  needle is lower-case. */
gboolean             gfcg_classes_filter (const GfcgClassInfo *c, const char *needle);

G_END_DECLS

#endif /* GFCG_CLASSES_H */
