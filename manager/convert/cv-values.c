/* cv-values.c — the inert values the restricted unpickler builds: a heap
 * that owns them all (freed at once), dicts with an index for larger ones,
 * Python's equality and hashing rules for the keys these files use, and
 * type names and short reprs for messages. */
#include "cv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (gfcg-convert-error-quark, cv_error)

struct _CvHeap
{
  GPtrArray *values; /* Pv*, with their arrays */
  GPtrArray *blocks; /* strings and other plain allocations */
};

static void
pv_destroy (gpointer p)
{
  Pv *v = p;

  switch (v->type)
    {
    case PV_LIST: case PV_TUPLE: case PV_SET: case PV_FROZENSET:
      g_free (v->seq.items);
      break;
    case PV_DICT:
      g_free (v->dict.keys);
      g_free (v->dict.vals);
      if (v->dict.index != NULL)
        g_hash_table_unref (v->dict.index);
      break;
    default:
      break;
    }
  if (v->owned)
    g_free ((gpointer) v->s.p);
  g_free (v);
}

CvHeap *
cv_heap_new (void)
{
  CvHeap *h = g_new0 (CvHeap, 1);

  h->values = g_ptr_array_new_with_free_func (pv_destroy);
  h->blocks = g_ptr_array_new_with_free_func (g_free);
  return h;
}

void
cv_heap_free (CvHeap *heap)
{
  if (heap == NULL)
    return;
  g_ptr_array_unref (heap->values);
  g_ptr_array_unref (heap->blocks);
  g_free (heap);
}

Pv *
cv_pv_new (CvHeap *heap, PvType type)
{
  Pv *v = g_new0 (Pv, 1);

  v->type = type;
  g_ptr_array_add (heap->values, v);
  return v;
}

const char *
cv_heap_strdup (CvHeap *heap, const char *s)
{
  char *c = g_strdup (s);

  g_ptr_array_add (heap->blocks, c);
  return c;
}

char *
cv_heap_printf (CvHeap *heap, const char *fmt, ...)
{
  va_list ap;
  char   *s;

  va_start (ap, fmt);
  s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (heap->blocks, s);
  return s;
}

void
cv_prefix_error (GError **error, const char *prefix)
{
  if (error == NULL || *error == NULL || prefix == NULL)
    return;
  if (g_str_has_prefix ((*error)->message, prefix) &&
      ((*error)->message[strlen (prefix)] == ':' || (*error)->message[strlen (prefix)] == ' '))
    return;
  g_prefix_error (error, "%s: ", prefix);
}

gboolean
cv_cancelled (volatile sig_atomic_t *cancel, GError **error)
{
  if (cancel != NULL && *cancel)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CANCELLED, "interrupted");
      return TRUE;
    }
  return FALSE;
}

/* ---- dtypes ------------------------------------------------------------------- */

gsize
cv_dtype_size (CvDtype d)
{
  static const gsize size[CV_DT_N] = { 8, 4, 2, 2, 8, 4, 2, 1, 1, 1 };

  return d < CV_DT_N ? size[d] : 0;
}

gboolean
cv_dtype_is_float (CvDtype d)
{
  return d == CV_DT_F64 || d == CV_DT_F32 || d == CV_DT_F16 || d == CV_DT_BF16;
}

const char *
cv_dtype_torch (CvDtype d)
{
  static const char *name[CV_DT_N] = {
    "torch.float64", "torch.float32", "torch.float16", "torch.bfloat16", "torch.int64",
    "torch.int32", "torch.int16", "torch.int8", "torch.uint8", "torch.bool"
  };

  return d < CV_DT_N ? name[d] : "?";
}

/* ---- names and reprs ------------------------------------------------------------ */

const char *
cv_pv_type_name (const Pv *v)
{
  switch (v->type)
    {
    case PV_NONE: return "NoneType";
    case PV_BOOL: return "bool";
    case PV_INT: case PV_BIGINT: return "int";
    case PV_FLOAT: return "float";
    case PV_STR: return "str";
    case PV_BYTES: return "bytes";
    case PV_BYTEARRAY: return "bytearray";
    case PV_LIST: return "list";
    case PV_TUPLE: return "tuple";
    case PV_DICT:
      return v->kind == PV_DICT_ORDERED ? "OrderedDict" : v->kind == PV_DICT_EASY ? "EasyDictStandIn" : "dict";
    case PV_SET: return "set";
    case PV_FROZENSET: return "frozenset";
    case PV_GLOBAL:
      return v->g.id == G_STANDIN || v->g.id == G_ODICT || v->g.id == G_SET || v->g.id == G_FROZENSET ||
             v->g.id == G_EASYDICT ? "type" : v->g.id == G_STORAGE_TYPE ? "StorageType" : "function";
    case PV_PERSISTENT: return "PersistentObject";
    case PV_STANDIN: return "StandIn";
    case PV_STORAGE: return "TypedStorage";
    case PV_TENSOR: return "Tensor";
    case PV_BADTENSOR: return "BadTensor";
    }
  return "object";
}

static void
repr_str (GString *s, const guint8 *p, gsize n, gboolean bytes)
{
  if (bytes)
    g_string_append_c (s, 'b');
  g_string_append_c (s, '\'');
  for (gsize i = 0; i < n && s->len < 4096; i++)
    {
      guint8 c = p[i];
      if (c == '\'' || c == '\\')
        g_string_append_printf (s, "\\%c", c);
      else if (c == '\n')
        g_string_append (s, "\\n");
      else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80))
        g_string_append_printf (s, "\\x%02x", c);
      else
        g_string_append_c (s, (char) c);
    }
  g_string_append_c (s, '\'');
}

static void
repr_into (GString *s, const Pv *v, int depth, gsize max)
{
  if (s->len > max)
    return;
  if (depth > 8)
    {
      g_string_append (s, "...");
      return;
    }
  switch (v->type)
    {
    case PV_NONE: g_string_append (s, "None"); break;
    case PV_BOOL: g_string_append (s, v->b ? "True" : "False"); break;
    case PV_INT: g_string_append_printf (s, "%" G_GINT64_FORMAT, v->i); break;
    case PV_BIGINT: g_string_append (s, "<a large int>"); break;
    case PV_FLOAT: cv_py_float_repr (s, v->f); break;
    case PV_STR: repr_str (s, v->s.p, v->s.n, FALSE); break;
    case PV_BYTES: repr_str (s, v->s.p, MIN (v->s.n, 64), TRUE); break;
    case PV_BYTEARRAY:
      g_string_append (s, "bytearray(");
      repr_str (s, v->s.p, MIN (v->s.n, 64), TRUE);
      g_string_append_c (s, ')');
      break;
    case PV_LIST: case PV_TUPLE: case PV_SET: case PV_FROZENSET:
      {
        const char *open = v->type == PV_LIST ? "[" : v->type == PV_TUPLE ? "(" :
                           v->type == PV_SET ? "{" : "frozenset({";
        const char *close = v->type == PV_LIST ? "]" : v->type == PV_TUPLE ? ")" :
                            v->type == PV_SET ? "}" : "})";
        g_string_append (s, open);
        for (guint i = 0; i < v->seq.n && s->len <= max; i++)
          {
            if (i > 0)
              g_string_append (s, ", ");
            repr_into (s, v->seq.items[i], depth + 1, max);
          }
        if (v->type == PV_TUPLE && v->seq.n == 1)
          g_string_append_c (s, ',');
        g_string_append (s, close);
        break;
      }
    case PV_DICT:
      if (v->kind == PV_DICT_ORDERED)
        g_string_append (s, "OrderedDict(");
      g_string_append_c (s, '{');
      for (guint i = 0; i < v->dict.n && s->len <= max; i++)
        {
          if (i > 0)
            g_string_append (s, ", ");
          repr_into (s, v->dict.keys[i], depth + 1, max);
          g_string_append (s, ": ");
          repr_into (s, v->dict.vals[i], depth + 1, max);
        }
      g_string_append_c (s, '}');
      if (v->kind == PV_DICT_ORDERED)
        g_string_append_c (s, ')');
      break;
    case PV_GLOBAL: g_string_append_printf (s, "<%s>", v->g.name); break;
    case PV_PERSISTENT: g_string_append_printf (s, "<persistent %s>", v->pers.class_name); break;
    case PV_STANDIN: g_string_append_printf (s, "<stand-in for %s>", v->standin.qualname); break;
    case PV_STORAGE: g_string_append_printf (s, "<storage of %" G_GINT64_FORMAT " %s>",
                                             v->storage.numel, cv_dtype_torch (v->storage.dtype)); break;
    case PV_TENSOR: g_string_append (s, "<tensor>"); break;
    case PV_BADTENSOR: g_string_append_printf (s, "<refused tensor: %s>", v->bad.problem); break;
    }
}

char *
cv_pv_repr (const Pv *v, gsize max)
{
  GString *s = g_string_new (NULL);

  repr_into (s, v, 0, max);
  if (s->len > max)
    {
      g_string_truncate (s, max);
    }
  return g_string_free (s, FALSE);
}

/* ---- hashing and equality (Python's rules for hashable keys) ---------------------- */

static gboolean
hashable (const Pv *v, int depth)
{
  switch (v->type)
    {
    case PV_LIST: case PV_DICT: case PV_SET: case PV_BYTEARRAY:
      return FALSE;
    case PV_TUPLE:
      if (depth > 64)
        return FALSE;
      for (guint i = 0; i < v->seq.n; i++)
        if (!hashable (v->seq.items[i], depth + 1))
          return FALSE;
      return TRUE;
    default:
      return TRUE;
    }
}

static guint
bytes_hash (const guint8 *p, gsize n)
{
  guint h = 5381;

  for (gsize i = 0; i < n; i++)
    h = h * 33 + p[i];
  return h;
}

/* A bigint's bytes without redundant sign bytes at the top. */
static gsize
bigint_len (const Pv *v)
{
  gsize n = v->s.n;

  while (n > 1)
    {
      guint8 top = v->s.p[n - 1], next = v->s.p[n - 2];
      if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
        n--;
      else
        break;
    }
  return n;
}

static guint
pv_hash_depth (const Pv *v, int depth)
{
  switch (v->type)
    {
    case PV_NONE: return 0x9e37;
    case PV_BOOL: return (guint) v->b;
    case PV_INT: return (guint) (v->i ^ (v->i >> 32));
    case PV_FLOAT:
      if (v->f == floor (v->f) && fabs (v->f) < 9.2e18)
        {
          gint64 i = (gint64) v->f;
          return (guint) (i ^ (i >> 32));
        }
      {
        guint64 bits;
        memcpy (&bits, &v->f, 8); /* not a cast: NaN and the infinities hash too */
        return (guint) (bits ^ (bits >> 32));
      }
    case PV_BIGINT: return bytes_hash (v->s.p, bigint_len (v));
    case PV_STR: case PV_BYTES: return bytes_hash (v->s.p, v->s.n);
    case PV_TUPLE:
      {
        guint h = 0x345678;
        for (guint i = 0; i < v->seq.n && depth < 64; i++)
          h = (h ^ pv_hash_depth (v->seq.items[i], depth + 1)) * 1000003;
        return h;
      }
    case PV_FROZENSET:
      {
        guint h = 0;
        for (guint i = 0; i < v->seq.n && depth < 64; i++)
          h ^= pv_hash_depth (v->seq.items[i], depth + 1);
        return h;
      }
    default:
      return g_direct_hash (v);
    }
}

static guint
pv_hash (gconstpointer p)
{
  return pv_hash_depth (p, 0);
}

static gboolean pv_equal_depth (const Pv *a, const Pv *b, int depth);

static gboolean
numeric (const Pv *v, double *d, gint64 *i, gboolean *is_int)
{
  switch (v->type)
    {
    case PV_BOOL: *i = v->b; *is_int = TRUE; *d = v->b; return TRUE;
    case PV_INT: *i = v->i; *is_int = TRUE; *d = (double) v->i; return TRUE;
    case PV_FLOAT: *d = v->f; *is_int = FALSE; return TRUE;
    default: return FALSE;
    }
}

static gboolean
set_contains (const Pv *set, const Pv *x, int depth)
{
  for (guint i = 0; i < set->seq.n; i++)
    if (pv_equal_depth (set->seq.items[i], x, depth + 1))
      return TRUE;
  return FALSE;
}

static gboolean
pv_equal_depth (const Pv *a, const Pv *b, int depth)
{
  double  da, db;
  gint64  ia = 0, ib = 0;
  gboolean inta, intb;

  if (a == b)
    return TRUE;
  if (depth > 64)
    return FALSE;
  if (numeric (a, &da, &ia, &inta) && numeric (b, &db, &ib, &intb))
    return inta && intb ? ia == ib : da == db;
  if ((a->type == PV_SET || a->type == PV_FROZENSET) && (b->type == PV_SET || b->type == PV_FROZENSET))
    {
      for (guint i = 0; i < a->seq.n; i++)
        if (!set_contains (b, a->seq.items[i], depth))
          return FALSE;
      for (guint i = 0; i < b->seq.n; i++)
        if (!set_contains (a, b->seq.items[i], depth))
          return FALSE;
      return TRUE;
    }
  if ((a->type == PV_BYTES || a->type == PV_BYTEARRAY) && (b->type == PV_BYTES || b->type == PV_BYTEARRAY))
    return a->s.n == b->s.n && memcmp (a->s.p, b->s.p, a->s.n) == 0;
  if (a->type != b->type)
    return FALSE;
  switch (a->type)
    {
    case PV_NONE:
      return TRUE;
    case PV_STR:
      return a->s.n == b->s.n && memcmp (a->s.p, b->s.p, a->s.n) == 0;
    case PV_BIGINT:
      {
        gsize na = bigint_len (a), nb = bigint_len (b);
        return na == nb && memcmp (a->s.p, b->s.p, na) == 0;
      }
    case PV_TUPLE: case PV_LIST:
      if (a->seq.n != b->seq.n)
        return FALSE;
      for (guint i = 0; i < a->seq.n; i++)
        if (!pv_equal_depth (a->seq.items[i], b->seq.items[i], depth + 1))
          return FALSE;
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
pv_equal (gconstpointer a, gconstpointer b)
{
  return pv_equal_depth (a, b, 0);
}

gboolean
cv_pv_equal (const Pv *a, const Pv *b)
{
  return pv_equal_depth (a, b, 0);
}

gboolean
cv_pv_hashable (const Pv *v)
{
  return hashable (v, 0);
}

/* ---- dicts, lists, sets ----------------------------------------------------------- */

void
cv_seq_append (Pv *seq, Pv *item)
{
  if (seq->seq.n == seq->seq.cap)
    {
      seq->seq.cap = seq->seq.cap ? seq->seq.cap * 2 : 4;
      seq->seq.items = g_renew (Pv *, seq->seq.items, seq->seq.cap);
    }
  seq->seq.items[seq->seq.n++] = item;
}

static gint
dict_find (const Pv *d, const Pv *key)
{
  if (d->dict.index != NULL)
    {
      gpointer i = g_hash_table_lookup (d->dict.index, key);
      return i != NULL ? GPOINTER_TO_INT (i) - 1 : -1;
    }
  for (guint i = 0; i < d->dict.n; i++)
    if (pv_equal_depth (d->dict.keys[i], key, 0))
      return (gint) i;
  return -1;
}

/* d[key] = val; FALSE when key is unhashable (the caller says so). */
gboolean
cv_dict_set (Pv *d, Pv *key, Pv *val)
{
  gint i;

  if (!hashable (key, 0))
    return FALSE;
  if ((i = dict_find (d, key)) >= 0)
    {
      d->dict.vals[i] = val;
      return TRUE;
    }
  if (d->dict.n == d->dict.cap)
    {
      d->dict.cap = d->dict.cap ? d->dict.cap * 2 : 4;
      d->dict.keys = g_renew (Pv *, d->dict.keys, d->dict.cap);
      d->dict.vals = g_renew (Pv *, d->dict.vals, d->dict.cap);
    }
  d->dict.keys[d->dict.n] = key;
  d->dict.vals[d->dict.n] = val;
  d->dict.n++;
  if (d->dict.index != NULL)
    g_hash_table_insert (d->dict.index, key, GINT_TO_POINTER (d->dict.n));
  else if (d->dict.n >= 12)
    {
      d->dict.index = g_hash_table_new (pv_hash, pv_equal);
      for (guint j = 0; j < d->dict.n; j++)
        g_hash_table_insert (d->dict.index, d->dict.keys[j], GINT_TO_POINTER (j + 1));
    }
  return TRUE;
}

/* set.add: FALSE when item is unhashable. */
gboolean
cv_set_add (Pv *set, Pv *item)
{
  if (!hashable (item, 0))
    return FALSE;
  if (set->seq.n < 64)
    {
      if (set_contains (set, item, 0))
        return TRUE;
    }
  cv_seq_append (set, item);
  return TRUE;
}

gboolean
cv_pv_is_dict (const Pv *v)
{
  return v != NULL && v->type == PV_DICT;
}

gboolean
cv_pv_is_str (const Pv *v, const char *s)
{
  gsize n = strlen (s);

  return v != NULL && v->type == PV_STR && v->s.n == n && memcmp (v->s.p, s, n) == 0;
}

Pv *
cv_dict_get (const Pv *d, const char *key)
{
  Pv k = { .type = PV_STR };

  if (!cv_pv_is_dict (d))
    return NULL;
  k.s.p = (const guint8 *) key;
  k.s.n = strlen (key);
  {
    gint i = dict_find (d, &k);
    return i >= 0 ? d->dict.vals[i] : NULL;
  }
}

gboolean
cv_pv_contains_str (const Pv *v, const char *s)
{
  if (v == NULL)
    return FALSE;
  switch (v->type)
    {
    case PV_LIST: case PV_TUPLE: case PV_SET: case PV_FROZENSET:
      for (guint i = 0; i < v->seq.n; i++)
        if (cv_pv_is_str (v->seq.items[i], s))
          return TRUE;
      return FALSE;
    case PV_DICT:
      return cv_dict_get (v, s) != NULL;
    case PV_STR:
      return v->s.n >= strlen (s) && g_strstr_len ((const char *) v->s.p, v->s.n, s) != NULL;
    default:
      return FALSE;
    }
}

gboolean
cv_pv_truthy (const Pv *v)
{
  if (v == NULL)
    return FALSE;
  switch (v->type)
    {
    case PV_NONE: return FALSE;
    case PV_BOOL: return v->b;
    case PV_INT: return v->i != 0;
    case PV_FLOAT: return v->f != 0;
    case PV_STR: case PV_BYTES: case PV_BYTEARRAY: return v->s.n != 0;
    case PV_LIST: case PV_TUPLE: case PV_SET: case PV_FROZENSET: return v->seq.n != 0;
    case PV_DICT: return v->dict.n != 0;
    default: return TRUE;
    }
}

char *
cv_pv_strdup (const Pv *v)
{
  if (v == NULL || v->type != PV_STR)
    return NULL;
  return g_strndup ((const char *) v->s.p, v->s.n);
}

/* ---- Python's float repr --------------------------------------------------------- */

void
cv_py_float_repr (GString *s, double v)
{
  char   buf[40], digits[24];
  int    exp10, nd = 0;
  const char *e;

  if (isnan (v))
    {
      g_string_append (s, "nan");
      return;
    }
  if (isinf (v))
    {
      g_string_append (s, v < 0 ? "-inf" : "inf");
      return;
    }
  /* The shortest %.Ne that reads back as v: its digits and exponent. */
  for (int p = 0; p < 17; p++)
    {
      g_snprintf (buf, sizeof buf, "%.*e", p, v);
      if (g_ascii_strtod (buf, NULL) == v)
        break;
    }
  e = strchr (buf, 'e');
  exp10 = atoi (e + 1);
  for (const char *c = buf; c < e; c++)
    if (g_ascii_isdigit (*c))
      digits[nd++] = *c;
  while (nd > 1 && digits[nd - 1] == '0')
    nd--;
  digits[nd] = '\0';
  if (buf[0] == '-')
    g_string_append_c (s, '-');
  if (exp10 >= -5 + 1 && exp10 < 16)
    {
      /* Fixed notation: Python's repr uses it for 1e-4 <= |v| < 1e16. */
      if (exp10 < 0)
        {
          g_string_append (s, "0.");
          for (int i = 0; i < -exp10 - 1; i++)
            g_string_append_c (s, '0');
          g_string_append (s, digits);
        }
      else
        {
          for (int i = 0; i <= exp10; i++)
            g_string_append_c (s, i < nd ? digits[i] : '0');
          g_string_append_c (s, '.');
          if (nd > exp10 + 1)
            g_string_append (s, digits + exp10 + 1);
          else
            g_string_append_c (s, '0');
        }
    }
  else
    {
      g_string_append_c (s, digits[0]);
      if (nd > 1)
        {
          g_string_append_c (s, '.');
          g_string_append (s, digits + 1);
        }
      g_string_append_printf (s, "e%c%02d", exp10 < 0 ? '-' : '+', ABS (exp10));
    }
}
