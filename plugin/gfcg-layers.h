/* gfcg-layers.h — puts a finished job's pictures into GIMP: new layers above
 * the active one (or a new image), in one undo group, with the parameters in
 * a parasite.  The only place that touches the image. */
#ifndef GFCG_LAYERS_H
#define GFCG_LAYERS_H

#include "gfcg-job.h"
#include "gfcg-upscale.h"

G_BEGIN_DECLS

/* The parasite holding gfcg_job_parameters() on each layer. */
#define GFCG_PARASITE "gfcg-parameters"

/* image may be NULL: a new image of the picture's size is made (and shown
 * when display is TRUE).  upscale says how a picture from noise is brought
 * to the canvas (refines and fills keep their region's place and size).  Returns the image, or NULL with error set. */
GimpImage *gfcg_layers_add (GimpImage  *image,
                            GfcgJob    *job,
                            GfcgUpscale upscale,
                            gboolean    display,
                            GError    **error);

G_END_DECLS

#endif /* GFCG_LAYERS_H */
