/* dec-taesd.c — the Tiny AutoEncoder decoder for Stable Diffusion latents
 * (madebyollin/taesd; docs/pack-format.md, "taesd-decoder"):
 *
 *   3 tanh(z / 3) -> conv -> ReLU -> per stage: blocks, then (all but the
 *   last stage) nearest 2x + conv without bias; the last stage ends in a
 *   conv to 3 channels.  A block is relu(conv(relu(conv(relu(conv(x))))) + x).
 *
 * Its weights come as the standalone file (an nn.Sequential whose index 0 is
 * the clamp: "1.weight", "3.conv.0.weight", ...) or as diffusers'
 * AutoencoderTiny ("decoder.layers.N" with N one less).  Its input is SD's
 * scaled latent, its output approximately [0, 1] where the SD VAE decoder's
 * is [-1, 1]; decoder.c applies both conventions. */
#include "gfcg-private.h"

typedef struct
{
  TaesdNet    net;
  /* in_w [C, latent_channels, 3, 3], in_b [C]; out_w [3, C, 3, 3], out_b [3];
   * up_w[s] [C, C, 3, 3] (no bias) for s < n_stages - 1 */
  GfcgTensor *in_w, *in_b, *out_w, *out_b, *up_w[TAESD_MAX_STAGES];
} Taesd;


static void
taesd_free (gpointer p)
{
  Taesd *t = p;
  if (t == NULL)
    return;
  taesd_net_clear (&t->net);
  g_free (t);
}

static gpointer
taesd_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
            int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  static const int default_blocks[4] = { 3, 3, 3, 1 };
  Taesd *t = g_new0 (Taesd, 1);
  TaesdNet *n = &t->net;
  int lc, c, idx, k = 0;

  /* layer 0 of the standalone Sequential is the clamp, 1 the first conv */
  if (!taesd_net_init (n, be, config, st, where, "decoder", default_blocks, 1, error))
    goto fail;
  lc = n->latent_channels;
  c = n->channels;
  if ((t->in_w = taesd_net_load (n, 1, ".weight", 4, SHAPE (c, lc, 3, 3), error)) == NULL ||
      (t->in_b = taesd_net_load (n, 1, ".bias", 1, SHAPE (c), error)) == NULL)
    goto fail;
  idx = 3; /* after the clamp, conv and ReLU */
  for (int s = 0; s < n->n_stages; s++)
    {
      for (int b = 0; b < n->blocks[s]; b++, k++, idx++)
        if (!taesd_net_load_block (n, idx, &n->block[k], error))
          goto fail;
      if (s < n->n_stages - 1)
        {
          /* idx is the upsampling layer (no weights), idx + 1 its conv. */
          if ((t->up_w[s] = taesd_net_load (n, idx + 1, ".weight", 4, SHAPE (c, c, 3, 3),
                                            error)) == NULL)
            goto fail;
          idx += 2;
        }
      else if ((t->out_w = taesd_net_load (n, idx, ".weight", 4, SHAPE (3, c, 3, 3), error)) == NULL ||
               (t->out_b = taesd_net_load (n, idx, ".bias", 1, SHAPE (3), error)) == NULL)
        goto fail;
    }
  *latent_channels = lc;
  *factor = 1 << (n->n_stages - 1);
  *n_params = n->n_params;
  n->st = NULL;
  return t;

fail:
  taesd_free (t);
  return NULL;
}

static GfcgTensor *
taesd_forward (gpointer p, const GfcgTensor *z)
{
  Taesd *t = p;
  /* z, x [N, latent_channels, h, w] -> x [N, C, h, w] (conv, ReLU) */
  GfcgTensor *x = gfcg_op_unary (z, GFCG_UNARY_TANH, 3.0f);
  int k = 0;
  /* each conv's ReLU fused into it (and the blocks', in taesd_block) */
  GfcgConvPost relu = gfcg_post_act (GFCG_ACT_RELU);

  gfcg_tensor_set (&x, gfcg_op_conv2d_fused (x, t->in_w, t->in_b, 1, 1, &relu));
  for (int s = 0; s < t->net.n_stages; s++)
    {
      /* x, h [N, C, 2^s h, 2^s w]; 2x after each stage but the last */
      for (int b = 0; b < t->net.blocks[s]; b++, k++)
        gfcg_tensor_set (&x, taesd_block (&t->net.block[k], x));
      if (s < t->net.n_stages - 1)
        {
          gfcg_tensor_set (&x, gfcg_op_resample (x, GFCG_RESAMPLE_UP));
          gfcg_tensor_set (&x, gfcg_op_conv2d (x, t->up_w[s], NULL, 1, 1));
        }
      else /* [N, 3, f h, f w], f = 2^(n_stages - 1) */
        gfcg_tensor_set (&x, gfcg_op_conv2d (x, t->out_w, t->out_b, 1, 1));
    }
  return x;
}

const DecoderArch decoder_arch_taesd = {
  .name = "taesd-decoder",
  /* TAESD decodes the latents SD's UNet works in: the raw latent times
   * SD's scaling factor. */
  .latent_scale = 0.18215,
  /* Its [0, 1] output stands for the SD VAE's [-1, 1]. */
  .out_scale = 2.0f,
  .out_shift = -1.0f,
  .load = taesd_load,
  .forward = taesd_forward,
  .free = taesd_free,
};
