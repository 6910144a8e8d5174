/* cpu-gemm.c — the CPU backend's matrix products, where nearly all of its
 * time goes: convolutions as im2col + SGEMM (unfolded a band of rows at a
 * time), depthwise convolutions directly, linear layers and both products
 * of attention, all through OpenBLAS. */
#include "cpu-private.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Small products run on one thread: waking OpenBLAS's pool costs more than
 * they do, and on a loaded machine its spinning threads made a tiny network
 * 30x slower.  Large ones use every thread. */
static void
gemm_threads (double flops)
{
  static int current = -1;
  int want = flops < 4e7 ? 1 : gfcg_backend_cpu_get_threads ();
  if (want != current)
    {
      openblas_set_num_threads (want);
      current = want;
    }
}

/* Every matrix product goes through here.  OpenBLAS's thread count is
 * process-wide and changing it while another thread is inside a BLAS call
 * is unsafe (the plug-in times a pack in a worker thread while another may
 * be sampling), so products are serialised: each one uses every core it
 * should anyway. */
GMutex cpu_compute_lock;

/* ---- counters (gfcg bench): time and flops in convolutions (whole ops,
 * im2col included) and in the other matrix products, process-wide --------- */

static GMutex   count_lock;
static guint64  n_conv_ns, n_conv_flops, n_gemm_ns, n_gemm_flops;
static GPrivate in_conv; /* set while a convolution runs: its SGEMMs are its own */

static gint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
count (gboolean conv, gint64 t0, double flops)
{
  guint64 ns = (guint64) MAX (now_ns () - t0, 0);
  g_mutex_lock (&count_lock);
  if (conv)
    n_conv_ns += ns, n_conv_flops += (guint64) flops;
  else
    n_gemm_ns += ns, n_gemm_flops += (guint64) flops;
  g_mutex_unlock (&count_lock);
}

void
gfcg_cpu_take_counters (GfcgCpuCounters *c)
{
  g_mutex_lock (&count_lock);
  c->conv_ns = n_conv_ns;
  c->conv_flops = n_conv_flops;
  c->gemm_ns = n_gemm_ns;
  c->gemm_flops = n_gemm_flops;
  n_conv_ns = n_conv_flops = n_gemm_ns = n_gemm_flops = 0;
  g_mutex_unlock (&count_lock);
}

static double
conv_flops (const GfcgTensor *x, const GfcgTensor *w, int groups, const GfcgTensor *y)
{
  int k = w->ndim == 4 ? w->shape[2] : 1;
  return 2.0 * y->numel * (x->shape[1] / groups) * k * k;
}

void
cpu_sgemm (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
       const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  gint64 t0 = now_ns ();
  g_mutex_lock (&cpu_compute_lock);
#ifdef GFCG_HAVE_ONEDNN
  /* One thread pool in the process: OpenMP's when oneDNN runs the convolutions. */
  if (cpu_onednn_enabled ())
    cpu_onednn_sgemm (ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  else
#endif
    {
      gemm_threads (2.0 * m * n * k);
      cblas_sgemm (CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
  g_mutex_unlock (&cpu_compute_lock);
  if (g_private_get (&in_conv) == NULL)
    count (FALSE, t0, 2.0 * m * n * k);
}

/* The SGEMM rate of this machine: C = A B, n x n, best of reps, on
 * OpenBLAS ("openblas") or oneDNN ("onednn") at n_threads; 0 where the
 * library is not in this build. */
double
gfcg_cpu_sgemm_gflops (const char *lib, int n, int reps, int n_threads)
{
  gsize sz = (gsize) n * n;
  float *a, *b, *c;
  double best = 0.0;
  gboolean dnn = strcmp (lib, "onednn") == 0;
  int saved = gfcg_backend_cpu_get_threads ();

  if (dnn && !cpu_onednn_available ())
    return 0.0;
  a = g_new (float, sz);
  b = g_new (float, sz);
  c = g_new0 (float, sz);
  for (gsize i = 0; i < sz; i++)
    a[i] = b[i] = (float) ((i * 7919) % 1000) / 1000.0f - 0.5f;
  gfcg_backend_cpu_set_threads (n_threads);
  g_mutex_lock (&cpu_compute_lock);
  for (int r = 0; r < reps + 1; r++) /* the first wakes the threads */
    {
      gint64 t0 = now_ns ();
#ifdef GFCG_HAVE_ONEDNN
      if (dnn)
        cpu_onednn_sgemm (CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      else
#endif
        {
          gemm_threads (2.0 * n * n * n);
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                       0.0f, c, n);
        }
      if (r > 0)
        best = MAX (best, 2.0 * n * n * n / (double) MAX (now_ns () - t0, 1));
    }
  g_mutex_unlock (&cpu_compute_lock);
  gfcg_backend_cpu_set_threads (saved == (int) g_get_num_processors () ? 0 : saved);
  g_free (a);
  g_free (b);
  g_free (c);
  return best;
}

/* oneDNN's convolution when it has one for this shape; FALSE: do it here. */
static gboolean
onednn_conv (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
             const GfcgConvParams *p, const GfcgConvPost *post, GfcgTensor *y)
{
#ifdef GFCG_HAVE_ONEDNN
  gboolean done;
  if (!cpu_onednn_enabled ())
    return FALSE;
  g_mutex_lock (&cpu_compute_lock);
  done = cpu_onednn_conv (be, x, w, bias, p, post, y);
  g_mutex_unlock (&cpu_compute_lock);
  return done;
#else
  (void) be, (void) x, (void) w, (void) bias, (void) p, (void) post, (void) y;
  return FALSE;
#endif
}

static gboolean
conv2d_post_body (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                 const GfcgTensor *bias, const GfcgConvParams *p, const GfcgConvPost *post,
                 GfcgTensor *y)
{
  return onednn_conv (be, x, w, bias, p, post, y);
}


/* Unfold output rows oy0..oy1-1 of one image [C, H, W] into columns
 * [C*k*k, (oy1-oy0)*Wo] for a GEMM. */
static void
im2col2 (const float *x, int c, int h, int w, int k, int stride, int pad_t, int pad_l,
         int oy0, int oy1, int wo, float *cols)
{
  int rows = c * k * k, ny = oy1 - oy0;
  for (int r = 0; r < rows; r++)
    {
      int ci = r / (k * k), ky = (r / k) % k, kx = r % k;
      const float *src = x + (gsize) ci * h * w;
      float *dst = cols + (gsize) r * ny * wo;
      /* Output columns whose input column lies inside the image: ox0..ox1-1
       * (the rest is padding).  Copying that span row by row, instead of
       * testing every element, made 512-pixel decoders several times faster. */
      int lo = pad_l - kx, hi = w - 1 + pad_l - kx;
      int ox0 = lo <= 0 ? 0 : (lo + stride - 1) / stride;
      int ox1 = hi < 0 ? 0 : MIN (hi / stride + 1, wo);
      ox0 = MIN (ox0, wo); /* never past the row, whatever the padding */
      ox1 = MAX (ox1, ox0);
      for (int oy = oy0; oy < oy1; oy++)
        {
          int iy = oy * stride - pad_t + ky;
          float *drow = dst + (gsize) (oy - oy0) * wo;
          const float *srow;
          if (iy < 0 || iy >= h)
            {
              memset (drow, 0, wo * sizeof (float));
              continue;
            }
          srow = src + (gsize) iy * w;
          memset (drow, 0, ox0 * sizeof (float));
          if (stride == 1)
            memcpy (drow + ox0, srow + (ox0 - lo), (ox1 - ox0) * sizeof (float));
          else
            for (int ox = ox0; ox < ox1; ox++)
              drow[ox] = srow[ox * stride - lo];
          memset (drow + ox1, 0, (wo - ox1) * sizeof (float));
        }
    }
}

/* The column buffer is filled a band of output rows at a time, at most
 * 64 MiB: unfolding a whole 512-pixel layer of the SD VAE decoder at once
 * (256 channels x 9 x 512^2) would take 2.4 GB. */
#define COLS_BYTES ((gsize) 64 << 20)


static int
band_rows (int kdim, int ho, int wo)
{
  gsize per_row = (gsize) kdim * wo * sizeof (float);
  return (int) MAX (1, MIN ((gsize) ho, COLS_BYTES / per_row));
}

/* yb [o, ho*wo] = wt [o, c*k*k] x unfold(xb), band by band. */
static void
conv_gemm (const float *xb, int c, int h, int w, int k, int stride, int pad_t, int pad_l,
           const float *wt, int o, int ho, int wo, int rows, float *cols, float *yb)
{
  int kdim = c * k * k;
  for (int oy0 = 0; oy0 < ho; oy0 += rows)
    {
      int oy1 = MIN (ho, oy0 + rows), np = (oy1 - oy0) * wo;
      im2col2 (xb, c, h, w, k, stride, pad_t, pad_l, oy0, oy1, wo, cols);
      cpu_sgemm (CblasNoTrans, CblasNoTrans, o, np, kdim, 1.0f, wt, kdim,
                 cols, np, 0.0f, yb + (gsize) oy0 * wo, ho * wo);
    }
}

static void
conv2d_body (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
            int stride, int pad, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1;
  int ho = y->shape[2], wo = y->shape[3];
  int kdim = c * k * k, npix = ho * wo;
  gboolean direct = (k == 1 && stride == 1 && pad == 0);
  int rows = band_rows (kdim, ho, wo);
  GfcgConvParams cp = gfcg_conv_params (stride, pad, 1);
  float *cols;

  if (onednn_conv (be, x, w, bias, &cp, NULL, y))
    return;
  cols = direct ? NULL : g_try_malloc ((gsize) kdim * rows * wo * sizeof (float));
  if (!direct && cols == NULL)
    {
      gfcg_backend_fail (be, GFCG_ERROR_NO_MEMORY, "out of memory for a convolution");
      return;
    }
  for (int b = 0; b < n; b++)
    {
      const float *xb = CF (x) + (gsize) b * c * h * wd;
      float *yb = F (y) + (gsize) b * o * npix;
      if (!direct)
        conv_gemm (xb, c, h, wd, k, stride, pad, pad, CF (w), o, ho, wo, rows, cols, yb);
      else
        {
          cpu_sgemm (CblasNoTrans, CblasNoTrans, o, npix, kdim,
                     1.0f, CF (w), kdim, xb, npix, 0.0f, yb, npix);
        }
      if (bias != NULL)
        for (int oc = 0; oc < o; oc++)
          for (int p = 0; p < npix; p++)
            yb[(gsize) oc * npix + p] += CF (bias)[oc];
    }
  g_free (cols);
}

void
cpu_linear (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
            GfcgTensor *y)
{
  int n = x->shape[0], k = x->shape[1], m = w->shape[0];
  (void) be;
  cpu_sgemm (CblasNoTrans, CblasTrans, n, m, k,
             1.0f, CF (x), k, CF (w), k, 0.0f, F (y), m);
  if (bias != NULL)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m; j++)
        F (y)[(gsize) i * m + j] += CF (bias)[j];
}

/* Each of the n rows of m [n, len] becomes its softmax (max subtracted first). */
static void
softmax_rows (float *m, int n, int len)
{
  for (int i = 0; i < n; i++)
    {
      float *row = m + (gsize) i * len, mx = row[0], sum = 0.0f;
      for (int j = 1; j < len; j++)
        mx = MAX (mx, row[j]);
      for (int j = 0; j < len; j++)
        sum += (row[j] = expf (row[j] - mx));
      for (int j = 0; j < len; j++)
        row[j] /= sum;
    }
}

/* EDM2 attention.  qkv channels are laid out (head, head_dim, 3): channel
 * h*3*D + c*3 + s with s = q, k, v.  Each D-vector of q, k and v is
 * normalised to unit RMS, then y = v softmax(q^T k / sqrt(D))^T per head. */
void
cpu_attention (GfcgBackend *be, const GfcgTensor *qkv, int heads, int dim, float eps,
               GfcgTensor *y)
{
  int n = qkv->shape[0];
  int hw = qkv->shape[2] * qkv->shape[3];
  gsize per = (gsize) dim * hw;
  float *buf = g_try_malloc ((3 * per + (gsize) hw * hw) * sizeof (float));

  if (buf == NULL)
    {
      gfcg_backend_fail (be, GFCG_ERROR_NO_MEMORY, "out of memory for attention (%d pixels)", hw);
      return;
    }
  for (int b = 0; b < n; b++)
    for (int h = 0; h < heads; h++)
      {
        const float *src = CF (qkv) + ((gsize) b * 3 * heads * dim + (gsize) h * 3 * dim) * hw;
        float *q = buf, *k = buf + per, *v = buf + 2 * per, *att = buf + 3 * per;
        float *dst = F (y) + ((gsize) b * heads * dim + (gsize) h * dim) * hw;

        for (int s = 0; s < 3; s++)
          {
            float *out = buf + s * per;
            for (int p = 0; p < hw; p++)
              {
                double ss = 0.0;
                float inv;
                for (int c = 0; c < dim; c++)
                  {
                    float val = src[(gsize) (c * 3 + s) * hw + p];
                    ss += (double) val * val;
                  }
                inv = (float) (1.0 / (eps + sqrt (ss / dim)));
                for (int c = 0; c < dim; c++)
                  out[(gsize) c * hw + p] = src[(gsize) (c * 3 + s) * hw + p] * inv;
              }
          }
        /* att [q, k] = q^T k / sqrt(D) */
        cpu_sgemm (CblasTrans, CblasNoTrans, hw, hw, dim,
                   (float) (1.0 / sqrt (dim)), q, hw, k, hw, 0.0f, att, hw);
        softmax_rows (att, hw, hw);
        /* y [c, q] = sum_k v [c, k] att [q, k] */
        cpu_sgemm (CblasNoTrans, CblasTrans, dim, hw, hw,
                   1.0f, v, hw, att, hw, 0.0f, dst, hw);
      }
  g_free (buf);
}

/* Depthwise k x k convolution, one plane at a time: a GEMM with one output
 * row per group would be all overhead. */
static void
depthwise (const float *x, const float *w, const float *bias, int c, int h, int wd, int k,
           const GfcgConvParams *p, int ho, int wo, float *y)
{
  for (int ch = 0; ch < c; ch++)
    {
      const float *src = x + (gsize) ch * h * wd, *kern = w + (gsize) ch * k * k;
      float *dst = y + (gsize) ch * ho * wo;
      for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
          {
            float acc = bias != NULL ? bias[ch] : 0.0f;
            for (int ky = 0; ky < k; ky++)
              {
                int iy = oy * p->stride - p->pad_top + ky;
                if (iy < 0 || iy >= h)
                  continue;
                for (int kx = 0; kx < k; kx++)
                  {
                    int ix = ox * p->stride - p->pad_left + kx;
                    if (ix >= 0 && ix < wd)
                      acc += kern[ky * k + kx] * src[iy * wd + ix];
                  }
              }
            dst[oy * wo + ox] = acc;
          }
    }
}

static void
conv2d_ex_body (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
               const GfcgConvParams *p, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1, g = p->groups;
  int ho = y->shape[2], wo = y->shape[3];
  int cg = c / g, og = o / g, kdim = cg * k * k, npix = ho * wo, rows;
  float *cols;

  if (onednn_conv (be, x, w, bias, p, NULL, y))
    return;
  if (g == c && g == o)
    {
      for (int b = 0; b < n; b++)
        depthwise (CF (x) + (gsize) b * c * h * wd, CF (w), bias != NULL ? CF (bias) : NULL,
                   c, h, wd, k, p, ho, wo, F (y) + (gsize) b * o * npix);
      return;
    }
  rows = band_rows (kdim, ho, wo);
  cols = g_try_malloc ((gsize) kdim * rows * wo * sizeof (float));
  if (cols == NULL)
    {
      gfcg_backend_fail (be, GFCG_ERROR_NO_MEMORY, "out of memory for a convolution");
      return;
    }
  for (int b = 0; b < n; b++)
    for (int gi = 0; gi < g; gi++)
      {
        const float *xb = CF (x) + ((gsize) b * c + (gsize) gi * cg) * h * wd;
        float *yb = F (y) + ((gsize) b * o + (gsize) gi * og) * npix;
        conv_gemm (xb, cg, h, wd, k, p->stride, p->pad_top, p->pad_left,
                   CF (w) + (gsize) gi * og * kdim, og, ho, wo, rows, cols, yb);
        if (bias != NULL)
          for (int oc = 0; oc < og; oc++)
            for (int i = 0; i < npix; i++)
              yb[(gsize) oc * npix + i] += CF (bias)[gi * og + oc];
      }
  g_free (cols);
}

/* Plain attention (the VAE's mid block): per head, att = scale q^T k over
 * pixel positions, softmax over keys, y = v att^T. */
void
cpu_attention_qkv (GfcgBackend *be, const GfcgTensor *q, const GfcgTensor *k,
                   const GfcgTensor *v, int heads, float scale, GfcgTensor *y)
{
  int c = q->shape[1], dim = c / heads, hw = q->shape[2] * q->shape[3];
  float *att = g_try_malloc ((gsize) hw * hw * sizeof (float));

  if (att == NULL)
    {
      gfcg_backend_fail (be, GFCG_ERROR_NO_MEMORY, "out of memory for attention (%d pixels)", hw);
      return;
    }
  for (int b = 0; b < q->shape[0]; b++)
    for (int h = 0; h < heads; h++)
      {
        gsize off = ((gsize) b * c + (gsize) h * dim) * hw;
        cpu_sgemm (CblasTrans, CblasNoTrans, hw, hw, dim, scale,
                   CF (q) + off, hw, CF (k) + off, hw, 0.0f, att, hw);
        softmax_rows (att, hw, hw);
        /* y [dim, q] = v [dim, key] att^T */
        cpu_sgemm (CblasNoTrans, CblasTrans, dim, hw, hw, 1.0f,
                   CF (v) + off, hw, att, hw, 0.0f, F (y) + off, hw);
      }
  g_free (att);
}

/* ---- the convolution entries: counted, then the work above ---------------- */

void
cpu_conv2d (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
            int stride, int pad, GfcgTensor *y)
{
  gint64 t0 = now_ns ();
  g_private_set (&in_conv, GINT_TO_POINTER (1));
  conv2d_body (be, x, w, bias, stride, pad, y);
  g_private_set (&in_conv, NULL);
  count (TRUE, t0, conv_flops (x, w, 1, y));
}

void
cpu_conv2d_ex (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
               const GfcgConvParams *p, GfcgTensor *y)
{
  gint64 t0 = now_ns ();
  g_private_set (&in_conv, GINT_TO_POINTER (1));
  conv2d_ex_body (be, x, w, bias, p, y);
  g_private_set (&in_conv, NULL);
  count (TRUE, t0, conv_flops (x, w, p->groups, y));
}

gboolean
cpu_conv2d_post (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                 const GfcgTensor *bias, const GfcgConvParams *p, const GfcgConvPost *post,
                 GfcgTensor *y)
{
  gint64 t0 = now_ns ();
  gboolean done;
  g_private_set (&in_conv, GINT_TO_POINTER (1));
  done = conv2d_post_body (be, x, w, bias, p, post, y);
  g_private_set (&in_conv, NULL);
  if (done)
    count (TRUE, t0, conv_flops (x, w, p->groups, y));
  return done;
}
