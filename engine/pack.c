/* pack.c — reading a model pack: pack.json (json-glib), its components and
 * class map.  Every value is checked; errors name the file and the field. */
#include "gfcg-private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void
gfcg_pack_free (GfcgPack *pack)
{
  if (pack == NULL)
    return;
  denoiser_free (pack->main);
  denoiser_free (pack->guide);
  denoiser_free (pack->uncond);
  classifier_free (pack->classifier);
  decoder_free (pack->decoder);
  decoder_free (pack->preview);
  encoder_free (pack->encoder);
  encoder_free (pack->preview_encoder);
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
  g_free (pack);
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
load_component (GfcgPack *pack, JsonObject *comps, PackRole role, GError **error)
{
  const char *name = pack_role_names[role];
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
  switch (role)
    {
    case ROLE_CLASSIFIER:
      ok = (pack->classifier = classifier_load (pack->ctx->be, arch, config, file, error)) != NULL;
      break;
    case ROLE_DECODER:
    case ROLE_PREVIEW:
      {
        Decoder **slot = role == ROLE_DECODER ? &pack->decoder : &pack->preview;
        ok = (*slot = decoder_load (pack->ctx->be, name, arch, config, file, error)) != NULL;
      }
      break;
    case ROLE_ENCODER:
    case ROLE_PREVIEW_ENCODER:
      {
        Encoder **slot = role == ROLE_ENCODER ? &pack->encoder : &pack->preview_encoder;
        ok = (*slot = encoder_load (pack->ctx->be, name, arch, config, file, error)) != NULL;
      }
      break;
    default:
      {
        Denoiser **slot = role == ROLE_MAIN ? &pack->main
                          : role == ROLE_GUIDE ? &pack->guide : &pack->uncond;
        ok = (*slot = denoiser_load (pack->ctx->be, name, arch, config, file, error)) != NULL;
      }
      break;
    }
  g_free (file);
  return ok;
}

/* Networks must agree with the pack and with each other. */
static gboolean
check_net (GfcgPack *pack, Denoiser *net, const char *name, gboolean conditional, GError **error)
{
  const DenoiserInfo *i, *m;
  if (net == NULL)
    return TRUE;
  i = denoiser_info (net);
  m = denoiser_info (pack->main);
  if (i->channels != pack->channels)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' has %d channels, the pack %d",
                 pack->dir, name, i->channels, pack->channels);
  else if (i->resolution != m->resolution)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' works at %d pixels, main at %d",
                 pack->dir, name, i->resolution, m->resolution);
  else if (conditional && i->label_dim != pack->n_classes)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s/pack.json: component '%s' has label_dim %d, the pack lists %d classes",
                 pack->dir, name, i->label_dim, pack->n_classes);
  else
    return TRUE;
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

/* A decoder's or encoder's latent channels and factor must fit the networks. */
static gboolean
check_coder (GfcgPack *pack, const char *where, const char *name, const char *verb,
             int channels, int f, GError **error)
{
  int r = denoiser_info (pack->main)->resolution;
  if (channels != pack->channels)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s: component '%s' %s %d latent channels, the pack has %d", where, name, verb,
                 channels, pack->channels);
  else if (r * f != pack->resolution)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                 "%s: component '%s' turns %d latent pixels into %d, the pack's resolution "
                 "is %d", where, name, r, r * f, pack->resolution);
  else
    return TRUE;
  return FALSE;
}

/* Decoders and encoders belong to latent packs and must fit the networks. */
static gboolean
check_decoders (GfcgPack *pack, JsonObject *root, const char *where, GError **error)
{
  Decoder *decs[2] = { pack->decoder, pack->preview };
  Encoder *encs[2] = { pack->encoder, pack->preview_encoder };
  const char *dnames[2] = { "decoder", "preview" };
  const char *enames[2] = { "encoder", "preview-encoder" };

  if (pack->preview != NULL && pack->decoder == NULL)
    return cfg_error (error, where, "components.preview", "needs a 'decoder' component too");
  if (pack->preview_encoder != NULL && pack->encoder == NULL)
    return cfg_error (error, where, "components.preview-encoder",
                      "needs an 'encoder' component too");
  if (pack->decoder == NULL && pack->encoder == NULL)
    return TRUE;
  if (pack->kind != PACK_LATENT)
    return cfg_error (error, where, pack->decoder != NULL ? "components.decoder"
                      : "components.encoder", "belongs to latent packs only");
  if (!load_latent_space (pack, root, where, error))
    return FALSE;
  for (int i = 0; i < 2; i++)
    if ((decs[i] != NULL &&
         !check_coder (pack, where, dnames[i], "decodes", decoder_latent_channels (decs[i]),
                       decoder_factor (decs[i]), error)) ||
        (encs[i] != NULL &&
         !check_coder (pack, where, enames[i], "encodes to", encoder_latent_channels (encs[i]),
                       encoder_factor (encs[i]), error)))
      return FALSE;
  return TRUE;
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
  const char *fmt, *kind;

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
  if (!cfg_dup_string (o, "name", NULL, &pack->name, path, error) ||
      !cfg_dup_string (o, "title", pack->name, &pack->title, path, error) ||
      !cfg_dup_string (o, "licence", "unknown", &pack->licence, path, error) ||
      !cfg_dup_string (o, "source", "unknown", &pack->source, path, error) ||
      !cfg_string (o, "kind", "pixel", FALSE, &kind, path, error))
    goto fail;
  pack->kind = g_strcmp0 (kind, "latent") == 0 ? PACK_LATENT : PACK_PIXEL;
  if (pack->name == NULL || (strcmp (kind, "pixel") != 0 && strcmp (kind, "latent") != 0))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: needs a \"name\" and a \"kind\" of \"pixel\" or \"latent\"", path);
      goto fail;
    }
  if (!cfg_int (o, "resolution", 0, TRUE, 1, 8192, &pack->resolution, path, error) ||
      !cfg_int (o, "channels", 0, TRUE, 1, 64, &pack->channels, path, error) ||
      !pack_load_classes (pack, o, path, error))
    goto fail;
  if (!json_object_has_member (o, "components") ||
      !JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "components")) ||
      !json_object_has_member (comps = json_object_get_object_member (o, "components"), "main"))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: needs components.main", path);
      goto fail;
    }
  for (int r = 0; r < N_ROLES; r++)
    if (!load_component (pack, comps, (PackRole) r, error))
      goto fail;

  if (!check_net (pack, pack->main, "main", TRUE, error) ||
      !check_net (pack, pack->guide, "guide", TRUE, error) ||
      !check_net (pack, pack->uncond, "uncond", FALSE, error))
    goto fail;
  if (pack->kind == PACK_PIXEL && denoiser_info (pack->main)->resolution != pack->resolution)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: a pixel pack of resolution %d has a main network of %d pixels",
                   path, pack->resolution, denoiser_info (pack->main)->resolution);
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
  if (!pack_load_defaults (pack, o, path, error))
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
const char *
gfcg_pack_get_kind (const GfcgPack *p)
{
  return p->kind == PACK_LATENT ? "latent" : "pixel";
}
int gfcg_pack_get_resolution (const GfcgPack *p) { return p->resolution; }
int gfcg_pack_get_n_classes (const GfcgPack *p) { return p->n_classes; }
