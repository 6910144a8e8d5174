/* catalog.c — reads the catalog of published packs (format in
 * docs/model-catalog.md).  Everything is checked here, so the rest of
 * `gfcg models` can trust it: URLs are http(s), checksums are hex, a
 * conversion step can only name one of the project's converters, and a copy
 * step can only copy one of the pack's downloads ("{ROLE}") to a path inside
 * the pack. */
#include "models.h"

#include <string.h>

static gboolean
bad (GError **error, const char *path, const char *where, const char *what)
{
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: %s %s", path, where, what);
  return FALSE;
}

static void
file_free (gpointer data)
{
  CatalogFile *f = data;

  g_free (f->id);
  g_free (f->file);
  g_strfreev (f->urls);
  g_free (f->sha256);
  g_free (f->sha256_prefix);
  g_free (f->licence);
  g_free (f->about);
  g_free (f);
}

static void
step_free (gpointer data)
{
  CatalogStep *s = data;

  g_free (s->tool);
  g_strfreev (s->args);
  g_free (s->copy_from);
  g_free (s->copy_to);
  g_free (s);
}

static void
pack_free (gpointer data)
{
  CatalogPack *p = data;

  g_free (p->name);
  g_free (p->title);
  g_free (p->about);
  g_free (p->licence);
  g_free (p->memory);
  g_free (p->time);
  g_free (p->classes);
  g_strfreev (p->roles);
  g_ptr_array_unref (p->files);
  g_ptr_array_unref (p->steps);
  g_free (p);
}

void
catalog_free (Catalog *cat)
{
  if (cat == NULL)
    return;
  g_free (cat->path);
  g_ptr_array_unref (cat->packs);
  g_hash_table_unref (cat->files);
  g_free (cat);
}

/* Optional string member: NULL when absent or null; FALSE when another type. */
static gboolean
opt_string (JsonObject *o, const char *key, char **out)
{
  JsonNode *n = json_object_get_member (o, key);

  *out = NULL;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return FALSE;
  *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

/* Optional non-negative number of bytes: -1 when absent or null. */
static gboolean
opt_bytes (JsonObject *o, const char *key, gint64 *out)
{
  JsonNode *n = json_object_get_member (o, key);
  GType     t;

  *out = -1;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  t = json_node_get_value_type (n);
  if (t == G_TYPE_INT64)
    *out = json_node_get_int (n);
  else if (t == G_TYPE_DOUBLE && json_node_get_double (n) >= 0 && json_node_get_double (n) < 1e18)
    *out = (gint64) json_node_get_double (n);
  else
    return FALSE;
  return *out >= 0;
}

static gboolean
is_hex (const char *s, gsize min_len, gsize max_len)
{
  gsize n = strlen (s);

  if (n < min_len || n > max_len)
    return FALSE;
  for (const char *c = s; *c != '\0'; c++)
    if (!g_ascii_isxdigit (*c) || g_ascii_isupper (*c))
      return FALSE;
  return TRUE;
}

static gboolean
is_tool_name (const char *s)
{
  if (s == NULL || !g_ascii_islower (s[0]))
    return FALSE;
  for (const char *c = s; *c != '\0'; c++)
    if (!g_ascii_islower (*c) && !g_ascii_isdigit (*c) && *c != '-')
      return FALSE;
  return TRUE;
}

/* A relative path inside the pack: no "..", no leading '/', not empty. */
static gboolean
is_inner_path (const char *s)
{
  char   **parts;
  gboolean ok = s != NULL && *s != '\0' && !g_path_is_absolute (s);

  if (!ok)
    return FALSE;
  parts = g_strsplit (s, "/", -1);
  for (char **p = parts; *p != NULL; p++)
    if (**p == '\0' || strcmp (*p, ".") == 0 || strcmp (*p, "..") == 0)
      ok = FALSE;
  g_strfreev (parts);
  return ok;
}

static CatalogFile *
parse_file (const char *path, const char *id, JsonNode *node, GError **error)
{
  CatalogFile *f = g_new0 (CatalogFile, 1);
  char        *where = g_strdup_printf ("file '%s':", id);
  JsonObject  *o;
  JsonArray   *urls;
  gboolean     ok = FALSE;

  f->id = g_strdup (id);
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      bad (error, path, where, "must be an object");
      goto out;
    }
  o = json_node_get_object (node);
  if (!json_object_has_member (o, "urls")
      || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (o, "urls"))
      || json_array_get_length (urls = json_object_get_array_member (o, "urls")) == 0)
    {
      bad (error, path, where, "needs 'urls', a non-empty list");
      goto out;
    }
  f->urls = g_new0 (char *, json_array_get_length (urls) + 1);
  for (guint i = 0; i < json_array_get_length (urls); i++)
    {
      JsonNode   *u = json_array_get_element (urls, i);
      const char *s = JSON_NODE_HOLDS_VALUE (u) && json_node_get_value_type (u) == G_TYPE_STRING
                      ? json_node_get_string (u) : NULL;

      if (s == NULL || !(g_str_has_prefix (s, "https://") || g_str_has_prefix (s, "http://")))
        {
          bad (error, path, where, "'urls' must be http:// or https:// addresses");
          goto out;
        }
      f->urls[i] = g_strdup (s);
    }
  if (!opt_string (o, "file", &f->file) || !opt_string (o, "sha256", &f->sha256)
      || !opt_string (o, "sha256_prefix", &f->sha256_prefix) || !opt_string (o, "licence", &f->licence)
      || !opt_string (o, "about", &f->about))
    {
      bad (error, path, where, "'file', 'sha256', 'sha256_prefix', 'licence' and 'about' must be strings or null");
      goto out;
    }
  if (f->file == NULL)
    {
      /* The last part of the first URL, without a query. */
      char *q = g_strdup (f->urls[0]);

      q[strcspn (q, "?#")] = '\0';
      f->file = g_path_get_basename (q);
      g_free (q);
    }
  if (!gfcg_pack_name_is_valid (f->file))
    {
      bad (error, path, where, "'file' must be a plain file name (letters, digits, '-', '_', '.')");
      goto out;
    }
  if (f->sha256 != NULL && !is_hex (f->sha256, 64, 64))
    {
      bad (error, path, where, "'sha256' must be 64 lower-case hex digits");
      goto out;
    }
  if (f->sha256_prefix != NULL && !is_hex (f->sha256_prefix, 6, 64))
    {
      bad (error, path, where, "'sha256_prefix' must be lower-case hex digits");
      goto out;
    }
  if (!opt_bytes (o, "size", &f->size) || !opt_bytes (o, "approx_size", &f->approx_size))
    {
      bad (error, path, where, "'size' and 'approx_size' must be byte counts or null");
      goto out;
    }
  if (f->approx_size < 0)
    f->approx_size = f->size >= 0 ? f->size : 0;
  ok = TRUE;
out:
  g_free (where);
  if (!ok)
    g_clear_pointer (&f, file_free);
  return f;
}

static CatalogStep *
parse_step (const char *path, const char *where, JsonNode *node, GError **error)
{
  CatalogStep *s = g_new0 (CatalogStep, 1);
  JsonObject  *o = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;

  if (o != NULL && json_object_has_member (o, "tool"))
    {
      JsonNode  *an = json_object_get_member (o, "args");
      JsonArray *a = an != NULL && JSON_NODE_HOLDS_ARRAY (an) ? json_node_get_array (an) : NULL;

      if (!opt_string (o, "tool", &s->tool) || !is_tool_name (s->tool))
        goto bad_tool;
      s->args = g_new0 (char *, (a != NULL ? json_array_get_length (a) : 0) + 1);
      for (guint i = 0; a != NULL && i < json_array_get_length (a); i++)
        {
          JsonNode *e = json_array_get_element (a, i);

          if (!JSON_NODE_HOLDS_VALUE (e))
            goto bad_args;
          if (json_node_get_value_type (e) == G_TYPE_STRING)
            s->args[i] = g_strdup (json_node_get_string (e));
          else if (json_node_get_value_type (e) == G_TYPE_DOUBLE)
            {
              char buf[G_ASCII_DTOSTR_BUF_SIZE];
              s->args[i] = g_strdup (g_ascii_dtostr (buf, sizeof buf, json_node_get_double (e)));
            }
          else if (json_node_get_value_type (e) == G_TYPE_INT64)
            s->args[i] = g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (e));
          else
            goto bad_args;
        }
      if (an != NULL && a == NULL)
        goto bad_args;
      return s;
    }
  if (o != NULL && json_object_has_member (o, "copy"))
    {
      if (!opt_string (o, "copy", &s->copy_from) || !opt_string (o, "to", &s->copy_to)
          || s->copy_from == NULL || !is_inner_path (s->copy_to))
        {
          bad (error, path, where, "a copy step needs 'copy' (\"{ROLE}\") and 'to', a path inside the pack");
          step_free (s);
          return NULL;
        }
      return s;
    }
  bad (error, path, where, "each step needs 'tool' (a converter) or 'copy'");
  step_free (s);
  return NULL;
bad_tool:
  bad (error, path, where, "'tool' must be a converter name like \"convert-edm2\" (lower-case, digits, '-')");
  step_free (s);
  return NULL;
bad_args:
  bad (error, path, where, "'args' must be a list of strings or numbers");
  step_free (s);
  return NULL;
}

/* Exactly "{ROLE}" for a role of the pack (a key of roles). */
static gboolean
is_role_placeholder (const char *s, GHashTable *roles)
{
  gsize    n = strlen (s);
  char    *role;
  gboolean ok;

  if (n < 3 || s[0] != '{' || s[n - 1] != '}')
    return FALSE;
  role = g_strndup (s + 1, n - 2);
  ok = g_hash_table_contains (roles, role);
  g_free (role);
  return ok;
}

/* What the pack draws, so that a pack can be chosen before its gigabytes
 * are downloaded: optional "resolution" (pixels) and "classes"
 * ("imagenet-1k", or a list of ImageNet indices). */
static gboolean
parse_draws (JsonObject *o, CatalogPack *p)
{
  JsonNode *r = json_object_get_member (o, "resolution");
  JsonNode *c = json_object_get_member (o, "classes");

  if (r != NULL && !JSON_NODE_HOLDS_NULL (r))
    {
      if (!JSON_NODE_HOLDS_VALUE (r) || json_node_get_value_type (r) != G_TYPE_INT64
          || json_node_get_int (r) < 1 || json_node_get_int (r) > 65536)
        return FALSE;
      p->resolution = (int) json_node_get_int (r);
    }
  if (c == NULL || JSON_NODE_HOLDS_NULL (c))
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE (c) && json_node_get_value_type (c) == G_TYPE_STRING)
    {
      p->n_classes = MODELS_N_IMAGENET;
      return strcmp (json_node_get_string (c), "imagenet-1k") == 0;
    }
  if (!JSON_NODE_HOLDS_ARRAY (c) || json_array_get_length (json_node_get_array (c)) == 0
      || json_array_get_length (json_node_get_array (c)) > MODELS_N_IMAGENET)
    return FALSE;
  p->n_classes = (int) json_array_get_length (json_node_get_array (c));
  p->classes = g_new (int, p->n_classes);
  for (int i = 0; i < p->n_classes; i++)
    {
      JsonNode *e = json_array_get_element (json_node_get_array (c), i);

      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64
          || json_node_get_int (e) < 0 || json_node_get_int (e) >= MODELS_N_IMAGENET)
        return FALSE;
      p->classes[i] = (int) json_node_get_int (e);
    }
  return TRUE;
}

gboolean
catalog_pack_draws (const CatalogPack *pack, int imagenet)
{
  if (pack->n_classes == 0 || imagenet < 0 || imagenet >= MODELS_N_IMAGENET)
    return FALSE;
  if (pack->classes == NULL)
    return TRUE;
  for (int i = 0; i < pack->n_classes; i++)
    if (pack->classes[i] == imagenet)
      return TRUE;
  return FALSE;
}

static CatalogPack *
parse_pack (Catalog *cat, const char *name, JsonNode *node, GError **error)
{
  CatalogPack *p = g_new0 (CatalogPack, 1);
  char        *where = g_strdup_printf ("pack '%s':", name);
  JsonObject  *o, *files;
  JsonArray   *steps;
  GList       *roles = NULL;
  GPtrArray   *rolev = g_ptr_array_new ();
  gboolean     ok = FALSE;

  p->name = g_strdup (name);
  p->files = g_ptr_array_new ();
  p->steps = g_ptr_array_new_with_free_func (step_free);
  if (!gfcg_pack_name_is_valid (name))
    {
      bad (error, cat->path, where, "is not a usable pack name (letters, digits, '-', '_', '.')");
      goto out;
    }
  if (!JSON_NODE_HOLDS_OBJECT (node))
    {
      bad (error, cat->path, where, "must be an object");
      goto out;
    }
  o = json_node_get_object (node);
  if (!opt_string (o, "title", &p->title) || !opt_string (o, "about", &p->about)
      || !opt_string (o, "licence", &p->licence) || !opt_string (o, "memory", &p->memory)
      || !opt_string (o, "time", &p->time))
    {
      bad (error, cat->path, where, "'title', 'about', 'licence', 'memory' and 'time' must be strings");
      goto out;
    }
  if (!opt_bytes (o, "installed_size", &p->installed_size))
    {
      bad (error, cat->path, where, "'installed_size' must be a byte count");
      goto out;
    }
  if (!parse_draws (o, p))
    {
      bad (error, cat->path, where, "'resolution' must be a number of pixels and 'classes' "
           "\"imagenet-1k\" or a list of ImageNet class indices (0 to 999)");
      goto out;
    }
  if (!json_object_has_member (o, "files") || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (o, "files")))
    {
      bad (error, cat->path, where, "needs 'files', an object {role: file id}");
      goto out;
    }
  files = json_object_get_object_member (o, "files");
  roles = json_object_get_members (files);
  for (GList *l = roles; l != NULL; l = l->next)
    {
      JsonNode    *v = json_object_get_member (files, l->data);
      const char  *id = JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == G_TYPE_STRING
                        ? json_node_get_string (v) : NULL;
      CatalogFile *f = id != NULL ? g_hash_table_lookup (cat->files, id) : NULL;

      /* {out} and {name} are placeholders of their own, never a download. */
      if (!is_tool_name (l->data) || strcmp (l->data, "out") == 0 || strcmp (l->data, "name") == 0)
        {
          bad (error, cat->path, where, "roles in 'files' must be lower-case names other than "
               "'out' and 'name'");
          goto out;
        }
      if (f == NULL)
        {
          char *what = g_strdup_printf ("role '%s' names '%s', which is not in 'files'",
                                        (char *) l->data, id != NULL ? id : "?");
          bad (error, cat->path, where, what);
          g_free (what);
          goto out;
        }
      g_ptr_array_add (rolev, g_strdup (l->data));
      g_ptr_array_add (p->files, f);
    }
  if (!json_object_has_member (o, "convert") || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (o, "convert"))
      || json_array_get_length (steps = json_object_get_array_member (o, "convert")) == 0)
    {
      bad (error, cat->path, where, "needs 'convert', a non-empty list of steps");
      goto out;
    }
  for (guint i = 0; i < json_array_get_length (steps); i++)
    {
      CatalogStep *s = parse_step (cat->path, where, json_array_get_element (steps, i), error);

      if (s == NULL)
        goto out;
      g_ptr_array_add (p->steps, s);
    }
  /* Placeholders are checked now, not after gigabytes of downloads. */
  {
    GHashTable *dummy = g_hash_table_new (g_str_hash, g_str_equal);
    gboolean    placeholders_ok = TRUE;

    for (guint i = 0; i < rolev->len; i++)
      g_hash_table_insert (dummy, rolev->pdata[i], "x");
    for (guint i = 0; i < p->steps->len && placeholders_ok; i++)
      {
        CatalogStep *s = p->steps->pdata[i];
        char       **argv = NULL;

        if (s->tool != NULL)
          placeholders_ok = (argv = catalog_step_expand (p, s, "x", dummy, error)) != NULL;
        else if (!is_role_placeholder (s->copy_from, dummy))
          {
            /* A literal path or {out} would copy any file of the user's
             * into the pack: only the pack's own downloads go in. */
            g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                         "pack '%s': a copy step takes one {ROLE} placeholder, a role of its "
                         "'files', not \"%s\"", p->name, s->copy_from);
            placeholders_ok = FALSE;
          }
        g_strfreev (argv);
      }
    g_hash_table_unref (dummy);
    if (!placeholders_ok)
      {
        g_prefix_error (error, "%s: ", cat->path);
        goto out;
      }
  }
  ok = TRUE;
out:
  g_ptr_array_add (rolev, NULL);
  p->roles = (char **) g_ptr_array_free (rolev, FALSE);
  g_list_free (roles);
  g_free (where);
  if (!ok)
    g_clear_pointer (&p, pack_free);
  return p;
}

Catalog *
catalog_load (const char *path, GError **error)
{
  Catalog    *cat = g_new0 (Catalog, 1);
  JsonParser *parser = json_parser_new ();
  GError     *err = NULL;
  JsonObject *root, *files, *packs;
  GList      *names = NULL;
  JsonNode   *rn;
  GHashTable *cache_names = g_hash_table_new (g_str_hash, g_str_equal);

  cat->path = g_strdup (path);
  cat->files = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, file_free);
  cat->packs = g_ptr_array_new_with_free_func (pack_free);
  if (!json_parser_load_from_file (parser, path, &err))
    {
      g_set_error (error, GFCG_ERROR, err->domain == G_FILE_ERROR ? GFCG_ERROR_IO : GFCG_ERROR_MODEL,
                   "catalog %s: %s", path, err->message);
      g_error_free (err);
      goto fail;
    }
  rn = json_parser_get_root (parser);
  if (rn == NULL || !JSON_NODE_HOLDS_OBJECT (rn))
    {
      bad (error, path, "the catalog", "is not a JSON object");
      goto fail;
    }
  root = json_node_get_object (rn);
  if (g_strcmp0 (json_object_get_string_member_with_default (root, "format", ""), "gfcg-catalog") != 0
      || json_object_get_int_member_with_default (root, "format_version", 0) != 1)
    {
      bad (error, path, "the catalog", "is not format \"gfcg-catalog\" version 1");
      goto fail;
    }
  if (!json_object_has_member (root, "files") || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (root, "files"))
      || !json_object_has_member (root, "packs") || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (root, "packs")))
    {
      bad (error, path, "the catalog", "needs the objects 'files' and 'packs'");
      goto fail;
    }
  files = json_object_get_object_member (root, "files");
  names = json_object_get_members (files);
  for (GList *l = names; l != NULL; l = l->next)
    {
      CatalogFile *f = parse_file (path, l->data, json_object_get_member (files, l->data), error);

      if (f == NULL)
        goto fail;
      g_hash_table_insert (cat->files, f->id, f);
      if (!g_hash_table_add (cache_names, f->file))
        {
          bad (error, path, f->file, "is the cache name of two files: give one a different 'file'");
          goto fail;
        }
    }
  g_clear_pointer (&names, g_list_free);
  packs = json_object_get_object_member (root, "packs");
  names = json_object_get_members (packs);
  for (GList *l = names; l != NULL; l = l->next)
    {
      CatalogPack *p = parse_pack (cat, l->data, json_object_get_member (packs, l->data), error);

      if (p == NULL)
        goto fail;
      g_ptr_array_add (cat->packs, p);
    }
  g_list_free (names);
  g_hash_table_unref (cache_names);
  g_object_unref (parser);
  return cat;
fail:
  g_list_free (names);
  g_hash_table_unref (cache_names);
  g_object_unref (parser);
  catalog_free (cat);
  return NULL;
}

CatalogPack *
catalog_find_pack (Catalog *cat, const char *name)
{
  for (guint i = 0; i < cat->packs->len; i++)
    if (strcmp (((CatalogPack *) cat->packs->pdata[i])->name, name) == 0)
      return cat->packs->pdata[i];
  return NULL;
}
