/* rng.c — the engine's own normal generator, so that a seed gives the same
 * picture on every machine (docs/pack-format.md, "Noise"). */
#include "gfcg-private.h"

#include <math.h>

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * G_GUINT64_CONSTANT (0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * G_GUINT64_CONSTANT (0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() below is finite. */
static double
uniform (guint64 *state)
{
  return ((double) (splitmix64 (state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

void
gfcg_rng_normal (guint64 seed, float *out, gsize n)
{
  gfcg_rng_normal_block (seed, 0, out, n);
}

/* Block b of n normals of the stream of seed: the stream goes on where block
 * b - 1 stopped.  A block takes 2 ceil(n / 2) draws, and every draw adds the
 * constant to the state, so block b starts from seed + b 2 ceil(n / 2) times
 * it (mod 2^64). */
void
gfcg_rng_normal_block (guint64 seed, guint64 block, float *out, gsize n)
{
  guint64 draws = 2 * (((guint64) n + 1) / 2);
  guint64 state = seed + block * draws * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);
  for (gsize i = 0; i < n; i += 2)
    {
      double u1 = uniform (&state), u2 = uniform (&state);
      double r = sqrt (-2.0 * log (u1));
      out[i] = (float) (r * cos (2.0 * G_PI * u2));
      if (i + 1 < n)
        out[i + 1] = (float) (r * sin (2.0 * G_PI * u2));
    }
}
