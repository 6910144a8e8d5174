/* fuzz-pickle.c — libFuzzer harness for the restricted pickle reader.
 *
 * The input is one EDM2 snapshot pickle: it goes through everything
 * `gfcg convert edm2` does with a --main file but writing it (manager/convert:
 * the unpickler with the EDM2 allowlist, storages nested as torch.save bytes,
 * the refused-tensor walk, the config and tensor checks), and every tensor
 * that passes is read element by element, so a geometry the checks let
 * through that reaches outside its storage shows up under ASan.
 * Build: meson setup build-fuzz -Dfuzz=true (CC=clang); see tools/fuzz. */
#include "cv.h"

#include <stdint.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;

  (void) cv_edm2_inspect (data, size, &error);
  g_clear_error (&error);
  return 0;
}
