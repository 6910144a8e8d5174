/* gfcg.c — errors, versions, the context and where packs live. */
#include "gfcg-private.h"

#include <string.h>

G_DEFINE_QUARK (gfcg-error-quark, gfcg_error)

const char *
gfcg_version (void)
{
  return GFCG_VERSION;
}

GfcgContext *
gfcg_context_new (const char *device, GError **error)
{
  GfcgBackend *be = gfcg_backend_open (device, error);
  GfcgContext *ctx;

  if (be == NULL)
    return NULL;
  ctx = g_new0 (GfcgContext, 1);
  ctx->device = g_strdup (device != NULL && *device != '\0' ? device : "auto");
  ctx->be = be;
  return ctx;
}

void
gfcg_context_free (GfcgContext *ctx)
{
  if (ctx == NULL)
    return;
  gfcg_backend_free (ctx->be);
  g_free (ctx->device);
  g_free (ctx);
}

const char *
gfcg_context_get_backend (GfcgContext *ctx)
{
  return ctx->be->ops->name;
}

char *
gfcg_context_describe (GfcgContext *ctx)
{
  return gfcg_backend_describe (ctx->be);
}

void
gfcg_context_get_memory (GfcgContext *ctx, gsize *peak_tensors, gsize *peak_device)
{
  if (peak_tensors != NULL)
    *peak_tensors = ctx->be->bytes_peak;
  if (peak_device != NULL)
    gfcg_backend_memory (ctx->be, NULL, peak_device);
}

guint64
gfcg_context_sync (GfcgContext *ctx, guint64 *gemm_flops)
{
  return gfcg_backend_sync (ctx->be, gemm_flops);
}

char *
gfcg_devices_describe (void)
{
  return gfcg_backend_list_devices ();
}

void
gfcg_context_set_threads (GfcgContext *ctx, int n_threads)
{
  (void) ctx;
  gfcg_backend_cpu_set_threads (n_threads);
}

char *
gfcg_default_pack_dir (void)
{
  const char *env = g_getenv ("GFCG_DEFAULT_PACK");
  char *p;

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  /* An uninstalled build finds the pack in its source tree. */
  p = g_build_filename (GFCG_SOURCE_DIR, "data", "models", GFCG_DEFAULT_PACK_NAME, NULL);
  if (g_file_test (p, G_FILE_TEST_IS_DIR) && !g_file_test (GFCG_PACKS_DIR, G_FILE_TEST_IS_DIR))
    return p;
  g_free (p);
  return g_build_filename (GFCG_PACKS_DIR, GFCG_DEFAULT_PACK_NAME, NULL);
}
