/* fuzz-tflite.c — libFuzzer harness for the native TFLite reader.
 *
 * The input is one .tflite file, as `gfcg convert classifier --mobilenet`
 * reads it (manager/convert/cv-tflite.c: the flatbuffer walked with every
 * offset, vtable and vector checked, the constants dequantised, a
 * MobileNetV2 graph named).  Of a file that converts, every element of every
 * output tensor is read through its shape and strides and the graph's JSON
 * text is walked, so a tensor reaching outside its buffer or a string
 * without its end shows up under ASan.  Build: meson setup build-fuzz
 * -Dfuzz=true (CC=clang). */
#include "cv-tflite.h"

#include <stdint.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError   *error = NULL;
  CvTflite *t = cv_tflite_read (data, size, "fuzz.tflite", &error);

  if (t != NULL)
    {
      volatile float sink = 0;
      for (guint i = 0; i < t->tensors->tensors->len; i++)
        {
          const CvOutTensor *o = t->tensors->tensors->pdata[i];
          sink += (float) strlen (o->name);
          for (gint64 e = 0; e < o->src.numel; e++)
            sink += cv_tensor_get_f32 (&o->src, e);
        }
      sink += (float) strlen (t->tensors->metadata_value);
      (void) sink;
    }
  /* a refusal must say why */
  g_assert ((t == NULL) == (error != NULL));
  g_clear_error (&error);
  cv_tflite_free (t);
  return 0;
}
