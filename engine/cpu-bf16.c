/* cpu-bf16.c — `--device cpu:bf16`: the CPU backend's convolutions on
 * bf16 weights and activations with fp32 accumulation (oneDNN's
 * avx512_core_bf16 and AMX kernels), for CPUs that have them.  This file
 * decides whether bf16 can run and switches a backend to it; cpu-onednn.c
 * makes the primitives (bf16 source and weights, fp32 destination, so
 * that bias, residual sums and activations stay fp32 post-ops) and packs
 * each weight tensor to bf16 once, on its first use, kept with the tensor.
 *
 * What stays fp32: the linear layers and attention's products (dnnl_sgemm:
 * a few percent of EDM2's time, and attention's operands are activations
 * whose error would add to the convolutions'), the element-wise ops, norms
 * and the sampler.  A convolution without a good bf16 kernel runs in fp32.
 *
 * A CPU without bf16 instructions is an error, not a quiet fallback: the
 * caller asked for a different arithmetic, and a picture drawn in fp32
 * under a bf16 label (or the reverse) would make both the numbers and the
 * timings lie.  oneDNN would emulate bf16 on plain AVX-512 with slower
 * kernels, which is never what anyone wants from this option. */
#include "cpu-private.h"

#include <string.h>

#ifdef GFCG_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

/* oneDNN's name for an ISA, for the error message. */
static const char *
isa_name (dnnl_cpu_isa_t isa)
{
  switch ((int) isa)
    {
    case dnnl_cpu_isa_sse41:           return "SSE4.1";
    case dnnl_cpu_isa_avx:             return "AVX";
    case dnnl_cpu_isa_avx2:            return "AVX2";
    case dnnl_cpu_isa_avx2_vnni:       return "AVX2 VNNI";
    case dnnl_cpu_isa_avx2_vnni_2:     return "AVX2 VNNI 2";
    case dnnl_cpu_isa_avx512_core:     return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    default:                           return "an ISA without bf16";
    }
}
#endif

const char *
gfcg_cpu_bf16_unsupported (void)
{
#ifdef GFCG_HAVE_ONEDNN
  static char *isa_reason;
  dnnl_cpu_isa_t isa;

  if (!cpu_onednn_available ())
    return "oneDNN did not start, and bf16 needs its kernels";
  if (!cpu_onednn_enabled ())
    return "the CPU backend's oneDNN path is switched off (GFCG_CPU_CONV=blas), "
           "and bf16 needs its kernels";
  /* The ISA oneDNN dispatches to: the CPU's, capped by ONEDNN_MAX_CPU_ISA
   * (which is how the tests take bf16 away).  Every ISA from
   * avx512_core_bf16 up (AVX10.1, AMX) has the bf16 bits. */
  isa = dnnl_get_effective_cpu_isa ();
  if (((int) isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16)
    return NULL;
  if (g_once_init_enter (&isa_reason))
    g_once_init_leave (&isa_reason,
                       g_strdup_printf ("this CPU has neither avx512_bf16 nor AMX (oneDNN "
                                        "runs it as %s)", isa_name (isa)));
  return isa_reason;
#else
  return "this gfcg was built without oneDNN (meson -Donednn=disabled or no libdnnl-dev), "
         "and bf16 needs its kernels";
#endif
}

gboolean
gfcg_backend_cpu_set_bf16 (GfcgBackend *be, GError **error)
{
  const char *why = gfcg_cpu_bf16_unsupported ();
  if (why != NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_DEVICE, "cpu:bf16 cannot run here: %s; "
                   "use --device cpu (fp32)", why);
      return FALSE;
    }
  be->precision = GFCG_PRECISION_BF16;
  return TRUE;
}

gboolean
cpu_bf16_wanted (const GfcgBackend *be)
{
  return be->precision == GFCG_PRECISION_BF16;
}
