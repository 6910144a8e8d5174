/* config.c — typed reads of pack.json and component "config" objects.
 * Every network file and the pack loader read their settings through
 * these: a missing required key, a value of the wrong JSON type or out of
 * range is a GError naming the key and where it was, never a GLib critical. */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

gboolean
cfg_error (GError **error, const char *where, const char *key, const char *what)
{
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: '%s' %s", where, key, what);
  return FALSE;
}

static gboolean
node_is_number (JsonNode *n)
{
  return n != NULL && JSON_NODE_HOLDS_VALUE (n) &&
         (json_node_get_value_type (n) == G_TYPE_INT64 ||
          json_node_get_value_type (n) == G_TYPE_DOUBLE);
}

gboolean
cfg_int (JsonObject *o, const char *key, int def, gboolean required, int lo, int hi, int *out,
         const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  gint64 v;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return cfg_error (error, where, key, "must be an integer");
  v = json_node_get_int (n);
  if (v < lo || v > hi)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: '%s' is %" G_GINT64_FORMAT
                   ", outside [%d, %d]", where, key, v, lo, hi);
      return FALSE;
    }
  *out = (int) v;
  return TRUE;
}

gboolean
cfg_double (JsonObject *o, const char *key, double def, gboolean required, double *out,
            const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  /* json-glib reads 1e999 as infinity: no option or config takes that. */
  if (!node_is_number (n) || !isfinite (json_node_get_double (n)))
    return cfg_error (error, where, key, "must be a finite number");
  *out = json_node_get_double (n);
  return TRUE;
}

gboolean
cfg_string (JsonObject *o, const char *key, const char *def, gboolean required,
            const char **out, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      if (required)
        return cfg_error (error, where, key, "is missing");
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return cfg_error (error, where, key, "must be a string");
  *out = json_node_get_string (n);
  return TRUE;
}

gboolean
cfg_bool (JsonObject *o, const char *key, gboolean def, gboolean *out, const char *where,
          GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    {
      *out = def;
      return TRUE;
    }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return cfg_error (error, where, key, "must be true or false");
  *out = json_node_get_boolean (n);
  return TRUE;
}

gconstpointer
arch_lookup (const char *arch, gconstpointer const *table, guint n, const char *where,
             GError **error)
{
  GString *names;

  for (guint i = 0; i < n; i++)
    if (g_strcmp0 (arch, *(const char *const *) table[i]) == 0)
      return table[i];
  names = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (names, "%s%s", i ? ", " : "", *(const char *const *) table[i]);
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: architecture '%s' is not supported (%s)",
               where, arch, names->str);
  g_string_free (names, TRUE);
  return NULL;
}

gboolean
cfg_int_list (JsonObject *o, const char *key, gboolean required, int lo, int hi, int **out,
              int *n_out, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  JsonArray *a;
  guint len;

  *out = NULL;
  *n_out = 0;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return required ? cfg_error (error, where, key, "is missing") : TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (n))
    return cfg_error (error, where, key, "must be a list of integers");
  a = json_node_get_array (n);
  len = json_array_get_length (a);
  if (len > 64)
    return cfg_error (error, where, key, "is too long");
  *out = g_new0 (int, MAX (len, 1));
  for (guint i = 0; i < len; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      gint64 v;
      if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_INT64 ||
          (v = json_node_get_int (e)) < lo || v > hi)
        {
          g_clear_pointer (out, g_free);
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s: '%s' must hold integers in [%d, %d]", where, key, lo, hi);
          return FALSE;
        }
      (*out)[i] = (int) v;
    }
  *n_out = (int) len;
  return TRUE;
}

/* A list of n numbers under key (absent: def, unless def is NULL). */
gboolean
cfg_float_list (JsonObject *o, const char *key, int n, const float *def, float *out,
                const char *where, GError **error)
{
  JsonNode *node = json_object_get_member (o, key);
  JsonArray *a;
  if (node == NULL && def != NULL)
    {
      memcpy (out, def, n * sizeof (float));
      return TRUE;
    }
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node) ||
      json_array_get_length (a = json_node_get_array (node)) != (guint) n)
    goto bad;
  for (int i = 0; i < n; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      if (!node_is_number (e))
        goto bad;
      out[i] = (float) json_node_get_double (e);
    }
  return TRUE;
bad:
  g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL, "%s: 'latent.%s' must be a list of %d numbers",
               where, key, n);
  return FALSE;
}

/* A string member copied to *out (def when absent); other types are errors. */
gboolean
cfg_dup_string (JsonObject *o, const char *key, const char *def, char **out, const char *where,
            GError **error)
{
  const char *v;
  if (!cfg_string (o, key, def, FALSE, &v, where, error))
    return FALSE;
  *out = g_strdup (v);
  return TRUE;
}
