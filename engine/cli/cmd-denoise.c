/* cmd-denoise.c — `gfcg denoise`: one network on tensors from a file, the
 * hook for parity tests. */
#include "gfcg-cli.h"
#include "gfcg/gfcg-safetensors.h"

#include <string.h>

/* Reads tensor `name` as floats and checks its rank; shape into dims. */
static float *
read_tensor (GfcgSafetensors *st, const char *name, int ndim, gint64 *dims, GError **error)
{
  const GfcgStEntry *e = gfcg_st_lookup (st, name);
  if (e == NULL || e->ndim != ndim)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "%s: needs a tensor '%s' of rank %d", gfcg_st_path (st), name, ndim);
      return NULL;
    }
  memcpy (dims, e->shape, ndim * sizeof (gint64));
  return gfcg_st_read (st, name, ndim, e->shape, error);
}

/* --net decoder|preview: network-space latents x -> the pictures the
 * sampler would make ("image", [-1, 1]) and the decoder's own output
 * ("decoded"). */
static int
decode (GfcgPack *pack, const char *net, const float *x, const gint64 *xs, const char *out,
        GError **error)
{
  int f = gfcg_pack_decode (pack, net, 0, 0, 0, NULL, NULL, NULL, error), channels;
  float *rgb, *dec;
  gsize n;
  gboolean ok;

  if (f < 0 || !gfcg_pack_get_net_shape (pack, "main", &channels, NULL, NULL, error))
    return 1;
  if (xs[0] < 1 || xs[0] > 64 || xs[1] != channels || xs[2] < 1 || xs[2] > 1024 ||
      xs[3] < 1 || xs[3] > 1024)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "x must have shape [N <= 64, %d, H, W] with H, W <= 1024", channels);
      return 1;
    }
  n = (gsize) xs[0] * 3 * xs[2] * f * xs[3] * f;
  rgb = g_new (float, n);
  dec = g_new (float, n);
  ok = gfcg_pack_decode (pack, net, (int) xs[0], (int) xs[2], (int) xs[3], x, rgb, dec, error) > 0;
  if (ok)
    {
      GfcgStWrite t[2] = { { "image", 4, { xs[0], 3, xs[2] * f, xs[3] * f }, rgb },
                           { "decoded", 4, { xs[0], 3, xs[2] * f, xs[3] * f }, dec } };
      ok = gfcg_st_write (out, t, 2, error);
    }
  g_free (rgb);
  g_free (dec);
  return ok ? 0 : 1;
}

/* --net encoder|preview-encoder: pictures x [N, 3, H, W] in [-1, 1] -> the
 * network-space latents ("latent", [N, C, H / f, W / f]). */
static int
encode (GfcgPack *pack, const char *net, const float *x, const gint64 *xs, const char *out,
        GError **error)
{
  int f = gfcg_pack_encode (pack, net, 0, 0, 0, NULL, NULL, error), channels;
  float *lat;
  gboolean ok;

  if (f < 0 || !gfcg_pack_get_net_shape (pack, "main", &channels, NULL, NULL, error))
    return 1;
  if (xs[0] < 1 || xs[0] > 64 || xs[1] != 3 || xs[2] < f || xs[2] > 8192 || xs[2] % f != 0 ||
      xs[3] < f || xs[3] > 8192 || xs[3] % f != 0)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "x must have shape [N <= 64, 3, H, W] with H, W <= 8192 multiples of %d", f);
      return 1;
    }
  lat = g_new (float, (gsize) xs[0] * channels * (xs[2] / f) * (xs[3] / f));
  ok = gfcg_pack_encode (pack, net, (int) xs[0], (int) xs[2], (int) xs[3], x, lat, error) > 0;
  if (ok)
    {
      GfcgStWrite t = { "latent", 4, { xs[0], channels, xs[2] / f, xs[3] / f }, lat };
      ok = gfcg_st_write (out, &t, 1, error);
    }
  g_free (lat);
  return ok ? 0 : 1;
}

int
cli_denoise (int argc, char **argv)
{
  char *pack_dir = NULL, *net = NULL, *in = NULL, *out = NULL, *device = NULL;
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name", "PACK" },
    { "net", 0, 0, G_OPTION_ARG_STRING, &net, "main, guide, uncond, classifier, decoder, preview, encoder or preview-encoder", "NET" },
    { "in", 'i', 0, G_OPTION_ARG_FILENAME, &in, "Input safetensors: x [N,C,H,W], sigma [N], labels [N,L]", "FILE" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Output safetensors: D [N,C,H,W] (classifier: logits [N,K]; decoders: image, decoded [N,3,fH,fW]; encoders: latent [N,C,H/f,W/f])", "FILE" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "auto, cpu, cpu:bf16 or opencl:N[:fp16]", "DEV" },
    { NULL }
  };
  GfcgContext *ctx = NULL;
  GfcgPack *pack = NULL;
  GfcgSafetensors *st = NULL;
  GError *error = NULL;
  float *x = NULL, *sigma = NULL, *labels = NULL, *res = NULL;
  gint64 xs[4], ss[1], ls[2];
  int status = 1, channels, resolution, label_dim;

  if (!cli_parse ("denoise", "", "Evaluates one network of a pack on a batch read from a "
                  "safetensors file (see docs/pack-format.md).", entries, &argc, &argv))
    return 2;
  if (pack_dir == NULL || in == NULL || out == NULL)
    {
      g_printerr ("gfcg denoise: --pack, --in and --out are required\n");
      return 2;
    }
  if (net == NULL)
    net = g_strdup ("main");
  if ((pack = cli_load_pack ("denoise", pack_dir, device, &ctx)) == NULL)
    goto done;
  if ((st = gfcg_st_open (in, &error)) == NULL ||
      (x = read_tensor (st, "x", 4, xs, &error)) == NULL)
    goto fail;

  if (strcmp (net, "classifier") == 0)
    {
      int k = gfcg_pack_has_component (pack, "classifier") ? 1 : 0;
      float *logits;
      if (k == 0 || xs[1] != 3)
        {
          g_set_error (&error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT, k == 0
                       ? "pack has no classifier" : "the classifier takes 3 channels");
          goto fail;
        }
      logits = g_new (float, (gsize) xs[0] * gfcg_pack_classify (pack, 0, 0, 0, NULL, NULL, NULL));
      k = gfcg_pack_classify (pack, (int) xs[0], (int) xs[2], (int) xs[3], x, logits, &error);
      if (k > 0)
        {
          GfcgStWrite t = { "logits", 2, { xs[0], k }, logits };
          gfcg_st_write (out, &t, 1, &error);
        }
      g_free (logits);
      if (error != NULL)
        goto fail;
      status = 0;
      goto done;
    }

  if (strcmp (net, "decoder") == 0 || strcmp (net, "preview") == 0)
    {
      status = decode (pack, net, x, xs, out, &error);
      if (status != 0)
        goto fail;
      goto done;
    }

  if (strcmp (net, "encoder") == 0 || strcmp (net, "preview-encoder") == 0)
    {
      status = encode (pack, net, x, xs, out, &error);
      if (status != 0)
        goto fail;
      goto done;
    }

  if (!gfcg_pack_get_net_shape (pack, net, &channels, &resolution, &label_dim, &error))
    goto fail;
  if (xs[0] < 1 || xs[0] > 4096 || xs[1] != channels || xs[2] != resolution || xs[3] != resolution)
    {
      g_set_error (&error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "x has shape [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                   ", %" G_GINT64_FORMAT "]; network '%s' takes [N, %d, %d, %d]",
                   xs[0], xs[1], xs[2], xs[3], net, channels, resolution, resolution);
      goto fail;
    }
  if ((sigma = read_tensor (st, "sigma", 1, ss, &error)) == NULL)
    goto fail;
  if (ss[0] != xs[0])
    {
      g_set_error (&error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "sigma has %" G_GINT64_FORMAT " entries for %" G_GINT64_FORMAT " images",
                   ss[0], xs[0]);
      goto fail;
    }
  if (gfcg_st_lookup (st, "labels") != NULL && label_dim > 0)
    {
      if ((labels = read_tensor (st, "labels", 2, ls, &error)) == NULL)
        goto fail;
      if (ls[0] != xs[0] || ls[1] != label_dim)
        {
          g_set_error (&error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                       "labels must have shape [%" G_GINT64_FORMAT ", %d]", xs[0], label_dim);
          goto fail;
        }
    }
  res = g_new (float, (gsize) (xs[0] * xs[1] * xs[2] * xs[3]));
  if (!gfcg_pack_denoise (pack, net, (int) xs[0], x, sigma, labels, res, &error))
    goto fail;
  {
    GfcgStWrite t = { "D", 4, { xs[0], xs[1], xs[2], xs[3] }, res };
    if (!gfcg_st_write (out, &t, 1, &error))
      goto fail;
  }
  status = 0;
  goto done;

fail:
  cli_fail ("denoise", error);
done:
  gfcg_st_close (st);
  g_free (x);
  g_free (sigma);
  g_free (labels);
  g_free (res);
  gfcg_pack_free (pack);
  gfcg_context_free (ctx);
  g_free (pack_dir);
  g_free (net);
  g_free (in);
  g_free (out);
  g_free (device);
  return status;
}
