/* backend-opencl.c — the op interface on an OpenCL device (1.2 or later).
 *
 * - Kernels: engine/kernels/gfcg.cl, embedded with GResource, built once per
 *   device and kept as a program binary in the user's cache directory
 *   ($XDG_CACHE_HOME/gfcg/kernels/SHA256.bin, keyed by platform, device,
 *   device and driver versions, build options and source; another folder
 *   with $GFCG_KERNEL_CACHE_DIR, none with GFCG_KERNEL_CACHE=0).  A cached
 *   binary that does not load is deleted and rebuilt from source.
 * - Matrix products (convolutions as im2col + GEMM, linear layers, both
 *   products of attention): CLBlast where it was built in, else (or with
 *   own_gemm) the tiled kernel of gfcg.cl.  Grouped convolutions are one
 *   batched GEMM over the groups; depthwise ones a direct kernel.  A large
 *   im2col (the SD VAE decoder at 512x512 unfolds to over a GiB) is done a
 *   slice of images or output pixels at a time.
 * - Memory: released tensors go to a pool keyed by size, so from the second
 *   network evaluation on no buffer is created; im2col and attention use
 *   grow-only scratch buffers.  The in-order queue makes reuse safe.
 * - Failures: any OpenCL error (allocation refused, a kernel that cannot
 *   run) moves every live tensor to host memory, switches the backend to the
 *   CPU backend's ops and repeats the failed op there: the run goes on, on
 *   the CPU, after one message.  When the device's data cannot be read back
 *   the backend turns into a dead one that fails every op with a clear
 *   error (never a picture from lost weights).
 */
#include "backend-opencl.h"
#include "gfcg/gfcg.h"
#include "gfcg-kernels.h"

#define CL_TARGET_OPENCL_VERSION 120
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif
#ifdef GFCG_HAVE_CLBLAST
#include <clblast_c.h>
#endif

#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum
{
  K_MP_SILU, K_RELU, K_AXPBY, K_AXPBY_BATCH, K_CLIP, K_CAT, K_CAT_ONES, K_RESAMPLE_UP,
  K_RESAMPLE_DOWN, K_SCALE_CHANNELS, K_ADD_BIAS, K_HALF_TO_FLOAT, K_FLOAT_TO_HALF,
  K_PIXEL_NORM, K_AVGPOOL_GLOBAL, K_FOURIER, K_IMAGE_PREP, K_IM2COL, K_ATTN_NORM,
  K_SOFTMAX_ROWS, K_GEMM_TILED, K_CONV_DEPTHWISE, K_GN_PARTIAL, K_GN_STATS, K_GN_APPLY,
  K_UNARY, K_CHANNEL_AFFINE, K_MAXPOOL, K_COUNT
};

static const char *const kernel_names[K_COUNT] = {
  "mp_silu", "relu", "axpby", "axpby_batch", "clip", "cat", "cat_ones", "resample_up",
  "resample_down", "scale_channels", "add_bias", "half_to_float", "float_to_half",
  "pixel_norm", "avgpool_global", "fourier", "image_prep", "im2col", "attn_norm",
  "softmax_rows", "gemm_tiled", "conv_depthwise", "gn_partial", "gn_stats", "gn_apply",
  "unary", "channel_affine", "maxpool",
};

enum { SCR_COLS, SCR_QKV, SCR_ATT, SCR_W, SCR_GN_PART, SCR_GN_STATS, SCR_COUNT };

typedef struct
{
  cl_mem buf;  /* fp32 storage; NULL while only the fp16 copy exists */
  cl_mem half; /* fp16 copy of a weight */
} ClTensor;

typedef struct
{
  cl_event event;
  double   flops;
} GemmEvent;

typedef struct
{
  GfcgClDeviceInfo info;
  GfcgClOptions    opt;
  cl_platform_id   platform;
  cl_device_id     device;
  cl_context       ctx;
  cl_command_queue q;
  cl_program       prog;
  cl_kernel        k[K_COUNT];
  gboolean         clblast, from_cache, profile;
  GHashTable      *live;  /* GfcgTensor* */
  GHashTable      *pool;  /* bytes -> GSList* of cl_mem */
  cl_mem           scratch[SCR_COUNT];
  gsize            scratch_bytes[SCR_COUNT];
  gsize            dev_bytes, dev_peak, budget;
  gsize            slice_bytes; /* most scratch for one im2col slice or attention batch */
  int              fail_alloc_at, fail_kernel_at, n_allocs, n_launches;
  size_t           max_wg;
  GArray          *gemm_events; /* GemmEvent */
  guint64          gemm_ns;
  double           gemm_flops;
} ClPriv;

#define PRIV(be) ((ClPriv *) (be)->priv)
#define CT(t) ((ClTensor *) (t)->data)

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

static char *
err_text (cl_int err)
{
  const char *s = cl_strerror (err);
  return s != NULL ? g_strdup (s) : g_strdup_printf ("OpenCL error %d", err);
}

#define ERR_FORCED_ALLOC  ((cl_int) -9999)
#define ERR_FORCED_KERNEL ((cl_int) -9998)

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
static gboolean
for_each_device (gboolean (*fn) (int index, cl_platform_id p, cl_device_id d, gpointer data),
                 gpointer data, GError **error)
{
  cl_uint np = 0;
  cl_platform_id *plats;
  cl_int err = clGetPlatformIDs (0, NULL, &np);
  int index = 0;

  if (err != CL_SUCCESS || np == 0)
    {
      char *e = err != CL_SUCCESS ? err_text (err) : g_strdup ("none installed");
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

static void
fill_info (GfcgClDeviceInfo *info, int index, cl_platform_id p, cl_device_id d)
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
  fill_info (&info, index, p, d);
  g_array_append_val ((GArray *) data, info);
  return FALSE;
}

GArray *
gfcg_opencl_list_devices (GError **error)
{
  GArray *a = g_array_new (FALSE, TRUE, sizeof (GfcgClDeviceInfo));
  g_array_set_clear_func (a, (GDestroyNotify) gfcg_opencl_device_info_clear);
  if (!for_each_device (list_one, a, error))
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

typedef struct
{
  int            want;
  cl_platform_id p;
  cl_device_id   d;
} FindDev;

static gboolean
find_one (int index, cl_platform_id p, cl_device_id d, gpointer data)
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

static gboolean
build_program (ClPriv *p, GError **error)
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
    char *e = err_text (err);
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "OpenCL program setup failed on %s: %s",
                 p->info.name, e);
    g_free (e);
  }
  return FALSE;
}

/* ---- teardown and fallback ------------------------------------------------------ */

static void
pool_flush (ClPriv *p)
{
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, p->pool);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      for (GSList *l = value; l != NULL; l = l->next)
        {
          clReleaseMemObject (l->data);
          p->dev_bytes -= GPOINTER_TO_SIZE (key);
        }
      g_slist_free (value);
      g_hash_table_iter_remove (&it);
    }
}

static void
take_gemm_events (ClPriv *p)
{
  for (guint i = 0; p->gemm_events != NULL && i < p->gemm_events->len; i++)
    {
      GemmEvent *e = &g_array_index (p->gemm_events, GemmEvent, i);
      cl_ulong t0 = 0, t1 = 0;
      if (clWaitForEvents (1, &e->event) == CL_SUCCESS &&
          clGetEventProfilingInfo (e->event, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) == CL_SUCCESS &&
          clGetEventProfilingInfo (e->event, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) == CL_SUCCESS &&
          t1 > t0)
        p->gemm_ns += t1 - t0;
      p->gemm_flops += e->flops;
      clReleaseEvent (e->event);
    }
  if (p->gemm_events != NULL)
    g_array_set_size (p->gemm_events, 0);
}

static void
priv_free (ClPriv *p)
{
  if (p == NULL)
    return;
  if (p->q != NULL)
    clFinish (p->q);
  take_gemm_events (p);
  if (p->gemm_events != NULL)
    g_array_unref (p->gemm_events);
  if (p->pool != NULL)
    {
      pool_flush (p);
      g_hash_table_unref (p->pool);
    }
  if (p->live != NULL)
    g_hash_table_unref (p->live);
  for (int i = 0; i < SCR_COUNT; i++)
    if (p->scratch[i] != NULL)
      clReleaseMemObject (p->scratch[i]);
  for (int i = 0; i < K_COUNT; i++)
    if (p->k[i] != NULL)
      clReleaseKernel (p->k[i]);
  if (p->prog != NULL)
    clReleaseProgram (p->prog);
  if (p->q != NULL)
    clReleaseCommandQueue (p->q);
  if (p->ctx != NULL)
    clReleaseContext (p->ctx);
  gfcg_opencl_device_info_clear (&p->info);
  g_free (p);
}

static void
cl_destroy (GfcgBackend *be)
{
  ClPriv *p = PRIV (be);
  /* Tensors still alive at this point belong to a leak elsewhere: free the
   * wrappers so that the device memory goes back. */
  if (p != NULL && p->live != NULL)
    {
      GHashTableIter it;
      gpointer key;
      g_hash_table_iter_init (&it, p->live);
      while (g_hash_table_iter_next (&it, &key, NULL))
        {
          GfcgTensor *t = key;
          ClTensor *ct = CT (t);
          if (ct->buf != NULL)
            clReleaseMemObject (ct->buf);
          if (ct->half != NULL)
            clReleaseMemObject (ct->half);
          g_free (ct);
          t->data = NULL;
        }
    }
  priv_free (p);
  be->priv = NULL;
}

/* The ops of a backend whose device died with the data on it: every op fails. */
static gboolean
dead_alloc (GfcgBackend *be, GfcgTensor *t)
{
  gfcg_backend_fail (be, GFCG_ERROR_DEVICE,
                     "the OpenCL device failed earlier and the model's weights were lost with "
                     "it; load the pack again (or use --device cpu)");
  return FALSE;
}

static GfcgBackendOps dead_ops;

static cl_int read_tensor (ClPriv *p, const GfcgTensor *t, float *dst);

/* Moves everything to the host and continues on the CPU backend.  Returns
 * TRUE when the caller may repeat its op with be->ops (now the CPU's). */
static gboolean
fallback (GfcgBackend *be, cl_int err, const char *where)
{
  ClPriv *p = PRIV (be);
  GHashTableIter it;
  gpointer key;
  gboolean ok = TRUE;
  char *e = err_text (err);

  g_printerr ("gfcg: OpenCL failed on %s (%s in %s); continuing on the CPU backend\n",
              p->info.name, e, where);
  g_free (e);
  g_hash_table_iter_init (&it, p->live);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      GfcgTensor *t = key;
      float *host = g_try_malloc0 (t->numel * sizeof (float));
      ClTensor *ct = CT (t);
      if (host == NULL || (ok && read_tensor (p, t, host) != CL_SUCCESS))
        ok = FALSE;
      if (ct->buf != NULL)
        clReleaseMemObject (ct->buf);
      if (ct->half != NULL)
        clReleaseMemObject (ct->half);
      g_free (ct);
      if (host == NULL) /* keep a valid pointer for cpu_release */
        host = g_malloc0 (sizeof (float));
      t->data = host;
    }
  g_hash_table_remove_all (p->live);
  priv_free (p);
  be->priv = NULL;
  if (ok)
    {
      be->ops = gfcg_backend_cpu_ops ();
      return TRUE;
    }
  dead_ops = *gfcg_backend_cpu_ops ();
  dead_ops.name = "opencl (failed)";
  dead_ops.alloc = dead_alloc;
  be->ops = &dead_ops;
  gfcg_backend_fail (be, GFCG_ERROR_DEVICE,
                     "the OpenCL device failed (%s) and its data could not be read back; "
                     "run again with --device cpu", where);
  return FALSE;
}

/* ---- buffers ------------------------------------------------------------------ */

static cl_int
create_buffer (ClPriv *p, gsize bytes, cl_mem *out)
{
  cl_int err = CL_SUCCESS;
  if (bytes > p->info.max_alloc || p->dev_bytes + bytes > p->budget)
    {
      pool_flush (p);
      if (bytes > p->info.max_alloc || p->dev_bytes + bytes > p->budget)
        return CL_MEM_OBJECT_ALLOCATION_FAILURE;
    }
  *out = clCreateBuffer (p->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
  if (err != CL_SUCCESS)
    {
      pool_flush (p);
      *out = clCreateBuffer (p->ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    }
  if (err == CL_SUCCESS)
    {
      p->dev_bytes += bytes;
      p->dev_peak = MAX (p->dev_peak, p->dev_bytes);
    }
  return err;
}

static cl_mem
pool_take (ClPriv *p, gsize bytes)
{
  GSList *l = g_hash_table_lookup (p->pool, GSIZE_TO_POINTER (bytes));
  cl_mem m;
  if (l == NULL)
    return NULL;
  m = l->data;
  l = g_slist_delete_link (l, l);
  if (l != NULL)
    g_hash_table_insert (p->pool, GSIZE_TO_POINTER (bytes), l);
  else
    g_hash_table_remove (p->pool, GSIZE_TO_POINTER (bytes));
  return m;
}

static void
pool_put (ClPriv *p, gsize bytes, cl_mem m)
{
  GSList *l = g_hash_table_lookup (p->pool, GSIZE_TO_POINTER (bytes));
  g_hash_table_insert (p->pool, GSIZE_TO_POINTER (bytes), g_slist_prepend (l, m));
}

static cl_int
scratch (ClPriv *p, int which, gsize bytes, cl_mem *out)
{
  cl_int err = CL_SUCCESS;
  if (p->scratch_bytes[which] < bytes)
    {
      if (p->scratch[which] != NULL)
        {
          clReleaseMemObject (p->scratch[which]);
          p->dev_bytes -= p->scratch_bytes[which];
          p->scratch[which] = NULL;
          p->scratch_bytes[which] = 0;
        }
      err = create_buffer (p, bytes, &p->scratch[which]);
      if (err != CL_SUCCESS)
        return err;
      p->scratch_bytes[which] = bytes;
    }
  *out = p->scratch[which];
  return err;
}

static gboolean
cl_alloc (GfcgBackend *be, GfcgTensor *t)
{
  ClPriv *p = PRIV (be);
  gsize bytes = t->numel * sizeof (float);
  cl_mem m = NULL;
  cl_int err = CL_SUCCESS;

  if (p->fail_alloc_at > 0 && ++p->n_allocs == p->fail_alloc_at)
    err = ERR_FORCED_ALLOC;
  else if ((m = pool_take (p, bytes)) == NULL)
    err = create_buffer (p, bytes, &m);
  if (err != CL_SUCCESS)
    {
      if (!fallback (be, err, "allocating a tensor"))
        return FALSE;
      return be->ops->alloc (be, t);
    }
  t->data = g_new0 (ClTensor, 1);
  CT (t)->buf = m;
  g_hash_table_add (p->live, t);
  return TRUE;
}

static void
cl_release (GfcgBackend *be, GfcgTensor *t)
{
  ClPriv *p = PRIV (be);
  ClTensor *ct = CT (t);
  if (ct == NULL)
    return;
  g_hash_table_remove (p->live, t);
  if (ct->buf != NULL)
    pool_put (p, t->numel * sizeof (float), ct->buf);
  if (ct->half != NULL)
    {
      clReleaseMemObject (ct->half);
      p->dev_bytes -= t->numel * 2;
    }
  g_free (ct);
  t->data = NULL;
}

/* A small read-only buffer holding host values (per-sample coefficients):
 * copied at creation, so the queue is not synchronised. */
static cl_mem
host_buffer (ClPriv *p, const float *v, gsize n, cl_int *err)
{
  return clCreateBuffer (p->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof (float),
                         (void *) v, err);
}

/* ---- launching ------------------------------------------------------------------ */

typedef struct
{
  size_t      size;
  const void *ptr;
} Arg;

#define AM(t) ((Arg) { sizeof (cl_mem), &CT (t)->buf })
#define AB(m) ((Arg) { sizeof (cl_mem), &(m) })
#define AI(v) ((Arg) { sizeof (cl_int), &(cl_int) { (cl_int) (v) } })
#define AF(v) ((Arg) { sizeof (cl_float), &(cl_float) { (cl_float) (v) } })
#define AL(bytes) ((Arg) { (bytes), NULL })

static cl_int
launch (ClPriv *p, int kernel, cl_uint dims, const size_t *global, const size_t *local,
        guint nargs, const Arg *args)
{
  cl_kernel k = p->k[kernel];
  cl_int err;
  if (p->fail_kernel_at > 0 && ++p->n_launches == p->fail_kernel_at)
    return ERR_FORCED_KERNEL;
  for (guint i = 0; i < nargs; i++)
    if ((err = clSetKernelArg (k, i, args[i].size, args[i].ptr)) != CL_SUCCESS)
      return err;
  return clEnqueueNDRangeKernel (p->q, k, dims, NULL, global, local, 0, NULL, NULL);
}

#define LAUNCH(p, k, dims, g, l, ...)                                                     \
  launch (p, k, dims, g, l, G_N_ELEMENTS (((Arg[]) { __VA_ARGS__ })), (Arg[]) { __VA_ARGS__ })

#define LAUNCH1(p, k, n, ...) LAUNCH (p, k, 1, (size_t[]) { (n) }, NULL, __VA_ARGS__)

/* On failure: fall back and repeat the op on the CPU (CALL uses be->ops). */
#define FAIL_OR_REPEAT(be, err, where, CALL)                                               \
  do {                                                                                     \
    if ((err) != CL_SUCCESS && fallback (be, err, where))                                  \
      CALL;                                                                                \
  } while (0)

/* ---- transfers ------------------------------------------------------------------- */

/* The fp32 contents of t as a buffer (a temporary one for fp16-only weights). */
static cl_int
f32_view (ClPriv *p, const GfcgTensor *t, cl_mem *out, gboolean *temp)
{
  ClTensor *ct = CT (t);
  cl_int err;
  *temp = FALSE;
  if (ct->buf != NULL)
    {
      *out = ct->buf;
      return CL_SUCCESS;
    }
  *out = clCreateBuffer (p->ctx, CL_MEM_READ_WRITE, t->numel * sizeof (float), NULL, &err);
  if (err != CL_SUCCESS)
    return err;
  *temp = TRUE;
  return LAUNCH1 (p, K_HALF_TO_FLOAT, t->numel, AB (ct->half), AB (*out));
}

static cl_int
read_tensor (ClPriv *p, const GfcgTensor *t, float *dst)
{
  cl_mem m;
  gboolean temp;
  cl_int err = f32_view (p, t, &m, &temp);
  if (err == CL_SUCCESS)
    err = clEnqueueReadBuffer (p->q, m, CL_TRUE, 0, t->numel * sizeof (float), dst, 0, NULL, NULL);
  if (temp)
    clReleaseMemObject (m);
  return err;
}

static void
cl_upload (GfcgBackend *be, GfcgTensor *t, const float *src)
{
  ClPriv *p = PRIV (be);
  ClTensor *ct = CT (t);
  cl_int err = CL_SUCCESS;
  if (ct->buf == NULL)
    err = create_buffer (p, t->numel * sizeof (float), &ct->buf);
  if (err == CL_SUCCESS)
    err = clEnqueueWriteBuffer (p->q, ct->buf, CL_TRUE, 0, t->numel * sizeof (float), src, 0,
                                NULL, NULL);
  if (err == CL_SUCCESS && ct->half != NULL)
    {
      clReleaseMemObject (ct->half);
      ct->half = NULL;
      p->dev_bytes -= t->numel * 2;
    }
  FAIL_OR_REPEAT (be, err, "upload", be->ops->upload (be, t, src));
}

static void
cl_download (GfcgBackend *be, const GfcgTensor *t, float *dst)
{
  cl_int err = read_tensor (PRIV (be), t, dst);
  FAIL_OR_REPEAT (be, err, "download", be->ops->download (be, t, dst));
}

/* ---- matrix products ----------------------------------------------------------------- */

/* batch x  C[m, n] = alpha op(A) op(B) (+ beta C), row-major; offsets and
 * strides in floats (a stride of 0 shares that operand over the batch). */
static cl_int
gemm (ClPriv *p, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
      cl_mem A, size_t oa, size_t lda, size_t sa, cl_mem B, size_t ob, size_t ldb, size_t sb,
      float beta, cl_mem C, size_t oc, size_t ldc, size_t sc, int batch)
{
  cl_event ev = NULL, *evp = p->profile ? &ev : NULL;
  cl_int err = CL_SUCCESS;
  double flops = 2.0 * m * n * k;

#ifdef GFCG_HAVE_CLBLAST
  if (p->clblast)
    {
      CLBlastTranspose a_t = ta ? CLBlastTransposeYes : CLBlastTransposeNo;
      CLBlastTranspose b_t = tb ? CLBlastTransposeYes : CLBlastTransposeNo;
      CLBlastStatusCode st = CLBlastSuccess;
      gboolean loop = batch == 1 || sa == 0 || sb == 0;
      for (int i = 0; i < (loop ? batch : 1) && st == CLBlastSuccess; i++)
        {
          if (loop)
            st = CLBlastSgemm (CLBlastLayoutRowMajor, a_t, b_t, m, n, k, alpha, A, oa + i * sa,
                               lda, B, ob + i * sb, ldb, beta, C, oc + i * sc, ldc, &p->q, evp);
          else
            st = CLBlastSgemmStridedBatched (CLBlastLayoutRowMajor, a_t, b_t, m, n, k, alpha,
                                             A, oa, lda, sa, B, ob, ldb, sb, beta, C, oc, ldc,
                                             sc, batch, &p->q, evp);
          if (st == CLBlastSuccess && evp != NULL)
            {
              GemmEvent ge = { ev, flops * (loop ? 1 : batch) };
              g_array_append_val (p->gemm_events, ge);
            }
        }
      return st == CLBlastSuccess ? CL_SUCCESS : (cl_int) st;
    }
#endif
  {
    const size_t ts = 16;
    size_t global[3] = { (n + ts - 1) / ts * ts, (m + ts - 1) / ts * ts, batch };
    size_t local[3] = { ts, ts, 1 };
    cl_kernel kk = p->k[K_GEMM_TILED];
    Arg args[] = { AI (m), AI (n), AI (k), AF (alpha), AI (ta), AI (tb), AB (A), AI (oa),
                   AI (lda), AI (sa), AB (B), AI (ob), AI (ldb), AI (sb), AF (beta), AB (C),
                   AI (oc), AI (ldc), AI (sc) };
    if (p->fail_kernel_at > 0 && ++p->n_launches == p->fail_kernel_at)
      return ERR_FORCED_KERNEL;
    for (guint i = 0; i < G_N_ELEMENTS (args); i++)
      if ((err = clSetKernelArg (kk, i, args[i].size, args[i].ptr)) != CL_SUCCESS)
        return err;
    err = clEnqueueNDRangeKernel (p->q, kk, 3, NULL, global, local, 0, NULL, evp);
    if (err == CL_SUCCESS && evp != NULL)
      {
        GemmEvent ge = { ev, flops * batch };
        g_array_append_val (p->gemm_events, ge);
      }
    return err;
  }
}

/* A weight as fp32 for a product: fp16 copies are unpacked into scratch. */
static cl_int
weight_mem (ClPriv *p, const GfcgTensor *w, cl_mem *out)
{
  ClTensor *ct = CT (w);
  cl_int err;
  if (p->opt.fp16_weights && ct->half == NULL && ct->buf != NULL)
    {
      cl_int e2;
      ct->half = clCreateBuffer (p->ctx, CL_MEM_READ_WRITE, w->numel * 2, NULL, &e2);
      if (e2 == CL_SUCCESS)
        e2 = LAUNCH1 (p, K_FLOAT_TO_HALF, w->numel, AB (ct->buf), AB (ct->half));
      if (e2 != CL_SUCCESS)
        return e2;
      p->dev_bytes += w->numel * 2;
      clFinish (p->q);
      clReleaseMemObject (ct->buf); /* the point: the fp32 copy goes */
      p->dev_bytes -= w->numel * sizeof (float);
      ct->buf = NULL;
    }
  if (ct->buf != NULL)
    {
      *out = ct->buf;
      return CL_SUCCESS;
    }
  if ((err = scratch (p, SCR_W, w->numel * sizeof (float), out)) != CL_SUCCESS)
    return err;
  return LAUNCH1 (p, K_HALF_TO_FLOAT, w->numel, AB (ct->half), AB (*out));
}

static cl_int
add_bias (ClPriv *p, GfcgTensor *y, const GfcgTensor *bias, int hw, int o)
{
  return LAUNCH1 (p, K_ADD_BIAS, y->numel, AM (y), AM (bias), AI (hw), AI (o));
}

/* Convolution as im2col + GEMM, w [O, C/groups, k, k].  cols holds rows =
 * C*k*k unfolded rows per image, group gi owning rows gi*kg ..; the whole
 * batch is unfolded at once when it fits slice_bytes, else a few images or
 * (one image) a run of output pixels at a time, written into y with
 * ldc = npix.  Over (image i, group gi) the cols and y blocks have uniform
 * strides but the weights repeat every `groups`: one batched GEMM over the
 * groups per image, or over the images when there is one group. */
static cl_int
conv_gemm (ClPriv *p, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
           const GfcgConvParams *cp, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1, g = cp->groups;
  int ho = y->shape[2], wo = y->shape[3], npix = ho * wo;
  int rows = c * k * k, kg = rows / g, og = o / g, nimg = n, np = npix;
  gboolean direct = k == 1 && cp->stride == 1 && cp->pad_top == 0 && cp->pad_left == 0 &&
                    cp->pad_bottom == 0 && cp->pad_right == 0;
  gsize per_img = (gsize) rows * npix * sizeof (float);
  cl_mem wm = NULL, cols = CT (x)->buf;
  cl_int err = weight_mem (p, w, &wm);

  if (!direct && per_img * n > p->slice_bytes)
    {
      nimg = (int) MAX (p->slice_bytes / per_img, 1);
      if (per_img > p->slice_bytes)
        {
          gsize fit = p->slice_bytes / ((gsize) rows * sizeof (float));
          np = (int) MAX (fit >= 64 ? fit / 64 * 64 : fit, 1);
        }
    }
  for (int n0 = 0; n0 < n && err == CL_SUCCESS; n0 += nimg)
    {
      int ni = MIN (nimg, n - n0);
      for (int p0 = 0; p0 < npix && err == CL_SUCCESS; p0 += np)
        {
          int pc = MIN (np, npix - p0);
          size_t ob = 0, oy = (size_t) n0 * o * npix + p0;
          if (direct) /* cols is x itself: [n][c][npix] */
            ob = (size_t) n0 * rows * npix;
          else
            {
              err = scratch (p, SCR_COLS, (gsize) ni * rows * pc * sizeof (float), &cols);
              if (err == CL_SUCCESS)
                err = LAUNCH (p, K_IM2COL, 3, ((size_t[]) { pc, rows, ni }), NULL, AM (x),
                              AI (c), AI (h), AI (wd), AI (k), AI (cp->stride),
                              AI (cp->pad_top), AI (cp->pad_left), AI (wo), AI (n0), AI (p0),
                              AB (cols));
            }
          if (err == CL_SUCCESS && g == 1)
            err = gemm (p, FALSE, FALSE, o, pc, rows, 1.0f, wm, 0, rows, 0, cols, ob, pc,
                        (size_t) rows * pc, 0.0f, CT (y)->buf, oy, npix, (size_t) o * npix, ni);
          for (int i = 0; i < ni && g > 1 && err == CL_SUCCESS; i++)
            err = gemm (p, FALSE, FALSE, og, pc, kg, 1.0f, wm, 0, kg, (size_t) og * kg, cols,
                        ob + (size_t) i * rows * pc, pc, (size_t) kg * pc, 0.0f, CT (y)->buf,
                        oy + (size_t) i * o * npix, npix, (size_t) og * npix, g);
        }
    }
  if (err == CL_SUCCESS && bias != NULL)
    err = add_bias (p, y, bias, npix, o);
  return err;
}

static void
cl_conv2d (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
           int stride, int pad, GfcgTensor *y)
{
  GfcgConvParams cp = gfcg_conv_params (stride, pad, 1);
  cl_int err = conv_gemm (PRIV (be), x, w, bias, &cp, y);
  FAIL_OR_REPEAT (be, err, "conv2d", be->ops->conv2d (be, x, w, bias, stride, pad, y));
}

static void
cl_conv2d_ex (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
              const GfcgConvParams *cp, GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int c = x->shape[1], k = w->ndim == 4 ? w->shape[2] : 1;
  cl_int err;

  if (cp->groups == c && cp->groups == w->shape[0])
    {
      cl_mem wm = NULL;
      size_t g[3] = { y->shape[3], y->shape[2], (size_t) y->shape[0] * c };
      err = weight_mem (p, w, &wm);
      if (err == CL_SUCCESS) /* without a bias the weights stand in for it (unread) */
        err = LAUNCH (p, K_CONV_DEPTHWISE, 3, g, NULL, AM (x), AB (wm),
                      bias != NULL ? AM (bias) : AB (wm), AI (bias != NULL), AI (c),
                      AI (x->shape[2]), AI (x->shape[3]), AI (k), AI (cp->stride),
                      AI (cp->pad_top), AI (cp->pad_left), AM (y));
    }
  else
    err = conv_gemm (p, x, w, bias, cp, y);
  FAIL_OR_REPEAT (be, err, "conv2d_ex", be->ops->conv2d_ex (be, x, w, bias, cp, y));
}

static void
cl_linear (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
           GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int n = x->shape[0], k = x->shape[1], m = w->shape[0];
  cl_mem wm = NULL;
  cl_int err = weight_mem (p, w, &wm);
  if (err == CL_SUCCESS)
    err = gemm (p, FALSE, TRUE, n, m, k, 1.0f, CT (x)->buf, 0, k, 0, wm, 0, k, 0, 0.0f,
                CT (y)->buf, 0, m, 0, 1);
  if (err == CL_SUCCESS && bias != NULL)
    err = add_bias (p, y, bias, 1, m);
  FAIL_OR_REPEAT (be, err, "linear", be->ops->linear (be, x, w, bias, y));
}

/* ---- the other ops ---------------------------------------------------------------- */

static void
cl_pixel_norm (GfcgBackend *be, const GfcgTensor *x, float eps, GfcgTensor *y)
{
  size_t hw = (size_t) x->shape[2] * x->shape[3];
  cl_int err = LAUNCH (PRIV (be), K_PIXEL_NORM, 2, ((size_t[]) { hw, x->shape[0] }), NULL,
                       AM (x), AI (x->shape[1]), AF (eps), AM (y));
  FAIL_OR_REPEAT (be, err, "pixel_norm", be->ops->pixel_norm (be, x, eps, y));
}

static void
cl_mp_silu (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  cl_int err = LAUNCH1 (PRIV (be), K_MP_SILU, x->numel, AM (x), AM (y));
  FAIL_OR_REPEAT (be, err, "mp_silu", be->ops->mp_silu (be, x, y));
}

static void
cl_relu (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  cl_int err = LAUNCH1 (PRIV (be), K_RELU, x->numel, AM (x), AM (y));
  FAIL_OR_REPEAT (be, err, "relu", be->ops->relu (be, x, y));
}

static void
cl_axpby (GfcgBackend *be, float a, const GfcgTensor *x1, float b, const GfcgTensor *x2,
          GfcgTensor *y)
{
  cl_int err = LAUNCH1 (PRIV (be), K_AXPBY, x1->numel, AF (a), AM (x1), AF (b), AM (x2), AM (y));
  FAIL_OR_REPEAT (be, err, "axpby", be->ops->axpby (be, a, x1, b, x2, y));
}

static void
cl_axpby_batch (GfcgBackend *be, const float *a, const GfcgTensor *x1, const float *b,
                const GfcgTensor *x2, GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int n = x1->shape[0];
  float *ab = g_new0 (float, 2 * n);
  cl_int err;
  cl_mem m;

  memcpy (ab, a, n * sizeof (float));
  if (b != NULL)
    memcpy (ab + n, b, n * sizeof (float));
  m = host_buffer (p, ab, 2 * n, &err);
  g_free (ab);
  if (err == CL_SUCCESS)
    {
      err = LAUNCH1 (p, K_AXPBY_BATCH, x1->numel, AB (m), AI (n), AM (x1),
                     AM (x2 != NULL ? x2 : x1), AI (x2 != NULL), AI (x1->numel / n), AM (y));
      clReleaseMemObject (m);
    }
  FAIL_OR_REPEAT (be, err, "axpby_batch", be->ops->axpby_batch (be, a, x1, b, x2, y));
}

static void
cl_cat (GfcgBackend *be, float wa, const GfcgTensor *a, float wb, const GfcgTensor *b,
        GfcgTensor *y)
{
  int n = a->shape[0];
  cl_int err = LAUNCH1 (PRIV (be), K_CAT, y->numel, AF (wa), AM (a), AI (a->numel / n), AF (wb),
                        AM (b), AI (b->numel / n), AM (y));
  FAIL_OR_REPEAT (be, err, "mp_cat", be->ops->cat (be, wa, a, wb, b, y));
}

static void
cl_cat_ones (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  int hw = x->shape[2] * x->shape[3];
  cl_int err = LAUNCH1 (PRIV (be), K_CAT_ONES, y->numel, AM (x), AI (x->numel / x->shape[0]),
                        AI (hw), AM (y));
  FAIL_OR_REPEAT (be, err, "cat_ones", be->ops->cat_ones (be, x, y));
}

static void
cl_resample (GfcgBackend *be, const GfcgTensor *x, GfcgResample mode, GfcgTensor *y)
{
  size_t g[3] = { y->shape[3], y->shape[2], (size_t) y->shape[0] * y->shape[1] };
  cl_int err = LAUNCH (PRIV (be), mode == GFCG_RESAMPLE_UP ? K_RESAMPLE_UP : K_RESAMPLE_DOWN, 3,
                       g, NULL, AM (x), AI (x->shape[2]), AI (x->shape[3]), AM (y));
  FAIL_OR_REPEAT (be, err, "resample", be->ops->resample (be, x, mode, y));
}

static void
cl_scale_channels (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *s, float offset,
                   GfcgTensor *y)
{
  cl_int err = LAUNCH1 (PRIV (be), K_SCALE_CHANNELS, x->numel, AM (x), AM (s), AF (offset),
                        AI (x->shape[2] * x->shape[3]), AM (y));
  FAIL_OR_REPEAT (be, err, "scale_channels", be->ops->scale_channels (be, x, s, offset, y));
}

static void
cl_clip (GfcgBackend *be, GfcgTensor *x, float lo, float hi)
{
  cl_int err = LAUNCH1 (PRIV (be), K_CLIP, x->numel, AM (x), AF (lo), AF (hi));
  FAIL_OR_REPEAT (be, err, "clip", be->ops->clip (be, x, lo, hi));
}

static void
cl_attention (GfcgBackend *be, const GfcgTensor *qkv, int heads, int dim, float eps,
              GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int n = qkv->shape[0], hw = qkv->shape[2] * qkv->shape[3], nb = n * heads;
  gsize per = (gsize) nb * dim * hw;
  cl_mem qkvn = NULL, att = NULL;
  cl_int err = scratch (p, SCR_QKV, 3 * per * sizeof (float), &qkvn);
  size_t ls = 1;

  while (ls * 2 <= MIN (p->max_wg, 128) && ls * 2 <= (size_t) hw)
    ls *= 2;
  if (err == CL_SUCCESS)
    err = scratch (p, SCR_ATT, (gsize) nb * hw * hw * sizeof (float), &att);
  if (err == CL_SUCCESS)
    err = LAUNCH (p, K_ATTN_NORM, 3, ((size_t[]) { hw, 3, nb }), NULL, AM (qkv), AI (dim),
                  AF (eps), AB (qkvn));
  /* att[b] [q, k] = q[b]^T k[b] / sqrt(D): q, k, v are blocks [nb][dim][hw] of qkvn. */
  if (err == CL_SUCCESS)
    err = gemm (p, TRUE, FALSE, hw, hw, dim, (float) (1.0 / sqrt (dim)), qkvn, 0, hw,
                (size_t) dim * hw, qkvn, per, hw, (size_t) dim * hw, 0.0f, att, 0, hw,
                (size_t) hw * hw, nb);
  if (err == CL_SUCCESS)
    err = LAUNCH (p, K_SOFTMAX_ROWS, 1, ((size_t[]) { (size_t) nb * hw * ls }),
                  ((size_t[]) { ls }), AB (att), AI (hw), AL (ls * sizeof (float)));
  /* y[b] [c, q] = sum_k v[b] [c, k] att[b] [q, k] */
  if (err == CL_SUCCESS)
    err = gemm (p, FALSE, TRUE, dim, hw, hw, 1.0f, qkvn, 2 * per, hw, (size_t) dim * hw, att, 0,
                hw, (size_t) hw * hw, 0.0f, CT (y)->buf, 0, hw, (size_t) dim * hw, nb);
  FAIL_OR_REPEAT (be, err, "attention", be->ops->attention (be, qkv, heads, dim, eps, y));
}

static void
cl_fourier (GfcgBackend *be, const float *t, const GfcgTensor *freqs, const GfcgTensor *phases,
            GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  cl_int err;
  cl_mem tm = host_buffer (p, t, y->shape[0], &err);
  if (err == CL_SUCCESS)
    {
      err = LAUNCH (p, K_FOURIER, 2, ((size_t[]) { y->shape[1], y->shape[0] }), NULL, AB (tm),
                    AM (freqs), AM (phases), AM (y));
      clReleaseMemObject (tm);
    }
  FAIL_OR_REPEAT (be, err, "fourier", be->ops->fourier (be, t, freqs, phases, y));
}

static void
cl_avgpool_global (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  cl_int err = LAUNCH1 (PRIV (be), K_AVGPOOL_GLOBAL, y->numel, AM (x),
                        AI (x->shape[2] * x->shape[3]), AM (y));
  FAIL_OR_REPEAT (be, err, "avgpool_global", be->ops->avgpool_global (be, x, y));
}

static void
cl_image_prep (GfcgBackend *be, const GfcgTensor *x, const float *mean, const float *std,
               GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int c = x->shape[1];
  float *ms = g_new (float, 2 * c);
  cl_int err;
  cl_mem m;
  memcpy (ms, mean, c * sizeof (float));
  memcpy (ms + c, std, c * sizeof (float));
  m = host_buffer (p, ms, 2 * c, &err);
  g_free (ms);
  if (err == CL_SUCCESS)
    {
      size_t g[3] = { y->shape[3], y->shape[2], (size_t) y->shape[0] * c };
      err = LAUNCH (p, K_IMAGE_PREP, 3, g, NULL, AM (x), AI (c), AI (x->shape[2]),
                    AI (x->shape[3]), AB (m), AM (y));
      clReleaseMemObject (m);
    }
  FAIL_OR_REPEAT (be, err, "image_prep", be->ops->image_prep (be, x, mean, std, y));
}

/* ---- decoder and ImageNet-classifier ops ----------------------------------------------- */

/* A power-of-two work-group size for a tree reduction over `len` values. */
static size_t
reduce_local (ClPriv *p, int kernel, size_t cap, size_t len)
{
  size_t ls = 1, kmax = 0;
  if (clGetKernelWorkGroupInfo (p->k[kernel], p->device, CL_KERNEL_WORK_GROUP_SIZE,
                                sizeof kmax, &kmax, NULL) == CL_SUCCESS && kmax > 0)
    cap = MIN (cap, kmax);
  cap = MIN (cap, p->max_wg);
  while (ls * 2 <= cap && ls * 2 <= len)
    ls *= 2;
  return ls;
}

static void
cl_group_norm (GfcgBackend *be, const GfcgTensor *x, int groups, float eps,
               const GfcgTensor *gamma, const GfcgTensor *beta, gboolean silu, GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int c = x->shape[1], cg = c / groups, hw = x->shape[2] * x->shape[3];
  int ng = x->shape[0] * groups, len = cg * hw, slices, chunk;
  size_t ls = reduce_local (p, K_GN_PARTIAL, 256, len);
  cl_mem part = NULL, stats = NULL;
  cl_int err;

  /* About 64 values per work-item, and at most 64 slices per group (the
   * slices are combined by one work-item each in gn_stats). */
  slices = (int) CLAMP ((len + ls * 64 - 1) / (ls * 64), 1, 64);
  chunk = (len + slices - 1) / slices;
  slices = (len + chunk - 1) / chunk;
  err = scratch (p, SCR_GN_PART, (gsize) ng * slices * 3 * sizeof (float), &part);
  if (err == CL_SUCCESS)
    err = scratch (p, SCR_GN_STATS, (gsize) ng * 2 * sizeof (float), &stats);
  if (err == CL_SUCCESS)
    err = LAUNCH (p, K_GN_PARTIAL, 2, ((size_t[]) { ls * slices, ng }), ((size_t[]) { ls, 1 }),
                  AM (x), AI (len), AI (chunk), AB (part), AL (ls * sizeof (float)),
                  AL (ls * sizeof (float)), AL (ls * sizeof (float)));
  if (err == CL_SUCCESS)
    err = LAUNCH1 (p, K_GN_STATS, ng, AB (part), AI (slices), AF (eps), AB (stats));
  if (err == CL_SUCCESS)
    err = LAUNCH1 (p, K_GN_APPLY, x->numel, AM (x), AB (stats), AM (gamma), AM (beta), AI (c),
                   AI (cg), AI (hw), AI (silu), AM (y));
  FAIL_OR_REPEAT (be, err, "group_norm",
                  be->ops->group_norm (be, x, groups, eps, gamma, beta, silu, y));
}

static void
cl_unary (GfcgBackend *be, const GfcgTensor *x, GfcgUnary f, float a, GfcgTensor *y)
{
  /* The kernel's codes are GfcgUnary's values. */
  cl_int err = LAUNCH1 (PRIV (be), K_UNARY, x->numel, AM (x), AI (f), AF (a), AM (y));
  FAIL_OR_REPEAT (be, err, "unary", be->ops->unary (be, x, f, a, y));
}

static void
cl_maxpool (GfcgBackend *be, const GfcgTensor *x, int k, int stride, int pad, GfcgTensor *y)
{
  size_t g[3] = { y->shape[3], y->shape[2], (size_t) y->shape[0] * y->shape[1] };
  cl_int err = LAUNCH (PRIV (be), K_MAXPOOL, 3, g, NULL, AM (x), AI (x->shape[2]),
                       AI (x->shape[3]), AI (k), AI (stride), AI (pad), AM (y));
  FAIL_OR_REPEAT (be, err, "maxpool", be->ops->maxpool (be, x, k, stride, pad, y));
}

static void
cl_channel_affine (GfcgBackend *be, const GfcgTensor *x, const float *scale, const float *shift,
                   GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int c = x->shape[1];
  float *ss = g_new (float, 2 * c);
  cl_int err;
  cl_mem m;
  memcpy (ss, scale, c * sizeof (float));
  memcpy (ss + c, shift, c * sizeof (float));
  m = host_buffer (p, ss, 2 * c, &err);
  g_free (ss);
  if (err == CL_SUCCESS)
    {
      err = LAUNCH1 (p, K_CHANNEL_AFFINE, x->numel, AM (x), AB (m), AI (c),
                     AI (x->shape[2] * x->shape[3]), AM (y));
      clReleaseMemObject (m);
    }
  FAIL_OR_REPEAT (be, err, "channel_affine", be->ops->channel_affine (be, x, scale, shift, y));
}

/* As cl_attention without the normalisation: head h of sample n is the
 * contiguous block b = n*heads + h of dim x hw floats in each of q, k, v
 * and y.  The score matrices go through scratch a few batches at a time
 * (a 64x64 latent has 4096 x 4096 scores per head). */
static void
cl_attention_qkv (GfcgBackend *be, const GfcgTensor *q, const GfcgTensor *k,
                  const GfcgTensor *v, int heads, float scale, GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int dim = q->shape[1] / heads, hw = q->shape[2] * q->shape[3], nb = q->shape[0] * heads;
  gsize att_bytes = (gsize) hw * hw * sizeof (float);
  int step = (int) CLAMP (p->slice_bytes / att_bytes, 1, (gsize) nb);
  size_t ls = reduce_local (p, K_SOFTMAX_ROWS, 128, hw), blk = (size_t) dim * hw;
  cl_mem att = NULL;
  cl_int err = scratch (p, SCR_ATT, step * att_bytes, &att);

  for (int b0 = 0; b0 < nb && err == CL_SUCCESS; b0 += step)
    {
      int bc = MIN (step, nb - b0);
      /* att[b] [q, k] = scale q[b]^T k[b] */
      err = gemm (p, TRUE, FALSE, hw, hw, dim, scale, CT (q)->buf, b0 * blk, hw, blk,
                  CT (k)->buf, b0 * blk, hw, blk, 0.0f, att, 0, hw, (size_t) hw * hw, bc);
      if (err == CL_SUCCESS)
        err = LAUNCH (p, K_SOFTMAX_ROWS, 1, ((size_t[]) { (size_t) bc * hw * ls }),
                      ((size_t[]) { ls }), AB (att), AI (hw), AL (ls * sizeof (float)));
      /* y[b] [c, q] = sum_k v[b] [c, k] att[b] [q, k] */
      if (err == CL_SUCCESS)
        err = gemm (p, FALSE, TRUE, dim, hw, hw, 1.0f, CT (v)->buf, b0 * blk, hw, blk, att, 0,
                    hw, (size_t) hw * hw, 0.0f, CT (y)->buf, b0 * blk, hw, blk, bc);
    }
  FAIL_OR_REPEAT (be, err, "attention_qkv",
                  be->ops->attention_qkv (be, q, k, v, heads, scale, y));
}

static const GfcgBackendOps cl_ops = {
  .name = "opencl",
  .destroy = cl_destroy,
  .alloc = cl_alloc,
  .release = cl_release,
  .upload = cl_upload,
  .download = cl_download,
  .conv2d = cl_conv2d,
  .linear = cl_linear,
  .pixel_norm = cl_pixel_norm,
  .mp_silu = cl_mp_silu,
  .relu = cl_relu,
  .axpby = cl_axpby,
  .axpby_batch = cl_axpby_batch,
  .cat = cl_cat,
  .cat_ones = cl_cat_ones,
  .resample = cl_resample,
  .scale_channels = cl_scale_channels,
  .clip = cl_clip,
  .attention = cl_attention,
  .fourier = cl_fourier,
  .avgpool_global = cl_avgpool_global,
  .image_prep = cl_image_prep,
  .conv2d_ex = cl_conv2d_ex,
  .group_norm = cl_group_norm,
  .unary = cl_unary,
  .maxpool = cl_maxpool,
  .channel_affine = cl_channel_affine,
  .attention_qkv = cl_attention_qkv,
};

/* ---- creation ------------------------------------------------------------------- */

static int
env_int (const char *name)
{
  const char *v = g_getenv (name);
  return v != NULL ? atoi (v) : 0;
}

GfcgBackend *
gfcg_backend_opencl_new (int index, const GfcgClOptions *options, GError **error)
{
  FindDev f = { index, NULL, NULL };
  ClPriv *p;
  GfcgBackend *be;
  cl_int err;
  const char *budget_env = g_getenv ("GFCG_OPENCL_MEMORY_MB");

  if (!for_each_device (find_one, &f, error))
    return NULL;
  if (f.d == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE,
                   "there is no OpenCL device %d (see gfcg devices)", index);
      return NULL;
    }
  p = g_new0 (ClPriv, 1);
  if (options != NULL)
    p->opt = *options;
  if (env_int ("GFCG_OPENCL_FP16"))
    p->opt.fp16_weights = TRUE;
  if (g_strcmp0 (g_getenv ("GFCG_OPENCL_GEMM"), "own") == 0)
    p->opt.own_gemm = TRUE;
  p->platform = f.p;
  p->device = f.d;
  fill_info (&p->info, index, f.p, f.d);
  p->profile = env_int ("GFCG_OPENCL_PROFILE") != 0;
  p->fail_alloc_at = env_int ("GFCG_OPENCL_FAIL_ALLOC");
  p->fail_kernel_at = env_int ("GFCG_OPENCL_FAIL_KERNEL");
  /* Leave room for the driver; an explicit budget (MiB) for tests. */
  p->budget = budget_env != NULL ? (gsize) g_ascii_strtoull (budget_env, NULL, 10) << 20
                                 : (gsize) (p->info.global_mem / 10 * 9);
  clGetDeviceInfo (f.d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof p->max_wg, &p->max_wg, NULL);
  /* 256 MiB of im2col or attention scores at a time (KiB from the
   * environment, for tests of the slicing with small tensors). */
  p->slice_bytes = env_int ("GFCG_OPENCL_SLICE_KB") > 0
                     ? (gsize) env_int ("GFCG_OPENCL_SLICE_KB") << 10
                     : MIN ((gsize) 256 << 20, (gsize) p->info.max_alloc);
  p->ctx = clCreateContext ((cl_context_properties[]) { CL_CONTEXT_PLATFORM,
                                                        (cl_context_properties) f.p, 0 },
                            1, &f.d, NULL, NULL, &err);
  if (err == CL_SUCCESS)
    p->q = clCreateCommandQueue (p->ctx, f.d, p->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &err);
  if (err != CL_SUCCESS)
    {
      char *e = err_text (err);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "OpenCL device %s cannot be opened: %s",
                   p->info.name, e);
      g_free (e);
      priv_free (p);
      return NULL;
    }
  if (!build_program (p, error))
    {
      priv_free (p);
      return NULL;
    }
#ifdef GFCG_HAVE_CLBLAST
  p->clblast = !p->opt.own_gemm;
#endif
  p->live = g_hash_table_new (g_direct_hash, g_direct_equal);
  p->pool = g_hash_table_new (g_direct_hash, g_direct_equal);
  p->gemm_events = g_array_new (FALSE, FALSE, sizeof (GemmEvent));
  be = g_new0 (GfcgBackend, 1);
  be->ops = &cl_ops;
  be->priv = p;
  return be;
}

gboolean
gfcg_backend_opencl_active (GfcgBackend *be)
{
  return be != NULL && be->ops == &cl_ops;
}

char *
gfcg_backend_opencl_describe (GfcgBackend *be)
{
  ClPriv *p;
  if (!gfcg_backend_opencl_active (be))
    return g_strdup ("cpu (OpenCL fell back)");
  p = PRIV (be);
  return g_strdup_printf ("opencl:%d %s (%s, %s), kernels %s, GEMM %s, weights %s",
                          p->info.index, p->info.name, p->info.platform, p->info.version,
                          p->from_cache ? "from the binary cache" : "built from source",
                          p->clblast ? "CLBlast" : "built-in tiled kernel",
                          p->opt.fp16_weights ? "fp16" : "fp32");
}

void
gfcg_backend_opencl_memory (GfcgBackend *be, gsize *now, gsize *peak)
{
  ClPriv *p = gfcg_backend_opencl_active (be) ? PRIV (be) : NULL;
  if (now != NULL)
    *now = p != NULL ? p->dev_bytes : 0;
  if (peak != NULL)
    *peak = p != NULL ? p->dev_peak : 0;
}

void
gfcg_backend_opencl_finish (GfcgBackend *be)
{
  if (gfcg_backend_opencl_active (be))
    clFinish (PRIV (be)->q);
}

guint64
gfcg_backend_opencl_take_gemm_ns (GfcgBackend *be, guint64 *flops)
{
  ClPriv *p;
  guint64 ns;
  if (!gfcg_backend_opencl_active (be))
    return 0;
  p = PRIV (be);
  take_gemm_events (p);
  ns = p->gemm_ns;
  if (flops != NULL)
    *flops = (guint64) p->gemm_flops;
  p->gemm_ns = 0;
  p->gemm_flops = 0;
  return ns;
}
