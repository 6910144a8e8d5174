/* request.c — a client's call in its own words: a class and a mode by name,
 * COUNT pictures with consecutive seeds.  The CLI and the plug-in both go
 * through here, so that a name means the same class, and a mode the same
 * weight, wherever it is typed. */
#include "gfcg-private.h"

#include <string.h>

static gboolean
invalid (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, msg);
  g_free (msg);
  return FALSE;
}

void
gfcg_request_init (GfcgRequest *r, GfcgPack *pack)
{
  memset (r, 0, sizeof *r);
  r->pack = pack;
  gfcg_sample_options_init (&r->options, pack);
  r->options.guidance = gfcg_pack_get_guidance (pack, r->options.mode);
  r->count = 1;
  gfcg_pack_get_class (pack, r->options.class_index, &r->imagenet, NULL, NULL);
}

gboolean
gfcg_request_set_class (GfcgRequest *r, const char *spec, GfcgClassSpecFlags flags,
                        GError **error)
{
  int k = pack_find_class (r->pack, spec, !(flags & GFCG_CLASS_SPEC_NAMES_ONLY), error);

  if (k < 0)
    return FALSE;
  r->options.class_index = k;
  gfcg_pack_get_class (r->pack, k, &r->imagenet, NULL, NULL);
  return TRUE;
}

gboolean
gfcg_request_set_imagenet (GfcgRequest *r, int imagenet, GError **error)
{
  int k;

  if (imagenet < 0 || imagenet > 999)
    return invalid (error, "%d is not an ImageNet-1k class index (0..999)", imagenet);
  if ((k = gfcg_pack_class_from_imagenet (r->pack, imagenet)) < 0)
    {
      char *list = pack_class_list (r->pack);
      invalid (error, "ImageNet class %d (%s) is not one that pack '%s' can draw; %s", imagenet,
               gfcg_imagenet_name (imagenet), r->pack->name, list);
      g_free (list);
      return FALSE;
    }
  r->options.class_index = k;
  r->imagenet = imagenet;
  return TRUE;
}

gboolean
gfcg_request_set_mode (GfcgRequest *r, const char *name, GError **error)
{
  GfcgMode mode = r->options.mode;

  if (name != NULL && *name != '\0' && !gfcg_mode_from_string (name, &mode))
    {
      char *names = gfcg_mode_list (", ");
      invalid (error, "unknown mode '%s' (%s; '-' works for '+')", name, names);
      g_free (names);
      return FALSE;
    }
  if (!gfcg_pack_supports_mode (r->pack, mode, error))
    return FALSE;
  r->options.mode = mode;
  /* CFG and ATG weights differ: the weight follows the mode. */
  r->options.guidance = gfcg_pack_get_guidance (r->pack, mode);
  return TRUE;
}

gboolean
gfcg_request_set_count (GfcgRequest *r, int count, GError **error)
{
  if (count < 1 || count > GFCG_MAX_REQUEST_COUNT)
    return invalid (error, "%d pictures: give 1..%d", count, GFCG_MAX_REQUEST_COUNT);
  r->count = count;
  return TRUE;
}

guint64
gfcg_request_get_seed (const GfcgRequest *r, int picture)
{
  return r->options.seed + (guint64) picture;
}

typedef struct
{
  GfcgProgressFunc func;
  gpointer         data;
  int              picture, count;
} Relay;

static gboolean
relay (const GfcgProgress *p, gpointer data)
{
  Relay       *rl = data;
  GfcgProgress q = *p;

  q.picture = rl->picture;
  q.n_pictures = rl->count;
  return rl->func (&q, rl->data);
}

gboolean
gfcg_request_run (GfcgRequest *r, GfcgProgressFunc progress, GfcgPictureFunc picture,
                  gpointer user_data, GError **error)
{
  GfcgSampleOptions opt = r->options;
  Relay rl = { progress, user_data, 0, r->count };

  if (!gfcg_request_set_count (r, r->count, error) ||
      !gfcg_sample_options_validate (&r->options, r->pack, error))
    return FALSE;
  for (int j = 0; j < r->count; j++)
    {
      GfcgImage *img;

      opt.seed = gfcg_request_get_seed (r, j);
      rl.picture = j;
      img = gfcg_sample (r->pack, &opt, progress != NULL ? relay : NULL, &rl, error);
      if (img == NULL)
        return FALSE;
      if (picture == NULL)
        gfcg_image_free (img);
      else if (!picture (r, j, img, user_data, error))
        return FALSE;
    }
  return TRUE;
}
