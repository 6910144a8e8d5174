/* cv-tflite.c — placeholder until the flatbuffer reader lands. */
#include "cv-tflite.h"

CvTflite *
cv_tflite_convert (const char *path, GError **error)
{
  g_set_error (error, CV_ERROR, CV_ERROR_CONVERT, "TFLite files are not read natively yet");
  return NULL;
}

void
cv_tflite_free (CvTflite *t)
{
  if (t == NULL)
    return;
  cv_out_free (t->tensors);
  if (t->buffers != NULL)
    g_ptr_array_unref (t->buffers);
  g_free (t);
}
