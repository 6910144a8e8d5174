/* cv-args.c — the Python converters' command lines, read as argparse reads
 * them: --opt VALUE and --opt=VALUE, unique prefixes of option names, the
 * last of a repeated option wins, flags without values, required options. */
#include "cv.h"
#include "cv-args.h"

#include <string.h>

static CvOpt *
find_opt (CvOpt *opts, const char *name, gsize n, GError **error)
{
  CvOpt *hit = NULL;
  guint  hits = 0;

  for (CvOpt *o = opts; o->name != NULL; o++)
    if (strlen (o->name) == n && strncmp (o->name, name, n) == 0)
      return o;
  for (CvOpt *o = opts; o->name != NULL; o++)
    if (strlen (o->name) > n && strncmp (o->name, name, n) == 0)
      {
        hit = o;
        hits++;
      }
  if (hits == 1)
    return hit;
  if (hits > 1)
    g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "ambiguous option: %.*s", (int) n, name);
  else
    g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "unrecognized arguments: %.*s", (int) n, name);
  return NULL;
}

gboolean
cv_parse_args (CvOpt *opts, int argc, char **argv, gboolean *help, GError **error)
{
  GString *missing = NULL;

  *help = FALSE;
  for (int i = 0; i < argc; i++)
    {
      const char *a = argv[i], *eq;
      CvOpt      *o;

      if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0)
        {
          *help = TRUE;
          return TRUE;
        }
      if (!g_str_has_prefix (a, "--") || a[2] == '\0')
        {
          g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "unrecognized arguments: %s", a);
          return FALSE;
        }
      eq = strchr (a, '=');
      if ((o = find_opt (opts, a, eq != NULL ? (gsize) (eq - a) : strlen (a), error)) == NULL)
        return FALSE;
      if (o->flag != NULL)
        {
          if (eq != NULL)
            {
              g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "argument %s: ignored explicit "
                           "argument '%s'", o->name, eq + 1);
              return FALSE;
            }
          *o->flag = TRUE;
          continue;
        }
      if (eq != NULL)
        *o->value = eq + 1;
      else if (i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1] == '-' && argv[i + 1][2] != '\0'))
        *o->value = argv[++i];
      else
        {
          g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "argument %s: expected one argument", o->name);
          return FALSE;
        }
    }
  for (CvOpt *o = opts; o->name != NULL; o++)
    if (o->required && *o->value == NULL)
      {
        if (missing == NULL)
          missing = g_string_new ("the following arguments are required: ");
        else
          g_string_append (missing, ", ");
        g_string_append (missing, o->name);
      }
  if (missing != NULL)
    {
      g_set_error_literal (error, CV_ERROR, CV_ERROR_USAGE, missing->str);
      g_string_free (missing, TRUE);
      return FALSE;
    }
  return TRUE;
}

/* float(text), as Python reads it (surrounding blanks allowed, inf and nan too). */
gboolean
cv_parse_float (const char *opt, const char *text, double *out, GError **error)
{
  char  *s = g_strstrip (g_strdup (text)), *end;
  double v = g_ascii_strtod (s, &end);

  if (*s == '\0' || *end != '\0' || strpbrk (s, "xX") != NULL)
    {
      g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "argument %s: invalid float value: '%s'", opt, text);
      g_free (s);
      return FALSE;
    }
  g_free (s);
  *out = v;
  return TRUE;
}
