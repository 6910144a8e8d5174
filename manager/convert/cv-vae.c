/* cv-vae.c — the latent packs' image decoders and encoders from their
 * published safetensors files, as converters/gfcg_convert/sd_decoders.py
 * takes them: the SD VAE's decoder (decoder.*, post_quant_conv.*) and
 * encoder (encoder.*, quant_conv.*) and TAESD's two nets, the files' tensor
 * names kept.  The config comes from the tensor shapes (the VAE's
 * norm_num_groups from its config.json when given); every tensor is checked
 * against the layout of converters/gfcg_convert/nets/vae.py and taesd.py for
 * that config, written out below.  The files are read by the engine's
 * validating safetensors reader. */
#include "cv-vae.h"

#include "gfcg/gfcg-safetensors.h"
#include <stdlib.h>
#include <string.h>

#define VAE_URL "https://huggingface.co/stabilityai/sd-vae-ft-mse"
#define VAE_NAME "sd-vae-ft-mse (Stability AI)"
#define TAESD_URL "https://github.com/madebyollin/taesd"
#define TAESD_NAME "TAESD (Ollin Boer Bohan)"

void
cv_comp_free (CvComp *c)
{
  if (c == NULL)
    return;
  cv_out_free (c->tensors);
  if (c->cfg != NULL)
    json_object_unref (c->cfg);
  if (c->info != NULL)
    json_object_unref (c->info);
  gfcg_st_close (c->file);
  g_free (c);
}

/* ---- the file ----------------------------------------------------------------------------- */

typedef struct
{
  char       *name;
  CvTensor    t;
} Named;

typedef struct
{
  GfcgSafetensors *st;
  GPtrArray       *all;   /* Named*, sorted by name (safetensors' keys()) */
  GHashTable      *index; /* name -> Named* */
} File;

static void
named_free (gpointer p)
{
  Named *n = p;

  g_free (n->name);
  g_free (n);
}

static void
file_free (File *f)
{
  if (f == NULL)
    return;
  g_ptr_array_unref (f->all);
  g_hash_table_unref (f->index);
  gfcg_st_close (f->st);
  g_free (f);
}

static int
by_name (gconstpointer a, gconstpointer b)
{
  return strcmp ((*(Named *const *) a)->name, (*(Named *const *) b)->name);
}

static File *
load (const char *path, GError **error)
{
  File   *f;
  GError *err = NULL;

  if (!g_str_has_suffix (path, ".safetensors"))
    {
      cv_fail (error, "%s: give the .safetensors file (pickled .pth/.ckpt files run code when loaded "
               "and are not read)", path);
      return NULL;
    }
  f = g_new0 (File, 1);
  f->all = g_ptr_array_new_with_free_func (named_free);
  f->index = g_hash_table_new (g_str_hash, g_str_equal);
  if ((f->st = gfcg_st_open (path, &err)) == NULL)
    {
      const char *msg = err->message;
      if (g_str_has_prefix (msg, path) && msg[strlen (path)] == ':')
        msg += strlen (path) + 2;
      cv_fail (error, "%s: not a readable safetensors file (%s)", path, msg);
      g_error_free (err);
      file_free (f);
      return NULL;
    }
  for (guint i = 0; i < gfcg_st_n (f->st); i++)
    {
      const GfcgStEntry *e = gfcg_st_entry (f->st, i);
      Named             *n = g_new0 (Named, 1);
      gint64             stride = 1;
      n->name = g_strdup (e->name);
      n->t.dtype = e->dtype == GFCG_DTYPE_F32 ? CV_DT_F32 : e->dtype == GFCG_DTYPE_F16 ? CV_DT_F16 : CV_DT_BF16;
      n->t.ndim = MIN (e->ndim, CV_MAX_NDIM);
      n->t.numel = (gint64) e->numel;
      for (int d = n->t.ndim - 1; d >= 0; d--)
        {
          n->t.shape[d] = e->shape[d];
          n->t.stride[d] = stride;
          stride *= e->shape[d];
        }
      n->t.data = e->data;
      g_ptr_array_add (f->all, n);
    }
  g_ptr_array_sort (f->all, by_name);
  for (guint i = 0; i < f->all->len; i++)
    g_hash_table_insert (f->index, ((Named *) f->all->pdata[i])->name, f->all->pdata[i]);
  return f;
}

/* ---- expected tensors ------------------------------------------------------------------------ */

static void
want (GPtrArray *w, gboolean legacy, int ndim, gint64 a, gint64 b, gint64 c, gint64 d,
      const char *fmt, ...) G_GNUC_PRINTF (8, 9);
static void
want (GPtrArray *w, gboolean legacy, int ndim, gint64 a, gint64 b, gint64 c, gint64 d,
      const char *fmt, ...)
{
  static const char *names[][2] = {
    { ".attentions.0.to_q.", ".attentions.0.query." }, { ".attentions.0.to_k.", ".attentions.0.key." },
    { ".attentions.0.to_v.", ".attentions.0.value." }, { ".attentions.0.to_out.0.", ".attentions.0.proj_attn." },
  };
  va_list ap;
  char   *name;

  va_start (ap, fmt);
  name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (legacy)
    for (guint i = 0; i < G_N_ELEMENTS (names); i++)
      {
        char *hit = strstr (name, names[i][0]);
        if (hit != NULL)
          {
            char *n = g_strdup_printf ("%.*s%s%s", (int) (hit - name), name, names[i][1],
                                       hit + strlen (names[i][0]));
            g_free (name);
            name = n;
          }
      }
  cv_want_add (w, ndim, a, b, c, d, name);
}

static void
conv (GPtrArray *w, gboolean lg, const char *p, gint64 cin, gint64 cout, gint64 k, gboolean bias)
{
  want (w, lg, 4, cout, cin, k, k, "%s.weight", p);
  if (bias)
    want (w, lg, 1, cout, 0, 0, 0, "%s.bias", p);
}

static void
norm (GPtrArray *w, gboolean lg, const char *p, gint64 c)
{
  want (w, lg, 1, c, 0, 0, 0, "%s.weight", p);
  want (w, lg, 1, c, 0, 0, 0, "%s.bias", p);
}

static void
resnet (GPtrArray *w, gboolean lg, const char *p, gint64 cin, gint64 cout)
{
  char *q;

  q = g_strdup_printf ("%s.norm1", p), norm (w, lg, q, cin), g_free (q);
  q = g_strdup_printf ("%s.conv1", p), conv (w, lg, q, cin, cout, 3, TRUE), g_free (q);
  q = g_strdup_printf ("%s.norm2", p), norm (w, lg, q, cout), g_free (q);
  q = g_strdup_printf ("%s.conv2", p), conv (w, lg, q, cout, cout, 3, TRUE), g_free (q);
  if (cin != cout)
    q = g_strdup_printf ("%s.conv_shortcut", p), conv (w, lg, q, cin, cout, 1, TRUE), g_free (q);
}

static void
mid_block (GPtrArray *w, gboolean lg, const char *p, gint64 c, gboolean attention)
{
  char *q;

  q = g_strdup_printf ("%s.resnets.0", p), resnet (w, lg, q, c, c), g_free (q);
  q = g_strdup_printf ("%s.resnets.1", p), resnet (w, lg, q, c, c), g_free (q);
  if (attention)
    {
      const char *lin[] = { "to_q", "to_k", "to_v", "to_out.0" };
      q = g_strdup_printf ("%s.attentions.0.group_norm", p), norm (w, lg, q, c), g_free (q);
      for (int i = 0; i < 4; i++)
        {
          want (w, lg, 2, c, c, 0, 0, "%s.attentions.0.%s.weight", p, lin[i]);
          want (w, lg, 1, c, 0, 0, 0, "%s.attentions.0.%s.bias", p, lin[i]);
        }
    }
}

typedef struct
{
  gint64   widths[64];
  int      levels;
  gint64   layers_per_block, latent_channels, groups;
  gboolean quant_conv, attention;
} VaeShape;

/* SDVAEDecoder(**cfg).state_dict() */
static GPtrArray *
decoder_shapes (const VaeShape *v, gboolean lg)
{
  GPtrArray *w = g_ptr_array_new_with_free_func (cv_want_free);
  gint64     lc = v->latent_channels, top = v->widths[v->levels - 1];

  if (v->quant_conv)
    conv (w, lg, "post_quant_conv", lc, lc, 1, TRUE);
  conv (w, lg, "decoder.conv_in", lc, top, 3, TRUE);
  mid_block (w, lg, "decoder.mid_block", top, v->attention);
  for (int i = 0; i < v->levels; i++)
    {
      gint64 cin = v->widths[v->levels - 1 - MAX (i - 1, 0)], cout = v->widths[v->levels - 1 - i];
      for (gint64 j = 0; j < v->layers_per_block + 1; j++)
        {
          char *p = g_strdup_printf ("decoder.up_blocks.%d.resnets.%" G_GINT64_FORMAT, i, j);
          resnet (w, lg, p, j == 0 ? cin : cout, cout);
          g_free (p);
        }
      if (i < v->levels - 1)
        {
          char *p = g_strdup_printf ("decoder.up_blocks.%d.upsamplers.0.conv", i);
          conv (w, lg, p, cout, cout, 3, TRUE);
          g_free (p);
        }
    }
  norm (w, lg, "decoder.conv_norm_out", v->widths[0]);
  conv (w, lg, "decoder.conv_out", v->widths[0], 3, 3, TRUE);
  return w;
}

/* SDVAEEncoder(**cfg).state_dict() */
static GPtrArray *
encoder_shapes (const VaeShape *v, gboolean lg)
{
  GPtrArray *w = g_ptr_array_new_with_free_func (cv_want_free);
  gint64     lc = v->latent_channels, top = v->widths[v->levels - 1];

  conv (w, lg, "encoder.conv_in", 3, v->widths[0], 3, TRUE);
  for (int i = 0; i < v->levels; i++)
    {
      gint64 cin = v->widths[MAX (i - 1, 0)], cout = v->widths[i];
      for (gint64 j = 0; j < v->layers_per_block; j++)
        {
          char *p = g_strdup_printf ("encoder.down_blocks.%d.resnets.%" G_GINT64_FORMAT, i, j);
          resnet (w, lg, p, j == 0 ? cin : cout, cout);
          g_free (p);
        }
      if (i < v->levels - 1)
        {
          char *p = g_strdup_printf ("encoder.down_blocks.%d.downsamplers.0.conv", i);
          conv (w, lg, p, cout, cout, 3, TRUE);
          g_free (p);
        }
    }
  mid_block (w, lg, "encoder.mid_block", top, v->attention);
  norm (w, lg, "encoder.conv_norm_out", top);
  conv (w, lg, "encoder.conv_out", top, 2 * lc, 3, TRUE);
  if (v->quant_conv)
    conv (w, lg, "quant_conv", 2 * lc, 2 * lc, 1, TRUE);
  return w;
}

static void
taesd_block (GPtrArray *w, int i, gint64 c)
{
  for (int k = 0; k <= 4; k += 2)
    {
      want (w, FALSE, 4, c, c, 3, 3, "%d.conv.%d.weight", i, k);
      want (w, FALSE, 1, c, 0, 0, 0, "%d.conv.%d.bias", i, k);
    }
}

/* TAESDDecoder / TAESDEncoder(**cfg).state_dict() */
static GPtrArray *
taesd_shapes (gboolean encoder, gint64 lc, gint64 c, const GArray *blocks)
{
  GPtrArray *w = g_ptr_array_new_with_free_func (cv_want_free);
  int        i;

  if (!encoder)
    {
      want (w, FALSE, 4, c, lc, 3, 3, "1.weight");
      want (w, FALSE, 1, c, 0, 0, 0, "1.bias");
      i = 3;
      for (guint s = 0; s < blocks->len; s++)
        {
          for (gint64 b = 0; b < g_array_index (blocks, gint64, s); b++)
            taesd_block (w, i++, c);
          if (s + 1 < blocks->len)
            {
              want (w, FALSE, 4, c, c, 3, 3, "%d.weight", i + 1);
              i += 2;
            }
          else
            {
              want (w, FALSE, 4, 3, c, 3, 3, "%d.weight", i);
              want (w, FALSE, 1, 3, 0, 0, 0, "%d.bias", i);
            }
        }
    }
  else
    {
      want (w, FALSE, 4, c, 3, 3, 3, "0.weight");
      want (w, FALSE, 1, c, 0, 0, 0, "0.bias");
      i = 1;
      for (guint s = 0; s < blocks->len; s++)
        {
          if (s > 0)
            want (w, FALSE, 4, c, c, 3, 3, "%d.weight", i++);
          for (gint64 b = 0; b < g_array_index (blocks, gint64, s); b++)
            taesd_block (w, i++, c);
        }
      want (w, FALSE, 4, lc, c, 3, 3, "%d.weight", i);
      want (w, FALSE, 1, lc, 0, 0, 0, "%d.bias", i);
    }
  return w;
}

/* _check: every wanted name with its shape, nothing else. */
static gboolean
check (const char *path, GPtrArray *names, GHashTable *tensors, GPtrArray *wanted, GError **error)
{
  GHashTable *set = g_hash_table_new (g_str_hash, g_str_equal);
  GString    *msg = NULL;
  guint       count = 0;
  gboolean    ok = FALSE;

  for (guint i = 0; i < wanted->len; i++)
    {
      CvWant *w = wanted->pdata[i];
      g_hash_table_add (set, w->name);
      if (!g_hash_table_contains (tensors, w->name) && count++ < 6)
        {
          msg = msg ? g_string_append (msg, ", ") : g_string_new (NULL);
          g_string_append (msg, w->name);
        }
    }
  if (msg != NULL)
    {
      cv_fail (error, "%s: missing tensors for the config: %s%s", path, msg->str, count > 6 ? " ..." : "");
      goto out;
    }
  for (guint i = 0; i < names->len; i++)
    if (!g_hash_table_contains (set, names->pdata[i]) && count++ < 6)
      {
        msg = msg ? g_string_append (msg, ", ") : g_string_new (NULL);
        g_string_append (msg, names->pdata[i]);
      }
  if (msg != NULL)
    {
      cv_fail (error, "%s: tensors the config does not use: %s", path, msg->str);
      goto out;
    }
  for (guint i = 0; i < wanted->len; i++)
    {
      CvWant   *w = wanted->pdata[i];
      CvTensor *t = g_hash_table_lookup (tensors, w->name);
      if (!cv_shape_equal (t, w->ndim, w->shape))
        {
          char *have = cv_shape_str (t->ndim, t->shape), *need = cv_shape_str (w->ndim, w->shape);
          cv_fail (error, "%s: %s has shape %s, the config needs %s", path, w->name, have, need);
          g_free (have);
          g_free (need);
          goto out;
        }
    }
  ok = TRUE;
out:
  if (msg != NULL)
    g_string_free (msg, TRUE);
  g_hash_table_unref (set);
  return ok;
}

static JsonObject *
source_info (const char *url, const char *name, const char *path, gint64 dropped, GError **error)
{
  char       *sha = cv_sha256_file (path, error), *base;
  JsonObject *o;

  if (sha == NULL)
    return NULL;
  base = g_path_get_basename (path);
  o = json_object_new ();
  json_object_set_string_member (o, "url", url);
  json_object_set_string_member (o, "licence", "MIT");
  json_object_set_string_member (o, "name", name);
  json_object_set_string_member (o, "file", base);
  json_object_set_string_member (o, "sha256", sha);
  json_object_set_int_member (o, "dropped", dropped);
  g_free (base);
  g_free (sha);
  return o;
}

/* A whole-number prefix "N." of s (N = digits): its value, or -1. */
static gint64
leading_index (const char *s, const char **rest)
{
  gint64 v = 0;
  const char *p = s;

  if (!g_ascii_isdigit (*p))
    return -1;
  while (g_ascii_isdigit (*p))
    {
      if (v > 100000000)
        return -1;
      v = v * 10 + (*p++ - '0');
    }
  if (*p != '.')
    return -1;
  *rest = p + 1;
  return v;
}

static gboolean
json_int_value (JsonNode *n, gint64 *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

/* ---- the SD VAE ------------------------------------------------------------------------------- */

CvComp *
cv_convert_vae (const char *path, const char *config_path, gboolean encoder, GError **error)
{
  const char *part = encoder ? "encoder." : "decoder.";
  const char *quant = encoder ? "quant_conv." : "post_quant_conv.";
  const char *blocks = encoder ? "encoder.down_blocks." : "decoder.up_blocks.";
  File       *f = load (path, error);
  GPtrArray  *names = NULL, *wanted = NULL;
  GHashTable *tensors = NULL, *levels = NULL, *res = NULL;
  CvComp     *c = NULL;
  VaeShape    v = { 0 };
  JsonObject *cfg = NULL;
  gboolean    legacy = FALSE;
  char       *key;

  if (f == NULL)
    return NULL;
  names = g_ptr_array_new ();
  tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  levels = g_hash_table_new (g_int64_hash, g_int64_equal);
  res = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < f->all->len; i++)
    {
      Named     *n = f->all->pdata[i];
      CvTensor  *t;
      if (!g_str_has_prefix (n->name, part) && !g_str_has_prefix (n->name, quant))
        continue;
      t = g_memdup2 (&n->t, sizeof n->t);
      /* attention projections: linear [C, C] or a 1x1 conv [C, C, kh, kw] (its [:, :, 0, 0]) */
      if (strstr (n->name, ".attentions.") != NULL && g_str_has_suffix (n->name, ".weight") && t->ndim == 4)
        {
          t->ndim = 2;
          t->numel = t->shape[0] * t->shape[1];
        }
      g_ptr_array_add (names, n->name);
      g_hash_table_insert (tensors, n->name, t);
      if (strstr (n->name, ".attentions.0.query.") != NULL)
        legacy = TRUE;
      if (strstr (n->name, ".attentions.") != NULL)
        v.attention = TRUE;
      if (g_str_has_prefix (n->name, blocks))
        {
          const char *rest;
          gint64      k = leading_index (n->name + strlen (blocks), &rest);
          if (k >= 0 && !g_hash_table_contains (levels, &k))
            {
              gint64 *kk = g_new (gint64, 1);
              *kk = k;
              g_hash_table_add (levels, kk);
            }
          if (k == 0 && g_str_has_prefix (rest, "resnets."))
            {
              char **parts = g_strsplit (n->name, ".", 6);
              if (g_strv_length (parts) >= 5)
                g_hash_table_add (res, g_strdup (parts[4]));
              g_strfreev (parts);
            }
        }
    }
  key = g_strdup_printf ("%sconv_in.weight", part);
  if (!g_hash_table_contains (tensors, key))
    {
      if (encoder)
        cv_fail (error, "%s: no encoder.conv_in.weight: the file holds no AutoencoderKL encoder", path);
      else
        cv_fail (error, "%s: no decoder.conv_in.weight: not a diffusers AutoencoderKL file", path);
      g_free (key);
      goto fail;
    }
  g_free (key);
  v.levels = (int) g_hash_table_size (levels);
  for (gint64 i = 0; i < v.levels; i++)
    if (!g_hash_table_contains (levels, &i) || v.levels > 64)
      v.levels = 0;
  if (v.levels == 0)
    {
      cv_fail (error, "%s: %s are missing or not numbered 0..n-1", path,
               encoder ? "encoder.down_blocks" : "decoder.up_blocks");
      goto fail;
    }
  for (int i = 0; i < v.levels; i++)
    {
      CvTensor *t;
      key = g_strdup_printf ("%s%d.resnets.0.conv1.weight", blocks, i);
      t = g_hash_table_lookup (tensors, key);
      g_free (key);
      if (t == NULL)
        {
          cv_fail (error, "%s: %s block has no resnets.0.conv1.weight", path, encoder ? "a down" : "an up");
          goto fail;
        }
      if (t->ndim < 1)
        {
          cv_fail (error, "%s: %s%d.resnets.0.conv1.weight has no output channels", path, blocks, i);
          goto fail;
        }
      /* the decoder's up blocks run from the widest: block_out_channels reversed */
      v.widths[encoder ? i : v.levels - 1 - i] = t->shape[0];
    }
  if (encoder)
    {
      CvTensor *out = g_hash_table_lookup (tensors, "encoder.conv_out.weight");
      if (out == NULL)
        {
          cv_fail (error, "%s: no encoder.conv_out.weight", path);
          goto fail;
        }
      v.layers_per_block = g_hash_table_size (res);
      v.latent_channels = out->ndim >= 1 ? out->shape[0] / 2 : 0;
    }
  else
    {
      CvTensor *in = g_hash_table_lookup (tensors, "decoder.conv_in.weight");
      v.layers_per_block = (gint64) g_hash_table_size (res) - 1;
      v.latent_channels = in->ndim >= 2 ? in->shape[1] : 0;
    }
  v.groups = 32;
  cfg = json_object_new ();
  {
    JsonArray *a = json_array_new ();
    for (int i = 0; i < v.levels; i++)
      json_array_add_int_element (a, v.widths[i]);
    json_object_set_array_member (cfg, "block_out_channels", a);
  }
  json_object_set_int_member (cfg, "layers_per_block", v.layers_per_block);
  json_object_set_int_member (cfg, "latent_channels", v.latent_channels);
  json_object_set_int_member (cfg, "norm_num_groups", 32);
  if (config_path != NULL)
    {
      JsonParser *parser = json_parser_new ();
      GError     *err = NULL;
      JsonNode   *root;
      if (!json_parser_load_from_file (parser, config_path, &err))
        {
          g_set_error (error, CV_ERROR, CV_ERROR_IO, "%s: %s", config_path, err->message);
          g_error_free (err);
          g_object_unref (parser);
          goto fail;
        }
      root = json_parser_get_root (parser);
      if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
        {
          cv_fail (error, "%s: not a JSON object", config_path);
          g_object_unref (parser);
          goto fail;
        }
      for (const char *const *k = (const char *const[]) { "block_out_channels", "layers_per_block",
                                                          "latent_channels", "norm_num_groups", NULL };
           *k != NULL; k++)
        if (json_object_has_member (json_node_get_object (root), *k))
          json_object_set_member (cfg, *k, json_node_copy (json_object_get_member (json_node_get_object (root), *k)));
      g_object_unref (parser);
      /* the config's values are what the net is built with */
      {
        JsonNode *bo = json_object_get_member (cfg, "block_out_channels");
        JsonArray *a = JSON_NODE_HOLDS_ARRAY (bo) ? json_node_get_array (bo) : NULL;
        if (a == NULL || json_array_get_length (a) == 0 || json_array_get_length (a) > 64 ||
            !json_int_value (json_object_get_member (cfg, "layers_per_block"), &v.layers_per_block) ||
            !json_int_value (json_object_get_member (cfg, "latent_channels"), &v.latent_channels) ||
            !json_int_value (json_object_get_member (cfg, "norm_num_groups"), &v.groups))
          {
            cv_fail (error, "%s: block_out_channels, layers_per_block, latent_channels and "
                     "norm_num_groups must be integers (a list for block_out_channels)", config_path);
            goto fail;
          }
        v.levels = (int) json_array_get_length (a);
        for (int i = 0; i < v.levels; i++)
          if (!json_int_value (json_array_get_element (a, i), &v.widths[i]))
            {
              cv_fail (error, "%s: block_out_channels must be integers", config_path);
              goto fail;
            }
      }
    }
  {
    gboolean bad = v.groups <= 0;
    for (int i = 0; i < v.levels && !bad; i++)
      bad = v.widths[i] <= 0 || v.widths[i] > ((gint64) 1 << 24) || v.widths[i] % v.groups != 0;
    if (bad || v.layers_per_block > 1000 || v.latent_channels < 0 || v.latent_channels > ((gint64) 1 << 24))
      {
        GString *w = g_string_new ("[");
        for (int i = 0; i < v.levels; i++)
          g_string_append_printf (w, "%s%" G_GINT64_FORMAT, i ? ", " : "", v.widths[i]);
        g_string_append_c (w, ']');
        cv_fail (error, "%s: widths %s are not multiples of norm_num_groups %" G_GINT64_FORMAT " (give the "
                 "VAE's config.json with --vae-config)", path, w->str, v.groups);
        g_string_free (w, TRUE);
        goto fail;
      }
  }
  key = g_strdup_printf ("%sweight", quant);
  v.quant_conv = g_hash_table_contains (tensors, key);
  g_free (key);
  json_object_set_boolean_member (cfg, encoder ? "use_quant_conv" : "use_post_quant_conv", v.quant_conv);
  if (!v.attention)
    json_object_set_boolean_member (cfg, "mid_block_add_attention", FALSE);
  wanted = encoder ? encoder_shapes (&v, legacy) : decoder_shapes (&v, legacy);
  if (!check (path, names, tensors, wanted, error))
    goto fail;
  c = g_new0 (CvComp, 1);
  c->arch = encoder ? "sd-vae-encoder" : "sd-vae-decoder";
  c->cfg = g_steal_pointer (&cfg);
  c->latent_channels = v.latent_channels;
  c->tensors = cv_out_new ();
  for (guint i = 0; i < names->len; i++)
    cv_out_add (c->tensors, names->pdata[i], g_hash_table_lookup (tensors, names->pdata[i]));
  if ((c->info = source_info (VAE_URL, VAE_NAME, path, (gint64) f->all->len - names->len, error)) == NULL)
    {
      cv_comp_free (c);
      c = NULL;
      goto fail;
    }
  c->file = g_steal_pointer (&f->st);
fail:
  if (cfg != NULL)
    json_object_unref (cfg);
  if (wanted != NULL)
    g_ptr_array_unref (wanted);
  g_ptr_array_unref (names);
  g_hash_table_unref (tensors);
  {
    GHashTableIter it;
    gpointer       k;
    g_hash_table_iter_init (&it, levels);
    while (g_hash_table_iter_next (&it, &k, NULL))
      g_free (k);
  }
  g_hash_table_unref (levels);
  g_hash_table_unref (res);
  file_free (f);
  return c;
}

/* ---- TAESD ------------------------------------------------------------------------------------ */

CvComp *
cv_convert_taesd (const char *path, gboolean encoder, GError **error)
{
  File       *f = load (path, error);
  GPtrArray  *names = NULL, *std_names = NULL, *wanted = NULL;
  GHashTable *std = NULL;
  GArray     *stages = NULL;
  CvComp     *c = NULL;
  const char *prefix = encoder ? "encoder.layers." : "decoder.layers.";
  gboolean    diffusers;
  int         i;
  CvTensor   *w, *last;
  gint64      lc, ch;
  JsonObject *cfg;

  if (f == NULL)
    return NULL;
  names = g_ptr_array_new ();
  std_names = g_ptr_array_new_with_free_func (g_free);
  std = g_hash_table_new (g_str_hash, g_str_equal); /* standalone name -> CvTensor* */
  diffusers = g_hash_table_contains (f->index, encoder ? "encoder.layers.0.weight" : "decoder.layers.0.weight");
  if (!diffusers && !g_hash_table_contains (f->index, encoder ? "0.weight" : "1.weight"))
    {
      if (encoder)
        cv_fail (error, "%s: neither a TAESD encoder (\"0.weight\") nor diffusers' AutoencoderTiny "
                 "(\"encoder.layers.0.weight\")", path);
      else
        cv_fail (error, "%s: neither a TAESD decoder (\"1.weight\") nor diffusers' AutoencoderTiny "
                 "(\"decoder.layers.0.weight\")", path);
      goto fail;
    }
  for (guint k = 0; k < f->all->len; k++)
    {
      Named *n = f->all->pdata[k];
      char  *sname;
      if (diffusers)
        {
          const char *rest;
          gint64      idx;
          if (!g_str_has_prefix (n->name, prefix))
            continue;
          idx = leading_index (n->name + strlen (prefix), &rest);
          if (idx < 0)
            {
              cv_fail (error, "%s: %s is not a layer's tensor", path, n->name);
              goto fail;
            }
          sname = g_strdup_printf ("%" G_GINT64_FORMAT ".%s", encoder ? idx : idx + 1, rest);
        }
      else
        sname = g_strdup (n->name);
      g_ptr_array_add (names, n->name);
      g_ptr_array_add (std_names, sname);
      g_hash_table_insert (std, sname, &n->t);
    }
#define HAS(...) ({ char *k_ = g_strdup_printf (__VA_ARGS__); gboolean h_ = g_hash_table_contains (std, k_); \
                    g_free (k_); h_; })
  stages = g_array_new (FALSE, TRUE, sizeof (gint64));
  if (encoder)
    {
      gint64 zero = 0;
      g_array_append_val (stages, zero);
      for (i = 1;; i++)
        {
          if (HAS ("%d.conv.0.weight", i))
            g_array_index (stages, gint64, stages->len - 1)++;
          else if (HAS ("%d.weight", i) && !HAS ("%d.bias", i))
            g_array_append_val (stages, zero);
          else if (HAS ("%d.weight", i))
            break;
          else
            {
              cv_fail (error, "%s: layer %d is neither a block nor a conv", path, i);
              goto fail;
            }
        }
      w = g_hash_table_lookup (std, "0.weight");
      {
        char *k = g_strdup_printf ("%d.weight", i);
        last = g_hash_table_lookup (std, k);
        g_free (k);
      }
      if (w->ndim < 1 || last->ndim < 1)
        {
          cv_fail (error, "%s: the first or last conv has no output channels", path);
          goto fail;
        }
      lc = last->shape[0];
      ch = w->shape[0];
    }
  else
    {
      gint64 blocks = 0;
      for (i = 3;;)
        {
          if (HAS ("%d.conv.0.weight", i))
            blocks++, i++;
          else if (HAS ("%d.weight", i + 1) && !HAS ("%d.bias", i + 1))
            {
              g_array_append_val (stages, blocks);
              blocks = 0;
              i += 2;
            }
          else if (HAS ("%d.weight", i))
            {
              g_array_append_val (stages, blocks);
              break;
            }
          else
            {
              cv_fail (error, "%s: layer %d is neither a block nor a conv", path, i);
              goto fail;
            }
        }
      w = g_hash_table_lookup (std, "1.weight");
      if (w->ndim < 2)
        {
          cv_fail (error, "%s: 1.weight is not a conv weight", path);
          goto fail;
        }
      lc = w->shape[1];
      ch = w->shape[0];
    }
#undef HAS
  cfg = json_object_new ();
  json_object_set_int_member (cfg, "latent_channels", lc);
  json_object_set_int_member (cfg, "channels", ch);
  {
    JsonArray *a = json_array_new ();
    for (guint s = 0; s < stages->len; s++)
      json_array_add_int_element (a, g_array_index (stages, gint64, s));
    json_object_set_array_member (cfg, "num_blocks", a);
  }
  wanted = taesd_shapes (encoder, lc, ch, stages);
  if (!check (path, std_names, std, wanted, error))
    {
      json_object_unref (cfg);
      goto fail;
    }
  c = g_new0 (CvComp, 1);
  c->arch = encoder ? "taesd-encoder" : "taesd-decoder";
  c->cfg = cfg;
  c->latent_channels = lc;
  c->tensors = cv_out_new ();
  for (guint k = 0; k < names->len; k++)
    cv_out_add (c->tensors, names->pdata[k], g_hash_table_lookup (std, std_names->pdata[k]));
  if ((c->info = source_info (TAESD_URL, TAESD_NAME, path, (gint64) f->all->len - names->len, error)) == NULL)
    {
      cv_comp_free (c);
      c = NULL;
      goto fail;
    }
  c->file = g_steal_pointer (&f->st);
fail:
  if (stages != NULL)
    g_array_unref (stages);
  if (wanted != NULL)
    g_ptr_array_unref (wanted);
  g_ptr_array_unref (names);
  g_ptr_array_unref (std_names);
  g_hash_table_unref (std);
  file_free (f);
  return c;
}
