/* cls-resnet50.c — torchvision's ResNet-50 (He et al. 2016, torchvision's
 * "v1.5": the stride of a downsampling bottleneck is on its 3x3 conv),
 * read from torchvision's own state-dict names (docs/pack-format.md,
 * "resnet-50").  Batch norm (inference form, running statistics) is folded
 * into the bias-free convolutions here, on the host, at load time, so the
 * network runs as plain conv + bias. */
#include "gfcg-private.h"

#include <math.h>

#define N_STAGES 4
#define EXPANSION 4

static const int stage_blocks[N_STAGES] = { 3, 4, 6, 3 };
static const int stage_widths[N_STAGES] = { 64, 128, 256, 512 };

typedef struct
{
  int         stride;
  /* width = stage_widths[s], cin = 64 (first block) or the previous block's 4 width:
   * w1 [width, cin, 1, 1], w2 [width, width, 3, 3], w3 [4 width, width, 1, 1],
   * wd [4 width, cin, 1, 1] (first block of a stage); b1, b2 [width], b3, bd [4 width] */
  GfcgTensor *w1, *b1, *w2, *b2, *w3, *b3, *wd, *bd; /* wd/bd: downsample or NULL */
} Bottleneck;

typedef struct
{
  GfcgBackend *be;
  double       eps;
  /* stem_w [64, 3, 7, 7], stem_b [64], fc_w [n_outputs, 2048], fc_b [n_outputs]
   * (n_outputs = num_classes + label_offset) */
  GfcgTensor  *stem_w, *stem_b, *fc_w, *fc_b;
  GArray      *blocks; /* Bottleneck */
  gsize        n_params;
} ResNet50;

static void
resnet50_free (gpointer p)
{
  ResNet50 *r = p;
  if (r == NULL)
    return;
  gfcg_tensor_free (r->stem_w);
  gfcg_tensor_free (r->stem_b);
  gfcg_tensor_free (r->fc_w);
  gfcg_tensor_free (r->fc_b);
  for (guint i = 0; r->blocks != NULL && i < r->blocks->len; i++)
    {
      Bottleneck *b = &g_array_index (r->blocks, Bottleneck, i);
      GfcgTensor *ts[] = { b->w1, b->b1, b->w2, b->b2, b->w3, b->b3, b->wd, b->bd };
      for (guint j = 0; j < G_N_ELEMENTS (ts); j++)
        gfcg_tensor_free (ts[j]);
    }
  if (r->blocks != NULL)
    g_array_unref (r->blocks);
  g_free (r);
}


static GfcgTensor *
upload (GfcgBackend *be, int ndim, const int *shape, const float *host, GError **error)
{
  GfcgTensor *t = gfcg_tensor_from_host (be, ndim, shape, host);
  if (t == NULL)
    gfcg_backend_take_error (be, error);
  return t;
}

/* Conv "conv" [o, i, k, k] without bias followed by BatchNorm2d "bn": uploads
 * W' = W s and b' = beta - mean s with s = gamma / sqrt(var + eps) per
 * output channel (what the conv + batch norm pair computes in eval mode). */
static gboolean
load_conv_bn (ResNet50 *r, GfcgSafetensors *st, const char *conv, const char *bn, int o,
              int i, int k, GfcgTensor **w, GfcgTensor **b, GError **error)
{
  static const char *const fields[] = { "weight", "bias", "running_mean", "running_var" };
  char *kw = g_strconcat (conv, ".weight", NULL);
  float *wt = gfcg_st_read (st, kw, 4, SHAPE (o, i, k, k), error);
  float *bnv[4] = { NULL };
  float *bias = NULL;
  gsize fan_in = (gsize) i * k * k;
  gboolean ok = wt != NULL;

  g_free (kw);
  for (int f = 0; ok && f < 4; f++)
    {
      char *kb = g_strconcat (bn, ".", fields[f], NULL);
      ok = (bnv[f] = gfcg_st_read (st, kb, 1, SHAPE (o), error)) != NULL;
      g_free (kb);
    }
  if (ok)
    {
      bias = g_new (float, o);
      for (int c = 0; c < o; c++)
        {
          double var = bnv[3][c];
          double s;
          if (!(var >= 0.0))
            {
              g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                           "%s: tensor '%s.running_var' has a negative entry (%g)",
                           gfcg_st_path (st), bn, var);
              ok = FALSE;
              break;
            }
          s = bnv[0][c] / sqrt (var + r->eps);
          for (gsize q = 0; q < fan_in; q++)
            wt[c * fan_in + q] = (float) (wt[c * fan_in + q] * s);
          bias[c] = (float) (bnv[1][c] - bnv[2][c] * s);
        }
    }
  if (ok)
    ok = (*w = upload (r->be, 4, (int[]) { o, i, k, k }, wt, error)) != NULL &&
         (*b = upload (r->be, 1, (int[]) { o }, bias, error)) != NULL;
  if (ok)
    r->n_params += (gsize) o * fan_in + 4 * (gsize) o;
  g_free (wt);
  g_free (bias);
  for (int f = 0; f < 4; f++)
    g_free (bnv[f]);
  return ok;
}

static gpointer
resnet50_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, int n_outputs,
               gsize *n_params, GError **error)
{
  ResNet50 *r = g_new0 (ResNet50, 1);
  int cin = 64;

  r->be = be;
  r->blocks = g_array_new (FALSE, TRUE, sizeof (Bottleneck));
  if (!cfg_double (config, "bn_eps", 1e-5, FALSE, &r->eps, "component 'classifier'", error))
    goto fail;
  if (!(r->eps > 0.0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "component 'classifier': 'bn_eps' must be > 0");
      goto fail;
    }
  if (!load_conv_bn (r, st, "conv1", "bn1", 64, 3, 7, &r->stem_w, &r->stem_b, error))
    goto fail;
  for (int s = 0; s < N_STAGES; s++)
    for (int i = 0; i < stage_blocks[s]; i++)
      {
        Bottleneck b = { 0 };
        int width = stage_widths[s], cout = width * EXPANSION;
        char *p = g_strdup_printf ("layer%d.%d", s + 1, i);
        char *k[8];
        gboolean ok;
        for (int j = 0; j < 3; j++)
          {
            k[2 * j] = g_strdup_printf ("%s.conv%d", p, j + 1);
            k[2 * j + 1] = g_strdup_printf ("%s.bn%d", p, j + 1);
          }
        k[6] = g_strconcat (p, ".downsample.0", NULL);
        k[7] = g_strconcat (p, ".downsample.1", NULL);
        b.stride = s > 0 && i == 0 ? 2 : 1;
        ok = load_conv_bn (r, st, k[0], k[1], width, cin, 1, &b.w1, &b.b1, error) &&
             load_conv_bn (r, st, k[2], k[3], width, width, 3, &b.w2, &b.b2, error) &&
             load_conv_bn (r, st, k[4], k[5], cout, width, 1, &b.w3, &b.b3, error) &&
             (i > 0 ||
              load_conv_bn (r, st, k[6], k[7], cout, cin, 1, &b.wd, &b.bd, error));
        g_array_append_val (r->blocks, b);
        g_free (p);
        for (int j = 0; j < 8; j++)
          g_free (k[j]);
        if (!ok)
          goto fail;
        cin = cout;
      }
  if ((r->fc_w = weight_load (be, st, "fc.weight", 2, SHAPE (n_outputs, cin), error)) == NULL ||
      (r->fc_b = weight_load (be, st, "fc.bias", 1, SHAPE (n_outputs), error)) == NULL)
    goto fail;
  r->n_params += r->fc_w->numel + r->fc_b->numel;
  *n_params = r->n_params;
  return r;

fail:
  resnet50_free (r);
  return NULL;
}

static GfcgTensor *
resnet50_forward (gpointer p, const GfcgTensor *x)
{
  ResNet50 *r = p;
  /* x [N, 3, R, R] (R = resolution) -> t [N, 64, ceil(R/2), ceil(R/2)] */
  GfcgConvPost stem = gfcg_post_act (GFCG_ACT_RELU);
  GfcgTensor *t = gfcg_op_conv2d_fused (x, r->stem_w, r->stem_b, 2, 3, &stem);

  gfcg_tensor_set (&t, gfcg_op_maxpool (t, 3, 2, 1)); /* [N, 64, ceil(R/4), ceil(R/4)] */
  for (guint i = 0; i < r->blocks->len; i++)
    {
      Bottleneck *b = &g_array_index (r->blocks, Bottleneck, i);
      /* t [N, cin, H, W] -> h [N, width, H, W] -> h [N, width, H', W'] -> h, skip, then t
       * [N, 4 width, H', W'], H' = ceil(H / stride) */
      GfcgConvPost r_ = gfcg_post_act (GFCG_ACT_RELU), add;
      GfcgTensor *h = gfcg_op_conv2d_fused (t, b->w1, b->b1, 1, 0, &r_);
      GfcgTensor *skip = b->wd != NULL ? gfcg_op_conv2d (t, b->wd, b->bd, b->stride, 0) : NULL;
      gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, b->w2, b->b2, b->stride, 1, &r_));
      add = gfcg_post_add (skip != NULL ? skip : t, GFCG_ACT_RELU);
      gfcg_tensor_set (&h, gfcg_op_conv2d_fused (h, b->w3, b->b3, 1, 0, &add));
      gfcg_tensor_free (skip);
      gfcg_tensor_set (&t, h); /* relu (conv3 + skip) */
    }
  /* t [N, 2048, ceil(R/32), ceil(R/32)] (224: 7 x 7) */
  gfcg_tensor_set (&t, gfcg_op_avgpool_global (t));           /* [N, 2048] */
  gfcg_tensor_set (&t, gfcg_op_linear (t, r->fc_w, r->fc_b)); /* [N, n_outputs] */
  return t;
}

const ClassifierArch classifier_arch_resnet50 = {
  .name = "resnet-50",
  .load = resnet50_load,
  .forward = resnet50_forward,
  .free = resnet50_free,
};
