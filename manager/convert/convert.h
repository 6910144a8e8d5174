/* convert.h — the native converters (manager/convert/): the published
 * checkpoints `gfcg models fetch` installs, turned into packs without Python
 * and without running anything the files name.
 *
 *   convert-edm2        NVIDIA's EDM2 snapshot pickles (+ the SD VAE and TAESD
 *                       safetensors files) -> a pack  (converters/convert-edm2)
 *   convert-classifier  torchvision's ResNet-50 .pth or the Coral MobileNetV2
 *                       .tflite -> the pack's classifier (converters/convert-classifier)
 *
 * Each takes the Python converter's command-line arguments and writes the same
 * files (bit-identical tensors, the same pack.json fields); the Python
 * converters stay as the reference the tests compare against. */
#ifndef GFCG_CONVERT_H
#define GFCG_CONVERT_H

#include <glib.h>
#include <signal.h>
#include <stdio.h>

G_BEGIN_DECLS

/* TRUE when tool ("convert-edm2", ...) has a native implementation. */
gboolean gfcg_convert_is_native (const char *tool);

/* Runs tool with argv (its arguments, without the tool's name).  Progress
 * lines go to log; *cancel (may be NULL) non-zero stops the conversion.
 * Returns the exit status the Python converter would give: 0, 1 (a file that
 * cannot be read or written, interrupted), 2 (refused, not convertible, bad
 * arguments); on failure error says why, naming the file. */
int      gfcg_convert_run       (const char *tool, int argc, char **argv, FILE *log,
                                 volatile sig_atomic_t *cancel, GError **error);

/* TRUE when error says the arguments were wrong (not the files). */
gboolean gfcg_convert_error_is_usage (const GError *error);

/* Usage text of tool (for --help). */
const char *gfcg_convert_usage  (const char *tool);

G_END_DECLS

#endif
