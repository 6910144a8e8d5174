/* cls-resnet-cnn.c — the packs' small ResNet-style guidance classifier
 * (docs/pack-format.md, "resnet-cnn"): conv + folded batch norm + ReLU
 * residual blocks, global average pooling, a linear head. */
#include "gfcg-private.h"

typedef struct
{
  int         stride, cin, cout;
  /* w1 [cout, cin, 3, 3], w2 [cout, cout, 3, 3], ws [cout, cin, 1, 1]; b1, b2, bs [cout] */
  GfcgTensor *w1, *b1, *w2, *b2, *ws, *bs; /* ws/bs: projection skip or NULL */
} ResBlock;

typedef struct
{
  GfcgBackend *be;
  /* stem_w [widths[0], 3, 3, 3], stem_b [widths[0]], fc_w [n_outputs, C], fc_b
   * [n_outputs]; C: the last block's cout (widths[0] if there is none); n_outputs =
   * num_classes + label_offset. */
  GfcgTensor  *stem_w, *stem_b, *fc_w, *fc_b;
  GArray      *blocks; /* ResBlock */
  gsize        n_params;
} ResnetCnn;

static void
resnet_cnn_free (gpointer p)
{
  ResnetCnn *c = p;
  if (c == NULL)
    return;
  gfcg_tensor_free (c->stem_w);
  gfcg_tensor_free (c->stem_b);
  gfcg_tensor_free (c->fc_w);
  gfcg_tensor_free (c->fc_b);
  for (guint i = 0; c->blocks != NULL && i < c->blocks->len; i++)
    {
      ResBlock *b = &g_array_index (c->blocks, ResBlock, i);
      GfcgTensor *ts[] = { b->w1, b->b1, b->w2, b->b2, b->ws, b->bs };
      for (guint j = 0; j < G_N_ELEMENTS (ts); j++)
        gfcg_tensor_free (ts[j]);
    }
  if (c->blocks != NULL)
    g_array_unref (c->blocks);
  g_free (c);
}


/* conv weight [o, i, k, k] (k 0: linear [o, i]) and bias [o] under
 * "prefix.weight" / "prefix.bias". */
static gboolean
load_conv (ResnetCnn *c, GfcgSafetensors *st, const char *prefix, int o, int i, int k,
           GfcgTensor **w, GfcgTensor **b, GError **error)
{
  return weight_load_conv (c->be, st, prefix, o, i, k, w, b, &c->n_params, error);
}

static gpointer
resnet_cnn_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, int n_outputs,
                 gsize *n_params, GError **error)
{
  const char *where = "component 'classifier'";
  ResnetCnn *c = g_new0 (ResnetCnn, 1);
  int *widths = NULL, *blocks = NULL, n_w = 0, n_b = 0, cin;

  c->be = be;
  c->blocks = g_array_new (FALSE, TRUE, sizeof (ResBlock));
  if (!cfg_int_list (config, "widths", TRUE, 1, 4096, &widths, &n_w, where, error) ||
      !cfg_int_list (config, "blocks", TRUE, 0, 64, &blocks, &n_b, where, error))
    goto fail;
  if (n_w < 1 || n_w != n_b)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'widths' and 'blocks' must be lists of the same length", where);
      goto fail;
    }
  if (!load_conv (c, st, "stem", widths[0], 3, 3, &c->stem_w, &c->stem_b, error))
    goto fail;
  cin = widths[0];
  for (int s = 0; s < n_w; s++)
    for (int b = 0; b < blocks[s]; b++)
      {
        ResBlock rb = { 0 };
        char *p = g_strdup_printf ("stages.%d.%d", s, b);
        char *k1 = g_strconcat (p, ".conv1", NULL), *k2 = g_strconcat (p, ".conv2", NULL);
        char *ks = g_strconcat (p, ".skip", NULL);
        gboolean ok;
        rb.stride = (s > 0 && b == 0) ? 2 : 1;
        rb.cin = cin;
        rb.cout = widths[s];
        ok = load_conv (c, st, k1, rb.cout, rb.cin, 3, &rb.w1, &rb.b1, error) &&
             load_conv (c, st, k2, rb.cout, rb.cout, 3, &rb.w2, &rb.b2, error) &&
             (rb.stride == 1 && rb.cin == rb.cout ? TRUE
              : load_conv (c, st, ks, rb.cout, rb.cin, 1, &rb.ws, &rb.bs, error));
        g_array_append_val (c->blocks, rb);
        g_free (p);
        g_free (k1);
        g_free (k2);
        g_free (ks);
        if (!ok)
          goto fail;
        cin = rb.cout;
      }
  if (!load_conv (c, st, "fc", n_outputs, cin, 0, &c->fc_w, &c->fc_b, error))
    goto fail;
  g_free (widths);
  g_free (blocks);
  *n_params = c->n_params;
  return c;

fail:
  g_free (widths);
  g_free (blocks);
  resnet_cnn_free (c);
  return NULL;
}

static GfcgTensor *
resnet_cnn_forward (gpointer p, const GfcgTensor *x)
{
  ResnetCnn *c = p;
  /* x [N, 3, R, R] (R = resolution) -> t [N, widths[0], R, R] */
  GfcgConvPost relu = gfcg_post_act (GFCG_ACT_RELU);
  GfcgTensor *t = gfcg_op_conv2d_fused (x, c->stem_w, c->stem_b, 1, 1, &relu);

  for (guint i = 0; i < c->blocks->len; i++)
    {
      ResBlock *b = &g_array_index (c->blocks, ResBlock, i);
      GfcgTensor *r, *skip;
      GfcgConvPost add;
      /* t [N, cin, H, W] -> r, skip, t [N, cout, H', W'], H' = (H - 1) / stride + 1 */
      r = gfcg_op_conv2d_fused (t, b->w1, b->b1, b->stride, 1, &relu);
      skip = b->ws != NULL ? gfcg_op_conv2d (t, b->ws, b->bs, b->stride, 0) : NULL;
      add = gfcg_post_add (skip != NULL ? skip : t, GFCG_ACT_RELU);
      gfcg_tensor_set (&r, gfcg_op_conv2d_fused (r, b->w2, b->b2, 1, 1, &add));
      gfcg_tensor_free (skip);
      gfcg_tensor_set (&t, r); /* relu (conv2 + skip) */
    }
  gfcg_tensor_set (&t, gfcg_op_avgpool_global (t));           /* [N, C] */
  gfcg_tensor_set (&t, gfcg_op_linear (t, c->fc_w, c->fc_b)); /* [N, n_outputs] */
  return t;
}

const ClassifierArch classifier_arch_resnet_cnn = {
  .name = "resnet-cnn",
  .load = resnet_cnn_load,
  .forward = resnet_cnn_forward,
  .free = resnet_cnn_free,
};
