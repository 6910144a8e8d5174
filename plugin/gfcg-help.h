/* gfcg-help.h — the plug-in's own help pages (help/LANG/index.html, installed
 * beside the binary), registered with GIMP as a help domain so that the
 * dialog's Help button and F1 open them instead of GIMP's "user manual is
 * missing" dialog. */
#ifndef GFCG_HELP_H
#define GFCG_HELP_H

#include <libgimp/gimp.h>

G_BEGIN_DECLS

#define GFCG_HELP_DOMAIN "org.gfcg.render"

/* Call from query_procedures: GIMP records the domain with the procedures. */
void   gfcg_help_register (GimpPlugIn *plug_in);

/* The page GIMP's help plug-in opens for help_id, found as it finds it:
 * LANG/gimp-help.xml under the domain's folder, for the first of the user's
 * languages that has one, else English.  A file:// URI (with the
 * #fragment), or NULL when no page exists. */
char  *gfcg_help_page_uri (const char *help_id);

G_END_DECLS

#endif /* GFCG_HELP_H */
