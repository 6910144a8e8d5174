/* gfcg-classes.c — the look-ups of the ImageNet class table that the PDB
 * argument `class-name` and the dialog's picker use, over the engine's table. */
#include "gfcg-classes.h"

#include <string.h>

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

/* The engine's table (the only copy, embedded in libgfcg), with the
 * normalised names and synonyms and the filter haystack the picker needs. */
static void
load_table (void)
{
  table = g_new0 (ClassEntry, GFCG_N_IMAGENET_CLASSES);
  for (int i = 0; i < GFCG_N_IMAGENET_CLASSES; i++)
    {
      const GfcgImagenetClass *c = gfcg_imagenet_get (i);
      ClassEntry *e = &table[i];

      if (c == NULL)
        g_error ("the engine's ImageNet table lacks class %d", i);
      e->info = *c;
      e->norm_name = normalise (c->name);
      e->norm_synonyms = g_strsplit (c->synonyms, ",", -1);
      for (char **s = e->norm_synonyms; *s != NULL; s++)
        {
          char *t = normalise (*s);
          g_free (*s);
          *s = t;
        }
      {
        /* The table's line: "index\twnid\tname\tsynonyms", lower case. */
        char *line = g_strdup_printf ("%d\t%s\t%s\t%s", i, c->wnid, c->name, c->synonyms);
        e->haystack = g_ascii_strdown (line, -1);
        g_free (line);
      }
    }
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
