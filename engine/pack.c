/* pack.c — reading a model pack: pack.json (json-glib), its components and
 * class map.  Every value is checked; errors name the file and the field. */
#include "gfcg-private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static gboolean
cfg_error (GError **error, const char *where, const char *key, const char *what)
{
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: '%s' %s", where, key, what);
  return FALSE;
}

static gboolean
node_is_number (JsonNode *n)
{
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) &&
         (json_node_get_value_type (n) == G_TYPE_INT64 ||
          json_node_get_value_type (n) == G_TYPE_DOUBLE);
}

gboolean
cfg_int (JsonObject *o, const char *key, int def, gboolean required, int lo, int hi, int *out,
         const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  gint64 v;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return cfg_error (error, where, key, "must be an integer");
  v = json_node_get_int (n);
  if (v < lo || v > hi)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: '%s' is %" G_GINT64_FORMAT
                   ", outside [%d, %d]", where, key, v, lo, hi);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

gboolean
cfg_double (JsonObject *o, const char *key, double def, gboolean required, double *out,
            const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  /* json-glib reads 1e999 as infinity: no option or config takes that. */
  if (!node_is_number (n) || !isfinite (json_node_get_double (n)))
    return cfg_error (error, where, key, "must be a finite number");
  *out = json_node_get_double (n);
  return TRUE;
}

gboolean
cfg_string (JsonObject *o, const char *key, const char *def, gboolean required,
            const char **out, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return cfg_error (error, where, key, "must be a string");
  *out = json_node_get_string (n);
  return TRUE;
}

gboolean
cfg_bool (JsonObject *o, const char *key, gboolean def, gboolean *out, const char *where,
          GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return cfg_error (error, where, key, "must be true or false");
  *out = json_node_get_boolean (n);
  return TRUE;
}

gconstpointer
arch_lookup (const char *arch, gconstpointer const *table, guint n, const char *where,
             GError **error)
{
  GString *names;

  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (arch, *(const char *const *) table[i]) == 0)
      return table[i];
  names = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (names, "%s%s", i ? ", " : "", *(const char *const *) table[i]);
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: architecture '%s' is not supported (%s)",
               where, arch, names->str);
  g_string_free (names, TRUE);
  return NULL;
}

gboolean
cfg_int_list (JsonObject *o, const char *key, gboolean required, int lo, int hi, int **out,
              int *n_out, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  JsonArray *a;
  guint len;

  *out = NULL;
  *n_out = 0;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return required ? cfg_error (error, where, key, "is missing") : TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return cfg_error (error, where, key, "must be a list of integers");
  a = json_node_get_array (n);
  len = json_array_get_length (a);
  if (len > 64)
    return cfg_error (error, where, key, "is too long");
  *out = g_new0 (int, MAX (len, 1));
  for (guint i = 0; i < len; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      gint64 v;
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64 ||
          (v = json_node_get_int (e)) < lo || v > hi)
        {
          g_clear_pointer (out, g_free);
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s: '%s' must hold integers in [%d, %d]", where, key, lo, hi);
          return FALSE;
        }
      (*out)[i] = (int) v;
    }
  *n_out = (int) len;
  return TRUE;
}

/* A string member copied to *out (def when absent); other types are errors. */
static gboolean
dup_string (JsonObject *o, const char *key, const char *def, char **out, const char *where,
            GError **error)
{
  const char *v;
  if (!cfg_string (o, key, def, FALSE, &v, where, error))
    return FALSE;
  *out = g_strdup (v);
  return TRUE;
}

void
gfcg_pack_free (GfcgPack *pack)
{
  if (pack == NULL)
    return;
  edm2_free (pack->main);
  edm2_free (pack->guide);
  edm2_free (pack->uncond);
  classifier_free (pack->classifier);
  decoder_free (pack->decoder);
  decoder_free (pack->preview);
  for (int i = 0; i < pack->n_classes; i++)
    {
      g_free (pack->classes[i].wnid);
      g_free (pack->classes[i].name);
    }
  g_free (pack->classes);
  g_free (pack->dir);
  g_free (pack->name);
  g_free (pack->title);
  g_free (pack->licence);
  g_free (pack->source);
  g_free (pack->kind);
  g_free (pack);
}

/* Class i against those before it: a class is found by its ImageNet index,
 * name or wnid (case-insensitive), so each must be there and name one class. */
static gboolean
check_class (GfcgPack *pack, int i, const char *where, GError **error)
{
  const PackClass *c = &pack->classes[i];

  if (*g_strstrip (c->name) == '\0')
    return cfg_error (error, where, "name", "must be a non-empty string");
  for (int j = 0; j < i; j++)
    {
      const PackClass *o = &pack->classes[j];
      const char *what = o->imagenet == c->imagenet ? "imagenet"
                         : g_ascii_strcasecmp (o->name, c->name) == 0 ? "name"
                         : *c->wnid != '\0' && g_ascii_strcasecmp (o->wnid, c->wnid) == 0 ? "wnid"
                         : NULL;
      if (what != NULL)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s: '%s' is the same as that of classes[%d] ('%s')", where, what, j,
                       o->name);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
load_classes (GfcgPack *pack, JsonObject *root, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (root, "classes");
  JsonArray *a;

  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n) ||
      json_array_get_length (a = json_node_get_array (n)) == 0)
    return cfg_error (error, where, "classes", "must be a non-empty list");
  pack->n_classes = (int) MIN (json_array_get_length (a), 100000);
  pack->classes = g_new0 (PackClass, pack->n_classes);
  for (int i = 0; i < pack->n_classes; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      JsonObject *o;
      char *w = g_strdup_printf ("%s: classes[%d]", where, i);
      gboolean ok = JSON_NODE_HOLDS_OBJECT (e) &&
                    cfg_int (o = json_node_get_object (e), "imagenet", 0, TRUE, 0, 999,
                             &pack->classes[i].imagenet, w, error) &&
                    dup_string (o, "wnid", "", &pack->classes[i].wnid, w, error) &&
                    dup_string (o, "name", "", &pack->classes[i].name, w, error) &&
                    check_class (pack, i, w, error);
      if (!JSON_NODE_HOLDS_OBJECT (e))
        cfg_error (error, where, "classes", "must hold objects");
      g_free (w);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

/* Resolves a component file inside the pack; refuses paths that leave it. */
static char *
component_file (GfcgPack *pack, JsonObject *comp, const char *name, GError **error)
{
  const char *file;
  char *where = g_strdup_printf ("%s/pack.json: component '%s'", pack->dir, name);
  gboolean ok = cfg_string (comp, "file", NULL, FALSE, &file, where, error);
  g_free (where);
  if (!ok)
    return NULL;
  if (file == NULL || *file == '\0' || g_path_is_absolute (file) || strstr (file, "..") != NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s/pack.json: component '%s' needs a 'file' inside the pack", pack->dir, name);
      return NULL;
    }
  return g_build_filename (pack->dir, file, NULL);
}

static gboolean
load_component (GfcgPack *pack, JsonObject *comps, const char *name, GError **error)
{
  JsonNode *n = json_object_get_member (comps, name);
  JsonObject *comp, *config;
  const char *arch;
  char *file;
  gboolean ok = FALSE;

  if (n == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (n))
    return cfg_error (error, "pack.json", name, "must be an object");
  comp = json_node_get_object (n);
  {
    char *where = g_strdup_printf ("%s/pack.json: component '%s'", pack->dir, name);
    gboolean typed = cfg_string (comp, "arch", "", FALSE, &arch, where, error);
    g_free (where);
    if (!typed)
      return FALSE;
  }
  if (!json_object_has_member (comp, "config") ||
      !JSON_NODE_HOLDS_OBJECT (json_object_get_member (comp, "config")))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s/pack.json: component '%s' has no 'config' object", pack->dir, name);
      return FALSE;
    }
  config = json_object_get_object_member (comp, "config");
  if ((file = component_file (pack, comp, name, error)) == NULL)
    return FALSE;
  if (strcmp (name, "classifier") == 0)
    {
      ok = (pack->classifier = classifier_load (pack->ctx->be, arch, config, file, error)) != NULL;
    }
  else if (strcmp (name, "decoder") == 0 || strcmp (name, "preview") == 0)
    {
      Decoder **slot = strcmp (name, "decoder") == 0 ? &pack->decoder : &pack->preview;
      ok = (*slot = decoder_load (pack->ctx->be, name, arch, config, file, error)) != NULL;
    }
  else if (strcmp (arch, "edm2-unet") != 0)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' architecture '%s' is not supported (edm2-unet)",
                 pack->dir, name, arch);
  else
    {
      Edm2Net *net = edm2_load (pack->ctx->be, config, file, name, error);
      if (net != NULL)
        {
          Edm2Net **slot = strcmp (name, "main") == 0 ? &pack->main
                           : strcmp (name, "guide") == 0 ? &pack->guide : &pack->uncond;
          *slot = net;
          ok = TRUE;
        }
    }
  g_free (file);
  return ok;
}

/* Networks must agree with the pack and with each other. */
static gboolean
check_net (GfcgPack *pack, Edm2Net *net, const char *name, gboolean conditional, GError **error)
{
  if (net == NULL)
    return TRUE;
  if (edm2_channels (net) != pack->channels)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' has %d channels, the pack %d",
                 pack->dir, name, edm2_channels (net), pack->channels);
  else if (edm2_resolution (net) != edm2_resolution (pack->main))
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' works at %d pixels, main at %d",
                 pack->dir, name, edm2_resolution (net), edm2_resolution (pack->main));
  else if (conditional && edm2_label_dim (net) != pack->n_classes)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' has label_dim %d, the pack lists %d classes",
                 pack->dir, name, edm2_label_dim (net), pack->n_classes);
  else
    return TRUE;
  return FALSE;
}

/* A list of n numbers under key (absent: def, unless def is NULL). */
static gboolean
cfg_float_list (JsonObject *o, const char *key, int n, const float *def, float *out,
                const char *where, GError **error)
{
  JsonNode *node = json_object_get_member (o, key);
  JsonArray *a;
  if (node == NULL && def != NULL)
    {
      memcpy (out, def, n * sizeof (float));
      return TRUE;
    }
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node) ||
      json_array_get_length (a = json_node_get_array (node)) != (guint) n)
    goto bad;
  for (int i = 0; i < n; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      if (!node_is_number (e))
        goto bad;
      out[i] = (float) json_node_get_double (e);
    }
  return TRUE;
bad:
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'latent.%s' must be a list of %d numbers",
               where, key, n);
  return FALSE;
}

/* pack.json "latent": EDM2's standardisation of SD latents by default. */
static gboolean
load_latent_space (GfcgPack *pack, JsonObject *root, const char *where, GError **error)
{
  static const float edm2_mean[4] = { 5.81f, 3.25f, 0.12f, -2.15f };
  static const float edm2_std[4] = { 4.17f, 4.62f, 3.71f, 3.28f };
  static const float unit[2] = { 0.0f, 1.0f };
  JsonNode *n = json_object_get_member (root, "latent");
  JsonObject *o;
  float mean[GFCG_MAX_LATENT_CHANNELS], std[GFCG_MAX_LATENT_CHANNELS], range[2];
  double final_mean, final_std;
  int c = pack->channels;
  gboolean edm2 = c == 4;

  if (n != NULL && !JSON_NODE_HOLDS_OBJECT (n))
    return cfg_error (error, where, "latent", "must be an object");
  if (n == NULL && !edm2)
    return cfg_error (error, where, "latent", "is needed to decode latents that are not SD's 4 channels");
  o = n != NULL ? json_node_get_object (n) : json_object_new ();
  if (c > GFCG_MAX_LATENT_CHANNELS)
    cfg_error (error, where, "channels", "is too many for a decoder");
  else if (cfg_float_list (o, "raw_mean", c, edm2 ? edm2_mean : NULL, mean, where, error) &&
           cfg_float_list (o, "raw_std", c, edm2 ? edm2_std : NULL, std, where, error) &&
           cfg_float_list (o, "decoded_range", 2, unit, range, where, error) &&
           cfg_double (o, "final_mean", 0.0, FALSE, &final_mean, where, error) &&
           cfg_double (o, "final_std", 0.5, FALSE, &final_std, where, error))
    {
      gboolean ok = final_std > 0.0 && range[1] != range[0];
      for (int i = 0; i < c; i++)
        {
          ok &= std[i] > 0.0f;
          pack->latent.scale[i] = (float) (std[i] / final_std);
          pack->latent.shift[i] = (float) (mean[i] - final_mean * std[i] / final_std);
        }
      pack->latent.black = range[0];
      pack->latent.white = range[1];
      if (n == NULL)
        json_object_unref (o);
      if (ok)
        return TRUE;
      return cfg_error (error, where, "latent",
                        "needs raw_std and final_std > 0 and a decoded_range of two different values");
    }
  if (n == NULL)
    json_object_unref (o);
  return FALSE;
}

/* Decoders belong to latent packs and must fit the networks. */
static gboolean
check_decoders (GfcgPack *pack, JsonObject *root, const char *where, GError **error)
{
  Decoder *decs[2] = { pack->decoder, pack->preview };
  const char *names[2] = { "decoder", "preview" };

  if (pack->preview != NULL && pack->decoder == NULL)
    return cfg_error (error, where, "components.preview", "needs a 'decoder' component too");
  if (pack->decoder == NULL)
    return TRUE;
  if (strcmp (pack->kind, "latent") != 0)
    return cfg_error (error, where, "components.decoder", "belongs to latent packs only");
  if (!load_latent_space (pack, root, where, error))
    return FALSE;
  for (int i = 0; i < 2; i++)
    {
      int f = decs[i] != NULL ? decoder_factor (decs[i]) : 0;
      if (decs[i] == NULL)
        continue;
      if (decoder_latent_channels (decs[i]) != pack->channels)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                     "%s: component '%s' decodes %d latent channels, the pack has %d", where,
                     names[i], decoder_latent_channels (decs[i]), pack->channels);
      else if (edm2_resolution (pack->main) * f != pack->resolution)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                     "%s: component '%s' turns %d latent pixels into %d, the pack's resolution "
                     "is %d", where, names[i], edm2_resolution (pack->main),
                     edm2_resolution (pack->main) * f, pack->resolution);
      else
        continue;
      return FALSE;
    }
  return TRUE;
}

/* pack.json "defaults" over the built-in options.  Option values must be
 * valid, with the same ranges as the command's and the plug-in's: checked
 * now, not mid-run (whether the mode suits the components is checked when
 * sampling).  Errors name the key; the caller adds the file. */
static gboolean
read_defaults (GfcgPack *pack, JsonObject *o, const char *w, GError **error)
{
  GfcgSampleOptions *d = &pack->defaults;
  const char *mode;

  if (!cfg_int (o, "steps", d->steps, FALSE, G_MININT, G_MAXINT, &d->steps, w, error) ||
      !cfg_double (o, "sigma_min", d->sigma_min, FALSE, &d->sigma_min, w, error) ||
      !cfg_double (o, "sigma_max", d->sigma_max, FALSE, &d->sigma_max, w, error) ||
      !cfg_double (o, "rho", d->rho, FALSE, &d->rho, w, error) ||
      !cfg_double (o, "guidance", d->guidance, FALSE, &d->guidance, w, error) ||
      !cfg_double (o, "guidance_cfg", NAN, FALSE, &pack->guidance_cfg, w, error) ||
      !cfg_double (o, "guidance_atg", NAN, FALSE, &pack->guidance_atg, w, error) ||
      !cfg_double (o, "s_max", d->s_max, FALSE, &d->s_max, w, error) ||
      !cfg_double (o, "temperature", d->temperature, FALSE, &d->temperature, w, error) ||
      !cfg_double (o, "sigma_lo", d->sigma_lo, FALSE, &d->sigma_lo, w, error) ||
      !cfg_double (o, "sigma_hi", d->sigma_hi, FALSE, &d->sigma_hi, w, error) ||
      !cfg_bool (o, "lagged", d->lagged, &d->lagged, w, error) ||
      !cfg_string (o, "mode", NULL, FALSE, &mode, w, error))
    return FALSE;
  if (mode != NULL && !gfcg_mode_from_string (mode, &d->mode))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'mode' is '%s': unknown guidance "
                   "mode (none, cfg, atg, gfcg, gfcg+cfg, gfcg+atg, gfcg+atg-add)", w, mode);
      return FALSE;
    }
  return TRUE;
}

/* pack.json "defaults" over the built-in options.  Their values must be
 * valid, within the same ranges as the command's and the plug-in's options:
 * checked now, not mid-run (whether the mode suits the components is checked
 * when sampling). */
static gboolean
load_defaults (GfcgPack *pack, JsonObject *root, const char *path, GError **error)
{
  JsonNode *n = json_object_get_member (root, "defaults");
  char *w = g_strdup_printf ("%s: defaults", path);
  GError *err = NULL;
  gboolean ok;

  gfcg_sample_options_init (&pack->defaults, NULL);
  if (pack->classifier == NULL)
    pack->defaults.mode = GFCG_MODE_NONE;
  pack->guidance_cfg = pack->guidance_atg = NAN;
  if (n != NULL && !JSON_NODE_HOLDS_OBJECT (n))
    ok = cfg_error (error, path, "defaults", "must be an object");
  else
    ok = n == NULL || read_defaults (pack, json_node_get_object (n), w, error);
  if (ok &&
      !(gfcg_sample_options_validate (&pack->defaults, NULL, &err) &&
        (isnan (pack->guidance_cfg) ||
         sample_option_check ("guidance_cfg", "guidance", pack->guidance_cfg, &err)) &&
        (isnan (pack->guidance_atg) ||
         sample_option_check ("guidance_atg", "guidance", pack->guidance_atg, &err))))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: %s", w, err->message);
      g_error_free (err);
      ok = FALSE;
    }
  g_free (w);
  return ok;
}

GfcgPack *
gfcg_pack_load (GfcgContext *ctx, const char *dir, GError **error)
{
  GfcgPack *pack = g_new0 (GfcgPack, 1);
  JsonParser *parser = json_parser_new ();
  char *path = g_build_filename (dir, "pack.json", NULL);
  JsonNode *root;
  JsonObject *o, *comps;
  GError *err = NULL;
  const char *fmt;
  static const char *const order[] = { "main", "guide", "uncond", "classifier", "decoder",
                                       "preview" };

  pack->ctx = ctx;
  pack->dir = g_strdup (dir);
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: no such model pack directory", dir);
      goto fail;
    }
  if (!json_parser_load_from_file (parser, path, &err))
    {
      g_set_error (error, GFCG_ERROR, err->domain == G_FILE_ERROR ? GFCG_ERROR_IO : GFCG_ERROR_MODEL,
                   "%s: %s", path, err->message);
      g_error_free (err);
      goto fail;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: not a JSON object", path);
      goto fail;
    }
  o = json_node_get_object (root);
  if (!cfg_string (o, "format", "", FALSE, &fmt, path, error))
    goto fail;
  if (g_strcmp0 (fmt, "gfcg-pack") != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: \"format\" must be \"gfcg-pack\"", path);
      goto fail;
    }
  if (!dup_string (o, "name", NULL, &pack->name, path, error) ||
      !dup_string (o, "title", pack->name, &pack->title, path, error) ||
      !dup_string (o, "licence", "unknown", &pack->licence, path, error) ||
      !dup_string (o, "source", "unknown", &pack->source, path, error) ||
      !dup_string (o, "kind", "pixel", &pack->kind, path, error))
    goto fail;
  if (pack->name == NULL || (strcmp (pack->kind, "pixel") != 0 && strcmp (pack->kind, "latent") != 0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: needs a \"name\" and a \"kind\" of \"pixel\" or \"latent\"", path);
      goto fail;
    }
  if (!cfg_int (o, "resolution", 0, TRUE, 1, 8192, &pack->resolution, path, error) ||
      !cfg_int (o, "channels", 0, TRUE, 1, 64, &pack->channels, path, error) ||
      !load_classes (pack, o, path, error))
    goto fail;
  if (!json_object_has_member (o, "components") ||
      !JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "components")) ||
      !json_object_has_member (comps = json_object_get_object_member (o, "components"), "main"))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: needs components.main", path);
      goto fail;
    }
  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    if (!load_component (pack, comps, order[i], error))
      goto fail;

  if (!check_net (pack, pack->main, "main", TRUE, error) ||
      !check_net (pack, pack->guide, "guide", TRUE, error) ||
      !check_net (pack, pack->uncond, "uncond", FALSE, error))
    goto fail;
  if (strcmp (pack->kind, "pixel") == 0 && edm2_resolution (pack->main) != pack->resolution)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: a pixel pack of resolution %d has a main network of %d pixels",
                   path, pack->resolution, edm2_resolution (pack->main));
      goto fail;
    }
  if (!check_decoders (pack, o, path, error))
    goto fail;
  if (pack->classifier != NULL && !classifier_imagenet_space (pack->classifier) &&
      classifier_n_outputs (pack->classifier) != pack->n_classes)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: the classifier has %d outputs for %d pack classes", path,
                   classifier_n_outputs (pack->classifier), pack->n_classes);
      goto fail;
    }
  if (!load_defaults (pack, o, path, error))
    goto fail;
  g_object_unref (parser);
  g_free (path);
  return pack;

fail:
  g_object_unref (parser);
  g_free (path);
  gfcg_pack_free (pack);
  return NULL;
}

const char *gfcg_pack_get_name (const GfcgPack *p) { return p->name; }
const char *gfcg_pack_get_title (const GfcgPack *p) { return p->title; }
const char *gfcg_pack_get_licence (const GfcgPack *p) { return p->licence; }
const char *gfcg_pack_get_source (const GfcgPack *p) { return p->source; }
const char *gfcg_pack_get_kind (const GfcgPack *p) { return p->kind; }
int gfcg_pack_get_resolution (const GfcgPack *p) { return p->resolution; }
int gfcg_pack_get_n_classes (const GfcgPack *p) { return p->n_classes; }

gboolean
gfcg_pack_get_class (const GfcgPack *pack, int k, int *imagenet, const char **wnid,
                     const char **name)
{
  if (k < 0 || k >= pack->n_classes)
    return FALSE;
  if (imagenet)
    *imagenet = pack->classes[k].imagenet;
  if (wnid)
    *wnid = pack->classes[k].wnid;
  if (name)
    *name = pack->classes[k].name;
  return TRUE;
}

int
gfcg_pack_class_from_imagenet (const GfcgPack *pack, int imagenet)
{
  for (int k = 0; k < pack->n_classes; k++)
    if (pack->classes[k].imagenet == imagenet)
      return k;
  return -1;
}

static gboolean
parse_index (const char *s, int *out)
{
  char *end;
  gint64 v;
  if (s == NULL || !g_ascii_isdigit (*s))
    return FALSE;
  errno = 0;
  v = g_ascii_strtoll (s, &end, 10);
  if (errno != 0 || *end != '\0' || v > G_MAXINT)
    return FALSE;
  *out = (int) v;
  return TRUE;
}

int
gfcg_pack_find_class (const GfcgPack *pack, const char *spec, GError **error)
{
  int k = -1, inet;

  if (spec == NULL)
    spec = "";
  if (parse_index (spec, &k))
    {
      if (k < pack->n_classes)
        return k;
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "class %d is out of range: pack '%s' has classes 0..%d",
                   k, pack->name, pack->n_classes - 1);
      return -1;
    }
  if (g_str_has_prefix (spec, "inet:") && parse_index (spec + 5, &inet))
    {
      if ((k = gfcg_pack_class_from_imagenet (pack, inet)) >= 0)
        return k;
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "ImageNet class %d is not one that pack '%s' can draw", inet, pack->name);
      return -1;
    }
  for (k = 0; k < pack->n_classes; k++)
    if (g_ascii_strcasecmp (spec, pack->classes[k].wnid) == 0 ||
        g_ascii_strcasecmp (spec, pack->classes[k].name) == 0)
      return k;
  if ((inet = gfcg_imagenet_find (spec)) >= 0)
    {
      if ((k = gfcg_pack_class_from_imagenet (pack, inet)) >= 0)
        return k;
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "ImageNet class '%s' (inet:%d, %s) is not one that pack '%s' can draw"
                   " (`gfcg info` lists its classes)", spec, inet, gfcg_imagenet_name (inet),
                   pack->name);
      return -1;
    }
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
               "unknown class '%s' for pack '%s' (give an index 0..%d, inet:N, a wnid or a name;"
               " `gfcg info` lists them)", spec, pack->name, pack->n_classes - 1);
  return -1;
}

gboolean
gfcg_pack_has_component (const GfcgPack *pack, const char *c)
{
  if (g_strcmp0 (c, "main") == 0)
    return pack->main != NULL;
  if (g_strcmp0 (c, "guide") == 0)
    return pack->guide != NULL;
  if (g_strcmp0 (c, "uncond") == 0)
    return pack->uncond != NULL;
  if (g_strcmp0 (c, "classifier") == 0)
    return pack->classifier != NULL;
  if (g_strcmp0 (c, "decoder") == 0)
    return pack->decoder != NULL;
  if (g_strcmp0 (c, "preview") == 0)
    return pack->preview != NULL;
  return FALSE;
}

static void
describe_net (GString *s, const char *name, Edm2Net *net)
{
  if (net == NULL)
    return;
  g_string_append_printf (s, "  %-10s edm2-unet, %.2fM parameters, %dx%dx%d, label_dim %d",
                          name, edm2_n_params (net) / 1e6, edm2_channels (net),
                          edm2_resolution (net), edm2_resolution (net), edm2_label_dim (net));
  if (edm2_n_unused (net) > 0)
    g_string_append_printf (s, " (%u unused tensors ignored)", edm2_n_unused (net));
  g_string_append_c (s, '\n');
}

static void
describe_decoder (GString *s, const char *name, const Decoder *d, const GfcgPack *pack)
{
  int lr;
  if (d == NULL)
    return;
  lr = edm2_resolution (pack->main);
  g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %dx%dx%d latent -> %dx%d RGB",
                          name, decoder_arch (d), decoder_n_params (d) / 1e6,
                          decoder_latent_channels (d), lr, lr, lr * decoder_factor (d),
                          lr * decoder_factor (d));
  if (decoder_n_unused (d) > 0)
    g_string_append_printf (s, " (%u unused tensors ignored)", decoder_n_unused (d));
  g_string_append_c (s, '\n');
}

char *
gfcg_pack_describe (const GfcgPack *pack)
{
  GString *s = g_string_new (NULL);
  GfcgSampleOptions o;

  g_string_append_printf (s, "pack:       %s (%s)\ndirectory:  %s\nlicence:    %s\nsource:     %s\n"
                          "kind:       %s, %dx%d pixels, %d channels\ncomponents:\n",
                          pack->name, pack->title, pack->dir, pack->licence, pack->source,
                          pack->kind, pack->resolution, pack->resolution, pack->channels);
  describe_net (s, "main", pack->main);
  describe_net (s, "guide", pack->guide);
  describe_net (s, "uncond", pack->uncond);
  if (pack->classifier != NULL)
    g_string_append_printf (s, "  %-10s %s, %.2fM parameters, %d px input, %d outputs (%s)\n",
                            "classifier", classifier_arch (pack->classifier),
                            classifier_n_params (pack->classifier) / 1e6,
                            classifier_resolution (pack->classifier),
                            classifier_n_outputs (pack->classifier),
                            classifier_imagenet_space (pack->classifier) ? "ImageNet" : "pack classes");
  describe_decoder (s, "decoder", pack->decoder, pack);
  describe_decoder (s, "preview", pack->preview, pack);
  if (strcmp (pack->kind, "latent") == 0 && pack->decoder == NULL)
    g_string_append_printf (s, "  %-10s none: `gfcg denoise` works, sampling needs one\n",
                            "decoder");
  gfcg_sample_options_init (&o, pack);
  g_string_append_printf (s, "defaults:   mode %s, %d steps, guidance %g, s_max %g, T %g, window"
                          " [%g, %g]%s\nclasses (%d):\n",
                          gfcg_mode_to_string (o.mode), o.steps, o.guidance, o.s_max,
                          o.temperature, o.sigma_lo, o.sigma_hi, o.lagged ? ", lagged" : "",
                          pack->n_classes);
  for (int k = 0; k < pack->n_classes; k++)
    g_string_append_printf (s, "  %3d  inet:%-4d %-10s %s\n", k, pack->classes[k].imagenet,
                            pack->classes[k].wnid, pack->classes[k].name);
  return g_string_free (s, FALSE);
}

Edm2Net *
pack_net (GfcgPack *pack, const char *net, GError **error)
{
  Edm2Net *n = g_strcmp0 (net, "main") == 0    ? pack->main
               : g_strcmp0 (net, "guide") == 0  ? pack->guide
               : g_strcmp0 (net, "uncond") == 0 ? pack->uncond : NULL;
  if (n == NULL)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                 "pack '%s' has no network '%s'", pack->name, net ? net : "(null)");
  return n;
}

gboolean
gfcg_pack_get_net_shape (const GfcgPack *pack, const char *net, int *channels, int *resolution,
                         int *label_dim, GError **error)
{
  Edm2Net *n = pack_net ((GfcgPack *) pack, net, error);
  if (n == NULL)
    return FALSE;
  if (channels)
    *channels = edm2_channels (n);
  if (resolution)
    *resolution = edm2_resolution (n);
  if (label_dim)
    *label_dim = edm2_label_dim (n);
  return TRUE;
}

gboolean
gfcg_pack_denoise (GfcgPack *pack, const char *net, int n, const float *x, const float *sigma,
                   const float *labels, float *out, GError **error)
{
  Edm2Net *e = pack_net (pack, net, error);
  double *s;
  gboolean ok;
  if (e == NULL)
    return FALSE;
  s = g_new (double, n);
  for (int i = 0; i < n; i++)
    {
      if (!(sigma[i] > 0.0f) || !isfinite (sigma[i]))
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                       "sigma[%d] = %g: noise levels must be finite and > 0", i, sigma[i]);
          g_free (s);
          return FALSE;
        }
      s[i] = sigma[i];
    }
  ok = edm2_denoise (e, n, x, s, labels, out, error);
  g_free (s);
  return ok;
}

static gboolean
need_classifier (GfcgPack *pack, GError **error)
{
  if (pack->classifier != NULL)
    return TRUE;
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, "pack '%s' has no classifier",
               pack->name);
  return FALSE;
}

int
gfcg_pack_classify (GfcgPack *pack, int n, int height, int width, const float *x,
                    float *logits, GError **error)
{
  if (pack->classifier != NULL && logits == NULL)
    return classifier_n_outputs (pack->classifier);
  if (!need_classifier (pack, error) ||
      !classifier_logits (pack->classifier, n, 3, height, width, x, logits, error))
    return -1;
  return classifier_n_outputs (pack->classifier);
}

float *
pack_picture (GfcgPack *pack, gboolean preview, int n, const float *x, int *size, GError **error)
{
  Decoder *d = preview && pack->preview != NULL ? pack->preview : pack->decoder;
  int r = edm2_resolution (pack->main);
  float *rgb;

  if (strcmp (pack->kind, "latent") != 0)
    {
      *size = r;
      return (float *) x;
    }
  if (d == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' is a latent pack without a decoder", pack->name);
      return NULL;
    }
  *size = r * decoder_factor (d);
  rgb = g_try_new (float, (gsize) n * 3 * *size * *size);
  if (rgb == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "no memory for decoded pictures");
      return NULL;
    }
  if (!decoder_decode (d, &pack->latent, n, r, r, x, rgb, NULL, error))
    g_clear_pointer (&rgb, g_free);
  return rgb;
}

void
pack_picture_free (const float *x, float *picture)
{
  if (picture != x)
    g_free (picture);
}

int
gfcg_pack_decode (GfcgPack *pack, const char *decoder, int n, int height, int width,
                  const float *x, float *rgb, float *decoded, GError **error)
{
  Decoder *d = g_strcmp0 (decoder, "decoder") == 0   ? pack->decoder
               : g_strcmp0 (decoder, "preview") == 0 ? pack->preview : NULL;
  if (d == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' has no decoder component '%s'", pack->name,
                   decoder != NULL ? decoder : "(null)");
      return -1;
    }
  if (rgb == NULL)
    return decoder_factor (d);
  if (n < 1 || height < 1 || width < 1)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "nothing to decode (%d latents of %dx%d)", n, height, width);
      return -1;
    }
  if (!decoder_decode (d, &pack->latent, n, height, width, x, rgb, decoded, error))
    return -1;
  return decoder_factor (d);
}
