/* pack-run.c — what a loaded pack does: its networks by role, denoising,
 * classification (softmax over the pack's classes), the pictures of latent
 * packs (decoder or preview), and the description `gfcg info` prints. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

const char *const pack_role_names[N_ROLES] = {
  "main", "guide", "uncond", "classifier", "decoder", "preview", "encoder", "preview-encoder",
};

int
pack_role_from_name (const char *name)
{
  for (int r = 0; r < N_ROLES; r++)
    if (g_strcmp0 (name, pack_role_names[r]) == 0)
      return r;
  return -1;
}

gboolean
gfcg_pack_has_component (const GfcgPack *pack, const char *c)
{
  switch (pack_role_from_name (c))
    {
    case ROLE_MAIN: return pack->main != NULL;
    case ROLE_GUIDE: return pack->guide != NULL;
    case ROLE_UNCOND: return pack->uncond != NULL;
    case ROLE_CLASSIFIER: return pack->classifier != NULL;
    case ROLE_DECODER: return pack->decoder != NULL;
    case ROLE_PREVIEW: return pack->preview != NULL;
    case ROLE_ENCODER: return pack->encoder != NULL;
    case ROLE_PREVIEW_ENCODER: return pack->preview_encoder != NULL;
    default: return FALSE;
    }
}

static void
describe_net (GString *s, const char *name, const Denoiser *net)
{
  const DenoiserInfo *i;
  if (net == NULL)
    return;
  i = denoiser_info (net);
  g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %dx%dx%d, label_dim %d",
                          name, denoiser_arch (net), i->n_params / 1e6, i->channels,
                          i->resolution, i->resolution, i->label_dim);
  if (denoiser_n_unused (net) > 0)
    g_string_append_printf (s, " (%u unused tensors ignored)", denoiser_n_unused (net));
  g_string_append_c (s, '\n');
}

static void
describe_decoder (GString *s, const char *name, const Decoder *d, const GfcgPack *pack)
{
  int lr;
  if (d == NULL)
    return;
  lr = denoiser_info (pack->main)->resolution;
  g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %dx%dx%d latent -> %dx%d RGB",
                          name, decoder_arch (d), decoder_n_params (d) / 1e6,
                          decoder_latent_channels (d), lr, lr, lr * decoder_factor (d),
                          lr * decoder_factor (d));
  if (decoder_n_unused (d) > 0)
    g_string_append_printf (s, " (%u unused tensors ignored)", decoder_n_unused (d));
  g_string_append_c (s, '\n');
}

static void
describe_encoder (GString *s, const char *name, const Encoder *e, const GfcgPack *pack)
{
  int lr;
  if (e == NULL)
    return;
  lr = denoiser_info (pack->main)->resolution;
  g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %dx%d RGB -> %dx%dx%d latent",
                          name, encoder_arch (e), encoder_n_params (e) / 1e6,
                          lr * encoder_factor (e), lr * encoder_factor (e),
                          encoder_latent_channels (e), lr, lr);
  if (encoder_n_unused (e) > 0)
    g_string_append_printf (s, " (%u unused tensors ignored)", encoder_n_unused (e));
  g_string_append_c (s, '\n');
}

char *
gfcg_pack_describe (const GfcgPack *pack)
{
  GString *s = g_string_new (NULL);
  GfcgSampleOptions o;

  g_string_append_printf (s, "pack:       %s (%s)\ndirectory:  %s\nlicence:    %s\nsource:     %s\n"
                          "kind:       %s, %dx%d pixels, %d channels\ncomponents:\n",
                          pack->name, pack->title, pack->dir, pack->licence, pack->source,
                          gfcg_pack_get_kind (pack), pack->resolution, pack->resolution, pack->channels);
  describe_net (s, "main", pack->main);
  describe_net (s, "guide", pack->guide);
  describe_net (s, "uncond", pack->uncond);
  if (pack->classifier != NULL)
    g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %d px input, %d outputs (%s)\n",
                            "classifier", classifier_arch (pack->classifier),
                            classifier_n_params (pack->classifier) / 1e6,
                            classifier_resolution (pack->classifier),
                            classifier_n_outputs (pack->classifier),
                            classifier_imagenet_space (pack->classifier) ? "ImageNet" : "pack classes");
  describe_decoder (s, "decoder", pack->decoder, pack);
  describe_decoder (s, "preview", pack->preview, pack);
  describe_encoder (s, "encoder", pack->encoder, pack);
  describe_encoder (s, "preview-encoder", pack->preview_encoder, pack);
  if (pack->kind == PACK_LATENT && pack->decoder == NULL)
    g_string_append_printf (s, "  %-10s none: `gfcg denoise` works, sampling needs one\n",
                            "decoder");
  gfcg_sample_options_init (&o, pack);
  g_string_append_printf (s, "defaults:   mode %s, %d steps, guidance %g, s_max %g, T %g, window"
                          " [%g, %g]%s\nclasses (%d; ImageNet index, the pack's own, wnid,"
                          " name):\n",
                          gfcg_mode_to_string (o.mode), o.steps, o.guidance, o.s_max,
                          o.temperature, o.sigma_lo, o.sigma_hi, o.lagged ? ", lagged" : "",
                          pack->n_classes);
  for (int k = 0; k < pack->n_classes; k++)
    g_string_append_printf (s, "  %3d  pack:%-3d %-10s %s\n", pack->classes[k].imagenet, k,
                            pack->classes[k].wnid, pack->classes[k].name);
  return g_string_free (s, FALSE);
}

Denoiser *
pack_net (GfcgPack *pack, const char *net, GError **error)
{
  int r = pack_role_from_name (net);
  Denoiser *n = r == ROLE_MAIN ? pack->main : r == ROLE_GUIDE ? pack->guide
                : r == ROLE_UNCOND ? pack->uncond : NULL;
  if (n == NULL)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                 "pack '%s' has no network '%s'", pack->name, net ? net : "(null)");
  return n;
}

gboolean
gfcg_pack_get_net_shape (const GfcgPack *pack, const char *net, int *channels, int *resolution,
                         int *label_dim, GError **error)
{
  Denoiser *n = pack_net ((GfcgPack *) pack, net, error);
  if (n == NULL)
    return FALSE;
  if (channels)
    *channels = denoiser_info (n)->channels;
  if (resolution)
    *resolution = denoiser_info (n)->resolution;
  if (label_dim)
    *label_dim = denoiser_info (n)->label_dim;
  return TRUE;
}

gboolean
gfcg_pack_denoise (GfcgPack *pack, const char *net, int n, const float *x, const float *sigma,
                   const float *labels, float *out, GError **error)
{
  Denoiser *e = pack_net (pack, net, error);
  double *s;
  gboolean ok;
  if (e == NULL)
    return FALSE;
  s = g_new (double, n);
  for (int i = 0; i < n; i++)
    {
      if (!(sigma[i] > 0.0f) || !isfinite (sigma[i]))
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                       "sigma[%d] = %g: noise levels must be finite and > 0", i, sigma[i]);
          g_free (s);
          return FALSE;
        }
      s[i] = sigma[i];
    }
  ok = denoiser_denoise (e, n, x, s, labels, out, error);
  g_free (s);
  return ok;
}

static gboolean
need_classifier (GfcgPack *pack, GError **error)
{
  if (pack->classifier != NULL)
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "pack '%s' has no classifier",
               pack->name);
  return FALSE;
}

int
gfcg_pack_classify (GfcgPack *pack, int n, int height, int width, const float *x,
                    float *logits, GError **error)
{
  if (pack->classifier != NULL && logits == NULL)
    return classifier_n_outputs (pack->classifier);
  if (!need_classifier (pack, error) ||
      !classifier_logits (pack->classifier, n, 3, height, width, x, logits, error))
    return -1;
  return classifier_n_outputs (pack->classifier);
}

gboolean
gfcg_pack_classifier_is_imagenet (const GfcgPack *pack)
{
  return pack->classifier != NULL && classifier_imagenet_space (pack->classifier);
}

/* x [n, c, r, r] averaged over 2x2 cells -> [n, c, ro, ro], ro = ceil(r / 2);
 * an odd edge's cells average the values they have (PyTorch's avg_pool2d
 * with ceil_mode). */
static float *
pool2 (const float *x, int n, int c, int r, int *ro)
{
  int q = (r + 1) / 2;
  float *y = g_try_new (float, (gsize) n * c * q * q);
  for (gsize pl = 0; y != NULL && pl < (gsize) n * c; pl++)
    for (int oy = 0; oy < q; oy++)
      for (int ox = 0; ox < q; ox++)
        {
          double sum = 0.0;
          int cnt = 0;
          for (int iy = 2 * oy; iy < MIN (2 * oy + 2, r); iy++)
            for (int ix = 2 * ox; ix < MIN (2 * ox + 2, r); ix++, cnt++)
              sum += x[(pl * r + iy) * r + ix];
          y[(pl * q + oy) * q + ox] = (float) (sum / cnt);
        }
  *ro = q;
  return y;
}

float *
pack_picture (GfcgPack *pack, gboolean preview, GfcgView view, int n, const float *x, int *size,
              GError **error)
{
  Decoder *d = preview && pack->preview != NULL ? pack->preview : pack->decoder;
  int r = denoiser_info (pack->main)->resolution;
  float *rgb, *pooled = NULL;

  if (pack->kind == PACK_LATENT && d == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' is a latent pack without a decoder", pack->name);
      return NULL;
    }
  if (view == GFCG_VIEW_HALF)
    {
      if ((pooled = pool2 (x, n, pack->channels, r, &r)) == NULL)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "no memory for the half view");
          return NULL;
        }
      x = pooled;
    }
  if (pack->kind != PACK_LATENT)
    {
      /* A pooled copy is new memory, which pack_picture_free releases. */
      *size = r;
      return (float *) x;
    }
  *size = r * decoder_factor (d);
  rgb = g_try_new (float, (gsize) n * 3 * *size * *size);
  if (rgb == NULL)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "no memory for decoded pictures");
  else if (!decoder_decode (d, &pack->latent, n, r, r, x, rgb, NULL, error))
    g_clear_pointer (&rgb, g_free);
  g_free (pooled);
  return rgb;
}

void
pack_picture_free (const float *x, float *picture)
{
  if (picture != x)
    g_free (picture);
}

int
gfcg_pack_decode (GfcgPack *pack, const char *decoder, int n, int height, int width,
                  const float *x, float *rgb, float *decoded, GError **error)
{
  int r = pack_role_from_name (decoder);
  Decoder *d = r == ROLE_DECODER ? pack->decoder : r == ROLE_PREVIEW ? pack->preview : NULL;
  if (d == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' has no decoder component '%s'", pack->name,
                   decoder != NULL ? decoder : "(null)");
      return -1;
    }
  if (rgb == NULL)
    return decoder_factor (d);
  if (n < 1 || height < 1 || width < 1)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "nothing to decode (%d latents of %dx%d)", n, height, width);
      return -1;
    }
  if (!decoder_decode (d, &pack->latent, n, height, width, x, rgb, decoded, error))
    return -1;
  return decoder_factor (d);
}

gboolean
gfcg_pack_has_encoder (const GfcgPack *pack)
{
  return pack->encoder != NULL;
}

int
gfcg_pack_encode (GfcgPack *pack, const char *encoder, int n, int height, int width,
                  const float *rgb, float *latents, GError **error)
{
  int r = pack_role_from_name (encoder != NULL ? encoder : "encoder"), f;
  Encoder *e = r == ROLE_ENCODER ? pack->encoder
               : r == ROLE_PREVIEW_ENCODER ? pack->preview_encoder : NULL;
  if (e == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' has no encoder component '%s'", pack->name,
                   encoder != NULL ? encoder : "encoder");
      return -1;
    }
  f = encoder_factor (e);
  if (latents == NULL)
    return f;
  if (n < 1 || height < f || width < f || height % f != 0 || width % f != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "cannot encode %d pictures of %dx%d: the encoder needs sizes that are "
                   "multiples of %d", n, width, height, f);
      return -1;
    }
  if (!encoder_encode (e, &pack->latent, n, height / f, width / f, rgb, latents, error))
    return -1;
  return f;
}

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

gboolean
pack_class_probs (GfcgPack *pack, int n, int h, int w, const float *x, double t, double *p,
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
  if (!need_classifier (pack, error))
    return FALSE;
  p = g_new (double, (gsize) n * pack->n_classes);
  ok = pack_class_probs (pack, n, h, w, x, 1.0, p, error);
  for (gsize i = 0; ok && i < (gsize) n * pack->n_classes; i++)
    probs[i] = (float) p[i];
  g_free (p);
  return ok;
}

/* While set, every op of the pack's backend checks it: a stop request
 * reaches into a long network evaluation. */
void
pack_set_cancellable (GfcgPack *pack, GCancellable *cancellable)
{
  pack->ctx->be->cancel = cancellable;
}
