/* cv-zip.c — the zip archives torch.save writes, read without trusting them.
 *
 * The end-of-central-directory record (and its zip64 form) gives the central
 * directory; every entry of it is checked before its bytes are handed out:
 * its local header inside the archive and consistent with the directory
 * (signature, name), its data inside the archive and before the directory,
 * stored (torch.save never compresses), not encrypted, its CRC-32 right;
 * no name twice; no two entries (local header and data) overlapping. */
#include "cv.h"

#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD    0x06054b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_LOC64   0x07064b50u

static guint32
u16 (const guint8 *p)
{
  return p[0] | (guint32) p[1] << 8;
}

static guint32
u32 (const guint8 *p)
{
  return p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

static guint64
u64 (const guint8 *p)
{
  return u32 (p) | (guint64) u32 (p + 4) << 32;
}

static guint32 crc_table[256];

static gpointer
crc_init (gpointer unused)
{
  (void) unused;
  for (guint32 i = 0; i < 256; i++)
    {
      guint32 c = i;
      for (int k = 0; k < 8; k++)
        c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      crc_table[i] = c;
    }
  return NULL;
}

static guint32
crc32 (const guint8 *p, gsize n)
{
  static GOnce once = G_ONCE_INIT;
  guint32      c = 0xffffffffu;

  g_once (&once, crc_init, NULL);
  for (gsize i = 0; i < n; i++)
    c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static void
zip_bad (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
static void
zip_bad (GError **error, const char *fmt, ...)
{
  va_list ap;
  char   *msg;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, CV_ERROR, CV_ERROR_BAD, "damaged zip archive: %s", msg);
  g_free (msg);
}

void
cv_zip_free (CvZip *zip)
{
  if (zip == NULL)
    return;
  for (guint i = 0; i < zip->n; i++)
    g_free (zip->entries[i].name);
  g_free (zip->entries);
  g_free (zip);
}

typedef struct
{
  guint64 start, end; /* local header .. end of data */
  guint   index;
} Span;

static int
by_start (const void *a, const void *b)
{
  const Span *x = a, *y = b;

  return x->start < y->start ? -1 : x->start > y->start;
}

CvZip *
cv_zip_open (const guint8 *d, gsize len, GError **error)
{
  gsize        eocd = G_MAXSIZE;
  guint64      n_entries, cd_size, cd_off;
  CvZip       *zip;
  Span        *spans = NULL;
  GHashTable  *names = NULL;
  const guint8 *p;

  if (len < 22)
    {
      zip_bad (error, "%" G_GSIZE_FORMAT " bytes, too short for a zip archive", len);
      return NULL;
    }
  /* The end record: the last one in the final 64 KiB + 22 bytes. */
  for (gsize at = len - 22 + 1; at-- > 0 && len - at <= 22 + 65535;)
    if (u32 (d + at) == SIG_EOCD && at + 22 + u16 (d + at + 20) == len)
      {
        eocd = at;
        break;
      }
  if (eocd == G_MAXSIZE)
    {
      zip_bad (error, "no end-of-central-directory record (not a zip archive, or truncated)");
      return NULL;
    }
  p = d + eocd;
  if (u16 (p + 4) != 0 || u16 (p + 6) != 0)
    {
      zip_bad (error, "a multi-disk archive");
      return NULL;
    }
  n_entries = u16 (p + 10);
  cd_size = u32 (p + 12);
  cd_off = u32 (p + 16);
  /* A zip64 locator before the end record (torch.save always writes one):
   * the zip64 record's counts and offsets are the ones that hold. */
  if (eocd >= 20 && u32 (d + eocd - 20) == SIG_LOC64)
    {
      guint64       rec = u64 (d + eocd - 20 + 8);
      const guint8 *r;
      if (rec > eocd - 20 || eocd - 20 - rec < 56 || u32 (d + rec) != SIG_EOCD64)
        {
          zip_bad (error, "the zip64 end record is not where its locator says");
          return NULL;
        }
      r = d + rec;
      if (u32 (r + 16) != 0 || u32 (r + 20) != 0)
        {
          zip_bad (error, "a multi-disk archive");
          return NULL;
        }
      n_entries = u64 (r + 32);
      cd_size = u64 (r + 40);
      cd_off = u64 (r + 48);
      eocd = rec; /* the directory ends before the zip64 record */
    }
  else if (n_entries == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu)
    {
      zip_bad (error, "zip64 fields without a zip64 locator");
      return NULL;
    }
  if (cd_off > eocd || cd_size > eocd - cd_off)
    {
      zip_bad (error, "the central directory (%" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT
               ") lies outside the archive (truncated?)", cd_size, cd_off);
      return NULL;
    }
  if (cd_off + cd_size != eocd)
    {
      zip_bad (error, "%" G_GUINT64_FORMAT " unexplained bytes between the central directory and "
               "its end record", eocd - cd_off - cd_size);
      return NULL;
    }
  if (n_entries > cd_size / 46)
    {
      zip_bad (error, "%" G_GUINT64_FORMAT " entries cannot fit in a central directory of %"
               G_GUINT64_FORMAT " bytes", n_entries, cd_size);
      return NULL;
    }
  zip = g_new0 (CvZip, 1);
  zip->entries = g_new0 (CvZipEntry, n_entries + 1);
  spans = g_new (Span, n_entries + 1);
  names = g_hash_table_new (g_str_hash, g_str_equal);
  p = d + cd_off;
  for (guint64 i = 0; i < n_entries; i++)
    {
      const guint8 *end = d + cd_off + cd_size, *lh;
      guint32       flags, method, crc, nlen, xlen, clen, lnlen, lxlen;
      guint64       csize, usize, off, data;
      char         *name;

      if ((gsize) (end - p) < 46 || u32 (p) != SIG_CENTRAL)
        {
          zip_bad (error, "central directory entry %" G_GUINT64_FORMAT " is damaged", i);
          goto fail;
        }
      flags = u16 (p + 8);
      method = u16 (p + 10);
      crc = u32 (p + 16);
      csize = u32 (p + 20);
      usize = u32 (p + 24);
      nlen = u16 (p + 28);
      xlen = u16 (p + 30);
      clen = u16 (p + 32);
      off = u32 (p + 42);
      if ((gsize) (end - p) - 46 < (gsize) nlen + xlen + clen)
        {
          zip_bad (error, "central directory entry %" G_GUINT64_FORMAT " is damaged", i);
          goto fail;
        }
      name = g_strndup ((const char *) p + 46, nlen);
      zip->entries[zip->n].name = name;
      zip->n++;
      if (strlen (name) != nlen || nlen == 0)
        {
          zip_bad (error, "entry %" G_GUINT64_FORMAT " has no proper name", i);
          goto fail;
        }
      /* zip64 sizes and offset, in this order, for the fields set to all ones */
      if (usize == 0xffffffffu || csize == 0xffffffffu || off == 0xffffffffu)
        {
          const guint8 *x = p + 46 + nlen, *xend = x + xlen;
          gboolean      found = FALSE;
          while (xend - x >= 4)
            {
              guint32 id = u16 (x), sz = u16 (x + 2);
              const guint8 *f = x + 4;
              if ((gsize) (xend - f) < sz)
                break;
              if (id == 0x0001)
                {
                  const guint8 *fend = f + sz;
                  found = TRUE;
                  if (usize == 0xffffffffu)
                    {
                      if (fend - f < 8) { found = FALSE; break; }
                      usize = u64 (f), f += 8;
                    }
                  if (csize == 0xffffffffu)
                    {
                      if (fend - f < 8) { found = FALSE; break; }
                      csize = u64 (f), f += 8;
                    }
                  if (off == 0xffffffffu)
                    {
                      if (fend - f < 8) { found = FALSE; break; }
                      off = u64 (f), f += 8;
                    }
                  break;
                }
              x = f + sz;
            }
          if (!found)
            {
              zip_bad (error, "%s: zip64 sizes missing", name);
              goto fail;
            }
        }
      if (flags & 1)
        {
          zip_bad (error, "%s is encrypted", name);
          goto fail;
        }
      if (method != 0)
        {
          zip_bad (error, "%s is compressed (method %u); torch.save archives store their entries",
                   name, method);
          goto fail;
        }
      if (csize != usize)
        {
          zip_bad (error, "%s: stored entry of %" G_GUINT64_FORMAT " bytes claims %" G_GUINT64_FORMAT,
                   name, csize, usize);
          goto fail;
        }
      if (off > cd_off || cd_off - off < 30)
        {
          zip_bad (error, "%s: local header at %" G_GUINT64_FORMAT " lies outside the archive's "
                   "entries", name, off);
          goto fail;
        }
      lh = d + off;
      lnlen = u16 (lh + 26);
      lxlen = u16 (lh + 28);
      if (u32 (lh) != SIG_LOCAL || cd_off - off - 30 < (guint64) lnlen + lxlen)
        {
          zip_bad (error, "%s: bad local header at %" G_GUINT64_FORMAT, name, off);
          goto fail;
        }
      if (lnlen != nlen || memcmp (lh + 30, name, nlen) != 0)
        {
          zip_bad (error, "%s: the local header names another file", name);
          goto fail;
        }
      data = off + 30 + lnlen + lxlen;
      if (csize > cd_off - data)
        {
          zip_bad (error, "%s: %" G_GUINT64_FORMAT " bytes at %" G_GUINT64_FORMAT " run past the "
                   "archive's entries (truncated?)", name, csize, data);
          goto fail;
        }
      if (!g_hash_table_add (names, name))
        {
          zip_bad (error, "%s appears twice", name);
          goto fail;
        }
      if (crc32 (d + data, csize) != crc)
        {
          zip_bad (error, "%s: bad CRC-32", name);
          goto fail;
        }
      zip->entries[zip->n - 1].data = d + data;
      zip->entries[zip->n - 1].size = csize;
      spans[i].start = off;
      spans[i].end = data + csize;
      spans[i].index = (guint) i;
      p += 46 + nlen + xlen + clen;
    }
  qsort (spans, zip->n, sizeof (Span), by_start);
  for (guint i = 0; i + 1 < zip->n; i++)
    if (spans[i].end > spans[i + 1].start)
      {
        zip_bad (error, "entries %s and %s overlap", zip->entries[spans[i].index].name,
                 zip->entries[spans[i + 1].index].name);
        goto fail;
      }
  g_free (spans);
  g_hash_table_unref (names);
  return zip;
fail:
  g_free (spans);
  g_hash_table_unref (names);
  cv_zip_free (zip);
  return NULL;
}

const CvZipEntry *
cv_zip_find (const CvZip *zip, const char *name)
{
  for (guint i = 0; i < zip->n; i++)
    if (strcmp (zip->entries[i].name, name) == 0)
      return &zip->entries[i];
  return NULL;
}
