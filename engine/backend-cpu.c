/* backend-cpu.c — the reference backend: plain C, with OpenBLAS or oneDNN
 * (and their threads) for the convolutions and matrix products, where
 * nearly all the time goes.  The element-wise ops are single-threaded on
 * the OpenBLAS path on purpose: an OpenMP team beside OpenBLAS's own
 * threads made small networks 200x slower on a busy machine (both spin
 * while waiting).  On the oneDNN path every product runs on OpenMP, and
 * element-wise ops of 4M values or more share that one team (CPU_PAR_FOR;
 * GFCG_CPU_PAR_MIN, see cpu-onednn.c).  Tensors are float arrays in NCHW
 * order. */
#include "cpu-private.h"

#include <math.h>
#include <string.h>

static int max_threads; /* 0 = OpenBLAS's own choice (all cores) */




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


static void
cpu_pixel_norm (GfcgBackend *be, const GfcgTensor *x, float eps, GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1];
  gsize hw = (gsize) x->shape[2] * x->shape[3];
  int nt = cpu_par_threads ((gsize) n * hw * c);
  (void) be;
  CPU_PAR_FOR
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
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < x->numel; i++)
    {
      float v = CF (x)[i];
      F (y)[i] = v / (1.0f + expf (-v)) / 0.596f;
    }
}

static void
cpu_relu (GfcgBackend *be, const GfcgTensor *x, GfcgTensor *y)
{
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < x->numel; i++)
    F (y)[i] = CF (x)[i] > 0.0f ? CF (x)[i] : 0.0f;
}

static void
cpu_axpby (GfcgBackend *be, float a, const GfcgTensor *x1, float b, const GfcgTensor *x2,
           GfcgTensor *y)
{
  int nt = cpu_par_threads (x1->numel);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < x1->numel; i++)
    F (y)[i] = a * CF (x1)[i] + b * CF (x2)[i];
}

static void
cpu_axpby_batch (GfcgBackend *be, const float *a, const GfcgTensor *x1, const float *b,
                 const GfcgTensor *x2, GfcgTensor *y)
{
  gsize per = x1->numel / x1->shape[0];
  int nt = cpu_par_threads (x1->numel);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < x1->numel; i++)
    {
      gsize n = i / per;
      F (y)[i] = a[n] * CF (x1)[i] + (x2 != NULL ? b[n] * CF (x2)[i] : 0.0f);
    }
}

static void
cpu_cat (GfcgBackend *be, float wa, const GfcgTensor *a, float wb, const GfcgTensor *b,
         GfcgTensor *y)
{
  gsize hw = (gsize) a->shape[2] * a->shape[3];
  gsize sa = a->shape[1] * hw, sb = b->shape[1] * hw, total = a->shape[0] * (sa + sb);
  int nt = cpu_par_threads (total);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < total; i++)
    {
      gsize n = i / (sa + sb), j = i % (sa + sb);
      F (y)[i] = j < sa ? wa * CF (a)[n * sa + j] : wb * CF (b)[n * sb + j - sa];
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
  int nt = cpu_par_threads (y->numel);
  (void) be;
  CPU_PAR_FOR
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
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
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
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
  for (gsize i = 0; i < x->numel; i++)
    F (x)[i] = CLAMP (F (x)[i], lo, hi);
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

static void
cpu_group_norm (GfcgBackend *be, const GfcgTensor *x, int groups, float eps,
                const GfcgTensor *gamma, const GfcgTensor *beta, gboolean silu, GfcgTensor *y)
{
  int c = x->shape[1], cg = c / groups;
  gsize hw = (gsize) x->shape[2] * x->shape[3], len = cg * hw;
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
  for (int bg = 0; bg < x->shape[0] * groups; bg++)
    {
      int b = bg / groups, g = bg % groups;
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
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
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
  int nt = cpu_par_threads (y->numel * k * k);
  (void) be;
  CPU_PAR_FOR
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
  int nt = cpu_par_threads (x->numel);
  (void) be;
  CPU_PAR_FOR
  for (int pl = 0; pl < x->shape[0] * c; pl++)
    for (gsize i = 0; i < hw; i++)
      F (y)[pl * hw + i] = CF (x)[pl * hw + i] * scale[pl % c] + shift[pl % c];
}

static char *
cpu_describe (GfcgBackend *be)
{
  int n = gfcg_backend_cpu_get_threads ();
#ifdef GFCG_HAVE_ONEDNN
  if (cpu_onednn_enabled ())
    {
      char *v = cpu_onednn_version ();
      char *d = g_strdup_printf ("%s (oneDNN %s%s, %d thread%s)", be->ops->name, v,
                                 cpu_bf16_wanted (be) ? ", bf16 convolutions" : "", n,
                                 n == 1 ? "" : "s");
      g_free (v);
      return d;
    }
#endif
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
  .conv2d_post = cpu_conv2d_post,
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

const char *
gfcg_cpu_conv_path (void)
{
  return cpu_onednn_enabled () ? "onednn" : "blas";
}

int
gfcg_cpu_threads (void)
{
  return gfcg_backend_cpu_get_threads ();
}
