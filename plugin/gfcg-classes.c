/* gfcg-classes.c — the look-ups of the ImageNet class table that the PDB
 * dialog's picker uses, over the engine's table (names are found by
 * gfcg_imagenet_find, as everywhere). */
#include "gfcg-classes.h"

#include <string.h>

typedef struct
{
  GfcgClassInfo info;
  char         *haystack;      /* lower-case "index\twnid\tname\tsynonyms" */
} ClassEntry;

static ClassEntry *table;

/* The engine's table (the only copy, embedded in libgfcg), with the filter
 * haystack the picker needs. */
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
