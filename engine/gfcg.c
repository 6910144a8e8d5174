/* gfcg.c — errors, versions, mode names, the context and where packs live. */
#include "gfcg-private.h"

#include <string.h>

G_DEFINE_QUARK (gfcg-error-quark, gfcg_error)

const char *
gfcg_version (void)
{
  return GFCG_VERSION;
}

static const char *const mode_names[GFCG_N_MODES] = {
  "none", "cfg", "atg", "gfcg", "gfcg+cfg", "gfcg+atg", "gfcg+atg-add",
};

const char *
gfcg_mode_to_string (GfcgMode mode)
{
  return mode >= 0 && mode < GFCG_N_MODES ? mode_names[mode] : "invalid";
}

gboolean
gfcg_mode_from_string (const char *name, GfcgMode *mode)
{
  char *canon;
  gboolean found = FALSE;

  if (name == NULL)
    return FALSE;
  /* "gfcg-cfg" and "gfcg+cfg" are the same mode; only the first '-' or '+'
   * after "gfcg" is a combination sign ("atg-add" keeps its dash). */
  canon = g_ascii_strdown (name, -1);
  if (g_str_has_prefix (canon, "gfcg-"))
    canon[4] = '+';
  for (int m = 0; m < GFCG_N_MODES; m++)
    if (strcmp (canon, mode_names[m]) == 0)
      {
        *mode = (GfcgMode) m;
        found = TRUE;
      }
  g_free (canon);
  return found;
}

GfcgContext *
gfcg_context_new (const char *device, GError **error)
{
  GfcgContext *ctx;

  if (device == NULL || *device == '\0')
    device = "auto";
  if (strcmp (device, "auto") != 0 && strcmp (device, "cpu") != 0 &&
      !g_str_has_prefix (device, "opencl:"))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "unknown device '%s' (auto, cpu or opencl:N)", device);
      return NULL;
    }
  if (g_str_has_prefix (device, "opencl:"))
    g_printerr ("gfcg: the OpenCL backend is not built yet; running on the CPU\n");
  ctx = g_new0 (GfcgContext, 1);
  ctx->device = g_strdup (device);
  ctx->be = gfcg_backend_cpu_new (0);
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
