/* test-util.h — small helpers shared by the C tests. */
#ifndef GFCG_TEST_UTIL_H
#define GFCG_TEST_UTIL_H

#include <glib.h>

/* n floats uniform in [-scale, scale], the same for the same seed. */
static inline float *
test_rnd (gsize n, guint32 seed, double scale)
{
  GRand *r = g_rand_new_with_seed (seed);
  float *v = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    v[i] = (float) (g_rand_double_range (r, -1.0, 1.0) * scale);
  g_rand_free (r);
  return v;
}

#endif /* GFCG_TEST_UTIL_H */
