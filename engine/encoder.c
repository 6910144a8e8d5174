/* encoder.c — what the latent packs' image encoders share: dispatch to the
 * architecture (enc-*.c), and the way from a picture to the network's
 * latent, the exact inverse of decoder.c's (docs/pack-format.md, "Latent
 * packs"):
 *
 *   pixel = (image + 1) / 2                      (the engine's [-1, 1] pictures)
 *   v     = black + pixel (white - black)        (SD VAE units; EDM2: black 0, white 1,
 *                                                 so the VAE is fed [0, 1])
 *   raw   = net(in_scale v + in_shift) / latent_scale         (the SD latent)
 *   x     = (raw - shift) / scale               (the pack's standardisation)
 *
 * Both affine steps run on the device as per-channel affines; the input is
 * not clamped. */
#include "gfcg-private.h"

#include <string.h>

static const EncoderArch *const archs[] = {
  &encoder_arch_sd_vae,
  &encoder_arch_taesd,
};

struct _Encoder
{
  GfcgBackend       *be;
  const EncoderArch *arch;
  gpointer           net;
  int                latent_channels, factor; /* [3, factor h, factor w] -> [C, h, w] */
  double             latent_scale;
  gsize              n_params;
  guint              n_unused;
};

void
encoder_free (Encoder *e)
{
  if (e == NULL)
    return;
  if (e->net != NULL)
    e->arch->free (e->net);
  g_free (e);
}

const char *encoder_arch (const Encoder *e) { return e->arch->name; }
int encoder_factor (const Encoder *e) { return e->factor; }
int encoder_latent_channels (const Encoder *e) { return e->latent_channels; }
gsize encoder_n_params (const Encoder *e) { return e->n_params; }
guint encoder_n_unused (const Encoder *e) { return e->n_unused; }

Encoder *
encoder_load (GfcgBackend *be, const char *component, const char *arch, JsonObject *config,
              const char *file, GError **error)
{
  Encoder *e = g_new0 (Encoder, 1);
  char *where = g_strdup_printf ("component '%s'", component);
  GfcgSafetensors *st = NULL;

  e->be = be;
  if ((e->arch = arch_lookup (arch, (gconstpointer const *) archs, G_N_ELEMENTS (archs), where,
                              error)) == NULL)
    goto fail;
  if (!cfg_double (config, "latent_scale", e->arch->latent_scale, FALSE, &e->latent_scale,
                   where, error))
    goto fail;
  if (!(e->latent_scale > 0.0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'latent_scale' must be > 0", where);
      goto fail;
    }
  if ((st = gfcg_st_open (file, error)) == NULL ||
      (e->net = e->arch->load (be, config, st, where, &e->latent_channels, &e->factor,
                               &e->n_params, error)) == NULL)
    goto fail;
  /* A whole VAE file also holds the decoder: those tensors are ignored. */
  e->n_unused = gfcg_st_n_unused (st);
  gfcg_st_close (st);
  g_free (where);
  return e;

fail:
  gfcg_st_close (st);
  g_free (where);
  encoder_free (e);
  return NULL;
}

gboolean
encoder_encode (Encoder *e, const LatentSpace *ls, int n, int h, int w, const float *rgb,
                float *x, GError **error)
{
  int c = e->latent_channels, hi = h * e->factor, wi = w * e->factor;
  gsize per_in = (gsize) 3 * hi * wi, per_out = (gsize) c * h * w;
  float sc[GFCG_MAX_LATENT_CHANNELS], sh[GFCG_MAX_LATENT_CHANNELS], a, b;
  double range = (double) ls->white - ls->black;

  /* image -> network input: in_scale (black + (image + 1) / 2 range) + in_shift */
  a = (float) (e->arch->in_scale * range / 2.0);
  b = (float) (e->arch->in_scale * ((double) ls->black + range / 2.0) + e->arch->in_shift);
  /* network output -> x: (out / latent_scale - shift) / scale */
  for (int i = 0; i < c; i++)
    {
      sc[i] = (float) (1.0 / (e->latent_scale * ls->scale[i]));
      sh[i] = (float) (-(double) ls->shift[i] / ls->scale[i]);
    }
  /* rgb [n, 3, hi, wi] -> x [n, c, h, w], one picture at a time. */
  for (int j = 0; j < n; j++)
    {
      GfcgTensor *t = gfcg_tensor_from_host (e->be, 4, (int[]) { 1, 3, hi, wi },
                                             rgb + j * per_in);
      GfcgTensor *y;

      gfcg_tensor_set (&t, gfcg_op_channel_affine (t, (float[]) { a, a, a },
                                                   (float[]) { b, b, b }));
      y = t != NULL ? e->arch->forward (e->net, t) : NULL;      /* [1, c, h, w] */
      gfcg_tensor_free (t);
      if (y != NULL && (y->shape[1] != c || y->shape[2] != h || y->shape[3] != w))
        gfcg_backend_fail (e->be, GFCG_ERROR_MODEL, "internal: encoder output has the wrong size");
      gfcg_tensor_set (&y, gfcg_op_channel_affine (y, sc, sh));
      if (y != NULL && gfcg_backend_ok (e->be))
        gfcg_tensor_download (y, x + j * per_out);
      gfcg_tensor_free (y);
      if (!gfcg_backend_take_error (e->be, error))
        return FALSE;
    }
  return TRUE;
}
