/* safetensors.c — reading model tensors without trusting the file.
 *
 * Every number in the header is checked before it is used: the header
 * length against the file size, each dtype and shape, each data range
 * against the data section and against the other ranges.  The file is
 * mapped, not copied; conversion to float happens per tensor on request. */
#include "gfcg/gfcg-safetensors.h"
#include "gfcg/gfcg.h"

#include "gfcg/gfcg-json.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20) /* generous: real headers are kilobytes */

struct _GfcgSafetensors
{
  char        *path;
  GMappedFile *map;
  GPtrArray   *entries; /* GfcgStEntry* */
  GHashTable  *by_name; /* name -> GfcgStEntry* */
  GHashTable  *used;    /* names read */
};

static gsize
dtype_size (GfcgDtype d)
{
  return d == GFCG_DTYPE_F32 ? 4 : 2;
}

static void
entry_free (gpointer p)
{
  GfcgStEntry *e = p;
  g_free (e->name);
  g_free (e);
}

void
gfcg_st_close (GfcgSafetensors *st)
{
  if (st == NULL)
    return;
  g_clear_pointer (&st->by_name, g_hash_table_unref);
  g_clear_pointer (&st->used, g_hash_table_unref);
  g_clear_pointer (&st->entries, g_ptr_array_unref);
  g_clear_pointer (&st->map, g_mapped_file_unref);
  g_free (st->path);
  g_free (st);
}

static gboolean
bad (GError **error, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

static gboolean
bad (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  char *msg;
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: %s", path, msg);
  g_free (msg);
  return FALSE;
}

/* A JSON integer in [0, max], or FALSE. */
static gboolean
json_uint (JsonNode *node, gint64 max, gint64 *out)
{
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (node);
  return *out >= 0 && *out <= max;
}

static gboolean
parse_entry (GfcgSafetensors *st, const char *name, JsonNode *node, gsize data_len,
             GError **error)
{
  JsonObject *obj;
  JsonArray *shape, *offs;
  JsonNode *n;
  const char *dtype;
  GfcgStEntry *e;
  gint64 begin, end;
  gsize numel = 1;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return bad (error, st->path, "tensor '%s': header entry is not an object", name);
  obj = json_node_get_object (node);
  n = json_object_get_member (obj, "dtype");
  if (n == NULL)
    return bad (error, st->path, "tensor '%s': no dtype", name);
  /* Asking json-glib for the string of an array or object is a critical. */
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return bad (error, st->path, "tensor '%s': 'dtype' must be a string", name);
  dtype = json_node_get_string (n);
  e = g_new0 (GfcgStEntry, 1);
  e->name = g_strdup (name);
  g_ptr_array_add (st->entries, e);
  if (strcmp (dtype, "F32") == 0)
    e->dtype = GFCG_DTYPE_F32;
  else if (strcmp (dtype, "F16") == 0)
    e->dtype = GFCG_DTYPE_F16;
  else if (strcmp (dtype, "BF16") == 0)
    e->dtype = GFCG_DTYPE_BF16;
  else
    return bad (error, st->path, "tensor '%s': unsupported dtype %s (F32, F16 or BF16 expected)",
                name, dtype);

  if (!json_object_has_member (obj, "shape") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj, "shape")))
    return bad (error, st->path, "tensor '%s': no shape", name);
  shape = json_object_get_array_member (obj, "shape");
  e->ndim = (int) json_array_get_length (shape);
  if (e->ndim > 8)
    return bad (error, st->path, "tensor '%s': %d dimensions (at most 8)", name, e->ndim);
  for (int i = 0; i < e->ndim; i++)
    {
      if (!json_uint (json_array_get_element (shape, i), G_MAXINT32, &e->shape[i]))
        return bad (error, st->path, "tensor '%s': dimension %d is not a valid size", name, i);
      /* The data section bounds numel, so this cannot overflow. */
      if (e->shape[i] != 0 && numel > data_len / (gsize) e->shape[i] + 1)
        return bad (error, st->path, "tensor '%s': shape larger than the file", name);
      numel *= (gsize) e->shape[i];
    }
  e->numel = numel;

  if (!json_object_has_member (obj, "data_offsets") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (obj, "data_offsets")) ||
      json_array_get_length (offs = json_object_get_array_member (obj, "data_offsets")) != 2 ||
      !json_uint (json_array_get_element (offs, 0), G_MAXINT64, &begin) ||
      !json_uint (json_array_get_element (offs, 1), G_MAXINT64, &end))
    return bad (error, st->path, "tensor '%s': data_offsets must be two non-negative integers", name);
  if (begin > end || (guint64) end > data_len)
    return bad (error, st->path, "tensor '%s': data range [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                ") lies outside the %" G_GSIZE_FORMAT " bytes of data (truncated file?)",
                name, begin, end, data_len);
  if ((guint64) (end - begin) != numel * dtype_size (e->dtype))
    return bad (error, st->path, "tensor '%s': %" G_GINT64_FORMAT " bytes of data for %"
                G_GSIZE_FORMAT " elements of %s", name, end - begin, numel, dtype);
  e->data = (const guint8 *) g_mapped_file_get_contents (st->map) + 8 +
            (g_mapped_file_get_length (st->map) - 8 - data_len) + begin;
  g_hash_table_insert (st->by_name, e->name, e);
  return TRUE;
}

static int
by_offset (gconstpointer a, gconstpointer b)
{
  const GfcgStEntry *x = *(GfcgStEntry **) a, *y = *(GfcgStEntry **) b;
  return x->data < y->data ? -1 : x->data > y->data;
}

GfcgSafetensors *
gfcg_st_open (const char *path, GError **error)
{
  GfcgSafetensors *st;
  GError *err = NULL;
  const guint8 *bytes;
  gsize len, data_len;
  guint64 hlen = 0;
  JsonParser *parser = NULL;
  JsonNode *root;
  GPtrArray *sorted;

  st = g_new0 (GfcgSafetensors, 1);
  st->path = g_strdup (path);
  st->entries = g_ptr_array_new_with_free_func (entry_free);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->used = g_hash_table_new (g_str_hash, g_str_equal);
  st->map = g_mapped_file_new (path, FALSE, &err);
  if (st->map == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_IO, "%s: %s", path, err->message);
      g_error_free (err);
      goto fail;
    }
  bytes = (const guint8 *) g_mapped_file_get_contents (st->map);
  len = g_mapped_file_get_length (st->map);
  if (len < 8)
    {
      bad (error, path, "too short to be a safetensors file (%" G_GSIZE_FORMAT " bytes)", len);
      goto fail;
    }
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | bytes[i];
  if (hlen > MAX_HEADER || hlen > len - 8)
    {
      bad (error, path, "header length %" G_GUINT64_FORMAT " exceeds the file (%" G_GSIZE_FORMAT
           " bytes): not a safetensors file, or truncated", hlen, len);
      goto fail;
    }
  data_len = len - 8 - hlen;

  /* Not json_parser_new_immutable (): json-glib (1.6 to 1.10 at least) then
   * aborts on a header of two JSON values such as "{}{}" (an assertion in
   * json_parser_get_root: the second root is never sealed).  Found by
   * tests/fuzz/fuzz-safetensors. */
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const char *) bytes + 8, (gssize) hlen, &err))
    {
      bad (error, path, "header is not valid JSON: %s", err->message);
      g_error_free (err);
      goto fail;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      bad (error, path, "header is not a JSON object");
      goto fail;
    }
  {
    JsonObject *obj = json_node_get_object (root);
    GList *members = json_object_get_members (obj);
    gboolean ok = TRUE;
    for (GList *l = members; l != NULL && ok; l = l->next)
      {
        if (strcmp (l->data, "__metadata__") == 0)
          continue;
        if (g_hash_table_contains (st->by_name, l->data))
          ok = bad (error, path, "tensor '%s' appears twice", (char *) l->data);
        else
          ok = parse_entry (st, l->data, json_object_get_member (obj, l->data), data_len, error);
      }
    g_list_free (members);
    if (!ok)
      goto fail;
  }

  /* Ranges must not overlap: a hostile file could alias one tensor's bytes
   * as another's. */
  sorted = g_ptr_array_copy (st->entries, NULL, NULL);
  g_ptr_array_set_free_func (sorted, NULL); /* the copy must not free entries */
  g_ptr_array_sort (sorted, by_offset);
  for (guint i = 1; i < sorted->len; i++)
    {
      GfcgStEntry *a = sorted->pdata[i - 1], *b = sorted->pdata[i];
      if (a->data + a->numel * dtype_size (a->dtype) > b->data)
        {
          bad (error, path, "tensors '%s' and '%s' overlap", a->name, b->name);
          g_ptr_array_unref (sorted);
          goto fail;
        }
    }
  g_ptr_array_unref (sorted);
  g_object_unref (parser);
  return st;

fail:
  g_clear_object (&parser);
  gfcg_st_close (st);
  return NULL;
}

const char *
gfcg_st_path (const GfcgSafetensors *st)
{
  return st->path;
}

guint
gfcg_st_n (const GfcgSafetensors *st)
{
  return st->entries->len;
}

const GfcgStEntry *
gfcg_st_entry (const GfcgSafetensors *st, guint i)
{
  return i < st->entries->len ? st->entries->pdata[i] : NULL;
}

const GfcgStEntry *
gfcg_st_lookup (const GfcgSafetensors *st, const char *name)
{
  return g_hash_table_lookup (st->by_name, name);
}

guint
gfcg_st_n_unused (const GfcgSafetensors *st)
{
  return st->entries->len - g_hash_table_size (st->used);
}

float
gfcg_half_to_float (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  float f;
  if (exp == 0x1f) /* inf / nan */
    bits = sign | 0x7f800000u | (man << 13);
  else if (exp != 0)
    bits = sign | ((exp + 112) << 23) | (man << 13);
  else if (man == 0)
    bits = sign;
  else /* subnormal half: exact as a normal float */
    {
      f = ldexpf ((float) man, -24);
      return sign ? -f : f;
    }
  memcpy (&f, &bits, 4);
  return f;
}

static char *
shape_str (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

float *
gfcg_st_read (GfcgSafetensors *st, const char *name, int ndim, const gint64 *shape,
              GError **error)
{
  const GfcgStEntry *e = gfcg_st_lookup (st, name);
  gboolean same;
  float *out;

  if (e == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: tensor '%s' is missing", st->path, name);
      return NULL;
    }
  same = e->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = e->shape[i] == shape[i];
  if (!same)
    {
      char *want = shape_str (ndim, shape), *got = shape_str (e->ndim, e->shape);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                   "%s: tensor '%s' has shape %s, the pack's config needs %s",
                   st->path, name, got, want);
      g_free (want);
      g_free (got);
      return NULL;
    }
  out = g_try_new (float, MAX (e->numel, 1));
  if (out == NULL)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_NO_MEMORY, "%s: no memory for tensor '%s'",
                   st->path, name);
      return NULL;
    }
  for (gsize i = 0; i < e->numel; i++)
    {
      guint32 u32;
      guint16 u16;
      switch (e->dtype)
        {
        case GFCG_DTYPE_F32:
          memcpy (&u32, e->data + 4 * i, 4);
          u32 = GUINT32_FROM_LE (u32);
          memcpy (&out[i], &u32, 4);
          break;
        case GFCG_DTYPE_F16:
          memcpy (&u16, e->data + 2 * i, 2);
          out[i] = gfcg_half_to_float (GUINT16_FROM_LE (u16));
          break;
        case GFCG_DTYPE_BF16:
          memcpy (&u16, e->data + 2 * i, 2);
          u32 = (guint32) GUINT16_FROM_LE (u16) << 16;
          memcpy (&out[i], &u32, 4);
          break;
        }
      if (!isfinite (out[i]))
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s: tensor '%s' holds a non-finite value (element %" G_GSIZE_FORMAT ")",
                       st->path, name, i);
          g_free (out);
          return NULL;
        }
    }
  g_hash_table_add (st->used, e->name);
  return out;
}

gboolean
gfcg_st_write (const char *path, const GfcgStWrite *tensors, guint n, GError **error)
{
  JsonBuilder *b = json_builder_new ();
  GString *out;
  gsize offset = 0, hlen;
  char *header;
  gboolean ok;

  json_builder_begin_object (b);
  for (guint i = 0; i < n; i++)
    {
      gsize numel = 1;
      for (int d = 0; d < tensors[i].ndim; d++)
        numel *= (gsize) tensors[i].shape[d];
      json_builder_set_member_name (b, tensors[i].name);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "dtype");
      json_builder_add_string_value (b, "F32");
      json_builder_set_member_name (b, "shape");
      json_builder_begin_array (b);
      for (int d = 0; d < tensors[i].ndim; d++)
        json_builder_add_int_value (b, tensors[i].shape[d]);
      json_builder_end_array (b);
      json_builder_set_member_name (b, "data_offsets");
      json_builder_begin_array (b);
      json_builder_add_int_value (b, (gint64) offset);
      json_builder_add_int_value (b, (gint64) (offset + 4 * numel));
      json_builder_end_array (b);
      json_builder_end_object (b);
      offset += 4 * numel;
    }
  json_builder_end_object (b);
  {
    JsonNode *root = json_builder_get_root (b); /* a new reference: ours to free */
    header = gfcg_json_to_data (root, FALSE, &hlen);
    json_node_unref (root);
  }
  g_object_unref (b);

  out = g_string_sized_new (8 + hlen + 8 + offset);
  /* Pad the header with spaces so the data starts 8-byte aligned. */
  {
    gsize padded = (hlen + 7) & ~(gsize) 7;
    guint64 le = GUINT64_TO_LE ((guint64) padded);
    g_string_append_len (out, (const char *) &le, 8);
    g_string_append_len (out, header, hlen);
    for (gsize i = hlen; i < padded; i++)
      g_string_append_c (out, ' ');
  }
  for (guint i = 0; i < n; i++)
    {
      gsize numel = 1;
      for (int d = 0; d < tensors[i].ndim; d++)
        numel *= (gsize) tensors[i].shape[d];
      for (gsize j = 0; j < numel; j++)
        {
          guint32 u;
          memcpy (&u, &tensors[i].data[j], 4);
          u = GUINT32_TO_LE (u);
          g_string_append_len (out, (const char *) &u, 4);
        }
    }
  ok = g_file_set_contents (path, out->str, (gssize) out->len, error);
  g_string_free (out, TRUE);
  g_free (header);
  return ok;
}
