/* classes.c — a pack's class map: reading and checking pack.json "classes"
 * (each an ImageNet index, wnid and name, none twice), and finding a class
 * by ImageNet index (a bare number, or inet:N), pack:N (the pack's own
 * index), or any ImageNet name, synonym or wnid. */
#include "gfcg-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Class i against those before it: a class is found by its ImageNet index,
 * name or wnid (case-insensitive), so each must be there and name one class. */
static gboolean
check_class (GfcgPack *pack, int i, const char *where, GError **error)
{
  const PackClass *c = &pack->classes[i];

  if (*g_strstrip (c->name) == '\0')
    return cfg_error (error, where, "name", "must be a non-empty string");
  for (int j = 0; j < i; j++)
    {
      const PackClass *o = &pack->classes[j];
      const char *what = o->imagenet == c->imagenet ? "imagenet"
                         : g_ascii_strcasecmp (o->name, c->name) == 0 ? "name"
                         : *c->wnid != '\0' && g_ascii_strcasecmp (o->wnid, c->wnid) == 0 ? "wnid"
                         : NULL;
      if (what != NULL)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                       "%s: '%s' is the same as that of classes[%d] ('%s')", where, what, j,
                       o->name);
          return FALSE;
        }
    }
  return TRUE;
}

gboolean
pack_load_classes (GfcgPack *pack, JsonObject *root, const char *where, GError **error)
{
  JsonNode *n = json_object_get_member (root, "classes");
  JsonArray *a;

  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n) ||
      json_array_get_length (a = json_node_get_array (n)) == 0)
    return cfg_error (error, where, "classes", "must be a non-empty list");
  pack->n_classes = (int) MIN (json_array_get_length (a), 100000);
  pack->classes = g_new0 (PackClass, pack->n_classes);
  for (int i = 0; i < pack->n_classes; i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      JsonObject *o;
      char *w = g_strdup_printf ("%s: classes[%d]", where, i);
      gboolean ok = JSON_NODE_HOLDS_OBJECT (e) &&
                    cfg_int (o = json_node_get_object (e), "imagenet", 0, TRUE, 0, 999,
                             &pack->classes[i].imagenet, w, error) &&
                    cfg_dup_string (o, "wnid", "", &pack->classes[i].wnid, w, error) &&
                    cfg_dup_string (o, "name", "", &pack->classes[i].name, w, error) &&
                    check_class (pack, i, w, error);
      if (!JSON_NODE_HOLDS_OBJECT (e))
        cfg_error (error, where, "classes", "must hold objects");
      g_free (w);
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

gboolean
gfcg_pack_get_class (const GfcgPack *pack, int k, int *imagenet, const char **wnid,
                     const char **name)
{
  if (k < 0 || k >= pack->n_classes)
    return FALSE;
  if (imagenet)
    *imagenet = pack->classes[k].imagenet;
  if (wnid)
    *wnid = pack->classes[k].wnid;
  if (name)
    *name = pack->classes[k].name;
  return TRUE;
}

int
gfcg_pack_class_from_imagenet (const GfcgPack *pack, int imagenet)
{
  for (int k = 0; k < pack->n_classes; k++)
    if (pack->classes[k].imagenet == imagenet)
      return k;
  return -1;
}

static gboolean
parse_index (const char *s, int *out)
{
  char *end;
  gint64 v;
  if (s == NULL || !g_ascii_isdigit (*s))
    return FALSE;
  errno = 0;
  v = g_ascii_strtoll (s, &end, 10);
  if (errno != 0 || *end != '\0' || v > G_MAXINT)
    return FALSE;
  *out = (int) v;
  return TRUE;
}

char *
pack_class_list (const GfcgPack *pack)
{
  GString *s;

  if (pack->n_classes > 20)
    return g_strdup ("`gfcg info` lists its classes");
  s = g_string_new ("it draws ");
  for (int k = 0; k < pack->n_classes; k++)
    g_string_append_printf (s, "%s%s (%d)", k ? ", " : "", pack->classes[k].name,
                            pack->classes[k].imagenet);
  return g_string_free (s, FALSE);
}

static gboolean
pack_draws (int imagenet, gpointer pack)
{
  return gfcg_pack_class_from_imagenet (pack, imagenet) >= 0;
}

/* ": did you mean 'golden retriever'?" for a typo, else "". */
static char *
did_you_mean (const char *spec)
{
  int      near[3], n = gfcg_imagenet_suggest (spec, near, G_N_ELEMENTS (near));
  GString *s = g_string_new (NULL);

  for (int i = 0; i < n; i++)
    g_string_append_printf (s, "%s'%s'", i == 0 ? ": did you mean " : i == n - 1 ? " or " : ", ",
                            gfcg_imagenet_name (near[i]));
  if (n > 0)
    g_string_append_c (s, '?');
  return g_string_free (s, FALSE);
}

int
pack_find_class (const GfcgPack *pack, const char *spec, gboolean allow_index, GError **error)
{
  int   k = -1, inet;
  char *hint;

  if (spec == NULL)
    spec = "";
  /* The pack's own index, only when asked for by name: a bare number is an
   * ImageNet index, as in the plug-in's class-index and the trace. */
  if (allow_index && g_str_has_prefix (spec, "pack:") && parse_index (spec + 5, &k))
    {
      if (k < pack->n_classes)
        return k;
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack class %d is out of range: pack '%s' has classes 0..%d",
                   k, pack->name, pack->n_classes - 1);
      return -1;
    }
  if ((allow_index && parse_index (spec, &inet)) ||
      (g_str_has_prefix (spec, "inet:") && parse_index (spec + 5, &inet)))
    {
      char *list;

      if (inet > 999)
        {
          g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                       "class %d is not an ImageNet-1k class index (0..999; the pack's own "
                       "index is pack:N)", inet);
          return -1;
        }
      if ((k = gfcg_pack_class_from_imagenet (pack, inet)) >= 0)
        return k;
      list = pack_class_list (pack);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "ImageNet class %d (%s) is not one that pack '%s' can draw; %s", inet,
                   gfcg_imagenet_name (inet), pack->name, list);
      g_free (list);
      return -1;
    }
  for (k = 0; k < pack->n_classes; k++)
    if (g_ascii_strcasecmp (spec, pack->classes[k].wnid) == 0 ||
        g_ascii_strcasecmp (spec, pack->classes[k].name) == 0)
      return k;
  /* Of several ImageNet classes with this name, one the pack draws. */
  if ((inet = gfcg_imagenet_find_preferring (spec, pack_draws, (gpointer) pack)) >= 0)
    {
      char *list;
      if ((k = gfcg_pack_class_from_imagenet (pack, inet)) >= 0)
        return k;
      list = pack_class_list (pack);
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "ImageNet class '%s' (inet:%d, %s) is not one that pack '%s' can draw; %s",
                   spec, inet, gfcg_imagenet_name (inet), pack->name, list);
      g_free (list);
      return -1;
    }
  hint = did_you_mean (spec);
  if (allow_index)
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                 "unknown class '%s' for pack '%s'%s (give an ImageNet index 0..999, a wnid, "
                 "a name, or pack:N for the pack's own 0..%d; `gfcg info` lists them)", spec,
                 pack->name, hint, pack->n_classes - 1);
  else
    g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                 "unknown class '%s'%s (give an English ImageNet class name, a synonym or a "
                 "wnid)", spec, hint);
  g_free (hint);
  return -1;
}

int
gfcg_pack_find_class (const GfcgPack *pack, const char *spec, GError **error)
{
  return pack_find_class (pack, spec, TRUE, error);
}
