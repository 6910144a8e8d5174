/* backend-select.c — from a device string to a backend, and the device list.
 *
 * The one place outside the OpenCL files that knows which backends this
 * build has: the context (gfcg.c) and `gfcg devices` only see
 * gfcg_backend_open () and gfcg_backend_list_devices (). */
#include "backend.h"
#include "gfcg/gfcg.h"
#ifdef GFCG_HAVE_OPENCL
#include "backend-opencl.h"
#endif

#include <string.h>

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

/* The OpenCL backend on device `index`, or NULL after one message. */
static GfcgBackend *
open_opencl (int index, gboolean fp16, gboolean tiled)
{
#ifdef GFCG_HAVE_OPENCL
  GError *err = NULL;
  GfcgClOptions o = { .fp16_weights = fp16, .own_gemm = tiled };
  GfcgBackend *be = gfcg_backend_opencl_new (index, &o, &err);
  if (be == NULL)
    {
      g_printerr ("gfcg: %s; running on the CPU backend\n", err->message);
      g_error_free (err);
    }
  return be;
#else
  (void) index, (void) fp16, (void) tiled;
  g_printerr ("gfcg: this gfcg was built without OpenCL; running on the CPU backend\n");
  return NULL;
#endif
}

/* The first OpenCL GPU, -1 when none.  PoCL's CPU device loses to OpenBLAS:
 * "auto" never picks it (GFCG_AUTO_NO_GPU keeps auto on the CPU). */
static int
auto_gpu (void)
{
#ifdef GFCG_HAVE_OPENCL
  if (g_getenv ("GFCG_AUTO_NO_GPU") == NULL)
    return gfcg_opencl_first_gpu ();
#endif
  return -1;
}

GfcgBackend *
gfcg_backend_open (const char *device, GError **error)
{
  gboolean is_auto, fp16 = FALSE, tiled = FALSE;
  int index = -1;
  GfcgBackend *be = NULL;

  if (device == NULL || *device == '\0')
    device = "auto";
  is_auto = strcmp (device, "auto") == 0;
  if (!is_auto && strcmp (device, "cpu") != 0 && strcmp (device, "cpu:bf16") != 0 &&
      !(g_str_has_prefix (device, "opencl:") && parse_opencl (device, &index, &fp16, &tiled)))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "unknown device '%s' (auto, cpu, cpu:bf16 or opencl:N[:fp16][:tiled])",
                   device);
      return NULL;
    }
  /* Not a fallback: bf16 changes the numbers (see cpu-bf16.c). */
  if (strcmp (device, "cpu:bf16") == 0)
    {
      be = gfcg_backend_cpu_new (0);
      if (!gfcg_backend_cpu_set_bf16 (be, error))
        {
          gfcg_backend_free (be);
          return NULL;
        }
      return be;
    }
  if (is_auto)
    index = auto_gpu ();
  if (index >= 0)
    be = open_opencl (index, fp16, tiled);
  return be != NULL ? be : gfcg_backend_cpu_new (0);
}

#ifdef GFCG_HAVE_OPENCL
/* The OpenCL devices, three lines each; returns the first GPU's index. */
static int
list_opencl (GString *s)
{
  GError *err = NULL;
  GArray *devs = gfcg_opencl_list_devices (&err);
  int gpu = -1;

  if (devs == NULL)
    {
      g_string_append_printf (s, "            OpenCL: %s\n", err->message);
      g_error_free (err);
      return -1;
    }
  for (guint i = 0; i < devs->len; i++)
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
  g_array_unref (devs);
  return gpu;
}
#endif

char *
gfcg_backend_list_devices (void)
{
  GString *s = g_string_new (NULL);
  int gpu;

  g_string_append_printf (s, "cpu         the CPU backend (%s, %u threads)\n",
                          strcmp (gfcg_cpu_conv_path (), "onednn") == 0
                          ? "oneDNN convolutions" : "OpenBLAS", g_get_num_processors ());
  if (gfcg_cpu_bf16_unsupported () == NULL)
    g_string_append (s, "cpu:bf16    the CPU backend with bf16 convolutions (fp32 accumulation; "
                        "~3e-3 relative error each)\n");
  else
    g_string_append_printf (s, "cpu:bf16    unavailable: %s\n", gfcg_cpu_bf16_unsupported ());
#ifdef GFCG_HAVE_OPENCL
  gpu = list_opencl (s);
#else
  gpu = -1;
  g_string_append (s, "            (this gfcg was built without OpenCL)\n");
#endif
  if (gpu >= 0)
    g_string_append_printf (s, "auto        opencl:%d (the first GPU)\n", gpu);
  else
    g_string_append (s, "auto        cpu (no OpenCL GPU; PoCL's CPU device is slower than OpenBLAS)\n");
  return g_string_free (s, FALSE);
}
