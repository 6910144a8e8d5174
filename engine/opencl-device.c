/* opencl-device.c — OpenCL errors as text, the device list, and building the
 * kernels (engine/kernels/gfcg.cl, embedded with GResource) once per device,
 * kept as a program binary in the user's cache directory. */
#include "opencl-private.h"
#include "gfcg-kernels.h"

#include <glib/gstdio.h>
#include <string.h>

static const char *const kernel_names[K_COUNT] = {
  "mp_silu", "relu", "axpby", "axpby_batch", "clip", "cat", "cat_ones", "resample_up",
  "resample_down", "scale_channels", "add_bias", "half_to_float", "float_to_half",
  "pixel_norm", "avgpool_global", "fourier", "image_prep", "im2col", "attn_norm",
  "softmax_rows", "gemm_tiled", "conv_depthwise", "gn_partial", "gn_stats", "gn_apply",
  "unary", "channel_affine", "maxpool",
};

/* ---- errors ---------------------------------------------------------------- */

static const char *
cl_strerror (cl_int err)
{
  switch (err)
    {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST:
      return "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform installed)";
    case -9999: return "allocation refused on purpose (GFCG_OPENCL_FAIL_ALLOC)";
    case -9998: return "kernel failure forced (GFCG_OPENCL_FAIL_KERNEL)";
    default: break;
    }
  return NULL;
}

char *
ocl_err_text (cl_int err)
{
  const char *s = cl_strerror (err);
  return s != NULL ? g_strdup (s) : g_strdup_printf ("OpenCL error %d", err);
}


/* ---- device enumeration ----------------------------------------------------- */

static char *
dev_string (cl_device_id d, cl_device_info what)
{
  size_t n = 0;
  char *s;
  if (clGetDeviceInfo (d, what, 0, NULL, &n) != CL_SUCCESS || n == 0)
    return g_strdup ("?");
  s = g_malloc0 (n + 1);
  clGetDeviceInfo (d, what, n, s, NULL);
  return g_strstrip (s);
}

static char *
plat_string (cl_platform_id p, cl_platform_info what)
{
  size_t n = 0;
  char *s;
  if (clGetPlatformInfo (p, what, 0, NULL, &n) != CL_SUCCESS || n == 0)
    return g_strdup ("?");
  s = g_malloc0 (n + 1);
  clGetPlatformInfo (p, what, n, s, NULL);
  return g_strstrip (s);
}

/* Calls fn for every device over every platform; stops when it returns TRUE. */
gboolean
ocl_for_each_device (gboolean (*fn) (int index, cl_platform_id p, cl_device_id d, gpointer data),
                 gpointer data, GError **error)
{
  cl_uint np = 0;
  cl_platform_id *plats;
  cl_int err = clGetPlatformIDs (0, NULL, &np);
  int index = 0;

  if (err != CL_SUCCESS || np == 0)
    {
      char *e = err != CL_SUCCESS ? ocl_err_text (err) : g_strdup ("none installed");
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "no OpenCL platform (%s)", e);
      g_free (e);
      return FALSE;
    }
  plats = g_new0 (cl_platform_id, np);
  clGetPlatformIDs (np, plats, NULL);
  for (cl_uint i = 0; i < np; i++)
    {
      cl_uint nd = 0;
      cl_device_id *devs;
      if (clGetDeviceIDs (plats[i], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || nd == 0)
        continue;
      devs = g_new0 (cl_device_id, nd);
      clGetDeviceIDs (plats[i], CL_DEVICE_TYPE_ALL, nd, devs, NULL);
      for (cl_uint j = 0; j < nd; j++)
        if (fn (index++, plats[i], devs[j], data))
          {
            g_free (devs);
            g_free (plats);
            return TRUE;
          }
      g_free (devs);
    }
  g_free (plats);
  return TRUE;
}

void
ocl_fill_info (GfcgClDeviceInfo *info, int index, cl_platform_id p, cl_device_id d)
{
  cl_device_type type = 0;
  cl_ulong gm = 0, ma = 0, lm = 0;
  cl_uint cu = 0, mhz = 0;
  char *ext = dev_string (d, CL_DEVICE_EXTENSIONS);

  clGetDeviceInfo (d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  clGetDeviceInfo (d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
  clGetDeviceInfo (d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
  clGetDeviceInfo (d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
  clGetDeviceInfo (d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
  clGetDeviceInfo (d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof mhz, &mhz, NULL);
  info->index = index;
  info->platform = plat_string (p, CL_PLATFORM_NAME);
  info->name = dev_string (d, CL_DEVICE_NAME);
  info->version = dev_string (d, CL_DEVICE_VERSION);
  info->driver = dev_string (d, CL_DRIVER_VERSION);
  info->gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  info->global_mem = gm;
  info->max_alloc = ma;
  info->local_mem = lm;
  info->compute_units = cu;
  info->clock_mhz = mhz;
  info->fp16 = strstr (ext, "cl_khr_fp16") != NULL;
  info->fp64 = strstr (ext, "cl_khr_fp64") != NULL;
  g_free (ext);
}

void
gfcg_opencl_device_info_clear (GfcgClDeviceInfo *info)
{
  g_free (info->platform);
  g_free (info->name);
  g_free (info->version);
  g_free (info->driver);
  memset (info, 0, sizeof *info);
}

static gboolean
list_one (int index, cl_platform_id p, cl_device_id d, gpointer data)
{
  GfcgClDeviceInfo info = { 0 };
  ocl_fill_info (&info, index, p, d);
  g_array_append_val ((GArray *) data, info);
  return FALSE;
}

GArray *
gfcg_opencl_list_devices (GError **error)
{
  GArray *a = g_array_new (FALSE, TRUE, sizeof (GfcgClDeviceInfo));
  g_array_set_clear_func (a, (GDestroyNotify) gfcg_opencl_device_info_clear);
  if (!ocl_for_each_device (list_one, a, error))
    {
      g_array_unref (a);
      return NULL;
    }
  return a;
}

int
gfcg_opencl_first_gpu (void)
{
  GArray *a = gfcg_opencl_list_devices (NULL);
  int found = -1;
  for (guint i = 0; a != NULL && i < a->len && found < 0; i++)
    if (g_array_index (a, GfcgClDeviceInfo, i).gpu)
      found = (int) i;
  if (a != NULL)
    g_array_unref (a);
  return found;
}



gboolean
ocl_find_one (int index, cl_platform_id p, cl_device_id d, gpointer data)
{
  FindDev *f = data;
  if (index != f->want)
    return FALSE;
  f->p = p;
  f->d = d;
  return TRUE;
}

/* ---- program build and the binary cache -------------------------------------- */

static char *
build_log (cl_program prog, cl_device_id d)
{
  size_t n = 0;
  char *s;
  clGetProgramBuildInfo (prog, d, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
  char *first, *nl;
  s = g_malloc0 (n + 1);
  clGetProgramBuildInfo (prog, d, CL_PROGRAM_BUILD_LOG, n, s, NULL);
  /* One line for the message: the first error, else the first line. */
  first = strstr (s, "error");
  first = g_strdup (g_strstrip (first != NULL ? first : s));
  if ((nl = strchr (first, '\n')) != NULL)
    *nl = '\0';
  if (strlen (first) > 300)
    strcpy (first + 290, " [...]");
  g_free (s);
  return first;
}

static char *
cache_path (ClPriv *p, const char *source, const char *options)
{
  GChecksum *cs = g_checksum_new (G_CHECKSUM_SHA256);
  const char *parts[] = { p->info.platform, p->info.name, p->info.version, p->info.driver,
                          options, source };
  char *file, *path;
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      g_checksum_update (cs, (const guchar *) parts[i], strlen (parts[i]));
      g_checksum_update (cs, (const guchar *) "\n", 1);
    }
  file = g_strconcat (g_checksum_get_string (cs), ".bin", NULL);
  path = g_getenv ("GFCG_KERNEL_CACHE_DIR") != NULL
           ? g_build_filename (g_getenv ("GFCG_KERNEL_CACHE_DIR"), file, NULL)
           : g_build_filename (g_get_user_cache_dir (), "gfcg", "kernels", file, NULL);
  g_free (file);
  g_checksum_free (cs);
  return path;
}

static cl_program
program_from_cache (ClPriv *p, const char *path, const char *options)
{
  gchar *bin = NULL;
  gsize len = 0;
  cl_int err, status;
  cl_program prog;
  const unsigned char *bins[1];

  if (!g_file_get_contents (path, &bin, &len, NULL) || len == 0)
    {
      g_free (bin);
      return NULL;
    }
  bins[0] = (const unsigned char *) bin;
  prog = clCreateProgramWithBinary (p->ctx, 1, &p->device, &len, bins, &status, &err);
  g_free (bin);
  if (prog != NULL && (err != CL_SUCCESS || status != CL_SUCCESS ||
                       clBuildProgram (prog, 1, &p->device, options, NULL, NULL) != CL_SUCCESS))
    {
      clReleaseProgram (prog);
      prog = NULL;
    }
  if (prog == NULL) /* stale or foreign: rebuilt from source below */
    g_unlink (path);
  return prog;
}

static void
program_to_cache (ClPriv *p, cl_program prog, const char *path)
{
  size_t len = 0;
  unsigned char *bin;
  char *dir;
  if (clGetProgramInfo (prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
      len == 0)
    return;
  bin = g_malloc (len);
  if (clGetProgramInfo (prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) == CL_SUCCESS)
    {
      dir = g_path_get_dirname (path);
      if (g_mkdir_with_parents (dir, 0700) == 0)
        g_file_set_contents (path, (const char *) bin, len, NULL); /* atomic; best effort */
      g_free (dir);
    }
  g_free (bin);
}

gboolean
ocl_build_program (ClPriv *p, GError **error)
{
  /* Looked up in the generated resource itself: a static library would
   * drop an object referenced only by its constructor. */
  GBytes *res = g_resource_lookup_data (gfcg_kernels_get_resource (),
                                        "/org/gfcg/engine/kernels/gfcg.cl",
                                        G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  const char *options = "-cl-std=CL1.2";
  char *source, *path = NULL;
  const char *env = g_getenv ("GFCG_KERNEL_CACHE");
  gboolean use_cache = env == NULL || strcmp (env, "0") != 0;
  cl_int err;
  gsize len;

  if (res == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "the kernel sources are not embedded");
      return FALSE;
    }
  source = g_strndup (g_bytes_get_data (res, &len), g_bytes_get_size (res));
  g_bytes_unref (res);
  if (g_strcmp0 (g_getenv ("GFCG_OPENCL_BREAK_KERNELS"), "1") == 0)
    {
      /* For the fallback tests: a kernel source that does not compile. */
      char *broken = g_strconcat (source, "\n__kernel void broken (void) { this is not C; }\n", NULL);
      g_free (source);
      source = broken;
    }
  if (use_cache)
    {
      path = cache_path (p, source, options);
      p->prog = program_from_cache (p, path, options);
      p->from_cache = p->prog != NULL;
    }
  if (p->prog == NULL)
    {
      const char *src = source;
      p->prog = clCreateProgramWithSource (p->ctx, 1, &src, NULL, &err);
      if (p->prog == NULL || err != CL_SUCCESS)
        goto fail;
      err = clBuildProgram (p->prog, 1, &p->device, options, NULL, NULL);
      if (err != CL_SUCCESS)
        {
          char *log = build_log (p->prog, p->device);
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE,
                       "the OpenCL kernels do not build on %s: %s", p->info.name, log);
          g_free (log);
          g_free (source);
          g_free (path);
          return FALSE;
        }
      if (use_cache)
        program_to_cache (p, p->prog, path);
    }
  g_free (source);
  g_free (path);
  for (int i = 0; i < K_COUNT; i++)
    {
      p->k[i] = clCreateKernel (p->prog, kernel_names[i], &err);
      if (err != CL_SUCCESS)
        goto fail2;
    }
  return TRUE;

fail:
  g_free (source);
  g_free (path);
fail2:
  {
    char *e = ocl_err_text (err);
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "OpenCL program setup failed on %s: %s",
                 p->info.name, e);
    g_free (e);
  }
  return FALSE;
}
