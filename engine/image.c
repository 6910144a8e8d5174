/* image.c — a finished picture (GfcgImage): its pixels, the raw sample,
 * the per-evaluation trace and the trace as JSON (written with the
 * project's own JSON writer, valid on every json-glib). */
#include "gfcg-private.h"
#include "gfcg/gfcg-json.h"

#include <math.h>
#include <string.h>

void
gfcg_to_rgb8 (const float *chw, int channels, int h, int w, guchar *rgb)
{
  gsize hw = (gsize) h * w;
  for (gsize p = 0; p < hw; p++)
    for (int c = 0; c < 3; c++)
      {
        double v = chw[(gsize) MIN (c, channels - 1) * hw + p] * 127.5 + 127.5;
        /* Casting NaN to an integer is undefined: black, as CLAMP gives -inf. */
        rgb[p * 3 + c] = isnan (v) ? 0 : (guchar) CLAMP (round (v), 0.0, 255.0);
      }
}

void
gfcg_image_free (GfcgImage *img)
{
  if (img == NULL)
    return;
  g_array_unref (img->trace);
  g_free (img->rgb);
  g_free (img->raw);
  g_free (img->pack_name);
  g_free (img->device);
  g_free (img->backend);
  g_free (img->class_name);
  g_free (img);
}

int gfcg_image_get_width (const GfcgImage *i) { return i->width; }

int gfcg_image_get_height (const GfcgImage *i) { return i->height; }

const guchar *gfcg_image_get_pixels (const GfcgImage *i) { return i->rgb; }

int gfcg_image_get_n_steps (const GfcgImage *i) { return (int) i->trace->len; }

int gfcg_image_get_nfe (const GfcgImage *i) { return i->nfe; }

double gfcg_image_get_seconds (const GfcgImage *i) { return i->seconds; }

const float *
gfcg_image_get_raw (const GfcgImage *i, int *channels, int *height, int *width)
{
  if (channels)
    *channels = i->channels;
  if (height)
    *height = i->raw_size;
  if (width)
    *width = i->raw_size;
  return i->raw;
}

const GfcgStepInfo *
gfcg_image_get_step (const GfcgImage *i, int eval)
{
  if (eval < 0 || (guint) eval >= i->trace->len)
    return NULL;
  return &g_array_index (i->trace, GfcgStepInfo, eval);
}

static void
add_double (JsonBuilder *b, const char *key, double v)
{
  json_builder_set_member_name (b, key);
  json_builder_add_double_value (b, v);
}

static void
add_int (JsonBuilder *b, const char *key, gint64 v)
{
  json_builder_set_member_name (b, key);
  json_builder_add_int_value (b, v);
}

char *
gfcg_image_get_trace_json (const GfcgImage *img)
{
  const GfcgSampleOptions *o = &img->options;
  JsonBuilder *b = json_builder_new ();
  JsonNode *root;
  char *out;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "engine");
  json_builder_add_string_value (b, "gfcg " GFCG_VERSION);
  json_builder_set_member_name (b, "pack");
  json_builder_add_string_value (b, img->pack_name);
  /* The arithmetic changes the numbers (cpu:bf16, opencl:N:fp16): a
   * picture says what drew it. */
  json_builder_set_member_name (b, "device");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "requested");
  json_builder_add_string_value (b, img->device != NULL ? img->device : "");
  json_builder_set_member_name (b, "backend");
  json_builder_add_string_value (b, img->backend != NULL ? img->backend : "");
  json_builder_set_member_name (b, "precision");
  json_builder_add_string_value (b, gfcg_precision_name (img->precision));
  json_builder_end_object (b);
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, gfcg_mode_to_string (o->mode));
  add_int (b, "seed", (gint64) o->seed);
  json_builder_set_member_name (b, "class");
  json_builder_begin_object (b);
  add_int (b, "index", o->class_index);
  add_int (b, "imagenet", img->imagenet);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, img->class_name);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "options");
  json_builder_begin_object (b);
  add_int (b, "steps", o->steps);
  add_double (b, "sigma_min", o->sigma_min);
  add_double (b, "sigma_max", o->sigma_max);
  add_double (b, "rho", o->rho);
  add_double (b, "guidance", o->guidance);
  add_double (b, "s_max", o->s_max);
  add_double (b, "temperature", o->temperature);
  add_double (b, "sigma_lo", o->sigma_lo);
  add_double (b, "sigma_hi", o->sigma_hi);
  json_builder_set_member_name (b, "lagged");
  json_builder_add_boolean_value (b, o->lagged);
  add_double (b, "strength", o->strength);
  json_builder_set_member_name (b, "gfcg_view");
  json_builder_add_string_value (b, gfcg_view_to_string (o->view));
  add_int (b, "classify_every", MAX (o->classify_every, 1));
  json_builder_end_object (b);
  /* Where the run started: from noise, or from a source picture. */
  json_builder_set_member_name (b, "source");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "init");
  json_builder_add_boolean_value (b, img->has_init);
  json_builder_set_member_name (b, "mask");
  json_builder_add_boolean_value (b, img->has_mask);
  add_int (b, "start_step", img->first_step);
  add_double (b, "start_sigma", img->first_sigma);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "evaluations");
  json_builder_begin_array (b);
  for (guint i = 0; i < img->trace->len; i++)
    {
      const GfcgStepInfo *s = &g_array_index (img->trace, GfcgStepInfo, i);
      json_builder_begin_object (b);
      add_int (b, "step", s->step);
      json_builder_set_member_name (b, "stage");
      json_builder_add_string_value (b, s->stage == 0 ? "euler" : "heun");
      add_double (b, "sigma", s->sigma);
      json_builder_set_member_name (b, "classified");
      json_builder_add_boolean_value (b, s->classified);
      add_int (b, "c_ref", s->c_ref);
      add_double (b, "p_c", s->p_c);
      add_double (b, "p_ref", s->p_ref);
      add_double (b, "r", s->r);
      add_double (b, "a", s->a);
      add_double (b, "s", s->s);
      add_int (b, "nfe", s->nfe);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "final");
  json_builder_begin_object (b);
  add_int (b, "top1", img->final_top1);
  add_double (b, "p_target", img->final_p_target);
  json_builder_end_object (b);
  add_int (b, "nfe", img->nfe);
  add_double (b, "seconds", img->seconds);
  /* Where the seconds went: the networks by role, GFCG's view (preview
   * decoder) and classifier, previews, the final decode and verdict. */
  json_builder_set_member_name (b, "timing");
  json_builder_begin_object (b);
  add_double (b, "main_s", img->times.main);
  add_double (b, "guide_s", img->times.guide);
  add_double (b, "uncond_s", img->times.uncond);
  add_double (b, "view_s", img->times.view);
  add_double (b, "classify_s", img->times.classify);
  add_int (b, "classifications", img->times.n_classified);
  add_double (b, "preview_s", img->times.preview);
  add_double (b, "decode_s", img->times.decode);
  add_double (b, "verdict_s", img->times.verdict);
  json_builder_end_object (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  out = gfcg_json_to_data (root, TRUE, NULL);
  json_node_unref (root);
  g_object_unref (b);
  return out;
}
