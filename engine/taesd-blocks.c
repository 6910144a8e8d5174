/* taesd-blocks.c — what TAESD's decoder (dec-taesd.c) and encoder
 * (enc-taesd.c) share: their config (num_blocks, channels,
 * latent_channels), telling the standalone file's naming from diffusers'
 * AutoencoderTiny's, reading a layer of the Sequential by index, and the
 * residual block relu(conv(relu(conv(relu(conv(x))))) + x). */
#include "gfcg-private.h"

#include <string.h>

gboolean
taesd_net_init (TaesdNet *t, GfcgBackend *be, JsonObject *config, GfcgSafetensors *st,
                const char *where, const char *role, const int default_blocks[4], int first,
                GError **error)
{
  int *nb = NULL, n_nb = 0, total = 0;
  char *diffusers = g_strdup_printf ("%s.layers.0.weight", role);
  char *standalone = g_strdup_printf ("%d.weight", first);
  gboolean ok = FALSE;

  memset (t, 0, sizeof *t);
  t->be = be;
  t->st = st;
  t->owned = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_tensor_free);
  if (json_object_has_member (config, "num_blocks"))
    {
      if (!cfg_int_list (config, "num_blocks", TRUE, 0, 64, &nb, &n_nb, where, error))
        goto done;
    }
  else
    {
      nb = g_memdup2 (default_blocks, 4 * sizeof (int));
      n_nb = 4;
    }
  if (!cfg_int (config, "latent_channels", 4, FALSE, 1, GFCG_MAX_LATENT_CHANNELS,
                &t->latent_channels, where, error) ||
      !cfg_int (config, "channels", 64, FALSE, 1, 8192, &t->channels, where, error))
    goto done;
  if (n_nb < 1 || n_nb > TAESD_MAX_STAGES)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'num_blocks' needs 1 to %d entries", where, TAESD_MAX_STAGES);
      goto done;
    }
  t->n_stages = n_nb;
  for (int s = 0; s < n_nb; s++)
    total += t->blocks[s] = nb[s];
  t->block = g_new0 (TaesdBlock, MAX (total, 1));

  /* Which naming: diffusers' AutoencoderTiny keeps the Sequential under
   * "ROLE.layers." but without the decoder's clamp layer (its index 0), so
   * its first conv is always layer 0. */
  if (gfcg_st_lookup (st, diffusers) != NULL)
    {
      t->prefix = role[0] == 'd' ? "decoder.layers." : "encoder.layers.";
      t->offset = -first;
    }
  else if (gfcg_st_lookup (st, standalone) != NULL)
    t->prefix = "";
  else
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: %s holds neither TAESD %s naming (tensor '%s' of the standalone file, "
                   "or '%s' of diffusers' AutoencoderTiny)",
                   where, gfcg_st_path (st), role, standalone, diffusers);
      goto done;
    }
  ok = TRUE;
done:
  g_free (nb);
  g_free (diffusers);
  g_free (standalone);
  return ok;
}

void
taesd_net_clear (TaesdNet *t)
{
  g_clear_pointer (&t->owned, g_ptr_array_unref);
  g_clear_pointer (&t->block, g_free);
  t->st = NULL;
}

GfcgTensor *
taesd_net_load (TaesdNet *t, int index, const char *suffix, int ndim, const gint64 *shape,
                GError **error)
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

gboolean
taesd_net_load_block (TaesdNet *t, int index, TaesdBlock *b, GError **error)
{
  int c = t->channels;

  for (int j = 0; j < 3; j++)
    {
      char *sw = g_strdup_printf (".conv.%d.weight", 2 * j);
      char *sb = g_strdup_printf (".conv.%d.bias", 2 * j);
      gboolean ok = (b->w[j] = taesd_net_load (t, index, sw, 4, SHAPE (c, c, 3, 3), error)) &&
                    (b->b[j] = taesd_net_load (t, index, sb, 1, SHAPE (c), error));
      g_free (sw);
      g_free (sb);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

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
