/* bench/onednn-1x1-check.c — does the installed oneDNN compute 1x1
 * convolutions right on this CPU?  Written while tracing a failing test
 * (issue 10): Debian 13's oneDNN 3.7.2 picks brgconv_1x1:avx512_core for an
 * NHWC source with blocked ("any") weights, and on the AMD EPYC build hosts
 * (AVX-512) that returns results ~50% off for batches of 8 or more; batch 1,
 * NCHW (jit_uni_ncsp) and ONEDNN_MAX_CPU_ISA=AVX2 (brgconv_1x1:avx2) are
 * right.  Anyone putting oneDNN under the CPU backend (issue 12) must check
 * the layouts they use against a plain reference, as this does.
 *
 *   tools/devenv sh -c 'cc -O2 bench/onednn-1x1-check.c -ldnnl -lm -o /tmp/c && /tmp/c'
 * (needs libdnnl-dev; prints the implementation and the relative error.) */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#define CHK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) { printf("%s -> %d\n", #x, s_); exit(1);} } while (0)
static double run (int N, int C, int O, int H, dnnl_format_tag_t stag) {
  dnnl_engine_t eng; dnnl_stream_t st; CHK(dnnl_engine_create(&eng, dnnl_cpu, 0)); CHK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
  dnnl_dims_t sd = {N, C, H, H}, wd = {O, C, 1, 1}, bd = {O}, dd = {N, O, H, H}, strides = {1, 1}, pad = {0, 0};
  dnnl_memory_desc_t smd, wmd, bmd, dmd, ws, wsa, wda, wwa;
  CHK(dnnl_memory_desc_create_with_tag(&smd, 4, sd, dnnl_f32, stag));
  dnnl_memory_desc_t wplain; CHK(dnnl_memory_desc_create_with_tag(&wplain, 4, wd, dnnl_f32, dnnl_oihw)); CHK(dnnl_memory_desc_create_with_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any));
  CHK(dnnl_memory_desc_create_with_tag(&bmd, 1, bd, dnnl_f32, dnnl_a));
  CHK(dnnl_memory_desc_create_with_tag(&dmd, 4, dd, dnnl_f32, stag));
  CHK(dnnl_memory_desc_create_with_tag(&wsa, 4, sd, dnnl_f32, dnnl_format_tag_any)); (void)ws; (void)wda; (void)wwa;
  dnnl_primitive_desc_t pd;
  CHK(dnnl_convolution_forward_primitive_desc_create(&pd, eng, dnnl_forward_inference, dnnl_convolution_direct, smd, wmd, bmd, dmd, strides, NULL, pad, pad, NULL));
  const char *impl; dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  size_t ns = (size_t)N*C*H*H, nw = (size_t)O*C, nd = (size_t)N*O*H*H;
  float *x = malloc(ns*4), *w = malloc(nw*4), *b = malloc(O*4), *y = malloc(nd*4);
  srand(1); for (size_t i=0;i<ns;i++) x[i]=rand()/(float)RAND_MAX-0.5f; for (size_t i=0;i<nw;i++) w[i]=rand()/(float)RAND_MAX-0.5f; for (int i=0;i<O;i++) b[i]=0.1f*i/O;
  dnnl_memory_t ms, mw, mwp, mb, md; CHK(dnnl_memory_create(&ms, smd, eng, x)); CHK(dnnl_memory_create(&mwp, wplain, eng, w));
  const_dnnl_memory_desc_t wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  CHK(dnnl_memory_create(&mw, wq, eng, DNNL_MEMORY_ALLOCATE));
  { dnnl_primitive_desc_t rpd; dnnl_primitive_t r; CHK(dnnl_reorder_primitive_desc_create(&rpd, wplain, eng, wq, eng, NULL)); CHK(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t ra[] = {{DNNL_ARG_FROM, mwp}, {DNNL_ARG_TO, mw}}; CHK(dnnl_primitive_execute(r, st, 2, ra)); CHK(dnnl_stream_wait(st)); } CHK(dnnl_memory_create(&mb, bmd, eng, b)); CHK(dnnl_memory_create(&md, dmd, eng, y));
  dnnl_primitive_t p; CHK(dnnl_primitive_create(&p, pd));
  dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, md}};
  CHK(dnnl_primitive_execute(p, st, 4, args)); CHK(dnnl_stream_wait(st));
  int nhwc = stag == dnnl_nhwc; double maxe = 0, maxr = 0;
  for (int n=0;n<N;n++) for (int o=0;o<O;o++) for (int s=0;s<H*H;s++) {
    double r = b[o]; for (int c=0;c<C;c++) r += (double)w[o*C+c] * x[nhwc ? ((size_t)n*H*H+s)*C+c : ((size_t)n*C+c)*H*H+s];
    double g = y[nhwc ? ((size_t)n*H*H+s)*O+o : ((size_t)n*O+o)*H*H+s];
    if (fabs(g-r) > maxe) maxe = fabs(g-r); if (fabs(r) > maxr) maxr = fabs(r); }
  printf("N=%d %s impl=%s rel err %.3g\n", N, nhwc ? "nhwc" : "nchw", impl, maxe/maxr);
  return maxe/maxr;
}
int main (void) { int Ns[] = {1, 8, 16, 20, 32}; for (int i=0;i<5;i++) { run(Ns[i], 960, 320, 7, dnnl_nhwc); run(Ns[i], 960, 320, 7, dnnl_nchw);} return 0; }
