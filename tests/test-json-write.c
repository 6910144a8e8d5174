/* test-json-write.c — gfcg_json_to_data, the project's one JSON writer,
 * against the numbers json-glib's own generator gets wrong: json-glib 1.6.6
 * (Debian 12) writes 1e20 as "1e+20.0", and every version writes NaN and
 * infinity as C prints them.  The expected texts are exact; test_json.py
 * parses the command's output with Python's strict parser as well. */
#include "gfcg/gfcg-json.h"

#include <math.h>
#include <string.h>

static char *
write_doubles (const double *v, guint n)
{
  JsonArray *a = json_array_new ();
  JsonNode *root = json_node_init_array (json_node_alloc (), a);
  char *out;
  for (guint i = 0; i < n; i++)
    json_array_add_double_element (a, v[i]);
  out = gfcg_json_to_data (root, FALSE, NULL);
  json_node_unref (root);
  return out;
}

static void
test_numbers (void)
{
  const double v[] = { 1e20, 1e-300, 0.1, -0.0, 80.0, 0.002, 1e300, 1.0 / 3.0,
                       NAN, INFINITY, -INFINITY };
  char *out = write_doubles (v, G_N_ELEMENTS (v));
  g_assert_cmpstr (out, ==, "[1e+20,1e-300,0.1,-0.0,80.0,0.002,1e+300,0.3333333333333333,"
                            "null,null,null]");
  g_free (out);
}

/* Every finite double reads back exactly. */
static void
test_round_trip (void)
{
  GRand *r = g_rand_new_with_seed (7);
  for (int i = 0; i < 2000; i++)
    {
      union { guint64 u; double d; } x;
      char *out, *end;
      x.u = ((guint64) g_rand_int (r) << 32) | g_rand_int (r);
      if (!isfinite (x.d))
        continue;
      out = write_doubles (&x.d, 1);
      g_assert_true (out[0] == '[');
      g_assert_true (g_ascii_strtod (out + 1, &end) == x.d);
      g_assert_cmpint (*end, ==, ']');
      g_free (out);
    }
  g_rand_free (r);
}

static void
test_strings_and_layout (void)
{
  JsonObject *o = json_object_new (), *inner = json_object_new ();
  JsonNode *root = json_node_init_object (json_node_alloc (), o);
  char *out;

  json_object_set_string_member (o, "s", "a\"b\\c\n\t\x01 é");
  json_object_set_string_member (o, "bad utf-8", "x\xff" "y");
  json_object_set_int_member (o, "i", -42);
  json_object_set_boolean_member (o, "b", TRUE);
  json_object_set_null_member (o, "n");
  json_object_set_object_member (o, "empty", json_object_new ());
  json_object_set_array_member (o, "list", json_array_new ());
  json_object_set_double_member (inner, "sigma", NAN);
  json_object_set_object_member (o, "inner", inner);
  out = gfcg_json_to_data (root, FALSE, NULL);
  g_assert_cmpstr (out, ==, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001 é\",\"bad utf-8\":\"x\xef\xbf\xbdy\","
                            "\"i\":-42,\"b\":true,\"n\":null,\"empty\":{},\"list\":[],"
                            "\"inner\":{\"sigma\":null}}");
  g_free (out);
  out = gfcg_json_to_data (root, TRUE, NULL);
  g_assert_nonnull (strstr (out, "{\n  \"s\" : "));
  g_assert_nonnull (strstr (out, "\n  \"inner\" : {\n    \"sigma\" : null\n  }\n}"));
  g_free (out);
  json_node_unref (root);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/numbers", test_numbers);
  g_test_add_func ("/json/round-trip", test_round_trip);
  g_test_add_func ("/json/strings-and-layout", test_strings_and_layout);
  return g_test_run ();
}
