/* test-imagenet.c — the engine's ImageNet table: gfcg_imagenet_suggest, the
 * "did you mean" of the CLI, the plug-in's class-name error and the dialog's
 * class picker. */
#include "gfcg/gfcg.h"

static int
suggest1 (const char *spec)
{
  int out[4];

  return gfcg_imagenet_suggest (spec, out, 1) == 1 ? out[0] : -1;
}

static void
test_suggest (void)
{
  int out[8], n;

  /* Swapped letters, a missing one, one too many, a wrong one. */
  g_assert_cmpint (suggest1 ("golden retreiver"), ==, 207);
  g_assert_cmpint (suggest1 ("golden retrever"), ==, 207);
  g_assert_cmpint (suggest1 ("goldfissh"), ==, 1);
  g_assert_cmpint (suggest1 ("Goldfesh"), ==, 1);
  g_assert_cmpint (suggest1 ("  chain_sow "), ==, 491);   /* normalised like find */
  g_assert_cmpint (suggest1 ("chainsaww"), ==, 491);      /* a synonym */
  g_assert_cmpint (suggest1 ("Carassius auratos"), ==, 1);
  g_assert_cmpint (suggest1 ("n01440765"), ==, 0);        /* a wnid one digit off */
  /* An exact name is its own nearest. */
  g_assert_cmpint (suggest1 ("tench"), ==, 0);
  /* Nothing near, too short to guess, nothing asked. */
  g_assert_cmpint (gfcg_imagenet_suggest ("unicorn", out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest ("xylophonium grande", out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest ("oxx", out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest ("", out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest (NULL, out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest ("goldfissh", out, 0), ==, 0);
  /* Several: nearest first, at most max, each once. */
  n = gfcg_imagenet_suggest ("golden retreiver", out, 8);
  g_assert_cmpint (n, >=, 1);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++)
      g_assert_cmpint (out[i], !=, out[j]);
  /* A whole word of names: every retriever, in index order, after the near
   * misses; not a part of a word. */
  n = gfcg_imagenet_suggest ("Retriever", out, 8);
  g_assert_cmpint (n, ==, 5);
  g_assert_cmpint (out[0], ==, 205);  /* flat-coated retriever */
  g_assert_cmpint (out[2], ==, 207);
  g_assert_cmpint (out[3], ==, 208);
  g_assert_cmpint (gfcg_imagenet_suggest ("retriev", out, 8), ==, 0);
  g_assert_cmpint (gfcg_imagenet_suggest ("golden retriever", out, 2), ==, 1);
  g_assert_cmpint (out[0], ==, 207);  /* itself */
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/imagenet/suggest", test_suggest);
  return g_test_run ();
}
