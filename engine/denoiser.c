/* denoiser.c — what the pack's denoising networks (main, guide, uncond)
 * share: dispatch to the architecture (edm2.c today), the weights file, and
 * the shape the pack checks the networks against.
 *
 * A new denoiser architecture is one file with a DenoiserArch and a row in
 * archs[] below. */
#include "gfcg-private.h"

static const DenoiserArch *const archs[] = {
  &denoiser_arch_edm2_unet,
};

struct _Denoiser
{
  const DenoiserArch *arch;
  gpointer            net;
  DenoiserInfo        info;
  guint               n_unused;
};

void
denoiser_free (Denoiser *d)
{
  if (d == NULL)
    return;
  if (d->net != NULL)
    d->arch->free (d->net);
  g_free (d);
}

Denoiser *
denoiser_load (GfcgBackend *be, const char *component, const char *arch, JsonObject *config,
               const char *file, GError **error)
{
  Denoiser *d = g_new0 (Denoiser, 1);
  char *where = g_strdup_printf ("component '%s'", component);
  GfcgSafetensors *st = NULL;

  if ((d->arch = arch_lookup (arch, (gconstpointer const *) archs, G_N_ELEMENTS (archs), where,
                              error)) == NULL ||
      (st = gfcg_st_open (file, error)) == NULL ||
      (d->net = d->arch->load (be, config, st, where, &d->info, error)) == NULL)
    {
      gfcg_st_close (st);
      denoiser_free (d);
      g_free (where);
      return NULL;
    }
  d->n_unused = gfcg_st_n_unused (st);
  gfcg_st_close (st);
  g_free (where);
  return d;
}

const DenoiserInfo *
denoiser_info (const Denoiser *d)
{
  return &d->info;
}

const char *
denoiser_arch (const Denoiser *d)
{
  return d->arch->name;
}

guint
denoiser_n_unused (const Denoiser *d)
{
  return d->n_unused;
}

gboolean
denoiser_denoise (Denoiser *d, int n, const float *x, const double *sigma, const float *labels,
                  float *out, GError **error)
{
  return d->arch->denoise (d->net, n, x, sigma, labels, out, error);
}
