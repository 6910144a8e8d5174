/* gfcg.cl — the OpenCL backend's kernels (OpenCL C 1.2).
 *
 * One kernel per op of engine/backend.h that is not a matrix product (those
 * go to CLBlast, see backend-opencl.c).  Tensors are float arrays in NCHW
 * order, as on the CPU backend; every kernel is launched with an exact
 * global size (no padding), so there are no bounds checks.  Arithmetic is
 * fp32 throughout; weights stored as fp16 are read with vload_half, which
 * every OpenCL device has (cl_khr_fp16 is not needed). */

/* ---- element-wise ------------------------------------------------------ */

__kernel void
mp_silu (__global const float *x, __global float *y)
{
  size_t i = get_global_id (0);
  float v = x[i];
  y[i] = v / (1.0f + exp (-v)) / 0.596f;
}

__kernel void
relu (__global const float *x, __global float *y)
{
  size_t i = get_global_id (0);
  y[i] = fmax (x[i], 0.0f);
}

__kernel void
axpby (float a, __global const float *x1, float b, __global const float *x2, __global float *y)
{
  size_t i = get_global_id (0);
  y[i] = a * x1[i] + b * x2[i];
}

/* Per-sample coefficients ab = [a[0..n), b[0..n)]; has_x2 = 0: x2 unused. */
__kernel void
axpby_batch (__global const float *ab, int n, __global const float *x1, __global const float *x2,
             int has_x2, int per, __global float *y)
{
  size_t i = get_global_id (0);
  int s = (int) (i / (size_t) per);
  float v = ab[s] * x1[i];
  if (has_x2)
    v += ab[n + s] * x2[i];
  y[i] = v;
}

__kernel void
clip (__global float *x, float lo, float hi)
{
  size_t i = get_global_id (0);
  x[i] = clamp (x[i], lo, hi);
}

/* y[n] = [wa * a[n], wb * b[n]] along channels; sa, sb: floats per sample. */
__kernel void
cat (float wa, __global const float *a, int sa, float wb, __global const float *b, int sb,
     __global float *y)
{
  size_t i = get_global_id (0);
  int n = (int) (i / (size_t) (sa + sb)), r = (int) (i % (size_t) (sa + sb));
  y[i] = r < sa ? wa * a[(size_t) n * sa + r] : wb * b[(size_t) n * sb + (r - sa)];
}

/* Appends a channel of ones: sx floats per sample, hw per plane. */
__kernel void
cat_ones (__global const float *x, int sx, int hw, __global float *y)
{
  size_t i = get_global_id (0);
  int n = (int) (i / (size_t) (sx + hw)), r = (int) (i % (size_t) (sx + hw));
  y[i] = r < sx ? x[(size_t) n * sx + r] : 1.0f;
}

/* Global size (wo, ho, planes). */
__kernel void
resample_up (__global const float *x, int h, int w, __global float *y)
{
  int ox = get_global_id (0), oy = get_global_id (1), p = get_global_id (2);
  int wo = get_global_size (0), ho = get_global_size (1);
  y[((size_t) p * ho + oy) * wo + ox] = x[((size_t) p * h + oy / 2) * w + ox / 2];
}

__kernel void
resample_down (__global const float *x, int h, int w, __global float *y)
{
  int ox = get_global_id (0), oy = get_global_id (1), p = get_global_id (2);
  int wo = get_global_size (0), ho = get_global_size (1);
  __global const float *s = x + ((size_t) p * h + 2 * oy) * w + 2 * ox;
  y[((size_t) p * ho + oy) * wo + ox] = 0.25f * (s[0] + s[1] + s[w] + s[w + 1]);
}

/* y = x * (s[plane] + offset). */
__kernel void
scale_channels (__global const float *x, __global const float *s, float offset, int hw,
                __global float *y)
{
  size_t i = get_global_id (0);
  y[i] = x[i] * (s[i / (size_t) hw] + offset);
}

/* y[i] += bias[(i / hw) % o]. */
__kernel void
add_bias (__global float *y, __global const float *bias, int hw, int o)
{
  size_t i = get_global_id (0);
  y[i] += bias[(i / (size_t) hw) % (size_t) o];
}

/* fp16 storage of weights: unpack to fp32 right before a product. */
__kernel void
half_to_float (__global const half *src, __global float *dst)
{
  size_t i = get_global_id (0);
  dst[i] = vload_half (i, src);
}

__kernel void
float_to_half (__global const float *src, __global half *dst)
{
  size_t i = get_global_id (0);
  vstore_half_rte (src[i], i, dst);
}

/* ---- reductions over channels / planes ------------------------------------ */

/* Global size (hw, n): one pixel's channel vector per work-item. */
__kernel void
pixel_norm (__global const float *x, int c, float eps, __global float *y)
{
  size_t p = get_global_id (0), hw = get_global_size (0), n = get_global_id (1);
  __global const float *src = x + n * c * hw + p;
  __global float *dst = y + n * c * hw + p;
  float ss = 0.0f, inv;
  for (int ch = 0; ch < c; ch++)
    {
      float v = src[ch * hw];
      ss = fma (v, v, ss);
    }
  inv = 1.0f / (eps + sqrt (ss / c));
  for (int ch = 0; ch < c; ch++)
    dst[ch * hw] = src[ch * hw] * inv;
}

__kernel void
avgpool_global (__global const float *x, int hw, __global float *y)
{
  size_t p = get_global_id (0);
  __global const float *src = x + p * hw;
  float s = 0.0f;
  for (int i = 0; i < hw; i++)
    s += src[i];
  y[p] = s / hw;
}

/* ---- group normalisation ---------------------------------------------------
 * Statistics in two small steps so that a group of a million values (the
 * SD VAE decoder at 512x512) is spread over many work-groups: gn_partial
 * gives (count, mean, M2) of each slice of a group, Welford per work-item
 * and Chan's combination over the work-group tree (stable in fp32, unlike
 * sum and sum of squares); gn_stats combines the slices of a group into
 * (mean, 1/sqrt(var + eps)); gn_apply normalises. */

static void
chan_combine (float *n, float *mean, float *m2, float nb, float meanb, float m2b)
{
  float na = *n, nt = na + nb, d;
  if (nb == 0.0f)
    return;
  d = meanb - *mean;
  *mean += d * (nb / nt);
  *m2 += m2b + d * d * (na * nb / nt);
  *n = nt;
}

/* Global size (ls * slices, n*groups), local (ls, 1); len values per group,
 * each slice `chunk` of them.  part [n*groups][slices][3]. */
__kernel void
gn_partial (__global const float *x, int len, int chunk, __global float *part,
            __local float *sn, __local float *sm, __local float *s2)
{
  int lid = get_local_id (0), ls = get_local_size (0), s = get_group_id (0);
  int slices = get_num_groups (0), g = get_global_id (1);
  int start = s * chunk, end = min (len, start + chunk);
  __global const float *src = x + (size_t) g * len;
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  for (int i = start + lid; i < end; i += ls)
    {
      float v = src[i], d = v - mean;
      n += 1.0f;
      mean += d / n;
      m2 = fma (d, v - mean, m2);
    }
  sn[lid] = n;
  sm[lid] = mean;
  s2[lid] = m2;
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int off = ls / 2; off > 0; off >>= 1)
    {
      if (lid < off)
        {
          float an = sn[lid], am = sm[lid], a2 = s2[lid];
          chan_combine (&an, &am, &a2, sn[lid + off], sm[lid + off], s2[lid + off]);
          sn[lid] = an;
          sm[lid] = am;
          s2[lid] = a2;
        }
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  if (lid == 0)
    {
      __global float *o = part + ((size_t) g * slices + s) * 3;
      o[0] = sn[0];
      o[1] = sm[0];
      o[2] = s2[0];
    }
}

/* Global size (n*groups): stats [n*groups][2] = mean, 1/sqrt(var + eps). */
__kernel void
gn_stats (__global const float *part, int slices, float eps, __global float *stats)
{
  int g = get_global_id (0);
  __global const float *p = part + (size_t) g * slices * 3;
  float n = 0.0f, mean = 0.0f, m2 = 0.0f;
  for (int s = 0; s < slices; s++)
    chan_combine (&n, &mean, &m2, p[3 * s], p[3 * s + 1], p[3 * s + 2]);
  stats[2 * g] = mean;
  stats[2 * g + 1] = 1.0f / sqrt (m2 / n + eps);
}

/* y = (x - mean) * gamma * inv + beta (then SiLU); cg channels per group. */
__kernel void
gn_apply (__global const float *x, __global const float *stats, __global const float *gamma,
          __global const float *beta, int c, int cg, int hw, int silu, __global float *y)
{
  size_t i = get_global_id (0);
  int pl = (int) (i / (size_t) hw), ch = pl % c, g = pl / cg;
  float v = (x[i] - stats[2 * g]) * (gamma[ch] * stats[2 * g + 1]) + beta[ch];
  y[i] = silu ? v / (1.0f + exp (-v)) : v;
}

/* ---- element-wise functions of the decoders and classifiers ----------------- */

/* f: 0 SiLU, 1 ReLU6, 2 a*tanh(x/a) (GfcgUnary). */
__kernel void
unary (__global const float *x, int f, float a, __global float *y)
{
  size_t i = get_global_id (0);
  float v = x[i];
  if (f == 0)
    v = v / (1.0f + exp (-v));
  else if (f == 1)
    v = clamp (v, 0.0f, 6.0f);
  else
    v = a * tanh (v / a);
  y[i] = v;
}

/* ss = [scale[0..c), shift[0..c)]. */
__kernel void
channel_affine (__global const float *x, __global const float *ss, int c, int hw,
                __global float *y)
{
  size_t i = get_global_id (0);
  int ch = (int) ((i / (size_t) hw) % (size_t) c);
  y[i] = x[i] * ss[ch] + ss[c + ch];
}

/* Global size (wo, ho, planes); the padding never wins (-inf). */
__kernel void
maxpool (__global const float *x, int h, int w, int k, int stride, int pad, __global float *y)
{
  int ox = get_global_id (0), oy = get_global_id (1), pl = get_global_id (2);
  int wo = get_global_size (0), ho = get_global_size (1);
  __global const float *src = x + (size_t) pl * h * w;
  float m = -INFINITY;
  for (int ky = 0; ky < k; ky++)
    {
      int iy = oy * stride - pad + ky;
      if (iy < 0 || iy >= h)
        continue;
      for (int kx = 0; kx < k; kx++)
        {
          int ix = ox * stride - pad + kx;
          if (ix >= 0 && ix < w)
            m = fmax (m, src[iy * w + ix]);
        }
    }
  y[((size_t) pl * ho + oy) * wo + ox] = m;
}

/* ---- embeddings, classifier input ------------------------------------------ */

/* Global size (c, n). */
__kernel void
fourier (__global const float *t, __global const float *freqs, __global const float *phases,
         __global float *y)
{
  int j = get_global_id (0), i = get_global_id (1), c = get_global_size (0);
  y[i * c + j] = M_SQRT2_F * cos (freqs[j] * t[i] + phases[j]);
}

/* Taps of a triangle (bilinear) filter with half-pixel centres, widened by
 * the scale when shrinking (antialias, as backend-cpu.c's resize_taps):
 * input pixels lo .. lo+n-1 around center, in units 1/inv. */
static void
resize_window (int i, int n_in, int n_out, int *lo, int *n, float *center, float *inv)
{
  float scale = (float) n_in / (float) n_out, support = fmax (scale, 1.0f);
  *center = scale * ((float) i + 0.5f);
  *inv = 1.0f / support;
  *lo = max ((int) (*center - support + 0.5f), 0);
  *n = min ((int) (*center + support + 0.5f), n_in) - *lo;
}

/* Global size (wo, ho, n*c); ms = [mean[0..c), std[0..c)]. */
__kernel void
image_prep (__global const float *x, int c, int h, int w, __global const float *ms,
            __global float *y)
{
  int ox = get_global_id (0), oy = get_global_id (1), pc = get_global_id (2);
  int wo = get_global_size (0), ho = get_global_size (1), ch = pc % c;
  __global const float *src = x + (size_t) pc * h * w;
  int ylo, yn, xlo, xn;
  float yc, yinv, xc, xinv, ysum = 0.0f, xsum = 0.0f, v = 0.0f;

  resize_window (oy, h, ho, &ylo, &yn, &yc, &yinv);
  resize_window (ox, w, wo, &xlo, &xn, &xc, &xinv);
  for (int i = 0; i < xn; i++)
    xsum += fmax (1.0f - fabs (((float) (xlo + i) - xc + 0.5f) * xinv), 0.0f);
  for (int j = 0; j < yn; j++)
    {
      float wy = fmax (1.0f - fabs (((float) (ylo + j) - yc + 0.5f) * yinv), 0.0f), r = 0.0f;
      __global const float *row = src + (size_t) (ylo + j) * w;
      ysum += wy;
      for (int i = 0; i < xn; i++)
        r += fmax (1.0f - fabs (((float) (xlo + i) - xc + 0.5f) * xinv), 0.0f) *
             clamp ((row[xlo + i] + 1.0f) * 0.5f, 0.0f, 1.0f);
      v += wy * r;
    }
  v = (ysum > 0.0f && xsum > 0.0f) ? v / (ysum * xsum) : 0.0f;
  y[((size_t) pc * ho + oy) * wo + ox] = (v - ms[ch]) / ms[c + ch];
}

/* ---- convolution: unfolding for the GEMM ------------------------------------- */

/* Global size (np, c*k*k, nimg): cols [nimg][c*k*k][np] for the output
 * pixels p0 .. p0+np of images n0 .. n0+nimg (a large convolution is
 * unfolded a slice at a time).  Padding per side: only the top and left
 * ones shift the window; the bottom and right ones are already in ho, wo. */
__kernel void
im2col (__global const float *x, int c, int h, int w, int k, int stride, int pad_t, int pad_l,
        int wo, int n0, int p0, __global float *cols)
{
  int pc = get_global_id (0), r = get_global_id (1), n = get_global_id (2);
  int np = get_global_size (0), rows = get_global_size (1), p = p0 + pc;
  int ci = r / (k * k), ky = (r / k) % k, kx = r % k;
  int iy = (p / wo) * stride - pad_t + ky, ix = (p % wo) * stride - pad_l + kx;
  float v = 0.0f;
  if (iy >= 0 && iy < h && ix >= 0 && ix < w)
    v = x[(((size_t) (n0 + n) * c + ci) * h + iy) * w + ix];
  cols[((size_t) n * rows + r) * np + pc] = v;
}

/* Depthwise convolution (groups == c == o): a GEMM per channel would have a
 * single output row, so each work-item sums its k x k window directly.
 * Global size (wo, ho, n*c); bias unused when has_bias is 0. */
__kernel void
conv_depthwise (__global const float *x, __global const float *wt, __global const float *bias,
                int has_bias, int c, int h, int w, int k, int stride, int pad_t, int pad_l,
                __global float *y)
{
  int ox = get_global_id (0), oy = get_global_id (1), pl = get_global_id (2);
  int wo = get_global_size (0), ho = get_global_size (1), ch = pl % c;
  __global const float *src = x + (size_t) pl * h * w, *kern = wt + (size_t) ch * k * k;
  float acc = has_bias ? bias[ch] : 0.0f;
  for (int ky = 0; ky < k; ky++)
    {
      int iy = oy * stride - pad_t + ky;
      if (iy < 0 || iy >= h)
        continue;
      for (int kx = 0; kx < k; kx++)
        {
          int ix = ox * stride - pad_l + kx;
          if (ix >= 0 && ix < w)
            acc = fma (kern[ky * k + kx], src[iy * w + ix], acc);
        }
    }
  y[((size_t) pl * ho + oy) * wo + ox] = acc;
}

/* ---- attention ----------------------------------------------------------- */

/* qkv [n, heads*dim*3, hw] with channel h*3*dim + c*3 + s -> out [3][n*heads][dim][hw],
 * each dim-vector normalised to unit RMS.  Global size (hw, 3, n*heads). */
__kernel void
attn_norm (__global const float *qkv, int dim, float eps, __global float *out)
{
  int p = get_global_id (0), s = get_global_id (1), b = get_global_id (2);
  int hw = get_global_size (0), nb = get_global_size (2);
  __global const float *src = qkv + (size_t) b * 3 * dim * hw + (size_t) s * hw + p;
  __global float *dst = out + ((size_t) s * nb + b) * dim * hw + p;
  float ss = 0.0f, inv;
  for (int c = 0; c < dim; c++)
    {
      float v = src[(size_t) c * 3 * hw];
      ss = fma (v, v, ss);
    }
  inv = 1.0f / (eps + sqrt (ss / dim));
  for (int c = 0; c < dim; c++)
    dst[(size_t) c * hw] = src[(size_t) c * 3 * hw] * inv;
}

/* Row softmax of att [rows][cols], in place: one work-group per row. */
__kernel void
softmax_rows (__global float *att, int cols, __local float *scratch)
{
  int row = get_group_id (0), lid = get_local_id (0), ls = get_local_size (0);
  __global float *r = att + (size_t) row * cols;
  float mx = -INFINITY, sum = 0.0f;
  for (int j = lid; j < cols; j += ls)
    mx = fmax (mx, r[j]);
  scratch[lid] = mx;
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int s = ls / 2; s > 0; s >>= 1)
    {
      if (lid < s)
        scratch[lid] = fmax (scratch[lid], scratch[lid + s]);
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  mx = scratch[0];
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int j = lid; j < cols; j += ls)
    {
      float e = exp (r[j] - mx);
      r[j] = e;
      sum += e;
    }
  scratch[lid] = sum;
  barrier (CLK_LOCAL_MEM_FENCE);
  for (int s = ls / 2; s > 0; s >>= 1)
    {
      if (lid < s)
        scratch[lid] += scratch[lid + s];
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  sum = scratch[0];
  for (int j = lid; j < cols; j += ls)
    r[j] /= sum;
}

/* ---- a plain tiled SGEMM (used when CLBlast is absent or slower) -------------
 * C [m, n] = alpha * op(A) op(B) + beta * C, row-major, per batch b with
 * offsets and strides; op(A)[i, l] = ta ? A[l*lda + i] : A[i*lda + l], likewise op(B)[l, j].
 * Global size (ceil(n, TS), ceil(m, TS), batch), local (TS, TS). */
#define TS 16
__kernel void
gemm_tiled (int m, int n, int k, float alpha, int ta, int tb,
            __global const float *A, int oa, int lda, int sa,
            __global const float *B, int ob, int ldb, int sb, float beta,
            __global float *C, int oc, int ldc, int sc)
{
  __local float As[TS][TS + 1], Bs[TS][TS + 1];
  int tx = get_local_id (0), ty = get_local_id (1);
  int j = get_group_id (0) * TS + tx, i = get_group_id (1) * TS + ty, bt = get_global_id (2);
  __global const float *a = A + oa + (size_t) bt * sa, *b = B + ob + (size_t) bt * sb;
  float acc = 0.0f;
  for (int l0 = 0; l0 < k; l0 += TS)
    {
      int la = l0 + tx, lb = l0 + ty, ia = get_group_id (1) * TS + ty,
          jb = get_group_id (0) * TS + tx;
      As[ty][tx] = (ia < m && la < k) ? (ta ? a[(size_t) la * lda + ia] : a[(size_t) ia * lda + la]) : 0.0f;
      Bs[ty][tx] = (lb < k && jb < n) ? (tb ? b[(size_t) jb * ldb + lb] : b[(size_t) lb * ldb + jb]) : 0.0f;
      barrier (CLK_LOCAL_MEM_FENCE);
      for (int l = 0; l < TS; l++)
        acc = fma (As[ty][l], Bs[l][tx], acc);
      barrier (CLK_LOCAL_MEM_FENCE);
    }
  if (i < m && j < n)
    {
      __global float *c = C + oc + (size_t) bt * sc + (size_t) i * ldc + j;
      *c = alpha * acc + (beta != 0.0f ? beta * *c : 0.0f);
    }
}
