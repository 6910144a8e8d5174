/* opencl-gemm.c — matrix products on the device: convolutions as im2col +
 * GEMM (CLBlast, or the tiled kernel of gfcg.cl), sliced when the unfolded
 * columns would not fit; grouped ones as batched GEMMs, depthwise ones a
 * direct kernel; linear layers. */
#include "opencl-private.h"

#include <math.h>
#include <string.h>

/* ---- matrix products ----------------------------------------------------------------- */

/* batch x  C[m, n] = alpha op(A) op(B) (+ beta C), row-major; offsets and
 * strides in floats (a stride of 0 shares that operand over the batch). */
cl_int
ocl_gemm (ClPriv *p, gboolean ta, gboolean tb, int m, int n, int k, float alpha,
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
  if ((err = ocl_scratch (p, SCR_W, w->numel * sizeof (float), out)) != CL_SUCCESS)
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
              err = ocl_scratch (p, SCR_COLS, (gsize) ni * rows * pc * sizeof (float), &cols);
              if (err == CL_SUCCESS)
                err = LAUNCH (p, K_IM2COL, 3, ((size_t[]) { pc, rows, ni }), NULL, AM (x),
                              AI (c), AI (h), AI (wd), AI (k), AI (cp->stride),
                              AI (cp->pad_top), AI (cp->pad_left), AI (wo), AI (n0), AI (p0),
                              AB (cols));
            }
          if (err == CL_SUCCESS && g == 1)
            err = ocl_gemm (p, FALSE, FALSE, o, pc, rows, 1.0f, wm, 0, rows, 0, cols, ob, pc,
                        (size_t) rows * pc, 0.0f, CT (y)->buf, oy, npix, (size_t) o * npix, ni);
          for (int i = 0; i < ni && g > 1 && err == CL_SUCCESS; i++)
            err = ocl_gemm (p, FALSE, FALSE, og, pc, kg, 1.0f, wm, 0, kg, (size_t) og * kg, cols,
                        ob + (size_t) i * rows * pc, pc, (size_t) kg * pc, 0.0f, CT (y)->buf,
                        oy + (size_t) i * o * npix, npix, (size_t) og * npix, g);
        }
    }
  if (err == CL_SUCCESS && bias != NULL)
    err = add_bias (p, y, bias, npix, o);
  return err;
}

void
ocl_conv2d (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
           int stride, int pad, GfcgTensor *y)
{
  GfcgConvParams cp = gfcg_conv_params (stride, pad, 1);
  cl_int err = conv_gemm (PRIV (be), x, w, bias, &cp, y);
  FAIL_OR_REPEAT (be, err, "conv2d", be->ops->conv2d (be, x, w, bias, stride, pad, y));
}

void
ocl_conv2d_ex (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
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

void
ocl_linear (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
           GfcgTensor *y)
{
  ClPriv *p = PRIV (be);
  int n = x->shape[0], k = x->shape[1], m = w->shape[0];
  cl_mem wm = NULL;
  cl_int err = weight_mem (p, w, &wm);
  if (err == CL_SUCCESS)
    err = ocl_gemm (p, FALSE, TRUE, n, m, k, 1.0f, CT (x)->buf, 0, k, 0, wm, 0, k, 0, 0.0f,
                CT (y)->buf, 0, m, 0, 1);
  if (err == CL_SUCCESS && bias != NULL)
    err = add_bias (p, y, bias, 1, m);
  FAIL_OR_REPEAT (be, err, "linear", be->ops->linear (be, x, w, bias, y));
}
