/* classifier.c — the packs' small ResNet-style guidance classifier
 * (docs/pack-format.md, "resnet-cnn"): conv + folded batch norm + ReLU
 * residual blocks, global average pooling, a linear head. */
#include "gfcg-private.h"

#include <string.h>

typedef struct
{
  int         stride, cin, cout;
  GfcgTensor *w1, *b1, *w2, *b2, *ws, *bs; /* ws/bs: projection skip or NULL */
} ResBlock;

struct _Classifier
{
  GfcgBackend *be;
  int          in_channels, resolution, num_classes;
  gboolean     imagenet;
  float        mean[3], std[3];
  GfcgTensor  *stem_w, *stem_b, *fc_w, *fc_b;
  GArray      *blocks; /* ResBlock */
  gsize        n_params;
};

void
classifier_free (Classifier *c)
{
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

int classifier_n_outputs (const Classifier *c) { return c->num_classes; }
gboolean classifier_imagenet_space (const Classifier *c) { return c->imagenet; }
int classifier_resolution (const Classifier *c) { return c->resolution; }
gsize classifier_n_params (const Classifier *c) { return c->n_params; }

#define SHAPE(...) ((const gint64[]) { __VA_ARGS__ })

/* conv weight [o, i, k, k] and bias [o] under "prefix.weight"/"prefix.bias". */
static gboolean
load_conv (Classifier *c, GfcgSafetensors *st, const char *prefix, int o, int i, int k,
           GfcgTensor **w, GfcgTensor **b, GError **error)
{
  char *kw = g_strconcat (prefix, ".weight", NULL), *kb = g_strconcat (prefix, ".bias", NULL);
  *w = k > 0 ? weight_load (c->be, st, kw, 4, SHAPE (o, i, k, k), error)
             : weight_load (c->be, st, kw, 2, SHAPE (o, i), error);
  if (*w != NULL)
    *b = weight_load (c->be, st, kb, 1, SHAPE (o), error);
  g_free (kw);
  g_free (kb);
  if (*w == NULL || *b == NULL)
    return FALSE;
  c->n_params += (*w)->numel + (*b)->numel;
  return TRUE;
}

static gboolean
read_vec3 (JsonObject *o, const char *key, float def, float *out, gboolean positive,
           GError **error)
{
  JsonArray *a;
  for (int i = 0; i < 3; i++)
    out[i] = def;
  if (!json_object_has_member (o, key))
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (json_object_get_member (o, key)) ||
      json_array_get_length (a = json_object_get_array_member (o, key)) != 3)
    goto bad;
  for (int i = 0; i < 3; i++)
    {
      JsonNode *n = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_VALUE (n) || (json_node_get_value_type (n) != G_TYPE_DOUBLE &&
                                         json_node_get_value_type (n) != G_TYPE_INT64))
        goto bad;
      out[i] = (float) json_node_get_double (n);
      if (positive && !(out[i] > 0.0f))
        goto bad;
    }
  return TRUE;
bad:
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
               "component 'classifier': '%s' must be a list of 3 numbers%s", key,
               positive ? " > 0" : "");
  return FALSE;
}

Classifier *
classifier_load (GfcgBackend *be, JsonObject *config, const char *file, GError **error)
{
  const char *where = "component 'classifier'";
  Classifier *c = g_new0 (Classifier, 1);
  GfcgSafetensors *st = NULL;
  int *widths = NULL, *blocks = NULL, n_w = 0, n_b = 0, cin;
  const char *space;

  c->be = be;
  c->blocks = g_array_new (FALSE, TRUE, sizeof (ResBlock));
  space = json_object_get_string_member_with_default (config, "label_space", "pack");
  if (!cfg_int (config, "in_channels", 3, FALSE, 3, 3, &c->in_channels, where, error) ||
      !cfg_int (config, "resolution", 0, TRUE, 4, 4096, &c->resolution, where, error) ||
      !cfg_int (config, "num_classes", 0, TRUE, 2, 100000, &c->num_classes, where, error) ||
      !cfg_int_list (config, "widths", TRUE, 1, 4096, &widths, &n_w, where, error) ||
      !cfg_int_list (config, "blocks", TRUE, 0, 64, &blocks, &n_b, where, error) ||
      !read_vec3 (config, "mean", 0.0f, c->mean, FALSE, error) ||
      !read_vec3 (config, "std", 1.0f, c->std, TRUE, error))
    goto fail;
  if (n_w < 1 || n_w != n_b)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: 'widths' and 'blocks' must be lists of the same length", where);
      goto fail;
    }
  if (space == NULL || (strcmp (space, "pack") != 0 && strcmp (space, "imagenet") != 0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: label_space must be \"pack\" or \"imagenet\"", where);
      goto fail;
    }
  c->imagenet = strcmp (space, "imagenet") == 0;
  if (c->imagenet && c->num_classes != 1000)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: an imagenet label space needs num_classes 1000", where);
      goto fail;
    }
  if ((st = gfcg_st_open (file, error)) == NULL ||
      !load_conv (c, st, "stem", widths[0], c->in_channels, 3, &c->stem_w, &c->stem_b, error))
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
  if (!load_conv (c, st, "fc", c->num_classes, cin, 0, &c->fc_w, &c->fc_b, error))
    goto fail;
  gfcg_st_close (st);
  g_free (widths);
  g_free (blocks);
  return c;

fail:
  gfcg_st_close (st);
  g_free (widths);
  g_free (blocks);
  classifier_free (c);
  return NULL;
}

gboolean
classifier_logits (Classifier *c, int n, int channels, int h, int w, const float *x,
                   float *logits, GError **error)
{
  GfcgTensor *xt, *t;

  if (channels != c->in_channels)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "the classifier takes %d channels, the image has %d", c->in_channels, channels);
      return FALSE;
    }
  xt = gfcg_tensor_from_host (c->be, 4, (int[]) { n, channels, h, w }, x);
  t = gfcg_op_image_prep (xt, c->resolution, c->mean, c->std);
  gfcg_tensor_free (xt);
  gfcg_tensor_set (&t, gfcg_op_conv2d (t, c->stem_w, c->stem_b, 1, 1));
  gfcg_tensor_set (&t, gfcg_op_relu (t));
  for (guint i = 0; i < c->blocks->len; i++)
    {
      ResBlock *b = &g_array_index (c->blocks, ResBlock, i);
      GfcgTensor *r, *skip;
      r = gfcg_op_conv2d (t, b->w1, b->b1, b->stride, 1);
      gfcg_tensor_set (&r, gfcg_op_relu (r));
      gfcg_tensor_set (&r, gfcg_op_conv2d (r, b->w2, b->b2, 1, 1));
      skip = b->ws != NULL ? gfcg_op_conv2d (t, b->ws, b->bs, b->stride, 0) : NULL;
      gfcg_tensor_set (&r, gfcg_op_axpby (1.0f, r, 1.0f, skip != NULL ? skip : t));
      gfcg_tensor_free (skip);
      gfcg_tensor_set (&t, gfcg_op_relu (r));
      gfcg_tensor_free (r);
    }
  gfcg_tensor_set (&t, gfcg_op_avgpool_global (t));
  gfcg_tensor_set (&t, gfcg_op_linear (t, c->fc_w, c->fc_b));
  gfcg_tensor_download (t, logits);
  gfcg_tensor_free (t);
  return gfcg_backend_take_error (c->be, error);
}
