/* gfcg-class-picker.h — a searchable list of the 1000 ImageNet classes.
 * Typing filters by name, synonym, wnid or index; classes the chosen pack
 * cannot draw are shown but cannot be picked.  Its "class-index" property
 * (-1 = none) binds to the procedure config. */
#ifndef GFCG_CLASS_PICKER_H
#define GFCG_CLASS_PICKER_H

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define GFCG_TYPE_CLASS_PICKER (gfcg_class_picker_get_type ())
G_DECLARE_FINAL_TYPE (GfcgClassPicker, gfcg_class_picker, GFCG, CLASS_PICKER, GtkBox)

GtkWidget *gfcg_class_picker_new          (void);
/* imagenet: the n ImageNet indices the pack draws; NULL = every class. */
void       gfcg_class_picker_set_drawable (GfcgClassPicker *picker,
                                           const int       *imagenet,
                                           int              n);
gboolean   gfcg_class_picker_is_drawable  (GfcgClassPicker *picker,
                                           int              imagenet);
int        gfcg_class_picker_get_class    (GfcgClassPicker *picker);
void       gfcg_class_picker_set_class    (GfcgClassPicker *picker,
                                           int              imagenet);

G_END_DECLS

#endif /* GFCG_CLASS_PICKER_H */
