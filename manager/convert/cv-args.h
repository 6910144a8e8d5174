/* cv-args.h — argparse's reading of the converters' options (cv-args.c). */
#ifndef GFCG_CV_ARGS_H
#define GFCG_CV_ARGS_H

#include <glib.h>

typedef struct
{
  const char  *name;     /* "--main" */
  const char **value;    /* an option with a value, or NULL */
  gboolean    *flag;     /* a flag, or NULL */
  gboolean     required;
} CvOpt;

/* Fills the options (terminated by a NULL name); *help when -h/--help was
 * given.  Errors are CV_ERROR_USAGE in argparse's words. */
gboolean cv_parse_args  (CvOpt *opts, int argc, char **argv, gboolean *help, GError **error);
gboolean cv_parse_float (const char *opt, const char *text, double *out, GError **error);

#endif
