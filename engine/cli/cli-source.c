/* cli-source.c — `gfcg sample --init/--mask/--init-raw`: the files a run
 * starts from, read and checked, into the options (docs/cli.md, "Starting
 * from a picture"). */
#include "gfcg-cli.h"
#include "gfcg/gfcg-safetensors.h"

/* --init-raw: x [1, C, R, R] and an optional mask [R, R], network space. */
static gboolean
load_raw (GfcgPack *pack, const char *path, CliSource *src, GError **error)
{
  GfcgSafetensors *st;
  int c, r;
  gboolean ok;

  if (!gfcg_pack_get_net_shape (pack, "main", &c, &r, NULL, error) ||
      (st = gfcg_st_open (path, error)) == NULL)
    return FALSE;
  if (gfcg_st_lookup (st, "x") == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "%s: needs a tensor 'x' [1, %d, %d, %d] (network space)", path, c, r, r);
      gfcg_st_close (st);
      return FALSE;
    }
  src->raw_init = gfcg_st_read (st, "x", 4, (const gint64[]) { 1, c, r, r }, error);
  ok = src->raw_init != NULL;
  if (ok && gfcg_st_lookup (st, "mask") != NULL)
    ok = (src->raw_mask = gfcg_st_read (st, "mask", 2, (const gint64[]) { r, r }, error)) != NULL;
  gfcg_st_close (st);
  return ok;
}

gboolean
cli_source_load (GfcgPack *pack, const char *init, const char *mask, const char *init_raw,
                 CliSource *src, GfcgSampleOptions *opt, GError **error)
{
  guchar *rgb = NULL;
  float *m = NULL;
  int w, h, mw, mh;

  if (init_raw != NULL)
    {
      if (!load_raw (pack, init_raw, src, error))
        return FALSE;
      opt->init = src->raw_init;
      opt->mask = src->raw_mask;
      return TRUE;
    }
  if (init == NULL)
    return TRUE;
  if ((rgb = gfcg_read_png (init, &w, &h, error)) == NULL)
    return FALSE;
  if (mask != NULL && (m = gfcg_read_png_mask (mask, &mw, &mh, error)) == NULL)
    {
      g_free (rgb);
      return FALSE;
    }
  if (m != NULL && (mw != w || mh != h))
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                 "%s: the mask is %dx%d pixels and the picture %s %dx%d: they must be the same "
                 "size", mask, mw, mh, init, w, h);
  else
    src->source = gfcg_source_new (pack, rgb, w, h, m, error);
  g_free (rgb);
  g_free (m);
  if (src->source == NULL)
    return FALSE;
  gfcg_source_apply (src->source, opt);
  return TRUE;
}

void
cli_source_clear (CliSource *src)
{
  g_clear_pointer (&src->source, gfcg_source_free);
  g_clear_pointer (&src->raw_init, g_free);
  g_clear_pointer (&src->raw_mask, g_free);
}
