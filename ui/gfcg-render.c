/* gfcg-render.c — the GIMP 3 plug-in program "gfcg-render": registers
 * plug-in-gfcg-render under Filters > Render and runs it, with the dialog
 * and the progress window when interactive.  It lives in ui/ because it
 * opens them; the procedure's non-interactive core is plugin/: gfcg-args.c
 * declares the arguments, gfcg-job.c resolves them and samples,
 * gfcg-layers.c adds the result, gfcg-run.c runs headless.  plugin/ never
 * includes ui/. */
#include "gfcg-args.h"
#include "gfcg-job.h"
#include "gfcg-layers.h"
#include "gfcg-run.h"
#include "gfcg-source.h"
#include "gfcg-dialog.h"
#include "gfcg-help.h"
#include "gfcg-run-window.h"

#include <libgimp/gimpui.h>
#include <glib/gi18n-lib.h>

#define GFCG_TYPE_PLUG_IN (gfcg_plug_in_get_type ())
G_DECLARE_FINAL_TYPE (GfcgPlugIn, gfcg_plug_in, GFCG, PLUG_IN, GimpPlugIn)

struct _GfcgPlugIn
{
  GimpPlugIn parent_instance;
};

G_DEFINE_TYPE (GfcgPlugIn, gfcg_plug_in, GIMP_TYPE_PLUG_IN)

GIMP_MAIN (GFCG_TYPE_PLUG_IN)

static GList *
gfcg_query_procedures (GimpPlugIn *plug_in)
{
  gfcg_help_register (plug_in);
  return g_list_append (g_list_append (NULL, g_strdup (GFCG_PROC_RENDER)),
                        g_strdup (GFCG_PROC_REFINE));
}

static GimpValueArray *
fail (GimpProcedure *procedure, GError *error)
{
  GimpPDBStatusType status;

  if (g_error_matches (error, GFCG_ERROR, GFCG_ERROR_CANCELLED))
    status = GIMP_PDB_CANCEL;
  else if (g_error_matches (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT))
    status = GIMP_PDB_CALLING_ERROR;
  else
    status = GIMP_PDB_EXECUTION_ERROR;
  if (status == GIMP_PDB_CANCEL)
    g_clear_error (&error);
  return gimp_procedure_new_return_values (procedure, status, error);
}

static GimpValueArray *
gfcg_run (GimpProcedure        *procedure,
          GimpRunMode           run_mode,
          GimpImage            *image,
          GimpDrawable        **drawables,
          GimpProcedureConfig  *config,
          gpointer              run_data)
{
  gboolean        ui;
  gboolean        random_seed = FALSE;
  GfcgArgs        args;
  GfcgSourceRegion      source = { 0 };
  GfcgJob        *job;
  GError         *error = NULL;
  GimpValueArray *ret;
  GfcgLoadedPack *loaded = NULL;
  GfcgDialogContext where = { 0 };
  GfcgUpscale     upscale = GFCG_UPSCALE_NONE;
  gint64          t0;

  gegl_init (NULL, NULL);
  /* The dialog and the progress window need a display; Repeat Last from a
   * headless script runs without them. */
  ui = run_mode == GIMP_RUN_INTERACTIVE ||
       (run_mode == GIMP_RUN_WITH_LAST_VALS && gtk_init_check (NULL, NULL));
  if (ui)
    gimp_ui_init (GFCG_PLUG_IN_BINARY);
  /* What "Start from" can offer: a layer, a selection. */
  where.has_layer = image != NULL && drawables != NULL && drawables[0] != NULL &&
                    drawables[1] == NULL && GIMP_IS_LAYER (drawables[0]);
  where.has_selection = image != NULL && !gimp_selection_is_empty (image);
  if (run_mode == GIMP_RUN_INTERACTIVE &&
      g_strcmp0 (gimp_procedure_get_name (procedure), GFCG_PROC_REFINE) == 0)
    g_object_set (config, "source", where.has_selection ? "selection" : "layer", NULL);
  if (run_mode == GIMP_RUN_INTERACTIVE && !gfcg_dialog_run (procedure, config, &where, &loaded))
    return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL, NULL);

  /* Randomize: Repeat Last draws a new picture (the dialog has already
   * shown the seed it draws with).  A script's seed is always kept. */
  g_object_get (config, "random-seed", &random_seed, NULL);
  if (run_mode == GIMP_RUN_WITH_LAST_VALS && random_seed)
    g_object_set (config, "seed", (int) g_random_int_range (0, G_MAXINT), NULL);

  gfcg_args_from_config (&args, config);
  /* The source is read before sampling starts, in this thread: GIMP calls
   * stay out of the worker. */
  if (!gfcg_source_read (&source, args.source, image, drawables, &error) ||
      (job = gfcg_job_new (&args, &source, loaded, &error)) == NULL)
    {
      g_clear_pointer (&loaded, gfcg_loaded_pack_free);
      gfcg_source_clear (&source);
      gfcg_args_clear (&args);
      return fail (procedure, error);
    }
  g_clear_pointer (&loaded, gfcg_loaded_pack_free);
  /* Checked by gfcg_job_new. */
  gfcg_upscale_from_string (args.upscale, args.scale_to_canvas, &upscale);

  /* The image stays untouched until every picture is drawn: a stopped or
   * killed run leaves nothing behind. */
  t0 = g_get_monotonic_time ();
  if (!(ui ? gfcg_run_with_window (job, &error) : gfcg_run_headless (job, &error)) ||
      (image = gfcg_layers_add (image, job, upscale, ui, &error)) == NULL)
    {
      gfcg_job_free (job);
      gfcg_source_clear (&source);
      gfcg_args_clear (&args);
      return fail (procedure, error);
    }
  /* The sampling time, against which the dialog's estimate is measured
   * (docs/plugin.md). */
  if (g_getenv ("GFCG_TEST_TIMING") != NULL)
    g_printerr ("JOB-TIME %.2f\n", (g_get_monotonic_time () - t0) / 1e6);
  gfcg_job_free (job);
  gfcg_source_clear (&source);
  gfcg_args_clear (&args);

  ret = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_IMAGE (ret, 1, image);
  return ret;
}

static GimpProcedure *
gfcg_create_procedure (GimpPlugIn *plug_in, const gchar *name)
{
  GimpProcedure *procedure;
  gboolean       refine = g_strcmp0 (name, GFCG_PROC_REFINE) == 0;

  if (!refine && g_strcmp0 (name, GFCG_PROC_RENDER) != 0)
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        gfcg_run, NULL, NULL);
  gimp_procedure_set_image_types (procedure, "*");
  gimp_procedure_set_attribution (procedure, "The gfcg authors", "GPL-3.0-or-later", "2026");
  if (refine)
    {
      /* Where GIMP users look for "redraw this part" (Resynthesizer's Heal
       * Selection lives there too); the same procedure as the render one,
       * starting from the active layer or its selection. */
      gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
      gimp_procedure_set_menu_label (procedure, _("_Redraw with a Class (GFCG)..."));
      gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Enhance");
      gimp_procedure_set_documentation (procedure,
                                        _("Redraw a layer or fill a selection with an "
                                          "ImageNet class"),
                                        _("plug-in-gfcg-render starting from a picture: the "
                                          "active layer (source 'layer') or the selection's "
                                          "bounding box on it (source 'selection', where "
                                          "every pixel outside the selection stays as it "
                                          "was).  strength says how much is redrawn.  The "
                                          "result is a new layer right above the source."),
                                        name);
    }
  else
    {
      gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_ALWAYS);
      gimp_procedure_set_menu_label (procedure, _("_Diffusion Class Sample (GFCG)..."));
      gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Render");
      gimp_procedure_set_documentation (procedure,
                                        _("Paint an ImageNet class with a diffusion model"),
                                        _("Samples a class-conditional EDM2 diffusion model "
                                          "pack with gradient-free classifier guidance (GFCG), "
                                          "classifier-free guidance or autoguidance, and adds "
                                          "the picture as a new layer above the active one (a "
                                          "new image when none is open).  With source 'layer' "
                                          "or 'selection' it redraws the active layer or fills "
                                          "the selection instead.  Every parameter is stored "
                                          "in the layer's 'gfcg-parameters' parasite."),
                                        name);
    }
  gfcg_args_add (procedure, refine ? "layer" : "noise");
  return procedure;
}

static void
gfcg_plug_in_class_init (GfcgPlugInClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = gfcg_query_procedures;
  plug_in_class->create_procedure = gfcg_create_procedure;
}

static void
gfcg_plug_in_init (GfcgPlugIn *plug_in)
{
}
