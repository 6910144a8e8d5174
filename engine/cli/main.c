/* main.c — `gfcg`: the engine on the command line.  Each subcommand is one
 * file (cmd-*.c); this one dispatches and holds the shared helpers. */
#include "gfcg-cli.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

static const CliCommand commands[] = {
  { "sample", "draw a picture of a class", cli_sample, TRUE },
  { "denoise", "evaluate one network of a pack on tensors (parity hook)", cli_denoise, TRUE },
  { "classify", "most likely classes of PNG files by the pack's classifier", cli_classify, TRUE },
  { "info", "what a model pack holds", cli_info, TRUE },
  { "devices", "list the compute devices", cli_devices, TRUE },
  { "bench", "time network evaluations on a device", cli_bench, TRUE },
  { "models", "list, fetch, verify and remove the published model packs", cli_models },
  { "convert", "turn published checkpoints into packs (natively, no Python)", cli_convert },
};

static void
usage (FILE *f)
{
  fprintf (f, "Usage: gfcg COMMAND [OPTION...]\n\n"
              "Samples EDM2 diffusion models with gradient-free classifier guidance.\n\nCommands:\n");
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (f, "\n`gfcg COMMAND --help` describes each one.  Version %s.\n", gfcg_version ());
}

gboolean
cli_parse (const char *command, const char *params, const char *summary, GOptionEntry *entries,
           int *argc, char ***argv)
{
  char *title = g_strdup_printf ("%s", params);
  GOptionContext *oc = g_option_context_new (title);
  GError *error = NULL;
  gboolean ok;

  g_option_context_set_summary (oc, summary);
  g_option_context_add_main_entries (oc, entries, NULL);
  ok = g_option_context_parse (oc, argc, argv, &error);
  if (!ok)
    {
      g_printerr ("gfcg %s: %s (see gfcg %s --help)\n", command, error->message, command);
      g_error_free (error);
    }
  g_option_context_free (oc);
  g_free (title);
  return ok;
}

gboolean
cli_parse_double (const char *command, const char *option, const char *text, double *out)
{
  char *end;
  double v;
  if (text == NULL)
    return TRUE;
  /* g_strtod: the C locale's '.' and the user's decimal separator alike. */
  v = g_strtod (text, &end);
  if (*text == '\0' || g_ascii_isspace (*text) || *end != '\0')
    {
      g_printerr ("gfcg %s: --%s: '%s' is not a number\n", command, option, text);
      return FALSE;
    }
  *out = v;
  return TRUE;
}

gboolean
cli_parse_int (const char *command, const char *option, const char *text, gint64 lo,
               gint64 hi, gint64 *out)
{
  GError *error = NULL;
  gint64 v;
  if (text == NULL)
    return TRUE;
  if (!g_ascii_string_to_signed (text, 10, lo, hi, &v, &error))
    {
      g_printerr ("gfcg %s: --%s: %s\n", command, option, error->message);
      g_error_free (error);
      return FALSE;
    }
  *out = v;
  return TRUE;
}

int
cli_fail (const char *command, GError *error)
{
  g_printerr ("gfcg %s: %s\n", command, error != NULL ? error->message : "failed");
  g_clear_error (&error);
  return 1;
}

GfcgPack *
cli_load_pack (const char *command, const char *pack_dir, const char *device, GfcgContext **ctx)
{
  GError *error = NULL;
  /* A folder, or the name of an installed pack (`gfcg models fetch`). */
  char *dir = gfcg_pack_resolve (pack_dir, &error);
  GfcgPack *pack = NULL;

  *ctx = NULL;
  if (dir != NULL)
    *ctx = gfcg_context_new (device, &error);
  if (*ctx != NULL)
    pack = gfcg_pack_load (*ctx, dir, &error);
  if (pack == NULL)
    {
      cli_fail (command, error);
      g_clear_pointer (ctx, gfcg_context_free);
    }
  g_free (dir);
  return pack;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 ||
      strcmp (argv[1], "help") == 0)
    {
      usage (stdout);
      return argc < 2 ? 2 : 0;
    }
  if (strcmp (argv[1], "--version") == 0)
    {
      printf ("gfcg %s\n", gfcg_version ());
      return 0;
    }
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      {
        /* The subcommand sees "gfcg-sample ARGS" so --help reads well. */
        char *name = g_strdup_printf ("gfcg %s", argv[1]);
        int status;
        if (commands[i].computes)
          cli_signals_init ();
        argv[1] = name;
        status = commands[i].run (argc - 1, argv + 1);
        g_free (name);
        return status;
      }
  g_printerr ("gfcg: unknown command '%s'\n\n", argv[1]);
  usage (stderr);
  return 2;
}
