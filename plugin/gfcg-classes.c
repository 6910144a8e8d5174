/* gfcg-classes.c — the ImageNet class table and its look-ups. */
#include "gfcg-classes.h"
#include "gfcg-render-resources.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES_RESOURCE "/org/gfcg/render/imagenet-classes.tsv"

typedef struct
{
  GfcgClassInfo info;
  char         *norm_name;     /* normalised name                  */
  char        **norm_synonyms; /* normalised synonyms              */
  char         *haystack;      /* lower-case "name|synonyms|wnid"  */
} ClassEntry;

static ClassEntry *table;

/* Lower case, '_' as space, outer blanks trimmed. */
static char *
normalise (const char *s)
{
  char *n = g_utf8_strdown (s, -1);

  g_strdelimit (n, "_", ' ');
  return g_strstrip (n);
}

static void
load_table (void)
{
  GBytes *bytes;
  char  **lines;
  int     n = 0;

  table = g_new0 (ClassEntry, GFCG_N_IMAGENET_CLASSES);
  bytes = g_resource_lookup_data (gfcg_render_get_resource (), CLASSES_RESOURCE,
                                  G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  if (bytes == NULL)
    g_error ("the plug-in was built without its class table (%s)", CLASSES_RESOURCE);

  lines = g_strsplit (g_bytes_get_data (bytes, NULL), "\n", -1);
  for (char **l = lines; *l != NULL; l++)
    {
      char      **f;
      ClassEntry *e;
      int         idx;

      if (**l == '#' || **l == '\0')
        continue;
      f = g_strsplit (*l, "\t", 4);
      idx = g_strv_length (f) == 4 ? atoi (f[0]) : -1;
      if (idx >= 0 && idx < GFCG_N_IMAGENET_CLASSES && table[idx].info.name == NULL)
        {
          e = &table[idx];
          e->info.index = idx;
          e->info.wnid = g_strdup (f[1]);
          e->info.name = g_strdup (f[2]);
          e->info.synonyms = g_strdup (f[3]);
          e->norm_name = normalise (f[2]);
          e->norm_synonyms = g_strsplit (f[3], ",", -1);
          for (char **s = e->norm_synonyms; *s != NULL; s++)
            {
              char *t = normalise (*s);
              g_free (*s);
              *s = t;
            }
          e->haystack = g_ascii_strdown (*l, -1);
          n++;
        }
      g_strfreev (f);
    }
  g_strfreev (lines);
  g_bytes_unref (bytes);
  if (n != GFCG_N_IMAGENET_CLASSES)
    g_error ("the class table %s has %d classes, not %d", CLASSES_RESOURCE, n,
             GFCG_N_IMAGENET_CLASSES);
}

const GfcgClassInfo *
gfcg_classes_get (int index)
{
  if (index < 0 || index >= GFCG_N_IMAGENET_CLASSES)
    return NULL;
  if (table == NULL)
    load_table ();
  return &table[index].info;
}

const char *
gfcg_classes_name (int index)
{
  const GfcgClassInfo *c = gfcg_classes_get (index);

  return c != NULL ? c->name : "?";
}

static gboolean
entry_matches (const ClassEntry *e, const char *norm, int pass)
{
  switch (pass)
    {
    case 0:
      return strcmp (e->norm_name, norm) == 0;
    case 1:
      return *e->info.wnid != '\0' && g_ascii_strcasecmp (e->info.wnid, norm) == 0;
    default:
      for (char **s = e->norm_synonyms; *s != NULL; s++)
        if (strcmp (*s, norm) == 0)
          return TRUE;
      return FALSE;
    }
}

int
gfcg_classes_find (const char *spec,
                   gboolean  (*drawable) (int imagenet, gpointer data),
                   gpointer    data)
{
  char *norm;
  int   first = -1;

  if (spec == NULL)
    return -1;
  if (table == NULL)
    load_table ();
  norm = normalise (spec);
  for (int pass = 0; pass < 3 && *norm != '\0'; pass++)
    {
      for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
        if (entry_matches (&table[i], norm, pass))
          {
            if (drawable == NULL || drawable (i, data))
              {
                g_free (norm);
                return i;
              }
            if (first < 0)
              first = i;
          }
      /* A name match beats any synonym of another class. */
      if (first >= 0)
        break;
    }
  g_free (norm);
  return first;
}

gboolean
gfcg_classes_filter (const GfcgClassInfo *c, const char *needle)
{
  const ClassEntry *e = (const ClassEntry *) c;
  char *end;
  long  n;

  if (needle == NULL || *needle == '\0')
    return TRUE;
  n = strtol (needle, &end, 10);
  if (*end == '\0' && end != needle)
    return n == c->index;
  return strstr (e->haystack + strcspn (e->haystack, "\t"), needle) != NULL;
}
