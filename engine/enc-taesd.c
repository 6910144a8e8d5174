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

#include <string.h>

#define TAESD_MAX_STAGES 8

typedef struct
{
  GfcgBackend     *be;
  GfcgSafetensors *st;       /* during load only */
  const char      *prefix;   /* "" (standalone) or "encoder.layers." (diffusers) */
  GPtrArray       *owned;
  gsize            n_params;
  int              n_stages, blocks[TAESD_MAX_STAGES];
  /* in_w [C, 3, 3, 3], in_b [C]; out_w [latent_channels, C, 3, 3], out_b [latent_channels];
   * down_w[s] [C, C, 3, 3] (no bias) for 0 < s < n_stages */
  GfcgTensor      *in_w, *in_b, *out_w, *out_b, *down_w[TAESD_MAX_STAGES];
  TaesdBlock      *block;    /* all stages' blocks in order */
} TaesdEnc;


static void
taesd_enc_free (gpointer p)
{
  TaesdEnc *t = p;
  if (t == NULL)
    return;
  if (t->owned != NULL)
    g_ptr_array_unref (t->owned);
  g_free (t->block);
  g_free (t);
}

/* Layer `index` of the Sequential, ".suffix" appended. */
static GfcgTensor *
load (TaesdEnc *t, int index, const char *suffix, int ndim, const gint64 *shape, GError **error)
{
  char *key = g_strdup_printf ("%s%d%s", t->prefix, index, suffix);
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
taesd_enc_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
                int *latent_channels, int *factor, gsize *n_params, GError **error)
{
  TaesdEnc *t = g_new0 (TaesdEnc, 1);
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
      static const int def[] = { 1, 3, 3, 3 };
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

  /* Which naming: diffusers' AutoencoderTiny keeps the standalone indices
   * under "encoder.layers.". */
  if (gfcg_st_lookup (st, "encoder.layers.0.weight") != NULL)
    t->prefix = "encoder.layers.";
  else if (gfcg_st_lookup (st, "0.weight") != NULL)
    t->prefix = "";
  else
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: %s holds neither TAESD encoder naming (tensor '0.weight' of the "
                   "standalone file, or 'encoder.layers.0.weight' of diffusers' AutoencoderTiny)",
                   where, gfcg_st_path (st));
      goto fail;
    }

  if ((t->in_w = load (t, 0, ".weight", 4, SHAPE (c, 3, 3, 3), error)) == NULL ||
      (t->in_b = load (t, 0, ".bias", 1, SHAPE (c), error)) == NULL)
    goto fail;
  idx = 1;
  for (int s = 0; s < n_nb; s++)
    {
      /* Every stage but the first starts with its stride-2 conv (no bias). */
      if (s > 0 && (t->down_w[s] = load (t, idx++, ".weight", 4, SHAPE (c, c, 3, 3), error)) == NULL)
        goto fail;
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
    }
  if ((t->out_w = load (t, idx, ".weight", 4, SHAPE (lc, c, 3, 3), error)) == NULL ||
      (t->out_b = load (t, idx, ".bias", 1, SHAPE (lc), error)) == NULL)
    goto fail;
  *latent_channels = lc;
  *factor = 1 << (n_nb - 1);
  *n_params = t->n_params;
  t->st = NULL;
  g_free (nb);
  return t;

fail:
  g_free (nb);
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

  for (int s = 0; s < t->n_stages; s++)
    {
      /* x [N, C, H / 2^s, W / 2^s]: halved by the stage's first conv but in stage 0 */
      if (s > 0)
        gfcg_tensor_set (&x, gfcg_op_conv2d (x, t->down_w[s], NULL, 2, 1));
      for (int b = 0; b < t->blocks[s]; b++, k++)
        gfcg_tensor_set (&x, taesd_block (&t->block[k], x));
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
