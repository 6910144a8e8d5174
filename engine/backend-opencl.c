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
#include "opencl-private.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
  m = ocl_host_buffer (p, ab, 2 * n, &err);
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
  cl_int err = ocl_scratch (p, SCR_QKV, 3 * per * sizeof (float), &qkvn);
  size_t ls = 1;

  while (ls * 2 <= MIN (p->max_wg, 128) && ls * 2 <= (size_t) hw)
    ls *= 2;
  if (err == CL_SUCCESS)
    err = ocl_scratch (p, SCR_ATT, (gsize) nb * hw * hw * sizeof (float), &att);
  if (err == CL_SUCCESS)
    err = LAUNCH (p, K_ATTN_NORM, 3, ((size_t[]) { hw, 3, nb }), NULL, AM (qkv), AI (dim),
                  AF (eps), AB (qkvn));
  /* att[b] [q, k] = q[b]^T k[b] / sqrt(D): q, k, v are blocks [nb][dim][hw] of qkvn. */
  if (err == CL_SUCCESS)
    err = ocl_gemm (p, TRUE, FALSE, hw, hw, dim, (float) (1.0 / sqrt (dim)), qkvn, 0, hw,
                (size_t) dim * hw, qkvn, per, hw, (size_t) dim * hw, 0.0f, att, 0, hw,
                (size_t) hw * hw, nb);
  if (err == CL_SUCCESS)
    err = LAUNCH (p, K_SOFTMAX_ROWS, 1, ((size_t[]) { (size_t) nb * hw * ls }),
                  ((size_t[]) { ls }), AB (att), AI (hw), AL (ls * sizeof (float)));
  /* y[b] [c, q] = sum_k v[b] [c, k] att[b] [q, k] */
  if (err == CL_SUCCESS)
    err = ocl_gemm (p, FALSE, TRUE, dim, hw, hw, 1.0f, qkvn, 2 * per, hw, (size_t) dim * hw, att, 0,
                hw, (size_t) hw * hw, 0.0f, CT (y)->buf, 0, hw, (size_t) dim * hw, nb);
  FAIL_OR_REPEAT (be, err, "attention", be->ops->attention (be, qkv, heads, dim, eps, y));
}

static void
cl_fourier (GfcgBackend *be, const float *t, const GfcgTensor *freqs, const GfcgTensor *phases,
            GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  cl_int err;
  cl_mem tm = ocl_host_buffer (p, t, y->shape[0], &err);
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
  m = ocl_host_buffer (p, ms, 2 * c, &err);
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
  err = ocl_scratch (p, SCR_GN_PART, (gsize) ng * slices * 3 * sizeof (float), &part);
  if (err == CL_SUCCESS)
    err = ocl_scratch (p, SCR_GN_STATS, (gsize) ng * 2 * sizeof (float), &stats);
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
  m = ocl_host_buffer (p, ss, 2 * c, &err);
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
  cl_int err = ocl_scratch (p, SCR_ATT, step * att_bytes, &att);

  for (int b0 = 0; b0 < nb && err == CL_SUCCESS; b0 += step)
    {
      int bc = MIN (step, nb - b0);
      /* att[b] [q, k] = scale q[b]^T k[b] */
      err = ocl_gemm (p, TRUE, FALSE, hw, hw, dim, scale, CT (q)->buf, b0 * blk, hw, blk,
                  CT (k)->buf, b0 * blk, hw, blk, 0.0f, att, 0, hw, (size_t) hw * hw, bc);
      if (err == CL_SUCCESS)
        err = LAUNCH (p, K_SOFTMAX_ROWS, 1, ((size_t[]) { (size_t) bc * hw * ls }),
                      ((size_t[]) { ls }), AB (att), AI (hw), AL (ls * sizeof (float)));
      /* y[b] [c, q] = sum_k v[b] [c, k] att[b] [q, k] */
      if (err == CL_SUCCESS)
        err = ocl_gemm (p, FALSE, TRUE, dim, hw, hw, 1.0f, CT (v)->buf, b0 * blk, hw, blk, att, 0,
                    hw, (size_t) hw * hw, 0.0f, CT (y)->buf, b0 * blk, hw, blk, bc);
    }
  FAIL_OR_REPEAT (be, err, "attention_qkv",
                  be->ops->attention_qkv (be, q, k, v, heads, scale, y));
}

/* ---- describe, memory, sync ------------------------------------------------------ */

static char *
cl_describe (GfcgBackend *be)
{
  ClPriv *p = PRIV (be);
  return g_strdup_printf ("opencl:%d %s (%s, %s), kernels %s, GEMM %s, weights %s",
                          p->info.index, p->info.name, p->info.platform, p->info.version,
                          p->from_cache ? "from the binary cache" : "built from source",
                          p->clblast ? "CLBlast" : "built-in tiled kernel",
                          p->opt.fp16_weights ? "fp16" : "fp32");
}

static void
cl_memory (GfcgBackend *be, gsize *now, gsize *peak)
{
  *now = PRIV (be)->dev_bytes;
  *peak = PRIV (be)->dev_peak;
}

/* Waits for the queue; the GEMM time comes from the profiling events
 * (GFCG_OPENCL_PROFILE=1), else 0. */
static guint64
cl_sync (GfcgBackend *be, guint64 *gemm_flops)
{
  ClPriv *p = PRIV (be);
  guint64 ns;
  clFinish (p->q);
  ocl_take_gemm_events (p);
  ns = p->gemm_ns;
  *gemm_flops = (guint64) p->gemm_flops;
  p->gemm_ns = 0;
  p->gemm_flops = 0;
  return ns;
}

static const GfcgBackendOps cl_ops = {
  .name = "opencl",
  .destroy = ocl_destroy,
  .describe = cl_describe,
  .memory = cl_memory,
  .sync = cl_sync,
  .alloc = ocl_alloc,
  .release = ocl_release,
  .upload = ocl_upload,
  .download = ocl_download,
  .conv2d = ocl_conv2d,
  .linear = ocl_linear,
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
  .conv2d_ex = ocl_conv2d_ex,
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

  if (!ocl_for_each_device (ocl_find_one, &f, error))
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
  ocl_fill_info (&p->info, index, f.p, f.d);
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
      char *e = ocl_err_text (err);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "OpenCL device %s cannot be opened: %s",
                   p->info.name, e);
      g_free (e);
      ocl_priv_free (p);
      return NULL;
    }
  if (!ocl_build_program (p, error))
    {
      ocl_priv_free (p);
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
  be->precision = p->opt.fp16_weights ? GFCG_PRECISION_FP16_WEIGHTS : GFCG_PRECISION_FP32;
  return be;
}

gboolean
gfcg_backend_opencl_active (GfcgBackend *be)
{
  return be != NULL && be->ops == &cl_ops;
}
