/* gfcg-args.c — declares the PDB interface of plug-in-gfcg-render and reads
 * a call's values back.
 *
 * The numeric ranges are declared wide and `mode` is a string on purpose:
 * GIMP 3.0's Script-Fu named arguments and GimpProcedureConfig drop an
 * out-of-range number or an unknown GimpChoice nick with a warning and run
 * with the default, so a script asking for mode "fast" would silently get a
 * GFCG picture.  gfcg-job.c checks the real ranges and names, and every
 * caller gets a calling error that names the argument. */
#include "gfcg-args.h"

#include <glib/gi18n-lib.h>
#include <string.h>

void
gfcg_args_add (GimpProcedure *procedure, const char *source)
{
  gimp_procedure_add_int_argument (procedure, "class-index", _("C_lass"),
                                   _("ImageNet-1k class index (0..999) to draw; "
                                     "the pack must have it"),
                                   G_MININT, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "class-name", _("Class _name"),
                                      _("Class by English name, synonym or wnid "
                                        "(empty: use class-index)"),
                                      "", G_PARAM_READWRITE);
  {
    /* The names come from the engine's mode table. */
    char *names = gfcg_mode_list (", ");
    char *blurb = g_strdup_printf (_("Guidance mode: %s (empty: the pack's default)"), names);
    gimp_procedure_add_string_argument (procedure, "mode", _("_Guidance"), blurb, "gfcg",
                                        G_PARAM_READWRITE);
    g_free (blurb);
    g_free (names);
  }
  gimp_procedure_add_int_argument (procedure, "steps", _("_Steps"),
                                   _("Sampler steps, 1..1000 (2 x steps - 1 guided "
                                     "evaluations)"),
                                   G_MININT, G_MAXINT, 32, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "guidance", _("CFG/ATG _weight (1 = off)"),
                                      _("CFG/ATG weight w in 0..100, EDM2 convention "
                                        "(1 = off); -1 = the pack's default"),
                                      -G_MAXDOUBLE, G_MAXDOUBLE, -1.0, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "gfcg-strength",
                                      _("GFCG s_trength (0 = off)"),
                                      _("GFCG strength s_max in 0..100; -1 = the pack's "
                                        "default"),
                                      -G_MAXDOUBLE, G_MAXDOUBLE, -1.0, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "seed", _("Se_ed"),
                                   _("Noise seed (0..2147483647): the same seed gives "
                                     "the same picture"),
                                   G_MININT, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "pack", _("_Model pack"),
                                      _("Model pack directory (empty: the default pack)"),
                                      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "device", _("_Device"),
                                      _("Compute device: auto, cpu or opencl:N"),
                                      "auto", G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "count", _("_Pictures"),
                                   _("Number of layers (1..100), with seeds seed, "
                                     "seed+1, ..."),
                                   G_MININT, G_MAXINT, 1, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "scale-to-canvas", _("Scale to _canvas"),
                                       _("Scale the picture to fill the canvas (smoothly); "
                                         "upscale, when set, decides instead"),
                                       FALSE, G_PARAM_READWRITE);
  /* A string, not a GimpChoice, for the reason at the top of this file. */
  gimp_procedure_add_string_argument (procedure, "source", _("Start _from"),
                                      _("noise: paint a new picture; layer: redraw the active "
                                        "layer; selection: redraw the selection's bounding box "
                                        "and keep every pixel outside the selection"),
                                      source, G_PARAM_READWRITE);
  gimp_procedure_add_double_argument (procedure, "strength", _("Re_draw strength"),
                                      _("With source layer or selection: how much is redrawn, "
                                        "0..1 (0 = the source unchanged, 1 = from noise; "
                                        "only the last strength x steps steps run); -1 = 1 "
                                        "for a selection, 0.7 for a layer"),
                                      -G_MAXDOUBLE, G_MAXDOUBLE, -1.0, G_PARAM_READWRITE);
  /* Last, so that positional calls written before it keep working; a
   * string for the reason at the top of this file. */
  gimp_procedure_add_string_argument (procedure, "upscale", _("_Upscale"),
                                      _("How a picture from noise is brought to the canvas: "
                                        "none (centred at its own size), nearest (blocks of "
                                        "pixels), smooth (interpolated); empty: smooth if "
                                        "scale-to-canvas, else none"),
                                      "", G_PARAM_READWRITE);

  /* On by default: Repeat Last and the dialog draw a new picture each time
   * (the seed is in the layer's name); typing a seed turns it off. */
  gimp_procedure_add_boolean_aux_argument (procedure, "random-seed", _("_Randomize"),
                                           _("A new seed for each run from the dialog "
                                             "or Repeat Last"),
                                           TRUE, G_PARAM_READWRITE);

  gimp_procedure_add_image_return_value (procedure, "image", _("Image"),
                                         _("The image the layers were added to "
                                           "(a new one when none was given)"),
                                         FALSE, G_PARAM_READWRITE);
}

void
gfcg_args_from_config (GfcgArgs *a, GimpProcedureConfig *config)
{
  memset (a, 0, sizeof *a);
  g_object_get (config,
                "class-index", &a->class_index,
                "class-name", &a->class_name,
                "mode", &a->mode,
                "steps", &a->steps,
                "guidance", &a->guidance,
                "gfcg-strength", &a->strength,
                "seed", &a->seed,
                "pack", &a->pack,
                "device", &a->device,
                "count", &a->count,
                "scale-to-canvas", &a->scale_to_canvas,
                "source", &a->source,
                "strength", &a->refine_strength,
                "upscale", &a->upscale,
                NULL);
  if (a->class_name == NULL)
    a->class_name = g_strdup ("");
  if (a->pack == NULL)
    a->pack = g_strdup ("");
  if (a->device == NULL)
    a->device = g_strdup ("");
  if (a->mode == NULL)
    a->mode = g_strdup ("");
  if (a->source == NULL)
    a->source = g_strdup ("");
  if (a->upscale == NULL)
    a->upscale = g_strdup ("");
  g_strstrip (a->upscale);
  g_strstrip (a->source);
  g_strstrip (a->mode);
  g_strstrip (a->class_name);
  g_strstrip (a->pack);
  g_strstrip (a->device);
}

void
gfcg_args_clear (GfcgArgs *a)
{
  g_clear_pointer (&a->class_name, g_free);
  g_clear_pointer (&a->pack, g_free);
  g_clear_pointer (&a->device, g_free);
  g_clear_pointer (&a->mode, g_free);
  g_clear_pointer (&a->source, g_free);
  g_clear_pointer (&a->upscale, g_free);
}
