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

#include <string.h>

#define TAESD_MAX_STAGES 8

typedef struct
{
  GfcgBackend     *be;
  GfcgSafetensors *st;       /* during load only */
  const char      *prefix;   /* "" (standalone) or "decoder.layers." (diffusers) */
  int              offset;   /* index shift: 0 standalone, -1 diffusers */
  GPtrArray       *owned;
  gsize            n_params;
  int              n_stages, blocks[TAESD_MAX_STAGES];
  /* in_w [C, latent_channels, 3, 3], in_b [C]; out_w [3, C, 3, 3], out_b [3];
   * up_w[s] [C, C, 3, 3] (no bias) for s < n_stages - 1 */
  GfcgTensor      *in_w, *in_b, *out_w, *out_b, *up_w[TAESD_MAX_STAGES];
  TaesdBlock      *block;    /* all stages' blocks in order */
} Taesd;


static void
taesd_free (gpointer p)
{
  Taesd *t = p;
  if (t == NULL)
    return;
  if (t->owned != NULL)
    g_ptr_array_unref (t->owned);
  g_free (t->block);
  g_free (t);
}

/* Layer `index` of the standalone Sequential, ".suffix" appended. */
static GfcgTensor *
load (Taesd *t, int index, const char *suffix, int ndim, const gint64 *shape, GError **error)
{
  char *key = g_strdup_printf ("%s%d%s", t->prefix, index + t->offset, suffix);
  GfcgTensor *w = weight_load (t->be, t->st, key, ndim, shape, error);
  g_free (key);
  if (w != NULL)
    {
      g_ptr_array_add (t->owned, w);
      t->n_params += w->numel;
    }
  return w;
}

static gpointer
taesd_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
            int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  Taesd *t = g_new0 (Taesd, 1);
  int *nb = NULL, n_nb = 0, lc, c, idx, total = 0, k = 0;

  t->be = be;
  t->st = st;
  t->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_tensor_free);
  if (json_object_has_member (config, "num_blocks"))
    {
      if (!cfg_int_list (config, "num_blocks", TRUE, 0, 64, &nb, &n_nb, where, error))
        goto fail;
    }
  else
    {
      static const int def[] = { 3, 3, 3, 1 };
      nb = g_memdup2 (def, sizeof def);
      n_nb = G_N_ELEMENTS (def);
    }
  if (!cfg_int (config, "latent_channels", 4, FALSE, 1, GFCG_MAX_LATENT_CHANNELS, &lc, where,
                error) ||
      !cfg_int (config, "channels", 64, FALSE, 1, 8192, &c, where, error))
    goto fail;
  if (n_nb < 1 || n_nb > TAESD_MAX_STAGES)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'num_blocks' needs 1 to %d entries", where, TAESD_MAX_STAGES);
      goto fail;
    }
  t->n_stages = n_nb;
  for (int s = 0; s < n_nb; s++)
    total += t->blocks[s] = nb[s];
  t->block = g_new0 (TaesdBlock, MAX (total, 1));

  /* Which naming: diffusers' AutoencoderTiny has no clamp layer in its
   * Sequential, so every index is one less. */
  if (gfcg_st_lookup (st, "decoder.layers.0.weight") != NULL)
    {
      t->prefix = "decoder.layers.";
      t->offset = -1;
    }
  else if (gfcg_st_lookup (st, "1.weight") != NULL)
    t->prefix = "";
  else
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: %s holds neither TAESD decoder naming (tensor '1.weight' of the "
                   "standalone file, or 'decoder.layers.0.weight' of diffusers' AutoencoderTiny)",
                   where, gfcg_st_path (st));
      goto fail;
    }

  if ((t->in_w = load (t, 1, ".weight", 4, SHAPE (c, lc, 3, 3), error)) == NULL ||
      (t->in_b = load (t, 1, ".bias", 1, SHAPE (c), error)) == NULL)
    goto fail;
  idx = 3; /* after the clamp, conv and ReLU */
  for (int s = 0; s < n_nb; s++)
    {
      for (int b = 0; b < t->blocks[s]; b++, k++, idx++)
        for (int j = 0; j < 3; j++)
          {
            char *sw = g_strdup_printf (".conv.%d.weight", 2 * j);
            char *sb = g_strdup_printf (".conv.%d.bias", 2 * j);
            gboolean ok = (t->block[k].w[j] = load (t, idx, sw, 4, SHAPE (c, c, 3, 3), error)) &&
                          (t->block[k].b[j] = load (t, idx, sb, 1, SHAPE (c), error));
            g_free (sw);
            g_free (sb);
            if (!ok)
              goto fail;
          }
      if (s < n_nb - 1)
        {
          /* idx is the upsampling layer (no weights), idx + 1 its conv. */
          if ((t->up_w[s] = load (t, idx + 1, ".weight", 4, SHAPE (c, c, 3, 3), error)) == NULL)
            goto fail;
          idx += 2;
        }
      else if ((t->out_w = load (t, idx, ".weight", 4, SHAPE (3, c, 3, 3), error)) == NULL ||
               (t->out_b = load (t, idx, ".bias", 1, SHAPE (3), error)) == NULL)
        goto fail;
    }
  *latent_channels = lc;
  *factor = 1 << (n_nb - 1);
  *n_params = t->n_params;
  t->st = NULL;
  g_free (nb);
  return t;

fail:
  g_free (nb);
  taesd_free (t);
  return NULL;
}

/* relu(conv(relu(conv(relu(conv(x))))) + x); x, h [N, C, H, W] (also enc-taesd.c's). */
GfcgTensor *
taesd_block (const TaesdBlock *bl, const GfcgTensor *x)
{
  /* each conv's ReLU, and the residual add and its ReLU, fused into the convs */
  GfcgConvPost relu = gfcg_post_act (GFCG_ACT_RELU);
  GfcgConvPost add_relu = gfcg_post_add (x, GFCG_ACT_RELU);
  GfcgTensor *h = gfcg_op_conv2d_fused (x, bl->w[0], bl->b[0], 1, 1, &relu);

  gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, bl->w[1], bl->b[1], 1, 1, &relu));
  gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, bl->w[2], bl->b[2], 1, 1, &add_relu));
  return h;
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
  for (int s = 0; s < t->n_stages; s++)
    {
      /* x, h [N, C, 2^s h, 2^s w]; 2x after each stage but the last */
      for (int b = 0; b < t->blocks[s]; b++, k++)
        gfcg_tensor_set (&x, taesd_block (&t->block[k], x));
      if (s < t->n_stages - 1)
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
