/* dec-sd-vae.c — the Stable Diffusion VAE decoder (AutoencoderKL, e.g.
 * stabilityai/sd-vae-ft-mse), read from its diffusers-format safetensors
 * file (docs/pack-format.md, "sd-vae-decoder"):
 *
 *   post_quant_conv (1x1) -> conv_in -> mid block (resnet, attention, resnet)
 *   -> up blocks, deepest first (layers_per_block + 1 resnets, then nearest
 *   2x + conv except in the last) -> GroupNorm + SiLU -> conv_out.
 *
 * The blocks it shares with the encoder are in vae-blocks.c.  The encoder's
 * tensors in the same file are ignored. */
#include "gfcg-private.h"

#include <string.h>

typedef struct
{
  VaeWeights       w;        /* every weight tensor; w.st during load only */
  int              groups, n_levels, per_level;
  /* With ch = block_out_channels, L = n_levels, lc = latent_channels: pq_w [lc, lc, 1, 1],
   * pq_b [lc] (NULL without post_quant_conv); in_w [ch[L-1], lc, 3, 3], in_b [ch[L-1]];
   * out_ng, out_nb [ch[0]]; out_w [3, ch[0], 3, 3], out_b [3]. */
  GfcgTensor      *pq_w, *pq_b, *in_w, *in_b, *out_ng, *out_nb, *out_w, *out_b;
  VaeMid           mid;                           /* ch[L-1] -> ch[L-1] */
  /* Up block i: cout = ch[L-1-i], its resnet 0 from ch[L-i] (ch[L-1] at i = 0), the
   * others from cout; up_w[i] [cout, cout, 3, 3], up_b[i] [cout] for i < L - 1. */
  VaeResnet       *res;                           /* n_levels * per_level */
  GfcgTensor      *up_w[VAE_MAX_LEVELS], *up_b[VAE_MAX_LEVELS];
} SdVae;


static void
sd_vae_free (gpointer p)
{
  SdVae *v = p;
  if (v == NULL)
    return;
  vae_weights_clear (&v->w);
  g_free (v->res);
  g_free (v);
}

static gpointer
sd_vae_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
             int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  SdVae *v = g_new0 (SdVae, 1);
  VaeConfig c;
  int *ch = c.ch, n_ch, lc, top;

  vae_weights_init (&v->w, be, st);
  if (!vae_config_read (config, "use_post_quant_conv", "out_channels", where, &c, error))
    goto fail;
  n_ch = c.n_levels;
  lc = c.latent_channels;
  v->groups = c.groups;
  v->n_levels = n_ch;
  v->per_level = c.layers_per_block + 1;
  v->res = g_new0 (VaeResnet, (gsize) n_ch * v->per_level);
  top = ch[n_ch - 1];

  if ((c.quant && !vae_load_pair (&v->w, "post_quant_conv", lc, lc, 1, &v->pq_w, &v->pq_b,
                                  error)) ||
      !vae_load_pair (&v->w, "decoder.conv_in", top, lc, 3, &v->in_w, &v->in_b, error) ||
      !vae_load_mid (&v->w, "decoder.mid_block", top, c.mid_attn, &v->mid, error))
    goto fail;
  /* Up block i works at reversed(block_out_channels)[i]; its first resnet
   * takes the previous block's width. */
  for (int i = 0, cin = top; i < n_ch; i++)
    {
      int cout = ch[n_ch - 1 - i];
      if (!vae_load_level (&v->w, "decoder.up_blocks", i, v->per_level, cin, cout,
                           &v->res[i * v->per_level], i < n_ch - 1 ? "upsamplers" : NULL,
                           &v->up_w[i], &v->up_b[i], error))
        goto fail;
      cin = cout;
    }
  if (!vae_load_pair (&v->w, "decoder.conv_norm_out", ch[0], 0, 0, &v->out_ng, &v->out_nb,
                      error) ||
      !vae_load_pair (&v->w, "decoder.conv_out", 3, ch[0], 3, &v->out_w, &v->out_b, error))
    goto fail;
  *latent_channels = lc;
  *factor = 1 << (n_ch - 1);
  *n_params = v->w.n_params;
  v->w.st = NULL;
  return v;

fail:
  sd_vae_free (v);
  return NULL;
}

static GfcgTensor *
sd_vae_forward (gpointer p, const GfcgTensor *z)
{
  SdVae *v = p;
  /* z [N, lc, h, w] -> t [N, lc, h, w] -> conv_in, mid block [N, ch[L-1], h, w] */
  GfcgTensor *t = v->pq_w != NULL ? gfcg_op_conv2d (z, v->pq_w, v->pq_b, 1, 0) : NULL;

  gfcg_tensor_set (&t, gfcg_op_conv2d (t != NULL ? t : z, v->in_w, v->in_b, 1, 1));
  gfcg_tensor_set (&t, vae_mid (&v->mid, v->groups, t));
  for (int i = 0; i < v->n_levels; i++)
    {
      /* t [N, ch[L-1-i], 2^i h, 2^i w], then 2x by the upsampler but in the last */
      for (int j = 0; j < v->per_level; j++)
        gfcg_tensor_set (&t, vae_resnet (&v->res[i * v->per_level + j], v->groups, t));
      if (i < v->n_levels - 1)
        {
          gfcg_tensor_set (&t, gfcg_op_resample (t, GFCG_RESAMPLE_UP));
          gfcg_tensor_set (&t, gfcg_op_conv2d (t, v->up_w[i], v->up_b[i], 1, 1));
        }
    }
  gfcg_tensor_set (&t, vae_norm_out (t, v->groups, v->out_ng, v->out_nb));
  /* [N, ch[0], f h, f w] -> [N, 3, f h, f w], f = 2^(L-1) */
  gfcg_tensor_set (&t, gfcg_op_conv2d (t, v->out_w, v->out_b, 1, 1));
  return t;
}

const DecoderArch decoder_arch_sd_vae = {
  .name = "sd-vae-decoder",
  .latent_scale = 1.0,
  .out_scale = 1.0f,
  .out_shift = 0.0f,
  .load = sd_vae_load,
  .forward = sd_vae_forward,
  .free = sd_vae_free,
};
