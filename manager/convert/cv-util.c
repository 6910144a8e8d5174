/* cv-util.c — what the native conversions share: tensors read as float32
 * the way torch's .to(torch.float32) reads them, float32 -> float16 rounding
 * as torch does it (round to nearest even), the safetensors writer (the
 * header, order and alignment of Python's safetensors.torch.save_file, so
 * the files come out byte for byte the same), mapped input files, checksums
 * and atomic writes. */
#include "cv.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- numbers ----------------------------------------------------------------------- */

float
cv_f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  float   f;

  if (exp == 0x1f)
    bits = sign | 0x7f800000u | (man << 13);
  else if (exp != 0)
    bits = sign | ((exp + 112) << 23) | (man << 13);
  else if (man == 0)
    bits = sign;
  else
    {
      /* subnormal: normalise */
      int e = -1;
      do
        {
          e++;
          man <<= 1;
        }
      while (!(man & 0x400));
      bits = sign | ((guint32) (112 - e) << 23) | ((man & 0x3ff) << 13);
    }
  memcpy (&f, &bits, 4);
  return f;
}

/* Round to nearest, ties to even, as torch's float -> half (c10's
 * fp16_ieee_from_fp32_value); NaN becomes the quiet NaN 0x7e00 with its sign. */
guint16
cv_f32_to_f16 (float f)
{
  guint32 x, ax, sign;

  memcpy (&x, &f, 4);
  sign = (x >> 16) & 0x8000;
  ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)
    return (guint16) (sign | 0x7e00);
  if (ax >= 0x477ff000u) /* 65520 and up round to infinity */
    return (guint16) (sign | 0x7c00);
  if (ax >= 0x38800000u) /* normal halves: 2^-14 and up */
    {
      guint32 low = ax & 0x1fff;
      guint32 h = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ff);
      if (low > 0x1000 || (low == 0x1000 && (h & 1)))
        h++;
      return (guint16) (sign | h);
    }
  if (ax < 0x33000000u) /* below half the smallest subnormal: zero */
    return (guint16) sign;
  {
    guint32 e = ax >> 23, m = (ax & 0x7fffff) | 0x800000, s = 126 - e;
    guint32 r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    if (rem > half || (rem == half && (r & 1)))
      r++;
    return (guint16) (sign | r);
  }
}

static float
bf16_to_f32 (guint16 b)
{
  guint32 bits = (guint32) b << 16;
  float   f;

  memcpy (&f, &bits, 4);
  return f;
}

static float
element_f32 (CvDtype d, const guint8 *p)
{
  switch (d)
    {
    case CV_DT_F64: { double v; memcpy (&v, p, 8); return (float) v; }
    case CV_DT_F32: { float v; memcpy (&v, p, 4); return v; }
    case CV_DT_F16: return cv_f16_to_f32 ((guint16) (p[0] | p[1] << 8));
    case CV_DT_BF16: return bf16_to_f32 ((guint16) (p[0] | p[1] << 8));
    case CV_DT_I64: { gint64 v; memcpy (&v, p, 8); return (float) v; }
    case CV_DT_I32: { gint32 v; memcpy (&v, p, 4); return (float) v; }
    case CV_DT_I16: { gint16 v; memcpy (&v, p, 2); return (float) v; }
    case CV_DT_I8: return (float) (gint8) p[0];
    case CV_DT_U8: return (float) p[0];
    case CV_DT_BOOL: return p[0] ? 1.0f : 0.0f;
    default: return 0;
    }
}

void
cv_tensor_from_pv (CvTensor *t, const Pv *v)
{
  const Pv *s = v->t.storage;

  memset (t, 0, sizeof *t);
  t->dtype = s->storage.dtype;
  t->ndim = v->t.ndim;
  t->numel = 1;
  for (int i = 0; i < t->ndim; i++)
    {
      t->shape[i] = v->t.size[i];
      t->stride[i] = v->t.stride[i];
      t->numel *= t->shape[i];
    }
  t->data = s->storage.data != NULL ? s->storage.data + (gsize) v->t.offset * cv_dtype_size (t->dtype)
                                    : NULL;
}

/* count elements from element `start` (C order) as float32 into out. */
static void
tensor_read (const CvTensor *t, gint64 start, gint64 count, float *out)
{
  gsize  es = cv_dtype_size (t->dtype);
  gint64 idx[CV_MAX_NDIM], off = 0, rem = start;
  gboolean contiguous = TRUE;
  gint64 expect = 1;

  for (int d = t->ndim - 1; d >= 0; d--)
    {
      if (t->shape[d] != 1 && t->stride[d] != expect)
        contiguous = FALSE;
      expect *= t->shape[d];
    }
  if (contiguous)
    {
      const guint8 *p = t->data + (gsize) start * es;
      if (t->dtype == CV_DT_F32)
        memcpy (out, p, (gsize) count * 4);
      else
        for (gint64 i = 0; i < count; i++)
          out[i] = element_f32 (t->dtype, p + (gsize) i * es);
      return;
    }
  for (int d = t->ndim - 1; d >= 0; d--)
    {
      idx[d] = rem % t->shape[d];
      rem /= t->shape[d];
      off += idx[d] * t->stride[d];
    }
  for (gint64 i = 0; i < count; i++)
    {
      out[i] = element_f32 (t->dtype, t->data + (gsize) off * es);
      for (int d = t->ndim - 1; d >= 0; d--)
        {
          idx[d]++;
          off += t->stride[d];
          if (idx[d] < t->shape[d])
            break;
          off -= idx[d] * t->stride[d];
          idx[d] = 0;
        }
    }
}

float
cv_tensor_get_f32 (const CvTensor *t, gint64 i)
{
  float v;

  tensor_read (t, i, 1, &v);
  return v;
}

gboolean
cv_shape_equal (const CvTensor *t, int ndim, const gint64 *shape)
{
  if (t->ndim != ndim)
    return FALSE;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i])
      return FALSE;
  return TRUE;
}

char *
cv_shape_str (int ndim, const gint64 *shape)
{
  GString *s = g_string_new ("[");

  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* ---- errors, expected tensors ------------------------------------------------------ */

void
cv_fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, CV_ERROR, CV_ERROR_CONVERT, msg);
  g_free (msg);
}

int
cv_exit_status (const GError *e)
{
  return e->code == CV_ERROR_REFUSED || e->code == CV_ERROR_CONVERT || e->code == CV_ERROR_USAGE
         ? 2 : 1;
}

void
cv_want_add (GPtrArray *w, int ndim, gint64 a, gint64 b, gint64 c, gint64 d, char *name)
{
  CvWant *x = g_new0 (CvWant, 1);

  x->name = name;
  x->ndim = ndim;
  x->shape[0] = a, x->shape[1] = b, x->shape[2] = c, x->shape[3] = d;
  g_ptr_array_add (w, x);
}

void
cv_want_free (gpointer want)
{
  CvWant *x = want;

  g_free (x->name);
  g_free (x);
}

/* ---- files ----------------------------------------------------------------------------- */

void
cv_io_error (GError **error, const char *what, int errsv)
{
  g_set_error (error, CV_ERROR, CV_ERROR_IO, "%s: %s%s", what, g_strerror (errsv),
               errsv == ENOSPC || errsv == EFBIG || errsv == EDQUOT
               ? " (the disk is full or the file size limit is reached)" : "");
}

GMappedFile *
cv_map_file (const char *path, GError **error)
{
  GError     *err = NULL;
  GMappedFile *m;
  GStatBuf    st;

  /* g_mapped_file_new opens what it is given: a folder is refused first. */
  if (g_stat (path, &st) != 0)
    {
      cv_io_error (error, path, errno);
      return NULL;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, CV_ERROR, CV_ERROR_IO, "%s: not a regular file", path);
      return NULL;
    }
  m = g_mapped_file_new (path, FALSE, &err);
  if (m == NULL)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_IO, "%s", err->message);
      g_error_free (err);
    }
  return m;
}

char *
cv_sha256_bytes (const guint8 *data, gsize len)
{
  GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);
  char      *hex;

  while (len > 0)
    {
      gsize n = MIN (len, (gsize) 1 << 30);
      g_checksum_update (c, data, (gssize) n);
      data += n;
      len -= n;
    }
  hex = g_strdup (g_checksum_get_string (c));
  g_checksum_free (c);
  return hex;
}

char *
cv_sha256_file (const char *path, GError **error)
{
  GMappedFile *m = cv_map_file (path, error);
  char        *hex;

  if (m == NULL)
    return NULL;
  hex = cv_sha256_bytes ((const guint8 *) g_mapped_file_get_contents (m), g_mapped_file_get_length (m));
  g_mapped_file_unref (m);
  return hex;
}

static gboolean
write_all (int fd, const void *buf, gsize n, const char *path, GError **error)
{
  const guint8 *p = buf;

  while (n > 0)
    {
      ssize_t w = write (fd, p, MIN (n, (gsize) 1 << 30));
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        {
          char *what = g_strdup_printf ("writing %s", path);
          cv_io_error (error, what, w < 0 ? errno : ENOSPC);
          g_free (what);
          return FALSE;
        }
      p += w;
      n -= (gsize) w;
    }
  return TRUE;
}

/* A temporary file beside path: ".NAME.XXXXXX". */
static int
open_temp (const char *path, char **tmp, GError **error)
{
  char *dir = g_path_get_dirname (path), *base = g_path_get_basename (path);
  int   fd;

  *tmp = g_strdup_printf ("%s/.%s.XXXXXX", dir, base);
  fd = g_mkstemp_full (*tmp, O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0)
    {
      cv_io_error (error, *tmp, errno);
      g_clear_pointer (tmp, g_free);
    }
  g_free (dir);
  g_free (base);
  return fd;
}

static gboolean
finish_temp (int fd, char *tmp, const char *path, gboolean ok, GError **error)
{
  if (ok && fchmod (fd, 0644) != 0)
    {
      cv_io_error (error, tmp, errno);
      ok = FALSE;
    }
  if (close (fd) != 0 && ok)
    {
      cv_io_error (error, path, errno);
      ok = FALSE;
    }
  if (ok && g_rename (tmp, path) != 0)
    {
      cv_io_error (error, path, errno);
      ok = FALSE;
    }
  if (!ok)
    g_unlink (tmp);
  g_free (tmp);
  return ok;
}

gboolean
cv_write_atomic (const char *path, const char *text, gsize len, GError **error)
{
  char *tmp;
  int   fd = open_temp (path, &tmp, error);

  if (fd < 0)
    return FALSE;
  return finish_temp (fd, tmp, path, write_all (fd, text, len, path, error), error);
}

gboolean
cv_write_json (const char *path, JsonNode *root, gboolean atomic, GError **error)
{
  gsize    n;
  char    *text = gfcg_json_to_data (root, TRUE, &n);
  GString *s = g_string_new_len (text, (gssize) n);
  gboolean ok;

  g_string_append_c (s, '\n');
  if (atomic)
    ok = cv_write_atomic (path, s->str, s->len, error);
  else
    {
      int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0)
        {
          cv_io_error (error, path, errno);
          ok = FALSE;
        }
      else
        {
          ok = write_all (fd, s->str, s->len, path, error);
          if (close (fd) != 0 && ok)
            {
              cv_io_error (error, path, errno);
              ok = FALSE;
            }
        }
    }
  g_string_free (s, TRUE);
  g_free (text);
  return ok;
}

/* ---- the safetensors writer ------------------------------------------------------------------ */

CvOutFile *
cv_out_new (void)
{
  CvOutFile *f = g_new0 (CvOutFile, 1);

  f->tensors = g_ptr_array_new ();
  return f;
}

void
cv_out_free (CvOutFile *f)
{
  if (f == NULL)
    return;
  for (guint i = 0; i < f->tensors->len; i++)
    {
      CvOutTensor *t = f->tensors->pdata[i];
      g_free (t->name);
      g_free (t);
    }
  g_ptr_array_unref (f->tensors);
  g_free (f->metadata_key);
  g_free (f->metadata_value);
  g_free (f);
}

void
cv_out_add (CvOutFile *f, const char *name, const CvTensor *t)
{
  CvOutTensor *o = g_new0 (CvOutTensor, 1);

  o->name = g_strdup (name);
  o->src = *t;
  g_ptr_array_add (f->tensors, o);
}

#define CHUNK ((gint64) 1 << 20)

gboolean
cv_out_check_fp16 (CvOutFile *f, const char *what, GError **error)
{
  float *buf = g_new (float, CHUNK);

  for (guint i = 0; i < f->tensors->len; i++)
    {
      CvOutTensor *t = f->tensors->pdata[i];
      gboolean     nan = FALSE, over = FALSE;

      for (gint64 s = 0; s < t->src.numel && !nan; s += CHUNK)
        {
          gint64 n = MIN (CHUNK, t->src.numel - s);
          tensor_read (&t->src, s, n, buf);
          for (gint64 k = 0; k < n; k++)
            {
              if (isnan (buf[k]))
                nan = TRUE; /* torch's max is NaN then, and NaN > 65504 is false */
              else if (fabsf (buf[k]) > 65504.0f)
                over = TRUE;
            }
        }
      if (over && !nan)
        {
          g_free (buf);
          g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "%s%s%s does not fit in fp16; convert "
                       "without --fp16", what != NULL ? what : "", what != NULL ? ": " : "", t->name);
          return FALSE;
        }
    }
  g_free (buf);
  return TRUE;
}

/* serde_json's string escaping. */
static void
json_str (GString *s, const char *str)
{
  g_string_append_c (s, '"');
  for (const guchar *p = (const guchar *) str; *p; p++)
    switch (*p)
      {
      case '"': g_string_append (s, "\\\""); break;
      case '\\': g_string_append (s, "\\\\"); break;
      case '\b': g_string_append (s, "\\b"); break;
      case '\f': g_string_append (s, "\\f"); break;
      case '\n': g_string_append (s, "\\n"); break;
      case '\r': g_string_append (s, "\\r"); break;
      case '\t': g_string_append (s, "\\t"); break;
      default:
        if (*p < 0x20)
          g_string_append_printf (s, "\\u%04x", *p);
        else
          g_string_append_c (s, (char) *p);
      }
  g_string_append_c (s, '"');
}

static int
by_name (gconstpointer a, gconstpointer b)
{
  const CvOutTensor *x = *(CvOutTensor *const *) a, *y = *(CvOutTensor *const *) b;

  return strcmp (x->name, y->name);
}

gboolean
cv_out_write (CvOutFile *f, const char *path, gboolean fp16, volatile sig_atomic_t *cancel,
              GError **error)
{
  GPtrArray *sorted = g_ptr_array_copy (f->tensors, NULL, NULL);
  GString   *h = g_string_new ("{");
  gsize      es = fp16 ? 2 : 4, offset = 0;
  guint64    hlen;
  guint8     le[8];
  int        fd = -1;
  float     *buf = NULL;
  void      *out = NULL;
  gboolean   ok = FALSE;

  g_ptr_array_sort (sorted, by_name);
  if (f->metadata_key != NULL)
    {
      g_string_append (h, "\"__metadata__\":{");
      json_str (h, f->metadata_key);
      g_string_append_c (h, ':');
      json_str (h, f->metadata_value);
      g_string_append_c (h, '}');
    }
  for (guint i = 0; i < sorted->len; i++)
    {
      CvOutTensor *t = sorted->pdata[i];
      if (h->len > 1)
        g_string_append_c (h, ',');
      json_str (h, t->name);
      g_string_append_printf (h, ":{\"dtype\":\"%s\",\"shape\":[", fp16 ? "F16" : "F32");
      for (int d = 0; d < t->src.ndim; d++)
        g_string_append_printf (h, "%s%" G_GINT64_FORMAT, d ? "," : "", t->src.shape[d]);
      g_string_append_printf (h, "],\"data_offsets\":[%" G_GSIZE_FORMAT ",%" G_GSIZE_FORMAT "]}",
                              offset, offset + (gsize) t->src.numel * es);
      offset += (gsize) t->src.numel * es;
    }
  g_string_append_c (h, '}');
  while (h->len % 8 != 0)
    g_string_append_c (h, ' ');
  hlen = h->len;
  for (int i = 0; i < 8; i++)
    le[i] = (guint8) (hlen >> (8 * i));

  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    {
      cv_io_error (error, path, errno);
      goto out;
    }
  if (!write_all (fd, le, 8, path, error) || !write_all (fd, h->str, h->len, path, error))
    goto out;
  buf = g_new (float, CHUNK);
  out = fp16 ? g_malloc (CHUNK * 2) : NULL;
  for (guint i = 0; i < sorted->len; i++)
    {
      CvOutTensor *t = sorted->pdata[i];
      if (cv_cancelled (cancel, error))
        goto out;
      for (gint64 s = 0; s < t->src.numel; s += CHUNK)
        {
          gint64 n = MIN (CHUNK, t->src.numel - s);
          tensor_read (&t->src, s, n, buf);
          if (fp16)
            {
              guint8 *o = out;
              for (gint64 k = 0; k < n; k++)
                {
                  guint16 v = cv_f32_to_f16 (buf[k]);
                  o[2 * k] = (guint8) v;
                  o[2 * k + 1] = (guint8) (v >> 8);
                }
              if (!write_all (fd, out, (gsize) n * 2, path, error))
                goto out;
            }
          else
            {
#if G_BYTE_ORDER == G_BIG_ENDIAN
              for (gint64 k = 0; k < n; k++)
                {
                  guint32 u;
                  memcpy (&u, &buf[k], 4);
                  u = GUINT32_TO_LE (u);
                  memcpy (&buf[k], &u, 4);
                }
#endif
              if (!write_all (fd, buf, (gsize) n * 4, path, error))
                goto out;
            }
        }
    }
  if (close (fd) != 0)
    {
      fd = -1;
      cv_io_error (error, path, errno);
      goto out;
    }
  fd = -1;
  ok = TRUE;
out:
  if (fd >= 0)
    close (fd);
  g_free (buf);
  g_free (out);
  g_string_free (h, TRUE);
  g_ptr_array_unref (sorted);
  return ok;
}
