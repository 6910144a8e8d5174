/* enc-taesd.c — the Tiny AutoEncoder's encoder for Stable Diffusion latents
 * (madebyollin/taesd; docs/pack-format.md, "taesd-encoder"):
 *
 *   conv 3 -> C, then per stage: (all but the first) a 3x3 stride-2 conv
 *   without bias, then blocks; a last conv C -> latent_channels.  A block is
 *   relu(conv(relu(conv(relu(conv(x))))) + x), as in the decoder.
 *
 * Its weights come as the standalone file (an nn.Sequential: "0.weight",
 * "1.conv.0.weight", ...) or as diffusers' AutoencoderTiny ("encoder.layers.N",
 * the same indices).  Its input is a [0, 1] picture where the SD VAE
 * encoder's is [-1, 1], its output SD's scaled latent; encoder.c applies
 * both conventions. */
#include "gfcg-private.h"

typedef struct
{
  TaesdNet    net;
  /* in_w [C, 3, 3, 3], in_b [C]; out_w [latent_channels, C, 3, 3], out_b [latent_channels];
   * down_w[s] [C, C, 3, 3] (no bias) for 0 < s < n_stages */
  GfcgTensor *in_w, *in_b, *out_w, *out_b, *down_w[TAESD_MAX_STAGES];
} TaesdEnc;


static void
taesd_enc_free (gpointer p)
{
  TaesdEnc *t = p;
  if (t == NULL)
    return;
  taesd_net_clear (&t->net);
  g_free (t);
}

static gpointer
taesd_enc_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
                int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  static const int default_blocks[4] = { 1, 3, 3, 3 };
  TaesdEnc *t = g_new0 (TaesdEnc, 1);
  TaesdNet *n = &t->net;
  int lc, c, idx, k = 0;

  if (!taesd_net_init (n, be, config, st, where, "encoder", default_blocks, 0, error))
    goto fail;
  lc = n->latent_channels;
  c = n->channels;
  if ((t->in_w = taesd_net_load (n, 0, ".weight", 4, SHAPE (c, 3, 3, 3), error)) == NULL ||
      (t->in_b = taesd_net_load (n, 0, ".bias", 1, SHAPE (c), error)) == NULL)
    goto fail;
  idx = 1;
  for (int s = 0; s < n->n_stages; s++)
    {
      /* Every stage but the first starts with its stride-2 conv (no bias). */
      if (s > 0 && (t->down_w[s] = taesd_net_load (n, idx++, ".weight", 4, SHAPE (c, c, 3, 3),
                                                   error)) == NULL)
        goto fail;
      for (int b = 0; b < n->blocks[s]; b++, k++, idx++)
        if (!taesd_net_load_block (n, idx, &n->block[k], error))
          goto fail;
    }
  if ((t->out_w = taesd_net_load (n, idx, ".weight", 4, SHAPE (lc, c, 3, 3), error)) == NULL ||
      (t->out_b = taesd_net_load (n, idx, ".bias", 1, SHAPE (lc), error)) == NULL)
    goto fail;
  *latent_channels = lc;
  *factor = 1 << (n->n_stages - 1);
  *n_params = n->n_params;
  n->st = NULL;
  return t;

fail:
  taesd_enc_free (t);
  return NULL;
}

static GfcgTensor *
taesd_enc_forward (gpointer p, const GfcgTensor *img)
{
  TaesdEnc *t = p;
  /* img [N, 3, H, W] -> x [N, C, H, W] */
  GfcgTensor *x = gfcg_op_conv2d (img, t->in_w, t->in_b, 1, 1);
  int k = 0;

  for (int s = 0; s < t->net.n_stages; s++)
    {
      /* x [N, C, H / 2^s, W / 2^s]: halved by the stage's first conv but in stage 0 */
      if (s > 0)
        gfcg_tensor_set (&x, gfcg_op_conv2d (x, t->down_w[s], NULL, 2, 1));
      for (int b = 0; b < t->net.blocks[s]; b++, k++)
        gfcg_tensor_set (&x, taesd_block (&t->net.block[k], x));
    }
  /* [N, latent_channels, H / f, W / f], f = 2^(n_stages - 1) */
  gfcg_tensor_set (&x, gfcg_op_conv2d (x, t->out_w, t->out_b, 1, 1));
  return x;
}

const EncoderArch encoder_arch_taesd = {
  .name = "taesd-encoder",
  /* TAESD encodes to the latents SD's UNet works in: the raw latent times
   * SD's scaling factor. */
  .latent_scale = 0.18215,
  /* It takes [0, 1] pictures where the SD VAE takes [-1, 1]. */
  .in_scale = 0.5f,
  .in_shift = 0.5f,
  .load = taesd_enc_load,
  .forward = taesd_enc_forward,
  .free = taesd_enc_free,
};
