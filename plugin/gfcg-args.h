/* gfcg-args.h — the PDB arguments of plug-in-gfcg-render and their values. */
#ifndef GFCG_ARGS_H
#define GFCG_ARGS_H

#include <libgimp/gimp.h>
#include <gfcg/gfcg.h>

G_BEGIN_DECLS

#define GFCG_PROC_RENDER "plug-in-gfcg-render"
/* The same procedure under Filters > Enhance, starting from the layer. */
#define GFCG_PROC_REFINE "plug-in-gfcg-refine"
#define GFCG_PLUG_IN_BINARY "gfcg-render"

/* Fills replace what is selected; refines keep the layer's layout. */
#define GFCG_DEFAULT_FILL_STRENGTH   1.0
#define GFCG_DEFAULT_REFINE_STRENGTH 0.7

/* The values of one call, read from its GimpProcedureConfig. */
typedef struct
{
  int       class_index;     /* ImageNet-1k index                         */
  char     *class_name;      /* "" = use class_index                      */
  char     *mode;            /* "" = the pack's default; gfcg_mode_from_string */
  int       steps;
  double    guidance;        /* < 0: the pack's default                   */
  double    strength;        /* < 0: the pack's default                   */
  int       seed;
  char     *pack;            /* "" = the default pack                     */
  char     *device;          /* "" = auto                                 */
  int       count;
  gboolean  scale_to_canvas;
  char     *source;          /* "noise" | "layer" | "selection"           */
  double    refine_strength; /* `strength`: 0..1, how much of the source is
                                redrawn (source layer or selection only);
                                < 0: GFCG_DEFAULT_FILL_STRENGTH for a
                                selection, GFCG_DEFAULT_REFINE_STRENGTH
                                for a layer                              */
  char     *upscale;         /* "" | gfcg_upscale_from_string's names     */
} GfcgArgs;

/* Declares the arguments, return values and aux arguments; source is the
 * default of `source`. */
void gfcg_args_add         (GimpProcedure       *procedure,
                            const char          *source);
void gfcg_args_from_config (GfcgArgs            *args,
                            GimpProcedureConfig *config);
void gfcg_args_clear       (GfcgArgs            *args);

G_END_DECLS

#endif /* GFCG_ARGS_H */
