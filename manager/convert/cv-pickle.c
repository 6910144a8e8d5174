/* cv-pickle.c — a restricted pickle reader: Python's pickle virtual machine
 * for protocols 0 to 5, building inert values (cv-values.c) only.
 *
 * A global resolves only through an allowlist (the Python converters'
 * ALLOWED tables: converters/gfcg_convert/edm2_pickle.py and
 * torchvision_to_safetensors.py); each allowed global is our own inert
 * stand-in or a checked constructor of plain data (a dict, a set, bytes from
 * protocol 2's _codecs.encode, a tensor rebuilt from a storage with its
 * geometry checked).  Nothing the file names is ever called, and nothing in
 * it is compiled: NVIDIA's persistence records (which carry Python source)
 * are kept as data.  BUILD applies state only to our stand-ins and to plain
 * dicts; persistent ids go to the caller's storage reader or are refused;
 * the copyreg extension registry (EXT1/2/4) and out-of-band buffers are
 * refused.
 *
 * Every length is checked against the bytes left before anything is read or
 * allocated; frames (protocol 4) are honoured as Python's unframer does.
 * Errors are CV_ERROR_REFUSED ("refused: ...") or CV_ERROR_BAD ("truncated
 * pickle ...", "not a valid pickle: ... at byte N"), with the offset. */
#include "cv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct
{
  CvUnpickler  *u;
  CvHeap       *heap;
  const guint8 *d;
  gsize         len, pos, op_at;
  gsize         frame_end;
  gboolean      in_frame;
  GPtrArray    *stack;
  GArray       *marks; /* guint: the stack's length at each MARK */
  GHashTable   *memo;  /* gint64* -> Pv* */
  int           proto;
  GError      **error;
} Vm;

/* ---- errors ---------------------------------------------------------------------- */

static void
vm_refuse (Vm *vm, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
static void
vm_refuse (Vm *vm, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (strstr (msg, "byte") != NULL)
    g_set_error_literal (vm->error, CV_ERROR, CV_ERROR_REFUSED, msg);
  else
    g_set_error (vm->error, CV_ERROR, CV_ERROR_REFUSED, "%s (at byte %" G_GSIZE_FORMAT ")", msg,
                 vm->pos);
  g_free (msg);
}

/* An explicit "bad file" message (it names its byte itself). */
static void
vm_bad (Vm *vm, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
static void
vm_bad (Vm *vm, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (vm->error, CV_ERROR, CV_ERROR_BAD, msg);
  g_free (msg);
}

static void
vm_truncated (Vm *vm, gsize at)
{
  vm_bad (vm, "truncated pickle (unexpected end of data at byte %" G_GSIZE_FORMAT ")", at);
}

/* What Python's unpickler would raise as an exception of its own (an
 * IndexError, a TypeError ...): a damaged pickle, or a truncated one when
 * the data is used up. */
static void
vm_pyerr (Vm *vm, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
static void
vm_pyerr (Vm *vm, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  if (vm->pos >= vm->len)
    {
      vm_truncated (vm, vm->len);
      return;
    }
  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  vm_bad (vm, "not a valid pickle: %s at byte %" G_GSIZE_FORMAT, msg, vm->pos);
  g_free (msg);
}

/* ---- reading ----------------------------------------------------------------------- */

static const guint8 *
vm_read (Vm *vm, gsize n)
{
  const guint8 *p;

  if (vm->in_frame)
    {
      if (vm->pos == vm->frame_end)
        {
          if (n != 0)
            vm->in_frame = FALSE; /* the frame is used up: on from the file */
        }
      else if (n > vm->frame_end - vm->pos)
        {
          vm_pyerr (vm, "UnpicklingError: pickle exhausted before end of frame");
          return NULL;
        }
      else
        {
          p = vm->d + vm->pos;
          vm->pos += n;
          return p;
        }
    }
  if (n > vm->len - vm->pos)
    {
      vm_truncated (vm, vm->pos);
      return NULL;
    }
  p = vm->d + vm->pos;
  vm->pos += n;
  return p;
}

/* A line without its '\n'. */
static const guint8 *
vm_readline (Vm *vm, gsize *n)
{
  const guint8 *p = vm->d + vm->pos, *nl;

  if (vm->in_frame)
    {
      if (vm->pos == vm->frame_end)
        vm->in_frame = FALSE;
      else
        {
          nl = memchr (p, '\n', vm->frame_end - vm->pos);
          if (nl == NULL)
            {
              vm_pyerr (vm, "UnpicklingError: pickle exhausted before end of frame");
              return NULL;
            }
          *n = nl - p;
          vm->pos += *n + 1;
          return p;
        }
    }
  nl = memchr (p, '\n', vm->len - vm->pos);
  if (nl == NULL)
    {
      vm_truncated (vm, vm->len);
      return NULL;
    }
  *n = nl - p;
  vm->pos += *n + 1;
  return p;
}

static guint64
le_uint (const guint8 *p, int width)
{
  guint64 v = 0;

  for (int i = width - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* A length prefix of `width` bytes, refused when the rest of the data
 * cannot hold it (before anything is allocated). */
static gboolean
vm_length (Vm *vm, int width, gboolean is_signed, const char *opname, gsize *out)
{
  const guint8 *p = vm_read (vm, width);
  guint64       n;
  gsize         left;

  if (p == NULL)
    return FALSE;
  n = le_uint (p, width);
  if (is_signed && width == 4 && (n & 0x80000000u))
    {
      vm_bad (vm, "damaged pickle: %s at byte %" G_GSIZE_FORMAT " has a negative length %"
              G_GINT64_FORMAT, opname, vm->op_at, (gint64) (gint32) (guint32) n);
      return FALSE;
    }
  left = vm->len - vm->pos;
  if (n > left)
    {
      vm_bad (vm, "truncated or damaged pickle: %s at byte %" G_GSIZE_FORMAT " has length %"
              G_GUINT64_FORMAT ", which exceeds the %" G_GSIZE_FORMAT " byte%s left in the file",
              opname, vm->op_at, n, left, left == 1 ? "" : "s");
      return FALSE;
    }
  *out = (gsize) n;
  return TRUE;
}

/* ---- the stack --------------------------------------------------------------------- */

static guint
seg_base (Vm *vm)
{
  return vm->marks->len ? g_array_index (vm->marks, guint, vm->marks->len - 1) : 0;
}

static void
push (Vm *vm, Pv *v)
{
  g_ptr_array_add (vm->stack, v);
}

static Pv *
pop (Vm *vm)
{
  if (vm->stack->len <= seg_base (vm))
    {
      vm_pyerr (vm, "IndexError: pop from empty list");
      return NULL;
    }
  return g_ptr_array_steal_index (vm->stack, vm->stack->len - 1);
}

static Pv *
top (Vm *vm)
{
  if (vm->stack->len <= seg_base (vm))
    {
      vm_pyerr (vm, "IndexError: list index out of range");
      return NULL;
    }
  return vm->stack->pdata[vm->stack->len - 1];
}

/* The items since the last MARK (a copy, *n of them), and the MARK gone. */
static Pv **
pop_mark (Vm *vm, guint *n)
{
  guint base;
  Pv  **items;

  if (vm->marks->len == 0)
    {
      vm_pyerr (vm, "IndexError: pop from empty list");
      return NULL;
    }
  base = seg_base (vm);
  g_array_set_size (vm->marks, vm->marks->len - 1);
  *n = vm->stack->len - base;
  items = g_new (Pv *, *n + 1);
  if (*n > 0)
    memcpy (items, vm->stack->pdata + base, *n * sizeof (Pv *));
  g_ptr_array_set_size (vm->stack, base);
  return items;
}

static Pv *
new_seq (Vm *vm, PvType type, Pv **items, guint n)
{
  Pv *v = cv_pv_new (vm->heap, type);

  if (n > 0)
    {
      v->seq.items = g_new (Pv *, n);
      memcpy (v->seq.items, items, n * sizeof (Pv *));
    }
  v->seq.n = v->seq.cap = n;
  return v;
}

static Pv *
new_dict (Vm *vm, int kind)
{
  Pv *v = cv_pv_new (vm->heap, PV_DICT);

  v->kind = kind;
  return v;
}

static gboolean
dict_set (Vm *vm, Pv *d, Pv *k, Pv *v)
{
  if (!cv_dict_set (d, k, v))
    {
      vm_pyerr (vm, "TypeError: unhashable type: '%s'", cv_pv_type_name (k));
      return FALSE;
    }
  return TRUE;
}

static gboolean
set_add (Vm *vm, Pv *s, Pv *item)
{
  if (!cv_set_add (s, item))
    {
      vm_pyerr (vm, "TypeError: unhashable type: '%s'", cv_pv_type_name (item));
      return FALSE;
    }
  return TRUE;
}

/* Keys and values alternating, as DICT and SETITEMS take them from the stack;
 * an odd count is the IndexError Python's unpickler raises. */
static gboolean
dict_set_pairs (Vm *vm, Pv *d, Pv **items, guint n)
{
  for (guint i = 0; i < n; i += 2)
    {
      if (i + 1 >= n)
        {
          vm_pyerr (vm, "IndexError: list index out of range");
          return FALSE;
        }
      if (!dict_set (vm, d, items[i], items[i + 1]))
        return FALSE;
    }
  return TRUE;
}

/* SETITEM and SETITEMS assign into the top of the stack: a dict only. */
static gboolean
assignable (Vm *vm, const Pv *d)
{
  if (d->type == PV_DICT)
    return TRUE;
  vm_pyerr (vm, "TypeError: '%s' object does not support item assignment", cv_pv_type_name (d));
  return FALSE;
}

/* A str, bytes or big int value over n bytes at p (freed with it when owned). */
static Pv *
new_blob (Vm *vm, PvType type, const guint8 *p, gsize n, gboolean owned)
{
  Pv *v = cv_pv_new (vm->heap, type);

  v->s.p = p;
  v->s.n = n;
  v->owned = owned;
  return v;
}

/* ---- text ---------------------------------------------------------------------------- */

/* UTF-8 as Python's 'utf-8' codec with 'surrogatepass' accepts it. */
static gboolean
utf8_ok (const guint8 *p, gsize n)
{
  gsize i = 0;

  while (i < n)
    {
      guint8 c = p[i];
      int    k;
      guint32 cp;

      if (c < 0x80)
        {
          i++;
          continue;
        }
      if (c >= 0xc2 && c <= 0xdf)
        k = 1, cp = c & 0x1f;
      else if (c >= 0xe0 && c <= 0xef)
        k = 2, cp = c & 0x0f;
      else if (c >= 0xf0 && c <= 0xf4)
        k = 3, cp = c & 0x07;
      else
        return FALSE;
      if (n - i - 1 < (gsize) k)
        return FALSE;
      for (int j = 1; j <= k; j++)
        {
          if ((p[i + j] & 0xc0) != 0x80)
            return FALSE;
          cp = (cp << 6) | (p[i + j] & 0x3f);
        }
      if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return FALSE;
      i += k + 1;
    }
  return TRUE;
}

static Pv *
new_str (Vm *vm, const guint8 *p, gsize n, gboolean owned)
{
  if (p == NULL)
    {
      /* an empty GByteArray hands out no buffer: the empty string */
      p = (const guint8 *) "";
      owned = FALSE;
    }
  return new_blob (vm, PV_STR, p, n, owned);
}

static Pv *
str_utf8 (Vm *vm, const guint8 *p, gsize n)
{
  if (!utf8_ok (p, n))
    {
      vm_pyerr (vm, "UnicodeDecodeError: 'utf-8' codec can't decode the string");
      return NULL;
    }
  return new_str (vm, p, n, FALSE);
}

/* _decode_string: the unpickler's default encoding, ASCII. */
static Pv *
str_ascii (Vm *vm, const guint8 *p, gsize n, gboolean owned)
{
  for (gsize i = 0; i < n; i++)
    if (p[i] >= 0x80)
      {
        vm_pyerr (vm, "UnicodeDecodeError: 'ascii' codec can't decode byte 0x%02x in position %"
                  G_GSIZE_FORMAT ": ordinal not in range(128)", p[i], i);
        if (owned)
          g_free ((gpointer) p); /* after the message that quotes it */
        return NULL;
      }
  return new_str (vm, p, n, owned);
}

static void
put_utf8 (GByteArray *b, guint32 cp)
{
  guint8 c[4];
  int    n;

  if (cp < 0x80)
    c[0] = cp, n = 1;
  else if (cp < 0x800)
    c[0] = 0xc0 | (cp >> 6), c[1] = 0x80 | (cp & 0x3f), n = 2;
  else if (cp < 0x10000)
    c[0] = 0xe0 | (cp >> 12), c[1] = 0x80 | ((cp >> 6) & 0x3f), c[2] = 0x80 | (cp & 0x3f), n = 3;
  else
    c[0] = 0xf0 | (cp >> 18), c[1] = 0x80 | ((cp >> 12) & 0x3f), c[2] = 0x80 | ((cp >> 6) & 0x3f),
    c[3] = 0x80 | (cp & 0x3f), n = 4;
  g_byte_array_append (b, c, n);
}

static int
hexval (guint8 c)
{
  return g_ascii_xdigit_value ((char) c);
}

/* codecs.escape_decode (protocol 0's STRING). */
static guint8 *
escape_decode (Vm *vm, const guint8 *p, gsize n, gsize *out_n)
{
  GByteArray *b = g_byte_array_sized_new (n);

  for (gsize i = 0; i < n; i++)
    {
      guint8 c = p[i];
      if (c != '\\')
        {
          g_byte_array_append (b, &c, 1);
          continue;
        }
      if (++i >= n)
        {
          g_byte_array_unref (b);
          vm_pyerr (vm, "ValueError: Trailing \\ in string");
          return NULL;
        }
      c = p[i];
      switch (c)
        {
        case '\n': break;
        case '\\': case '\'': case '"': g_byte_array_append (b, &c, 1); break;
        case 'a': c = 7; g_byte_array_append (b, &c, 1); break;
        case 'b': c = 8; g_byte_array_append (b, &c, 1); break;
        case 'f': c = 12; g_byte_array_append (b, &c, 1); break;
        case 'n': c = 10; g_byte_array_append (b, &c, 1); break;
        case 'r': c = 13; g_byte_array_append (b, &c, 1); break;
        case 't': c = 9; g_byte_array_append (b, &c, 1); break;
        case 'v': c = 11; g_byte_array_append (b, &c, 1); break;
        case 'x':
          if (i + 2 >= n || hexval (p[i + 1]) < 0 || hexval (p[i + 2]) < 0)
            {
              g_byte_array_unref (b);
              vm_pyerr (vm, "ValueError: invalid \\x escape at position %" G_GSIZE_FORMAT, i - 1);
              return NULL;
            }
          c = (guint8) (hexval (p[i + 1]) * 16 + hexval (p[i + 2]));
          g_byte_array_append (b, &c, 1);
          i += 2;
          break;
        default:
          if (c >= '0' && c <= '7')
            {
              int v = c - '0';
              for (int k = 0; k < 2 && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '7'; k++)
                v = v * 8 + (p[++i] - '0');
              c = (guint8) v;
              g_byte_array_append (b, &c, 1);
            }
          else
            {
              guint8 bs = '\\';
              g_byte_array_append (b, &bs, 1);
              g_byte_array_append (b, &c, 1);
            }
        }
    }
  *out_n = b->len;
  return g_byte_array_free (b, FALSE);
}

/* raw-unicode-escape (protocol 0's UNICODE): latin-1 bytes, and \uXXXX or
 * \UXXXXXXXX after an odd number of backslashes (CPython's decoder). */
static Pv *
raw_unicode_escape (Vm *vm, const guint8 *p, gsize n)
{
  GByteArray *b = g_byte_array_sized_new (n + n / 2);
  gsize       i = 0, out;

  while (i < n)
    {
      gsize bs = 0;
      if (p[i] != '\\')
        {
          put_utf8 (b, p[i++]);
          continue;
        }
      while (i < n && p[i] == '\\')
        {
          bs++;
          i++;
        }
      for (gsize k = 0; k + 1 < bs; k++)
        put_utf8 (b, '\\');
      if ((bs & 1) == 0 || i >= n || (p[i] != 'u' && p[i] != 'U'))
        {
          put_utf8 (b, '\\');
          continue;
        }
      {
        int     digits = p[i] == 'u' ? 4 : 8;
        guint32 cp = 0;
        i++;
        for (int k = 0; k < digits; k++, i++)
          {
            int h = i < n ? hexval (p[i]) : -1;
            if (h < 0)
              goto bad;
            cp = cp * 16 + (guint32) h;
          }
        if (cp > 0x10ffff)
          goto bad;
        put_utf8 (b, cp);
      }
    }
  out = b->len;
  return new_str (vm, g_byte_array_free (b, FALSE), out, TRUE);
bad:
  g_byte_array_unref (b);
  vm_pyerr (vm, "UnicodeDecodeError: 'rawunicodeescape' codec can't decode bytes: truncated \\uXXXX");
  return NULL;
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* Two's complement little-endian bytes -> an int (a bigint when wider than 64 bits). */
static Pv *
decode_long (Vm *vm, const guint8 *p, gsize n, gboolean owned)
{
  Pv *v;

  if (n == 0)
    {
      v = cv_pv_new (vm->heap, PV_INT);
      if (owned)
        g_free ((gpointer) p);
      return v;
    }
  {
    gboolean neg = (p[n - 1] & 0x80) != 0;
    gboolean fits = TRUE;
    for (gsize i = 8; i < n; i++)
      if (p[i] != (neg ? 0xff : 0x00))
        fits = FALSE;
    if (n > 8 && fits && ((p[7] & 0x80) != 0) != neg)
      fits = FALSE;
    if (fits)
      {
        guint64 u = 0;
        for (int i = 7; i >= 0; i--)
          u = (u << 8) | ((gsize) i < n ? p[i] : (neg ? 0xff : 0x00));
        v = cv_pv_new (vm->heap, PV_INT);
        v->i = (gint64) u;
        if (owned)
          g_free ((gpointer) p);
        return v;
      }
  }
  return new_blob (vm, PV_BIGINT, p, n, owned);
}

/* int(text, 0) (INT and LONG of protocol 0); Python's 4300-digit limit for decimal. */
static Pv *
text_int (Vm *vm, const guint8 *p, gsize n, gboolean long_suffix)
{
  gsize      i = 0, end = n, ndig = 0;
  gboolean   neg = FALSE, any = FALSE, last_us = FALSE;
  int        base = 10;
  guint32   *mag = NULL;
  gsize      words = 0;
  guint8    *bytes;
  gsize      nb;

  while (i < end && g_ascii_isspace (p[i]))
    i++;
  while (end > i && g_ascii_isspace (p[end - 1]))
    end--;
  if (long_suffix && end > i && p[end - 1] == 'L')
    end--;
  if (i < end && (p[i] == '+' || p[i] == '-'))
    neg = p[i++] == '-';
  if (end - i >= 2 && p[i] == '0' && strchr ("xXoObB", p[i + 1]) != NULL && p[i + 1] != '\0')
    {
      base = (p[i + 1] | 0x20) == 'x' ? 16 : (p[i + 1] | 0x20) == 'o' ? 8 : 2;
      i += 2;
      last_us = TRUE; /* an underscore may follow the prefix */
    }
  else if (end - i >= 2 && p[i] == '0')
    {
      /* base 0: a leading zero only for zero itself */
      for (gsize k = i; k < end; k++)
        if (p[k] != '0' && p[k] != '_')
          goto invalid;
    }
  for (; i < end; i++)
    {
      int d;
      if (p[i] == '_')
        {
          if (last_us && any)
            goto invalid;
          if (!any && base == 10)
            goto invalid;
          last_us = TRUE;
          continue;
        }
      d = g_ascii_xdigit_value ((char) p[i]);
      if (d < 0 || d >= base)
        goto invalid;
      any = TRUE;
      last_us = FALSE;
      if (++ndig > (base == 10 ? 4300u : 8192u))
        {
          g_free (mag);
          vm_pyerr (vm, "ValueError: Exceeds the limit (4300 digits) for integer string conversion");
          return NULL;
        }
      {
        guint64 carry = (guint64) d;
        for (gsize w = 0; w < words; w++)
          {
            guint64 x = (guint64) mag[w] * (guint64) base + carry;
            mag[w] = (guint32) x;
            carry = x >> 32;
          }
        if (carry != 0 || words == 0)
          {
            mag = g_renew (guint32, mag, words + 1);
            mag[words++] = (guint32) carry;
          }
      }
    }
  if (!any || last_us)
    goto invalid;
  /* magnitude -> two's complement bytes, with a sign byte to spare */
  nb = words * 4 + 1;
  bytes = g_malloc0 (nb);
  for (gsize w = 0; w < words; w++)
    for (int k = 0; k < 4; k++)
      bytes[w * 4 + k] = (guint8) (mag[w] >> (8 * k));
  g_free (mag);
  if (neg)
    {
      guint carry = 1;
      for (gsize k = 0; k < nb; k++)
        {
          guint x = (guint) (guint8) ~bytes[k] + carry;
          bytes[k] = (guint8) x;
          carry = x >> 8;
        }
    }
  return decode_long (vm, bytes, nb, TRUE);
invalid:
  g_free (mag);
  vm_pyerr (vm, "ValueError: invalid literal for int() with base 0");
  return NULL;
}

static Pv *
new_int (Vm *vm, gint64 i)
{
  Pv *v = cv_pv_new (vm->heap, PV_INT);

  v->i = i;
  return v;
}

static Pv *
new_bool (Vm *vm, gboolean b)
{
  Pv *v = cv_pv_new (vm->heap, PV_BOOL);

  v->b = b;
  return v;
}

/* ---- the allowlist ------------------------------------------------------------------------ */

enum { P_EDM2 = 1, P_STATE = 2, P_STORAGE = 4 };

static const struct
{
  const char *module, *name;
  CvGlobal    id;
  CvDtype     dtype;
  int         profiles;
} allowlist[] = {
  { "collections", "OrderedDict", G_ODICT, 0, P_EDM2 | P_STATE },
  { "builtins", "set", G_SET, 0, P_EDM2 },
  { "builtins", "frozenset", G_FROZENSET, 0, P_EDM2 },
  { "__builtin__", "set", G_SET, 0, P_EDM2 },
  { "__builtin__", "frozenset", G_FROZENSET, 0, P_EDM2 },
  { "_codecs", "encode", G_ENCODE, 0, P_EDM2 },
  { "torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR, 0, P_EDM2 | P_STATE },
  { "torch._utils", "_rebuild_parameter", G_REBUILD_PARAM, 0, P_EDM2 | P_STATE },
  { "torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAM, 0, P_EDM2 | P_STATE },
  { "torch.storage", "_load_from_bytes", G_LOAD_FROM_BYTES, 0, P_EDM2 },
  { "torch_utils.persistence", "_reconstruct_persistent_obj", G_PERSISTENT, 0, P_EDM2 },
  { "dnnlib.util", "EasyDict", G_EASYDICT, 0, P_EDM2 },
  { "dnnlib", "EasyDict", G_EASYDICT, 0, P_EDM2 },
  { "torch.nn.modules.module", "Module", G_STANDIN, 0, P_EDM2 },
  { "torch.nn.modules.container", "ModuleDict", G_STANDIN, 0, P_EDM2 },
  { "torch.nn.modules.container", "ModuleList", G_STANDIN, 0, P_EDM2 },
  { "torch.nn.modules.container", "Sequential", G_STANDIN, 0, P_EDM2 },
  { "torch.nn.modules.container", "ParameterDict", G_STANDIN, 0, P_EDM2 },
  { "torch.nn.modules.container", "ParameterList", G_STANDIN, 0, P_EDM2 },
  { "numpy.core.multiarray", "scalar", G_STANDIN, 0, P_EDM2 },
  { "numpy.core.multiarray", "_reconstruct", G_STANDIN, 0, P_EDM2 },
  { "numpy._core.multiarray", "scalar", G_STANDIN, 0, P_EDM2 },
  { "numpy._core.multiarray", "_reconstruct", G_STANDIN, 0, P_EDM2 },
  { "numpy", "dtype", G_STANDIN, 0, P_EDM2 },
  { "numpy", "ndarray", G_STANDIN, 0, P_EDM2 },
  { "torch", "FloatStorage", G_STORAGE_TYPE, CV_DT_F32, P_STATE | P_STORAGE },
  { "torch", "HalfStorage", G_STORAGE_TYPE, CV_DT_F16, P_STATE | P_STORAGE },
  { "torch", "BFloat16Storage", G_STORAGE_TYPE, CV_DT_BF16, P_STATE | P_STORAGE },
  { "torch", "DoubleStorage", G_STORAGE_TYPE, CV_DT_F64, P_STATE | P_STORAGE },
  { "torch", "LongStorage", G_STORAGE_TYPE, CV_DT_I64, P_STATE | P_STORAGE },
  { "torch", "IntStorage", G_STORAGE_TYPE, CV_DT_I32, P_STATE | P_STORAGE },
  { "torch", "ShortStorage", G_STORAGE_TYPE, CV_DT_I16, P_STATE | P_STORAGE },
  { "torch", "CharStorage", G_STORAGE_TYPE, CV_DT_I8, P_STATE | P_STORAGE },
  { "torch", "ByteStorage", G_STORAGE_TYPE, CV_DT_U8, P_STATE | P_STORAGE },
  { "torch", "BoolStorage", G_STORAGE_TYPE, CV_DT_BOOL, P_STATE | P_STORAGE },
};

static Pv *
find_class (Vm *vm, const guint8 *mod, gsize nmod, const guint8 *name, gsize nname)
{
  int   profile = vm->u->allow == CV_ALLOW_EDM2 ? P_EDM2 :
                  vm->u->allow == CV_ALLOW_STATE_DICT ? P_STATE : P_STORAGE;
  char *m = g_strndup ((const char *) mod, nmod), *n = g_strndup ((const char *) name, nname);
  char *full;

  for (guint i = 0; i < G_N_ELEMENTS (allowlist); i++)
    if ((allowlist[i].profiles & profile) && strlen (m) == nmod && strlen (n) == nname &&
        strcmp (allowlist[i].module, m) == 0 && strcmp (allowlist[i].name, n) == 0)
      {
        Pv *g = cv_pv_new (vm->heap, PV_GLOBAL);
        g->g.id = allowlist[i].id;
        g->g.dtype = allowlist[i].dtype;
        g->g.name = cv_heap_printf (vm->heap, "%s.%s", m, n);
        g_free (m);
        g_free (n);
        return g;
      }
  full = g_strdup_printf ("%s.%s", m, n);
  {
    char *valid = g_utf8_make_valid (full, -1);
    vm->u->refused_global = cv_heap_strdup (vm->heap, valid);
    if (vm->u->allow == CV_ALLOW_STATE_DICT)
      vm_refuse (vm, "refused: the pickle asks for the global %s, which is not on the allowlist "
                 "of a state dict of tensors (nothing was executed)", valid);
    else
      vm_refuse (vm, "refused: the pickle asks for the global %s, which is not on the allowlist "
                 "of parameter/buffer containers (nothing was executed)", valid);
    g_free (valid);
  }
  g_free (full);
  g_free (m);
  g_free (n);
  return NULL;
}

/* ---- calling an allowlisted global -------------------------------------------------------- */

static gboolean
is_int (const Pv *v)
{
  return v->type == PV_INT || v->type == PV_BOOL;
}

static gint64
int_of (const Pv *v)
{
  return v->type == PV_BOOL ? v->b : v->i;
}

/* The items of an iterable argument (list, tuple, set, frozenset, a dict's keys). */
static gboolean
iter_items (Vm *vm, Pv *v, Pv ***items, guint *n)
{
  switch (v->type)
    {
    case PV_LIST: case PV_TUPLE: case PV_SET: case PV_FROZENSET:
      *items = v->seq.items;
      *n = v->seq.n;
      return TRUE;
    case PV_DICT:
      *items = v->dict.keys;
      *n = v->dict.n;
      return TRUE;
    default:
      vm_pyerr (vm, "TypeError: '%s' object is not iterable", cv_pv_type_name (v));
      return FALSE;
    }
}

/* dict(*args) for OrderedDict and EasyDict. */
static Pv *
make_dict (Vm *vm, int kind, Pv **args, guint nargs)
{
  Pv *d = new_dict (vm, kind);

  if (nargs > 1)
    {
      vm_pyerr (vm, "TypeError: expected at most 1 argument, got %u", nargs);
      return NULL;
    }
  if (nargs == 1)
    {
      Pv *a = args[0];
      if (a->type == PV_DICT)
        {
          for (guint i = 0; i < a->dict.n; i++)
            if (!dict_set (vm, d, a->dict.keys[i], a->dict.vals[i]))
              return NULL;
        }
      else
        {
          Pv **items;
          guint n;
          if (!iter_items (vm, a, &items, &n))
            return NULL;
          for (guint i = 0; i < n; i++)
            {
              Pv *pair = items[i];
              if ((pair->type != PV_LIST && pair->type != PV_TUPLE) || pair->seq.n != 2)
                {
                  vm_pyerr (vm, "ValueError: dictionary update sequence element #%u has the wrong "
                            "length", i);
                  return NULL;
                }
              if (!dict_set (vm, d, pair->seq.items[0], pair->seq.items[1]))
                return NULL;
            }
        }
    }
  return d;
}

static Pv *
make_set (Vm *vm, PvType type, Pv **args, guint nargs)
{
  Pv *s = cv_pv_new (vm->heap, type);

  if (nargs > 1)
    {
      vm_pyerr (vm, "TypeError: %s expected at most 1 argument, got %u",
                type == PV_SET ? "set" : "frozenset", nargs);
      return NULL;
    }
  if (nargs == 1)
    {
      Pv  **items;
      guint n;
      if (!iter_items (vm, args[0], &items, &n))
        return NULL;
      for (guint i = 0; i < n; i++)
        if (!set_add (vm, s, items[i]))
          return NULL;
    }
  return s;
}

static Pv *
new_standin (Vm *vm, Pv *glob, Pv **args, guint nargs)
{
  Pv *v = cv_pv_new (vm->heap, PV_STANDIN);

  v->standin.qualname = glob->g.name;
  v->standin.args = new_seq (vm, PV_TUPLE, args, nargs);
  v->standin.state = cv_pv_new (vm->heap, PV_NONE);
  return v;
}

static char *
format_ints (const gint64 *v, int n)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < n; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", v[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) with its
 * geometry checked against the storage; a tensor that does not fit becomes a
 * refused stand-in, named once the whole file is read (cv_refuse_bad_tensors). */
static Pv *
rebuild_tensor (Vm *vm, Pv **args, guint nargs)
{
  Pv      *st, *off, *size, *stride, *t;
  int      ndim;
  __int128 need = 0;

  if (nargs < 4 || nargs > 7)
    {
      vm_pyerr (vm, "TypeError: _rebuild_tensor_v2() takes from 4 to 7 positional arguments but "
                "%u were given", nargs);
      return NULL;
    }
  st = args[0], off = args[1], size = args[2], stride = args[3];
  if (st->type != PV_STORAGE)
    {
      vm_refuse (vm, "tensor rebuilt from something that is not a storage");
      return NULL;
    }
  if (!is_int (off) || size->type != PV_TUPLE || stride->type != PV_TUPLE ||
      size->seq.n != stride->seq.n || size->seq.n > CV_MAX_NDIM)
    {
      vm_refuse (vm, "malformed tensor geometry");
      return NULL;
    }
  ndim = (int) size->seq.n;
  t = cv_pv_new (vm->heap, PV_TENSOR);
  t->t.storage = st;
  t->t.offset = int_of (off);
  t->t.ndim = ndim;
  for (int i = 0; i < ndim; i++)
    {
      Pv *a = size->seq.items[i], *b = stride->seq.items[i];
      if (!is_int (a) || !is_int (b) || int_of (a) < 0 || int_of (b) < 0)
        {
          vm_refuse (vm, "malformed tensor geometry");
          return NULL;
        }
      t->t.size[i] = int_of (a);
      t->t.stride[i] = int_of (b);
    }
  {
    gboolean empty = FALSE;
    for (int i = 0; i < ndim; i++)
      if (t->t.size[i] == 0)
        empty = TRUE;
    if (!empty)
      {
        need = (__int128) t->t.offset + 1;
        for (int i = 0; i < ndim; i++)
          need += (__int128) (t->t.size[i] - 1) * (__int128) t->t.stride[i];
      }
  }
  {
    /* More elements than the storage holds (overlapping or zero strides):
     * never a trained network's parameter, and a way to make a few bytes
     * of input into terabytes of output.  Refused too. */
    __int128 numel = 1;
    for (int i = 0; i < ndim && numel <= (__int128) G_MAXINT64; i++)
      numel *= t->t.size[i];
    if (t->t.offset >= 0 && need <= (__int128) st->storage.numel && numel > (__int128) st->storage.numel)
      {
        char *sz = format_ints (t->t.size, ndim), *sd = format_ints (t->t.stride, ndim);
        Pv   *bad = cv_pv_new (vm->heap, PV_BADTENSOR);
        bad->bad.problem = cv_heap_printf (vm->heap, "repeats elements: size %s, stride %s make more "
                                           "elements than the %" G_GINT64_FORMAT " its storage holds",
                                           sz, sd, st->storage.numel);
        g_free (sz);
        g_free (sd);
        return bad;
      }
  }
  if (t->t.offset < 0 || need > (__int128) st->storage.numel)
    {
      char *sz = format_ints (t->t.size, ndim), *sd = format_ints (t->t.stride, ndim);
      char  needs[48];
      Pv   *bad = cv_pv_new (vm->heap, PV_BADTENSOR);

      if (need > (__int128) G_MAXINT64)
        g_snprintf (needs, sizeof needs, "more than %" G_GINT64_FORMAT, G_MAXINT64);
      else
        g_snprintf (needs, sizeof needs, "%" G_GINT64_FORMAT, (gint64) need);
      bad->bad.problem = cv_heap_printf (vm->heap, "exceeds its storage: offset %" G_GINT64_FORMAT
                                         ", size %s, stride %s need %s elements, the storage "
                                         "holds %" G_GINT64_FORMAT, t->t.offset, sz, sd, needs,
                                         st->storage.numel);
      g_free (sz);
      g_free (sd);
      return bad;
    }
  return t;
}

/* _codecs.encode(text, 'latin1'): how protocol 2 writes bytes, and nothing else. */
static Pv *
latin1_bytes (Vm *vm, Pv **args, guint nargs)
{
  Pv     *text;
  guint8 *out;
  gsize   n = 0;

  if (nargs < 1 || nargs > 3)
    {
      vm_pyerr (vm, "TypeError: _latin1_bytes() takes from 1 to 3 positional arguments but %u "
                "were given", nargs);
      return NULL;
    }
  text = args[0];
  if (text->type != PV_STR ||
      (nargs >= 2 && !cv_pv_is_str (args[1], "latin1") && !cv_pv_is_str (args[1], "latin-1")) ||
      (nargs >= 3 && !cv_pv_is_str (args[2], "strict")))
    {
      vm_refuse (vm, "refused: _codecs.encode other than bytes written by protocol 2");
      return NULL;
    }
  out = g_malloc (text->s.n + 1);
  for (gsize i = 0; i < text->s.n;)
    {
      guint8 c = text->s.p[i];
      if (c < 0x80)
        out[n++] = c, i++;
      else if ((c & 0xe0) == 0xc0 && i + 1 < text->s.n && c <= 0xc3)
        out[n++] = (guint8) (((c & 0x1f) << 6) | (text->s.p[i + 1] & 0x3f)), i += 2;
      else
        {
          g_free (out);
          vm_pyerr (vm, "UnicodeEncodeError: 'latin-1' codec can't encode a character: ordinal not "
                    "in range(256)");
          return NULL;
        }
    }
  return new_blob (vm, PV_BYTES, out, n, TRUE);
}

static Pv *
reconstruct_persistent (Vm *vm, Pv **args, guint nargs)
{
  Pv *meta, *type, *cls, *v, *state;

  if (nargs != 1)
    {
      vm_pyerr (vm, "TypeError: _reconstruct_persistent_obj() takes 1 positional argument but %u "
                "were given", nargs);
      return NULL;
    }
  meta = args[0];
  if (meta->type != PV_DICT)
    {
      vm_refuse (vm, "refused: persistent object metadata is not a dict");
      return NULL;
    }
  type = cv_dict_get (meta, "type");
  cls = cv_dict_get (meta, "class_name");
  if (!cv_pv_is_str (type, "class") || cls == NULL || cls->type != PV_STR)
    {
      char *r = type != NULL ? cv_pv_repr (type, 200) : g_strdup ("None");
      vm_refuse (vm, "refused: unsupported persistent object type %s", r);
      g_free (r);
      return NULL;
    }
  /* module_src is never looked at: the metadata stays data. */
  state = cv_dict_get (meta, "state");
  v = cv_pv_new (vm->heap, PV_PERSISTENT);
  {
    char *name = cv_pv_strdup (cls);
    v->pers.class_name = cv_heap_strdup (vm->heap, name);
    g_free (name);
  }
  v->pers.state = state != NULL ? state : cv_pv_new (vm->heap, PV_NONE);
  return v;
}

static Pv *
call (Vm *vm, Pv *func, Pv **args, guint nargs)
{
  if (func->type != PV_GLOBAL)
    {
      vm_pyerr (vm, "TypeError: '%s' object is not callable", cv_pv_type_name (func));
      return NULL;
    }
  switch (func->g.id)
    {
    case G_ODICT:
      return make_dict (vm, PV_DICT_ORDERED, args, nargs);
    case G_EASYDICT:
      return make_dict (vm, PV_DICT_EASY, args, nargs);
    case G_SET:
      return make_set (vm, PV_SET, args, nargs);
    case G_FROZENSET:
      return make_set (vm, PV_FROZENSET, args, nargs);
    case G_ENCODE:
      return latin1_bytes (vm, args, nargs);
    case G_REBUILD_TENSOR:
      return rebuild_tensor (vm, args, nargs);
    case G_REBUILD_PARAM:
      if (nargs < 1 || nargs > 4)
        {
          vm_pyerr (vm, "TypeError: _rebuild_parameter() takes from 1 to 4 positional arguments "
                    "but %u were given", nargs);
          return NULL;
        }
      if (args[0]->type == PV_BADTENSOR || args[0]->type == PV_TENSOR)
        return args[0];
      vm_refuse (vm, "parameter rebuilt from something that is not a tensor");
      return NULL;
    case G_LOAD_FROM_BYTES:
      {
        Pv    *s;
        GError *err = NULL;
        if (nargs != 1)
          {
            vm_pyerr (vm, "TypeError: _load_from_bytes() takes 1 positional argument but %u were "
                      "given", nargs);
            return NULL;
          }
        if (args[0]->type != PV_BYTES && args[0]->type != PV_BYTEARRAY)
          {
            vm_refuse (vm, "storage payload is not bytes");
            return NULL;
          }
        s = cv_torch_storage_from_bytes (vm->u, args[0]->s.p, args[0]->s.n, &err);
        if (s == NULL)
          {
            if (err->domain == CV_ERROR && err->code == CV_ERROR_CANCELLED)
              g_propagate_error (vm->error, err);
            else
              {
                vm_refuse (vm, "%s", err->message);
                g_error_free (err);
              }
            return NULL;
          }
        if (s->type != PV_STORAGE)
          {
            vm_refuse (vm, "storage payload holds a %s, not a storage", cv_pv_type_name (s));
            return NULL;
          }
        return s;
      }
    case G_PERSISTENT:
      return reconstruct_persistent (vm, args, nargs);
    case G_STANDIN:
      return new_standin (vm, func, args, nargs);
    case G_STORAGE_TYPE:
      vm_refuse (vm, "refused: the pickle calls %s", func->g.name);
      return NULL;
    }
  vm_pyerr (vm, "TypeError: not callable");
  return NULL;
}

/* cls.__new__(cls, *args) (NEWOBJ): the classes of the allowlist only. */
static Pv *
newobj (Vm *vm, Pv *cls, Pv **args, guint nargs)
{
  if (cls->type == PV_GLOBAL)
    switch (cls->g.id)
      {
      case G_ODICT: return new_dict (vm, PV_DICT_ORDERED);
      case G_EASYDICT: return new_dict (vm, PV_DICT_EASY);
      case G_SET: return cv_pv_new (vm->heap, PV_SET);
      case G_FROZENSET: return make_set (vm, PV_FROZENSET, args, MIN (nargs, 1));
      case G_STANDIN: return new_standin (vm, cls, args, nargs);
      default: break;
      }
  vm_pyerr (vm, "AttributeError: '%s' object has no attribute '__new__'", cv_pv_type_name (cls));
  return NULL;
}

static gboolean
args_of (Vm *vm, Pv *a, Pv ***items, guint *n)
{
  if (a->type == PV_TUPLE || a->type == PV_LIST)
    {
      *items = a->seq.items;
      *n = a->seq.n;
      return TRUE;
    }
  return iter_items (vm, a, items, n);
}

/* BUILD: state only onto our stand-ins and plain dicts. */
static gboolean
build (Vm *vm, Pv *inst, Pv *state)
{
  if (inst->type == PV_STANDIN)
    {
      inst->standin.state = state;
      return TRUE;
    }
  if (inst->type == PV_DICT && inst->kind == PV_DICT_EASY)
    {
      if (state->type == PV_DICT)
        for (guint i = 0; i < state->dict.n; i++)
          if (!dict_set (vm, inst, state->dict.keys[i], state->dict.vals[i]))
            return FALSE;
      return TRUE;
    }
  if (inst->type == PV_DICT && state->type == PV_DICT)
    {
      for (guint i = 0; i < state->dict.n; i++)
        if (!dict_set (vm, inst, state->dict.keys[i], state->dict.vals[i]))
          return FALSE;
      return TRUE;
    }
  vm_refuse (vm, "refused: BUILD (set state) on a %s", cv_pv_type_name (inst));
  return FALSE;
}

static Pv *
persistent_load (Vm *vm, Pv *pid)
{
  Pv     *v;
  GError *err = NULL;

  if (vm->u->persistent == NULL)
    {
      vm_refuse (vm, "refused: persistent ids (torch.save archives) are not supported; give an "
                 "EDM2 snapshot written with pickle.dump");
      return NULL;
    }
  v = vm->u->persistent (vm->u, pid, vm->u->persistent_data, &err);
  if (v == NULL)
    {
      if (err->domain == CV_ERROR && (err->code == CV_ERROR_REFUSED || err->code == CV_ERROR_CONVERT))
        {
          int code = err->code;
          vm_refuse (vm, "%s", err->message);
          if (vm->error != NULL && *vm->error != NULL)
            (*vm->error)->code = code;
          g_error_free (err);
        }
      else
        g_propagate_error (vm->error, err);
    }
  return v;
}

static gboolean
memo_put (Vm *vm, gint64 i, Pv *v)
{
  gint64 *k = g_new (gint64, 1);

  *k = i;
  g_hash_table_replace (vm->memo, k, v);
  return TRUE;
}

static Pv *
memo_get (Vm *vm, gint64 i)
{
  Pv *v = g_hash_table_lookup (vm->memo, &i);

  if (v == NULL)
    vm_pyerr (vm, "UnpicklingError: Memo value not found at index %" G_GINT64_FORMAT, i);
  return v;
}

/* A decimal line index (GET, PUT). */
static gboolean
line_index (Vm *vm, gint64 *out, const char *op)
{
  gsize         n;
  const guint8 *p = vm_readline (vm, &n);
  char         *s;
  gboolean      ok;

  if (p == NULL)
    return FALSE;
  s = g_strndup ((const char *) p, n);
  g_strstrip (s);
  ok = *s != '\0' && g_ascii_string_to_signed (s, 10, 0, G_MAXINT64, out, NULL);
  if (!ok)
    vm_pyerr (vm, "ValueError: invalid %s argument", op);
  g_free (s);
  return ok;
}

/* ---- the machine --------------------------------------------------------------------------- */

#define NEED(x) do { if ((x) == NULL) goto fail; } while (0)

static const char *
ext_name (guint8 op)
{
  return op == 0x82 ? "EXT1" : op == 0x83 ? "EXT2" : "EXT4";
}

Pv *
cv_unpickle (CvUnpickler *u, GError **error)
{
  Vm     vm = { 0 };
  Pv    *result = NULL;
  guint64 count = 0;

  vm.u = u;
  vm.heap = u->heap;
  vm.d = u->data;
  vm.len = u->len;
  vm.pos = MIN (u->pos, u->len);
  vm.stack = g_ptr_array_new ();
  vm.marks = g_array_new (FALSE, FALSE, sizeof (guint));
  vm.memo = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  vm.error = error;

  for (;;)
    {
      const guint8 *p;
      guint8        op;
      Pv           *a, *b, *c, **items = NULL;
      guint         n;
      gsize         len;

      if ((++count & 0xffff) == 0 && cv_cancelled (u->cancel, error))
        goto fail;
      vm.op_at = vm.pos;
      NEED (p = vm_read (&vm, 1));
      op = *p;
      switch (op)
        {
        case 0x80: /* PROTO */
          NEED (p = vm_read (&vm, 1));
          if (*p > 5)
            {
              vm_pyerr (&vm, "ValueError: unsupported pickle protocol: %d", *p);
              goto fail;
            }
          vm.proto = *p;
          break;
        case 0x95: /* FRAME */
          if (!vm_length (&vm, 8, FALSE, "FRAME", &len))
            goto fail;
          if (vm.in_frame && vm.pos < vm.frame_end)
            {
              vm_pyerr (&vm, "UnpicklingError: beginning of a new frame before end of current frame");
              goto fail;
            }
          vm.in_frame = TRUE;
          vm.frame_end = vm.pos + len;
          break;
        case '.': /* STOP */
          NEED (result = pop (&vm));
          u->pos = vm.in_frame ? MAX (vm.pos, vm.frame_end) : vm.pos;
          goto done;
        case '(': /* MARK */
          {
            guint l = vm.stack->len;
            g_array_append_val (vm.marks, l);
            break;
          }
        case 'N':
          push (&vm, cv_pv_new (vm.heap, PV_NONE));
          break;
        case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
          push (&vm, new_bool (&vm, op == 0x88));
          break;
        case 'I': /* INT */
          NEED (p = vm_readline (&vm, &len));
          if (len == 2 && p[0] == '0' && (p[1] == '0' || p[1] == '1'))
            push (&vm, new_bool (&vm, p[1] == '1'));
          else
            {
              NEED (a = text_int (&vm, p, len, FALSE));
              push (&vm, a);
            }
          break;
        case 'L': /* LONG */
          NEED (p = vm_readline (&vm, &len));
          NEED (a = text_int (&vm, p, len, TRUE));
          push (&vm, a);
          break;
        case 'J': /* BININT */
          NEED (p = vm_read (&vm, 4));
          push (&vm, new_int (&vm, (gint32) (guint32) le_uint (p, 4)));
          break;
        case 'K': /* BININT1 */
          NEED (p = vm_read (&vm, 1));
          push (&vm, new_int (&vm, p[0]));
          break;
        case 'M': /* BININT2 */
          NEED (p = vm_read (&vm, 2));
          push (&vm, new_int (&vm, (gint64) le_uint (p, 2)));
          break;
        case 0x8a: /* LONG1 */
          NEED (p = vm_read (&vm, 1));
          len = p[0];
          NEED (p = vm_read (&vm, len));
          NEED (a = decode_long (&vm, p, len, FALSE));
          push (&vm, a);
          break;
        case 0x8b: /* LONG4 */
          if (!vm_length (&vm, 4, TRUE, "LONG4", &len))
            goto fail;
          NEED (p = vm_read (&vm, len));
          NEED (a = decode_long (&vm, p, len, FALSE));
          push (&vm, a);
          break;
        case 'F': /* FLOAT */
          {
            char  *s, *end;
            double d;
            NEED (p = vm_readline (&vm, &len));
            s = g_strndup ((const char *) p, len);
            g_strstrip (s);
            d = g_ascii_strtod (s, &end);
            if (*s == '\0' || *end != '\0' || strpbrk (s, "xX") != NULL)
              {
                g_free (s);
                vm_pyerr (&vm, "ValueError: could not convert string to float");
                goto fail;
              }
            g_free (s);
            a = cv_pv_new (vm.heap, PV_FLOAT);
            a->f = d;
            push (&vm, a);
            break;
          }
        case 'G': /* BINFLOAT */
          {
            guint64 bits = 0;
            NEED (p = vm_read (&vm, 8));
            for (int i = 0; i < 8; i++)
              bits = (bits << 8) | p[i];
            a = cv_pv_new (vm.heap, PV_FLOAT);
            memcpy (&a->f, &bits, 8);
            push (&vm, a);
            break;
          }
        case 'S': /* STRING */
          {
            guint8 *dec;
            gsize   dn;
            NEED (p = vm_readline (&vm, &len));
            if (len < 2 || p[0] != p[len - 1] || (p[0] != '"' && p[0] != '\''))
              {
                vm_pyerr (&vm, "UnpicklingError: the STRING opcode argument must be quoted");
                goto fail;
              }
            NEED (dec = escape_decode (&vm, p + 1, len - 2, &dn));
            NEED (a = str_ascii (&vm, dec, dn, TRUE));
            push (&vm, a);
            break;
          }
        case 'T': /* BINSTRING */
          if (!vm_length (&vm, 4, TRUE, "BINSTRING", &len))
            goto fail;
          NEED (p = vm_read (&vm, len));
          NEED (a = str_ascii (&vm, p, len, FALSE));
          push (&vm, a);
          break;
        case 'U': /* SHORT_BINSTRING */
          NEED (p = vm_read (&vm, 1));
          len = p[0];
          NEED (p = vm_read (&vm, len));
          NEED (a = str_ascii (&vm, p, len, FALSE));
          push (&vm, a);
          break;
        case 'V': /* UNICODE */
          NEED (p = vm_readline (&vm, &len));
          NEED (a = raw_unicode_escape (&vm, p, len));
          push (&vm, a);
          break;
        case 'X': case 0x8c: case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
          if (op == 0x8c)
            {
              NEED (p = vm_read (&vm, 1));
              len = p[0];
            }
          else if (!vm_length (&vm, op == 'X' ? 4 : 8, FALSE, op == 'X' ? "BINUNICODE" : "BINUNICODE8",
                               &len))
            goto fail;
          NEED (p = vm_read (&vm, len));
          NEED (a = str_utf8 (&vm, p, len));
          push (&vm, a);
          break;
        case 'B': case 'C': case 0x8e: case 0x96: /* BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8 */
          if (op == 'C')
            {
              NEED (p = vm_read (&vm, 1));
              len = p[0];
            }
          else if (!vm_length (&vm, op == 'B' ? 4 : 8, FALSE,
                               op == 'B' ? "BINBYTES" : op == 0x8e ? "BINBYTES8" : "BYTEARRAY8", &len))
            goto fail;
          NEED (p = vm_read (&vm, len));
          a = cv_pv_new (vm.heap, op == 0x96 ? PV_BYTEARRAY : PV_BYTES);
          a->s.p = p;
          a->s.n = len;
          push (&vm, a);
          break;
        case ']':
          push (&vm, cv_pv_new (vm.heap, PV_LIST));
          break;
        case ')':
          push (&vm, cv_pv_new (vm.heap, PV_TUPLE));
          break;
        case '}':
          push (&vm, new_dict (&vm, PV_DICT_PLAIN));
          break;
        case 0x8f: /* EMPTY_SET */
          push (&vm, cv_pv_new (vm.heap, PV_SET));
          break;
        case 0x91: /* FROZENSET */
          NEED (items = pop_mark (&vm, &n));
          a = cv_pv_new (vm.heap, PV_FROZENSET);
          for (guint i = 0; i < n; i++)
            if (!set_add (&vm, a, items[i]))
              goto fail;
          g_clear_pointer (&items, g_free);
          push (&vm, a);
          break;
        case 't': /* TUPLE */
        case 'l': /* LIST */
          NEED (items = pop_mark (&vm, &n));
          push (&vm, new_seq (&vm, op == 't' ? PV_TUPLE : PV_LIST, items, n));
          g_clear_pointer (&items, g_free);
          break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
          {
            Pv *t[3];
            int k = op - 0x84;
            for (int i = k - 1; i >= 0; i--)
              NEED (t[i] = pop (&vm));
            push (&vm, new_seq (&vm, PV_TUPLE, t, k));
            break;
          }
        case 'd': /* DICT */
          NEED (items = pop_mark (&vm, &n));
          a = new_dict (&vm, PV_DICT_PLAIN);
          if (!dict_set_pairs (&vm, a, items, n))
            goto fail;
          g_clear_pointer (&items, g_free);
          push (&vm, a);
          break;
        case 's': /* SETITEM */
          NEED (c = pop (&vm));
          NEED (b = pop (&vm));
          NEED (a = top (&vm));
          if (!assignable (&vm, a) || !dict_set (&vm, a, b, c))
            goto fail;
          break;
        case 'u': /* SETITEMS */
          NEED (items = pop_mark (&vm, &n));
          NEED (a = top (&vm));
          if (!assignable (&vm, a) || !dict_set_pairs (&vm, a, items, n))
            goto fail;
          g_clear_pointer (&items, g_free);
          break;
        case 'a': /* APPEND */
          NEED (b = pop (&vm));
          NEED (a = top (&vm));
          if (a->type != PV_LIST)
            {
              vm_pyerr (&vm, "AttributeError: '%s' object has no attribute 'append'",
                        cv_pv_type_name (a));
              goto fail;
            }
          cv_seq_append (a, b);
          break;
        case 'e': /* APPENDS */
          NEED (items = pop_mark (&vm, &n));
          NEED (a = top (&vm));
          if (a->type != PV_LIST)
            {
              vm_pyerr (&vm, "AttributeError: '%s' object has no attribute 'extend'",
                        cv_pv_type_name (a));
              goto fail;
            }
          for (guint i = 0; i < n; i++)
            cv_seq_append (a, items[i]);
          g_clear_pointer (&items, g_free);
          break;
        case 0x90: /* ADDITEMS */
          NEED (items = pop_mark (&vm, &n));
          NEED (a = top (&vm));
          if (a->type != PV_SET)
            {
              vm_pyerr (&vm, "AttributeError: '%s' object has no attribute 'add'",
                        cv_pv_type_name (a));
              goto fail;
            }
          for (guint i = 0; i < n; i++)
            if (!set_add (&vm, a, items[i]))
              goto fail;
          g_clear_pointer (&items, g_free);
          break;
        case '0': /* POP */
          if (vm.stack->len > seg_base (&vm))
            g_ptr_array_set_size (vm.stack, vm.stack->len - 1);
          else
            {
              NEED (items = pop_mark (&vm, &n));
              g_clear_pointer (&items, g_free);
            }
          break;
        case '1': /* POP_MARK */
          NEED (items = pop_mark (&vm, &n));
          g_clear_pointer (&items, g_free);
          break;
        case '2': /* DUP */
          NEED (a = top (&vm));
          push (&vm, a);
          break;
        case 'g': /* GET */
          {
            gint64 i;
            if (!line_index (&vm, &i, "GET"))
              goto fail;
            NEED (a = memo_get (&vm, i));
            push (&vm, a);
            break;
          }
        case 'h': case 'j': /* BINGET, LONG_BINGET */
          NEED (p = vm_read (&vm, op == 'h' ? 1 : 4));
          NEED (a = memo_get (&vm, (gint64) le_uint (p, op == 'h' ? 1 : 4)));
          push (&vm, a);
          break;
        case 'p': /* PUT */
          {
            gint64 i;
            if (!line_index (&vm, &i, "PUT"))
              goto fail;
            NEED (a = top (&vm));
            memo_put (&vm, i, a);
            break;
          }
        case 'q': case 'r': /* BINPUT, LONG_BINPUT */
          NEED (p = vm_read (&vm, op == 'q' ? 1 : 4));
          NEED (a = top (&vm));
          memo_put (&vm, (gint64) le_uint (p, op == 'q' ? 1 : 4), a);
          break;
        case 0x94: /* MEMOIZE */
          NEED (a = top (&vm));
          memo_put (&vm, g_hash_table_size (vm.memo), a);
          break;
        case 'c': /* GLOBAL */
        case 'i': /* INST */
          {
            const guint8 *mod, *name;
            gsize         nmod, nname;
            NEED (mod = vm_readline (&vm, &nmod));
            NEED (name = vm_readline (&vm, &nname));
            if (!utf8_ok (mod, nmod) || !utf8_ok (name, nname))
              {
                vm_pyerr (&vm, "UnicodeDecodeError: 'utf-8' codec can't decode a global's name");
                goto fail;
              }
            NEED (a = find_class (&vm, mod, nmod, name, nname));
            if (op == 'c')
              push (&vm, a);
            else
              {
                NEED (items = pop_mark (&vm, &n));
                NEED (b = call (&vm, a, items, n));
                g_clear_pointer (&items, g_free);
                push (&vm, b);
              }
            break;
          }
        case 0x93: /* STACK_GLOBAL */
          NEED (b = pop (&vm));
          NEED (a = pop (&vm));
          if (a->type != PV_STR || b->type != PV_STR)
            {
              vm_pyerr (&vm, "UnpicklingError: STACK_GLOBAL requires str");
              goto fail;
            }
          NEED (c = find_class (&vm, a->s.p, a->s.n, b->s.p, b->s.n));
          push (&vm, c);
          break;
        case 'o': /* OBJ */
          NEED (items = pop_mark (&vm, &n));
          if (n == 0)
            {
              vm_pyerr (&vm, "IndexError: pop from empty list");
              goto fail;
            }
          NEED (a = call (&vm, items[0], items + 1, n - 1));
          g_clear_pointer (&items, g_free);
          push (&vm, a);
          break;
        case 'R': /* REDUCE */
          {
            Pv  **args;
            guint nargs;
            NEED (b = pop (&vm));
            NEED (a = top (&vm));
            if (!args_of (&vm, b, &args, &nargs))
              goto fail;
            NEED (c = call (&vm, a, args, nargs));
            vm.stack->pdata[vm.stack->len - 1] = c;
            break;
          }
        case 0x81: /* NEWOBJ */
        case 0x92: /* NEWOBJ_EX */
          {
            Pv  **args;
            guint nargs;
            if (op == 0x92)
              {
                NEED (c = pop (&vm));
                if (c->type != PV_DICT)
                  {
                    vm_pyerr (&vm, "TypeError: argument after ** must be a mapping");
                    goto fail;
                  }
              }
            NEED (b = pop (&vm));
            NEED (a = pop (&vm));
            if (!args_of (&vm, b, &args, &nargs))
              goto fail;
            NEED (c = newobj (&vm, a, args, nargs));
            push (&vm, c);
            break;
          }
        case 'b': /* BUILD */
          NEED (b = pop (&vm));
          NEED (a = top (&vm));
          if (!build (&vm, a, b))
            goto fail;
          break;
        case 'P': /* PERSID */
          NEED (p = vm_readline (&vm, &len));
          for (gsize i = 0; i < len; i++)
            if (p[i] >= 0x80)
              {
                vm_pyerr (&vm, "UnpicklingError: persistent IDs in protocol 0 must be ASCII strings");
                goto fail;
              }
          NEED (a = persistent_load (&vm, new_str (&vm, p, len, FALSE)));
          push (&vm, a);
          break;
        case 'Q': /* BINPERSID */
          NEED (b = pop (&vm));
          NEED (a = persistent_load (&vm, b));
          push (&vm, a);
          break;
        case 0x82: case 0x83: case 0x84: /* EXT1, EXT2, EXT4 */
          /* copyreg's extension registry names globals by number. */
          vm_refuse (&vm, "refused: opcode %s: the copyreg extension registry is not supported",
                     ext_name (op));
          goto fail;
        case 0x97: /* NEXT_BUFFER */
          vm_refuse (&vm, "refused: out-of-band buffers");
          goto fail;
        case 0x98: /* READONLY_BUFFER */
          NEED (a = top (&vm));
          if (a->type != PV_BYTES && a->type != PV_BYTEARRAY)
            {
              vm_pyerr (&vm, "TypeError: memoryview: a bytes-like object is required");
              goto fail;
            }
          break;
        default:
          vm_bad (&vm, "not a valid pickle: unknown opcode 0x%02x at byte %" G_GSIZE_FORMAT, op,
                  vm.op_at);
          goto fail;
        }
      continue;
fail:
      g_free (items);
      result = NULL;
      goto done;
    }
done:
  g_ptr_array_unref (vm.stack);
  g_array_unref (vm.marks);
  g_hash_table_unref (vm.memo);
  return result;
}

/* ---- refused tensors, named ------------------------------------------------------------------- */

/* The walk keeps one node per value reached (its parent and what names it
 * there) and spells a name out only for the tensor it reports: a deeply
 * nested or much-shared file costs memory in proportion to its size. */
typedef struct
{
  Pv    *v;
  gint   parent; /* node index, -1 at the root */
  Pv    *key;    /* a dict's key, or NULL */
  gint64 index;  /* a list's index; -1: "args"; -2: nothing (state, _modules, ...) */
} Node;

static gboolean
skipped_key (const Pv *k)
{
  return cv_pv_is_str (k, "state") || cv_pv_is_str (k, "_modules") ||
         cv_pv_is_str (k, "_parameters") || cv_pv_is_str (k, "_buffers");
}

static char *
node_name (GArray *nodes, gint i)
{
  GPtrArray *parts = g_ptr_array_new_with_free_func (g_free);
  GString   *s = g_string_new (NULL);

  for (; i >= 0; i = g_array_index (nodes, Node, i).parent)
    {
      Node *n = &g_array_index (nodes, Node, i);
      if (n->parent < 0)
        break;
      if (n->key != NULL)
        g_ptr_array_add (parts, n->key->type == PV_STR ? cv_pv_strdup (n->key) : cv_pv_repr (n->key, 200));
      else if (n->index >= 0)
        g_ptr_array_add (parts, g_strdup_printf ("%" G_GINT64_FORMAT, n->index));
      else if (n->index == -1)
        g_ptr_array_add (parts, g_strdup ("args"));
    }
  for (guint k = parts->len; k-- > 0;)
    {
      if (s->len > 0)
        g_string_append_c (s, '.');
      g_string_append (s, parts->pdata[k]);
    }
  g_ptr_array_unref (parts);
  return g_string_free (s, FALSE);
}

static void
push_node (GArray *nodes, GArray *todo, GHashTable *seen, Pv *v, gint parent, Pv *key, gint64 index)
{
  Node c = { v, parent, key, index };
  gint idx;

  if (key != NULL && skipped_key (key))
    c.key = NULL, c.index = -2;
  if (v->type != PV_BADTENSOR && g_hash_table_contains (seen, v))
    return; /* reached before: nothing new below it */
  g_array_append_val (nodes, c);
  idx = (gint) nodes->len - 1;
  g_array_append_val (todo, idx);
}

gboolean
cv_refuse_bad_tensors (Pv *root, GError **error)
{
  GHashTable *seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  GArray     *nodes = g_array_new (FALSE, FALSE, sizeof (Node));
  GArray     *todo = g_array_new (FALSE, FALSE, sizeof (gint));
  gboolean    ok = TRUE;
  Node        first = { root, -1, NULL, -2 };
  gint        zero = 0;

  g_array_append_val (nodes, first);
  g_array_append_val (todo, zero);
  while (todo->len > 0)
    {
      gint at = g_array_index (todo, gint, todo->len - 1);
      Pv  *v = g_array_index (nodes, Node, at).v;

      g_array_set_size (todo, todo->len - 1);
      if (v->type == PV_BADTENSOR)
        {
          char *name = node_name (nodes, at);
          g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: tensor %s %s",
                       *name ? name : "<root>", v->bad.problem);
          g_free (name);
          ok = FALSE;
          break;
        }
      if (!g_hash_table_add (seen, v))
        continue;
      /* pushed in reverse: the first child is visited first (Python's order) */
      switch (v->type)
        {
        case PV_DICT:
          for (guint i = v->dict.n; i-- > 0;)
            push_node (nodes, todo, seen, v->dict.vals[i], at, v->dict.keys[i], 0);
          break;
        case PV_LIST: case PV_TUPLE:
          for (guint i = v->seq.n; i-- > 0;)
            push_node (nodes, todo, seen, v->seq.items[i], at, NULL, i);
          break;
        case PV_PERSISTENT:
          push_node (nodes, todo, seen, v->pers.state, at, NULL, -2);
          break;
        case PV_STANDIN:
          push_node (nodes, todo, seen, v->standin.args, at, NULL, -1);
          push_node (nodes, todo, seen, v->standin.state, at, NULL, -2);
          break;
        default:
          break;
        }
    }
  g_array_unref (nodes);
  g_array_unref (todo);
  g_hash_table_unref (seen);
  return ok;
}
