/* cv-edm2.c — `convert-edm2` natively: NVIDIA's EDM2 snapshot pickles (and,
 * for latent packs, the SD VAE's and TAESD's safetensors files: cv-vae.c)
 * into a pack, as converters/gfcg_convert/edm2_pickle.py does it.
 *
 * The snapshot is read by the restricted unpickler (cv-pickle.c): NVIDIA's
 * persistent modules stay data (their embedded source is never looked at),
 * tensors are rebuilt from their storages with bounds checks.  The network
 * config comes from the recorded constructor arguments; every tensor is
 * checked against the tensor names and shapes that config gives (the
 * layout of converters/gfcg_convert/nets/edm2.py, written out below) and
 * written as the Python converter writes it: the same values (float32, or
 * float16 rounded to nearest even), the same files, the same pack.json. */
#include "cv.h"
#include "cv-args.h"
#include "cv-vae.h"

#include "gfcg/gfcg.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define NVIDIA_ROOT "https://nvlabs-fi-cdn.nvidia.com/edm2/posthoc-reconstructions"
#define LICENCE "CC-BY-NC-SA-4.0"
#define LICENCE_NOTE "NVIDIA EDM2 weights (Karras et al. 2024), CC BY-NC-SA 4.0 " \
  "(https://creativecommons.org/licenses/by-nc-sa/4.0/): non-commercial use only. " \
  "Converted locally by converters/convert-edm2 from a file the user downloaded; " \
  "gfcg never redistributes these weights."

/* ---- the expected tensors ------------------------------------------------------------- */

typedef struct
{
  gint64   img_resolution, img_channels, label_dim, model_channels, num_blocks;
  gint64   channel_mult[64];
  int      levels;
  gint64   cnoise, cemb;   /* from channel_mult_noise / _emb, or the defaults */
  gint64   channels_per_head;
  JsonNode *attn;          /* attn_resolutions (an array) */
} UnetShape;

static void
want_add (GPtrArray *w, int ndim, gint64 a, gint64 b, gint64 c, gint64 d, const char *fmt, ...)
  G_GNUC_PRINTF (7, 8);
static void
want_add (GPtrArray *w, int ndim, gint64 a, gint64 b, gint64 c, gint64 d, const char *fmt, ...)
{
  va_list ap;
  char   *name;

  va_start (ap, fmt);
  name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  cv_want_add (w, ndim, a, b, c, d, name);
}

static gboolean
in_attn (const UnetShape *u, gint64 r)
{
  JsonArray *a = json_node_get_array (u->attn);

  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      JsonNode *n = json_array_get_element (a, i);
      if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_INT64 &&
          json_node_get_int (n) == r)
        return TRUE;
      if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_DOUBLE &&
          json_node_get_double (n) == (double) r)
        return TRUE;
      if (JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_BOOLEAN &&
          (gint64) json_node_get_boolean (n) == r)
        return TRUE;
    }
  return FALSE;
}

/* One ModuleDict entry: its name and its tensors (a later entry of the same
 * name replaces an earlier one in its place, as ModuleDict does). */
typedef struct
{
  char      *name;
  GPtrArray *tensors; /* CvWant* */
  gint64     out;     /* its output channels (the skips) */
} Mod;

static void
mod_free (gpointer p)
{
  Mod *m = p;

  g_free (m->name);
  g_ptr_array_unref (m->tensors);
  g_free (m);
}

static GPtrArray *
mod_put (GPtrArray *mods, char *name, gint64 out)
{
  Mod *m = NULL;

  for (guint i = 0; i < mods->len; i++)
    if (strcmp (((Mod *) mods->pdata[i])->name, name) == 0)
      {
        m = mods->pdata[i];
        g_ptr_array_set_size (m->tensors, 0);
        g_free (name);
        break;
      }
  if (m == NULL)
    {
      m = g_new0 (Mod, 1);
      m->name = name;
      m->tensors = g_ptr_array_new_with_free_func (cv_want_free);
      g_ptr_array_add (mods, m);
    }
  m->out = out;
  return m->tensors;
}

static void
block (GPtrArray *w, const UnetShape *u, const char *prefix, gint64 cin, gint64 cout,
       gboolean enc, gboolean attention)
{
  gint64 heads = attention ? cout / u->channels_per_head : 0;

  want_add (w, 0, 0, 0, 0, 0, "%s.emb_gain", prefix);
  want_add (w, 4, cout, enc ? cout : cin, 3, 3, "%s.conv_res0.weight", prefix);
  want_add (w, 2, cout, u->cemb, 0, 0, "%s.emb_linear.weight", prefix);
  want_add (w, 4, cout, cout, 3, 3, "%s.conv_res1.weight", prefix);
  if (cin != cout)
    want_add (w, 4, cout, cin, 1, 1, "%s.conv_skip.weight", prefix);
  if (heads)
    {
      want_add (w, 4, 3 * cout, cout, 1, 1, "%s.attn_qkv.weight", prefix);
      want_add (w, 4, cout, cout, 1, 1, "%s.attn_proj.weight", prefix);
    }
}

/* EDM2Precond(**cfg).state_dict(): names and shapes, in its order. */
static GPtrArray *
expected_shapes (const UnetShape *u)
{
  GPtrArray *w = g_ptr_array_new_with_free_func (cv_want_free);
  GPtrArray *enc = g_ptr_array_new_with_free_func (mod_free);
  GPtrArray *dec = g_ptr_array_new_with_free_func (mod_free);
  GArray    *skips = g_array_new (FALSE, FALSE, sizeof (gint64));
  gint64     cout = u->img_channels + 1;

  want_add (w, 0, 0, 0, 0, 0, "out_gain");
  want_add (w, 1, u->cnoise, 0, 0, 0, "emb_fourier.freqs");
  want_add (w, 1, u->cnoise, 0, 0, 0, "emb_fourier.phases");
  want_add (w, 2, u->cemb, u->cnoise, 0, 0, "emb_noise.weight");
  if (u->label_dim)
    want_add (w, 2, u->cemb, u->label_dim, 0, 0, "emb_label.weight");
  for (int level = 0; level < u->levels; level++)
    {
      gint64 ch = u->model_channels * u->channel_mult[level];
      gint64 r = level < 63 ? u->img_resolution >> level : 0;
      char  *name;
      if (level == 0)
        {
          name = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_conv", r, r);
          GPtrArray *t = mod_put (enc, name, ch);
          want_add (t, 4, ch, cout, 3, 3, "enc.%s.weight", name);
          cout = ch;
        }
      else
        {
          name = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_down", r, r);
          GPtrArray *t = mod_put (enc, name, cout);
          char      *prefix = g_strdup_printf ("enc.%s", name);
          block (t, u, prefix, cout, cout, TRUE, FALSE);
          g_free (prefix);
        }
      for (gint64 i = 0; i < u->num_blocks; i++)
        {
          char      *n = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_block%" G_GINT64_FORMAT,
                                         r, r, i);
          GPtrArray *t = mod_put (enc, n, ch);
          char      *prefix = g_strdup_printf ("enc.%s", n);
          block (t, u, prefix, cout, ch, TRUE, in_attn (u, r));
          g_free (prefix);
          cout = ch;
        }
    }
  for (guint i = 0; i < enc->len; i++)
    g_array_append_val (skips, ((Mod *) enc->pdata[i])->out);
  for (int level = u->levels - 1; level >= 0; level--)
    {
      gint64 ch = u->model_channels * u->channel_mult[level];
      gint64 r = level < 63 ? u->img_resolution >> level : 0;
      if (level == u->levels - 1)
        {
          char *n0 = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_in0", r, r);
          char *n1 = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_in1", r, r);
          char *p0 = g_strdup_printf ("dec.%s", n0), *p1 = g_strdup_printf ("dec.%s", n1);
          block (mod_put (dec, n0, cout), u, p0, cout, cout, FALSE, TRUE);
          block (mod_put (dec, n1, cout), u, p1, cout, cout, FALSE, FALSE);
          g_free (p0);
          g_free (p1);
        }
      else
        {
          char *n = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_up", r, r);
          char *p = g_strdup_printf ("dec.%s", n);
          block (mod_put (dec, n, cout), u, p, cout, cout, FALSE, FALSE);
          g_free (p);
        }
      for (gint64 i = 0; i < u->num_blocks + 1; i++)
        {
          char  *n = g_strdup_printf ("%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "_block%" G_GINT64_FORMAT,
                                     r, r, i);
          char  *p = g_strdup_printf ("dec.%s", n);
          gint64 skip = 0;
          if (skips->len > 0)
            {
              skip = g_array_index (skips, gint64, skips->len - 1);
              g_array_set_size (skips, skips->len - 1);
            }
          block (mod_put (dec, n, ch), u, p, cout + skip, ch, FALSE, in_attn (u, r));
          g_free (p);
          cout = ch;
        }
    }
  for (guint i = 0; i < enc->len; i++)
    {
      GPtrArray *t = ((Mod *) enc->pdata[i])->tensors;
      for (guint k = 0; k < t->len; k++)
        g_ptr_array_add (w, g_steal_pointer (&t->pdata[k]));
      t->len = 0;
    }
  for (guint i = 0; i < dec->len; i++)
    {
      GPtrArray *t = ((Mod *) dec->pdata[i])->tensors;
      for (guint k = 0; k < t->len; k++)
        g_ptr_array_add (w, g_steal_pointer (&t->pdata[k]));
      t->len = 0;
    }
  want_add (w, 4, u->img_channels, cout, 3, 3, "out_conv.weight");
  g_ptr_array_unref (enc);
  g_ptr_array_unref (dec);
  g_array_unref (skips);
  return w;
}

/* ---- walking the snapshot ---------------------------------------------------------------- */

static Pv *
module_state (Pv *obj, const char *where, GError **error)
{
  Pv *state;

  if (obj->type == PV_PERSISTENT)
    state = obj->pers.state;
  else if (obj->type == PV_STANDIN)
    state = obj->standin.state;
  else
    {
      cv_fail (error, "%s: expected a torch module, found %s", where, cv_pv_type_name (obj));
      return NULL;
    }
  if (state->type != PV_DICT)
    {
      cv_fail (error, "%s: module without a state dict", where);
      return NULL;
    }
  return state;
}

/* Parameters and buffers, recursively, with state_dict-style dotted names
 * (a later one of the same name replaces the earlier, in its place). */
static gboolean
collect_tensors (Pv *obj, const char *prefix, GPtrArray *names, GHashTable *tensors, int depth,
                 GError **error)
{
  Pv         *state = module_state (obj, *prefix ? prefix : "<root>", error);
  Pv         *mods;
  const char *fields[] = { "_parameters", "_buffers" };

  if (state == NULL)
    return FALSE;
  if (depth > 200)
    {
      cv_fail (error, "%s: modules nested too deeply", prefix);
      return FALSE;
    }
  for (int f = 0; f < 2; f++)
    {
      Pv *d = cv_dict_get (state, fields[f]);
      Pv *np = f == 1 ? cv_dict_get (state, "_non_persistent_buffers_set") : NULL;
      if (!cv_pv_truthy (d))
        continue;
      if (d->type != PV_DICT)
        {
          cv_fail (error, "%s%s: not a dict of tensors", prefix, fields[f]);
          return FALSE;
        }
      for (guint i = 0; i < d->dict.n; i++)
        {
          Pv   *k = d->dict.keys[i], *t = d->dict.vals[i];
          char *name, *full;
          if (t->type == PV_NONE)
            continue;
          if (k->type != PV_STR)
            {
              cv_fail (error, "%s: a tensor named by a %s", *prefix ? prefix : "<root>", cv_pv_type_name (k));
              return FALSE;
            }
          name = cv_pv_strdup (k);
          full = g_strconcat (prefix, name, NULL);
          if (t->type != PV_TENSOR)
            {
              cv_fail (error, "%s: not a tensor", full);
              g_free (name);
              g_free (full);
              return FALSE;
            }
          if (f == 1 && cv_pv_truthy (np) && cv_pv_contains_str (np, name) && np->type != PV_STR)
            {
              g_free (name);
              g_free (full);
              continue;
            }
          g_free (name);
          if (!g_hash_table_contains (tensors, full))
            g_ptr_array_add (names, g_strdup (full));
          g_hash_table_insert (tensors, full, t);
        }
    }
  mods = cv_dict_get (state, "_modules");
  if (cv_pv_truthy (mods))
    {
      if (mods->type != PV_DICT)
        {
          cv_fail (error, "%s_modules: not a dict of modules", prefix);
          return FALSE;
        }
      for (guint i = 0; i < mods->dict.n; i++)
        {
          Pv      *k = mods->dict.keys[i], *sub = mods->dict.vals[i];
          char    *name, *p;
          gboolean ok;
          if (sub->type == PV_NONE)
            continue;
          if (k->type != PV_STR)
            {
              cv_fail (error, "%s: a module named by a %s", *prefix ? prefix : "<root>", cv_pv_type_name (k));
              return FALSE;
            }
          name = cv_pv_strdup (k);
          p = g_strdup_printf ("%s%s.", prefix, name);
          ok = collect_tensors (sub, p, names, tensors, depth + 1, error);
          g_free (p);
          g_free (name);
          if (!ok)
            return FALSE;
        }
    }
  return TRUE;
}

/* edm2_pickle._plain: constructor arguments as JSON (plain values only). */
static JsonNode *
plain (Pv *v, GError **error)
{
  JsonNode *n = json_node_new (JSON_NODE_VALUE);

  switch (v->type)
    {
    case PV_NONE: json_node_init_null (n); return n;
    case PV_BOOL: json_node_set_boolean (n, v->b); return n;
    case PV_INT: json_node_set_int (n, v->i); return n;
    case PV_FLOAT: json_node_set_double (n, v->f); return n;
    case PV_STR:
      {
        char *s = cv_pv_strdup (v), *valid = g_utf8_make_valid (s, -1);
        json_node_set_string (n, valid);
        g_free (valid);
        g_free (s);
        return n;
      }
    case PV_LIST: case PV_TUPLE:
      {
        JsonArray *a = json_array_new ();
        json_node_init_array (n, a);
        json_array_unref (a);
        for (guint i = 0; i < v->seq.n; i++)
          {
            JsonNode *e = plain (v->seq.items[i], error);
            if (e == NULL)
              {
                json_node_unref (n);
                return NULL;
              }
            json_array_add_element (a, e);
          }
        return n;
      }
    default:
      {
        char *r = cv_pv_repr (v, 200);
        cv_fail (error, "unexpected constructor argument value %s", r);
        g_free (r);
        json_node_unref (n);
        return NULL;
      }
    }
}

/* _init_kwargs: positional arguments by name, then the keywords. */
static Pv *
init_kwargs (CvHeap *heap, Pv *obj, const char *const *positional, const char *what, GError **error)
{
  Pv   *st = obj->pers.state, *kw, *args, *out;
  guint npos = g_strv_length ((char **) positional);

  if (st->type != PV_DICT)
    {
      cv_fail (error, "%s: module without a state dict", what);
      return NULL;
    }
  kw = cv_dict_get (st, "_init_kwargs");
  args = cv_dict_get (st, "_init_args");
  if (kw == NULL || kw->type == PV_NONE)
    {
      cv_fail (error, "%s: the pickle did not record its constructor arguments", what);
      return NULL;
    }
  if (!cv_pv_truthy (args))
    args = NULL;
  if (kw->type != PV_DICT || (args != NULL && args->type != PV_TUPLE && args->type != PV_LIST) ||
      (args != NULL && args->seq.n > npos))
    {
      cv_fail (error, "%s: malformed constructor arguments", what);
      return NULL;
    }
  out = cv_pv_new (heap, PV_DICT);
  for (guint i = 0; args != NULL && i < args->seq.n; i++)
    {
      Pv *k = cv_pv_new (heap, PV_STR);
      k->s.p = (const guint8 *) positional[i];
      k->s.n = strlen (positional[i]);
      cv_dict_set (out, k, args->seq.items[i]);
    }
  for (guint i = 0; i < kw->dict.n; i++)
    if (!cv_dict_set (out, kw->dict.keys[i], kw->dict.vals[i]))
      {
        cv_fail (error, "%s: malformed constructor arguments", what);
        return NULL;
      }
  return out;
}

static const char *const precond_positional[] = {
  "img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_data", "logvar_channels", NULL
};
static const char *const unet_positional[] = {
  "img_resolution", "img_channels", "label_dim", "model_channels", "channel_mult",
  "channel_mult_noise", "channel_mult_emb", "num_blocks", "attn_resolutions", "label_balance",
  "concat_balance", NULL
};

/* NVlabs/edm2 UNet defaults. */
static JsonNode *
unet_default (const char *key)
{
  static const char *json[][2] = {
    { "model_channels", "192" }, { "channel_mult", "[1, 2, 3, 4]" }, { "channel_mult_noise", "null" },
    { "channel_mult_emb", "null" }, { "num_blocks", "3" }, { "attn_resolutions", "[16, 8]" },
    { "label_balance", "0.5" }, { "concat_balance", "0.5" }, { "res_balance", "0.3" },
    { "attn_balance", "0.3" }, { "channels_per_head", "64" }, { "clip_act", "256" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (json); i++)
    if (strcmp (json[i][0], key) == 0)
      return json_from_string (json[i][1], NULL);
  return NULL;
}

static const char *const unet_default_keys[] = {
  "model_channels", "channel_mult", "channel_mult_noise", "channel_mult_emb", "num_blocks",
  "attn_resolutions", "label_balance", "concat_balance", "res_balance", "attn_balance",
  "channels_per_head", "clip_act", NULL
};

static gboolean
node_int (JsonNode *n, gint64 *out)
{
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

#define MAX_WIDTH ((gint64) 1 << 24)

/* What the shapes need from the config, checked (Python's torch would fail on
 * such values in its own words; here they are named). */
static gboolean
unet_shape (JsonObject *cfg, UnetShape *u, GError **error)
{
  JsonNode  *cm = json_object_get_member (cfg, "channel_mult");
  JsonNode  *cmn = json_object_get_member (cfg, "channel_mult_noise");
  JsonNode  *cme = json_object_get_member (cfg, "channel_mult_emb");
  JsonArray *a;
  gint64     v;

  memset (u, 0, sizeof *u);
  node_int (json_object_get_member (cfg, "img_resolution"), &u->img_resolution);
  node_int (json_object_get_member (cfg, "img_channels"), &u->img_channels);
  node_int (json_object_get_member (cfg, "label_dim"), &u->label_dim);
  node_int (json_object_get_member (cfg, "model_channels"), &u->model_channels);
  node_int (json_object_get_member (cfg, "num_blocks"), &u->num_blocks);
  if (u->img_channels > MAX_WIDTH || u->label_dim > MAX_WIDTH || u->model_channels > MAX_WIDTH ||
      u->num_blocks > 1000)
    {
      cv_fail (error, "the recorded config is too large to be an EDM2 network");
      return FALSE;
    }
  if (!JSON_NODE_HOLDS_ARRAY (cm) || (a = json_node_get_array (cm), json_array_get_length (a) == 0) ||
      json_array_get_length (a) > G_N_ELEMENTS (u->channel_mult))
    {
      cv_fail (error, "channel_mult is not a list of 1 to 64 integers");
      return FALSE;
    }
  u->levels = (int) json_array_get_length (a);
  for (int i = 0; i < u->levels; i++)
    if (!node_int (json_array_get_element (a, i), &u->channel_mult[i]) || u->channel_mult[i] < 0 ||
        u->channel_mult[i] > MAX_WIDTH || u->model_channels * u->channel_mult[i] > MAX_WIDTH)
      {
        cv_fail (error, "channel_mult is not a list of 1 to 64 integers");
        return FALSE;
      }
  if (JSON_NODE_HOLDS_NULL (cmn))
    u->cnoise = u->model_channels * u->channel_mult[0];
  else if (node_int (cmn, &v) && v >= 0 && v <= MAX_WIDTH && u->model_channels * v <= MAX_WIDTH)
    u->cnoise = u->model_channels * v;
  else
    {
      cv_fail (error, "channel_mult_noise is neither null nor an integer");
      return FALSE;
    }
  if (JSON_NODE_HOLDS_NULL (cme))
    for (int i = 0; i < u->levels; i++)
      u->cemb = MAX (u->cemb, u->model_channels * u->channel_mult[i]);
  else if (node_int (cme, &v) && v >= 0 && v <= MAX_WIDTH && u->model_channels * v <= MAX_WIDTH)
    u->cemb = u->model_channels * v;
  else
    {
      cv_fail (error, "channel_mult_emb is neither null nor an integer");
      return FALSE;
    }
  u->attn = json_object_get_member (cfg, "attn_resolutions");
  if (!JSON_NODE_HOLDS_ARRAY (u->attn))
    {
      cv_fail (error, "attn_resolutions is not a list");
      return FALSE;
    }
  if (!node_int (json_object_get_member (cfg, "channels_per_head"), &u->channels_per_head) ||
      u->channels_per_head <= 0)
    {
      cv_fail (error, "channels_per_head is not a positive integer");
      return FALSE;
    }
  return TRUE;
}

/* ---- one network ------------------------------------------------------------------------------- */

typedef struct
{
  char        *path;
  GMappedFile *map;
  CvHeap      *heap;
  JsonObject  *cfg;
  gint64       img_resolution, img_channels, label_dim;
  CvOutFile   *tensors;
  JsonObject  *info;
} Net;

static void
net_free (Net *n)
{
  if (n == NULL)
    return;
  cv_out_free (n->tensors);
  if (n->cfg != NULL)
    json_object_unref (n->cfg);
  if (n->info != NULL)
    json_object_unref (n->info);
  cv_heap_free (n->heap);
  if (n->map != NULL)
    g_mapped_file_unref (n->map);
  g_free (n->path);
  g_free (n);
}

/* NVIDIA's published names: edm2-img512-xs-uncond-2147483-0.045.pkl. */
static void
parse_nvidia_name (const char *base, JsonObject *info)
{
  GRegex     *re = g_regex_new ("^edm2-(img\\d+)-([a-z]+)(-uncond)?-(\\d+)-(\\d+\\.\\d+)\\.pkl$",
                                G_REGEX_DOLLAR_ENDONLY, 0, NULL);
  GMatchInfo *m = NULL;

  if (g_regex_match (re, base, 0, &m))
    {
      char *ds = g_match_info_fetch (m, 1), *size = g_match_info_fetch (m, 2);
      char *unc = g_match_info_fetch (m, 3), *kimg = g_match_info_fetch (m, 4);
      char *ema = g_match_info_fetch (m, 5), *url = g_strdup_printf ("%s/%s", NVIDIA_ROOT, base);
      json_object_set_string_member (info, "dataset", ds);
      json_object_set_string_member (info, "size", size);
      json_object_set_boolean_member (info, "conditional", unc == NULL || *unc == '\0');
      json_object_set_int_member (info, "training_kimg", g_ascii_strtoll (kimg, NULL, 10));
      json_object_set_double_member (info, "ema_std", g_ascii_strtod (ema, NULL));
      json_object_set_string_member (info, "url", url);
      g_free (ds), g_free (size), g_free (unc), g_free (kimg), g_free (ema), g_free (url);
    }
  g_match_info_free (m);
  g_regex_unref (re);
}

static int
cmp_strp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static JsonNode *
get_or (Pv *dict, const char *key, JsonNode *fallback, GError **error)
{
  Pv *v = cv_dict_get (dict, key);

  if (v == NULL)
    return fallback;
  if (fallback != NULL)
    json_node_unref (fallback);
  return plain (v, error);
}

/* edm2_config: the UNet config and the Precond's extra facts. */
static gboolean
edm2_config (Net *n, Pv *net, JsonObject **extra, GError **error)
{
  Pv        *pk, *uk, *unet, *mods, *rf, *sd_state;
  JsonObject *cfg;
  JsonNode  *node;

  if (net->type != PV_PERSISTENT || strcmp (net->pers.class_name, "Precond") != 0)
    {
      char *r = cv_pv_repr (net, 200);
      cv_fail (error, "'ema' is %s, not an EDM2 Precond network", r);
      g_free (r);
      return FALSE;
    }
  if ((pk = init_kwargs (n->heap, net, precond_positional, "Precond", error)) == NULL)
    return FALSE;
  mods = cv_dict_get (net->pers.state, "_modules");
  unet = cv_pv_truthy (mods) ? cv_dict_get (mods, "unet") : NULL;
  if (unet == NULL || unet->type != PV_PERSISTENT || strcmp (unet->pers.class_name, "UNet") != 0)
    {
      cv_fail (error, "the Precond has no EDM2 'unet' submodule");
      return FALSE;
    }
  if ((uk = init_kwargs (n->heap, unet, unet_positional, "UNet", error)) == NULL)
    return FALSE;
  cfg = json_object_new ();
  for (const char *const *k = (const char *const[]) { "img_resolution", "img_channels", "label_dim", NULL };
       *k != NULL; k++)
    {
      Pv *v = cv_dict_get (uk, *k);
      if (v == NULL)
        {
          cv_fail (error, "UNet constructor arguments lack %s", *k);
          json_object_unref (cfg);
          return FALSE;
        }
      if ((node = plain (v, error)) == NULL)
        {
          json_object_unref (cfg);
          return FALSE;
        }
      json_object_set_member (cfg, *k, node);
    }
  for (const char *const *k = unet_default_keys; *k != NULL; k++)
    {
      if ((node = get_or (uk, *k, unet_default (*k), error)) == NULL)
        {
          json_object_unref (cfg);
          return FALSE;
        }
      json_object_set_member (cfg, *k, node);
    }
  /* pk.get('sigma_data', net.state.get('sigma_data', 0.5)) */
  sd_state = cv_dict_get (pk, "sigma_data");
  if (sd_state == NULL)
    sd_state = cv_dict_get (net->pers.state, "sigma_data");
  node = sd_state != NULL ? plain (sd_state, error) : json_from_string ("0.5", NULL);
  if (node == NULL)
    {
      json_object_unref (cfg);
      return FALSE;
    }
  json_object_set_member (cfg, "sigma_data", node);
  rf = cv_dict_get (uk, "resample_filter");
  if (rf != NULL)
    {
      gboolean ok = (rf->type == PV_LIST || rf->type == PV_TUPLE) && rf->seq.n == 2;
      for (guint i = 0; ok && i < 2; i++)
        {
          Pv *x = rf->seq.items[i];
          ok = (x->type == PV_INT && x->i == 1) || (x->type == PV_BOOL && x->b) ||
               (x->type == PV_FLOAT && x->f == 1.0);
        }
      if (!ok)
        {
          char *r = cv_pv_repr (rf, 200);
          cv_fail (error, "resample_filter %s is not supported (only [1, 1])", r);
          g_free (r);
          json_object_unref (cfg);
          return FALSE;
        }
    }
  for (const char *const *k = (const char *const[]) { "img_resolution", "img_channels", "label_dim",
                                                      "model_channels", "num_blocks", NULL };
       *k != NULL; k++)
    {
      JsonNode *v = json_object_get_member (cfg, *k);
      if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_INT64 ||
          json_node_get_int (v) < 0)
        {
          char *text = json_to_string (v, FALSE);
          /* Python's repr of the value: True/False/None for JSON's words. */
          const char *py = strcmp (text, "true") == 0 ? "True" : strcmp (text, "false") == 0 ? "False" :
                           strcmp (text, "null") == 0 ? "None" : text;
          cv_fail (error, "%s = %s is not a non-negative integer", *k, py);
          g_free (text);
          json_object_unref (cfg);
          return FALSE;
        }
    }
  *extra = json_object_new ();
  for (const char *const *k = (const char *const[]) { "use_fp16", "logvar_channels", NULL }; *k != NULL; k++)
    {
      Pv *v = cv_dict_get (pk, *k);
      JsonNode *nv = v != NULL ? plain (v, error) : json_node_init_null (json_node_alloc ());
      if (nv == NULL)
        {
          json_object_unref (*extra);
          json_object_unref (cfg);
          return FALSE;
        }
      json_object_set_member (*extra, *k, nv);
    }
  {
    Pv       *v = cv_dict_get (uk, "dropout");
    JsonNode *nv = v != NULL ? plain (v, error) : json_from_string ("0", NULL);
    if (nv == NULL)
      {
        json_object_unref (*extra);
        json_object_unref (cfg);
        return FALSE;
      }
    json_object_set_member (*extra, "dropout", nv);
  }
  n->cfg = cfg;
  n->img_resolution = json_object_get_int_member (cfg, "img_resolution");
  n->img_channels = json_object_get_int_member (cfg, "img_channels");
  n->label_dim = json_object_get_int_member (cfg, "label_dim");
  return TRUE;
}

static Net *
convert_net_inner (const char *path, const char *role, const guint8 *data_in, gsize len_in,
                   volatile sig_atomic_t *cancel, GError **error)
{
  Net        *n = g_new0 (Net, 1);
  CvUnpickler u = { 0 };
  Pv         *data, *ema;
  GPtrArray  *names = NULL, *want = NULL, *dropped = NULL, *unet_names = NULL;
  GHashTable *tensors = NULL, *out = NULL, *want_set = NULL;
  JsonObject *extra = NULL;
  const guint8 *bytes;
  gsize       len;
  UnetShape   us;

  n->path = g_strdup (path);
  n->heap = cv_heap_new ();
  if (data_in != NULL)
    bytes = data_in, len = len_in;
  else
    {
      if ((n->map = cv_map_file (path, error)) == NULL)
        goto fail;
      bytes = (const guint8 *) g_mapped_file_get_contents (n->map);
      len = g_mapped_file_get_length (n->map);
    }
  if (len == 0)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_BAD, "empty file (0 bytes), not a pickle");
      goto fail;
    }
  if (len >= 2 && bytes[0] == 'P' && bytes[1] == 'K')
    {
      g_set_error (error, CV_ERROR, CV_ERROR_REFUSED,
                   "a zip archive (torch.save), not an EDM2 snapshot pickle");
      goto fail;
    }
  u.heap = n->heap;
  u.data = bytes;
  u.len = len;
  u.allow = CV_ALLOW_EDM2;
  u.cancel = cancel;
  if ((data = cv_unpickle (&u, error)) == NULL || !cv_refuse_bad_tensors (data, error))
    goto fail;
  if (data->type != PV_DICT || (ema = cv_dict_get (data, "ema")) == NULL)
    {
      cv_fail (error, "not an EDM2 snapshot (no 'ema' entry)");
      goto fail;
    }
  if (!edm2_config (n, ema, &extra, error))
    goto fail;
  names = g_ptr_array_new_with_free_func (g_free);
  tensors = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (!collect_tensors (ema, "", names, tensors, 0, error))
    goto fail;
  out = g_hash_table_new (g_str_hash, g_str_equal);
  unet_names = g_ptr_array_new ();
  dropped = g_ptr_array_new ();
  for (guint i = 0; i < names->len; i++)
    {
      const char *name = names->pdata[i];
      if (g_str_has_prefix (name, "unet."))
        {
          if (!g_hash_table_contains (out, name + 5))
            g_ptr_array_add (unet_names, (gpointer) (name + 5));
          g_hash_table_insert (out, (gpointer) (name + 5), g_hash_table_lookup (tensors, name));
        }
      else if (g_str_has_prefix (name, "logvar_"))
        g_ptr_array_add (dropped, (gpointer) name);
      else
        {
          cv_fail (error, "unexpected tensor %s outside the UNet", name);
          goto fail;
        }
    }
  if (!unet_shape (n->cfg, &us, error))
    goto fail;
  want = expected_shapes (&us);
  want_set = g_hash_table_new (g_str_hash, g_str_equal);
  {
    GString *missing = NULL, *unknown = NULL;
    guint    nmissing = 0, nunknown = 0;
    for (guint i = 0; i < want->len; i++)
      {
        CvWant *w = want->pdata[i];
        g_hash_table_add (want_set, w->name);
        if (!g_hash_table_contains (out, w->name) && nmissing++ < 8)
          {
            if (missing == NULL)
              missing = g_string_new (NULL);
            else
              g_string_append (missing, ", ");
            g_string_append (missing, w->name);
          }
      }
    if (missing != NULL)
      {
        cv_fail (error, "%s (%s): missing tensors for the recorded config: %s%s", path, role,
                 missing->str, nmissing > 8 ? " ..." : "");
        g_string_free (missing, TRUE);
        goto fail;
      }
    for (guint i = 0; i < unet_names->len; i++)
      if (!g_hash_table_contains (want_set, unet_names->pdata[i]) && nunknown++ < 8)
        {
          if (unknown == NULL)
            unknown = g_string_new (NULL);
          else
            g_string_append (unknown, ", ");
          g_string_append (unknown, unet_names->pdata[i]);
        }
    if (unknown != NULL)
      {
        cv_fail (error, "%s (%s): tensors the recorded config does not use: %s", path, role, unknown->str);
        g_string_free (unknown, TRUE);
        goto fail;
      }
  }
  n->tensors = cv_out_new ();
  for (guint i = 0; i < want->len; i++)
    {
      CvWant  *w = want->pdata[i];
      CvTensor t;
      cv_tensor_from_pv (&t, g_hash_table_lookup (out, w->name));
      if (!cv_shape_equal (&t, w->ndim, w->shape))
        {
          char *have = cv_shape_str (t.ndim, t.shape), *need = cv_shape_str (w->ndim, w->shape);
          cv_fail (error, "%s (%s): %s has shape %s, the config needs %s", path, role, w->name, have, need);
          g_free (have);
          g_free (need);
          goto fail;
        }
      if (!cv_dtype_is_float (t.dtype))
        {
          cv_fail (error, "%s (%s): %s is %s, not floating point", path, role, w->name,
                   cv_dtype_torch (t.dtype));
          goto fail;
        }
      cv_out_add (n->tensors, w->name, &t);
    }
  {
    char      *base = g_path_get_basename (path);
    char      *sha = cv_sha256_bytes (bytes, len);
    JsonArray *dr = json_array_new ();
    n->info = json_object_new ();
    json_object_set_string_member (n->info, "file", base);
    json_object_set_string_member (n->info, "sha256", sha);
    json_object_set_object_member (n->info, "precond", g_steal_pointer (&extra));
    g_ptr_array_sort (dropped, cmp_strp);
    for (guint i = 0; i < dropped->len; i++)
      json_array_add_string_element (dr, dropped->pdata[i]);
    json_object_set_array_member (n->info, "dropped", dr);
    parse_nvidia_name (base, n->info);
    g_free (base);
    g_free (sha);
  }
  g_ptr_array_unref (names);
  g_ptr_array_unref (want);
  g_ptr_array_unref (dropped);
  g_ptr_array_unref (unet_names);
  g_hash_table_unref (tensors);
  g_hash_table_unref (out);
  g_hash_table_unref (want_set);
  return n;
fail:
  if (extra != NULL)
    json_object_unref (extra);
  if (names != NULL)
    g_ptr_array_unref (names);
  if (want != NULL)
    g_ptr_array_unref (want);
  if (dropped != NULL)
    g_ptr_array_unref (dropped);
  if (unet_names != NULL)
    g_ptr_array_unref (unet_names);
  if (tensors != NULL)
    g_hash_table_unref (tensors);
  if (out != NULL)
    g_hash_table_unref (out);
  if (want_set != NULL)
    g_hash_table_unref (want_set);
  net_free (n);
  return NULL;
}

/* convert_net: every error names the file. */
static Net *
convert_net (const char *path, const char *role, volatile sig_atomic_t *cancel, GError **error)
{
  Net *n = convert_net_inner (path, role, NULL, 0, cancel, error);

  if (n == NULL && error != NULL && *error != NULL && (*error)->code != CV_ERROR_CANCELLED)
    {
      char *p1 = g_strdup_printf ("%s:", path), *p2 = g_strdup_printf ("%s (", path);
      if (!g_str_has_prefix ((*error)->message, p1) && !g_str_has_prefix ((*error)->message, p2))
        g_prefix_error (error, "%s: ", path);
      g_free (p1);
      g_free (p2);
    }
  return n;
}

/* Everything convert-edm2 does with one snapshot but writing it, on bytes in
 * memory, every tensor read (the pickle fuzzer's target). */
gboolean
cv_edm2_inspect (const guint8 *data, gsize len, GError **error)
{
  Net     *n = convert_net_inner ("<input>", "main", data != NULL ? data : (const guint8 *) "",
                                  len, NULL, error);
  gboolean ok = n != NULL;

  if (n == NULL)
    return FALSE;
  for (guint i = 0; i < n->tensors->tensors->len; i++)
    {
      CvOutTensor *t = n->tensors->tensors->pdata[i];
      volatile float sink = 0;
      for (gint64 e = 0; e < t->src.numel; e++)
        sink += cv_tensor_get_f32 (&t->src, e);
      (void) sink;
    }
  net_free (n);
  return ok;
}

/* ---- the pack ------------------------------------------------------------------------------------ */

static JsonArray *
classes_for (gint64 label_dim, GError **error)
{
  JsonArray *a;

  if (label_dim > 1000)
    {
      cv_fail (error, "label_dim %" G_GINT64_FORMAT " > 1000: no ImageNet-1k mapping", label_dim);
      return NULL;
    }
  a = json_array_new ();
  for (gint64 k = 0; k < label_dim; k++)
    {
      const GfcgImagenetClass *c = gfcg_imagenet_get ((int) k);
      JsonObject *o = json_object_new ();
      json_object_set_int_member (o, "imagenet", k);
      json_object_set_string_member (o, "wnid", c != NULL && c->wnid != NULL ? c->wnid : "");
      json_object_set_string_member (o, "name", c != NULL && c->name != NULL ? c->name : "");
      json_array_add_object_element (a, o);
    }
  return a;
}

typedef struct
{
  const char *main, *guide, *uncond, *out, *name, *title, *mode, *source_url;
  const char *guidance, *guidance_cfg, *guidance_atg;
  const char *vae, *vae_config, *taesd, *taesd_encoder;
  gboolean    fp16, encoder;
} Edm2Args;

static gboolean
save_component (CvOutFile *t, const char *dir, const char *role, gboolean fp16,
                volatile sig_atomic_t *cancel, GError **error)
{
  char    *file = g_strdup_printf ("%s/%s.safetensors", dir, role);
  gboolean ok = (!fp16 || cv_out_check_fp16 (t, role, error)) && cv_out_write (t, file, fp16, cancel, error);

  g_free (file);
  return ok;
}

static gboolean
edm2_convert (CvContext *cx, const Edm2Args *a, double *weights, gboolean *have_weight, GError **error)
{
  const char *roles[3] = { "main", "guide", "uncond" };
  const char *paths[3] = { a->main, a->guide, a->uncond };
  Net        *nets[3] = { NULL, NULL, NULL };
  CvComp     *comps[4] = { NULL, NULL, NULL, NULL }; /* decoder, preview, encoder, preview-encoder */
  const char *kind;
  gint64      resolution;
  JsonObject *components, *sources, *manifest, *defaults;
  JsonNode   *root;
  JsonArray  *classes;
  gboolean    ok = FALSE;
  char       *base = NULL, *path = NULL;
  GString    *note = NULL;

  for (int i = 0; i < 3; i++)
    if (paths[i] != NULL && (nets[i] = convert_net (paths[i], roles[i], cx->cancel, error)) == NULL)
      goto out;
  if (nets[0]->label_dim == 0)
    {
      cv_fail (error, "%s: an unconditional network (label_dim 0) cannot be the main network; pass it "
               "as --uncond next to a class-conditional --main", a->main);
      goto out;
    }
  for (int i = 0; i < 3; i++)
    if (nets[i] != NULL && (nets[i]->img_resolution != nets[0]->img_resolution ||
                            nets[i]->img_channels != nets[0]->img_channels))
      {
        cv_fail (error, "%s works on %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "^2, main on %"
                 G_GINT64_FORMAT "x%" G_GINT64_FORMAT "^2", roles[i], nets[i]->img_channels,
                 nets[i]->img_resolution, nets[0]->img_channels, nets[0]->img_resolution);
        goto out;
      }
  if (nets[1] != NULL && nets[1]->label_dim != nets[0]->label_dim)
    {
      cv_fail (error, "guide and main have different label_dim (autoguidance needs the same labels)");
      goto out;
    }
  if (nets[2] != NULL && nets[2]->label_dim != 0)
    fprintf (cx->log, "note: --uncond network has label_dim %" G_GINT64_FORMAT "; the engine runs "
             "it label-less\n", nets[2]->label_dim);
  if (nets[0]->img_channels == 3)
    kind = "pixel", resolution = nets[0]->img_resolution;
  else if (nets[0]->img_channels == 4)
    kind = "latent", resolution = nets[0]->img_resolution * 8;
  else
    {
      cv_fail (error, "img_channels %" G_GINT64_FORMAT ": neither pixel (3) nor SD latent (4)",
               nets[0]->img_channels);
      goto out;
    }
  if ((a->vae || a->taesd || a->encoder || a->taesd_encoder) && strcmp (kind, "latent") != 0)
    {
      cv_fail (error, "--vae/--taesd/--encoder/--taesd-encoder belong to latent (4-channel) networks; "
               "this one is pixel");
      goto out;
    }
  /* decoders, then encoders (sd_decoders.py) */
  if (a->vae != NULL && (comps[0] = cv_convert_vae (a->vae, a->vae_config, FALSE, error)) == NULL)
    goto out;
  if (a->taesd != NULL && (comps[a->vae ? 1 : 0] = cv_convert_taesd (a->taesd, FALSE, error)) == NULL)
    goto out;
  if (a->encoder && a->vae == NULL)
    {
      cv_fail (error, "--encoder takes the encoder of the --vae file; give --vae too");
      goto out;
    }
  if (a->encoder && (comps[2] = cv_convert_vae (a->vae, a->vae_config, TRUE, error)) == NULL)
    goto out;
  if (a->taesd_encoder != NULL &&
      (comps[a->encoder ? 3 : 2] = cv_convert_taesd (a->taesd_encoder, TRUE, error)) == NULL)
    goto out;
  for (int i = 0; i < 4; i++)
    if (comps[i] != NULL && comps[i]->latent_channels != nets[0]->img_channels)
      {
        cv_fail (error, "%s: %s %" G_GINT64_FORMAT " latent channels, the networks make %" G_GINT64_FORMAT,
                 json_object_get_string_member (comps[i]->info, "file"), i < 2 ? "decodes" : "encodes to",
                 comps[i]->latent_channels, nets[0]->img_channels);
        goto out;
      }
  if (g_mkdir_with_parents (a->out, 0755) != 0)
    {
      cv_io_error (error, a->out, errno);
      goto out;
    }
  components = json_object_new ();
  sources = json_object_new ();
  for (int i = 0; i < 3; i++)
    {
      JsonObject *c;
      if (nets[i] == NULL)
        continue;
      if (!save_component (nets[i]->tensors, a->out, roles[i], a->fp16, cx->cancel, error))
        {
          json_object_unref (components);
          json_object_unref (sources);
          goto out;
        }
      c = json_object_new ();
      {
        char *file = g_strdup_printf ("%s.safetensors", roles[i]);
        json_object_set_string_member (c, "file", file);
        g_free (file);
      }
      json_object_set_string_member (c, "arch", "edm2-unet");
      json_object_set_object_member (c, "config", json_object_ref (nets[i]->cfg));
      json_object_set_object_member (c, "source", json_object_ref (nets[i]->info));
      json_object_set_object_member (components, roles[i], c);
      json_object_set_string_member (sources, roles[i],
                                     json_object_has_member (nets[i]->info, "url")
                                     ? json_object_get_string_member (nets[i]->info, "url")
                                     : json_object_get_string_member (nets[i]->info, "file"));
    }
  for (int i = 0; i < 4; i++)
    {
      static const char *comp_roles[] = { "decoder", "preview", "encoder", "preview-encoder" };
      const char *role = comp_roles[i];
      JsonObject *c;
      char       *file, *src;
      if (comps[i] == NULL)
        continue;
      /* --taesd alone is the decoder, --taesd-encoder alone the encoder */
      if (!save_component (comps[i]->tensors, a->out, role, a->fp16, cx->cancel, error))
        {
          json_object_unref (components);
          json_object_unref (sources);
          goto out;
        }
      file = g_strdup_printf ("%s.safetensors", role);
      c = json_object_new ();
      json_object_set_string_member (c, "file", file);
      json_object_set_string_member (c, "arch", comps[i]->arch);
      json_object_set_object_member (c, "config", json_object_ref (comps[i]->cfg));
      json_object_set_object_member (c, "source", json_object_ref (comps[i]->info));
      json_object_set_object_member (components, role, c);
      src = g_strdup_printf ("%s (%s)", json_object_get_string_member (comps[i]->info, "url"),
                             json_object_get_string_member (comps[i]->info, "file"));
      json_object_set_string_member (sources, role, src);
      g_free (src);
      g_free (file);
    }
  if (a->name != NULL)
    base = g_strdup (a->name);
  else
    {
      base = g_path_get_basename (a->main);
      if (g_str_has_suffix (base, ".pkl"))
        base[strlen (base) - 4] = '\0';
    }
  if ((classes = classes_for (nets[0]->label_dim, error)) == NULL)
    {
      json_object_unref (components);
      json_object_unref (sources);
      goto out;
    }
  manifest = json_object_new ();
  json_object_set_string_member (manifest, "format", "gfcg-pack");
  json_object_set_int_member (manifest, "format_version", 1);
  json_object_set_string_member (manifest, "name", base);
  {
    char *title = a->title != NULL ? g_strdup (a->title) : g_strdup_printf ("EDM2 %s (converted)", base);
    json_object_set_string_member (manifest, "title", title);
    g_free (title);
  }
  json_object_set_string_member (manifest, "licence", LICENCE);
  note = g_string_new (LICENCE_NOTE);
  json_object_set_string_member (manifest, "source", a->source_url != NULL ? a->source_url
                                 : json_object_get_string_member (sources, "main"));
  json_object_set_object_member (manifest, "sources", sources);
  json_object_set_string_member (manifest, "converter", "converters/convert-edm2");
  json_object_set_string_member (manifest, "kind", kind);
  json_object_set_int_member (manifest, "resolution", resolution);
  json_object_set_int_member (manifest, "channels", nets[0]->img_channels);
  json_object_set_array_member (manifest, "classes", classes);
  json_object_set_object_member (manifest, "components", components);
  defaults = json_object_new ();
  json_object_set_string_member (defaults, "mode", a->mode != NULL ? a->mode :
                                 a->guide != NULL ? "atg" : a->uncond != NULL ? "cfg" : "none");
  {
    const char *keys[] = { "guidance", "guidance_cfg", "guidance_atg" };
    for (int i = 0; i < 3; i++)
      if (have_weight[i])
        json_object_set_double_member (defaults, keys[i], weights[i]);
  }
  json_object_set_object_member (manifest, "defaults", defaults);
  if (nets[0]->label_dim != 0 && nets[0]->label_dim != 1000)
    json_object_set_string_member (manifest, "classes_note", "label_dim is not 1000: pack class k "
                                   "is assumed to be ImageNet-1k index k");
  {
    gboolean latent = strcmp (kind, "latent") == 0;
    gboolean decoders = comps[0] != NULL || comps[1] != NULL;
    gboolean encoders = comps[2] != NULL || comps[3] != NULL;
    if (latent && (decoders || encoders))
      {
        json_object_set_member (manifest, "latent", json_from_string (CV_EDM2_LATENT, NULL));
        for (int w = 0; w < 2; w++)
          {
            static const char *comp_roles[] = { "decoder", "preview", "encoder", "preview-encoder" };
            gboolean first = TRUE;
            if (!(w == 0 ? decoders : encoders))
              continue;
            g_string_append (note, w == 0 ? " Decoders: " : " Encoders: ");
            for (int i = 2 * w; i < 2 * w + 2; i++)
              if (comps[i] != NULL)
                {
                  g_string_append_printf (note, "%s%s %s, %s", first ? "" : "; ", comp_roles[i],
                                          json_object_get_string_member (comps[i]->info, "name"),
                                          json_object_get_string_member (comps[i]->info, "licence"));
                  first = FALSE;
                }
            g_string_append_c (note, '.');
          }
      }
    if (latent && !decoders)
      json_object_set_string_member (manifest, "note", "latent pack (Stable Diffusion sd-vae-ft-mse "
                                     "latents): it needs a \"decoder\" component before it can "
                                     "draw pictures (--vae, --taesd)");
  }
  json_object_set_string_member (manifest, "licence_note", note->str);
  /* licence_note sits after licence, as in the Python converter's dict */
  {
    JsonObject *ordered = json_object_new ();
    GList      *members = json_object_get_members (manifest);
    for (GList *l = members; l != NULL; l = l->next)
      {
        const char *k = l->data;
        if (strcmp (k, "licence_note") == 0)
          continue;
        json_object_set_member (ordered, k, json_node_copy (json_object_get_member (manifest, k)));
        if (strcmp (k, "licence") == 0)
          json_object_set_string_member (ordered, "licence_note", note->str);
      }
    g_list_free (members);
    json_object_unref (manifest);
    manifest = ordered;
  }
  root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, manifest);
  path = g_build_filename (a->out, "pack.json", NULL);
  ok = cv_write_json (path, root, FALSE, error);
  json_node_unref (root);
  if (ok)
    {
      GString *names = g_string_new (NULL);
      for (int i = 0; i < 3; i++)
        if (nets[i] != NULL)
          g_string_append_printf (names, "%s%s", names->len ? ", " : "", roles[i]);
      {
        static const char *comp_roles[] = { "decoder", "preview", "encoder", "preview-encoder" };
        for (int i = 0; i < 4; i++)
          if (comps[i] != NULL)
            g_string_append_printf (names, ", %s", comp_roles[i]);
      }
      fprintf (cx->log, "wrote %s: %s %" G_GINT64_FORMAT "px, components %s, %s\n", a->out, kind,
               resolution, names->str, a->fp16 ? "F16" : "F32");
      g_string_free (names, TRUE);
    }
out:
  if (note != NULL)
    g_string_free (note, TRUE);
  g_free (path);
  g_free (base);
  for (int i = 0; i < 4; i++)
    cv_comp_free (comps[i]);
  for (int i = 0; i < 3; i++)
    net_free (nets[i]);
  return ok;
}

const char *
cv_edm2_usage (void)
{
  return "usage: gfcg convert edm2 --main MAIN.pkl [--guide G.pkl] [--uncond U.pkl] --out DIR [--fp16]\n"
         "                         [--name NAME] [--title TITLE] [--guidance W] [--guidance-cfg W]\n"
         "                         [--guidance-atg W] [--mode MODE] [--source-url URL]\n"
         "                         [--vae VAE.safetensors [--vae-config config.json] [--encoder]]\n"
         "                         [--taesd TAESD.safetensors] [--taesd-encoder TAESD_ENCODER.safetensors]\n\n"
         "Converts NVIDIA EDM2 snapshot pickles into a gfcg model pack without executing the code\n"
         "they embed (a restricted reader: parameters and buffers only), as converters/convert-edm2\n"
         "does; latent packs take their decoders and encoders from safetensors files.\n";
}

int
cv_edm2_main (CvContext *cx, int argc, char **argv, GError **error)
{
  Edm2Args a = { 0 };
  gboolean help, have[3] = { FALSE, FALSE, FALSE };
  double   w[3] = { 0, 0, 0 };
  CvOpt    opts[] = {
    { "--main", &a.main, NULL, TRUE }, { "--guide", &a.guide, NULL, FALSE },
    { "--uncond", &a.uncond, NULL, FALSE }, { "--out", &a.out, NULL, TRUE },
    { "--fp16", NULL, &a.fp16, FALSE }, { "--name", &a.name, NULL, FALSE },
    { "--title", &a.title, NULL, FALSE }, { "--guidance", &a.guidance, NULL, FALSE },
    { "--guidance-cfg", &a.guidance_cfg, NULL, FALSE }, { "--guidance-atg", &a.guidance_atg, NULL, FALSE },
    { "--mode", &a.mode, NULL, FALSE }, { "--source-url", &a.source_url, NULL, FALSE },
    { "--vae", &a.vae, NULL, FALSE }, { "--vae-config", &a.vae_config, NULL, FALSE },
    { "--taesd", &a.taesd, NULL, FALSE }, { "--encoder", NULL, &a.encoder, FALSE },
    { "--taesd-encoder", &a.taesd_encoder, NULL, FALSE }, { NULL, NULL, NULL, FALSE },
  };
  const char *wtext[3];
  const char *wname[3] = { "--guidance", "--guidance-cfg", "--guidance-atg" };

  if (!cv_parse_args (opts, argc, argv, &help, error))
    return 2;
  if (help)
    {
      fputs (cv_edm2_usage (), stdout);
      return 0;
    }
  wtext[0] = a.guidance, wtext[1] = a.guidance_cfg, wtext[2] = a.guidance_atg;
  for (int i = 0; i < 3; i++)
    if (wtext[i] != NULL)
      {
        if (!cv_parse_float (wname[i], wtext[i], &w[i], error))
          return 2;
        have[i] = TRUE;
      }
  return edm2_convert (cx, &a, w, have, error) ? 0 : cv_exit_status (*error);
}
