/* opencl-memory.c — device buffers: the size-keyed pool, grow-only scratch,
 * transfers (fp16 weights read back as fp32), teardown, the fallback that
 * moves every live tensor to the host, and kernel launches. */
#include "opencl-private.h"

#include <string.h>

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

void
ocl_take_gemm_events (ClPriv *p)
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

void
ocl_priv_free (ClPriv *p)
{
  if (p == NULL)
    return;
  if (p->q != NULL)
    clFinish (p->q);
  ocl_take_gemm_events (p);
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

void
ocl_destroy (GfcgBackend *be)
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
  ocl_priv_free (p);
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

static GfcgBackendOps dead_ops, fell_back_ops;

/* The ops of a backend that fell back: the CPU's, saying so. */
static char *
fell_back_describe (GfcgBackend *be)
{
  (void) be;
  return g_strdup ("cpu (OpenCL fell back)");
}

static cl_int read_tensor (ClPriv *p, const GfcgTensor *t, float *dst);

/* Moves everything to the host and continues on the CPU backend.  Returns
 * TRUE when the caller may repeat its op with be->ops (now the CPU's). */
gboolean
ocl_fallback (GfcgBackend *be, cl_int err, const char *where)
{
  ClPriv *p = PRIV (be);
  GHashTableIter it;
  gpointer key;
  gboolean ok = TRUE;
  char *e = ocl_err_text (err);

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
  ocl_priv_free (p);
  be->priv = NULL;
  be->precision = GFCG_PRECISION_FP32; /* the CPU ops finish the run in fp32 */
  if (ok)
    {
      fell_back_ops = *gfcg_backend_cpu_ops ();
      fell_back_ops.describe = fell_back_describe;
      be->ops = &fell_back_ops;
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

cl_int
ocl_scratch (ClPriv *p, int which, gsize bytes, cl_mem *out)
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

gboolean
ocl_alloc (GfcgBackend *be, GfcgTensor *t)
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
      if (!ocl_fallback (be, err, "allocating a tensor"))
        return FALSE;
      return be->ops->alloc (be, t);
    }
  t->data = g_new0 (ClTensor, 1);
  CT (t)->buf = m;
  g_hash_table_add (p->live, t);
  return TRUE;
}

void
ocl_release (GfcgBackend *be, GfcgTensor *t)
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
cl_mem
ocl_host_buffer (ClPriv *p, const float *v, gsize n, cl_int *err)
{
  return clCreateBuffer (p->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof (float),
                         (void *) v, err);
}

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

void
ocl_upload (GfcgBackend *be, GfcgTensor *t, const float *src)
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

void
ocl_download (GfcgBackend *be, const GfcgTensor *t, float *dst)
{
  cl_int err = read_tensor (PRIV (be), t, dst);
  FAIL_OR_REPEAT (be, err, "download", be->ops->download (be, t, dst));
}

/* ---- launching ---------------------------------------------------------------- */

cl_int
ocl_launch (ClPriv *p, int kernel, cl_uint dims, const size_t *global, const size_t *local,
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
