/* gfcg-json.h — the project's one JSON writer (json-write.c).
 *
 * Separate from gfcg.h so that clients which write no JSON need no
 * json-glib headers. */
#ifndef GFCG_JSON_H
#define GFCG_JSON_H

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* root as JSON text that any parser accepts: doubles in their shortest
 * round-trip form (never json-glib's formatting: 1.6 writes 1e+20 as
 * "1e+20.0"), non-finite doubles as null, strings as valid UTF-8.  pretty:
 * two-space indentation, one member per line.  length may be NULL. */
char *gfcg_json_to_data (JsonNode *root, gboolean pretty, gsize *length);

G_END_DECLS

#endif /* GFCG_JSON_H */
