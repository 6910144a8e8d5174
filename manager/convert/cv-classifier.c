/* cv-classifier.c — `convert-classifier` natively: an ImageNet classifier
 * attached to an existing pack, as converters/gfcg_convert/classifier_pack.py
 * does it: torchvision's ResNet-50 (.pth, read by the restricted unpickler
 * and the zip reader: cv-torch.c) or the Coral MobileNetV2 (TFLite, read by
 * the flatbuffer reader: cv-tflite.c).  The weights go to
 * classifier-<arch>.safetensors and the component into pack.json, each
 * written to a temporary name and renamed over the old file. */
#include "cv.h"
#include "cv-args.h"
#include "cv-tflite.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define TV_LICENCE "BSD-3-Clause"
#define TV_NOTE "torchvision ImageNet weights (https://github.com/pytorch/vision), distributed " \
  "under torchvision's BSD 3-Clause licence. Converted locally by " \
  "converters/convert-classifier from a file the user downloaded."
#define TV_URL_ROOT "https://download.pytorch.org/models"
#define CORAL_LICENCE "Apache-2.0"
#define CORAL_NOTE "MobileNetV2 1.0 224 (quantised) from Google's Coral test data, Apache License " \
  "2.0; dequantised to float by converters/convert-classifier."
#define IMAGENET_RES 224

/* The weights of one classifier, ready to write. */
typedef struct
{
  GMappedFile *map;
  CvHeap      *heap;
  CvOutFile   *tensors;
  JsonObject  *config, *source;
  const char  *licence, *licence_note;
  gpointer     tflite; /* CvTflite* of a MobileNetV2 */
} Classifier;

static void
classifier_free (Classifier *c)
{
  if (c == NULL)
    return;
  cv_out_free (c->tensors);
  if (c->config != NULL)
    json_object_unref (c->config);
  if (c->source != NULL)
    json_object_unref (c->source);
  cv_tflite_free (c->tflite);
  cv_heap_free (c->heap);
  if (c->map != NULL)
    g_mapped_file_unref (c->map);
  g_free (c);
}

/* ---- torchvision's ResNet-50 ------------------------------------------------------------------ */

static void
conv_bn (GPtrArray *w, const char *conv, const char *bn, gint64 o, gint64 i, gint64 k)
{
  const char *f[] = { "weight", "bias", "running_mean", "running_var" };

  cv_want_add (w, 4, o, i, k, k, g_strdup_printf ("%s.weight", conv));
  for (int j = 0; j < 4; j++)
    cv_want_add (w, 1, o, 0, 0, 0, g_strdup_printf ("%s.%s", bn, f[j]));
}

/* torchvision ResNet-50 state-dict keys (inference: no num_batches_tracked). */
static GPtrArray *
resnet50_shapes (gint64 num_classes)
{
  GPtrArray *w = g_ptr_array_new_with_free_func (cv_want_free);
  gint64     cin = 64;
  const int  n[] = { 3, 4, 6, 3 }, width[] = { 64, 128, 256, 512 };

  conv_bn (w, "conv1", "bn1", 64, 3, 7);
  for (int s = 0; s < 4; s++)
    for (int i = 0; i < n[s]; i++)
      {
        char *p = g_strdup_printf ("layer%d.%d", s + 1, i), *c, *b;
        gint64 wd = width[s];
        c = g_strdup_printf ("%s.conv1", p), b = g_strdup_printf ("%s.bn1", p);
        conv_bn (w, c, b, wd, cin, 1), g_free (c), g_free (b);
        c = g_strdup_printf ("%s.conv2", p), b = g_strdup_printf ("%s.bn2", p);
        conv_bn (w, c, b, wd, wd, 3), g_free (c), g_free (b);
        c = g_strdup_printf ("%s.conv3", p), b = g_strdup_printf ("%s.bn3", p);
        conv_bn (w, c, b, 4 * wd, wd, 1), g_free (c), g_free (b);
        if (i == 0)
          {
            c = g_strdup_printf ("%s.downsample.0", p), b = g_strdup_printf ("%s.downsample.1", p);
            conv_bn (w, c, b, 4 * wd, cin, 1), g_free (c), g_free (b);
          }
        cin = 4 * wd;
        g_free (p);
      }
  cv_want_add (w, 2, num_classes, cin, 0, 0, g_strdup ("fc.weight"));
  cv_want_add (w, 1, num_classes, 0, 0, 0, g_strdup ("fc.bias"));
  return w;
}

static Classifier *
resnet50_component (const char *path, volatile sig_atomic_t *cancel, GError **error)
{
  Classifier *c = g_new0 (Classifier, 1);
  Pv         *sd, *fc;
  GPtrArray  *wanted = NULL, *keys = NULL;
  GHashTable *have = NULL, *set = NULL;
  GString    *msg = NULL;
  guint       count = 0;
  gint64      num_classes = 1000;
  const guint8 *bytes;
  gsize       len;

  c->heap = cv_heap_new ();
  if ((c->map = cv_map_file (path, error)) == NULL)
    goto fail;
  bytes = (const guint8 *) g_mapped_file_get_contents (c->map);
  len = g_mapped_file_get_length (c->map);
  if ((sd = cv_torch_load_state_dict (c->heap, bytes, len, cancel, error)) == NULL)
    {
      cv_prefix_error (error, path);
      goto fail;
    }
  keys = g_ptr_array_new ();
  have = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < sd->dict.n; i++)
    {
      char *tmp = cv_pv_strdup (sd->dict.keys[i]);
      char *k = (char *) cv_heap_strdup (c->heap, tmp);
      g_free (tmp);
      if (g_str_has_suffix (k, ".num_batches_tracked"))
        continue;
      g_ptr_array_add (keys, k);
      g_hash_table_insert (have, k, sd->dict.vals[i]);
    }
  fc = g_hash_table_lookup (have, "fc.weight");
  if (fc != NULL && fc->t.ndim == 2)
    num_classes = fc->t.size[0];
  wanted = resnet50_shapes (num_classes);
  set = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < wanted->len; i++)
    {
      CvWant *w = wanted->pdata[i];
      g_hash_table_add (set, w->name);
      if (!g_hash_table_contains (have, w->name) && count++ < 8)
        {
          msg = msg ? g_string_append (msg, ", ") : g_string_new (NULL);
          g_string_append (msg, w->name);
        }
    }
  if (msg != NULL)
    {
      cv_fail (error, "%s: not a torchvision ResNet-50: missing tensor %s%s", path, msg->str,
               count > 8 ? " ..." : "");
      goto fail;
    }
  for (guint i = 0; i < keys->len; i++)
    if (!g_hash_table_contains (set, keys->pdata[i]) && count++ < 8)
      {
        msg = msg ? g_string_append (msg, ", ") : g_string_new (NULL);
        g_string_append (msg, keys->pdata[i]);
      }
  if (msg != NULL)
    {
      cv_fail (error, "%s: tensors a ResNet-50 does not have: %s", path, msg->str);
      goto fail;
    }
  c->tensors = cv_out_new ();
  for (guint i = 0; i < wanted->len; i++)
    {
      CvWant  *w = wanted->pdata[i];
      CvTensor t;
      cv_tensor_from_pv (&t, g_hash_table_lookup (have, w->name));
      if (!cv_shape_equal (&t, w->ndim, w->shape))
        {
          char *a = cv_shape_str (t.ndim, t.shape), *b = cv_shape_str (w->ndim, w->shape);
          cv_fail (error, "%s: tensor %s has shape %s, ResNet-50 needs %s", path, w->name, a, b);
          g_free (a);
          g_free (b);
          goto fail;
        }
      if (!cv_dtype_is_float (t.dtype))
        {
          cv_fail (error, "%s: tensor %s is %s, not floating point", path, w->name, cv_dtype_torch (t.dtype));
          goto fail;
        }
      cv_out_add (c->tensors, w->name, &t);
    }
  if (num_classes != 1000)
    {
      cv_fail (error, "%s: fc has %" G_GINT64_FORMAT " outputs, not 1000", path, num_classes);
      goto fail;
    }
  {
    JsonNode *n = json_from_string ("{\"in_channels\": 3, \"resolution\": 224, \"num_classes\": 1000, "
                                    "\"label_space\": \"imagenet\", \"label_offset\": 0, "
                                    "\"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225]}", NULL);
    c->config = json_object_ref (json_node_get_object (n));
    json_node_unref (n);
  }
  {
    char *base = g_path_get_basename (path), *sha = cv_sha256_bytes (bytes, len);
    c->source = json_object_new ();
    json_object_set_string_member (c->source, "file", base);
    json_object_set_string_member (c->source, "sha256", sha);
    if (g_str_has_prefix (base, "resnet50-") && g_str_has_suffix (base, ".pth"))
      {
        char *url = g_strdup_printf ("%s/%s", TV_URL_ROOT, base);
        json_object_set_string_member (c->source, "url", url);
        g_free (url);
      }
    g_free (base);
    g_free (sha);
  }
  c->licence = TV_LICENCE;
  c->licence_note = TV_NOTE;
  g_ptr_array_unref (wanted);
  g_ptr_array_unref (keys);
  g_hash_table_unref (have);
  g_hash_table_unref (set);
  return c;
fail:
  if (msg != NULL)
    g_string_free (msg, TRUE);
  if (wanted != NULL)
    g_ptr_array_unref (wanted);
  if (keys != NULL)
    g_ptr_array_unref (keys);
  if (have != NULL)
    g_hash_table_unref (have);
  if (set != NULL)
    g_hash_table_unref (set);
  classifier_free (c);
  return NULL;
}

/* ---- the Coral MobileNetV2 ------------------------------------------------------------------------ */

static Classifier *
mobilenet_component (const char *path, GError **error)
{
  Classifier *c = g_new0 (Classifier, 1);
  CvTflite   *tf;
  gint64      n_out;
  const gint64 *inp;
  char       *base, *sha;

  if ((tf = cv_tflite_convert (path, error)) == NULL)
    {
      cv_prefix_error (error, path);
      g_free (c);
      return NULL;
    }
  c->tflite = tf;
  if (!tf->mobilenet)
    {
      cv_fail (error, "%s: the graph is not a MobileNetV2 (stem, inverted residual blocks, head, pool, "
               "classifier)", path);
      goto fail;
    }
  inp = tf->input_shape;
  n_out = tf->n_out;
  if (tf->input_ndim < 3 || inp[1] != IMAGENET_RES || inp[2] != IMAGENET_RES ||
      (n_out != 1000 && n_out != 1001))
    {
      char *s = cv_shape_str (tf->input_ndim, inp);
      cv_fail (error, "%s: input %s, %" G_GINT64_FORMAT " outputs: not an ImageNet-1k %dpx classifier",
               path, s, n_out, IMAGENET_RES);
      g_free (s);
      goto fail;
    }
  c->tensors = g_steal_pointer (&tf->tensors);
  c->config = json_object_new ();
  json_object_set_int_member (c->config, "in_channels", 3);
  json_object_set_int_member (c->config, "resolution", IMAGENET_RES);
  json_object_set_int_member (c->config, "num_classes", 1000);
  json_object_set_string_member (c->config, "label_space", "imagenet");
  json_object_set_int_member (c->config, "label_offset", n_out - 1000);
  for (int k = 0; k < 2; k++)
    {
      JsonArray *a = json_array_new ();
      for (int i = 0; i < 3; i++)
        json_array_add_double_element (a, k == 0 ? tf->mean : tf->std);
      json_object_set_array_member (c->config, k == 0 ? "mean" : "std", a);
    }
  json_object_set_string_member (c->config, "padding", "same");
  base = g_path_get_basename (path);
  if ((sha = cv_sha256_file (path, error)) == NULL)
    {
      g_free (base);
      goto fail;
    }
  c->source = json_object_new ();
  json_object_set_string_member (c->source, "file", base);
  json_object_set_string_member (c->source, "sha256", sha);
  g_free (base);
  g_free (sha);
  c->licence = CORAL_LICENCE;
  c->licence_note = CORAL_NOTE;
  return c;
fail:
  classifier_free (c);
  return NULL;
}

/* ---- attaching it -------------------------------------------------------------------------------- */

typedef struct
{
  const char *pack, *mobilenet, *resnet50;
  gboolean    fp16, replace;
} ClsArgs;

static gboolean
attach (CvContext *cx, const ClsArgs *a, GError **error)
{
  char        *manifest_path = g_build_filename (a->pack, "pack.json", NULL);
  JsonParser  *parser = json_parser_new ();
  JsonObject  *manifest, *components, *comp, *src, *old;
  JsonNode    *root;
  GError      *err = NULL;
  Classifier  *c = NULL;
  const char  *arch = a->mobilenet != NULL ? "mobilenet-v2" : "resnet-50";
  char        *file = NULL, *fpath = NULL, *old_arch = NULL, *old_file = NULL;
  gboolean     ok = FALSE;
  gint64       params = 0;

  if (!json_parser_load_from_file (parser, manifest_path, &err))
    {
      cv_fail (error, "%s: %s", manifest_path, err->message);
      g_error_free (err);
      goto out;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root) ||
      (manifest = json_node_get_object (root),
       !json_object_has_member (manifest, "format") ||
       !JSON_NODE_HOLDS_VALUE (json_object_get_member (manifest, "format")) ||
       g_strcmp0 (json_object_get_string_member (manifest, "format"), "gfcg-pack") != 0 ||
       !json_object_has_member (manifest, "components") ||
       !JSON_NODE_HOLDS_OBJECT (json_object_get_member (manifest, "components"))))
    {
      cv_fail (error, "%s: not a gfcg pack manifest", manifest_path);
      goto out;
    }
  components = json_object_get_object_member (manifest, "components");
  if (json_object_has_member (components, "classifier"))
    {
      JsonNode *on = json_object_get_member (components, "classifier");
      old = JSON_NODE_HOLDS_OBJECT (on) ? json_node_get_object (on) : NULL;
      old_arch = g_strdup (old != NULL && json_object_has_member (old, "arch") &&
                           JSON_NODE_HOLDS_VALUE (json_object_get_member (old, "arch"))
                           ? json_object_get_string_member (old, "arch") : "None");
      old_file = g_strdup (old != NULL && json_object_has_member (old, "file") &&
                           JSON_NODE_HOLDS_VALUE (json_object_get_member (old, "file"))
                           ? json_object_get_string_member (old, "file") : "None");
      if (!a->replace)
        {
          cv_fail (error, "%s already has a classifier (%s, %s); pass --replace to replace it", a->pack,
                   old_arch, old_file);
          goto out;
        }
    }
  c = a->mobilenet != NULL ? mobilenet_component (a->mobilenet, error)
                           : resnet50_component (a->resnet50, cx->cancel, error);
  if (c == NULL)
    goto out;
  if (a->fp16 && !cv_out_check_fp16 (c->tensors, NULL, error))
    goto out;
  for (guint i = 0; i < c->tensors->tensors->len; i++)
    params += ((CvOutTensor *) c->tensors->tensors->pdata[i])->src.numel;
  file = g_strdup_printf ("classifier-%s.safetensors", arch);
  fpath = g_build_filename (a->pack, file, NULL);
  {
    /* to a temporary name, then over the old file */
    char *dir = g_path_get_dirname (fpath), *tmp = g_strdup_printf ("%s/.%s.XXXXXX", dir, file);
    int   fd = g_mkstemp (tmp);
    gboolean w;
    g_free (dir);
    if (fd < 0)
      {
        cv_io_error (error, tmp, errno);
        g_free (tmp);
        goto out;
      }
    close (fd);
    w = cv_out_write (c->tensors, tmp, a->fp16, cx->cancel, error);
    if (w && g_rename (tmp, fpath) != 0)
      {
        cv_io_error (error, fpath, errno);
        w = FALSE;
      }
    if (!w)
      g_unlink (tmp);
    g_free (tmp);
    if (!w)
      goto out;
  }
  comp = json_object_new ();
  json_object_set_string_member (comp, "file", file);
  json_object_set_string_member (comp, "arch", arch);
  json_object_set_object_member (comp, "config", json_object_ref (c->config));
  json_object_set_string_member (comp, "licence", c->licence);
  json_object_set_string_member (comp, "licence_note", c->licence_note);
  src = json_object_ref (c->source);
  json_object_set_object_member (comp, "source", src);
  json_object_set_string_member (comp, "converter", "converters/convert-classifier");
  json_object_set_object_member (components, "classifier", comp);
  if (!cv_write_json (manifest_path, root, TRUE, error))
    goto out;
  fprintf (cx->log, "%s: classifier %s (%.2f M parameters, %s) in %s", a->pack, arch, params / 1e6,
           a->fp16 ? "F16" : "F32", file);
  if (old_arch != NULL)
    fprintf (cx->log, "; replaced %s (file %s left in place)", old_arch, old_file);
  fputc ('\n', cx->log);
  ok = TRUE;
out:
  classifier_free (c);
  g_free (old_arch);
  g_free (old_file);
  g_free (file);
  g_free (fpath);
  g_free (manifest_path);
  g_object_unref (parser);
  return ok;
}

const char *
cv_classifier_usage (void)
{
  return "usage: gfcg convert classifier --pack DIR (--mobilenet FILE.tflite | --resnet50 FILE.pth)\n"
         "                               [--fp16] [--replace]\n\n"
         "Attaches an ImageNet classifier to a gfcg pack: the Coral MobileNetV2 (TFLite) or\n"
         "torchvision's ResNet-50 (.pth, read without executing it), as\n"
         "converters/convert-classifier does.\n";
}

int
cv_classifier_main (CvContext *cx, int argc, char **argv, GError **error)
{
  ClsArgs  a = { 0 };
  gboolean help;
  CvOpt    opts[] = {
    { "--pack", &a.pack, NULL, TRUE }, { "--mobilenet", &a.mobilenet, NULL, FALSE },
    { "--resnet50", &a.resnet50, NULL, FALSE }, { "--fp16", NULL, &a.fp16, FALSE },
    { "--replace", NULL, &a.replace, FALSE }, { NULL, NULL, NULL, FALSE },
  };

  if (!cv_parse_args (opts, argc, argv, &help, error))
    return 2;
  if (help)
    {
      fputs (cv_classifier_usage (), stdout);
      return 0;
    }
  if (a.mobilenet == NULL && a.resnet50 == NULL)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_USAGE,
                   "one of the arguments --mobilenet --resnet50 is required");
      return 2;
    }
  if (a.mobilenet != NULL && a.resnet50 != NULL)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_USAGE,
                   "argument --resnet50: not allowed with argument --mobilenet");
      return 2;
    }
  return attach (cx, &a, error) ? 0 : cv_exit_status (*error);
}
