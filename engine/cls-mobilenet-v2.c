/* cls-mobilenet-v2.c — MobileNetV2 1.0 (Sandler et al. 2018), the ImageNet
 * classifier of Google's Coral TFLite model (docs/pack-format.md,
 * "mobilenet-v2"): a stride-2 stem, 17 inverted residual blocks (1x1
 * expansion + ReLU6, depthwise 3x3 + ReLU6, linear 1x1 projection), a 1x1
 * conv to 1280 + ReLU6, global average pooling and a linear classifier.
 * Batch norm is folded into every conv (they all have biases).
 *
 * Padding is a config choice: TensorFlow's SAME padding (the TFLite model:
 * at stride 2 on an even size the extra zero row/column is at the bottom/
 * right only) or PyTorch's symmetric padding 1 (torchvision's model). */
#include "gfcg-private.h"

#include <string.h>

#define N_BLOCKS 17
#define HEAD_CHANNELS 1280

/* The inverted-residual settings of MobileNetV2 1.0: expansion t, output
 * channels c, repeats n, stride s of the first repeat. */
static const struct { int t, c, n, s; } stages[] = {
  { 1, 16, 1, 1 }, { 6, 24, 2, 2 }, { 6, 32, 3, 2 }, { 6, 64, 4, 2 },
  { 6, 96, 3, 1 }, { 6, 160, 3, 2 }, { 6, 320, 1, 1 },
};

typedef struct
{
  int         cin, hidden, cout, stride;
  GfcgTensor *ew, *eb;   /* expansion [hidden, cin, 1, 1], [hidden] (NULL when t == 1) */
  GfcgTensor *dw, *db;   /* depthwise [hidden, 1, 3, 3], [hidden] */
  GfcgTensor *pw, *pb;   /* projection [cout, hidden, 1, 1], [cout] */
} InvRes;

typedef struct
{
  GfcgBackend *be;
  gboolean     same;     /* TensorFlow SAME padding, else symmetric */
  /* stem_w [32, 3, 3, 3], stem_b [32], head_w [1280, 320, 1, 1], head_b [1280],
   * fc_w [n_outputs, 1280], fc_b [n_outputs] (n_outputs = num_classes + label_offset) */
  GfcgTensor  *stem_w, *stem_b, *head_w, *head_b, *fc_w, *fc_b;
  InvRes       blocks[N_BLOCKS];
  gsize        n_params;
} MobileNetV2;

static void
mobilenet_v2_free (gpointer p)
{
  MobileNetV2 *m = p;
  if (m == NULL)
    return;
  gfcg_tensor_free (m->stem_w);
  gfcg_tensor_free (m->stem_b);
  gfcg_tensor_free (m->head_w);
  gfcg_tensor_free (m->head_b);
  gfcg_tensor_free (m->fc_w);
  gfcg_tensor_free (m->fc_b);
  for (int i = 0; i < N_BLOCKS; i++)
    {
      InvRes *b = &m->blocks[i];
      GfcgTensor *ts[] = { b->ew, b->eb, b->dw, b->db, b->pw, b->pb };
      for (guint j = 0; j < G_N_ELEMENTS (ts); j++)
        gfcg_tensor_free (ts[j]);
    }
  g_free (m);
}


/* "prefix.weight" of shape [o, i, k, k] (k 0: [o, i]) and "prefix.bias" [o]. */
static gboolean
load_conv (MobileNetV2 *m, GfcgSafetensors *st, const char *prefix, int o, int i, int k,
           GfcgTensor **w, GfcgTensor **b, GError **error)
{
  return weight_load_conv (m->be, st, prefix, o, i, k, w, b, &m->n_params, error);
}

static gpointer
mobilenet_v2_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, int n_outputs,
                   gsize *n_params, GError **error)
{
  MobileNetV2 *m = g_new0 (MobileNetV2, 1);
  const char *padding = NULL;
  int cin = 32, i = 0;

  m->be = be;
  if (!cfg_string (config, "padding", "same", FALSE, &padding, "component 'classifier'", error))
    goto fail;
  if (strcmp (padding, "same") != 0 && strcmp (padding, "torch") != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "component 'classifier': mobilenet-v2 'padding' must be \"same\" "
                   "(TensorFlow) or \"torch\" (symmetric)");
      goto fail;
    }
  m->same = strcmp (padding, "same") == 0;
  if (!load_conv (m, st, "stem", cin, 3, 3, &m->stem_w, &m->stem_b, error))
    goto fail;
  for (guint s = 0; s < G_N_ELEMENTS (stages); s++)
    for (int r = 0; r < stages[s].n; r++, i++)
      {
        InvRes *b = &m->blocks[i];
        char *p = g_strdup_printf ("blocks.%d", i);
        char *ke = g_strconcat (p, ".expand", NULL), *kd = g_strconcat (p, ".depthwise", NULL);
        char *kp = g_strconcat (p, ".project", NULL);
        gboolean ok;
        b->cin = cin;
        b->hidden = cin * stages[s].t;
        b->cout = stages[s].c;
        b->stride = r == 0 ? stages[s].s : 1;
        ok = (stages[s].t == 1 ||
              load_conv (m, st, ke, b->hidden, cin, 1, &b->ew, &b->eb, error)) &&
             load_conv (m, st, kd, b->hidden, 1, 3, &b->dw, &b->db, error) &&
             load_conv (m, st, kp, b->cout, b->hidden, 1, &b->pw, &b->pb, error);
        g_free (p);
        g_free (ke);
        g_free (kd);
        g_free (kp);
        if (!ok)
          goto fail;
        cin = b->cout;
      }
  g_assert (i == N_BLOCKS);
  if (!load_conv (m, st, "head", HEAD_CHANNELS, cin, 1, &m->head_w, &m->head_b, error) ||
      !load_conv (m, st, "classifier", n_outputs, HEAD_CHANNELS, 0, &m->fc_w, &m->fc_b, error))
    goto fail;
  *n_params = m->n_params;
  return m;

fail:
  mobilenet_v2_free (m);
  return NULL;
}

/* A 3x3 conv (stem or depthwise) with the configured padding: x [N, Cin, H, W]
 * -> [N, Cout, ceil(H / stride), ceil(W / stride)] either way. */
static GfcgTensor *
conv3x3 (const MobileNetV2 *m, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *b,
         int stride, int groups)
{
  GfcgConvParams p;
  GfcgConvPost post = gfcg_post_act (GFCG_ACT_RELU6);
  if (x == NULL)
    return NULL;
  p = m->same ? gfcg_conv_params_same (3, stride, x->shape[2], x->shape[3])
              : gfcg_conv_params (stride, 1, 1);
  p.groups = groups;
  return gfcg_op_conv2d_post (x, w, b, &p, &post); /* ReLU6 fused */
}

/* A 1x1 conv, then ReLU6 (fused). */
static GfcgTensor *
conv1x1_relu6 (const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *b)
{
  GfcgConvPost post = gfcg_post_act (GFCG_ACT_RELU6);
  return gfcg_op_conv2d_fused (x, w, b, 1, 0, &post);
}

static GfcgTensor *
mobilenet_v2_forward (gpointer p, const GfcgTensor *x)
{
  MobileNetV2 *m = p;
  /* x [N, 3, R, R] (R = resolution) -> t [N, 32, ceil(R/2), ceil(R/2)] */
  GfcgTensor *t = conv3x3 (m, x, m->stem_w, m->stem_b, 2, 1);

  for (int i = 0; i < N_BLOCKS; i++)
    {
      InvRes *b = &m->blocks[i];
      /* t [N, cin, H, W] -> h [N, hidden, H, W] -> d [N, hidden, H', W'] -> h, then t
       * [N, cout, H', W'], H' = ceil(H / stride) */
      GfcgTensor *h = b->ew != NULL ? conv1x1_relu6 (t, b->ew, b->eb) : NULL;
      GfcgTensor *d = conv3x3 (m, b->ew != NULL ? h : t, b->dw, b->db, b->stride, b->hidden);
      GfcgConvPost add = gfcg_post_add (t, GFCG_ACT_NONE);
      gfcg_tensor_free (h);
      /* the projection, with the residual added by it when there is one */
      h = gfcg_op_conv2d_fused (d, b->pw, b->pb, 1, 0,
                                b->stride == 1 && b->cin == b->cout ? &add : NULL);
      gfcg_tensor_free (d);
      gfcg_tensor_set (&t, h);
    }
  /* t [N, 320, ceil(R/32), ceil(R/32)] (224: 7 x 7) */
  gfcg_tensor_set (&t, conv1x1_relu6 (t, m->head_w, m->head_b)); /* [N, 1280, ..] */
  gfcg_tensor_set (&t, gfcg_op_avgpool_global (t));           /* [N, 1280] */
  gfcg_tensor_set (&t, gfcg_op_linear (t, m->fc_w, m->fc_b)); /* [N, n_outputs] */
  return t;
}

const ClassifierArch classifier_arch_mobilenet_v2 = {
  .name = "mobilenet-v2",
  .load = mobilenet_v2_load,
  .forward = mobilenet_v2_forward,
  .free = mobilenet_v2_free,
};
