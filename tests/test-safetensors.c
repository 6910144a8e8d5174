/* test-safetensors.c — the loader against well-formed and hostile files.
 * Runs under AddressSanitizer/UBSan too (make check builds build-asan/). */
#include "gfcg/gfcg-safetensors.h"
#include "gfcg/gfcg.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static char *dir;

/* Writes header + data as a safetensors file; hlen_override != 0 lies about
 * the header length. */
static char *
write_file (const char *name, const char *header, const void *data, gsize data_len,
            guint64 hlen_override, gsize truncate_to)
{
  char *path = g_build_filename (dir, name, NULL);
  GString *s = g_string_new (NULL);
  guint64 hlen = GUINT64_TO_LE (hlen_override ? hlen_override : strlen (header));
  g_string_append_len (s, (const char *) &hlen, 8);
  g_string_append (s, header);
  g_string_append_len (s, data, data_len);
  g_assert_true (g_file_set_contents (path, s->str,
                                      truncate_to ? (gssize) truncate_to : (gssize) s->len, NULL));
  g_string_free (s, TRUE);
  return path;
}

static void
expect_error (const char *path, const char *fragment)
{
  GError *error = NULL;
  GfcgSafetensors *st = gfcg_st_open (path, &error);
  g_assert_null (st);
  g_assert_nonnull (error);
  if (strstr (error->message, fragment) == NULL)
    g_error ("message '%s' lacks '%s'", error->message, fragment);
  g_assert_nonnull (strstr (error->message, path));
  g_error_free (error);
}

static const float two[2] = { 1.5f, -2.0f };

static void
test_valid (void)
{
  GError *error = NULL;
  const guint16 half[2] = { GUINT16_TO_LE (0x3c00), GUINT16_TO_LE (0xc000) }; /* 1, -2 */
  char *path;
  GfcgSafetensors *st;
  float *v;
  gint64 shape[1] = { 2 };
  guint8 data[12];

  memcpy (data, two, 8);
  memcpy (data + 8, half, 4);
  path = write_file ("ok.safetensors",
                     "{\"__metadata__\":{\"a\":\"b\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                     "\"data_offsets\":[0,8]},\"h\":{\"dtype\":\"F16\",\"shape\":[2],"
                     "\"data_offsets\":[8,12]},\"extra\":{\"dtype\":\"F32\",\"shape\":[0],"
                     "\"data_offsets\":[12,12]}}",
                     data, 12, 0, 0);
  st = gfcg_st_open (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (gfcg_st_n (st), ==, 3);
  v = gfcg_st_read (st, "w", 1, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (v[0], ==, 1.5f);
  g_assert_cmpfloat (v[1], ==, -2.0f);
  g_free (v);
  v = gfcg_st_read (st, "h", 1, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpfloat (v[0], ==, 1.0f);
  g_assert_cmpfloat (v[1], ==, -2.0f);
  g_free (v);
  g_assert_cmpuint (gfcg_st_n_unused (st), ==, 1);

  /* A wrong expected shape and a missing tensor are errors naming the tensor. */
  shape[0] = 3;
  g_assert_null (gfcg_st_read (st, "w", 1, shape, &error));
  g_assert_nonnull (strstr (error->message, "'w' has shape [2]"));
  g_clear_error (&error);
  g_assert_null (gfcg_st_read (st, "nope", 1, shape, &error));
  g_assert_nonnull (strstr (error->message, "'nope' is missing"));
  g_clear_error (&error);
  gfcg_st_close (st);
  g_free (path);
}

static void
test_hostile (void)
{
  char *p;
  guint8 zeros[64] = { 0 };

  p = write_file ("short", "", NULL, 0, 0, 5);
  expect_error (p, "too short");
  g_free (p);
  p = write_file ("huge-header", "{}", NULL, 0, G_GUINT64_CONSTANT (1) << 62, 0);
  expect_error (p, "header length");
  g_free (p);
  p = write_file ("header-past-end", "{}", NULL, 0, 1000, 0);
  expect_error (p, "header length");
  g_free (p);
  p = write_file ("not-json", "{\"w\": [", NULL, 0, 0, 0);
  expect_error (p, "not valid JSON");
  g_free (p);
  p = write_file ("not-object", "[1,2]", NULL, 0, 0, 0);
  expect_error (p, "not a JSON object");
  g_free (p);
  p = write_file ("dtype", "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                  zeros, 8, 0, 0);
  expect_error (p, "unsupported dtype I64");
  g_free (p);
  /* Not a string: a GLib critical (fatal under g_test) before it was checked. */
  p = write_file ("dtype-list", "{\"w\":{\"dtype\":[\"F32\"],\"shape\":[1],\"data_offsets\":[0,4]}}",
                  zeros, 4, 0, 0);
  expect_error (p, "'dtype' must be a string");
  g_free (p);
  p = write_file ("dtype-number", "{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}",
                  zeros, 4, 0, 0);
  expect_error (p, "'dtype' must be a string");
  g_free (p);
  p = write_file ("neg-shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                  zeros, 4, 0, 0);
  expect_error (p, "not a valid size");
  g_free (p);
  p = write_file ("float-shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                  zeros, 4, 0, 0);
  expect_error (p, "not a valid size");
  g_free (p);
  p = write_file ("overflow-shape",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483647,2147483647,2147483647,8],"
                  "\"data_offsets\":[0,4]}}", zeros, 4, 0, 0);
  expect_error (p, "larger than the file");
  g_free (p);
  p = write_file ("past-end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                  zeros, 8, 0, 0);
  expect_error (p, "outside the 8 bytes");
  g_free (p);
  p = write_file ("size-mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                  zeros, 8, 0, 0);
  expect_error (p, "8 bytes of data for 3 elements");
  g_free (p);
  p = write_file ("reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}",
                  zeros, 8, 0, 0);
  expect_error (p, "outside");
  g_free (p);
  p = write_file ("overlap",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                  zeros, 16, 0, 0);
  expect_error (p, "overlap");
  g_free (p);
  p = write_file ("offsets-missing", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", zeros, 4, 0, 0);
  expect_error (p, "data_offsets");
  g_free (p);
  p = write_file ("truncated",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[0,64]}}",
                  zeros, 64, 0, 8 + 60 + 20);
  expect_error (p, "truncated");
  g_free (p);
  p = g_build_filename (dir, "does-not-exist", NULL);
  expect_error (p, "does-not-exist");
  g_free (p);
}

/* Two JSON values in the header (found by tests/fuzz/fuzz-safetensors): the
 * immutable json-glib parser used to abort the process in json_parser_get_root.
 * json-glib keeps one of the values; either way the open must return. */
static void
test_two_json_values (void)
{
  static const char *const headers[] = { "{}{}", "1{}", "\"F64\"{\"a\":1}",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}{}" };
  for (guint i = 0; i < G_N_ELEMENTS (headers); i++)
    {
      char *name = g_strdup_printf ("two-values-%u", i);
      char *p = write_file (name, headers[i], two, sizeof two, 0, 0);
      GError *error = NULL;
      GfcgSafetensors *st = gfcg_st_open (p, &error);
      g_assert_true ((st != NULL) != (error != NULL));
      gfcg_st_close (st);
      g_clear_error (&error);
      g_free (name);
      g_free (p);
    }
}

static void
test_nan (void)
{
  GError *error = NULL;
  float bad[2] = { 1.0f, NAN };
  gint64 shape[1] = { 2 };
  char *p = write_file ("nan", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                        bad, 8, 0, 0);
  GfcgSafetensors *st = gfcg_st_open (p, &error);
  g_assert_no_error (error);
  g_assert_null (gfcg_st_read (st, "w", 1, shape, &error));
  g_assert_nonnull (strstr (error->message, "non-finite"));
  g_clear_error (&error);
  gfcg_st_close (st);
  g_free (p);
}

static void
test_half (void)
{
  /* Normal, subnormal, zero, negative, infinity. */
  g_assert_cmpfloat (gfcg_half_to_float (0x3c00), ==, 1.0f);
  g_assert_cmpfloat (gfcg_half_to_float (0x3555), ==, 0.333251953125f);
  g_assert_cmpfloat (gfcg_half_to_float (0x0001), ==, ldexpf (1.0f, -24));
  g_assert_cmpfloat (gfcg_half_to_float (0x8000), ==, 0.0f);
  g_assert_cmpfloat (gfcg_half_to_float (0xc400), ==, -4.0f);
  g_assert_true (isinf (gfcg_half_to_float (0x7c00)));
  g_assert_cmpfloat (gfcg_half_to_float (0x7bff), ==, 65504.0f);
}

static void
test_roundtrip (void)
{
  GError *error = NULL;
  char *p = g_build_filename (dir, "written.safetensors", NULL);
  GfcgStWrite t = { "x", 2, { 1, 2 }, two };
  GfcgSafetensors *st;
  gint64 shape[2] = { 1, 2 };
  float *v;

  g_assert_true (gfcg_st_write (p, &t, 1, &error));
  st = gfcg_st_open (p, &error);
  g_assert_no_error (error);
  v = gfcg_st_read (st, "x", 2, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (v, 8, two, 8);
  g_free (v);
  gfcg_st_close (st);
  g_free (p);
}

int
main (int argc, char **argv)
{
  int status;
  g_test_init (&argc, &argv, NULL);
  dir = g_dir_make_tmp ("gfcg-st-XXXXXX", NULL);
  g_test_add_func ("/safetensors/valid", test_valid);
  g_test_add_func ("/safetensors/hostile", test_hostile);
  g_test_add_func ("/safetensors/two-json-values", test_two_json_values);
  g_test_add_func ("/safetensors/nan", test_nan);
  g_test_add_func ("/safetensors/half", test_half);
  g_test_add_func ("/safetensors/roundtrip", test_roundtrip);
  status = g_test_run ();
  /* Leave nothing behind. */
  {
    GDir *d = g_dir_open (dir, 0, NULL);
    const char *n;
    while (d != NULL && (n = g_dir_read_name (d)) != NULL)
      {
        char *f = g_build_filename (dir, n, NULL);
        g_unlink (f);
        g_free (f);
      }
    if (d)
      g_dir_close (d);
    g_rmdir (dir);
  }
  g_free (dir);
  return status;
}
