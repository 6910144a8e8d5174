/* vae-blocks.c — what the Stable Diffusion VAE's decoder (dec-sd-vae.c) and
 * encoder (enc-sd-vae.c) share: their config, reading weights under
 * diffusers' AutoencoderKL names, the ResnetBlock2D and the mid block
 * (resnet, single-head attention over all pixels, resnet).
 *
 * GroupNorm eps 1e-6 everywhere; the attention's scale is 1/sqrt(C). */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

#define VAE_EPS 1e-6f

void
vae_weights_init (VaeWeights *v, GfcgBackend *be, GfcgSafetensors *st)
{
  v->be = be;
  v->st = st;
  v->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_tensor_free);
  v->n_params = 0;
}

void
vae_weights_clear (VaeWeights *v)
{
  g_clear_pointer (&v->owned, g_ptr_array_unref);
}

GfcgTensor *
vae_take (VaeWeights *v, GfcgTensor *t)
{
  if (t != NULL)
    {
      g_ptr_array_add (v->owned, t);
      v->n_params += t->numel;
    }
  return t;
}

gboolean
vae_config_read (JsonObject *config, const char *quant_key, const char *rgb_key,
                 const char *where, VaeConfig *c, GError **error)
{
  int *ch = NULL, n_ch = 0, rgb;
  gboolean ok = FALSE;

  memset (c, 0, sizeof *c);
  if (json_object_has_member (config, "block_out_channels"))
    {
      if (!cfg_int_list (config, "block_out_channels", TRUE, 1, 8192, &ch, &n_ch, where, error))
        return FALSE;
    }
  else
    {
      static const int def[] = { 128, 256, 512, 512 };
      ch = g_memdup2 (def, sizeof def);
      n_ch = G_N_ELEMENTS (def);
    }
  if (!cfg_int (config, "layers_per_block", 2, FALSE, 0, 16, &c->layers_per_block, where,
                error) ||
      !cfg_int (config, "latent_channels", 4, FALSE, 1, GFCG_MAX_LATENT_CHANNELS,
                &c->latent_channels, where, error) ||
      !cfg_int (config, "norm_num_groups", 32, FALSE, 1, 1024, &c->groups, where, error) ||
      !cfg_int (config, rgb_key, 3, FALSE, 3, 3, &rgb, where, error) ||
      !cfg_bool (config, quant_key, TRUE, &c->quant, where, error) ||
      !cfg_bool (config, "mid_block_add_attention", TRUE, &c->mid_attn, where, error))
    goto out;
  if (n_ch < 1 || n_ch > VAE_MAX_LEVELS)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'block_out_channels' needs 1 to %d entries", where, VAE_MAX_LEVELS);
      goto out;
    }
  for (int i = 0; i < n_ch; i++)
    if (ch[i] % c->groups != 0)
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                     "%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d",
                     where, i, ch[i], c->groups);
        goto out;
      }
  memcpy (c->ch, ch, n_ch * sizeof (int));
  c->n_levels = n_ch;
  ok = TRUE;
out:
  g_free (ch);
  return ok;
}

/* prefix.weight [o, i, k, k] and prefix.bias [o] (k 0: a norm's affine pair
 * prefix.weight [o], prefix.bias [o]). */
gboolean
vae_load_pair (VaeWeights *v, const char *prefix, int o, int i, int k, GfcgTensor **w,
               GfcgTensor **b, GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  *w = vae_take (v, k > 0 ? weight_load (v->be, v->st, kw, 4, SHAPE (o, i, k, k), error)
                          : weight_load (v->be, v->st, kw, 1, SHAPE (o), error));
  *b = *w != NULL ? vae_take (v, weight_load (v->be, v->st, kb, 1, SHAPE (o), error)) : NULL;
  g_free (kw);
  g_free (kb);
  return *w != NULL && *b != NULL;
}

/* An attention projection: a linear layer [c, c] (diffusers) or its 1x1
 * conv form [c, c, 1, 1]; either becomes a 1x1 convolution. */
static gboolean
load_proj (VaeWeights *v, const char *prefix, int c, GfcgTensor **w, GfcgTensor **b,
           GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  const GfcgStEntry *e = gfcg_st_lookup (v->st, kw);
  gboolean conv = e != NULL && e->ndim == 4;
  float *host = conv ? gfcg_st_read (v->st, kw, 4, SHAPE (c, c, 1, 1), error)
                     : gfcg_st_read (v->st, kw, 2, SHAPE (c, c), error);

  *w = *b = NULL;
  if (host != NULL)
    {
      *w = vae_take (v, gfcg_tensor_from_host (v->be, 4, (int[]) { c, c, 1, 1 }, host));
      if (*w == NULL)
        gfcg_backend_take_error (v->be, error);
      else
        *b = vae_take (v, weight_load (v->be, v->st, kb, 1, SHAPE (c), error));
    }
  g_free (host);
  g_free (kw);
  g_free (kb);
  return *w != NULL && *b != NULL;
}

gboolean
vae_load_resnet (VaeWeights *v, const char *prefix, int cin, int cout, VaeResnet *r,
                 GError **error)
{
  char *p[5];
  gboolean ok;
  const char *parts[] = { "norm1", "conv1", "norm2", "conv2", "conv_shortcut" };
  for (int i = 0; i < 5; i++)
    p[i] = g_strconcat (prefix, ".", parts[i], NULL);
  ok = vae_load_pair (v, p[0], cin, 0, 0, &r->n1g, &r->n1b, error) &&
       vae_load_pair (v, p[1], cout, cin, 3, &r->c1w, &r->c1b, error) &&
       vae_load_pair (v, p[2], cout, 0, 0, &r->n2g, &r->n2b, error) &&
       vae_load_pair (v, p[3], cout, cout, 3, &r->c2w, &r->c2b, error) &&
       (cin == cout || vae_load_pair (v, p[4], cout, cin, 1, &r->sw, &r->sb, error));
  for (int i = 0; i < 5; i++)
    g_free (p[i]);
  return ok;
}

/* PREFIX.attentions.0.*: the mid block's attention. */
static gboolean
load_attention (VaeWeights *v, const char *prefix, int c, VaeAttn *a, GError **error)
{
  char *pre = g_strconcat (prefix, ".attentions.0", NULL);
  /* Older files (sd-vae-ft-mse among them) name the projections
   * query/key/value/proj_attn; newer ones to_q/to_k/to_v/to_out.0. */
  char *probe = g_strconcat (pre, ".to_q.weight", NULL);
  gboolean modern = gfcg_st_lookup (v->st, probe) != NULL;
  const char *names[4] = { modern ? "to_q" : "query", modern ? "to_k" : "key",
                           modern ? "to_v" : "value", modern ? "to_out.0" : "proj_attn" };
  GfcgTensor **slots[4][2] = { { &a->qw, &a->qb }, { &a->kw, &a->kb },
                               { &a->vw, &a->vb }, { &a->ow, &a->ob } };
  char *norm = g_strconcat (pre, ".group_norm", NULL);
  gboolean ok = vae_load_pair (v, norm, c, 0, 0, &a->ng, &a->nb, error);

  for (int i = 0; ok && i < 4; i++)
    {
      char *p = g_strconcat (pre, ".", names[i], NULL);
      ok = load_proj (v, p, c, slots[i][0], slots[i][1], error);
      g_free (p);
    }
  g_free (norm);
  g_free (probe);
  g_free (pre);
  return ok;
}

gboolean
vae_load_mid (VaeWeights *v, const char *prefix, int c, gboolean attn, VaeMid *m,
              GError **error)
{
  char *r0 = g_strconcat (prefix, ".resnets.0", NULL), *r1 = g_strconcat (prefix, ".resnets.1", NULL);
  gboolean ok = vae_load_resnet (v, r0, c, c, &m->res[0], error) &&
                (!attn || load_attention (v, prefix, c, &m->attn, error)) &&
                vae_load_resnet (v, r1, c, c, &m->res[1], error);
  m->has_attn = attn;
  g_free (r0);
  g_free (r1);
  return ok;
}

/* ResnetBlock2D: x' = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))).
 * x [N, cin, H, W] -> h, s, y [N, cout, H, W]. */
gboolean
vae_load_level (VaeWeights *v, const char *blocks, int i, int n, int cin, int cout,
                VaeResnet *res, const char *sampler, GfcgTensor **sw, GfcgTensor **sb,
                GError **error)
{
  gboolean ok = TRUE;

  for (int j = 0; j < n && ok; j++)
    {
      char *p = g_strdup_printf ("%s.%d.resnets.%d", blocks, i, j);
      ok = vae_load_resnet (v, p, j == 0 ? cin : cout, cout, &res[j], error);
      g_free (p);
    }
  if (ok && sampler != NULL)
    {
      char *p = g_strdup_printf ("%s.%d.%s.0.conv", blocks, i, sampler);
      ok = vae_load_pair (v, p, cout, cout, 3, sw, sb, error);
      g_free (p);
    }
  return ok;
}

GfcgTensor *
vae_resnet (const VaeResnet *r, int groups, const GfcgTensor *x)
{
  GfcgTensor *h = gfcg_op_group_norm (x, groups, VAE_EPS, r->n1g, r->n1b, TRUE), *s;
  GfcgConvPost add;

  gfcg_tensor_set (&h, gfcg_op_conv2d (h, r->c1w, r->c1b, 1, 1));
  gfcg_tensor_set (&h, gfcg_op_group_norm (h, groups, VAE_EPS, r->n2g, r->n2b, TRUE));
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
attention (const VaeAttn *a, int groups, const GfcgTensor *x)
{
  GfcgTensor *h = gfcg_op_group_norm (x, groups, VAE_EPS, a->ng, a->nb, FALSE);
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

GfcgTensor *
vae_mid (const VaeMid *m, int groups, const GfcgTensor *x)
{
  GfcgTensor *t = vae_resnet (&m->res[0], groups, x);
  if (m->has_attn)
    gfcg_tensor_set (&t, attention (&m->attn, groups, t));
  gfcg_tensor_set (&t, vae_resnet (&m->res[1], groups, t));
  return t;
}

GfcgTensor *
vae_norm_out (const GfcgTensor *x, int groups, const GfcgTensor *gamma, const GfcgTensor *beta)
{
  return gfcg_op_group_norm (x, groups, VAE_EPS, gamma, beta, TRUE);
}
