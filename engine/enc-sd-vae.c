/* enc-sd-vae.c — the Stable Diffusion VAE encoder (AutoencoderKL, e.g.
 * stabilityai/sd-vae-ft-mse), read from its diffusers-format safetensors
 * file (docs/pack-format.md, "sd-vae-encoder"):
 *
 *   conv_in -> down blocks (layers_per_block resnets, then, in all but the
 *   last, zero padding of one row/column at the bottom/right and a 3x3
 *   stride-2 conv) -> mid block (resnet, attention, resnet) -> GroupNorm +
 *   SiLU -> conv_out to 2 latent_channels (mean, log-variance) -> quant_conv.
 *
 * The latent is the mean, deterministically: only quant_conv's first
 * latent_channels rows are kept (without quant_conv, conv_out's).  The
 * blocks it shares with the decoder are in vae-blocks.c; the decoder's
 * tensors in the same file are ignored. */
#include "gfcg-private.h"

#include <string.h>

typedef struct
{
  VaeWeights       w;        /* every weight tensor; w.st during load only */
  int              groups, n_levels, per_level;
  /* With ch = block_out_channels, L = n_levels, lc = latent_channels: in_w [ch[0], 3, 3, 3],
   * in_b [ch[0]]; out_ng, out_nb [ch[L-1]]; out_w [2 lc, ch[L-1], 3, 3], out_b [2 lc]
   * ([lc, ...], [lc] without quant_conv); q_w [lc, 2 lc, 1, 1], q_b [lc] (NULL without). */
  GfcgTensor      *in_w, *in_b, *out_ng, *out_nb, *out_w, *out_b, *q_w, *q_b;
  /* Down block i: cout = ch[i], its resnet 0 from ch[i-1] (ch[0] at i = 0), the
   * others from cout; down_w[i] [cout, cout, 3, 3], down_b[i] [cout] for i < L - 1. */
  VaeResnet       *res;                           /* n_levels * per_level */
  GfcgTensor      *down_w[VAE_MAX_LEVELS], *down_b[VAE_MAX_LEVELS];
  VaeMid           mid;                           /* ch[L-1] -> ch[L-1] */
} SdVaeEnc;


static void
sd_vae_enc_free (gpointer p)
{
  SdVaeEnc *v = p;
  if (v == NULL)
    return;
  vae_weights_clear (&v->w);
  g_free (v->res);
  g_free (v);
}

/* PREFIX.weight [o, i, k, k] and PREFIX.bias [o] as stored; only their first
 * keep output rows are kept (the mean half of the moments). */
static gboolean
load_rows (VaeWeights *v, const char *prefix, int o, int keep, int i, int k, GfcgTensor **w,
           GfcgTensor **b, GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  float *hw = gfcg_st_read (v->st, kw, 4, SHAPE (o, i, k, k), error);
  float *hb = hw != NULL ? gfcg_st_read (v->st, kb, 1, SHAPE (o), error) : NULL;

  *w = *b = NULL;
  if (hb != NULL)
    {
      *w = vae_take (v, gfcg_tensor_from_host (v->be, 4, (int[]) { keep, i, k, k }, hw));
      *b = *w != NULL ? vae_take (v, gfcg_tensor_from_host (v->be, 1, (int[]) { keep }, hb))
                      : NULL;
      if (*b == NULL)
        gfcg_backend_take_error (v->be, error);
    }
  g_free (hw);
  g_free (hb);
  g_free (kw);
  g_free (kb);
  return *w != NULL && *b != NULL;
}

static gpointer
sd_vae_enc_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
                 int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  SdVaeEnc *v = g_new0 (SdVaeEnc, 1);
  VaeConfig c;
  int *ch = c.ch, n_ch, lc, top;

  vae_weights_init (&v->w, be, st);
  if (!vae_config_read (config, "use_quant_conv", "in_channels", where, &c, error))
    goto fail;
  if (c.layers_per_block < 1)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'layers_per_block' must be >= 1 for an encoder", where);
      goto fail;
    }
  n_ch = c.n_levels;
  lc = c.latent_channels;
  v->groups = c.groups;
  v->n_levels = n_ch;
  v->per_level = c.layers_per_block;
  v->res = g_new0 (VaeResnet, (gsize) n_ch * v->per_level);
  top = ch[n_ch - 1];

  if (!vae_load_pair (&v->w, "encoder.conv_in", ch[0], 3, 3, &v->in_w, &v->in_b, error))
    goto fail;
  for (int i = 0, cin = ch[0]; i < n_ch; i++)
    {
      int cout = ch[i];
      if (!vae_load_level (&v->w, "encoder.down_blocks", i, v->per_level, cin, cout,
                           &v->res[i * v->per_level], i < n_ch - 1 ? "downsamplers" : NULL,
                           &v->down_w[i], &v->down_b[i], error))
        goto fail;
      cin = cout;
    }
  if (!vae_load_mid (&v->w, "encoder.mid_block", top, c.mid_attn, &v->mid, error) ||
      !vae_load_pair (&v->w, "encoder.conv_norm_out", top, 0, 0, &v->out_ng, &v->out_nb,
                      error))
    goto fail;
  if (c.quant ? !vae_load_pair (&v->w, "encoder.conv_out", 2 * lc, top, 3, &v->out_w, &v->out_b,
                                error) ||
                !load_rows (&v->w, "quant_conv", 2 * lc, lc, 2 * lc, 1, &v->q_w, &v->q_b, error)
              : !load_rows (&v->w, "encoder.conv_out", 2 * lc, lc, top, 3, &v->out_w, &v->out_b,
                            error))
    goto fail;
  *latent_channels = lc;
  *factor = 1 << (n_ch - 1);
  *n_params = v->w.n_params;
  v->w.st = NULL;
  return v;

fail:
  sd_vae_enc_free (v);
  return NULL;
}

static GfcgTensor *
sd_vae_enc_forward (gpointer p, const GfcgTensor *x)
{
  SdVaeEnc *v = p;
  /* diffusers' Downsample2D: pad (left 0, right 1, top 0, bottom 1), then a 3x3 conv
   * at stride 2 without padding: H -> H / 2 for even H. */
  const GfcgConvParams down = { .stride = 2, .pad_bottom = 1, .pad_right = 1, .groups = 1 };
  /* x [N, 3, H, W] -> t [N, ch[0], H, W] */
  GfcgTensor *t = gfcg_op_conv2d (x, v->in_w, v->in_b, 1, 1);

  for (int i = 0; i < v->n_levels; i++)
    {
      /* t [N, ch[i], H / 2^i, W / 2^i], halved after each level but the last */
      for (int j = 0; j < v->per_level; j++)
        gfcg_tensor_set (&t, vae_resnet (&v->res[i * v->per_level + j], v->groups, t));
      if (i < v->n_levels - 1)
        gfcg_tensor_set (&t, gfcg_op_conv2d_ex (t, v->down_w[i], v->down_b[i], &down));
    }
  gfcg_tensor_set (&t, vae_mid (&v->mid, v->groups, t));
  gfcg_tensor_set (&t, vae_norm_out (t, v->groups, v->out_ng, v->out_nb));
  /* [N, ch[L-1], h, w] -> moments [N, 2 lc, h, w] -> mean [N, lc, h, w], h = H / 2^(L-1) */
  gfcg_tensor_set (&t, gfcg_op_conv2d (t, v->out_w, v->out_b, 1, 1));
  if (v->q_w != NULL)
    gfcg_tensor_set (&t, gfcg_op_conv2d (t, v->q_w, v->q_b, 1, 0));
  return t;
}

const EncoderArch encoder_arch_sd_vae = {
  .name = "sd-vae-encoder",
  .latent_scale = 1.0,
  .in_scale = 1.0f,
  .in_shift = 0.0f,
  .load = sd_vae_enc_load,
  .forward = sd_vae_enc_forward,
  .free = sd_vae_enc_free,
};
