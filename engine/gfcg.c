/* gfcg.c — errors, versions, mode names, the context and where packs live. */
#include "gfcg-private.h"
#ifdef GFCG_HAVE_OPENCL
#include "backend-opencl.h"
#endif

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

/* "opencl:N[:fp16][:tiled]" -> N and options; FALSE when malformed. */
static gboolean
parse_opencl (const char *device, int *index, gboolean *fp16, gboolean *tiled)
{
  char **parts = g_strsplit (device + strlen ("opencl:"), ":", -1);
  char *end = NULL;
  gboolean ok = parts[0] != NULL && g_ascii_isdigit (parts[0][0]);
  gint64 n = ok ? g_ascii_strtoll (parts[0], &end, 10) : -1;

  ok = ok && *end == '\0' && n >= 0 && n < 1000;
  *index = (int) n;
  *fp16 = *tiled = FALSE;
  for (int i = 1; ok && parts[i] != NULL; i++)
    {
      if (strcmp (parts[i], "fp16") == 0)
        *fp16 = TRUE;
      else if (strcmp (parts[i], "tiled") == 0)
        *tiled = TRUE;
      else
        ok = FALSE;
    }
  g_strfreev (parts);
  return ok;
}

GfcgContext *
gfcg_context_new (const char *device, GError **error)
{
  GfcgContext *ctx;
  gboolean is_auto, fp16 = FALSE, tiled = FALSE;
  int index = -1;

  if (device == NULL || *device == '\0')
    device = "auto";
  is_auto = strcmp (device, "auto") == 0;
  if (!is_auto && strcmp (device, "cpu") != 0 &&
      !(g_str_has_prefix (device, "opencl:") && parse_opencl (device, &index, &fp16, &tiled)))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "unknown device '%s' (auto, cpu or opencl:N[:fp16][:tiled])", device);
      return NULL;
    }
  ctx = g_new0 (GfcgContext, 1);
  ctx->device = g_strdup (device);
#ifdef GFCG_HAVE_OPENCL
  if (is_auto && g_getenv ("GFCG_AUTO_NO_GPU") == NULL)
    index = gfcg_opencl_first_gpu (); /* PoCL's CPU device loses to OpenBLAS: not chosen */
  if (index >= 0)
    {
      GError *err = NULL;
      GfcgClOptions o = { .fp16_weights = fp16, .own_gemm = tiled };
      ctx->be = gfcg_backend_opencl_new (index, &o, &err);
      if (ctx->be == NULL)
        {
          g_printerr ("gfcg: %s; running on the CPU backend\n", err->message);
          g_error_free (err);
        }
    }
#else
  if (index >= 0)
    g_printerr ("gfcg: this gfcg was built without OpenCL; running on the CPU backend\n");
#endif
  if (ctx->be == NULL)
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

char *
gfcg_context_describe (GfcgContext *ctx)
{
#ifdef GFCG_HAVE_OPENCL
  if (gfcg_backend_opencl_active (ctx->be))
    return gfcg_backend_opencl_describe (ctx->be);
#endif
  int n = gfcg_backend_cpu_get_threads ();
  return g_strdup_printf ("%s (OpenBLAS, %d thread%s)", ctx->be->ops->name, n, n == 1 ? "" : "s");
}

void
gfcg_context_get_memory (GfcgContext *ctx, gsize *peak_tensors, gsize *peak_device)
{
  if (peak_tensors != NULL)
    *peak_tensors = ctx->be->bytes_peak;
  if (peak_device != NULL)
    {
      *peak_device = 0;
#ifdef GFCG_HAVE_OPENCL
      gfcg_backend_opencl_memory (ctx->be, NULL, peak_device);
#endif
    }
}

guint64
gfcg_context_sync (GfcgContext *ctx, guint64 *gemm_flops)
{
  if (gemm_flops != NULL)
    *gemm_flops = 0;
#ifdef GFCG_HAVE_OPENCL
  gfcg_backend_opencl_finish (ctx->be);
  return gfcg_backend_opencl_take_gemm_ns (ctx->be, gemm_flops);
#else
  return 0;
#endif
}

char *
gfcg_devices_describe (void)
{
  GString *s = g_string_new (NULL);
  int gpu = -1;
  g_string_append_printf (s, "cpu         the CPU backend (OpenBLAS, %u threads)\n",
                          g_get_num_processors ());
#ifdef GFCG_HAVE_OPENCL
  {
    GError *err = NULL;
    GArray *devs = gfcg_opencl_list_devices (&err);
    if (devs == NULL)
      {
        g_string_append_printf (s, "            OpenCL: %s\n", err->message);
        g_error_free (err);
      }
    for (guint i = 0; devs != NULL && i < devs->len; i++)
      {
        GfcgClDeviceInfo *d = &g_array_index (devs, GfcgClDeviceInfo, i);
        if (d->gpu && gpu < 0)
          gpu = d->index;
        g_string_append_printf (s, "opencl:%-4d %s %s, %s\n", d->index, d->gpu ? "GPU" : "CPU",
                                d->name, d->platform);
        g_string_append_printf (s, "            %s, driver %s\n", d->version, d->driver);
        g_string_append_printf (s, "            %u compute units at %u MHz, %.1f GiB global "
                                "memory (%.1f GiB per buffer), %" G_GUINT64_FORMAT " KiB local\n",
                                d->compute_units, d->clock_mhz, d->global_mem / 1073741824.0,
                                d->max_alloc / 1073741824.0, d->local_mem >> 10);
        g_string_append_printf (s, "            fp16 arithmetic (cl_khr_fp16): %s; fp64: %s; "
                                "fp16 weight storage: yes (vload_half)\n",
                                d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no");
      }
    if (devs != NULL)
      g_array_unref (devs);
  }
#else
  g_string_append (s, "            (this gfcg was built without OpenCL)\n");
#endif
  if (gpu >= 0)
    g_string_append_printf (s, "auto        opencl:%d (the first GPU)\n", gpu);
  else
    g_string_append (s, "auto        cpu (no OpenCL GPU; PoCL's CPU device is slower than OpenBLAS)\n");
  return g_string_free (s, FALSE);
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
