/* cv-torch.c — torch.save's two formats, read with the restricted unpickler.
 *
 * A zip archive (torch >= 1.6): ROOT/data.pkl, whose tensors name their
 * storages by persistent ids ('storage', torch.<T>Storage, key, location,
 * numel), stored as ROOT/data/<key>; ROOT/byteorder says "little".
 *
 * The legacy format (torch < 1.6, and still what torch.storage's own
 * __reduce__ writes: the storages nested in NVIDIA's EDM2 pickles): a magic
 * number, the protocol version 1001 and a system-info dict, each a pickle;
 * then the object's pickle (storages by persistent id, with a sixth, view
 * entry), the pickled list of storage keys, and for each key in that order
 * an int64 element count and the storage's bytes.
 *
 * Storages point into the bytes read (a mapped file): nothing is copied. */
#include "cv.h"

#include <string.h>

/* torch.<T>Storage -> the names torchvision_to_safetensors uses in messages. */
static const char *
dtype_short (CvDtype d)
{
  static const char *name[CV_DT_N] = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"
  };

  return d < CV_DT_N ? name[d] : "?";
}

/* The legacy magic number 0x1950a86a20f9469cfc6c, as a pickled int's bytes. */
static const guint8 legacy_magic[] = { 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19 };

static gboolean
is_legacy_magic (const Pv *v)
{
  gsize n;

  if (v == NULL || v->type != PV_BIGINT)
    return FALSE;
  n = v->s.n;
  while (n > sizeof legacy_magic && v->s.p[n - 1] == 0)
    n--;
  return n == sizeof legacy_magic && memcmp (v->s.p, legacy_magic, n) == 0;
}

/* A storage persistent id: ('storage', <storage type>, key, location, numel[, None]). */
static gboolean
parse_pid (Pv *pid, gboolean legacy_view, CvDtype *dtype, const char **key, gint64 *numel)
{
  Pv **it;

  if (pid->type != PV_TUPLE || (pid->seq.n != 5 && !(legacy_view && pid->seq.n == 6)))
    return FALSE;
  it = pid->seq.items;
  if (!cv_pv_is_str (it[0], "storage") || it[1]->type != PV_GLOBAL || it[1]->g.id != G_STORAGE_TYPE ||
      it[2]->type != PV_STR || it[3]->type != PV_STR || it[4]->type != PV_INT || it[4]->i < 0 ||
      (pid->seq.n == 6 && it[5]->type != PV_NONE))
    return FALSE;
  *dtype = it[1]->g.dtype;
  *key = (const char *) it[2]->s.p; /* NUL-terminated by the caller's copy */
  *numel = it[4]->i;
  return TRUE;
}

static char *
pid_repr (Pv *pid)
{
  char *r = cv_pv_repr (pid, 80);

  return r;
}

static Pv *
new_storage (CvHeap *heap, CvDtype dtype, gint64 numel, const guint8 *data, const char *key)
{
  Pv *s = cv_pv_new (heap, PV_STORAGE);

  s->storage.dtype = dtype;
  s->storage.numel = numel;
  s->storage.data = data;
  s->storage.key = cv_heap_strdup (heap, key);
  return s;
}

/* ---- zip archives ------------------------------------------------------------------ */

typedef struct
{
  const CvZip *zip;
  const char  *root; /* "archive/" */
} ZipStorages;

static Pv *
zip_storage (CvUnpickler *u, Pv *pid, gpointer user, GError **error)
{
  ZipStorages      *z = user;
  CvDtype           dtype;
  const char       *k;
  gint64            numel;
  char             *key, *entry;
  const CvZipEntry *e;
  Pv               *s;

  if (!parse_pid (pid, TRUE, &dtype, &k, &numel))
    {
      char *r = pid_repr (pid);
      g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: unexpected persistent id %s", r);
      g_free (r);
      return NULL;
    }
  key = g_strndup (k, pid->seq.items[2]->s.n);
  entry = g_strdup_printf ("%sdata/%s", z->root, key);
  e = cv_zip_find (z->zip, entry);
  g_free (entry);
  if (e == NULL)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "storage %s is missing from the archive", key);
      g_free (key);
      return NULL;
    }
  if ((guint64) numel > G_MAXSIZE / 8 || e->size != (gsize) numel * cv_dtype_size (dtype))
    {
      g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "storage of %" G_GINT64_FORMAT " %s has %"
                   G_GSIZE_FORMAT " bytes", numel, dtype_short (dtype), e->size);
      g_free (key);
      return NULL;
    }
  s = new_storage (u->heap, dtype, numel, e->data, key);
  g_free (key);
  return s;
}

/* The one ROOT/data.pkl of a torch.save archive, unpickled. */
static Pv *
load_zip (CvUnpickler *u, const CvZip *zip, GError **error)
{
  const CvZipEntry *pkl = NULL, *order;
  char             *root, *name;
  ZipStorages       z;
  Pv               *obj;
  guint             found = 0;

  for (guint i = 0; i < zip->n; i++)
    {
      const char *n = zip->entries[i].name, *slash = strchr (n, '/');
      if (g_str_has_suffix (n, "/data.pkl") && slash != NULL && strchr (slash + 1, '/') == NULL)
        {
          pkl = &zip->entries[i];
          found++;
        }
    }
  if (found != 1)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT,
                   "a zip archive without exactly one */data.pkl (not a torch.save file)");
      return NULL;
    }
  root = g_strndup (pkl->name, strlen (pkl->name) - strlen ("data.pkl"));
  name = g_strdup_printf ("%sbyteorder", root);
  order = cv_zip_find (zip, name);
  g_free (name);
  if (order != NULL && (order->size != 6 || memcmp (order->data, "little", 6) != 0))
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "big-endian tensors are not supported");
      g_free (root);
      return NULL;
    }
  z.zip = zip;
  z.root = root;
  u->data = pkl->data;
  u->len = pkl->size;
  u->pos = 0;
  u->persistent = zip_storage;
  u->persistent_data = &z;
  obj = cv_unpickle (u, error);
  u->persistent = NULL;
  g_free (root);
  return obj;
}

/* ---- the legacy format ------------------------------------------------------------------ */

typedef struct
{
  GHashTable *pending;  /* key -> storage Pv */
  gsize       limit;    /* the file's size */
  gboolean    nested;
} Legacy;

static Pv *
legacy_storage (CvUnpickler *u, Pv *pid, gpointer user, GError **error)
{
  Legacy     *l = user;
  CvDtype     dtype;
  const char *k;
  gint64      numel;
  char       *key;
  Pv         *s;

  if (!parse_pid (pid, TRUE, &dtype, &k, &numel))
    {
      char *r = pid_repr (pid);
      g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: unexpected persistent id %s", r);
      g_free (r);
      return NULL;
    }
  key = g_strndup (k, pid->seq.items[2]->s.n);
  if ((guint64) numel > l->limit / cv_dtype_size (dtype))
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "storage %s is larger than the file", key);
      g_free (key);
      return NULL;
    }
  s = g_hash_table_lookup (l->pending, key);
  if (s == NULL)
    {
      s = new_storage (u->heap, dtype, numel, NULL, key);
      g_hash_table_insert (l->pending, (gpointer) s->storage.key, s);
    }
  g_free (key);
  return s;
}

static Pv *
no_storage (CvUnpickler *u, Pv *pid, gpointer user, GError **error)
{
  g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: a storage outside the object pickle");
  return NULL;
}

static int
cmp_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* magic, protocol, system info, the object, the storage keys, the storages. */
static Pv *
load_legacy (CvUnpickler *u, gboolean nested, GError **error)
{
  Legacy     l = { g_hash_table_new (g_str_hash, g_str_equal), u->len, nested };
  Pv        *magic, *proto, *info, *obj = NULL, *keys, *le;
  GPtrArray *want = NULL, *have = NULL;

  u->pos = 0;
  u->persistent = no_storage;
  if ((magic = cv_unpickle (u, error)) == NULL || (proto = cv_unpickle (u, error)) == NULL)
    goto fail;
  if (!is_legacy_magic (magic) || proto->type != PV_INT || proto->i != 1001)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT,
                   "neither a zip archive nor a legacy torch.save file");
      goto fail;
    }
  if ((info = cv_unpickle (u, error)) == NULL)
    goto fail;
  le = cv_dict_get (info, "little_endian");
  if (info->type != PV_DICT || (le != NULL && !cv_pv_truthy (le)))
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "big-endian tensors are not supported");
      goto fail;
    }
  u->persistent = legacy_storage;
  u->persistent_data = &l;
  if ((obj = cv_unpickle (u, error)) == NULL)
    goto fail;
  u->persistent = no_storage;
  if ((keys = cv_unpickle (u, error)) == NULL)
    goto fail_obj;
  want = g_ptr_array_new_with_free_func (g_free);
  have = g_ptr_array_new ();
  if (keys->type == PV_LIST)
    for (guint i = 0; i < keys->seq.n; i++)
      {
        if (keys->seq.items[i]->type != PV_STR)
          break;
        g_ptr_array_add (want, cv_pv_strdup (keys->seq.items[i]));
      }
  {
    GHashTableIter it;
    gpointer       k;
    g_hash_table_iter_init (&it, l.pending);
    while (g_hash_table_iter_next (&it, &k, NULL))
      g_ptr_array_add (have, k);
  }
  g_ptr_array_sort (want, cmp_str);
  g_ptr_array_sort (have, cmp_str);
  {
    gboolean same = keys->type == PV_LIST && want->len == keys->seq.n && want->len == have->len;
    for (guint i = 0; same && i < want->len; i++)
      same = strcmp (want->pdata[i], have->pdata[i]) == 0;
    if (!same)
      {
        g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "storage list does not match the tensors");
        goto fail_obj;
      }
  }
  /* The storages follow, in the list's order: an int64 count and the bytes. */
  for (guint i = 0; i < keys->seq.n; i++)
    {
      char   *key = cv_pv_strdup (keys->seq.items[i]);
      Pv     *s = g_hash_table_lookup (l.pending, key);
      gsize   es = cv_dtype_size (s->storage.dtype);
      gint64  n;

      if (u->len - u->pos < 8)
        {
          g_set_error (error, CV_ERROR, CV_ERROR_CONVERT,
                       "not a readable torch.save file (error: unpack requires a buffer of 8 bytes)");
          g_free (key);
          goto fail_obj;
        }
      n = (gint64) (u->data[u->pos] | (guint64) u->data[u->pos + 1] << 8 |
                    (guint64) u->data[u->pos + 2] << 16 | (guint64) u->data[u->pos + 3] << 24 |
                    (guint64) u->data[u->pos + 4] << 32 | (guint64) u->data[u->pos + 5] << 40 |
                    (guint64) u->data[u->pos + 6] << 48 | (guint64) u->data[u->pos + 7] << 56);
      u->pos += 8;
      if (n != s->storage.numel || (guint64) n > (u->len - u->pos) / es)
        {
          g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "storage %s is truncated", key);
          g_free (key);
          goto fail_obj;
        }
      s->storage.data = u->data + u->pos;
      u->pos += (gsize) n * es;
      g_free (key);
    }
  g_ptr_array_unref (want);
  g_ptr_array_unref (have);
  g_hash_table_unref (l.pending);
  u->persistent = NULL;
  return obj;
fail_obj:
fail:
  if (want != NULL)
    g_ptr_array_unref (want);
  if (have != NULL)
    g_ptr_array_unref (have);
  /* Storages never filled in must not be read: forget them with the object. */
  {
    GHashTableIter it;
    gpointer       v;
    g_hash_table_iter_init (&it, l.pending);
    while (g_hash_table_iter_next (&it, NULL, &v))
      if (((Pv *) v)->storage.data == NULL)
        ((Pv *) v)->storage.numel = 0;
  }
  g_hash_table_unref (l.pending);
  u->persistent = NULL;
  return NULL;
}

/* ---- torch.storage._load_from_bytes --------------------------------------------------------- */

Pv *
cv_torch_storage_from_bytes (CvUnpickler *outer, const guint8 *b, gsize n, GError **error)
{
  CvUnpickler u = { 0 };
  GError     *err = NULL;
  Pv         *s = NULL;
  CvZip      *zip = NULL;

  u.heap = outer->heap;
  u.allow = CV_ALLOW_STORAGE;
  u.cancel = outer->cancel;
  u.depth = outer->depth + 1;
  u.data = b;
  u.len = n;
  if (u.depth > 1)
    g_set_error (&err, CV_ERROR, CV_ERROR_REFUSED, "nested too deeply");
  else if (n >= 2 && b[0] == 'P' && b[1] == 'K')
    {
      if ((zip = cv_zip_open (b, n, &err)) != NULL)
        s = load_zip (&u, zip, &err);
    }
  else
    s = load_legacy (&u, TRUE, &err);
  cv_zip_free (zip);
  if (s != NULL)
    return s;
  if (err != NULL && err->domain == CV_ERROR && err->code == CV_ERROR_CANCELLED)
    {
      g_propagate_error (error, err);
      return NULL;
    }
  /* torch.load(weights_only=True) refuses anything but a plain storage; its
   * own advice (retry without weights_only) is never passed on. */
  if (u.refused_global != NULL)
    g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: a nested tensor storage pickle asks "
                 "for the global %s (only plain storages are read; nothing was executed)",
                 u.refused_global);
  else
    g_set_error (error, CV_ERROR, CV_ERROR_REFUSED, "refused: a nested tensor storage pickle is "
                 "not a plain tensor storage (only plain storages are read; nothing was executed)");
  g_clear_error (&err);
  return NULL;
}

/* ---- state dicts (torchvision's .pth) ---------------------------------------------------------- */

Pv *
cv_torch_load_state_dict (CvHeap *heap, const guint8 *data, gsize len,
                          volatile sig_atomic_t *cancel, GError **error)
{
  CvUnpickler u = { 0 };
  GError     *err = NULL;
  CvZip      *zip = NULL;
  Pv         *obj = NULL, *out;

  if (len == 0)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "empty file (0 bytes), not a torch.save file");
      return NULL;
    }
  u.heap = heap;
  u.allow = CV_ALLOW_STATE_DICT;
  u.cancel = cancel;
  u.data = data;
  u.len = len;
  if (len >= 2 && data[0] == 'P' && data[1] == 'K')
    {
      if ((zip = cv_zip_open (data, len, &err)) != NULL)
        obj = load_zip (&u, zip, &err);
    }
  else
    obj = load_legacy (&u, FALSE, &err);
  cv_zip_free (zip);
  if (obj == NULL)
    {
      if (err->domain == CV_ERROR && err->code == CV_ERROR_BAD)
        {
          /* A damaged pickle or archive: what torchvision_to_safetensors says. */
          g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "not a readable torch.save file%s%s%s",
                       g_str_has_prefix (err->message, "damaged zip") ? " (" : ": ", err->message,
                       g_str_has_prefix (err->message, "damaged zip") ? ")" : "");
          g_error_free (err);
        }
      else
        g_propagate_error (error, err);
      return NULL;
    }
  if (!cv_refuse_bad_tensors (obj, error))
    return NULL;
  /* Training scripts wrap the weights: {'model': ...} / {'state_dict': ...}. */
  if (obj->type == PV_DICT && obj->dict.n == 1 &&
      (cv_pv_is_str (obj->dict.keys[0], "model") || cv_pv_is_str (obj->dict.keys[0], "state_dict")) &&
      obj->dict.vals[0]->type == PV_DICT)
    obj = obj->dict.vals[0];
  if (obj->type != PV_DICT)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "holds a %s, not a state dict",
                   cv_pv_type_name (obj));
      return NULL;
    }
  out = cv_pv_new (heap, PV_DICT);
  out->kind = PV_DICT_ORDERED;
  for (guint i = 0; i < obj->dict.n; i++)
    {
      Pv *k = obj->dict.keys[i], *v = obj->dict.vals[i];
      /* OrderedDict's pickled __dict__ (torch's per-module _metadata) arrives
       * through the restricted BUILD as an entry: version numbers only. */
      if (cv_pv_is_str (k, "_metadata") && v->type == PV_DICT)
        continue;
      if (k->type != PV_STR || v->type != PV_TENSOR)
        {
          char *r = cv_pv_repr (k, 200);
          g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "entry %s is a %s, not a tensor", r,
                       cv_pv_type_name (v));
          g_free (r);
          return NULL;
        }
      cv_dict_set (out, k, v);
    }
  return out;
}
