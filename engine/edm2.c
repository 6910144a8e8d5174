/* edm2.c — the EDM2 UNet ("Analyzing and Improving the Training Dynamics of
 * Diffusion Models", Karras et al. 2024) with its preconditioning, written
 * once against the backend ops.  Facts: ../shared/docs/edm2.md; tensor names
 * and config: docs/pack-format.md. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

#define EPS 1e-4f

typedef enum { LAYER_CONV, LAYER_BLOCK } LayerKind;

typedef struct
{
  LayerKind    kind;
  char        *name;       /* "enc.64x64_block0" */
  gboolean     enc;        /* flavour */
  gboolean     takes_skip; /* decoder blocks fed mp_cat(x, skip) */
  GfcgResample resample;
  int          cin, cout, heads, head_dim;
  GfcgTensor  *conv;       /* LAYER_CONV: [cout, cin, 3, 3] */
  /* LAYER_BLOCK (weight-normalised at load): conv_res0 [cout, enc ? cout : cin, 3, 3],
   * emb_linear [cout, cemb], conv_res1 [cout, cout, 3, 3], conv_skip [cout, cin, 1, 1]
   * (NULL when cin == cout), attn_qkv [3 cout, cout, 1, 1] and attn_proj
   * [cout, cout, 1, 1] (NULL when heads == 0). */
  GfcgTensor  *conv_res0, *emb_linear, *conv_res1, *conv_skip, *attn_qkv, *attn_proj;
} Layer;

typedef struct
{
  int    img_resolution, img_channels, label_dim, model_channels, num_blocks;
  int   *channel_mult, n_levels;
  int   *attn_res, n_attn;
  int    cnoise, cemb, channels_per_head; /* cnoise, cemb: noise and embedding widths */
  double label_balance, concat_balance, res_balance, attn_balance, clip_act, sigma_data;
} Edm2Config;

typedef struct _Edm2Net Edm2Net;

struct _Edm2Net
{
  GfcgBackend *be;
  Edm2Config   cfg;
  /* freqs, phases [cnoise]; emb_noise [cemb, cnoise]; emb_label [cemb, label_dim]
   * (NULL when label_dim == 0); out_conv [img_channels, c0, 3, 3] with
   * c0 = model_channels * channel_mult[0] (the last decoder block's cout). */
  GfcgTensor  *freqs, *phases, *emb_noise, *emb_label, *out_conv;
  GPtrArray   *enc, *dec; /* Layer* */
  gsize        n_params;
};

static void
layer_free (gpointer p)
{
  Layer *l = p;
  GfcgTensor *ts[] = { l->conv, l->conv_res0, l->emb_linear, l->conv_res1,
                       l->conv_skip, l->attn_qkv, l->attn_proj };
  for (guint i = 0; i < G_N_ELEMENTS (ts); i++)
    gfcg_tensor_free (ts[i]);
  g_free (l->name);
  g_free (l);
}

static void
edm2_free (Edm2Net *net)
{
  if (net == NULL)
    return;
  gfcg_tensor_free (net->freqs);
  gfcg_tensor_free (net->phases);
  gfcg_tensor_free (net->emb_noise);
  gfcg_tensor_free (net->emb_label);
  gfcg_tensor_free (net->out_conv);
  g_clear_pointer (&net->enc, g_ptr_array_unref);
  g_clear_pointer (&net->dec, g_ptr_array_unref);
  g_free (net->cfg.channel_mult);
  g_free (net->cfg.attn_res);
  g_free (net);
}


static gboolean
parse_config (JsonObject *o, Edm2Config *c, const char *where, GError **error)
{
  int mult_noise = 0, mult_emb = 0, max_c = 0;

  if (!cfg_int (o, "img_resolution", 0, TRUE, 1, 4096, &c->img_resolution, where, error) ||
      !cfg_int (o, "img_channels", 0, TRUE, 1, 64, &c->img_channels, where, error) ||
      !cfg_int (o, "label_dim", 0, TRUE, 0, 100000, &c->label_dim, where, error) ||
      !cfg_int (o, "model_channels", 0, TRUE, 1, 4096, &c->model_channels, where, error) ||
      !cfg_int (o, "num_blocks", 0, TRUE, 0, 64, &c->num_blocks, where, error) ||
      !cfg_int_list (o, "channel_mult", TRUE, 1, 64, &c->channel_mult, &c->n_levels, where, error) ||
      !cfg_int_list (o, "attn_resolutions", TRUE, 1, 4096, &c->attn_res, &c->n_attn, where, error) ||
      !cfg_int (o, "channel_mult_noise", 0, FALSE, 0, 64, &mult_noise, where, error) ||
      !cfg_int (o, "channel_mult_emb", 0, FALSE, 0, 64, &mult_emb, where, error) ||
      !cfg_int (o, "channels_per_head", 64, FALSE, 1, 4096, &c->channels_per_head, where, error) ||
      !cfg_double (o, "label_balance", 0.5, FALSE, &c->label_balance, where, error) ||
      !cfg_double (o, "concat_balance", 0.5, FALSE, &c->concat_balance, where, error) ||
      !cfg_double (o, "res_balance", 0.3, FALSE, &c->res_balance, where, error) ||
      !cfg_double (o, "attn_balance", 0.3, FALSE, &c->attn_balance, where, error) ||
      !cfg_double (o, "clip_act", 256, FALSE, &c->clip_act, where, error) ||
      !cfg_double (o, "sigma_data", 0.5, FALSE, &c->sigma_data, where, error))
    return FALSE;
  if (c->n_levels < 1 || c->n_levels > 12 ||
      c->img_resolution % (1 << (c->n_levels - 1)) != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: img_resolution %d cannot be halved %d times", where,
                   c->img_resolution, c->n_levels - 1);
      return FALSE;
    }
  for (int i = 0; i < c->n_levels; i++)
    max_c = MAX (max_c, c->model_channels * c->channel_mult[i]);
  c->cnoise = mult_noise ? c->model_channels * mult_noise : c->model_channels * c->channel_mult[0];
  c->cemb = mult_emb ? c->model_channels * mult_emb : max_c;
  return TRUE;
}

static gboolean
has_attention (const Edm2Config *c, int res)
{
  for (int i = 0; i < c->n_attn; i++)
    if (c->attn_res[i] == res)
      return TRUE;
  return FALSE;
}


static gboolean
load_block (Edm2Net *net, GfcgSafetensors *st, Layer *l, GError **error)
{
  GfcgBackend *be = net->be;
  int cemb = net->cfg.cemb, res0_in = l->enc ? l->cout : l->cin; /* enc: after conv_skip */
  float emb_gain;
  char *key;
  gboolean ok;

#define W(field, suffix, ndim, shape, gain)                                        \
  key = g_strconcat (l->name, "." suffix, NULL);                                   \
  l->field = weight_load_mp (be, st, key, ndim, shape, gain, error);               \
  g_free (key);                                                                    \
  if (l->field == NULL)                                                            \
    return FALSE;                                                                  \
  net->n_params += l->field->numel;

  key = g_strconcat (l->name, ".emb_gain", NULL);
  ok = scalar_load (st, key, &emb_gain, error);
  g_free (key);
  if (!ok)
    return FALSE;
  net->n_params += 1;
  W (conv_res0, "conv_res0.weight", 4, SHAPE (l->cout, res0_in, 3, 3), 1.0f);
  W (emb_linear, "emb_linear.weight", 2, SHAPE (l->cout, cemb), emb_gain);
  W (conv_res1, "conv_res1.weight", 4, SHAPE (l->cout, l->cout, 3, 3), 1.0f);
  if (l->cin != l->cout)
    {
      W (conv_skip, "conv_skip.weight", 4, SHAPE (l->cout, l->cin, 1, 1), 1.0f);
    }
  if (l->heads > 0)
    {
      W (attn_qkv, "attn_qkv.weight", 4, SHAPE (3 * l->cout, l->cout, 1, 1), 1.0f);
      W (attn_proj, "attn_proj.weight", 4, SHAPE (l->cout, l->cout, 1, 1), 1.0f);
    }
#undef W
  return TRUE;
}

static Layer *
add_layer (GPtrArray *list, LayerKind kind, const char *part, int res, const char *what,
           gboolean enc, int cin, int cout)
{
  Layer *l = g_new0 (Layer, 1);
  l->kind = kind;
  l->name = g_strdup_printf ("%s.%dx%d_%s", part, res, res, what);
  l->enc = enc;
  l->cin = cin;
  l->cout = cout;
  g_ptr_array_add (list, l);
  return l;
}

/* The layer list follows NVlabs/edm2's UNet constructor, so that the tensor
 * names of its checkpoints match ours one to one. */
static gboolean
build (Edm2Net *net, GfcgSafetensors *st, GError **error)
{
  Edm2Config *c = &net->cfg;
  int cout = c->img_channels + 1, cpb = c->channels_per_head;
  GArray *skips = g_array_new (FALSE, FALSE, sizeof (int));
  gboolean ok = TRUE;

  /* Level `level` works at R = img_resolution >> level, ch = model_channels *
   * channel_mult[level].  Encoder: conv [N, img_channels + 1, R, R] -> [N, ch, R, R]
   * (level 0) or down [N, C, 2R, 2R] -> [N, C, R, R], then num_blocks blocks to
   * [N, ch, R, R]; each output's width goes on the skip stack. */
  for (int level = 0; level < c->n_levels; level++)
    {
      int res = c->img_resolution >> level, ch = c->model_channels * c->channel_mult[level];
      Layer *l;
      if (level == 0)
        {
          l = add_layer (net->enc, LAYER_CONV, "enc", res, "conv", TRUE, cout, ch);
          cout = ch;
        }
      else
        {
          l = add_layer (net->enc, LAYER_BLOCK, "enc", res, "down", TRUE, cout, cout);
          l->resample = GFCG_RESAMPLE_DOWN;
        }
      g_array_append_val (skips, l->cout);
      for (int i = 0; i < c->num_blocks; i++)
        {
          char *what = g_strdup_printf ("block%d", i);
          l = add_layer (net->enc, LAYER_BLOCK, "enc", res, what, TRUE, cout, ch);
          g_free (what);
          l->heads = has_attention (c, res) ? ch / cpb : 0;
          cout = ch;
          g_array_append_val (skips, l->cout);
        }
    }
  /* Decoder: in0 (with attention) and in1 [N, C, R, R] at the lowest R, else up
   * [N, C, R/2, R/2] -> [N, C, R, R]; then num_blocks + 1 blocks, each fed
   * mp_cat(x, skip) [N, cout + skip, R, R] and giving [N, ch, R, R]. */
  for (int level = c->n_levels - 1; level >= 0; level--)
    {
      int res = c->img_resolution >> level, ch = c->model_channels * c->channel_mult[level];
      Layer *l;
      if (level == c->n_levels - 1)
        {
          l = add_layer (net->dec, LAYER_BLOCK, "dec", res, "in0", FALSE, cout, cout);
          l->heads = cout / cpb;
          add_layer (net->dec, LAYER_BLOCK, "dec", res, "in1", FALSE, cout, cout);
        }
      else
        {
          l = add_layer (net->dec, LAYER_BLOCK, "dec", res, "up", FALSE, cout, cout);
          l->resample = GFCG_RESAMPLE_UP;
        }
      for (int i = 0; i <= c->num_blocks; i++)
        {
          char *what = g_strdup_printf ("block%d", i);
          int skip = g_array_index (skips, int, skips->len - 1);
          g_array_set_size (skips, skips->len - 1);
          l = add_layer (net->dec, LAYER_BLOCK, "dec", res, what, FALSE, cout + skip, ch);
          g_free (what);
          l->takes_skip = TRUE;
          l->heads = has_attention (c, res) ? ch / cpb : 0;
          cout = ch;
        }
    }
  g_array_unref (skips);

  for (guint pass = 0; pass < 2 && ok; pass++)
    {
      GPtrArray *list = pass == 0 ? net->enc : net->dec;
      for (guint i = 0; i < list->len && ok; i++)
        {
          Layer *l = list->pdata[i];
          /* As in EDM2: heads = C / channels_per_head (0 = no attention, even
           * for in0), each C / heads channels wide. */
          if (l->heads > 0)
            l->head_dim = l->cout / l->heads;
          if (l->heads > 0 && l->heads * l->head_dim != l->cout)
            {
              g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                           "%s: %s has %d channels, which %d attention heads cannot split",
                           gfcg_st_path (st), l->name, l->cout, l->heads);
              ok = FALSE;
            }
          else if (l->kind == LAYER_CONV)
            {
              char *key = g_strconcat (l->name, ".weight", NULL);
              l->conv = weight_load_mp (net->be, st, key, 4, SHAPE (l->cout, l->cin, 3, 3), 1.0f,
                                        error);
              g_free (key);
              ok = l->conv != NULL;
              if (ok)
                net->n_params += l->conv->numel;
            }
          else
            ok = load_block (net, st, l, error);
        }
    }
  return ok;
}

static gpointer
edm2_load (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st, const char *where,
           DenoiserInfo *info, GError **error)
{
  Edm2Net *net = g_new0 (Edm2Net, 1);
  Edm2Config *c = &net->cfg;
  float out_gain;

  net->be = be;
  net->enc = g_ptr_array_new_with_free_func (layer_free);
  net->dec = g_ptr_array_new_with_free_func (layer_free);
  if (!parse_config (config, c, where, error) ||
      (net->freqs = weight_load (be, st, "emb_fourier.freqs", 1, SHAPE (c->cnoise), error)) == NULL ||
      (net->phases = weight_load (be, st, "emb_fourier.phases", 1, SHAPE (c->cnoise), error)) == NULL ||
      (net->emb_noise = weight_load_mp (be, st, "emb_noise.weight", 2, SHAPE (c->cemb, c->cnoise),
                                        1.0f, error)) == NULL ||
      (c->label_dim > 0 &&
       (net->emb_label = weight_load_mp (be, st, "emb_label.weight", 2,
                                         SHAPE (c->cemb, c->label_dim), 1.0f, error)) == NULL) ||
      !build (net, st, error) || !scalar_load (st, "out_gain", &out_gain, error))
    goto fail;
  {
    Layer *last = net->dec->pdata[net->dec->len - 1];
    net->out_conv = weight_load_mp (be, st, "out_conv.weight", 4,
                                    SHAPE (c->img_channels, last->cout, 3, 3), out_gain, error);
    if (net->out_conv == NULL)
      goto fail;
  }
  net->n_params += 2 * c->cnoise + net->emb_noise->numel + 1 + net->out_conv->numel +
                   (net->emb_label ? net->emb_label->numel : 0);
  info->label_dim = c->label_dim;
  info->channels = c->img_channels;
  info->resolution = c->img_resolution;
  info->n_params = net->n_params;
  return net;

fail:
  edm2_free (net);
  return NULL;
}

/* mp_sum (x, conv output, t) as a conv's post: the conv output times
 * t / d plus x times (1 - t) / d (gfcg_op_mp_sum's weights), then clamped
 * to [-clip, clip] when clip > 0. */
static GfcgConvPost
mp_sum_post (const GfcgTensor *x, float t, double clip)
{
  double d = sqrt ((1.0 - t) * (1.0 - t) + (double) t * t);
  GfcgConvPost p = { (float) (t / d), x, (float) ((1.0 - t) / d),
                     clip > 0.0 ? GFCG_ACT_CLIP : GFCG_ACT_NONE, (float) -clip, (float) clip };
  return p;
}

/* x_in [N, cin, H, W], emb [N, cemb] -> [N, cout, R, R], R = H/2 (DOWN), 2H (UP), H. */
static GfcgTensor *
block_forward (Edm2Net *net, Layer *l, const GfcgTensor *x_in, const GfcgTensor *emb)
{
  const Edm2Config *c = &net->cfg;
  GfcgTensor *x = gfcg_op_resample (x_in, l->resample); /* [N, cin, R, R] */
  GfcgTensor *y, *t, *scale;
  GfcgConvPost post;

  if (l->enc)
    {
      if (l->conv_skip != NULL)
        gfcg_tensor_set (&x, gfcg_op_conv2d (x, l->conv_skip, NULL, 1, 0));
      gfcg_tensor_set (&x, gfcg_op_pixel_norm (x, EPS)); /* [N, cout, R, R] */
    }
  t = gfcg_op_mp_silu (x);
  y = gfcg_op_conv2d (t, l->conv_res0, NULL, 1, 1); /* [N, cout, R, R] */
  gfcg_tensor_free (t);
  scale = gfcg_op_linear (emb, l->emb_linear, NULL); /* [N, cout] */
  gfcg_tensor_set (&y, gfcg_op_scale_channels (y, scale, 1.0f));
  gfcg_tensor_free (scale);
  gfcg_tensor_set (&y, gfcg_op_mp_silu (y));
  if (!l->enc && l->conv_skip != NULL)
    gfcg_tensor_set (&x, gfcg_op_conv2d (x, l->conv_skip, NULL, 1, 0));
  /* mp_sum (x, conv_res1 (y)) [N, cout, R, R], the sum (and the clip that
   * ends the block when no attention follows) fused into the conv */
  post = mp_sum_post (x, (float) c->res_balance, l->heads > 0 ? 0.0 : c->clip_act);
  t = gfcg_op_conv2d_fused (y, l->conv_res1, NULL, 1, 1, &post);
  gfcg_tensor_free (x);
  gfcg_tensor_free (y);
  x = t;
  if (l->heads > 0)
    {
      GfcgTensor *qkv = gfcg_op_conv2d (x, l->attn_qkv, NULL, 1, 0); /* [N, 3 cout, R, R] */
      y = gfcg_op_attention (qkv, l->heads, l->head_dim, EPS);       /* [N, cout, R, R] */
      gfcg_tensor_free (qkv);
      /* clip (mp_sum (x, attn_proj (y))) */
      post = mp_sum_post (x, (float) c->attn_balance, c->clip_act);
      t = gfcg_op_conv2d_fused (y, l->attn_proj, NULL, 1, 0, &post);
      gfcg_tensor_free (x);
      gfcg_tensor_free (y);
      x = t;
    }
  return x;
}

/* F(x_in, c_noise, labels): the raw UNet.  x_in [n, img_channels, R, R] (R = img_resolution),
 * c_noise [n] and labels [n, label_dim] or NULL on the host -> [n, img_channels, R, R]. */
static GfcgTensor *
unet_forward (Edm2Net *net, int n, const GfcgTensor *x_in, const float *c_noise,
              const float *labels)
{
  const Edm2Config *c = &net->cfg;
  GfcgBackend *be = net->be;
  GfcgTensor *emb, *x, *t;
  GPtrArray *skips = g_ptr_array_new_with_free_func ((GDestroyNotify) gfcg_tensor_free);

  t = gfcg_op_fourier (be, n, c_noise, net->freqs, net->phases); /* [n, cnoise] */
  emb = gfcg_op_linear (t, net->emb_noise, NULL);                  /* [n, cemb] */
  gfcg_tensor_free (t);
  if (c->label_dim > 0)
    {
      /* The label enters linearly; zero labels still go through mp_sum. */
      float *scaled = g_new0 (float, (gsize) n * c->label_dim);
      GfcgTensor *lab, *le;
      if (labels != NULL)
        for (gsize i = 0; i < (gsize) n * c->label_dim; i++)
          scaled[i] = (float) (labels[i] * sqrt ((double) c->label_dim));
      lab = gfcg_tensor_from_host (be, 2, (int[]) { n, c->label_dim }, scaled);
      g_free (scaled);
      le = gfcg_op_linear (lab, net->emb_label, NULL); /* [n, label_dim] -> [n, cemb] */
      gfcg_tensor_free (lab);
      gfcg_tensor_set (&emb, gfcg_op_mp_sum (emb, le, (float) c->label_balance));
      gfcg_tensor_free (le);
    }
  gfcg_tensor_set (&emb, gfcg_op_mp_silu (emb));

  x = gfcg_op_cat_ones (x_in); /* [n, img_channels + 1, R, R] */
  for (guint i = 0; i < net->enc->len; i++)
    {
      Layer *l = net->enc->pdata[i];
      if (l->kind == LAYER_CONV)
        gfcg_tensor_set (&x, gfcg_op_conv2d (x, l->conv, NULL, 1, 1));
      else
        gfcg_tensor_set (&x, block_forward (net, l, x, emb));
      /* The skip stack keeps its own copy; x moves on. */
      g_ptr_array_add (skips, gfcg_op_axpby (1.0f, x, 0.0f, x));
    }
  for (guint i = 0; i < net->dec->len; i++)
    {
      Layer *l = net->dec->pdata[i];
      if (l->takes_skip && skips->len > 0)
        {
          GfcgTensor *s = g_ptr_array_steal_index (skips, skips->len - 1);
          /* x [n, C, r, r], s [n, skip, r, r] -> [n, l->cin = C + skip, r, r] */
          gfcg_tensor_set (&x, gfcg_op_mp_cat (x, s, (float) c->concat_balance));
          gfcg_tensor_free (s);
        }
      gfcg_tensor_set (&x, block_forward (net, l, x, emb));
    }
  gfcg_tensor_set (&x, gfcg_op_conv2d (x, net->out_conv, NULL, 1, 1)); /* [n, img_channels, R, R] */
  gfcg_tensor_free (emb);
  g_ptr_array_unref (skips);
  return x;
}

static gboolean
edm2_denoise (gpointer data, int n, const float *x, const double *sigma, const float *labels,
              float *out, GError **error)
{
  Edm2Net *net = data;
  const Edm2Config *c = &net->cfg;
  const double sd = c->sigma_data;
  int shape[4] = { n, c->img_channels, c->img_resolution, c->img_resolution };
  gsize per = (gsize) shape[1] * shape[2] * shape[3];
  float *c_in = g_new (float, n), *c_noise = g_new (float, n);
  float *c_skip = g_new (float, n), *c_out = g_new (float, n);
  GfcgTensor *xt, *xin, *f, *d;
  gboolean ok;

  for (int i = 0; i < n; i++)
    {
      double s = sigma[i];
      c_skip[i] = (float) (sd * sd / (s * s + sd * sd));
      c_out[i] = (float) (s * sd / sqrt (s * s + sd * sd));
      c_in[i] = (float) (1.0 / sqrt (sd * sd + s * s));
      c_noise[i] = (float) (log (s) / 4.0);
    }
  /* xt, xin, f, d [n, img_channels, R, R]: D = c_skip x + c_out F(c_in x, c_noise, labels). */
  xt = gfcg_tensor_from_host (net->be, 4, shape, x);
  xin = gfcg_op_axpby_batch (c_in, xt, NULL, NULL);
  f = unet_forward (net, n, xin, c_noise, c->label_dim > 0 ? labels : NULL);
  d = gfcg_op_axpby_batch (c_skip, xt, c_out, f);
  gfcg_tensor_download (d, out);
  gfcg_tensor_free (xt);
  gfcg_tensor_free (xin);
  gfcg_tensor_free (f);
  gfcg_tensor_free (d);
  g_free (c_in);
  g_free (c_noise);
  g_free (c_skip);
  g_free (c_out);
  ok = gfcg_backend_take_error (net->be, error);
  (void) per;
  return ok;
}

static void
edm2_free_net (gpointer net)
{
  edm2_free (net);
}

const DenoiserArch denoiser_arch_edm2_unet = {
  .name = "edm2-unet",
  .load = edm2_load,
  .denoise = edm2_denoise,
  .free = edm2_free_net,
};
