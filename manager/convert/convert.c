/* convert.c — the native converters by their catalog names. */
#include "cv.h"

#include <string.h>

const char *cv_edm2_usage (void);
const char *cv_classifier_usage (void);

gboolean
gfcg_convert_is_native (const char *tool)
{
  return tool != NULL && (strcmp (tool, "convert-edm2") == 0 || strcmp (tool, "convert-classifier") == 0);
}

const char *
gfcg_convert_usage (const char *tool)
{
  if (tool != NULL && strcmp (tool, "convert-edm2") == 0)
    return cv_edm2_usage ();
  if (tool != NULL && strcmp (tool, "convert-classifier") == 0)
    return cv_classifier_usage ();
  return "";
}

gboolean
gfcg_convert_error_is_usage (const GError *error)
{
  return error != NULL && error->domain == CV_ERROR && error->code == CV_ERROR_USAGE;
}

int
gfcg_convert_run (const char *tool, int argc, char **argv, FILE *log, volatile sig_atomic_t *cancel,
                  GError **error)
{
  CvContext cx = { log != NULL ? log : stdout, cancel };
  GError   *err = NULL;
  int       status;

  if (strcmp (tool, "convert-edm2") == 0)
    status = cv_edm2_main (&cx, argc, argv, &err);
  else if (strcmp (tool, "convert-classifier") == 0)
    status = cv_classifier_main (&cx, argc, argv, &err);
  else
    {
      g_set_error (error, CV_ERROR, CV_ERROR_USAGE, "no native converter '%s'", tool);
      return 2;
    }
  if (err != NULL)
    {
      if (err->domain == CV_ERROR && err->code == CV_ERROR_CANCELLED)
        status = 1;
      g_propagate_error (error, err);
    }
  fflush (cx.log);
  return status;
}
