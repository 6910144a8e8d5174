/* gfcg-class-picker.h — a searchable list of the 1000 ImageNet classes.
 * Typing filters by name, synonym, wnid or index and picks the first match
 * the pack can draw; classes the chosen pack cannot draw are shown (greyed,
 * italic, marked "—") but cannot be picked, and a click on one says why.  A
 * line says what Draw will draw; a typo gets "Did you mean" links, a class
 * the pack lacks the other packs that draw it (set_offers).  Its
 * "class-index" property (-1 = none) binds to the procedure config. */
#ifndef GFCG_CLASS_PICKER_H
#define GFCG_CLASS_PICKER_H

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GFCG_TYPE_CLASS_PICKER (gfcg_class_picker_get_type ())
G_DECLARE_FINAL_TYPE (GfcgClassPicker, gfcg_class_picker, GFCG, CLASS_PICKER, GtkBox)

/* Markup naming other packs that draw class imagenet, with links (hrefs
 * other than a class number) that chosen gets with the class explained;
 * NULL when there are none. */
typedef char *(*GfcgClassOffersFunc) (int         imagenet,
                                      gpointer    user_data);
typedef void  (*GfcgClassOfferChosenFunc) (const char *uri,
                                           int         imagenet,
                                           gpointer    user_data);

GtkWidget *gfcg_class_picker_new          (void);
/* The explanation of a class the pack cannot draw ends with offers'. */
void       gfcg_class_picker_set_offers   (GfcgClassPicker          *picker,
                                           GfcgClassOffersFunc       offers,
                                           GfcgClassOfferChosenFunc  chosen,
                                           gpointer                  user_data);
/* imagenet: the n ImageNet indices the pack draws; NULL = every class. */
void       gfcg_class_picker_set_drawable (GfcgClassPicker *picker,
                                           const int       *imagenet,
                                           int              n);
/* The pack could not be loaded: no class can be drawn (the list stays
 * browsable).  gfcg_class_picker_set_drawable ends it. */
void       gfcg_class_picker_set_failed   (GfcgClassPicker *picker);
gboolean   gfcg_class_picker_is_drawable  (GfcgClassPicker *picker,
                                           int              imagenet);
int        gfcg_class_picker_get_class    (GfcgClassPicker *picker);
void       gfcg_class_picker_set_class    (GfcgClassPicker *picker,
                                           int              imagenet);

/* What a user does, for the dialog's test script (gfcg-dialog.c): type in
 * the search field, click class imagenet's row (when shown), tick "Only
 * classes this pack can draw", and the state
 * in one line of tab-separated KEY=VALUE (class, will-draw, hint, count,
 * only). */
void       gfcg_class_picker_type         (GfcgClassPicker *picker,
                                           const char      *text);
void       gfcg_class_picker_click        (GfcgClassPicker *picker,
                                           int              imagenet);
void       gfcg_class_picker_set_only_drawable (GfcgClassPicker *picker,
                                                gboolean         only);
char      *gfcg_class_picker_describe     (GfcgClassPicker *picker);
/* Follows the first link of the explanation line whose target starts with
 * prefix (the tests' click on it). */
void       gfcg_class_picker_activate_link (GfcgClassPicker *picker,
                                            const char      *prefix);

G_END_DECLS

#endif /* GFCG_CLASS_PICKER_H */
