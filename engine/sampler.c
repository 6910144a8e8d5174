/* sampler.c — EDM2's deterministic Heun solver over the noise schedule of
 * docs/pack-format.md; each evaluation is one guided prediction
 * (guidance.c).  The solver's state is a few thousand floats per image, so
 * it lives on the host; the networks run on the context's backend. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

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

int
sample_first_step (const GfcgSampleOptions *o)
{
  /* The tolerance absorbs binary rounding: 0.3 x 10 steps is 3 steps. */
  double k = ceil (o->strength * o->steps - 1e-9);
  return o->steps - (int) CLAMP (k, 0.0, (double) o->steps);
}

int
sample_n_evals (const GfcgSampleOptions *o)
{
  int k = o->steps - sample_first_step (o);
  return k > 0 ? 2 * k - 1 : 0;
}

void
sample_composite (const GfcgSampleOptions *o, int channels, gsize hw, const float *x,
                  float *out)
{
  for (gsize c = 0; c < (gsize) channels; c++)
    for (gsize p = 0; p < hw; p++)
      {
        double m = o->mask[p];
        gsize e = c * hw + p;
        out[e] = (float) (m * x[e] + (1.0 - m) * o->init[e]);
      }
}

static gboolean
report (GfcgPack *pack, const GfcgSampleOptions *o, GfcgProgressFunc cb, gpointer data,
        int eval, const GfcgStepInfo *info, const float *pred, RunTimes *times, GError **error)
{
  gboolean go = TRUE;
  int n_evals = sample_n_evals (o);
  gboolean skip = o->no_previews || (o->preview_every > 1 && eval % o->preview_every != 0 &&
                                     eval != n_evals - 1);
  if (cb != NULL && skip)
    {
      GfcgProgress p = { .eval = eval, .n_evals = n_evals, .n_pictures = 1, .info = info };
      go = cb (&p, data);
    }
  else if (cb != NULL)
    {
      int size, c = pack->kind == PACK_LATENT ? 3 : pack->channels;
      int res = denoiser_info (pack->main)->resolution;
      float *shown = NULL, *pic;
      guchar *rgb;
      GfcgProgress p = { .eval = eval, .n_evals = n_evals, .n_pictures = 1, .info = info };
      gint64 t0 = g_get_monotonic_time ();

      /* A fill is shown in its surroundings: the kept part is the source's. */
      if (o->mask != NULL)
        {
          shown = g_new (float, (gsize) pack->channels * res * res);
          sample_composite (o, pack->channels, (gsize) res * res, pred, shown);
          pred = shown;
        }
      pic = pack_picture (pack, TRUE, GFCG_VIEW_FULL, 1, pred, &size, error);
      if (pic == NULL)
        {
          g_free (shown);
          return FALSE;
        }
      p.width = p.height = size;
      rgb = g_new (guchar, (gsize) size * size * 3);
      gfcg_to_rgb8 (pic, c, size, size, rgb);
      pack_picture_free (pred, pic);
      g_free (shown);
      times->preview += (g_get_monotonic_time () - t0) / 1e6;
      p.preview = rgb;
      go = cb (&p, data);
      g_free (rgb);
    }
  if (go && !g_cancellable_is_cancelled (o->cancellable))
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_CANCELLED, "cancelled at evaluation %d of %d",
               eval + 1, n_evals);
  return FALSE;
}

/* With a mask, the kept part of the state after a step to sigma t: the
 * source noised to t with block b of the run's noise (t = 0: the source). */
static void
reimpose_source (const GfcgSampleOptions *o, int channels, gsize hw, double t, guint64 block,
                 float *x, float *eps)
{
  gsize per = (gsize) channels * hw;
  if (t > 0.0)
    gfcg_rng_normal_block (o->seed, block, eps, per);
  for (gsize c = 0; c < (gsize) channels; c++)
    for (gsize p = 0; p < hw; p++)
      {
        double m = o->mask[p];
        gsize e = c * hw + p;
        double known = t > 0.0 ? o->init[e] + t * (double) eps[e] : (double) o->init[e];
        x[e] = (float) (m * x[e] + (1.0 - m) * known);
      }
}

GfcgImage *
gfcg_sample (GfcgPack *pack, const GfcgSampleOptions *o, GfcgProgressFunc progress,
             gpointer user_data, GError **error)
{
  int c = pack->channels, res = denoiser_info (pack->main)->resolution, eval = 0, size = 0;
  int first;
  gsize hw = (gsize) res * res, per = (gsize) c * hw;
  double t_first;
  float *x, *d, *pred, *xn, *pic = NULL;
  Guidance *g = NULL;
  double *probs = NULL;
  GfcgImage *img = NULL;
  gint64 t0 = g_get_monotonic_time (), t1;
  RunTimes times = { 0 };
  gboolean ok = TRUE;

  if (!gfcg_sample_options_validate (o, pack, error))
    return NULL;
  /* Stop requests reach into the networks too (a 512-px decode is long). */
  pack_set_cancellable (pack, o->cancellable);
  g = guidance_new (pack, o, &times);

  img = g_new0 (GfcgImage, 1);
  img->trace = g_array_new (FALSE, TRUE, sizeof (GfcgStepInfo));
  x = g_new (float, per);
  d = g_new (float, per);
  pred = g_new (float, per);
  xn = g_new (float, per);

  /* The start (docs/pack-format.md, "Starting from a source"): the first
   * block of noise at the first sigma run, plus the source; from the full
   * schedule only where the mask keeps it, so that strength 1 without a
   * mask is sampling from noise. */
  first = sample_first_step (o);
  gfcg_rng_normal (o->seed, x, per);
  t_first = sigma_at (o, first);
  for (gsize e = 0; e < per; e++)
    {
      double v = x[e] * t_first;
      if (o->init != NULL)
        {
          double w = first > 0 ? 1.0 : o->mask != NULL ? 1.0 - o->mask[e % hw] : 0.0;
          if (w != 0.0)
            v += w * o->init[e];
        }
      x[e] = (float) v;
    }

  for (int i = first; i < o->steps && ok; i++)
    {
      double t_cur = sigma_at (o, i), t_next = sigma_at (o, i + 1);
      GfcgStepInfo info = { .step = i, .stage = 0 };

      ok = guidance_eval (g, x, t_cur, &info, pred, error);
      if (!ok)
        break;
      img->nfe += info.nfe;
      g_array_append_val (img->trace, info);
      ok = report (pack, o, progress, user_data, eval++, &info, pred, &times, error);
      for (gsize e = 0; e < per; e++)
        {
          d[e] = (float) ((x[e] - (double) pred[e]) / t_cur);
          xn[e] = (float) (x[e] + (t_next - t_cur) * (double) d[e]);
        }
      if (ok && i < o->steps - 1)
        {
          GfcgStepInfo info2 = { .step = i, .stage = 1 };
          ok = guidance_eval (g, xn, t_next, &info2, pred, error);
          if (!ok)
            break;
          img->nfe += info2.nfe;
          g_array_append_val (img->trace, info2);
          ok = report (pack, o, progress, user_data, eval++, &info2, pred, &times, error);
          for (gsize e = 0; e < per; e++)
            {
              double d2 = (xn[e] - (double) pred[e]) / t_next;
              xn[e] = (float) (x[e] + (t_next - t_cur) * (0.5 * d[e] + 0.5 * d2));
            }
        }
      memcpy (x, xn, per * sizeof (float));
      if (ok && o->mask != NULL)
        reimpose_source (o, c, hw, t_next, (guint64) (i - first + 1), x, d);
    }

  /* The final picture: latent packs through the full decoder. */
  t1 = g_get_monotonic_time ();
  if (ok && (pic = pack_picture (pack, FALSE, GFCG_VIEW_FULL, 1, x, &size, error)) == NULL)
    ok = FALSE;
  if (ok && pic != x && !values_finite (pic, (gsize) 3 * size * size))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "the decoder gave non-finite values for the final picture");
      ok = FALSE;
    }
  times.decode = (g_get_monotonic_time () - t1) / 1e6;
  if (ok)
    {
      gboolean latent = pic != x;
      img->width = img->height = size;
      img->raw_size = res;
      img->channels = c;
      img->steps = o->steps;
      img->options = *o;
      img->options.cancellable = NULL;
      img->options.init = img->options.mask = NULL; /* the caller's */
      img->has_init = o->init != NULL;
      img->has_mask = o->mask != NULL;
      img->first_step = first;
      img->first_sigma = t_first;
      img->raw = g_memdup2 (x, per * sizeof (float));
      img->rgb = g_new (guchar, (gsize) size * size * 3);
      gfcg_to_rgb8 (pic, latent ? 3 : c, size, size, img->rgb);
      img->pack_name = g_strdup (pack->name);
      img->device = g_strdup (pack->ctx->device);
      img->backend = gfcg_backend_describe (pack->ctx->be);
      img->precision = pack->ctx->be->precision;
      img->imagenet = pack->classes[o->class_index].imagenet;
      img->class_name = g_strdup (pack->classes[o->class_index].name);
      img->final_top1 = -1;
      if (pack->classifier != NULL)
        {
          probs = g_new (double, pack->n_classes);
          t1 = g_get_monotonic_time ();
          ok = pack_class_probs (pack, 1, size, size, pic, 1.0, probs, error);
          for (int k = 0; ok && k < pack->n_classes; k++)
            if (img->final_top1 < 0 || probs[k] > probs[img->final_top1])
              img->final_top1 = k;
          img->final_p_target = ok ? probs[o->class_index] : 0.0;
          times.verdict = (g_get_monotonic_time () - t1) / 1e6;
        }
      img->times = times;
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
  g_free (probs);
  guidance_free (g);
  pack_set_cancellable (pack, NULL);
  return img;
}
