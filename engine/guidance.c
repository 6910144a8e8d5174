/* guidance.c — one guided prediction (docs/pack-format.md, "Guided
 * prediction"): the terms of the chosen mode (engine/modes.c), the networks
 * that share a batch, GFCG's reference class from the classifier, and the
 * combination x_c + sum coef (x_c - D_term). */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

struct _Guidance
{
  GfcgPack                *pack;
  const GfcgSampleOptions *o;
  gsize                    per;     /* floats per image */
  int                      n_classes;
  int                      first;   /* the run's first solver step */
  double                  *probs;
  float                   *shown;   /* with a mask: what the classifier sees */
  /* The held reference: what the last classification gave (lagged: for
   * the next evaluation; classify_every K: for the K - 1 after it). */
  gboolean                 lag_valid;
  GfcgStepInfo             lag;
  int                      n_window;  /* evaluations in the GFCG window so far */
  RunTimes                *times;
};

typedef struct
{
  Denoiser *net;
  float   *label;  /* label_dim floats, NULL = zero label */
  double   coef;   /* weight of (x_c - D) in the prediction; 0 = skipped */
  float   *out;
} Term;

static const char *
net_name (const GfcgPack *pack, const Denoiser *net)
{
  return net == pack->main ? "main" : net == pack->guide ? "guide" : "uncond";
}

static double *
net_time (Guidance *s, const Denoiser *net)
{
  return net == s->pack->main ? &s->times->main : net == s->pack->guide ? &s->times->guide
         : &s->times->uncond;
}

static double
seconds_since (gint64 t0)
{
  return (g_get_monotonic_time () - t0) / 1e6;
}

gboolean
values_finite (const float *v, gsize n)
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
check_finite (Guidance *s, const GfcgStepInfo *info, const float *v, gsize n, const char *what,
              GError **error)
{
  if (values_finite (v, n))
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
               "%s gave non-finite values at evaluation %d of %d (step %d, %s, sigma %g): "
               "the pack's weights or the options overflow", what,
               2 * (info->step - s->first) + info->stage + 1, sample_n_evals (s->o), info->step,
               info->stage == 0 ? "euler" : "heun", info->sigma);
  return FALSE;
}

/* Runs the terms that share a network as one batch. */
static gboolean
run_terms (Guidance *s, Term *terms, int n, const float *x, const GfcgStepInfo *info, int *nfe,
           GError **error)
{
  double sigma = info->sigma;
  for (int i = 0; i < n; i++)
    {
      Denoiser *net = terms[i].net;
      int idx[4], k = 0, ld;
      float *xb, *lb, *ob;
      double *sg;
      gboolean ok;

      if (terms[i].out != NULL || net == NULL)
        continue;
      for (int j = i; j < n; j++)
        if (terms[j].net == net && terms[j].out == NULL)
          idx[k++] = j;
      ld = denoiser_info (net)->label_dim;
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
      gint64 t0 = g_get_monotonic_time ();
      ok = denoiser_denoise (net, k, xb, sg, lb, ob, error);
      *net_time (s, net) += seconds_since (t0);
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
onehot (Guidance *s, int k)
{
  float *v = g_new0 (float, s->n_classes);
  v[k] = 1.0f;
  return v;
}

/* Classifies x_c and fills c_ref, p_c, p_ref, r, a, s of info.  Latent
 * packs show the classifier x_c through the preview decoder, in the
 * options' view (full or 2x pooled).  With a mask it sees the fill in its
 * surroundings: mask x_c + (1 - mask) init. */
static gboolean
gfcg_reference (Guidance *s, const float *x_c, GfcgStepInfo *info, GError **error)
{
  int c = s->o->class_index, best = -1, size;
  double *p = s->probs;
  float *pic;
  gboolean ok;
  gint64 t0 = g_get_monotonic_time ();

  if (s->o->mask != NULL)
    {
      sample_composite (s->o, s->pack->channels, s->per / s->pack->channels, x_c, s->shown);
      x_c = s->shown;
    }
  pic = pack_picture (s->pack, TRUE, s->o->view, 1, x_c, &size, error);
  s->times->view += seconds_since (t0);
  t0 = g_get_monotonic_time ();
  ok = pic != NULL && pack_class_probs (s->pack, 1, size, size, pic, s->o->temperature, p, error);
  s->times->classify += seconds_since (t0);
  s->times->n_classified++;
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

/* info takes the held reference (c_ref .. s), keeping its own step, stage,
 * sigma and nfe; it did not classify. */
static void
use_held (const Guidance *s, GfcgStepInfo *info)
{
  info->c_ref = s->lag.c_ref;
  info->p_c = s->lag.p_c;
  info->p_ref = s->lag.p_ref;
  info->r = s->lag.r;
  info->a = s->lag.a;
  info->s = s->lag.s;
  info->classified = FALSE;
}

/* Whether this in-window evaluation classifies: the first of every
 * classify_every (counted over the window, so that K = 1 is every one). */
static gboolean
classify_now (Guidance *s)
{
  int k = MAX (s->o->classify_every, 1);
  return s->n_window++ % k == 0 || !s->lag_valid;
}

gboolean
guidance_eval (Guidance *s, const float *x, double sigma, GfcgStepInfo *info, float *pred,
             GError **error)
{
  const GfcgSampleOptions *o = s->o;
  GfcgPack *pack = s->pack;
  const GfcgModeInfo *m = gfcg_mode_get_info (o->mode);
  gboolean window = sigma >= o->sigma_lo && sigma <= o->sigma_hi;
  gboolean gfcg = m->ref != GFCG_REF_NONE;
  double wm1 = o->guidance - 1.0;
  Term t[4] = { { 0 } };
  int n = 0;
  GfcgStepInfo cur = { 0 };
  gboolean ok = TRUE;

  info->sigma = sigma;
  info->c_ref = -1;
  info->nfe = 0;
  info->classified = FALSE;
  info->p_c = info->p_ref = info->r = info->a = info->s = 0.0;

  /* Term 0 is x_c itself; then the mode's push away from the unconditional
   * or the guide's prediction. */
  t[n++] = (Term) { pack->main, onehot (s, o->class_index), 0.0, NULL };
  if (m->push == GFCG_PUSH_UNCOND && wm1 != 0.0)
    t[n++] = (Term) { pack->uncond != NULL ? pack->uncond : pack->main, NULL, wm1, NULL };
  if (m->push == GFCG_PUSH_GUIDE && wm1 != 0.0)
    t[n++] = (Term) { pack->guide, onehot (s, o->class_index), wm1, NULL };

  if (gfcg && o->lagged)
    {
      /* The reference is known before any network runs: one batch. */
      if (window && s->lag_valid)
        use_held (s, info);
    }
  else
    {
      ok = run_terms (s, t, n, x, info, &info->nfe, error);
      if (ok && gfcg && window && classify_now (s))
        {
          ok = gfcg_reference (s, t[0].out, info, error);
          s->lag = *info;
          s->lag_valid = ok;
        }
      else if (ok && gfcg && window)
        use_held (s, info);
    }

  if (ok && gfcg)
    {
      if (m->ref == GFCG_REF_GUIDE_MIX)
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
          t[n++] = (Term) { pack->main, onehot (s, info->c_ref), info->s, NULL };
        }
      ok = run_terms (s, t, n, x, info, &info->nfe, error);
      if (ok && o->lagged)
        {
          /* Classify this evaluation's x_c for the next ones; outside the
           * window the held reference is dropped. */
          if (!window)
            s->lag_valid = FALSE;
          else if (classify_now (s))
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

Guidance *
guidance_new (GfcgPack *pack, const GfcgSampleOptions *o, RunTimes *times)
{
  Guidance *s = g_new0 (Guidance, 1);
  s->times = times;
  const DenoiserInfo *m = denoiser_info (pack->main);
  s->pack = pack;
  s->o = o;
  s->per = (gsize) m->channels * m->resolution * m->resolution;
  s->n_classes = pack->n_classes;
  s->probs = g_new (double, pack->n_classes);
  s->first = sample_first_step (o);
  if (o->mask != NULL)
    s->shown = g_new (float, s->per);
  return s;
}

void
guidance_free (Guidance *s)
{
  if (s == NULL)
    return;
  g_free (s->probs);
  g_free (s->shown);
  g_free (s);
}
