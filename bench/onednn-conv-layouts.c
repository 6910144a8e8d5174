/* bench/onednn-conv-layouts.c — which activation layout should the CPU
 * backend give oneDNN's convolutions?  For the network shapes the engine runs
 * (EDM2-XS, SD VAE and TAESD at 512, ResNet-50), at batch 1 and 8, with
 * weights in the layout the primitive asks for ("any", reordered once):
 *
 *   nchw     plain NCHW source and destination (the engine's tensors as they are)
 *   any      the layout the primitive picks, with reorders from and to NCHW
 *   nChw16c  16-channel blocks, with reorders from and to NCHW
 *   nhwc     channels last, with reorders
 *
 * prints the implementation, the time per convolution (reorders included)
 * and the largest error against a float64 direct convolution relative to
 * max |y| (checked on a subset of outputs for the large shapes).  Issue 10
 * found brgconv_1x1:avx512_core wrong for NHWC at batch >= 8 on the AMD EPYC
 * build hosts (bench/onednn-1x1-check.c).
 *
 *   tools/devenv sh -c 'cc -O2 bench/onednn-conv-layouts.c -ldnnl -lgomp -lm -o /tmp/l && /tmp/l [THREADS]'
 */
#include <oneapi/dnnl/dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { printf ("%s -> %d\n", #x, s_); exit (1); } } while (0)

static dnnl_engine_t eng;
static dnnl_stream_t st;

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void
reorder (const_dnnl_memory_desc_t from, void *a, const_dnnl_memory_desc_t to, void *b)
{
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t p;
  dnnl_memory_t ma, mb;
  CHK (dnnl_reorder_primitive_desc_create (&pd, from, eng, to, eng, NULL));
  CHK (dnnl_primitive_create (&p, pd));
  CHK (dnnl_memory_create (&ma, from, eng, a));
  CHK (dnnl_memory_create (&mb, to, eng, b));
  dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, ma }, { DNNL_ARG_TO, mb } };
  CHK (dnnl_primitive_execute (p, st, 2, args));
  CHK (dnnl_stream_wait (st));
  dnnl_memory_destroy (ma);
  dnnl_memory_destroy (mb);
  dnnl_primitive_destroy (p);
  dnnl_primitive_desc_destroy (pd);
}

/* One convolution shape in one layout: prints a line. */
static void
run (const char *name, int n, int c, int o, int h, int k, int stride, dnnl_format_tag_t tag)
{
  int pad = k / 2, ho = (h + 2 * pad - k) / stride + 1;
  dnnl_dims_t sd = { n, c, h, h }, wd = { o, c, k, k }, bd = { o }, dd = { n, o, ho, ho };
  dnnl_dims_t strides = { stride, stride }, pads = { pad, pad };
  dnnl_memory_desc_t usrc, uwei, udst, bmd, csrc, cwei, cdst;
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t conv;
  const char *impl;
  size_t ns = (size_t) n * c * h * h, nw = (size_t) o * c * k * k, nd = (size_t) n * o * ho * ho;
  float *x = malloc (ns * 4), *w = malloc (nw * 4), *b = malloc (o * 4), *y = malloc (nd * 4);
  const_dnnl_memory_desc_t psrc, pwei, pdst;
  void *bs, *bw, *bdst;
  double best = 1e30, maxe = 0, maxy = 0;

  srand (1);
  for (size_t i = 0; i < ns; i++) x[i] = rand () / (float) RAND_MAX - 0.5f;
  for (size_t i = 0; i < nw; i++) w[i] = (rand () / (float) RAND_MAX - 0.5f) / sqrtf (c * k * k);
  for (int i = 0; i < o; i++) b[i] = 0.1f * i / o;
  CHK (dnnl_memory_desc_create_with_tag (&usrc, 4, sd, dnnl_f32, dnnl_nchw));
  CHK (dnnl_memory_desc_create_with_tag (&uwei, 4, wd, dnnl_f32, dnnl_oihw));
  CHK (dnnl_memory_desc_create_with_tag (&udst, 4, dd, dnnl_f32, dnnl_nchw));
  CHK (dnnl_memory_desc_create_with_tag (&bmd, 1, bd, dnnl_f32, dnnl_a));
  CHK (dnnl_memory_desc_create_with_tag (&csrc, 4, sd, dnnl_f32, tag));
  CHK (dnnl_memory_desc_create_with_tag (&cwei, 4, wd, dnnl_f32, dnnl_format_tag_any));
  CHK (dnnl_memory_desc_create_with_tag (&cdst, 4, dd, dnnl_f32, tag));
  CHK (dnnl_convolution_forward_primitive_desc_create (&pd, eng, dnnl_forward_inference,
       dnnl_convolution_direct, csrc, cwei, bmd, cdst, strides, NULL, pads, pads, NULL));
  CHK (dnnl_primitive_desc_query (pd, dnnl_query_impl_info_str, 0, &impl));
  if (getenv ("LAYOUTS_TRACE"))
    printf ("  trying %s N=%d C%d O%d H%d k%d s%d: %s\n", name, n, c, o, h, k, stride, impl), fflush (stdout);
  CHK (dnnl_primitive_create (&conv, pd));
  psrc = dnnl_primitive_desc_query_md (pd, dnnl_query_src_md, 0);
  pwei = dnnl_primitive_desc_query_md (pd, dnnl_query_weights_md, 0);
  pdst = dnnl_primitive_desc_query_md (pd, dnnl_query_dst_md, 0);
  bs = aligned_alloc (64, (dnnl_memory_desc_get_size (psrc) + 63) / 64 * 64);
  bw = calloc (1, dnnl_memory_desc_get_size (pwei));
  bdst = aligned_alloc (64, (dnnl_memory_desc_get_size (pdst) + 63) / 64 * 64);
  reorder (uwei, w, pwei, bw);
  for (int rep = 0; rep < 3; rep++)
    {
      double t0 = now ();
      dnnl_memory_t ms, mw, mb, md;
      int plain_s = dnnl_memory_desc_equal (psrc, usrc), plain_d = dnnl_memory_desc_equal (pdst, udst);
      if (!plain_s)
        reorder (usrc, x, psrc, bs);
      CHK (dnnl_memory_create (&ms, psrc, eng, plain_s ? (void *) x : bs));
      CHK (dnnl_memory_create (&mw, pwei, eng, bw));
      CHK (dnnl_memory_create (&mb, bmd, eng, b));
      CHK (dnnl_memory_create (&md, pdst, eng, plain_d ? (void *) y : bdst));
      dnnl_exec_arg_t args[] = { { DNNL_ARG_SRC, ms }, { DNNL_ARG_WEIGHTS, mw },
                                 { DNNL_ARG_BIAS, mb }, { DNNL_ARG_DST, md } };
      CHK (dnnl_primitive_execute (conv, st, 4, args));
      CHK (dnnl_stream_wait (st));
      if (!plain_d)
        reorder (pdst, bdst, udst, y);
      dnnl_memory_destroy (ms); dnnl_memory_destroy (mw); dnnl_memory_destroy (mb); dnnl_memory_destroy (md);
      if (now () - t0 < best)
        best = now () - t0;
    }
  /* float64 reference on every 7th output (all of them for small shapes) */
  for (size_t i = 0; i < nd; i += nd > 200000 ? 7 : 1)
    {
      int ox = i % ho, oy = (i / ho) % ho, oc = (i / ho / ho) % o, bn = i / ((size_t) ho * ho * o);
      double r = b[oc];
      for (int ci = 0; ci < c; ci++)
        for (int ky = 0; ky < k; ky++)
          for (int kx = 0; kx < k; kx++)
            {
              int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
              if (iy >= 0 && iy < h && ix >= 0 && ix < h)
                r += (double) w[((size_t) oc * c + ci) * k * k + ky * k + kx] *
                     x[(((size_t) bn * c + ci) * h + iy) * h + ix];
            }
      maxe = fmax (maxe, fabs (y[i] - r));
      maxy = fmax (maxy, fabs (r));
    }
  if (strcmp (name, "grid") == 0)
    {
      printf ("C%-4d O%-4d k%d s%d N%d %-50s %s\n", c, o, k, stride, n, impl,
              maxe / maxy > 1e-4 ? "WRONG" : "ok");
      goto done;
    }
  printf ("%-22s N=%d %-8s %-28s %9.2f ms %6.1f GFLOP/s  rel err %.2e%s\n", name, n,
          tag == dnnl_nchw ? "nchw" : tag == dnnl_nhwc ? "nhwc" : tag == dnnl_nChw16c ? "nChw16c" : "any",
          impl, best * 1e3, 2.0 * n * o * ho * ho * c * k * k / best * 1e-9, maxe / maxy,
          maxe / maxy > 1e-4 ? "  WRONG" : "");
done:
  fflush (stdout);
  free (x); free (w); free (b); free (y); free (bs); free (bw); free (bdst);
  dnnl_primitive_destroy (conv);
  dnnl_primitive_desc_destroy (pd);
}

int
main (int argc, char **argv)
{
  struct { const char *name; int c, o, h, k, stride; } shapes[] = {
    { "edm2-xs 3x3 128@64", 128, 128, 64, 3, 1 },
    { "edm2-xs 3x3 512@8", 512, 512, 8, 3, 1 },
    { "edm2-xs 1x1 256->384@16", 256, 384, 16, 1, 1 },
    { "edm2-xs 1x1 qkv 384@16", 384, 1152, 16, 1, 1 },
    { "taesd 3x3 64@512", 64, 64, 512, 3, 1 },
    { "taesd 3x3 64@128", 64, 64, 128, 3, 1 },
    { "vae 3x3 512@64", 512, 512, 64, 3, 1 },
    { "vae 3x3 128@512", 128, 128, 512, 3, 1 },
    { "vae 1x1 256->128@128", 256, 128, 128, 1, 1 },
    { "resnet50 1x1 s2 512@28", 512, 1024, 28, 1, 2 },
    { "resnet50 3x3 s2 128@56", 128, 128, 56, 3, 2 },
    { "edm2 in 3x3 5->128@64", 5, 128, 64, 3, 1 },
    { "out 3x3 128->3@64", 128, 3, 64, 3, 1 },
    { "odd 3x3 20->24@12", 20, 24, 12, 3, 1 },
    { "s2a 3x3 s2 256@28", 256, 256, 28, 3, 2 },
    { "s2b 3x3 s2 512@14", 512, 512, 14, 3, 2 },
    { "s2c 7x7 s2 3->64@224", 3, 64, 224, 7, 2 },
    { "s2d 3x3 s2 128@56", 128, 128, 56, 3, 2 },
    { "ds1 1x1 s2 256->512@56", 256, 512, 56, 1, 2 },
    { "ds2 1x1 s2 1024->2048@14", 1024, 2048, 14, 1, 2 },
    { "ds3 1x1 s2 64->128@28", 64, 128, 28, 1, 2 },
    { "ds4 1x1 s2 512->1024@16", 512, 1024, 16, 1, 2 },
    { "ds5 1x1 s2 512->1024@27", 512, 1024, 27, 1, 2 },
    { "1x1 960->320@7", 960, 320, 7, 1, 1 },
  };
  dnnl_format_tag_t tags[] = { dnnl_nchw, dnnl_format_tag_any, dnnl_nChw16c, dnnl_nhwc };
  /* [THREADS [big|NAME-PREFIX]] */
  int threads = argc > 1 ? atoi (argv[1]) : 2, big = argc > 2 && strcmp (argv[2], "big") == 0;
  const char *only = argc > 2 && !big ? argv[2] : NULL;
  omp_set_num_threads (threads);
  CHK (dnnl_engine_create (&eng, dnnl_cpu, 0));
  CHK (dnnl_stream_create (&st, eng, dnnl_stream_default_flags));
  if (argc > 2 && strcmp (argv[2], "grid") == 0)
    {
      /* channel counts with and without a tail of 16, NCHW (the engine's) */
      int cs[] = { 3, 4, 5, 8, 16, 20, 24, 32, 40, 48, 64, 96, 144 };
      int ks[] = { 1, 3 };
      for (int ci = 0; ci < 13; ci++)
        for (int oi = 0; oi < 13; oi++)
          for (int ki = 0; ki < 2; ki++)
            for (int s = 1; s <= 2; s++)
              run ("grid", 1, cs[ci], cs[oi], 12, ks[ki], s, dnnl_nchw);
      return 0;
    }
  printf ("oneDNN %d.%d.%d, %d threads\n", dnnl_version ()->major, dnnl_version ()->minor,
          dnnl_version ()->patch, threads);
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int nb = 0; nb < 2; nb++)
      {
        int n = nb ? 8 : 1;
        if (only != NULL && strncmp (shapes[s].name, only, strlen (only)) != 0)
          continue;
        /* batch 8 of the 512-pixel layers only with an argument (slow) */
        if (n == 8 && shapes[s].h >= 128 && !big)
          continue;
        for (int t = 0; t < 4; t++)
          run (shapes[s].name, n, shapes[s].c, shapes[s].o, shapes[s].h, shapes[s].k,
               shapes[s].stride, tags[t]);
      }
  return 0;
}
