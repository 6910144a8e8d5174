/* gfcg-safetensors.h — a validating reader and a small writer for the
 * safetensors format (8-byte header length, JSON header, raw data). */
#ifndef GFCG_GFCG_SAFETENSORS_H
#define GFCG_GFCG_SAFETENSORS_H

#include <glib.h>

typedef enum { GFCG_DTYPE_F32, GFCG_DTYPE_F16, GFCG_DTYPE_BF16 } GfcgDtype;

typedef struct
{
  char         *name;
  GfcgDtype     dtype;
  int           ndim;
  gint64        shape[8];
  gsize         numel;
  const guint8 *data;   /* inside the mapped file */
} GfcgStEntry;

typedef struct _GfcgSafetensors GfcgSafetensors;

/* Maps and validates the whole header: every entry's dtype, shape, offsets
 * (in range, exactly sized, not overlapping).  Errors name the file. */
GfcgSafetensors   *gfcg_st_open    (const char *path, GError **error);
void               gfcg_st_close   (GfcgSafetensors *st);
const char        *gfcg_st_path    (const GfcgSafetensors *st);
guint              gfcg_st_n       (const GfcgSafetensors *st);
const GfcgStEntry *gfcg_st_entry   (const GfcgSafetensors *st, guint i);
const GfcgStEntry *gfcg_st_lookup  (const GfcgSafetensors *st, const char *name);
/* The tensor as newly allocated floats, checked against the expected shape
 * (ndim 0 = scalar) and for NaN/Inf.  Marks the entry as used. */
float             *gfcg_st_read    (GfcgSafetensors *st, const char *name, int ndim,
                                    const gint64 *shape, GError **error);
/* Entries never read (extras such as EDM2's logvar head). */
guint              gfcg_st_n_unused (const GfcgSafetensors *st);

typedef struct
{
  const char  *name;
  int          ndim;
  gint64       shape[8];
  const float *data;
} GfcgStWrite;

gboolean gfcg_st_write (const char *path, const GfcgStWrite *tensors, guint n, GError **error);

float gfcg_half_to_float (guint16 h);

#endif
