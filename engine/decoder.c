/* decoder.c — what the latent packs' image decoders share: dispatch to the
 * architecture (dec-*.c), and the way from the network's latent to a
 * picture (docs/pack-format.md, "Latent packs"):
 *
 *   raw   = x * scale + shift                  (undo the pack's standardisation)
 *   v     = out_scale * net(latent_scale * raw) + out_shift   (SD VAE units)
 *   pixel = clamp((v - black) / (white - black), 0, 1)        (EDM2: black 0, white 1)
 *   image = 2 pixel - 1                         (the engine's [-1, 1] pictures)
 *
 * Both affine steps run on the device as per-channel affines. */
#include "gfcg-private.h"

#include <string.h>

static const DecoderArch *const archs[] = {
  &decoder_arch_sd_vae,
  &decoder_arch_taesd,
};

struct _Decoder
{
  GfcgBackend       *be;
  const DecoderArch *arch;
  gpointer           net;
  int                latent_channels, factor; /* [C, h, w] -> [3, factor h, factor w] */
  double             latent_scale;
  gsize              n_params;
  guint              n_unused;
};

void
decoder_free (Decoder *d)
{
  if (d == NULL)
    return;
  if (d->net != NULL)
    d->arch->free (d->net);
  g_free (d);
}

const char *decoder_arch (const Decoder *d) { return d->arch->name; }
int decoder_factor (const Decoder *d) { return d->factor; }
int decoder_latent_channels (const Decoder *d) { return d->latent_channels; }
gsize decoder_n_params (const Decoder *d) { return d->n_params; }
guint decoder_n_unused (const Decoder *d) { return d->n_unused; }

Decoder *
decoder_load (GfcgBackend *be, const char *component, const char *arch, JsonObject *config,
              const char *file, GError **error)
{
  Decoder *d = g_new0 (Decoder, 1);
  char *where = g_strdup_printf ("component '%s'", component);
  GfcgSafetensors *st = NULL;

  d->be = be;
  if ((d->arch = arch_lookup (arch, (gconstpointer const *) archs, G_N_ELEMENTS (archs), where,
                              error)) == NULL)
    goto fail;
  if (!cfg_double (config, "latent_scale", d->arch->latent_scale, FALSE, &d->latent_scale,
                   where, error))
    goto fail;
  if (!(d->latent_scale > 0.0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'latent_scale' must be > 0", where);
      goto fail;
    }
  if ((st = gfcg_st_open (file, error)) == NULL ||
      (d->net = d->arch->load (be, config, st, where, &d->latent_channels, &d->factor,
                               &d->n_params, error)) == NULL)
    goto fail;
  /* The VAE file also holds the encoder: those tensors are ignored. */
  d->n_unused = gfcg_st_n_unused (st);
  gfcg_st_close (st);
  g_free (where);
  return d;

fail:
  gfcg_st_close (st);
  g_free (where);
  decoder_free (d);
  return NULL;
}

gboolean
decoder_decode (Decoder *d, const LatentSpace *ls, int n, int h, int w, const float *x,
                float *rgb, float *decoded, GError **error)
{
  int c = d->latent_channels, ho = h * d->factor, wo = w * d->factor;
  gsize per_in = (gsize) c * h * w, per_out = (gsize) 3 * ho * wo;
  float sc[GFCG_MAX_LATENT_CHANNELS], sh[GFCG_MAX_LATENT_CHANNELS];
  float range = ls->white - ls->black, a, b;

  for (int i = 0; i < c; i++)
    {
      sc[i] = (float) (ls->scale[i] * d->latent_scale);
      sh[i] = (float) (ls->shift[i] * d->latent_scale);
    }
  a = 2.0f * d->arch->out_scale / range;
  b = 2.0f * (d->arch->out_shift - ls->black) / range - 1.0f;
  /* x [n, c, h, w] -> rgb, decoded [n, 3, ho, wo] on the host.  One image at a time: a
   * 512-pixel decode is large enough on its own. */
  for (int j = 0; j < n; j++)
    {
      GfcgTensor *t = gfcg_tensor_from_host (d->be, 4, (int[]) { 1, c, h, w }, x + j * per_in);
      GfcgTensor *y;

      gfcg_tensor_set (&t, gfcg_op_channel_affine (t, sc, sh)); /* [1, c, h, w] */
      y = t != NULL ? d->arch->forward (d->net, t) : NULL;      /* [1, 3, ho, wo] */
      gfcg_tensor_free (t);
      if (y != NULL && (y->shape[1] != 3 || y->shape[2] != ho || y->shape[3] != wo))
        gfcg_backend_fail (d->be, GFCG_ERROR_MODEL, "internal: decoder output has the wrong size");
      if (y != NULL && decoded != NULL && gfcg_backend_ok (d->be))
        gfcg_tensor_download (y, decoded + j * per_out);
      gfcg_tensor_set (&y, gfcg_op_channel_affine (y, (float[]) { a, a, a },
                                                   (float[]) { b, b, b }));
      gfcg_op_clip (y, -1.0f, 1.0f);
      if (y != NULL && gfcg_backend_ok (d->be))
        gfcg_tensor_download (y, rgb + j * per_out);
      gfcg_tensor_free (y);
      if (!gfcg_backend_take_error (d->be, error))
        return FALSE;
    }
  return TRUE;
}
