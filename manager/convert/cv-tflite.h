/* cv-tflite.h — TFLite classifiers (the Coral MobileNetV2) read natively
 * (cv-tflite.c, as converters/gfcg_convert/tflite_to_safetensors.py). */
#ifndef GFCG_CV_TFLITE_H
#define GFCG_CV_TFLITE_H

#include "cv.h"

typedef struct
{
  CvOutFile *tensors;        /* the dequantised constants, float32, engine names */
  gboolean   mobilenet;      /* the graph is a MobileNetV2 (names given)         */
  int        input_ndim;
  gint64     input_shape[8];
  gint64     n_out;          /* the classifier's outputs                          */
  double     mean, std;      /* input normalisation on [0, 1] pixels              */
  GPtrArray *buffers;        /* the float32 data the tensors point into           */
} CvTflite;

CvTflite *cv_tflite_convert (const char *path, GError **error);
/* The same from the file's bytes (the fuzz harness's way in); path only
 * names the file in messages and in the graph's "source".  Nothing returned
 * points into data. */
CvTflite *cv_tflite_read    (const guint8 *data, gsize len, const char *path, GError **error);
void      cv_tflite_free    (CvTflite *t);

#endif
