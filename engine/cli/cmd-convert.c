/* cmd-convert.c — `gfcg convert edm2|classifier ARGS`: the native converters
 * (manager/convert/) on the command line, with the options of the Python
 * converters/convert-edm2 and converters/convert-classifier they mirror.
 * Exit status as theirs: 0, 1 (a file that cannot be read or written), 2
 * (refused, not convertible, bad arguments). */
#include "gfcg-cli.h"
#include "convert.h"
#include "models.h"

#include <string.h>

static void
usage (FILE *f)
{
  fprintf (f, "Usage: gfcg convert edm2|classifier [OPTION...]\n\n"
              "Converts published checkpoints into model packs, natively (no Python), without\n"
              "running anything the files name:\n"
              "  edm2        NVIDIA's EDM2 snapshot pickles (+ SD VAE / TAESD safetensors) -> a pack\n"
              "              (the options of converters/convert-edm2)\n"
              "  classifier  torchvision's ResNet-50 .pth or the Coral MobileNetV2 .tflite -> the\n"
              "              pack's classifier (the options of converters/convert-classifier)\n\n"
              "`gfcg convert edm2 --help` lists the options.\n");
}

int
cli_convert (int argc, char **argv)
{
  const char *tool;
  char       *command;
  GError     *error = NULL;
  int         status;

  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      usage (argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
  if (strcmp (argv[1], "edm2") == 0)
    tool = "convert-edm2";
  else if (strcmp (argv[1], "classifier") == 0)
    tool = "convert-classifier";
  else
    {
      g_printerr ("gfcg convert: unknown converter '%s' (edm2 or classifier)\n", argv[1]);
      return 2;
    }
  command = g_strdup_printf ("convert %s", argv[1]);
  models_catch_signals ();
  status = gfcg_convert_run (tool, argc - 2, argv + 2, stdout, &models_interrupted, &error);
  if (error != NULL)
    {
      g_printerr ("gfcg %s: %s\n", command, error->message);
      if (gfcg_convert_error_is_usage (error))
        g_printerr ("(see gfcg %s --help)\n", command);
      g_error_free (error);
    }
  g_free (command);
  return status;
}
