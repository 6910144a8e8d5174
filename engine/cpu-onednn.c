/* cpu-onednn.c — the CPU backend's convolutions and matrix products through
 * oneDNN (built with -Donednn, GFCG_HAVE_ONEDNN): direct convolution kernels
 * instead of im2col + SGEMM, with the bias and what follows the convolution
 * (GfcgConvPost: scale, residual sum, activation) fused as post-ops.
 *
 * Layout: the engine's tensors stay NCHW.  k x k convolutions run on
 * 16-channel blocks (nChw16c), reordered in and out here (see create_prim);
 * 1x1, grouped and depthwise ones get the NCHW tensors, for which oneDNN
 * wraps blocked kernels itself (jit_uni_ncsp_convolution: a brgemm matmul
 * for 1x1).  Letting the primitive choose the layout ("any") picks
 * brgconv_1x1 with NHWC, which oneDNN 3.7.2 computes wrongly for batches of
 * 8 or more on the AMD AVX-512 build hosts (bench/onednn-1x1-check.c,
 * bench/onednn-conv-layouts.c).
 *
 * Weights are reordered once into the layout the primitive wants and kept
 * with the weight tensor (GfcgTensor.cache); primitives are cached by
 * shape, batch, post-ops and thread count.  Reference implementations
 * ("ref:") are never used: such a shape goes to the OpenBLAS path.
 *
 * cpu:bf16 (cpu-bf16.c): the same primitives with bf16 source and weights
 * and an fp32 destination; the source's reorder converts, the weights are
 * packed to bf16 once like the fp32 ones.
 *
 * Debian's oneDNN runs on OpenMP: the thread count is set with
 * omp_set_num_threads before each call (gfcg_backend_cpu_get_threads,
 * one thread for small products as with OpenBLAS), and every product of the
 * backend goes through oneDNN in this mode (dnnl_sgemm too), so that
 * OpenMP's and OpenBLAS's worker pools never spin against each other. */
#include "cpu-private.h"

#include <math.h>
#include <string.h>

#ifdef GFCG_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static GHashTable   *prims; /* key string -> ConvPrim */
static gpointer      scratch; /* every primitive's scratchpad (under the compute lock) */
static gsize         scratch_bytes;
static gpointer      src_buf, dst_buf; /* blocked source and destination, likewise */
static gsize         src_buf_bytes, dst_buf_bytes;

typedef struct
{
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t      prim;
  dnnl_memory_desc_t    src_md, wei_user_md, bias_md, dst_md; /* ours: NCHW */
  dnnl_memory_desc_t    csrc_md, cdst_md;  /* the convolution's: NCHW or nChw16c */
  const_dnnl_memory_desc_t wei_md;                             /* pd's */
  /* NCHW <-> blocked: source in, destination out, and in for a sum; NULL
   * where the convolution reads or writes NCHW itself. */
  dnnl_primitive_t      src_in, dst_out, dst_in;
} ConvPrim;

/* A weight tensor's packed copies, one per layout a primitive asked for. */
typedef struct
{
  dnnl_memory_desc_t md;
  float              scale; /* the weights times this (see cpu_onednn_conv) */
  gpointer           data;
} Packed;

static void
conv_prim_free (gpointer p)
{
  ConvPrim *c = p;
  dnnl_primitive_t r[] = { c->prim, c->src_in, c->dst_out, c->dst_in };
  for (guint i = 0; i < G_N_ELEMENTS (r); i++)
    if (r[i] != NULL)
      dnnl_primitive_destroy (r[i]);
  if (c->pd != NULL)
    dnnl_primitive_desc_destroy (c->pd);
  dnnl_memory_desc_destroy (c->src_md);
  dnnl_memory_desc_destroy (c->wei_user_md);
  dnnl_memory_desc_destroy (c->bias_md);
  dnnl_memory_desc_destroy (c->dst_md);
  dnnl_memory_desc_destroy (c->csrc_md);
  dnnl_memory_desc_destroy (c->cdst_md);
  g_free (c);
}

static void
packed_list_free (gpointer p)
{
  GSList *l = p;
  for (GSList *i = l; i != NULL; i = i->next)
    {
      Packed *k = i->data;
      dnnl_memory_desc_destroy (k->md);
      g_free (k->data);
      g_free (k);
    }
  g_slist_free (l);
}

/* Once: the engine and stream; FALSE when oneDNN cannot start. */
static gboolean
ensure_engine (void)
{
  static gsize state; /* 0 untried, 1 ok, 2 failed */
  if (g_once_init_enter (&state))
    {
      gsize s = dnnl_engine_create (&engine, dnnl_cpu, 0) == dnnl_success &&
                dnnl_stream_create (&stream, engine, dnnl_stream_default_flags) == dnnl_success
                ? 1 : 2;
      prims = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, conv_prim_free);
      if (s != 1)
        g_printerr ("gfcg: oneDNN did not start; convolutions use OpenBLAS\n");
      g_once_init_leave (&state, s);
    }
  return state == 1;
}

/* GFCG_CPU_CONV=blas|onednn (default onednn): read once, or set by
 * gfcg_backend_cpu_set_conv. */
static int conv_mode = -1;

gboolean
cpu_onednn_enabled (void)
{
  if (conv_mode < 0)
    {
      const char *env = g_getenv ("GFCG_CPU_CONV");
      conv_mode = 1;
      if (env != NULL && strcmp (env, "blas") == 0)
        conv_mode = 0;
      else if (env != NULL && *env != '\0' && strcmp (env, "onednn") != 0)
        g_printerr ("gfcg: GFCG_CPU_CONV=%s is neither blas nor onednn; using onednn\n", env);
    }
  return conv_mode == 1 && ensure_engine ();
}

gboolean
cpu_onednn_available (void)
{
  return ensure_engine ();
}

gboolean
gfcg_backend_cpu_set_conv (const char *path)
{
  if (strcmp (path, "blas") == 0)
    conv_mode = 0;
  else if (strcmp (path, "onednn") == 0 && ensure_engine ())
    conv_mode = 1;
  else
    return FALSE;
  return TRUE;
}

char *
cpu_onednn_version (void)
{
  const dnnl_version_t *v = dnnl_version ();
  return g_strdup_printf ("%d.%d.%d", v->major, v->minor, v->patch);
}

static void
set_threads (double flops)
{
  /* As cpu-gemm.c's gemm_threads: waking a pool costs more than a small
   * product. */
  omp_set_num_threads (flops < 4e7 ? 1 : gfcg_backend_cpu_get_threads ());
}

void
cpu_onednn_sgemm (CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                  const float *a, int lda, const float *b, int ldb, float beta, float *c,
                  int ldc)
{
  set_threads (2.0 * m * n * k);
  dnnl_sgemm (ta == CblasTrans ? 'T' : 'N', tb == CblasTrans ? 'T' : 'N', m, n, k, alpha, a,
              lda, b, ldb, beta, c, ldc);
}

static gboolean
append_act (dnnl_post_ops_t po, GfcgAct act, float lo, float hi)
{
  switch (act)
    {
    case GFCG_ACT_NONE:  return TRUE;
    case GFCG_ACT_RELU:  return dnnl_post_ops_append_eltwise (po, dnnl_eltwise_relu, 0.0f, 0.0f) == dnnl_success;
    case GFCG_ACT_RELU6: return dnnl_post_ops_append_eltwise (po, dnnl_eltwise_clip, 0.0f, 6.0f) == dnnl_success;
    case GFCG_ACT_SILU:  return dnnl_post_ops_append_eltwise (po, dnnl_eltwise_swish, 1.0f, 0.0f) == dnnl_success;
    case GFCG_ACT_CLIP:  return dnnl_post_ops_append_eltwise (po, dnnl_eltwise_clip, lo, hi) == dnnl_success;
    }
  return FALSE;
}

/* The post-ops of `post`: y = act (scale conv + res_scale dst_before). */
static dnnl_primitive_attr_t
make_attr (const GfcgConvPost *post)
{
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  gboolean ok;

  /* The scratchpad (for an NCHW source: the blocked copies of source and
   * destination) is ours, one buffer for all primitives: oneDNN's own is
   * per primitive, and held 3.4 GB for the SD VAE decoder at 512. */
  if (dnnl_primitive_attr_create (&attr) != dnnl_success)
    return NULL;
  if (dnnl_primitive_attr_set_scratchpad_mode (attr, dnnl_scratchpad_mode_user) != dnnl_success)
    {
      dnnl_primitive_attr_destroy (attr);
      return NULL;
    }
  if (post == NULL)
    return attr;
  /* The sum first: scale (conv + res_scale / scale dst_before) (the direct
   * AVX-512 kernels want a sum of scale 1 there: see cpu_onednn_conv). */
  ok = dnnl_post_ops_create (&po) == dnnl_success && post->scale != 0.0f;
  if (ok && post->residual != NULL)
    ok = dnnl_post_ops_append_sum (po, post->res_scale / post->scale, 0,
                                   dnnl_data_type_undef) == dnnl_success;
  if (ok && post->scale != 1.0f)
    ok = dnnl_post_ops_append_eltwise (po, dnnl_eltwise_linear, post->scale, 0.0f) == dnnl_success;
  ok = ok && append_act (po, post->act, post->lo, post->hi) &&
       dnnl_primitive_attr_set_post_ops (attr, po) == dnnl_success;
  if (po != NULL)
    dnnl_post_ops_destroy (po);
  if (!ok)
    {
      dnnl_primitive_attr_destroy (attr);
      return NULL;
    }
  return attr;
}

/* jit_bf16:avx512_core_bf16 (oneDNN 3.7.2, this AMD host) is 10-35%
 * off when the output channels are not a multiple of 16 (24, 8, 3, 40) or
 * the input channels are above 16 and not one (20); tests/test-cpu-bf16.c
 * found it. */
static gboolean
bf16_tail (int cg, int og)
{
  return og % 16 != 0 || (cg > 16 && cg % 16 != 0);
}

/* Implementations never used: the reference ones (slow); brgconv_1x1,
 * which oneDNN 3.7.2 computes wrongly on the AMD AVX-512 build hosts (NHWC
 * at batch >= 8, inside jit_uni_ncsp_convolution at stride 2 or with
 * post-ops); jit:avx512_core where a group's input channels are more than
 * 16 but not a multiple of 16 (20, 24, 40: results ~30% off), or for
 * grouped non-depthwise convolutions whose groups are not whole blocks of
 * 16.  bench/onednn-conv-layouts.c (its "grid") finds these.  In bf16:
 * jit_bf16 where bf16_tail says. */
static gboolean
bad_impl (const char *impl, int cg, int og, int groups, int c)
{
  if (g_str_has_prefix (impl, "ref") || strstr (impl, ":ref") != NULL ||
      strstr (impl, "+ref") != NULL || strstr (impl, "brgconv_1x1") != NULL)
    return TRUE;
  if (strstr (impl, "jit_bf16:") != NULL && bf16_tail (cg, og))
    return TRUE;
  if (strstr (impl, "jit:avx512_core") != NULL)
    return (cg > 16 && cg % 16 != 0) ||
           (groups > 1 && groups < c && (cg % 16 != 0 || og % 16 != 0));
  return FALSE;
}

static gboolean
make_reorder (const_dnnl_memory_desc_t from, const_dnnl_memory_desc_t to, dnnl_primitive_t *r)
{
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok = dnnl_reorder_primitive_desc_create (&pd, from, engine, to, engine, NULL) == dnnl_success;
  ok = ok && dnnl_primitive_create (r, pd) == dnnl_success;
  if (pd != NULL)
    dnnl_primitive_desc_destroy (pd);
  return ok;
}

/* mem (a buffer of at least bytes, grown as needed; under the compute lock) */
static gpointer
grow (gpointer *buf, gsize *size, gsize bytes)
{
  if (bytes > *size)
    {
      g_free (*buf);
      *size = 0;
      if ((*buf = g_try_malloc (bytes)) == NULL)
        return NULL;
      *size = bytes;
    }
  return *buf;
}

/* One reorder, executed now. */
static gboolean
run_reorder (dnnl_primitive_t r, const_dnnl_memory_desc_t from_md, gpointer from,
             const_dnnl_memory_desc_t to_md, gpointer to)
{
  dnnl_memory_t a = NULL, b = NULL;
  gboolean ok = dnnl_memory_create (&a, from_md, engine, from) == dnnl_success &&
                dnnl_memory_create (&b, to_md, engine, to) == dnnl_success;
  if (ok)
    {
      dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, a }, { DNNL_ARG_TO, b } };
      ok = dnnl_primitive_execute (r, stream, 2, args) == dnnl_success;
    }
  dnnl_memory_destroy (a);
  dnnl_memory_destroy (b);
  return ok;
}

/* bf16: the convolution reads bf16 source and weights (cpu-bf16.c) and
 * writes fp32; the source's reorder converts it. */
static ConvPrim *
create_prim (int n, int c, int h, int w, int o, int k, const GfcgConvParams *p, gboolean bias,
             int ho, int wo, const GfcgConvPost *post, gboolean bf16)
{
  ConvPrim *cp = g_new0 (ConvPrim, 1);
  dnnl_dims_t sd = { n, c, h, w }, dd = { n, o, ho, wo }, bd = { o };
  dnnl_dims_t strides = { p->stride, p->stride };
  dnnl_dims_t pad_l = { p->pad_top, p->pad_left }, pad_r = { p->pad_bottom, p->pad_right };
  dnnl_memory_desc_t wei_any = NULL;
  dnnl_primitive_attr_t attr = make_attr (post);
  const char *impl = NULL;
  gboolean ok = attr != NULL;
  int g = p->groups;

  /* k x k without groups: 16-channel blocks, reordered here (2x faster than
   * oneDNN's NCHW wrapper for TAESD's 64 channels at 512x512: 174 against
   * 363 ms, one thread); the source stays NCHW below 16 channels (the
   * kernels read it directly).  Not "any": that may pick brgconv with NHWC.
   * GFCG_ONEDNN_LAYOUT=nchw gives oneDNN the NCHW tensors (for timing).
   * bf16 with channels that are not whole blocks stays NCHW too (bad_impl):
   * oneDNN's gemm convolution then, right where jit_bf16 is not. */
  gboolean blocked = k > 1 && g == 1 && !(bf16 && bf16_tail (c, o)) &&
                     g_strcmp0 (g_getenv ("GFCG_ONEDNN_LAYOUT"), "nchw") != 0;
  dnnl_format_tag_t stag = blocked && c >= 16 ? dnnl_nChw16c : dnnl_nchw;
  dnnl_format_tag_t dtag = blocked ? dnnl_nChw16c : dnnl_nchw;
  dnnl_data_type_t in_type = bf16 ? dnnl_bf16 : dnnl_f32;

  ok = ok && dnnl_memory_desc_create_with_tag (&cp->src_md, 4, sd, dnnl_f32, dnnl_nchw) == dnnl_success &&
       dnnl_memory_desc_create_with_tag (&cp->dst_md, 4, dd, dnnl_f32, dnnl_nchw) == dnnl_success &&
       dnnl_memory_desc_create_with_tag (&cp->csrc_md, 4, sd, in_type, stag) == dnnl_success &&
       dnnl_memory_desc_create_with_tag (&cp->cdst_md, 4, dd, dnnl_f32, dtag) == dnnl_success &&
       dnnl_memory_desc_create_with_tag (&cp->bias_md, 1, bd, dnnl_f32, dnnl_a) == dnnl_success;
  if (ok && g == 1)
    {
      dnnl_dims_t wd = { o, c, k, k };
      ok = dnnl_memory_desc_create_with_tag (&cp->wei_user_md, 4, wd, dnnl_f32, dnnl_oihw) == dnnl_success &&
           dnnl_memory_desc_create_with_tag (&wei_any, 4, wd, in_type, dnnl_format_tag_any) == dnnl_success;
    }
  else if (ok)
    {
      dnnl_dims_t wd = { g, o / g, c / g, k, k };
      ok = dnnl_memory_desc_create_with_tag (&cp->wei_user_md, 5, wd, dnnl_f32, dnnl_goihw) == dnnl_success &&
           dnnl_memory_desc_create_with_tag (&wei_any, 5, wd, in_type, dnnl_format_tag_any) == dnnl_success;
    }
  ok = ok && dnnl_convolution_forward_primitive_desc_create (
                 &cp->pd, engine, dnnl_forward_inference, dnnl_convolution_direct, cp->csrc_md,
                 wei_any, bias ? cp->bias_md : NULL, cp->cdst_md, strides, NULL, pad_l, pad_r,
                 attr) == dnnl_success;
  /* The first implementation oneDNN offers that is neither a reference one
   * nor one known wrong here (bad_impl).  A 1x1 takes the matmul that
   * jit_uni_ncsp_convolution offers first or nothing: looking further
   * reaches brdgmm_dw, whose set-up dies of SIGFPE for 1x1 shapes with
   * 512 channels or more (oneDNN 3.7.2).  In bf16 the first one for NCHW
   * is the gemm convolution (x64:gemm:jit, bf16 GEMM with fp32 sums). */
  while (ok)
    {
      ok = dnnl_primitive_desc_query (cp->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
           impl != NULL;
      if (ok && k == 1)
        {
          ok = (strstr (impl, "matmul") != NULL || (bf16 && strstr (impl, "gemm:jit") != NULL)) &&
               !bad_impl (impl, c / g, o / g, g, c);
          break;
        }
      if (ok && !bad_impl (impl, c / g, o / g, g, c))
        break;
      ok = ok && dnnl_primitive_desc_next_impl (cp->pd) == dnnl_success;
    }
  if (ok && g_getenv ("GFCG_ONEDNN_VERBOSE") != NULL)
    g_printerr ("gfcg: oneDNN conv%s N%d C%d %dx%d -> O%d k%d s%d g%d%s%s act %d scale %g: %s\n",
                bf16 ? " bf16" : "", n, c, h, w, o, k, p->stride, g, post != NULL ? " post" : "",
                post != NULL && post->residual != NULL ? "+sum" : "",
                post != NULL ? (int) post->act : -1, post != NULL ? post->scale : 1.0f, impl);
  ok = ok && dnnl_primitive_create (&cp->prim, cp->pd) == dnnl_success;
  if (ok && (stag != dnnl_nchw || bf16))
    ok = make_reorder (cp->src_md, cp->csrc_md, &cp->src_in);
  if (ok && dtag != dnnl_nchw)
    ok = make_reorder (cp->cdst_md, cp->dst_md, &cp->dst_out) &&
         (post == NULL || post->residual == NULL ||
          make_reorder (cp->dst_md, cp->cdst_md, &cp->dst_in));
  if (ok)
    cp->wei_md = dnnl_primitive_desc_query_md (cp->pd, dnnl_query_weights_md, 0);
  if (wei_any != NULL)
    dnnl_memory_desc_destroy (wei_any);
  if (attr != NULL)
    dnnl_primitive_attr_destroy (attr);
  if (!ok)
    {
      conv_prim_free (cp);
      return NULL;
    }
  return cp;
}

/* The weights of w in the primitive's layout: reordered on first use and
 * kept with the tensor. */
static gpointer
packed_weights (const GfcgTensor *w, ConvPrim *cp, float scale)
{
  GfcgTensor *wt = (GfcgTensor *) w; /* the cache is not the tensor's value */
  GSList *list = wt->cache_free == packed_list_free ? wt->cache : NULL;
  Packed *k;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t r = NULL;
  dnnl_memory_t from = NULL, to = NULL;
  float *src = NULL; /* scaled weights */
  gboolean ok;

  if (wt->cache != NULL && wt->cache_free != packed_list_free)
    return NULL; /* someone else's cache */
  for (GSList *i = list; i != NULL; i = i->next)
    if (dnnl_memory_desc_equal (((Packed *) i->data)->md, cp->wei_md) &&
        ((Packed *) i->data)->scale == scale)
      return ((Packed *) i->data)->data;
  if (scale == 1.0f && dnnl_memory_desc_equal (cp->wei_md, cp->wei_user_md))
    return w->data;
  k = g_new0 (Packed, 1);
  k->scale = scale;
  if (scale != 1.0f)
    {
      src = g_try_malloc (w->numel * sizeof (float));
      if (src == NULL)
        {
          g_free (k);
          return NULL;
        }
      for (gsize i = 0; i < w->numel; i++)
        src[i] = CF (w)[i] * scale;
    }
  /* zeroed: blocked layouts pad channels to the block size */
  k->data = g_try_malloc0 (dnnl_memory_desc_get_size (cp->wei_md));
  ok = k->data != NULL && dnnl_memory_desc_clone (&k->md, cp->wei_md) == dnnl_success &&
       dnnl_reorder_primitive_desc_create (&rpd, cp->wei_user_md, engine, cp->wei_md, engine,
                                           NULL) == dnnl_success &&
       dnnl_primitive_create (&r, rpd) == dnnl_success &&
       dnnl_memory_create (&from, cp->wei_user_md, engine,
                           src != NULL ? (gpointer) src : w->data) == dnnl_success &&
       dnnl_memory_create (&to, cp->wei_md, engine, k->data) == dnnl_success;
  if (ok)
    {
      dnnl_exec_arg_t args[] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
      omp_set_num_threads (1);
      ok = dnnl_primitive_execute (r, stream, 2, args) == dnnl_success &&
           dnnl_stream_wait (stream) == dnnl_success;
    }
  if (from != NULL)
    dnnl_memory_destroy (from);
  if (to != NULL)
    dnnl_memory_destroy (to);
  if (r != NULL)
    dnnl_primitive_destroy (r);
  if (rpd != NULL)
    dnnl_primitive_desc_destroy (rpd);
  g_free (src);
  if (!ok)
    {
      if (k->md != NULL)
        dnnl_memory_desc_destroy (k->md);
      g_free (k->data);
      g_free (k);
      return NULL;
    }
  wt->cache = g_slist_prepend (list, k);
  wt->cache_free = packed_list_free;
  return k->data;
}

static char *
prim_key (int n, int c, int h, int w, int o, int k, const GfcgConvParams *p, gboolean bias,
          const GfcgConvPost *post, int threads, gboolean bf16)
{
  char *pk = post == NULL ? g_strdup ("-")
             : g_strdup_printf ("%a %d %a %d %a %a", post->scale, post->residual != NULL,
                                post->res_scale, post->act, post->lo, post->hi);
  char *key = g_strdup_printf ("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %s", n, c, h, w, o,
                               k, p->stride, p->pad_top, p->pad_left, p->pad_bottom, p->pad_right,
                               p->groups, bias, threads, bf16, pk);
  g_free (pk);
  return key;
}

/* The cached primitive for this convolution, made on first use; NULL where
 * oneDNN has no good kernel for it (remembered too). */
static ConvPrim *
find_prim (int n, int c, int h, int w, int o, int k, const GfcgConvParams *p, gboolean bias,
           int ho, int wo, const GfcgConvPost *post, int threads, gboolean bf16)
{
  char *key = prim_key (n, c, h, w, o, k, p, bias, post, threads, bf16);
  ConvPrim *cp;
  if (!g_hash_table_lookup_extended (prims, key, NULL, (gpointer *) &cp))
    {
      cp = create_prim (n, c, h, w, o, k, p, bias, ho, wo, post, bf16);
      g_hash_table_insert (prims, key, cp); /* NULL too: not tried again */
    }
  else
    g_free (key);
  return cp;
}

/* y = act (scale y + res_scale residual), as the separate ops compute it. */
static void
post_in_place (GfcgTensor *y, const GfcgConvPost *post)
{
  const float *res = post->residual != NULL ? CF (post->residual) : NULL;
  for (gsize i = 0; i < y->numel; i++)
    {
      float v = res != NULL ? post->scale * F (y)[i] + post->res_scale * res[i]
                            : post->scale * F (y)[i];
      switch (post->act)
        {
        case GFCG_ACT_NONE:  break;
        case GFCG_ACT_RELU:  v = v > 0.0f ? v : 0.0f; break;
        case GFCG_ACT_RELU6: v = CLAMP (v, 0.0f, 6.0f); break;
        case GFCG_ACT_SILU:  v = v / (1.0f + expf (-v)); break;
        case GFCG_ACT_CLIP:  v = CLAMP (v, post->lo, post->hi); break;
        }
      F (y)[i] = v;
    }
}

/* y = conv (x, w) + bias, then post; FALSE when oneDNN has no fast kernel
 * for it (nothing was written).  Called under the compute lock. */
gboolean
cpu_onednn_conv (GfcgBackend *be, const GfcgTensor *x, const GfcgTensor *w,
                 const GfcgTensor *bias, const GfcgConvParams *p, const GfcgConvPost *post,
                 GfcgTensor *y)
{
  int n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int o = w->shape[0], k = w->ndim == 4 ? w->shape[2] : 1, ho = y->shape[2], wo = y->shape[3];
  double flops = 2.0 * n * o * ho * wo * (c / p->groups) * k * k;
  int threads = flops < 4e7 ? 1 : gfcg_backend_cpu_get_threads ();
  gboolean bf16 = cpu_bf16_wanted (be);
  ConvPrim *cp;
  gpointer wdata;
  GfcgConvPost folded;
  float wscale = 1.0f;
  dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, mp = NULL;
  const_dnnl_memory_desc_t pad_md;
  gsize pad_bytes;
  gpointer src, dst;
  gboolean ok;

  if (w->ndim == 4 && w->shape[2] != w->shape[3])
    return FALSE;
  /* Grouped convolutions other than depthwise ones go the OpenBLAS way:
   * oneDNN 3.7.2 got 6 groups of 1 -> 2 channels wrong here (0.87 off,
   * tests/test-opencl.c's conv2d_ex g6), whichever implementation it
   * picked.  No network of the engine has such a layer. */
  if (p->groups > 1 && !(p->groups == c && o == c))
    return FALSE;
  /* 1x1: plain (stride 1, no post-ops) only, which oneDNN runs as a matmul
   * (see create_prim); the post-ops then in one pass over y. */
  if (k == 1 && post != NULL)
    {
      if (!cpu_onednn_conv (be, x, w, bias, p, NULL, y))
        return FALSE;
      post_in_place (y, post);
      return TRUE;
    }
  if (k == 1 && p->stride > 1)
    {
      /* Strided 1x1 (ResNet-50's downsampling): the pixels it reads, then a
       * plain 1x1.  oneDNN 3.7.2 dies of SIGFPE creating a strided 1x1
       * primitive for NCHW with 512 input channels or more (512 -> 1024 at
       * 28x28, 1024 -> 2048 at 14x14; bench/onednn-conv-layouts.c "ds"),
       * and gives no matmul for it. */
      GfcgTensor sub = *x;
      GfcgConvParams q = *p;
      gboolean done;
      if (p->pad_top != 0 || p->pad_left != 0 || p->pad_bottom != 0 || p->pad_right != 0)
        return FALSE;
      sub.shape[2] = ho;
      sub.shape[3] = wo;
      sub.numel = (gsize) n * c * ho * wo;
      sub.cache = NULL;
      sub.cache_free = NULL;
      if ((sub.data = g_try_malloc (sub.numel * sizeof (float))) == NULL)
        return FALSE;
      for (gsize pl = 0; pl < (gsize) n * c; pl++)
        for (int oy = 0; oy < ho; oy++)
          for (int ox = 0; ox < wo; ox++)
            F (&sub)[(pl * ho + oy) * wo + ox] =
              CF (x)[(pl * h + (gsize) oy * p->stride) * wd + (gsize) ox * p->stride];
      q.stride = 1;
      done = cpu_onednn_conv (be, &sub, w, bias, &q, post, y);
      g_free (sub.data);
      return done;
    }
  if (post != NULL && post->residual != NULL && post->res_scale != 1.0f &&
      post->res_scale != 0.0f && bias == NULL)
    {
      /* s conv + r x = r ((s / r) conv + x), s / r in a scaled copy of the
       * weights, so that the sum post-op has scale 1: oneDNN's NCHW wrapper
       * sent a sum of any other scale to AVX2 kernels, and a scale-1 sum is
       * what every kernel takes (EDM2's mp_sum: r = 0.92, s = 0.39). */
      folded = *post;
      wscale = post->scale / post->res_scale;
      folded.scale = post->res_scale; /* and res_scale stays: sum scale 1 */
      post = &folded;
    }
  omp_set_num_threads (threads);
  cp = find_prim (n, c, h, wd, o, k, p, bias != NULL, ho, wo, post, threads, bf16);
  /* A shape without a good bf16 kernel runs in fp32 (more precise, never
   * less). */
  if (cp == NULL && bf16)
    cp = find_prim (n, c, h, wd, o, k, p, bias != NULL, ho, wo, post, threads, FALSE);
  if (cp == NULL || (wdata = packed_weights (w, cp, wscale)) == NULL)
    return FALSE;
  pad_md = dnnl_primitive_desc_query_md (cp->pd, dnnl_query_scratchpad_md, 0);
  pad_bytes = pad_md != NULL ? dnnl_memory_desc_get_size (pad_md) : 0;
  if (pad_bytes > scratch_bytes)
    {
      g_free (scratch);
      scratch_bytes = 0;
      if ((scratch = g_try_malloc (pad_bytes)) == NULL)
        return FALSE;
      scratch_bytes = pad_bytes;
    }
  src = x->data;
  dst = y->data;
  if (cp->src_in != NULL &&
      (src = grow (&src_buf, &src_buf_bytes, dnnl_memory_desc_get_size (cp->csrc_md))) == NULL)
    return FALSE;
  if (cp->dst_out != NULL &&
      (dst = grow (&dst_buf, &dst_buf_bytes, dnnl_memory_desc_get_size (cp->cdst_md))) == NULL)
    return FALSE;
  ok = TRUE;
  if (cp->src_in != NULL)
    ok = run_reorder (cp->src_in, cp->src_md, x->data, cp->csrc_md, src);
  if (post != NULL && post->residual != NULL)
    {
      if (cp->dst_in != NULL)
        ok = ok && run_reorder (cp->dst_in, cp->dst_md, post->residual->data, cp->cdst_md, dst);
      else if (post->residual->data != y->data)
        memcpy (y->data, post->residual->data, y->numel * sizeof (float));
    }
  ok = ok && (pad_bytes == 0 ||
              dnnl_memory_create (&mp, pad_md, engine, scratch) == dnnl_success) &&
       dnnl_memory_create (&ms, cp->csrc_md, engine, src) == dnnl_success &&
       dnnl_memory_create (&mw, cp->wei_md, engine, wdata) == dnnl_success &&
       dnnl_memory_create (&md, cp->cdst_md, engine, dst) == dnnl_success &&
       (bias == NULL ||
        dnnl_memory_create (&mb, cp->bias_md, engine, bias->data) == dnnl_success);
  if (ok)
    {
      dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, ms }, { DNNL_ARG_WEIGHTS, mw },
                                  { DNNL_ARG_DST, md } };
      int nargs = 3;
      if (bias != NULL)
        args[nargs++] = (dnnl_exec_arg_t) { DNNL_ARG_BIAS, mb };
      if (pad_bytes > 0)
        args[nargs++] = (dnnl_exec_arg_t) { DNNL_ARG_SCRATCHPAD, mp };
      ok = dnnl_primitive_execute (cp->prim, stream, nargs, args) == dnnl_success;
      if (ok && cp->dst_out != NULL)
        ok = run_reorder (cp->dst_out, cp->cdst_md, dst, cp->dst_md, y->data);
      ok = ok && dnnl_stream_wait (stream) == dnnl_success;
    }
  dnnl_memory_destroy (mp);
  dnnl_memory_destroy (ms);
  dnnl_memory_destroy (mw);
  dnnl_memory_destroy (mb);
  dnnl_memory_destroy (md);
  if (!ok)
    gfcg_backend_fail (be, GFCG_ERROR_DEVICE, "oneDNN: a convolution failed");
  return TRUE;
}

int
cpu_par_threads (gsize work)
{
  /* GFCG_CPU_PAR_MIN=N: element-wise ops of at least N values get the team
   * (default 4M: the decoders' 256- and 512-pixel layers).  Not the small
   * ones: on the shared 2-core build machine (load 8), giving every op of
   * 64K values or more the team made EDM2-XS 1.6x slower (12.8 s against
   * 7.9 s per evaluation; the time outside the convolutions went from 0.5
   * to 4 s), OpenMP's threads waiting at each op's barrier for a core. */
  static gsize min_work;
  if (min_work == 0)
    {
      const char *env = g_getenv ("GFCG_CPU_PAR_MIN");
      min_work = env != NULL && *env != '\0' ? MAX (g_ascii_strtoull (env, NULL, 10), 1)
                                              : (gsize) 1 << 22;
    }
  return work >= min_work && cpu_onednn_enabled () ? gfcg_backend_cpu_get_threads () : 1;
}

#else /* !GFCG_HAVE_ONEDNN */

int
cpu_par_threads (gsize work)
{
  (void) work;
  return 1;
}

gboolean
cpu_onednn_enabled (void)
{
  return FALSE;
}

gboolean
cpu_onednn_available (void)
{
  return FALSE;
}

gboolean
gfcg_backend_cpu_set_conv (const char *path)
{
  return strcmp (path, "blas") == 0;
}

#endif
