/* json-write.c — every JSON text the project writes (traces, PNG comments,
 * the plug-in's parasite, safetensors headers, install records).
 *
 * json-glib's generator formats doubles itself: 1.6.6 (Debian 12) appends
 * ".0" to any number without a '.', so 1e20 becomes "1e+20.0", and every
 * version writes NaN and infinity as C prints them ("-nan.0").  Neither is
 * JSON.  This walks the JsonNode tree instead and formats numbers here. */
#include "gfcg/gfcg-json.h"

#include <math.h>
#include <string.h>

static void write_node (GString *s, JsonNode *node, gboolean pretty, int depth);

/* The shortest of %.15g..%.17g that reads back as the same double, with
 * ".0" on integral values so they stay doubles for json-glib readers. */
static void
write_double (GString *s, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v))
    {
      g_string_append (s, "null"); /* JSON has no NaN or infinity */
      return;
    }
  for (int digits = 15; digits <= 17; digits++)
    {
      char fmt[8];
      g_snprintf (fmt, sizeof fmt, "%%.%dg", digits);
      g_ascii_formatd (buf, sizeof buf, fmt, v);
      if (g_ascii_strtod (buf, NULL) == v)
        break;
    }
  g_string_append (s, buf);
  if (strpbrk (buf, ".eE") == NULL)
    g_string_append (s, ".0");
}

static void
write_string (GString *s, const char *str)
{
  char *valid = g_utf8_make_valid (str != NULL ? str : "", -1);

  g_string_append_c (s, '"');
  for (const char *p = valid; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;
      switch (c)
        {
        case '"': g_string_append (s, "\\\""); break;
        case '\\': g_string_append (s, "\\\\"); break;
        case '\b': g_string_append (s, "\\b"); break;
        case '\f': g_string_append (s, "\\f"); break;
        case '\n': g_string_append (s, "\\n"); break;
        case '\r': g_string_append (s, "\\r"); break;
        case '\t': g_string_append (s, "\\t"); break;
        default:
          if (c < 0x20 || c == 0x7f)
            g_string_append_printf (s, "\\u%04x", c);
          else
            g_string_append_c (s, (char) c);
        }
    }
  g_string_append_c (s, '"');
  g_free (valid);
}

static void
write_value (GString *s, JsonNode *node)
{
  switch (json_node_get_value_type (node))
    {
    case G_TYPE_INT64:
      g_string_append_printf (s, "%" G_GINT64_FORMAT, json_node_get_int (node));
      break;
    case G_TYPE_DOUBLE:
      write_double (s, json_node_get_double (node));
      break;
    case G_TYPE_BOOLEAN:
      g_string_append (s, json_node_get_boolean (node) ? "true" : "false");
      break;
    case G_TYPE_STRING:
      write_string (s, json_node_get_string (node));
      break;
    default:
      g_string_append (s, "null");
    }
}

static void
newline (GString *s, gboolean pretty, int depth)
{
  if (!pretty)
    return;
  g_string_append_c (s, '\n');
  for (int i = 0; i < depth; i++)
    g_string_append (s, "  ");
}

static void
write_object (GString *s, JsonObject *o, gboolean pretty, int depth)
{
  /* get_members keeps the order in which members were added. */
  GList *members = json_object_get_members (o);

  g_string_append_c (s, '{');
  for (GList *l = members; l != NULL; l = l->next)
    {
      newline (s, pretty, depth + 1);
      write_string (s, l->data);
      g_string_append (s, pretty ? " : " : ":");
      write_node (s, json_object_get_member (o, l->data), pretty, depth + 1);
      if (l->next != NULL)
        g_string_append_c (s, ',');
    }
  if (members != NULL)
    newline (s, pretty, depth);
  g_string_append_c (s, '}');
  g_list_free (members);
}

static void
write_array (GString *s, JsonArray *a, gboolean pretty, int depth)
{
  guint n = json_array_get_length (a);

  g_string_append_c (s, '[');
  for (guint i = 0; i < n; i++)
    {
      newline (s, pretty, depth + 1);
      write_node (s, json_array_get_element (a, i), pretty, depth + 1);
      if (i + 1 < n)
        g_string_append_c (s, ',');
    }
  if (n > 0)
    newline (s, pretty, depth);
  g_string_append_c (s, ']');
}

static void
write_node (GString *s, JsonNode *node, gboolean pretty, int depth)
{
  if (node == NULL)
    {
      g_string_append (s, "null");
      return;
    }
  switch (JSON_NODE_TYPE (node))
    {
    case JSON_NODE_OBJECT:
      write_object (s, json_node_get_object (node), pretty, depth);
      break;
    case JSON_NODE_ARRAY:
      write_array (s, json_node_get_array (node), pretty, depth);
      break;
    case JSON_NODE_VALUE:
      write_value (s, node);
      break;
    case JSON_NODE_NULL:
    default:
      g_string_append (s, "null");
    }
}

char *
gfcg_json_to_data (JsonNode *root, gboolean pretty, gsize *length)
{
  GString *s = g_string_new (NULL);

  write_node (s, root, pretty, 0);
  if (length != NULL)
    *length = s->len;
  return g_string_free (s, FALSE);
}
