/* classifier.c — what every guidance/evaluation classifier shares: the
 * common config (input size, normalisation, label space), the input
 * preparation, and dispatch to the architecture (cls-*.c) that builds the
 * network.  docs/pack-format.md describes the config keys. */
#include "gfcg-private.h"

#include <string.h>

static const ClassifierArch *const archs[] = {
  &classifier_arch_resnet_cnn,
  &classifier_arch_mobilenet_v2,
  &classifier_arch_resnet50,
};

struct _Classifier
{
  GfcgBackend          *be;
  const ClassifierArch *arch;
  gpointer              net;
  int                   resolution, num_classes, label_offset;
  gboolean              imagenet;
  float                 mean[3], std[3]; /* per input channel */
  gsize                 n_params;
};

void
classifier_free (Classifier *c)
{
  if (c == NULL)
    return;
  if (c->net != NULL)
    c->arch->free (c->net);
  g_free (c);
}

int classifier_n_outputs (const Classifier *c) { return c->num_classes; }
gboolean classifier_imagenet_space (const Classifier *c) { return c->imagenet; }
int classifier_resolution (const Classifier *c) { return c->resolution; }
gsize classifier_n_params (const Classifier *c) { return c->n_params; }
const char *classifier_arch (const Classifier *c) { return c->arch->name; }

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
classifier_load (GfcgBackend *be, const char *arch, JsonObject *config, const char *file,
                 GError **error)
{
  const char *where = "component 'classifier'";
  Classifier *c = g_new0 (Classifier, 1);
  GfcgSafetensors *st = NULL;
  const char *space;
  int in_channels;

  c->be = be;
  if ((c->arch = arch_lookup (arch, (gconstpointer const *) archs, G_N_ELEMENTS (archs), where,
                              error)) == NULL)
    goto fail;
  if (!cfg_string (config, "label_space", "pack", FALSE, &space, where, error) ||
      !cfg_int (config, "in_channels", 3, FALSE, 3, 3, &in_channels, where, error) ||
      !cfg_int (config, "resolution", 0, TRUE, 4, 4096, &c->resolution, where, error) ||
      !cfg_int (config, "num_classes", 0, TRUE, 2, 100000, &c->num_classes, where, error) ||
      !cfg_int (config, "label_offset", 0, FALSE, 0, 16, &c->label_offset, where, error) ||
      !read_vec3 (config, "mean", 0.0f, c->mean, FALSE, error) ||
      !read_vec3 (config, "std", 1.0f, c->std, TRUE, error))
    goto fail;
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
      (c->net = c->arch->load (be, config, st, c->num_classes + c->label_offset, &c->n_params,
                               error)) == NULL)
    goto fail;
  gfcg_st_close (st);
  return c;

fail:
  gfcg_st_close (st);
  classifier_free (c);
  return NULL;
}

gboolean
classifier_logits (Classifier *c, int n, int channels, int h, int w, const float *x,
                   float *logits, GError **error)
{
  GfcgTensor *xt, *t, *out;
  int n_raw = c->num_classes + c->label_offset;

  if (channels != 3)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "the classifier takes 3 channels, the image has %d", channels);
      return FALSE;
    }
  xt = gfcg_tensor_from_host (c->be, 4, (int[]) { n, channels, h, w }, x); /* [n, 3, h, w] */
  t = gfcg_op_image_prep (xt, c->resolution, c->mean, c->std); /* [n, 3, resolution, resolution] */
  gfcg_tensor_free (xt);
  out = t != NULL ? c->arch->forward (c->net, t) : NULL; /* [n, n_raw] */
  gfcg_tensor_free (t);
  if (out != NULL && c->label_offset == 0)
    gfcg_tensor_download (out, logits);
  else if (out != NULL)
    {
      /* Drop the leading outputs that are not classes (Coral's background):
       * raw [n, n_raw] -> logits [n, num_classes]. */
      float *raw = g_new (float, (gsize) n * n_raw);
      gfcg_tensor_download (out, raw);
      for (int b = 0; b < n; b++)
        memcpy (logits + (gsize) b * c->num_classes, raw + (gsize) b * n_raw + c->label_offset,
                c->num_classes * sizeof (float));
      g_free (raw);
    }
  gfcg_tensor_free (out);
  return gfcg_backend_take_error (c->be, error);
}
