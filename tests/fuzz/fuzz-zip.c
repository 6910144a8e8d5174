/* fuzz-zip.c — libFuzzer harness for the zip reader and torch.save's formats.
 *
 * The input is one torch.save file, as `gfcg convert classifier --resnet50`
 * reads it (manager/convert: a zip archive through the bounds-checked zip
 * reader, else torch's legacy format; the unpickler with the state-dict
 * allowlist and its storage references).  The archive is also opened on its
 * own, and every tensor of a state dict that loads is read element by
 * element, so a storage or an entry reaching outside the input shows up
 * under ASan.  Build: meson setup build-fuzz -Dfuzz=true (CC=clang). */
#include "cv.h"

#include <stdint.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  CvHeap *heap = cv_heap_new ();
  CvZip  *zip = cv_zip_open (data, size, &error);
  Pv     *sd;

  if (zip != NULL)
    {
      volatile guint8 sink = 0;
      for (guint i = 0; i < zip->n; i++)
        if (zip->entries[i].size > 0)
          sink ^= zip->entries[i].data[0] ^ zip->entries[i].data[zip->entries[i].size - 1];
      (void) sink;
      cv_zip_free (zip);
    }
  g_clear_error (&error);
  sd = cv_torch_load_state_dict (heap, data, size, NULL, &error);
  if (sd != NULL)
    for (guint i = 0; i < sd->dict.n; i++)
      {
        CvTensor        t;
        volatile float  sink = 0;
        cv_tensor_from_pv (&t, sd->dict.vals[i]);
        for (gint64 e = 0; e < t.numel; e++)
          sink += cv_tensor_get_f32 (&t, e);
        (void) sink;
      }
  g_clear_error (&error);
  cv_heap_free (heap);
  return 0;
}
