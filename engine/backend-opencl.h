/* backend-opencl.h — the OpenCL backend (engine/backend-opencl.c).
 *
 * Devices are numbered over all platforms in the order the ICD loader lists
 * them: "opencl:N" in `gfcg devices`.  Everything here exists only in builds
 * with the `opencl` feature (GFCG_HAVE_OPENCL); callers test the macro. */
#ifndef GFCG_BACKEND_OPENCL_H
#define GFCG_BACKEND_OPENCL_H

#include "backend.h"

typedef struct
{
  int      index;        /* N of opencl:N */
  char    *platform, *name, *version, *driver;
  gboolean gpu;
  guint64  global_mem, max_alloc, local_mem;
  guint    compute_units, clock_mhz;
  gboolean fp16, fp64;   /* cl_khr_fp16 / cl_khr_fp64 */
} GfcgClDeviceInfo;

typedef struct
{
  gboolean fp16_weights; /* store conv/linear weights as fp16 (vload_half, fp32 math) */
  gboolean own_gemm;     /* the built-in tiled GEMM instead of CLBlast */
} GfcgClOptions;

/* All OpenCL devices; NULL and a message in *error when there is no platform. */
GArray      *gfcg_opencl_list_devices (GError **error); /* of GfcgClDeviceInfo */
void         gfcg_opencl_device_info_clear (GfcgClDeviceInfo *info);
/* First GPU device, -1 when none. */
int          gfcg_opencl_first_gpu (void);

/* A backend on device index (kernels built or loaded from the binary cache).
 * NULL with error set when the device cannot be used: the caller falls back.
 * Later device failures (allocation refused, a kernel failing) move every
 * live tensor to host memory and continue with the CPU backend's ops, after
 * one message on stderr. */
GfcgBackend *gfcg_backend_opencl_new  (int index, const GfcgClOptions *options, GError **error);
/* TRUE while the backend still runs on the device (not fallen back). */
gboolean     gfcg_backend_opencl_active (GfcgBackend *be);

#endif
