/* backend-cpu.c — the reference backend: plain C, with OpenBLAS (and its
 * threads) for the matrix products, where nearly all the time goes.  The
 * element-wise ops stay single-threaded on purpose: an OpenMP team beside
 * OpenBLAS's own threads made small networks 200x slower on a busy machine
 * (both spin while waiting).  Tensors are float arrays in NCHW order. */
#include "backend.h"
#include "gfcg/gfcg.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

static int max_threads; /* 0 = OpenBLAS's own choice (all cores) */

/* Small products run on one thread: waking OpenBLAS's pool costs more than
 * they do, and on a loaded machine its spinning threads made a tiny network
 * 30x slower.  Large ones use every thread. */
static void
gemm_threads (double flops)
{
  static int current = -1;
  int want = flops < 4e7 ? 1 : (max_threads > 0 ? max_threads : (int) g_get_num_processors ());
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
static GMutex gemm_lock;

static void
sgemm (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
       const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  g_mutex_lock (&gemm_lock);
  gemm_threads (2.0 * m * n * k);
  cblas_sgemm (CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  g_mutex_unlock (&gemm_lock);
}

#define F(t) ((float *) (t)->data)
#define CF(t) ((const float *) (t)->data)



static gboolean
cpu_alloc (GfcgBackend *be, GfcgTensor *t)
{
  (void) be;
  t->data = g_try_malloc (t->numel * sizeof (float));
  return t->data != NULL;
}

static void
cpu_release (GfcgBackend *be, GfcgTensor *t)
{
  (void) be;
  g_free (t->data);
}

static void
cpu_upload (GfcgBackend *be, GfcgTensor *t, const float *src)
{
  (void) be;
  memcpy (t->data, src, t->numel * sizeof (float));
}

static void
cpu_download (GfcgBackend *be, const GfcgTensor *t, float *dst)
{
  (void) be;
  memcpy (dst, t->data, t->numel * sizeof (float));
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
      sgemm (CblasNoTrans, CblasNoTrans, o, np, kdim, 1.0f, wt, kdim,
                   cols, np, 0.0f, yb + (gsize) oy0 * wo, ho * wo);
    }
}

static void
cpu_conv2d (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
            int stride, int pad, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1;
  int ho = y->shape[2], wo = y->shape[3];
  int kdim = c * k * k, npix = ho * wo;
  gboolean direct = (k == 1 && stride == 1 && pad == 0);
  int rows = band_rows (kdim, ho, wo);
  float *cols = direct ? NULL : g_try_malloc ((gsize) kdim * rows * wo * sizeof (float));

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
          sgemm (CblasNoTrans, CblasNoTrans, o, npix, kdim,
                       1.0f, CF (w), kdim, xb, npix, 0.0f, yb, npix);
        }
      if (bias != NULL)
        for (int oc = 0; oc < o; oc++)
          for (int p = 0; p < npix; p++)
            yb[(gsize) oc * npix + p] += CF (bias)[oc];
    }
  g_free (cols);
}

static void
cpu_linear (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
            GfcgTensor *y)
{
  int n = x->shape[0], k = x->shape[1], m = w->shape[0];
  (void) be;
  sgemm (CblasNoTrans, CblasTrans, n, m, k,
               1.0f, CF (x), k, CF (w), k, 0.0f, F (y), m);
  if (bias != NULL)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m; j++)
        F (y)[(gsize) i * m + j] += CF (bias)[j];
}

static void
cpu_pixel_norm (GfcgBackend *be, const GfcgTensor *x, float eps, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1];
  gsize hw = (gsize) x->shape[2] * x->shape[3];
  (void) be;
  for (gsize i = 0; i < n * hw; i++)
    {
      gsize b = i / hw, p = i % hw;
      const float *src = CF (x) + b * c * hw + p;
      float *dst = F (y) + b * c * hw + p;
      double ss = 0.0;
      float inv;
      for (int ch = 0; ch < c; ch++)
        ss += (double) src[ch * hw] * src[ch * hw];
      inv = (float) (1.0 / (eps + sqrt (ss / c)));
      for (int ch = 0; ch < c; ch++)
        dst[ch * hw] = src[ch * hw] * inv;
    }
}

static void
cpu_mp_silu (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  (void) be;
  for (gsize i = 0; i < x->numel; i++)
    {
      float v = CF (x)[i];
      F (y)[i] = v / (1.0f + expf (-v)) / 0.596f;
    }
}

static void
cpu_relu (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  (void) be;
  for (gsize i = 0; i < x->numel; i++)
    F (y)[i] = CF (x)[i] > 0.0f ? CF (x)[i] : 0.0f;
}

static void
cpu_axpby (GfcgBackend *be, float a, const GfcgTensor *x1, float b, const GfcgTensor *x2,
           GfcgTensor *y)
{
  (void) be;
  for (gsize i = 0; i < x1->numel; i++)
    F (y)[i] = a * CF (x1)[i] + b * CF (x2)[i];
}

static void
cpu_axpby_batch (GfcgBackend *be, const float *a, const GfcgTensor *x1, const float *b,
                 const GfcgTensor *x2, GfcgTensor *y)
{
  gsize per = x1->numel / x1->shape[0];
  (void) be;
  for (int n = 0; n < x1->shape[0]; n++)
    for (gsize i = n * per; i < (n + 1) * per; i++)
      F (y)[i] = a[n] * CF (x1)[i] + (x2 != NULL ? b[n] * CF (x2)[i] : 0.0f);
}

static void
cpu_cat (GfcgBackend *be, float wa, const GfcgTensor *a, float wb, const GfcgTensor *b,
         GfcgTensor *y)
{
  gsize hw = (gsize) a->shape[2] * a->shape[3];
  gsize sa = a->shape[1] * hw, sb = b->shape[1] * hw;
  (void) be;
  for (int n = 0; n < a->shape[0]; n++)
    {
      float *dst = F (y) + n * (sa + sb);
      for (gsize i = 0; i < sa; i++)
        dst[i] = wa * CF (a)[n * sa + i];
      for (gsize i = 0; i < sb; i++)
        dst[sa + i] = wb * CF (b)[n * sb + i];
    }
}

static void
cpu_cat_ones (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  gsize hw = (gsize) x->shape[2] * x->shape[3], sx = x->shape[1] * hw;
  (void) be;
  for (int n = 0; n < x->shape[0]; n++)
    {
      float *dst = F (y) + n * (sx + hw);
      memcpy (dst, CF (x) + n * sx, sx * sizeof (float));
      for (gsize i = 0; i < hw; i++)
        dst[sx + i] = 1.0f;
    }
}

static void
cpu_resample (GfcgBackend *be, const GfcgTensor *x, GfcgResample mode, GfcgTensor *y)
{
  int planes = x->shape[0] * x->shape[1];
  int h = x->shape[2], w = x->shape[3], ho = y->shape[2], wo = y->shape[3];
  (void) be;
  for (int p = 0; p < planes; p++)
    {
      const float *src = CF (x) + (gsize) p * h * w;
      float *dst = F (y) + (gsize) p * ho * wo;
      for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
          {
            if (mode == GFCG_RESAMPLE_UP) /* nearest 2x */
              dst[oy * wo + ox] = src[(oy / 2) * w + ox / 2];
            else /* 2x2 box filter, stride 2 */
              {
                const float *s = src + (2 * oy) * w + 2 * ox;
                dst[oy * wo + ox] = 0.25f * (s[0] + s[1] + s[w] + s[w + 1]);
              }
          }
    }
}

static void
cpu_scale_channels (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *s, float offset,
                    GfcgTensor *y)
{
  gsize hw = (gsize) x->shape[2] * x->shape[3];
  int planes = x->shape[0] * x->shape[1];
  (void) be;
  for (int p = 0; p < planes; p++)
    {
      float f = CF (s)[p] + offset;
      for (gsize i = 0; i < hw; i++)
        F (y)[p * hw + i] = CF (x)[p * hw + i] * f;
    }
}

static void
cpu_clip (GfcgBackend *be, GfcgTensor *x, float lo, float hi)
{
  (void) be;
  for (gsize i = 0; i < x->numel; i++)
    F (x)[i] = CLAMP (F (x)[i], lo, hi);
}

/* EDM2 attention.  qkv channels are laid out (head, head_dim, 3): channel
 * h*3*D + c*3 + s with s = q, k, v.  Each D-vector of q, k and v is
 * normalised to unit RMS, then y = v softmax(q^T k / sqrt(D))^T per head. */
static void
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
        sgemm (CblasTrans, CblasNoTrans, hw, hw, dim,
                     (float) (1.0 / sqrt (dim)), q, hw, k, hw, 0.0f, att, hw);
        for (int i = 0; i < hw; i++)
          {
            float *row = att + (gsize) i * hw, mx = row[0], sum = 0.0f;
            for (int j = 1; j < hw; j++)
              mx = MAX (mx, row[j]);
            for (int j = 0; j < hw; j++)
              sum += (row[j] = expf (row[j] - mx));
            for (int j = 0; j < hw; j++)
              row[j] /= sum;
          }
        /* y [c, q] = sum_k v [c, k] att [q, k] */
        sgemm (CblasNoTrans, CblasTrans, dim, hw, hw,
                     1.0f, v, hw, att, hw, 0.0f, dst, hw);
      }
  g_free (buf);
}

static void
cpu_fourier (GfcgBackend *be, const float *t, const GfcgTensor *freqs, const GfcgTensor *phases,
             GfcgTensor *y)
{
  int n = y->shape[0], c = y->shape[1];
  (void) be;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < c; j++)
      F (y)[i * c + j] = (float) (G_SQRT2 * cos ((double) CF (freqs)[j] * t[i] + CF (phases)[j]));
}

static void
cpu_avgpool_global (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  gsize hw = (gsize) x->shape[2] * x->shape[3];
  (void) be;
  for (gsize p = 0; p < (gsize) x->shape[0] * x->shape[1]; p++)
    {
      double s = 0.0;
      for (gsize i = 0; i < hw; i++)
        s += CF (x)[p * hw + i];
      F (y)[p] = (float) (s / hw);
    }
}

/* The taps of output pixel i when resizing n_in -> n_out with a triangle
 * (bilinear) filter and half-pixel centres, widened by the scale when
 * shrinking so that every input pixel counts (PIL's and PyTorch's
 * antialias=True).  Enlarging, the taps are exactly align_corners=False
 * bilinear interpolation.  Writes *first and up to max_taps normalised
 * weights; returns their number. */
static int
resize_taps (int i, int n_in, int n_out, int max_taps, int *first, float *w)
{
  double scale = (double) n_in / n_out, support = MAX (scale, 1.0);
  double inv = 1.0 / support, center = scale * (i + 0.5), total = 0.0;
  int lo = MAX ((int) (center - support + 0.5), 0);
  int n = MIN ((int) (center + support + 0.5), n_in) - lo;

  n = MIN (n, max_taps);
  for (int j = 0; j < n; j++)
    {
      double t = fabs ((j + lo - center + 0.5) * inv);
      w[j] = (float) (t < 1.0 ? 1.0 - t : 0.0);
      total += w[j];
    }
  for (int j = 0; j < n; j++)
    w[j] = total > 0.0 ? (float) (w[j] / total) : 0.0f;
  *first = lo;
  return n;
}

static int
max_taps (int n_in, int n_out)
{
  return (int) ceil (2.0 * MAX ((double) n_in / n_out, 1.0)) + 2;
}

static void
cpu_image_prep (GfcgBackend *be, const GfcgTensor *x, const float *mean, const float *std,
                GfcgTensor *y)
{
  int c = x->shape[1], h = x->shape[2], w = x->shape[3], ho = y->shape[2], wo = y->shape[3];
  int ty = max_taps (h, ho), tx = max_taps (w, wo);
  int *y0 = g_new (int, ho), *x0 = g_new (int, wo), *ny = g_new (int, ho), *nx = g_new (int, wo);
  float *wy = g_new (float, (gsize) ho * ty), *wx = g_new (float, (gsize) wo * tx);
  (void) be;

  for (int o = 0; o < ho; o++)
    ny[o] = resize_taps (o, h, ho, ty, &y0[o], wy + (gsize) o * ty);
  for (int o = 0; o < wo; o++)
    nx[o] = resize_taps (o, w, wo, tx, &x0[o], wx + (gsize) o * tx);
  for (int b = 0; b < x->shape[0]; b++)
    for (int ch = 0; ch < c; ch++)
      {
        const float *src = CF (x) + ((gsize) b * c + ch) * h * w;
        float *dst = F (y) + ((gsize) b * c + ch) * ho * wo;
        for (int oy = 0; oy < ho; oy++)
          for (int ox = 0; ox < wo; ox++)
            {
              float v = 0.0f;
              for (int j = 0; j < ny[oy]; j++)
                {
                  const float *row = src + (gsize) (y0[oy] + j) * w + x0[ox];
                  float r = 0.0f;
                  for (int i = 0; i < nx[ox]; i++)
                    r += wx[(gsize) ox * tx + i] * CLAMP ((row[i] + 1.0f) * 0.5f, 0.0f, 1.0f);
                  v += wy[(gsize) oy * ty + j] * r;
                }
              dst[oy * wo + ox] = (v - mean[ch]) / std[ch];
            }
      }
  g_free (y0);
  g_free (x0);
  g_free (ny);
  g_free (nx);
  g_free (wy);
  g_free (wx);
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
cpu_conv2d_ex (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w, const GfcgTensor *bias,
               const GfcgConvParams *p, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1, g = p->groups;
  int ho = y->shape[2], wo = y->shape[3];
  int cg = c / g, og = o / g, kdim = cg * k * k, npix = ho * wo, rows;
  float *cols;

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

static void
cpu_group_norm (GfcgBackend *be, const GfcgTensor *x, int groups, float eps,
                const GfcgTensor *gamma, const GfcgTensor *beta, gboolean silu, GfcgTensor *y)
{
  int c = x->shape[1], cg = c / groups;
  gsize hw = (gsize) x->shape[2] * x->shape[3], len = cg * hw;
  (void) be;
  for (int b = 0; b < x->shape[0]; b++)
    for (int g = 0; g < groups; g++)
      {
        gsize off = ((gsize) b * c + (gsize) g * cg) * hw;
        const float *src = CF (x) + off;
        float *dst = F (y) + off;
        double sum = 0.0, ss = 0.0, mean, var;
        float inv;
        for (gsize i = 0; i < len; i++)
          sum += src[i];
        mean = sum / len;
        for (gsize i = 0; i < len; i++)
          ss += (src[i] - mean) * (src[i] - mean);
        var = ss / len;
        inv = (float) (1.0 / sqrt (var + eps));
        for (int ch = 0; ch < cg; ch++)
          {
            float ga = CF (gamma)[g * cg + ch] * inv, be_ = CF (beta)[g * cg + ch];
            float mu = (float) mean;
            for (gsize i = 0; i < hw; i++)
              {
                float v = (src[ch * hw + i] - mu) * ga + be_;
                dst[ch * hw + i] = silu ? v / (1.0f + expf (-v)) : v;
              }
          }
      }
}

static void
cpu_unary (GfcgBackend *be, const GfcgTensor *x, GfcgUnary f, float a, GfcgTensor *y)
{
  (void) be;
  for (gsize i = 0; i < x->numel; i++)
    {
      float v = CF (x)[i];
      switch (f)
        {
        case GFCG_UNARY_SILU:  v = v / (1.0f + expf (-v)); break;
        case GFCG_UNARY_RELU6: v = CLAMP (v, 0.0f, 6.0f); break;
        case GFCG_UNARY_TANH:  v = a * tanhf (v / a); break;
        }
      F (y)[i] = v;
    }
}

static void
cpu_maxpool (GfcgBackend *be, const GfcgTensor *x, int k, int stride, int pad, GfcgTensor *y)
{
  int h = x->shape[2], w = x->shape[3], ho = y->shape[2], wo = y->shape[3];
  (void) be;
  for (int pl = 0; pl < x->shape[0] * x->shape[1]; pl++)
    {
      const float *src = CF (x) + (gsize) pl * h * w;
      float *dst = F (y) + (gsize) pl * ho * wo;
      for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
          {
            float m = -INFINITY;
            for (int ky = 0; ky < k; ky++)
              for (int kx = 0; kx < k; kx++)
                {
                  int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                  if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                    m = MAX (m, src[iy * w + ix]);
                }
            dst[oy * wo + ox] = m;
          }
    }
}

static void
cpu_channel_affine (GfcgBackend *be, const GfcgTensor *x, const float *scale, const float *shift,
                    GfcgTensor *y)
{
  int c = x->shape[1];
  gsize hw = (gsize) x->shape[2] * x->shape[3];
  (void) be;
  for (int pl = 0; pl < x->shape[0] * c; pl++)
    for (gsize i = 0; i < hw; i++)
      F (y)[pl * hw + i] = CF (x)[pl * hw + i] * scale[pl % c] + shift[pl % c];
}

/* Plain attention (the VAE's mid block): per head, att = scale q^T k over
 * pixel positions, softmax over keys, y = v att^T. */
static void
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
        sgemm (CblasTrans, CblasNoTrans, hw, hw, dim, scale,
                     CF (q) + off, hw, CF (k) + off, hw, 0.0f, att, hw);
        for (int i = 0; i < hw; i++)
          {
            float *row = att + (gsize) i * hw, mx = row[0], sum = 0.0f;
            for (int j = 1; j < hw; j++)
              mx = MAX (mx, row[j]);
            for (int j = 0; j < hw; j++)
              sum += (row[j] = expf (row[j] - mx));
            for (int j = 0; j < hw; j++)
              row[j] /= sum;
          }
        /* y [dim, q] = v [dim, key] att^T */
        sgemm (CblasNoTrans, CblasTrans, dim, hw, hw, 1.0f,
                     CF (v) + off, hw, att, hw, 0.0f, F (y) + off, hw);
      }
  g_free (att);
}

static char *
cpu_describe (GfcgBackend *be)
{
  int n = gfcg_backend_cpu_get_threads ();
  return g_strdup_printf ("%s (OpenBLAS, %d thread%s)", be->ops->name, n, n == 1 ? "" : "s");
}

static const GfcgBackendOps cpu_ops = {
  .name = "cpu",
  .describe = cpu_describe,
  .alloc = cpu_alloc,
  .release = cpu_release,
  .upload = cpu_upload,
  .download = cpu_download,
  .conv2d = cpu_conv2d,
  .linear = cpu_linear,
  .pixel_norm = cpu_pixel_norm,
  .mp_silu = cpu_mp_silu,
  .relu = cpu_relu,
  .axpby = cpu_axpby,
  .axpby_batch = cpu_axpby_batch,
  .cat = cpu_cat,
  .cat_ones = cpu_cat_ones,
  .resample = cpu_resample,
  .scale_channels = cpu_scale_channels,
  .clip = cpu_clip,
  .attention = cpu_attention,
  .fourier = cpu_fourier,
  .avgpool_global = cpu_avgpool_global,
  .image_prep = cpu_image_prep,
  .conv2d_ex = cpu_conv2d_ex,
  .group_norm = cpu_group_norm,
  .unary = cpu_unary,
  .maxpool = cpu_maxpool,
  .channel_affine = cpu_channel_affine,
  .attention_qkv = cpu_attention_qkv,
};

const GfcgBackendOps *
gfcg_backend_cpu_ops (void)
{
  return &cpu_ops;
}

void
gfcg_backend_cpu_set_threads (int n_threads)
{
  max_threads = MAX (n_threads, 0);
}

int
gfcg_backend_cpu_get_threads (void)
{
  return max_threads > 0 ? max_threads : (int) g_get_num_processors ();
}

GfcgBackend *
gfcg_backend_cpu_new (int n_threads)
{
  GfcgBackend *be = g_new0 (GfcgBackend, 1);
  be->ops = &cpu_ops;
  gfcg_backend_cpu_set_threads (n_threads);
  return be;
}
