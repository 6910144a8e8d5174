/* ops-private.h — what the op wrappers (ops.c, ops-ex.c) share: the shape
 * check and the "inputs ready" test every op starts with. */
#ifndef GFCG_OPS_PRIVATE_H
#define GFCG_OPS_PRIVATE_H

#include "backend.h"
#include "gfcg/gfcg.h"

/* A shape mismatch between networks and weights is caught at load time, so
 * one here is a programming error: fail loudly but without crashing. */
static inline gboolean
check (GfcgBackend *be, gboolean cond, const char *what)
{
  if (!cond)
    gfcg_backend_fail (be, GFCG_ERROR_MODEL, "internal shape mismatch in %s", what);
  return cond;
}

#define READY(x) ((x) != NULL && gfcg_backend_ok ((x)->be))

/* A new tensor of x's shape on x's backend. */
static inline GfcgTensor *
like (const GfcgTensor *x)
{
  return gfcg_tensor_new (x->be, x->ndim, x->shape);
}

#endif
