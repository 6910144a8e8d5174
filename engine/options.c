/* options.c — the sampling options: the built-in defaults, the pack's
 * (pack.json "defaults", read at load time), their documented ranges, and
 * the one validation that the command line, pack.json and the plug-in all
 * go through. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

/* pack.json "defaults" over the built-in options.  Option values must be
 * valid, with the same ranges as the command's and the plug-in's: checked
 * now, not mid-run (whether the mode suits the components is checked when
 * sampling).  Errors name the key; the caller adds the file. */
static gboolean
read_defaults (GfcgPack *pack, JsonObject *o, const char *w, GError **error)
{
  GfcgSampleOptions *d = &pack->defaults;
  const char *mode, *view;

  if (!cfg_int (o, "steps", d->steps, FALSE, G_MININT, G_MAXINT, &d->steps, w, error) ||
      !cfg_double (o, "sigma_min", d->sigma_min, FALSE, &d->sigma_min, w, error) ||
      !cfg_double (o, "sigma_max", d->sigma_max, FALSE, &d->sigma_max, w, error) ||
      !cfg_double (o, "rho", d->rho, FALSE, &d->rho, w, error) ||
      !cfg_double (o, "guidance", d->guidance, FALSE, &d->guidance, w, error) ||
      !cfg_double (o, "guidance_cfg", NAN, FALSE, &pack->guidance_cfg, w, error) ||
      !cfg_double (o, "guidance_atg", NAN, FALSE, &pack->guidance_atg, w, error) ||
      !cfg_double (o, "s_max", d->s_max, FALSE, &d->s_max, w, error) ||
      !cfg_double (o, "temperature", d->temperature, FALSE, &d->temperature, w, error) ||
      !cfg_double (o, "sigma_lo", d->sigma_lo, FALSE, &d->sigma_lo, w, error) ||
      !cfg_double (o, "sigma_hi", d->sigma_hi, FALSE, &d->sigma_hi, w, error) ||
      !cfg_bool (o, "lagged", d->lagged, &d->lagged, w, error) ||
      !cfg_int (o, "classify_every", d->classify_every, FALSE, 1, 1000, &d->classify_every, w,
                error) ||
      !cfg_string (o, "gfcg_view", NULL, FALSE, &view, w, error) ||
      !cfg_string (o, "mode", NULL, FALSE, &mode, w, error))
    return FALSE;
  if (view != NULL && !gfcg_view_from_string (view, &d->view))
    return cfg_error (error, w, "gfcg_view", "must be \"full\" or \"half\"");
  if (mode != NULL && !gfcg_mode_from_string (mode, &d->mode))
    {
      char *names = gfcg_mode_list (", ");
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'mode' is '%s': unknown guidance "
                   "mode (%s)", w, mode, names);
      g_free (names);
      return FALSE;
    }
  return TRUE;
}

/* pack.json "defaults" over the built-in options.  Their values must be
 * valid, within the same ranges as the command's and the plug-in's options:
 * checked now, not mid-run (whether the mode suits the components is checked
 * when sampling). */
gboolean
pack_load_defaults (GfcgPack *pack, JsonObject *root, const char *path, GError **error)
{
  JsonNode *n = json_object_get_member (root, "defaults");
  char *w = g_strdup_printf ("%s: defaults", path);
  GError *err = NULL;
  gboolean ok;

  gfcg_sample_options_init (&pack->defaults, NULL);
  if (pack->classifier == NULL)
    pack->defaults.mode = GFCG_MODE_NONE;
  pack->guidance_cfg = pack->guidance_atg = NAN;
  if (n != NULL && !JSON_NODE_HOLDS_OBJECT (n))
    ok = cfg_error (error, path, "defaults", "must be an object");
  else
    ok = n == NULL || read_defaults (pack, json_node_get_object (n), w, error);
  if (ok &&
      !(gfcg_sample_options_validate (&pack->defaults, NULL, &err) &&
        (isnan (pack->guidance_cfg) ||
         sample_option_check ("guidance_cfg", "guidance", pack->guidance_cfg, &err)) &&
        (isnan (pack->guidance_atg) ||
         sample_option_check ("guidance_atg", "guidance", pack->guidance_atg, &err))))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: %s", w, err->message);
      g_error_free (err);
      ok = FALSE;
    }
  g_free (w);
  return ok;
}

/* The pack's default CFG/ATG weight for a mode.  NVIDIA's presets tune the
 * two separately (EDM2-S at 512: w 1.4 against the unconditional net, 2.1
 * against the guide), so pack.json may give "guidance_cfg" for cfg and
 * gfcg+cfg and "guidance_atg" for the autoguidance modes; "guidance" is the
 * fallback for both. */
double
gfcg_pack_get_guidance (const GfcgPack *pack, GfcgMode mode)
{
  const GfcgModeInfo *m = gfcg_mode_get_info (mode);
  if (pack == NULL)
    return 1.0;
  if (m != NULL && m->weight == GFCG_WEIGHT_CFG && !isnan (pack->guidance_cfg))
    return pack->guidance_cfg;
  if (m != NULL && m->weight == GFCG_WEIGHT_ATG && !isnan (pack->guidance_atg))
    return pack->guidance_atg;
  return pack->defaults.guidance;
}

void
gfcg_sample_options_init (GfcgSampleOptions *o, const GfcgPack *pack)
{
  if (pack != NULL)
    {
      /* Read and checked when the pack was loaded (pack.c). */
      *o = pack->defaults;
      o->guidance = gfcg_pack_get_guidance (pack, o->mode);
      return;
    }
  memset (o, 0, sizeof *o);
  o->mode = GFCG_MODE_GFCG;
  o->steps = 32;
  o->sigma_min = 0.002;
  o->sigma_max = 80.0;
  o->rho = 7.0;
  o->guidance = 1.0;
  o->s_max = 1.0;
  o->temperature = 1.0;
  o->sigma_lo = 0.0;
  o->sigma_hi = 1000.0;
  o->lagged = FALSE;
  o->strength = 1.0;
  o->view = GFCG_VIEW_FULL;
  o->classify_every = 1;
}

static const char *const view_names[GFCG_N_VIEWS] = { "full", "half" };

const char *
gfcg_view_to_string (GfcgView view)
{
  return view >= 0 && view < GFCG_N_VIEWS ? view_names[view] : NULL;
}

gboolean
gfcg_view_from_string (const char *name, GfcgView *view)
{
  for (int v = 0; name != NULL && v < GFCG_N_VIEWS; v++)
    if (g_ascii_strcasecmp (name, view_names[v]) == 0)
      {
        *view = (GfcgView) v;
        return TRUE;
      }
  return FALSE;
}

static gboolean
invalid (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  char *msg;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, msg);
  g_free (msg);
  return FALSE;
}

/* The ranges of the real-valued options, closed intervals, the same for the
 * command, pack.json's defaults and the plug-in (docs/pack-format.md).
 * Finite and generous, but tight enough that the noise schedule
 * sigma_max^(1/rho) .. sigma_min^(1/rho) and the softmax over logits / T
 * stay finite and non-zero in double precision: rho 1e-300 made the
 * schedule inf and the run wrote a black picture, and below rho 1 the
 * ratio (sigma_max / sigma_min)^(1/rho) can pass 2^53, where the last
 * sigma a + (b - a) rounds to 0. */
typedef struct
{
  const char *name;
  gsize       offset;
  double      lo, hi;
} OptionRange;

#define RANGE(field, lo, hi) { #field, G_STRUCT_OFFSET (GfcgSampleOptions, field), lo, hi }
static const OptionRange option_ranges[] = {
  RANGE (sigma_min, 1e-5, 1e4),
  RANGE (sigma_max, 1e-5, 1e4),
  RANGE (rho, 1.0, 100.0),
  RANGE (guidance, 0.0, 100.0),
  RANGE (s_max, 0.0, 100.0),
  RANGE (temperature, 1e-3, 1e3),
  RANGE (sigma_lo, 0.0, 1e4),
  RANGE (sigma_hi, 0.0, 1e4),
  RANGE (strength, 0.0, 1.0),
};
#undef RANGE

static const OptionRange *
option_range (const char *field)
{
  for (guint i = 0; i < G_N_ELEMENTS (option_ranges); i++)
    if (strcmp (option_ranges[i].name, field) == 0)
      return &option_ranges[i];
  g_return_val_if_reached (NULL);
}

gboolean
sample_option_check (const char *name, const char *field, double v, GError **error)
{
  const OptionRange *r = option_range (field);
  /* Written so that NaN fails too. */
  if (r == NULL || (v >= r->lo && v <= r->hi))
    return TRUE;
  return invalid (error, "%s is %g: it must lie in [%g, %g]", name, v, r->lo, r->hi);
}

static gboolean source_arrays_check (const GfcgSampleOptions *o, const GfcgPack *pack,
                                     GError **error);

gboolean
gfcg_sample_options_validate (const GfcgSampleOptions *o, const GfcgPack *pack, GError **error)
{
  if (gfcg_mode_get_info (o->mode) == NULL)
    {
      char *names = gfcg_mode_list (", ");
      invalid (error, "unknown guidance mode (%s)", names);
      g_free (names);
      return FALSE;
    }
  if (o->steps < 1 || o->steps > 1000)
    return invalid (error, "steps is %d: it must lie in 1..1000", o->steps);
  for (guint i = 0; i < G_N_ELEMENTS (option_ranges); i++)
    {
      const OptionRange *r = &option_ranges[i];
      if (!sample_option_check (r->name, r->name, G_STRUCT_MEMBER (double, o, r->offset), error))
        return FALSE;
    }
  if (!(o->sigma_min < o->sigma_max))
    return invalid (error, "noise levels must satisfy sigma_min (%g) < sigma_max (%g)",
                    o->sigma_min, o->sigma_max);
  if (!(o->sigma_lo <= o->sigma_hi))
    return invalid (error, "the GFCG window [%g, %g] is not a valid interval (sigma_lo > "
                    "sigma_hi)", o->sigma_lo, o->sigma_hi);
  if (o->preview_every < 0)
    return invalid (error, "preview_every is %d: it must be >= 0", o->preview_every);
  if (gfcg_view_to_string (o->view) == NULL)
    return invalid (error, "unknown classifier view %d (full, half)", (int) o->view);
  if (o->classify_every < 0 || o->classify_every > 1000)
    return invalid (error, "classify_every is %d: it must lie in 1..1000", o->classify_every);
  if (o->init == NULL && o->mask != NULL)
    return invalid (error, "a mask needs a source picture (init) to keep");
  if (o->init == NULL && o->strength < 1.0)
    return invalid (error, "strength %g needs a source picture (init) to start from; without "
                    "one it must be 1", o->strength);
  if (pack == NULL)
    return TRUE;
  if (o->class_index < 0 || o->class_index >= pack->n_classes)
    return invalid (error, "class %d is out of range: pack '%s' has classes 0..%d",
                    o->class_index, pack->name, pack->n_classes - 1);
  if (!gfcg_pack_supports_mode (pack, o->mode, error))
    return FALSE;
  if (pack->kind == PACK_LATENT && pack->decoder == NULL)
    return invalid (error, "pack '%s' is a latent pack without a 'decoder' component: it cannot "
                    "make pictures (gfcg denoise works; converters/convert-edm2 --vae adds one)",
                    pack->name);
  return source_arrays_check (o, pack, error);
}

/* The source arrays of o, sized by the pack's main network: init finite,
 * mask within [0, 1]. */
static gboolean
source_arrays_check (const GfcgSampleOptions *o, const GfcgPack *pack, GError **error)
{
  const DenoiserInfo *m = denoiser_info (pack->main);
  gsize hw = (gsize) m->resolution * m->resolution;

  if (o->init != NULL && !values_finite (o->init, hw * m->channels))
    return invalid (error, "the source picture (init) holds values that are not finite");
  for (gsize i = 0; o->mask != NULL && i < hw; i++)
    if (!(o->mask[i] >= 0.0f && o->mask[i] <= 1.0f))
      return invalid (error, "mask value %g at (%d, %d): a mask lies in [0, 1]",
                      (double) o->mask[i], (int) (i % m->resolution), (int) (i / m->resolution));
  return TRUE;
}

gboolean
gfcg_pack_supports_mode (const GfcgPack *pack, GfcgMode mode, GError **error)
{
  const GfcgModeInfo *m = gfcg_mode_get_info (mode);
  if (m == NULL)
    return invalid (error, "unknown guidance mode %d", (int) mode);
  if ((m->needs & GFCG_NEEDS_CLASSIFIER) && pack->classifier == NULL)
    return invalid (error, "mode %s needs a classifier, and pack '%s' has none", m->name,
                    pack->name);
  if ((m->needs & GFCG_NEEDS_GUIDE) && pack->guide == NULL)
    return invalid (error, "mode %s needs a guide network, and pack '%s' has none", m->name,
                    pack->name);
  return TRUE;
}
