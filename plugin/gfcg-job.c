/* gfcg-job.c — resolves a call's arguments against the pack and runs the
 * engine.  Every refusal names the PDB argument at fault. */
#include "gfcg-job.h"
#include "gfcg-catalog.h"
#include "gfcg-classes.h"
#include "gfcg-upscale.h"

#include <gfcg/gfcg-json.h>
#include <string.h>

static gboolean
arg_error (GError **error, const char *arg, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
arg_error (GError **error, const char *arg, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "%s: %s", arg, msg);
  g_free (msg);
  return FALSE;
}

char *
gfcg_job_pack_dir (const char *pack)
{
  /* A folder, or the name of a pack beside the default one or fetched by
   * `gfcg models fetch` (the engine's rule, as on the command line). */
  char *dir = gfcg_pack_resolve (pack, NULL);

  /* An unknown name stays as it is: loading it gives the error naming it. */
  return dir != NULL ? dir : g_strdup (pack);
}

/* A refusal of the engine, named after the argument at fault. */
static gboolean
arg_refused (GError **error, const char *arg, GError *e)
{
  arg_error (error, arg, "%s", e->message);
  g_error_free (e);
  return FALSE;
}

/* class-name (a name, synonym or wnid; a bare number is a name there), else
 * class-index (an ImageNet index).  The engine resolves both, as for
 * `gfcg sample`. */
static gboolean
resolve_class (GfcgJob *job, const GfcgArgs *a, GError **error)
{
  GError *e = NULL;

  if (*a->class_name == '\0')
    return gfcg_request_set_imagenet (&job->req, a->class_index, &e) ||
           arg_refused (error, "class-index", e);
  return gfcg_request_set_class (&job->req, a->class_name, GFCG_CLASS_SPEC_NAMES_ONLY, &e) ||
         arg_refused (error, "class-name", e);
}

/* The ranges that need no pack, checked first. */
static gboolean
check_ranges (const GfcgArgs *a, GError **error)
{
  GfcgUpscale up;

  if (a->class_index < 0 || a->class_index >= GFCG_N_IMAGENET_CLASSES)
    return arg_error (error, "class-index", "%d is not an ImageNet-1k class index (0..999)",
                      a->class_index);
  if (a->steps < 1 || a->steps > 1000)
    return arg_error (error, "steps", "%d is not in 1..1000", a->steps);
  if (a->guidance != -1.0 && !(a->guidance >= 0.0 && a->guidance <= 100.0))
    return arg_error (error, "guidance", "%g is not in 0..100 (or -1 for the pack's default)",
                      a->guidance);
  if (a->strength != -1.0 && !(a->strength >= 0.0 && a->strength <= 100.0))
    return arg_error (error, "gfcg-strength",
                      "%g is not in 0..100 (or -1 for the pack's default)", a->strength);
  if (a->seed < 0)
    return arg_error (error, "seed", "%d is negative", a->seed);
  if (a->count < 1 || a->count > 100)
    return arg_error (error, "count", "%d is not in 1..100", a->count);
  if (a->refine_strength != -1.0 && !(a->refine_strength >= 0.0 && a->refine_strength <= 1.0))
    return arg_error (error, "strength", "%g is not in 0..1 (or -1: 1 for a selection, 0.7 "
                      "for a layer)", a->refine_strength);
  if (!gfcg_upscale_from_string (a->upscale, a->scale_to_canvas, &up))
    return arg_error (error, "upscale", "unknown choice '%s' (%s, or empty)", a->upscale,
                      GFCG_UPSCALE_NAMES);
  return TRUE;
}

static gboolean
resolve_options (GfcgJob *job, const GfcgArgs *a, GError **error)
{
  GfcgSampleOptions *o = &job->req.options;
  GError *e = NULL;

  /* "": the pack's mode; the weight follows the mode unless given. */
  if (!gfcg_request_set_mode (&job->req, a->mode, &e))
    return arg_refused (error, "mode", e);
  o->steps = a->steps;
  if (a->guidance >= 0.0)
    o->guidance = a->guidance;
  if (a->strength >= 0.0)
    o->s_max = a->strength;
  o->seed = (guint64) a->seed;
  if (!gfcg_sample_options_validate (o, job->pack, &e))
    return arg_refused (error, "pack", e);
  return TRUE;
}

/* A refine or fill: the engine's source (the region on the pack's canvas,
 * the selection as the mask) and the redraw strength. */
static gboolean
resolve_source (GfcgJob *job, const GfcgArgs *a, GError **error)
{
  const GfcgSourceRegion *r = job->source;
  float  *mask = NULL;
  GError *e = NULL;

  if (r == NULL || r->kind == GFCG_SOURCE_NOISE)
    return TRUE;
  if (r->mask != NULL)
    {
      gsize n = (gsize) r->width * r->height;
      mask = g_new (float, n);
      for (gsize i = 0; i < n; i++)
        mask[i] = r->mask[i] / 255.0f;
    }
  job->engine_source = gfcg_source_new (job->pack, r->rgb, r->width, r->height, mask, &e);
  g_free (mask);
  if (job->engine_source == NULL)
    return arg_refused (error, "source", e);
  gfcg_source_apply (job->engine_source, &job->req.options);
  job->req.options.strength = a->refine_strength >= 0.0 ? a->refine_strength
                              : r->kind == GFCG_SOURCE_SELECTION ? GFCG_DEFAULT_FILL_STRENGTH
                              : GFCG_DEFAULT_REFINE_STRENGTH;
  return TRUE;
}

void
gfcg_loaded_pack_free (GfcgLoadedPack *lp)
{
  if (lp == NULL)
    return;
  gfcg_pack_free (lp->pack);
  gfcg_context_free (lp->ctx);
  g_free (lp->dir);
  g_free (lp->device);
  g_free (lp);
}

/* Takes loaded's context and pack when they are the ones the job needs. */
static gboolean
take_loaded (GfcgJob *job, GfcgLoadedPack *lp)
{
  if (lp == NULL || lp->pack == NULL || g_strcmp0 (lp->dir, job->pack_dir) != 0 ||
      g_strcmp0 (lp->device, job->device) != 0)
    return FALSE;
  job->ctx = g_steal_pointer (&lp->ctx);
  job->pack = g_steal_pointer (&lp->pack);
  if (g_getenv ("GFCG_DEBUG_REUSE") != NULL)
    g_printerr ("gfcg-render: drawing with the pack the dialog loaded (%s)\n", job->pack_dir);
  return TRUE;
}

GfcgJob *
gfcg_job_new (const GfcgArgs *a, const GfcgSourceRegion *source, GfcgLoadedPack *loaded,
              GError **error)
{
  GfcgJob *job = g_new0 (GfcgJob, 1);
  GError  *e = NULL;

  job->device = g_strdup (*a->device ? a->device : "auto");
  job->pack_dir = gfcg_job_pack_dir (a->pack);
  job->images = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_image_free);
  job->pixels = g_ptr_array_new_with_free_func (g_free);
  if (!check_ranges (a, error))
    goto fail;
  /* A published pack not fetched yet: say how to get it. */
  if (!gfcg_catalog_check_installed (a->pack, &e))
    {
      arg_error (error, "pack", "%s", e->message);
      goto fail;
    }

  if (take_loaded (job, loaded))
    ;
  else if ((job->ctx = gfcg_context_new (job->device, &e)) == NULL)
    {
      arg_error (error, "device", "%s", e->message);
      goto fail;
    }
  else if ((job->pack = gfcg_pack_load (job->ctx, job->pack_dir, &e)) == NULL)
    {
      arg_error (error, "pack", "%s", e->message);
      goto fail;
    }
  gfcg_request_init (&job->req, job->pack);
  job->req.count = a->count;
  job->source = source;
  if (!resolve_class (job, a, error) || !resolve_source (job, a, error) ||
      !resolve_options (job, a, error))
    goto fail;
  return job;

fail:
  g_clear_error (&e);
  gfcg_job_free (job);
  return NULL;
}

typedef struct
{
  GfcgJob            *job;
  GfcgJobProgressFunc func;
  gpointer            data;
} RunProgress;

static gboolean
run_progress (const GfcgProgress *p, gpointer data)
{
  RunProgress *rp = data;

  return rp->func == NULL || rp->func (rp->job, p->picture, p, rp->data);
}

/* Keeps each picture; a refine's goes back to the region's size, with every
 * pixel outside the selection as it was. */
static gboolean
keep_picture (const GfcgRequest *req, int picture, GfcgImage *img, gpointer data,
              GError **error)
{
  RunProgress *rp = data;
  guchar      *px = NULL;

  if (rp->job->engine_source != NULL &&
      (px = gfcg_source_composite (rp->job->engine_source, img, error)) == NULL)
    {
      gfcg_image_free (img);
      return FALSE;
    }
  g_ptr_array_add (rp->job->images, img);
  g_ptr_array_add (rp->job->pixels, px);
  return TRUE;
}

const guchar *
gfcg_job_get_pixels (GfcgJob *job, int j, int *width, int *height)
{
  GfcgImage *img = g_ptr_array_index (job->images, j);

  if (job->engine_source != NULL)
    {
      *width = gfcg_source_get_width (job->engine_source);
      *height = gfcg_source_get_height (job->engine_source);
      return g_ptr_array_index (job->pixels, j);
    }
  *width = gfcg_image_get_width (img);
  *height = gfcg_image_get_height (img);
  return gfcg_image_get_pixels (img);
}

gboolean
gfcg_job_run (GfcgJob *job, GfcgJobProgressFunc progress, gpointer user_data,
              GCancellable *cancellable, GError **error)
{
  RunProgress rp = { job, progress, user_data };
  gboolean ok;

  g_ptr_array_set_size (job->images, 0);
  g_ptr_array_set_size (job->pixels, 0);
  job->req.options.cancellable = cancellable;
  ok = gfcg_request_run (&job->req, run_progress, keep_picture, &rp, error);
  job->req.options.cancellable = NULL;
  if (!ok)
    {
      g_ptr_array_set_size (job->images, 0);
      g_ptr_array_set_size (job->pixels, 0);
    }
  return ok;
}

void
gfcg_job_free (GfcgJob *job)
{
  if (job == NULL)
    return;
  g_ptr_array_unref (job->images);
  g_ptr_array_unref (job->pixels);
  gfcg_source_free (job->engine_source);
  gfcg_pack_free (job->pack);
  gfcg_context_free (job->ctx);
  g_free (job->pack_dir);
  g_free (job->device);
  g_free (job);
}

char *
gfcg_job_layer_name (GfcgJob *job, int j)
{
  return g_strdup_printf ("%s (%s, seed %" G_GUINT64_FORMAT ")", gfcg_classes_name (job->req.imagenet),
                          gfcg_mode_to_string (job->req.options.mode), job->req.options.seed + (guint64) j);
}

/* The `gfcg sample` call that draws the same picture. */
static char *
command_line (GfcgJob *job, guint64 seed)
{
  const GfcgSampleOptions *o = &job->req.options;
  char *pack = g_shell_quote (job->pack_dir);
  char  g[G_ASCII_DTOSTR_BUF_SIZE], s[G_ASCII_DTOSTR_BUF_SIZE];
  char *cmd;

  g_ascii_dtostr (g, sizeof g, o->guidance);
  g_ascii_dtostr (s, sizeof s, o->s_max);
  cmd = g_strdup_printf ("gfcg sample --pack %s --imagenet %d --mode %s --steps %d "
                         "--guidance %s --s-max %s --seed %" G_GUINT64_FORMAT
                         " --device %s --out out.png",
                         pack, job->req.imagenet, gfcg_mode_to_string (o->mode), o->steps, g, s,
                         seed, job->device);
  if (job->engine_source != NULL)
    {
      /* The region and the selection as PNGs (not stored here) redo it. */
      char  t[G_ASCII_DTOSTR_BUF_SIZE], *more;

      g_ascii_dtostr (t, sizeof t, o->strength);
      more = g_strdup_printf ("%s --init region.png --strength %s%s", cmd, t,
                              job->source->mask != NULL ? " --mask selection.png" : "");
      g_free (cmd);
      cmd = more;
    }
  g_free (pack);
  return cmd;
}

char *
gfcg_job_parameters (GfcgJob *job, int j)
{
  GfcgImage  *img = g_ptr_array_index (job->images, j);
  char       *trace = gfcg_image_get_trace_json (img), *cmd, *out;
  JsonNode   *root = json_from_string (trace, NULL);
  JsonObject *obj, *plug;

  g_free (trace);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      if (root != NULL)
        json_node_unref (root);
      root = json_node_init_object (json_node_alloc (), json_object_new ());
    }
  obj = json_node_get_object (root);
  plug = json_object_new ();
  json_object_set_string_member (plug, "procedure", GFCG_PROC_RENDER);
  json_object_set_string_member (plug, "pack_dir", job->pack_dir);
  json_object_set_string_member (plug, "device", job->device);
  json_object_set_string_member (plug, "backend", gfcg_context_get_backend (job->ctx));
  json_object_set_int_member (plug, "imagenet", job->req.imagenet);
  json_object_set_string_member (plug, "class_name", gfcg_classes_name (job->req.imagenet));
  json_object_set_int_member (plug, "seed", (gint64) (job->req.options.seed + (guint64) j));
  cmd = command_line (job, job->req.options.seed + (guint64) j);
  json_object_set_string_member (plug, "command", cmd);
  g_free (cmd);
  if (job->engine_source != NULL)
    {
      /* What the picture started from: which layer and which part of it. */
      const GfcgSourceRegion *r = job->source;
      JsonObject *src = json_object_new ();

      json_object_set_string_member (src, "kind", r->kind == GFCG_SOURCE_SELECTION ? "selection"
                                                                                   : "layer");
      json_object_set_int_member (src, "x", r->x);
      json_object_set_int_member (src, "y", r->y);
      json_object_set_int_member (src, "width", r->width);
      json_object_set_int_member (src, "height", r->height);
      json_object_set_double_member (src, "strength", job->req.options.strength);
      json_object_set_boolean_member (src, "masked", r->mask != NULL);
      json_object_set_object_member (plug, "source", src);
    }
  json_object_set_object_member (obj, "plugin", plug);
  out = gfcg_json_to_data (root, FALSE, NULL);
  json_node_unref (root);
  return out;
}
