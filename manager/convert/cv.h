/* cv.h — the native converters' internals (manager/convert/): a restricted
 * pickle reader that builds inert values and never calls anything a file
 * names (cv-pickle.c), a bounds-checked zip reader for torch.save archives
 * (cv-zip.c), torch.save's two formats on top of both (cv-torch.c), and the
 * safetensors writer and small helpers the conversions share (cv-util.c).
 *
 * Every reader works on bytes in memory (a mapped file): all lengths and
 * offsets are checked against what is there before anything is read or
 * allocated.  The messages follow the Python converters' of converters/
 * (the reference implementation the tests compare against). */
#ifndef GFCG_CV_H
#define GFCG_CV_H

#include "convert.h"

#include "gfcg/gfcg-json.h"
#include <glib.h>
#include <signal.h>
#include <stdio.h>

/* ---- errors ---------------------------------------------------------------- */

#define CV_ERROR (cv_error_quark ())
GQuark cv_error_quark (void);

typedef enum
{
  CV_ERROR_REFUSED,   /* the file asks for something the converter will not do (exit 2) */
  CV_ERROR_CONVERT,   /* safe, but not something the converter can convert     (exit 2) */
  CV_ERROR_BAD,       /* not a well-formed file: empty, truncated, damaged     (exit 1) */
  CV_ERROR_IO,        /* reading or writing failed                             (exit 1) */
  CV_ERROR_USAGE,     /* bad command line                                      (exit 2) */
  CV_ERROR_CANCELLED, /* interrupted                                           (exit 1) */
} CvErrorCode;

/* Prefixes error's message with "prefix: " (when it does not start with it already). */
void cv_prefix_error (GError **error, const char *prefix);

/* ---- values ---------------------------------------------------------------- */

typedef enum
{
  CV_DT_F64, CV_DT_F32, CV_DT_F16, CV_DT_BF16, CV_DT_I64, CV_DT_I32, CV_DT_I16, CV_DT_I8,
  CV_DT_U8, CV_DT_BOOL, CV_DT_N
} CvDtype;

gsize       cv_dtype_size      (CvDtype d);
gboolean    cv_dtype_is_float  (CvDtype d);
const char *cv_dtype_torch     (CvDtype d); /* "torch.float32" */

typedef enum
{
  PV_NONE, PV_BOOL, PV_INT, PV_BIGINT, PV_FLOAT, PV_STR, PV_BYTES, PV_BYTEARRAY,
  PV_LIST, PV_TUPLE, PV_DICT, PV_SET, PV_FROZENSET,
  PV_GLOBAL,     /* an allowlisted global: what the pickle may call              */
  PV_PERSISTENT, /* torch_utils.persistence._reconstruct_persistent_obj(meta)   */
  PV_STANDIN,    /* an inert stand-in for a torch container or a numpy value     */
  PV_STORAGE, PV_TENSOR, PV_BADTENSOR,
} PvType;

/* Dict flavours (type names in messages). */
enum { PV_DICT_PLAIN, PV_DICT_ORDERED, PV_DICT_EASY };

/* The allowlisted globals. */
typedef enum
{
  G_ODICT, G_SET, G_FROZENSET, G_ENCODE, G_REBUILD_TENSOR, G_REBUILD_PARAM,
  G_LOAD_FROM_BYTES, G_PERSISTENT, G_EASYDICT, G_STANDIN, G_STORAGE_TYPE
} CvGlobal;

#define CV_MAX_NDIM 16

typedef struct _Pv Pv;
struct _Pv
{
  guint8 type;
  guint8 kind;    /* dict flavour */
  guint8 owned;   /* s.p is allocated for this value */
  union
  {
    gboolean b;
    gint64   i;
    double   f;
    struct { const guint8 *p; gsize n; } s;       /* str (UTF-8), bytes, bytearray, bigint (LE) */
    struct { Pv **items; guint n, cap; } seq;     /* list, tuple, set, frozenset */
    struct { Pv **keys, **vals; guint n, cap; GHashTable *index; } dict;
    struct { CvGlobal id; const char *name; CvDtype dtype; } g; /* name: "module.name" */
    struct { const char *class_name; Pv *state; } pers;
    struct { const char *qualname; Pv *args; Pv *state; } standin;
    struct { CvDtype dtype; gint64 numel; const guint8 *data; const char *key; } storage;
    struct { Pv *storage; gint64 offset; int ndim; gint64 size[CV_MAX_NDIM], stride[CV_MAX_NDIM]; } t;
    struct { const char *problem; } bad;
  };
};

typedef struct _CvHeap CvHeap;
CvHeap     *cv_heap_new      (void);
void        cv_heap_free     (CvHeap *heap);
Pv         *cv_pv_new        (CvHeap *heap, PvType type);
/* A string the heap keeps (for messages and names made while reading). */
const char *cv_heap_strdup   (CvHeap *heap, const char *s);
char       *cv_heap_printf   (CvHeap *heap, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

/* Python's type(v).__name__ for messages, and a short repr. */
const char *cv_pv_type_name  (const Pv *v);
char       *cv_pv_repr       (const Pv *v, gsize max); /* newly allocated */
gboolean    cv_pv_equal      (const Pv *a, const Pv *b);
gboolean    cv_pv_hashable   (const Pv *v);
void        cv_seq_append    (Pv *seq, Pv *item);
/* d[key] = val / set.add(item): FALSE when the key is unhashable. */
gboolean    cv_dict_set      (Pv *d, Pv *key, Pv *val);
gboolean    cv_set_add       (Pv *set, Pv *item);
/* Dict lookup by a string key (NULL: absent or v not a dict). */
Pv         *cv_dict_get      (const Pv *dict, const char *key);
gboolean    cv_pv_is_dict    (const Pv *v);
gboolean    cv_pv_is_str     (const Pv *v, const char *s);
/* A set / frozenset / list / tuple / dict holding the string s. */
gboolean    cv_pv_contains_str (const Pv *v, const char *s);
/* Python's truth value (None, False, 0, "", empty containers are false). */
gboolean    cv_pv_truthy     (const Pv *v);
/* The value as a C string (a str), else NULL. */
char       *cv_pv_strdup     (const Pv *v);

/* ---- the restricted unpickler ----------------------------------------------- */

typedef enum
{
  CV_ALLOW_EDM2,       /* edm2_pickle.ALLOWED                                     */
  CV_ALLOW_STATE_DICT, /* torchvision_to_safetensors: a state dict of tensors      */
  CV_ALLOW_STORAGE,    /* a nested storage (torch.storage._load_from_bytes)        */
} CvAllow;

typedef struct _CvUnpickler CvUnpickler;
typedef Pv *(*CvPersistentFn) (CvUnpickler *u, Pv *pid, gpointer user, GError **error);

struct _CvUnpickler
{
  CvHeap        *heap;
  const guint8  *data;        /* the stream: a file, an archive entry, or bytes       */
  gsize          len;
  gsize          pos;         /* where to start; after a load, just after its STOP    */
  CvAllow        allow;
  CvPersistentFn persistent;  /* NULL: persistent ids are refused                     */
  gpointer       persistent_data;
  const char    *refused_global; /* set when a global was refused: "module.name"      */
  int            depth;       /* nesting of _load_from_bytes                          */
  volatile sig_atomic_t *cancel;
};

/* One pickle from u->pos to its STOP.  Errors are CV_ERROR_REFUSED or
 * CV_ERROR_BAD and give the byte offset in the stream. */
Pv *cv_unpickle (CvUnpickler *u, GError **error);

/* edm2_pickle.refuse_bad_tensors: the first refused tensor, named by its
 * state_dict-style key, as CV_ERROR_REFUSED "refused: tensor NAME PROBLEM". */
gboolean cv_refuse_bad_tensors (Pv *root, GError **error);

/* ---- zip archives (stored entries only) -------------------------------------- */

typedef struct
{
  char         *name;
  const guint8 *data;  /* inside the archive's bytes */
  gsize         size;
} CvZipEntry;

typedef struct
{
  CvZipEntry *entries;
  guint       n;
} CvZip;

/* Reads the central directory and checks every entry: inside the archive,
 * stored (not compressed), its local header consistent, its CRC-32 right,
 * no two entries overlapping, no name twice.  Errors are CV_ERROR_BAD. */
CvZip            *cv_zip_open  (const guint8 *data, gsize len, GError **error);
void              cv_zip_free  (CvZip *zip);
const CvZipEntry *cv_zip_find  (const CvZip *zip, const char *name);

/* ---- torch.save ----------------------------------------------------------- */

/* torch.storage._load_from_bytes's payload: a storage saved by torch.save
 * (legacy format, or a zip archive), read with the storage-only allowlist. */
Pv *cv_torch_storage_from_bytes (CvUnpickler *outer, const guint8 *b, gsize n, GError **error);

/* A torch.save'd state dict (zip archive or legacy format), as
 * torchvision_to_safetensors.load_state_dict reads it; messages without the
 * path (the caller prefixes it). */
Pv *cv_torch_load_state_dict (CvHeap *heap, const guint8 *data, gsize len,
                              volatile sig_atomic_t *cancel, GError **error);

/* ---- tensors ----------------------------------------------------------------- */

typedef struct
{
  CvDtype       dtype;
  int           ndim;
  gint64        shape[CV_MAX_NDIM];
  gint64        stride[CV_MAX_NDIM]; /* elements */
  const guint8 *data;                /* first element */
  gint64        numel;
} CvTensor;

/* A PV_TENSOR as a CvTensor. */
void     cv_tensor_from_pv (CvTensor *t, const Pv *v);
/* Element i (C order) as float32, as torch's .to(torch.float32) gives it. */
float    cv_tensor_get_f32 (const CvTensor *t, gint64 i);
guint16  cv_f32_to_f16     (float f);
float    cv_f16_to_f32     (guint16 h);
gboolean cv_shape_equal    (const CvTensor *t, int ndim, const gint64 *shape);
char    *cv_shape_str      (int ndim, const gint64 *shape); /* "[1, 2, 3]" */

/* One tensor of an output file: the source and the shape it is written with
 * (same number of elements, or the first elements of a strided view). */
typedef struct
{
  char    *name;
  CvTensor src;
} CvOutTensor;

typedef struct
{
  GPtrArray  *tensors;  /* CvOutTensor* */
  char       *metadata_key, *metadata_value; /* one __metadata__ entry, or NULL */
} CvOutFile;

CvOutFile *cv_out_new    (void);
void       cv_out_free   (CvOutFile *f);
void       cv_out_add    (CvOutFile *f, const char *name, const CvTensor *t);
/* The largest |value| (as float32) above 65504: error naming "what: NAME". */
gboolean   cv_out_check_fp16 (CvOutFile *f, const char *what, GError **error);
/* Writes the safetensors file as Python's safetensors.torch.save_file does
 * (same header, order and alignment): F16 or F32. */
gboolean   cv_out_write  (CvOutFile *f, const char *path, gboolean fp16,
                          volatile sig_atomic_t *cancel, GError **error);

/* ---- the tensors a converter expects ---------------------------------------------- */

/* A state-dict key and the shape its tensor must have (shape[ndim..3] unused). */
typedef struct
{
  char  *name;
  int    ndim;
  gint64 shape[4];
} CvWant;

/* Appends one to w (a GPtrArray made with cv_want_free), taking name. */
void cv_want_add  (GPtrArray *w, int ndim, gint64 a, gint64 b, gint64 c, gint64 d, char *name);
void cv_want_free (gpointer want);

/* ---- files ---------------------------------------------------------------- */

/* The file mapped read-only (errors: CV_ERROR_IO naming it). */
GMappedFile *cv_map_file    (const char *path, GError **error);
char        *cv_sha256_bytes (const guint8 *data, gsize len);
char        *cv_sha256_file  (const char *path, GError **error);
/* Writes text to path through a temporary file in the same folder, renamed over it. */
gboolean     cv_write_atomic (const char *path, const char *text, gsize len, GError **error);
/* A JSON tree as the project writes JSON (pretty, two spaces, newline at the end). */
gboolean     cv_write_json   (const char *path, JsonNode *root, gboolean atomic, GError **error);
void         cv_io_error     (GError **error, const char *what, int errsv);
/* Sets a CV_ERROR_CONVERT error with a printf-style message: a file that
 * cannot be converted (exit status 2, as the Python converters' errors). */
void         cv_fail         (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);
/* The exit status of a conversion that failed with e: 2 for what the file
 * or the arguments are to blame for (refused, cannot convert, usage), 1 for
 * the rest (I/O, cancelled), as the Python converters exit. */
int          cv_exit_status  (const GError *e);

/* Python's float repr (shortest round-trip, Python's exponent rules). */
void         cv_py_float_repr (GString *s, double v);

gboolean     cv_cancelled    (volatile sig_atomic_t *cancel, GError **error);

/* ---- the conversions -------------------------------------------------------- */

typedef struct
{
  FILE                  *log;    /* progress lines (stdout of the Python tools) */
  volatile sig_atomic_t *cancel;
} CvContext;

int cv_edm2_main       (CvContext *cx, int argc, char **argv, GError **error);
/* convert-edm2's reading and checking of one snapshot in memory, every
 * tensor read, nothing written (for the fuzzer). */
gboolean cv_edm2_inspect (const guint8 *data, gsize len, GError **error);
int cv_classifier_main (CvContext *cx, int argc, char **argv, GError **error);

#endif
