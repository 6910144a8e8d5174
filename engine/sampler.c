/* sampler.c — EDM2's deterministic Heun sampler with every guidance mode of
 * docs/pack-format.md ("Guided prediction").  The sampler's state is a few
 * thousand floats per image, so it lives on the host; the networks run on
 * the context's backend. */
#include "gfcg-private.h"
#include "gfcg/gfcg-json.h"

#include <math.h>
#include <string.h>

struct _GfcgImage
{
  int           width, height, channels, steps, nfe;
  int           raw_size;  /* network resolution: latent packs decode to width */
  guchar       *rgb;
  float        *raw;
  GArray       *trace; /* GfcgStepInfo */
  GfcgSampleOptions options;
  char         *pack_name;
  int           imagenet;
  char         *class_name;
  int           final_top1;
  double        final_p_target;
  double        seconds;
};

/* ---- options --------------------------------------------------------------- */

/* The pack's default CFG/ATG weight for a mode.  NVIDIA's presets tune the
 * two separately (EDM2-S at 512: w 1.4 against the unconditional net, 2.1
 * against the guide), so pack.json may give "guidance_cfg" for cfg and
 * gfcg+cfg and "guidance_atg" for the autoguidance modes; "guidance" is the
 * fallback for both. */
double
gfcg_pack_get_guidance (const GfcgPack *pack, GfcgMode mode)
{
  if (pack == NULL)
    return 1.0;
  if ((mode == GFCG_MODE_CFG || mode == GFCG_MODE_GFCG_CFG) && !isnan (pack->guidance_cfg))
    return pack->guidance_cfg;
  if ((mode == GFCG_MODE_ATG || mode == GFCG_MODE_GFCG_ATG || mode == GFCG_MODE_GFCG_ATG_ADD) &&
      !isnan (pack->guidance_atg))
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
}

static gboolean
mode_uses_gfcg (GfcgMode m)
{
  return m == GFCG_MODE_GFCG || m == GFCG_MODE_GFCG_CFG || m == GFCG_MODE_GFCG_ATG ||
         m == GFCG_MODE_GFCG_ATG_ADD;
}

static gboolean
mode_uses_guide (GfcgMode m)
{
  return m == GFCG_MODE_ATG || m == GFCG_MODE_GFCG_ATG || m == GFCG_MODE_GFCG_ATG_ADD;
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

gboolean
gfcg_sample_options_validate (const GfcgSampleOptions *o, const GfcgPack *pack, GError **error)
{
  if (o->mode < 0 || o->mode >= GFCG_N_MODES)
    return invalid (error, "unknown guidance mode (none, cfg, atg, gfcg, gfcg+cfg, gfcg+atg, gfcg+atg-add)");
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
  if (pack == NULL)
    return TRUE;
  if (o->class_index < 0 || o->class_index >= pack->n_classes)
    return invalid (error, "class %d is out of range: pack '%s' has classes 0..%d",
                    o->class_index, pack->name, pack->n_classes - 1);
  if (mode_uses_gfcg (o->mode) && pack->classifier == NULL)
    return invalid (error, "mode %s needs a classifier, and pack '%s' has none",
                    gfcg_mode_to_string (o->mode), pack->name);
  if (mode_uses_guide (o->mode) && pack->guide == NULL)
    return invalid (error, "mode %s needs a guide network, and pack '%s' has none",
                    gfcg_mode_to_string (o->mode), pack->name);
  if (strcmp (pack->kind, "latent") == 0 && pack->decoder == NULL)
    return invalid (error, "pack '%s' is a latent pack without a 'decoder' component: it cannot "
                    "make pictures (gfcg denoise works; converters/convert-edm2 --vae adds one)",
                    pack->name);
  return TRUE;
}

/* ---- classification ---------------------------------------------------------- */

/* Softmax over the pack's classes of logits / T (double precision). */
static void
pack_softmax (GfcgPack *pack, const float *logits, double t, double *p)
{
  double mx = -INFINITY, sum = 0.0;
  gboolean inet = classifier_imagenet_space (pack->classifier);
  for (int k = 0; k < pack->n_classes; k++)
    {
      p[k] = logits[inet ? pack->classes[k].imagenet : k] / t;
      mx = MAX (mx, p[k]);
    }
  for (int k = 0; k < pack->n_classes; k++)
    sum += (p[k] = exp (p[k] - mx));
  for (int k = 0; k < pack->n_classes; k++)
    p[k] /= sum;
}

static gboolean
classify_probs (GfcgPack *pack, int n, int h, int w, const float *x, double t, double *p,
                GError **error)
{
  int no = classifier_n_outputs (pack->classifier);
  float *logits = g_new (float, (gsize) n * no);
  gboolean ok = gfcg_pack_classify (pack, n, h, w, x, logits, error) >= 0;
  for (int i = 0; ok && i < n; i++)
    pack_softmax (pack, logits + (gsize) i * no, t, p + (gsize) i * pack->n_classes);
  g_free (logits);
  return ok;
}

gboolean
gfcg_pack_class_probs (GfcgPack *pack, int n, int h, int w, const float *x, float *probs,
                       GError **error)
{
  double *p;
  gboolean ok;
  if (pack->classifier == NULL)
    return invalid (error, "pack '%s' has no classifier", pack->name);
  p = g_new (double, (gsize) n * pack->n_classes);
  ok = classify_probs (pack, n, h, w, x, 1.0, p, error);
  for (gsize i = 0; ok && i < (gsize) n * pack->n_classes; i++)
    probs[i] = (float) p[i];
  g_free (p);
  return ok;
}

/* ---- one guided evaluation ---------------------------------------------------- */

typedef struct
{
  GfcgPack                *pack;
  const GfcgSampleOptions *o;
  gsize                    per;     /* floats per image */
  int                      n_classes;
  float                   *buf;     /* scratch: up to 3 network inputs/outputs */
  double                  *probs;
  /* Lagged reference: what the previous evaluation's classification gave. */
  gboolean                 lag_valid;
  GfcgStepInfo             lag;
} Sampler;

static const char *
net_name (const GfcgPack *pack, const Edm2Net *net)
{
  return net == pack->main ? "main" : net == pack->guide ? "guide" : "uncond";
}

static gboolean
all_finite (const float *v, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!isfinite (v[i]))
      return FALSE;
  return TRUE;
}

/* A NaN or infinity from a network would run on through the schedule and
 * come out as a black picture (and undefined casts): stop at the first,
 * naming the evaluation (1-based, as the progress lines count) and what
 * produced it. */
static gboolean
check_finite (Sampler *s, const GfcgStepInfo *info, const float *v, gsize n, const char *what,
              GError **error)
{
  if (all_finite (v, n))
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
               "%s gave non-finite values at evaluation %d of %d (step %d, %s, sigma %g): "
               "the pack's weights or the options overflow", what, 2 * info->step + info->stage + 1,
               2 * s->o->steps - 1, info->step, info->stage == 0 ? "euler" : "heun", info->sigma);
  return FALSE;
}

typedef struct
{
  Edm2Net *net;
  float   *label;  /* label_dim floats, NULL = zero label */
  double   coef;   /* weight of (x_c - D) in the prediction; 0 = skipped */
  float   *out;
} Term;

/* Runs the terms that share a network as one batch. */
static gboolean
run_terms (Sampler *s, Term *terms, int n, const float *x, const GfcgStepInfo *info, int *nfe,
           GError **error)
{
  double sigma = info->sigma;
  for (int i = 0; i < n; i++)
    {
      Edm2Net *net = terms[i].net;
      int idx[4], k = 0, ld;
      float *xb, *lb, *ob;
      double *sg;
      gboolean ok;

      if (terms[i].out != NULL || net == NULL)
        continue;
      for (int j = i; j < n; j++)
        if (terms[j].net == net && terms[j].out == NULL)
          idx[k++] = j;
      ld = edm2_label_dim (net);
      xb = g_new (float, s->per * k);
      ob = g_new (float, s->per * k);
      lb = g_new0 (float, (gsize) MAX (ld, 1) * k);
      sg = g_new (double, k);
      for (int j = 0; j < k; j++)
        {
          memcpy (xb + j * s->per, x, s->per * sizeof (float));
          if (terms[idx[j]].label != NULL && ld > 0)
            memcpy (lb + (gsize) j * ld, terms[idx[j]].label, ld * sizeof (float));
          sg[j] = sigma;
        }
      ok = edm2_denoise (net, k, xb, sg, lb, ob, error);
      if (ok)
        {
          char *what = g_strdup_printf ("network '%s'", net_name (s->pack, net));
          ok = check_finite (s, info, ob, s->per * k, what, error);
          g_free (what);
        }
      for (int j = 0; ok && j < k; j++)
        {
          terms[idx[j]].out = g_new (float, s->per);
          memcpy (terms[idx[j]].out, ob + j * s->per, s->per * sizeof (float));
        }
      *nfe += k;
      g_free (xb);
      g_free (ob);
      g_free (lb);
      g_free (sg);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static float *
onehot (Sampler *s, int k)
{
  float *v = g_new0 (float, s->n_classes);
  v[k] = 1.0f;
  return v;
}

/* Classifies x_c and fills c_ref, p_c, p_ref, r, a, s of info.  Latent
 * packs show the classifier x_c through the preview decoder. */
static gboolean
gfcg_reference (Sampler *s, const float *x_c, GfcgStepInfo *info, GError **error)
{
  int c = s->o->class_index, best = -1, size;
  double *p = s->probs;
  float *pic = pack_picture (s->pack, TRUE, 1, x_c, &size, error);
  gboolean ok = pic != NULL &&
                classify_probs (s->pack, 1, size, size, pic, s->o->temperature, p, error);

  pack_picture_free (x_c, pic);
  if (!ok)
    return FALSE;
  for (int k = 0; k < s->n_classes; k++)
    if (k != c && (best < 0 || p[k] > p[best]))
      best = k;
  info->classified = TRUE;
  info->c_ref = best;
  info->p_c = p[c];
  info->p_ref = best >= 0 ? p[best] : 0.0;
  info->r = info->p_c + info->p_ref > 0.0 ? info->p_ref / (info->p_c + info->p_ref) : 0.0;
  info->a = MIN (1.0, 2.0 * info->r);
  info->s = s->o->s_max * info->a;
  if (best < 0) /* a one-class pack has no competitor */
    info->a = info->s = 0.0;
  return TRUE;
}

static gboolean
guided_eval (Sampler *s, const float *x, double sigma, GfcgStepInfo *info, float *pred,
             GError **error)
{
  const GfcgSampleOptions *o = s->o;
  GfcgPack *pack = s->pack;
  GfcgMode m = o->mode;
  gboolean window = sigma >= o->sigma_lo && sigma <= o->sigma_hi;
  gboolean gfcg = mode_uses_gfcg (m), cfg = (m == GFCG_MODE_CFG || m == GFCG_MODE_GFCG_CFG);
  double wm1 = o->guidance - 1.0;
  Term t[4] = { { 0 } };
  int n = 0, i_ref = -1;
  GfcgStepInfo cur = { 0 };
  gboolean ok = TRUE;

  info->sigma = sigma;
  info->c_ref = -1;
  info->nfe = 0;
  info->classified = FALSE;
  info->p_c = info->p_ref = info->r = info->a = info->s = 0.0;

  /* Term 0 is x_c itself. */
  t[n++] = (Term) { pack->main, onehot (s, o->class_index), 0.0, NULL };
  if (cfg && wm1 != 0.0)
    t[n++] = (Term) { pack->uncond != NULL ? pack->uncond : pack->main, NULL, wm1, NULL };
  if ((m == GFCG_MODE_ATG || m == GFCG_MODE_GFCG_ATG_ADD) && wm1 != 0.0)
    t[n++] = (Term) { pack->guide, onehot (s, o->class_index), wm1, NULL };

  if (gfcg && o->lagged)
    {
      /* The reference is known before any network runs: one batch. */
      if (window && s->lag_valid)
        {
          int step = info->step, stage = info->stage;
          *info = s->lag;
          info->step = step;
          info->stage = stage;
          info->sigma = sigma;
          info->classified = FALSE;
          info->nfe = 0;
        }
    }
  else
    {
      ok = run_terms (s, t, n, x, info, &info->nfe, error);
      if (ok && gfcg && window)
        ok = gfcg_reference (s, t[0].out, info, error);
    }

  if (ok && gfcg)
    {
      if (m == GFCG_MODE_GFCG_ATG)
        {
          double a = info->c_ref >= 0 ? info->a : 0.0;
          float *y = onehot (s, o->class_index);
          if (info->c_ref >= 0)
            {
              y[o->class_index] = (float) (1.0 - a);
              y[info->c_ref] += (float) a;
            }
          if (wm1 + info->s != 0.0)
            t[n++] = (Term) { pack->guide, y, wm1 + info->s, NULL };
          else
            g_free (y);
        }
      else if (info->s != 0.0 && info->c_ref >= 0)
        {
          i_ref = n;
          t[n++] = (Term) { pack->main, onehot (s, info->c_ref), info->s, NULL };
        }
      ok = run_terms (s, t, n, x, info, &info->nfe, error);
      if (ok && o->lagged)
        {
          /* Classify this evaluation's x_c for the next one. */
          s->lag_valid = FALSE;
          if (window)
            {
              cur = *info;
              ok = gfcg_reference (s, t[0].out, &cur, error);
              s->lag = cur;
              s->lag_valid = ok;
              info->classified = ok;
            }
        }
    }
  else if (ok)
    ok = run_terms (s, t, n, x, info, &info->nfe, error);
  (void) i_ref;

  if (ok)
    for (gsize e = 0; e < s->per; e++)
      {
        double xc = t[0].out[e], v = xc;
        for (int j = 1; j < n; j++)
          v += t[j].coef * (xc - t[j].out[e]);
        pred[e] = (float) v;
      }
  /* Finite outputs can still combine to infinity under a large weight. */
  if (ok)
    ok = check_finite (s, info, pred, s->per, "the guided prediction", error);
  for (int j = 0; j < n; j++)
    {
      g_free (t[j].label);
      g_free (t[j].out);
    }
  return ok;
}

/* ---- the sampler ------------------------------------------------------------- */

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

static double
sigma_at (const GfcgSampleOptions *o, int i)
{
  double a, b;
  if (i >= o->steps)
    return 0.0;
  if (o->steps == 1)
    return o->sigma_max;
  a = pow (o->sigma_max, 1.0 / o->rho);
  b = pow (o->sigma_min, 1.0 / o->rho);
  return pow (a + (double) i / (o->steps - 1) * (b - a), o->rho);
}

static gboolean
report (GfcgPack *pack, const GfcgSampleOptions *o, GfcgProgressFunc cb, gpointer data,
        int eval, const GfcgStepInfo *info, const float *pred, GError **error)
{
  gboolean go = TRUE;
  int n_evals = 2 * o->steps - 1;
  gboolean skip = o->no_previews || (o->preview_every > 1 && eval % o->preview_every != 0 &&
                                     eval != n_evals - 1);
  if (cb != NULL && skip)
    {
      GfcgProgress p = { eval, 2 * o->steps - 1, info, NULL, 0, 0 };
      go = cb (&p, data);
    }
  else if (cb != NULL)
    {
      int size, c = strcmp (pack->kind, "latent") == 0 ? 3 : pack->channels;
      float *pic = pack_picture (pack, TRUE, 1, pred, &size, error);
      guchar *rgb;
      GfcgProgress p = { eval, 2 * o->steps - 1, info, NULL, size, size };
      if (pic == NULL)
        return FALSE;
      rgb = g_new (guchar, (gsize) size * size * 3);
      gfcg_to_rgb8 (pic, c, size, size, rgb);
      pack_picture_free (pred, pic);
      p.preview = rgb;
      go = cb (&p, data);
      g_free (rgb);
    }
  if (go && !g_cancellable_is_cancelled (o->cancellable))
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "cancelled at evaluation %d of %d",
               eval + 1, 2 * o->steps - 1);
  return FALSE;
}

GfcgImage *
gfcg_sample (GfcgPack *pack, const GfcgSampleOptions *o, GfcgProgressFunc progress,
             gpointer user_data, GError **error)
{
  int c = pack->channels, res = edm2_resolution (pack->main), eval = 0, size = 0;
  gsize per = (gsize) c * res * res;
  float *x, *d, *pred, *xn, *pic = NULL;
  Sampler s = { 0 };
  GfcgImage *img = NULL;
  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = TRUE;

  if (!gfcg_sample_options_validate (o, pack, error))
    return NULL;
  /* Stop requests reach into the networks too (a 512-px decode is long). */
  pack->ctx->be->cancel = o->cancellable;
  s.pack = pack;
  s.o = o;
  s.per = per;
  s.n_classes = pack->n_classes;
  s.probs = g_new (double, pack->n_classes);

  img = g_new0 (GfcgImage, 1);
  img->trace = g_array_new (FALSE, TRUE, sizeof (GfcgStepInfo));
  x = g_new (float, per);
  d = g_new (float, per);
  pred = g_new (float, per);
  xn = g_new (float, per);

  gfcg_rng_normal (o->seed, x, per);
  for (gsize e = 0; e < per; e++)
    x[e] = (float) (x[e] * sigma_at (o, 0));

  for (int i = 0; i < o->steps && ok; i++)
    {
      double t_cur = sigma_at (o, i), t_next = sigma_at (o, i + 1);
      GfcgStepInfo info = { .step = i, .stage = 0 };

      ok = guided_eval (&s, x, t_cur, &info, pred, error);
      if (!ok)
        break;
      img->nfe += info.nfe;
      g_array_append_val (img->trace, info);
      ok = report (pack, o, progress, user_data, eval++, &info, pred, error);
      for (gsize e = 0; e < per; e++)
        {
          d[e] = (float) ((x[e] - (double) pred[e]) / t_cur);
          xn[e] = (float) (x[e] + (t_next - t_cur) * (double) d[e]);
        }
      if (ok && i < o->steps - 1)
        {
          GfcgStepInfo info2 = { .step = i, .stage = 1 };
          ok = guided_eval (&s, xn, t_next, &info2, pred, error);
          if (!ok)
            break;
          img->nfe += info2.nfe;
          g_array_append_val (img->trace, info2);
          ok = report (pack, o, progress, user_data, eval++, &info2, pred, error);
          for (gsize e = 0; e < per; e++)
            {
              double d2 = (xn[e] - (double) pred[e]) / t_next;
              xn[e] = (float) (x[e] + (t_next - t_cur) * (0.5 * d[e] + 0.5 * d2));
            }
        }
      memcpy (x, xn, per * sizeof (float));
    }

  /* The final picture: latent packs through the full decoder. */
  if (ok && (pic = pack_picture (pack, FALSE, 1, x, &size, error)) == NULL)
    ok = FALSE;
  if (ok && pic != x && !all_finite (pic, (gsize) 3 * size * size))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "the decoder gave non-finite values for the final picture");
      ok = FALSE;
    }
  if (ok)
    {
      gboolean latent = pic != x;
      img->width = img->height = size;
      img->raw_size = res;
      img->channels = c;
      img->steps = o->steps;
      img->options = *o;
      img->options.cancellable = NULL;
      img->raw = g_memdup2 (x, per * sizeof (float));
      img->rgb = g_new (guchar, (gsize) size * size * 3);
      gfcg_to_rgb8 (pic, latent ? 3 : c, size, size, img->rgb);
      img->pack_name = g_strdup (pack->name);
      img->imagenet = pack->classes[o->class_index].imagenet;
      img->class_name = g_strdup (pack->classes[o->class_index].name);
      img->final_top1 = -1;
      if (pack->classifier != NULL)
        {
          ok = classify_probs (pack, 1, size, size, pic, 1.0, s.probs, error);
          for (int k = 0; ok && k < pack->n_classes; k++)
            if (img->final_top1 < 0 || s.probs[k] > s.probs[img->final_top1])
              img->final_top1 = k;
          img->final_p_target = ok ? s.probs[o->class_index] : 0.0;
        }
      img->seconds = (g_get_monotonic_time () - t0) / 1e6;
    }
  if (pic != NULL)
    pack_picture_free (x, pic);
  if (!ok)
    g_clear_pointer (&img, gfcg_image_free);
  g_free (x);
  g_free (d);
  g_free (pred);
  g_free (xn);
  g_free (s.probs);
  pack->ctx->be->cancel = NULL;
  return img;
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
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  out = gfcg_json_to_data (root, TRUE, NULL);
  json_node_unref (root);
  g_object_unref (b);
  return out;
}
