/* gfcg-cli.h — the `gfcg` command's subcommands share these helpers. */
#ifndef GFCG_CLI_H
#define GFCG_CLI_H

#include "gfcg/gfcg.h"

#include <stdio.h>

typedef struct
{
  const char *name;
  const char *summary;
  int       (*run) (int argc, char **argv);
  gboolean    computes;  /* runs networks: Ctrl-C through cli-signals.c */
} CliCommand;

int cli_sample   (int argc, char **argv);
int cli_denoise  (int argc, char **argv);
int cli_classify (int argc, char **argv);
int cli_info     (int argc, char **argv);
int cli_devices  (int argc, char **argv);
int cli_bench    (int argc, char **argv);
int cli_models   (int argc, char **argv);
int cli_convert  (int argc, char **argv);

/* Parses argv with the entries; prints the error and returns FALSE. */
gboolean     cli_parse     (const char *command, const char *params, const char *summary,
                            GOptionEntry *entries, int *argc, char ***argv);
/* Option values read as text, so that leaving an option out ("the pack's
 * default") differs from every value one can type.  NULL text: *out is left
 * as it is.  A number must be the whole text; the double is not range
 * checked (the engine does that, with the same ranges for every client),
 * the integer must lie in [lo, hi].  On error they print it and return FALSE. */
gboolean     cli_parse_double (const char *command, const char *option, const char *text,
                               double *out);
gboolean     cli_parse_int    (const char *command, const char *option, const char *text,
                               gint64 lo, gint64 hi, gint64 *out);
/* Prints "gfcg CMD: message" and returns the exit status 1. */
int          cli_fail      (const char *command, GError *error);

/* Ctrl-C (cli-signals.c): main() calls init before a command that runs
 * networks starts a thread (`models` and `convert` keep their own handler);
 * a command passes the cancellable that Ctrl-C should cancel (NULL: none, Ctrl-C
 * ends the process), and NULL again before freeing it. */
void         cli_signals_init             (void);
void         cli_signals_cancel_on_sigint (GCancellable *cancellable);
/* Loads the named pack (a folder, an installed pack's name, or NULL for
 * the default pack) on the named device. */
GfcgPack    *cli_load_pack (const char *command, const char *pack_dir, const char *device,
                            GfcgContext **ctx);

/* What `gfcg sample` starts from (cli-source.c): a picture and its mask
 * (--init, --mask), or a network-space state (--init-raw). */
typedef struct
{
  GfcgSource *source;
  float      *raw_init, *raw_mask;
} CliSource;

/* Reads the files given (any may be NULL) and points opt->init and
 * opt->mask at what they hold; errors name the file. */
gboolean     cli_source_load  (GfcgPack *pack, const char *init, const char *mask,
                               const char *init_raw, CliSource *src, GfcgSampleOptions *opt,
                               GError **error);
void         cli_source_clear (CliSource *src);

#endif
