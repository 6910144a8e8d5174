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
#include "gfcg-dialog.h"
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
  return g_list_append (NULL, g_strdup (GFCG_PROC_RENDER));
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
  GfcgJob        *job;
  GError         *error = NULL;
  GimpValueArray *ret;
  GfcgLoadedPack *loaded = NULL;

  gegl_init (NULL, NULL);
  /* The dialog and the progress window need a display; Repeat Last from a
   * headless script runs without them. */
  ui = run_mode == GIMP_RUN_INTERACTIVE ||
       (run_mode == GIMP_RUN_WITH_LAST_VALS && gtk_init_check (NULL, NULL));
  if (ui)
    gimp_ui_init (GFCG_PLUG_IN_BINARY);
  if (run_mode == GIMP_RUN_INTERACTIVE && !gfcg_dialog_run (procedure, config, &loaded))
    return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL, NULL);

  g_object_get (config, "random-seed", &random_seed, NULL);
  if (run_mode != GIMP_RUN_NONINTERACTIVE && random_seed)
    g_object_set (config, "seed", (int) g_random_int_range (0, G_MAXINT), NULL);

  gfcg_args_from_config (&args, config);
  job = gfcg_job_new (&args, loaded, &error);
  g_clear_pointer (&loaded, gfcg_loaded_pack_free);
  if (job == NULL)
    {
      gfcg_args_clear (&args);
      return fail (procedure, error);
    }

  /* The image stays untouched until every picture is drawn: a stopped or
   * killed run leaves nothing behind. */
  if (!(ui ? gfcg_run_with_window (job, &error) : gfcg_run_headless (job, &error)) ||
      (image = gfcg_layers_add (image, job, args.scale_to_canvas, ui, &error)) == NULL)
    {
      gfcg_job_free (job);
      gfcg_args_clear (&args);
      return fail (procedure, error);
    }
  gfcg_job_free (job);
  gfcg_args_clear (&args);

  ret = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS, NULL);
  GIMP_VALUES_SET_IMAGE (ret, 1, image);
  return ret;
}

static GimpProcedure *
gfcg_create_procedure (GimpPlugIn *plug_in, const gchar *name)
{
  GimpProcedure *procedure;

  if (g_strcmp0 (name, GFCG_PROC_RENDER) != 0)
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                        gfcg_run, NULL, NULL);
  gimp_procedure_set_image_types (procedure, "*");
  gimp_procedure_set_sensitivity_mask (procedure, GIMP_PROCEDURE_SENSITIVE_ALWAYS);
  gimp_procedure_set_menu_label (procedure, _("_Diffusion Class Sample (GFCG)..."));
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Render");
  gimp_procedure_set_documentation (procedure,
                                    _("Paint an ImageNet class with a diffusion model"),
                                    _("Samples a class-conditional EDM2 diffusion model pack "
                                      "with gradient-free classifier guidance (GFCG), "
                                      "classifier-free guidance or autoguidance, and adds "
                                      "the picture as a new layer above the active one (a "
                                      "new image when none is open).  Every parameter is "
                                      "stored in the layer's 'gfcg-parameters' parasite."),
                                    name);
  gimp_procedure_set_attribution (procedure, "The gfcg authors", "GPL-3.0-or-later", "2026");
  gfcg_args_add (procedure);
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
