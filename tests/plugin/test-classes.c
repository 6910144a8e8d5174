/* test-classes.c — the ImageNet class table the plug-in compiles in: its
 * size, the engine's look-ups by name, synonym and wnid (as the PDB's
 * class-name and `gfcg sample --class` use them), ambiguity, and the filter. */
#include "gfcg-classes.h"

#include <string.h>

static gboolean
only_134 (int imagenet, gpointer data)
{
  return imagenet == 134;
}

static void
test_table (void)
{
  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
    {
      const GfcgClassInfo *c = gfcg_classes_get (i);
      g_assert_nonnull (c);
      g_assert_cmpint (c->index, ==, i);
      g_assert_true (*c->name != '\0');
    }
  g_assert_null (gfcg_classes_get (1000));
  g_assert_null (gfcg_classes_get (-1));
  g_assert_cmpstr (gfcg_classes_name (0), ==, "tench");
  g_assert_cmpstr (gfcg_classes_name (999), ==, "toilet tissue");
  g_assert_cmpstr (gfcg_classes_get (701)->wnid, ==, "n03888257");
}

static void
test_find (void)
{
  g_assert_cmpint (gfcg_imagenet_find ("tench"), ==, 0);
  g_assert_cmpint (gfcg_imagenet_find ("  Tinca_tinca "), ==, 0);
  g_assert_cmpint (gfcg_imagenet_find ("N02102040"), ==, 217);
  g_assert_cmpint (gfcg_imagenet_find ("English springer spaniel"), ==, 217);
  g_assert_cmpint (gfcg_imagenet_find ("chainsaw"), ==, 491);
  g_assert_cmpint (gfcg_imagenet_find ("golf ball"), ==, 574);
  /* "crane" is the machine's name and a synonym of the bird: the name wins,
   * and a synonym does not beat another class's name. */
  g_assert_cmpint (gfcg_imagenet_find ("crane"), ==, 517);
  g_assert_cmpint (gfcg_imagenet_find_preferring ("crane", only_134, NULL), ==, 517);
  g_assert_cmpint (gfcg_imagenet_find ("crane bird"), ==, 134);
  g_assert_cmpint (gfcg_imagenet_find ("unicorn"), ==, -1);
  g_assert_cmpint (gfcg_imagenet_find (""), ==, -1);
  g_assert_cmpint (gfcg_imagenet_find (NULL), ==, -1);
}

static void
test_filter (void)
{
  const GfcgClassInfo *tench = gfcg_classes_get (0);

  g_assert_true (gfcg_classes_filter (tench, ""));
  g_assert_true (gfcg_classes_filter (tench, "tinca"));
  g_assert_true (gfcg_classes_filter (tench, "n0144"));
  g_assert_true (gfcg_classes_filter (tench, "0"));
  g_assert_false (gfcg_classes_filter (tench, "10"));
  g_assert_false (gfcg_classes_filter (tench, "shark"));
  g_assert_true (gfcg_classes_filter (gfcg_classes_get (2), "shark"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/plugin/classes/table", test_table);
  g_test_add_func ("/plugin/classes/find", test_find);
  g_test_add_func ("/plugin/classes/filter", test_filter);
  return g_test_run ();
}
