/* dec-sd-vae.c — the Stable Diffusion VAE decoder (AutoencoderKL, e.g.
 * stabilityai/sd-vae-ft-mse), read from its diffusers-format safetensors
 * file (docs/pack-format.md, "sd-vae-decoder"):
 *
 *   post_quant_conv (1x1) -> conv_in -> mid block (resnet, attention, resnet)
 *   -> up blocks, deepest first (layers_per_block + 1 resnets, then nearest
 *   2x + conv except in the last) -> GroupNorm + SiLU -> conv_out.
 *
 * GroupNorm eps 1e-6 everywhere; the mid attention is single-head with
 * scale 1/sqrt(C).  The encoder's tensors in the same file are ignored. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

#define VAE_EPS 1e-6f
#define VAE_MAX_LEVELS 8

/* n1g, n1b [cin]; c1w [cout, cin, 3, 3], c1b [cout]; n2g, n2b [cout]; c2w [cout, cout, 3, 3],
 * c2b [cout]; sw [cout, cin, 1, 1], sb [cout]. */
typedef struct
{
  GfcgTensor *n1g, *n1b, *c1w, *c1b, *n2g, *n2b, *c2w, *c2b;
  GfcgTensor *sw, *sb; /* 1x1 shortcut when the channels change, else NULL */
} VaeResnet;

/* C = block_out_channels[L - 1]: ng, nb [C]; qw, kw, vw, ow [C, C, 1, 1]; qb, kb, vb, ob [C] */
typedef struct
{
  GfcgTensor *ng, *nb, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
} VaeAttn;

typedef struct
{
  GfcgBackend     *be;
  GfcgSafetensors *st;       /* during load only */
  GPtrArray       *owned;    /* every weight tensor, for freeing */
  gsize            n_params;
  int              groups, n_levels, per_level;
  gboolean         has_attn;
  /* With ch = block_out_channels, L = n_levels, lc = latent_channels: pq_w [lc, lc, 1, 1],
   * pq_b [lc] (NULL without post_quant_conv); in_w [ch[L-1], lc, 3, 3], in_b [ch[L-1]];
   * out_ng, out_nb [ch[0]]; out_w [3, ch[0], 3, 3], out_b [3]. */
  GfcgTensor      *pq_w, *pq_b, *in_w, *in_b, *out_ng, *out_nb, *out_w, *out_b;
  VaeResnet        mid[2];                        /* ch[L-1] -> ch[L-1] */
  VaeAttn          attn;
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
  if (v->owned != NULL)
    g_ptr_array_unref (v->owned);
  g_free (v->res);
  g_free (v);
}

static GfcgTensor *
take (SdVae *v, GfcgTensor *t)
{
  if (t != NULL)
    {
      g_ptr_array_add (v->owned, t);
      v->n_params += t->numel;
    }
  return t;
}

/* prefix.weight [o, i, k, k] and prefix.bias [o] (k 0: the bias-free norm
 * pair prefix.weight [o], prefix.bias [o]). */
static gboolean
load_pair (SdVae *v, const char *prefix, int o, int i, int k, GfcgTensor **w, GfcgTensor **b,
           GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  *w = take (v, k > 0 ? weight_load (v->be, v->st, kw, 4, SHAPE (o, i, k, k), error)
                      : weight_load (v->be, v->st, kw, 1, SHAPE (o), error));
  *b = *w != NULL ? take (v, weight_load (v->be, v->st, kb, 1, SHAPE (o), error)) : NULL;
  g_free (kw);
  g_free (kb);
  return *w != NULL && *b != NULL;
}

/* An attention projection: a linear layer [c, c] (diffusers) or its 1x1
 * conv form [c, c, 1, 1]; either becomes a 1x1 convolution. */
static gboolean
load_proj (SdVae *v, const char *prefix, int c, GfcgTensor **w, GfcgTensor **b, GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  const GfcgStEntry *e = gfcg_st_lookup (v->st, kw);
  gboolean conv = e != NULL && e->ndim == 4;
  float *host = conv ? gfcg_st_read (v->st, kw, 4, SHAPE (c, c, 1, 1), error)
                     : gfcg_st_read (v->st, kw, 2, SHAPE (c, c), error);

  *w = *b = NULL;
  if (host != NULL)
    {
      *w = take (v, gfcg_tensor_from_host (v->be, 4, (int[]) { c, c, 1, 1 }, host));
      if (*w == NULL)
        gfcg_backend_take_error (v->be, error);
      else
        *b = take (v, weight_load (v->be, v->st, kb, 1, SHAPE (c), error));
    }
  g_free (host);
  g_free (kw);
  g_free (kb);
  return *w != NULL && *b != NULL;
}

static gboolean
load_resnet (SdVae *v, const char *prefix, int cin, int cout, VaeResnet *r, GError **error)
{
  char *p[5];
  gboolean ok;
  const char *parts[] = { "norm1", "conv1", "norm2", "conv2", "conv_shortcut" };
  for (int i = 0; i < 5; i++)
    p[i] = g_strconcat (prefix, ".", parts[i], NULL);
  ok = load_pair (v, p[0], cin, 0, 0, &r->n1g, &r->n1b, error) &&
       load_pair (v, p[1], cout, cin, 3, &r->c1w, &r->c1b, error) &&
       load_pair (v, p[2], cout, 0, 0, &r->n2g, &r->n2b, error) &&
       load_pair (v, p[3], cout, cout, 3, &r->c2w, &r->c2b, error) &&
       (cin == cout || load_pair (v, p[4], cout, cin, 1, &r->sw, &r->sb, error));
  for (int i = 0; i < 5; i++)
    g_free (p[i]);
  return ok;
}

static gboolean
load_attention (SdVae *v, int c, GError **error)
{
  const char *pre = "decoder.mid_block.attentions.0";
  /* Older files (sd-vae-ft-mse among them) name the projections
   * query/key/value/proj_attn; newer ones to_q/to_k/to_v/to_out.0. */
  char *probe = g_strconcat (pre, ".to_q.weight", NULL);
  gboolean modern = gfcg_st_lookup (v->st, probe) != NULL;
  const char *names[4] = { modern ? "to_q" : "query", modern ? "to_k" : "key",
                           modern ? "to_v" : "value", modern ? "to_out.0" : "proj_attn" };
  GfcgTensor **slots[4][2] = { { &v->attn.qw, &v->attn.qb }, { &v->attn.kw, &v->attn.kb },
                               { &v->attn.vw, &v->attn.vb }, { &v->attn.ow, &v->attn.ob } };
  char *norm = g_strconcat (pre, ".group_norm", NULL);
  gboolean ok = load_pair (v, norm, c, 0, 0, &v->attn.ng, &v->attn.nb, error);

  for (int i = 0; ok && i < 4; i++)
    {
      char *p = g_strconcat (pre, ".", names[i], NULL);
      ok = load_proj (v, p, c, slots[i][0], slots[i][1], error);
      g_free (p);
    }
  g_free (norm);
  g_free (probe);
  return ok;
}

static gpointer
sd_vae_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
             int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  SdVae *v = g_new0 (SdVae, 1);
  int *ch = NULL, n_ch = 0, lpb, lc, out_c, top;
  gboolean post_quant, attn;

  v->be = be;
  v->st = st;
  v->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_tensor_free);
  if (json_object_has_member (config, "block_out_channels"))
    {
      if (!cfg_int_list (config, "block_out_channels", TRUE, 1, 8192, &ch, &n_ch, where, error))
        goto fail;
    }
  else
    {
      static const int def[] = { 128, 256, 512, 512 };
      ch = g_memdup2 (def, sizeof def);
      n_ch = G_N_ELEMENTS (def);
    }
  if (!cfg_int (config, "layers_per_block", 2, FALSE, 0, 16, &lpb, where, error) ||
      !cfg_int (config, "latent_channels", 4, FALSE, 1, GFCG_MAX_LATENT_CHANNELS, &lc, where,
                error) ||
      !cfg_int (config, "norm_num_groups", 32, FALSE, 1, 1024, &v->groups, where, error) ||
      !cfg_int (config, "out_channels", 3, FALSE, 3, 3, &out_c, where, error))
    goto fail;
  if (!cfg_bool (config, "use_post_quant_conv", TRUE, &post_quant, where, error) ||
      !cfg_bool (config, "mid_block_add_attention", TRUE, &attn, where, error))
    goto fail;
  if (n_ch < 1 || n_ch > VAE_MAX_LEVELS)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'block_out_channels' needs 1 to %d entries", where, VAE_MAX_LEVELS);
      goto fail;
    }
  for (int i = 0; i < n_ch; i++)
    if (ch[i] % v->groups != 0)
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                     "%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d",
                     where, i, ch[i], v->groups);
        goto fail;
      }
  v->n_levels = n_ch;
  v->per_level = lpb + 1;
  v->has_attn = attn;
  v->res = g_new0 (VaeResnet, (gsize) n_ch * v->per_level);
  top = ch[n_ch - 1];

  if ((post_quant && !load_pair (v, "post_quant_conv", lc, lc, 1, &v->pq_w, &v->pq_b, error)) ||
      !load_pair (v, "decoder.conv_in", top, lc, 3, &v->in_w, &v->in_b, error) ||
      !load_resnet (v, "decoder.mid_block.resnets.0", top, top, &v->mid[0], error) ||
      (attn && !load_attention (v, top, error)) ||
      !load_resnet (v, "decoder.mid_block.resnets.1", top, top, &v->mid[1], error))
    goto fail;
  /* Up block i works at reversed(block_out_channels)[i]; its first resnet
   * takes the previous block's width. */
  for (int i = 0, cin = top; i < n_ch; i++)
    {
      int cout = ch[n_ch - 1 - i];
      for (int j = 0; j < v->per_level; j++)
        {
          char *p = g_strdup_printf ("decoder.up_blocks.%d.resnets.%d", i, j);
          gboolean ok = load_resnet (v, p, j == 0 ? cin : cout, cout,
                                     &v->res[i * v->per_level + j], error);
          g_free (p);
          if (!ok)
            goto fail;
        }
      if (i < n_ch - 1)
        {
          char *p = g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0.conv", i);
          gboolean ok = load_pair (v, p, cout, cout, 3, &v->up_w[i], &v->up_b[i], error);
          g_free (p);
          if (!ok)
            goto fail;
        }
      cin = cout;
    }
  if (!load_pair (v, "decoder.conv_norm_out", ch[0], 0, 0, &v->out_ng, &v->out_nb, error) ||
      !load_pair (v, "decoder.conv_out", out_c, ch[0], 3, &v->out_w, &v->out_b, error))
    goto fail;
  *latent_channels = lc;
  *factor = 1 << (n_ch - 1);
  *n_params = v->n_params;
  v->st = NULL;
  g_free (ch);
  return v;

fail:
  g_free (ch);
  sd_vae_free (v);
  return NULL;
}

/* ResnetBlock2D: x' = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))).
 * x [N, cin, H, W] -> h, s, y [N, cout, H, W]. */
static GfcgTensor *
resnet (SdVae *v, const VaeResnet *r, const GfcgTensor *x)
{
  GfcgTensor *h = gfcg_op_group_norm (x, v->groups, VAE_EPS, r->n1g, r->n1b, TRUE), *s;
  GfcgConvPost add;
  gfcg_tensor_set (&h, gfcg_op_conv2d (h, r->c1w, r->c1b, 1, 1));
  gfcg_tensor_set (&h, gfcg_op_group_norm (h, v->groups, VAE_EPS, r->n2g, r->n2b, TRUE));
  s = r->sw != NULL ? gfcg_op_conv2d (x, r->sw, r->sb, 1, 0) : NULL;
  /* the shortcut added by conv2 itself */
  add = gfcg_post_add (s != NULL ? s : x, GFCG_ACT_NONE);
  gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, r->c2w, r->c2b, 1, 1, &add));
  gfcg_tensor_free (s);
  return h;
}

/* The mid block's attention over all pixels, one head, with a residual.
 * x [N, C, H, W] -> h, q, k, val, y [N, C, H, W]. */
static GfcgTensor *
attention (SdVae *v, const GfcgTensor *x)
{
  const VaeAttn *a = &v->attn;
  GfcgTensor *h = gfcg_op_group_norm (x, v->groups, VAE_EPS, a->ng, a->nb, FALSE);
  GfcgTensor *q = gfcg_op_conv2d (h, a->qw, a->qb, 1, 0);
  GfcgTensor *k = gfcg_op_conv2d (h, a->kw, a->kb, 1, 0);
  GfcgTensor *val = gfcg_op_conv2d (h, a->vw, a->vb, 1, 0);
  float scale = x != NULL ? (float) (1.0 / sqrt ((double) x->shape[1])) : 1.0f;
  GfcgConvPost add = gfcg_post_add (x, GFCG_ACT_NONE);

  gfcg_tensor_set (&h, gfcg_op_attention_qkv (q, k, val, 1, scale));
  gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, a->ow, a->ob, 1, 0, &add)); /* x + proj */
  gfcg_tensor_free (q);
  gfcg_tensor_free (k);
  gfcg_tensor_free (val);
  return h;
}

static GfcgTensor *
sd_vae_forward (gpointer p, const GfcgTensor *z)
{
  SdVae *v = p;
  /* z [N, lc, h, w] -> t [N, lc, h, w] -> conv_in, mid block [N, ch[L-1], h, w] */
  GfcgTensor *t = v->pq_w != NULL ? gfcg_op_conv2d (z, v->pq_w, v->pq_b, 1, 0) : NULL;

  gfcg_tensor_set (&t, gfcg_op_conv2d (t != NULL ? t : z, v->in_w, v->in_b, 1, 1));
  gfcg_tensor_set (&t, resnet (v, &v->mid[0], t));
  if (v->has_attn)
    gfcg_tensor_set (&t, attention (v, t));
  gfcg_tensor_set (&t, resnet (v, &v->mid[1], t));
  for (int i = 0; i < v->n_levels; i++)
    {
      /* t [N, ch[L-1-i], 2^i h, 2^i w], then 2x by the upsampler but in the last */
      for (int j = 0; j < v->per_level; j++)
        gfcg_tensor_set (&t, resnet (v, &v->res[i * v->per_level + j], t));
      if (i < v->n_levels - 1)
        {
          gfcg_tensor_set (&t, gfcg_op_resample (t, GFCG_RESAMPLE_UP));
          gfcg_tensor_set (&t, gfcg_op_conv2d (t, v->up_w[i], v->up_b[i], 1, 1));
        }
    }
  gfcg_tensor_set (&t, gfcg_op_group_norm (t, v->groups, VAE_EPS, v->out_ng, v->out_nb, TRUE));
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
