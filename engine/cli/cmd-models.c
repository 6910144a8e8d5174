/* cmd-models.c — `gfcg models list|fetch|verify|remove`: the published model
 * packs of the catalog, fetched, converted and installed in the user's data
 * folder (the work is in manager/). */
#include "gfcg-cli.h"
#include "models.h"

#ifdef GFCG_HAVE_CURL
#include <curl/curl.h>
#endif
#include <string.h>

static Catalog *
load_catalog (const char *command, const char *path)
{
  char    *p = path != NULL ? g_strdup (path) : gfcg_models_catalog_path ();
  GError  *err = NULL;
  Catalog *cat = catalog_load (p, &err);

  if (cat == NULL)
    cli_fail (command, err);
  g_free (p);
  return cat;
}

static gboolean
is_installed_here (const char *name)
{
  char    *top = gfcg_models_dir ();
  char    *json = g_build_filename (top, name, "pack.json", NULL);
  gboolean ok = g_file_test (json, G_FILE_TEST_IS_REGULAR);

  g_free (json);
  g_free (top);
  return ok;
}

/* The folder of a pack of that name shipped beside the default pack, else NULL. */
static char *
shipped_pack (const char *name)
{
  char *def = gfcg_default_pack_dir (), *parent = g_path_get_dirname (def);
  char *top = gfcg_models_dir ();
  char *dir = g_build_filename (parent, name, NULL);
  char *json = g_build_filename (dir, "pack.json", NULL);

  if (strcmp (parent, top) == 0 || !g_file_test (json, G_FILE_TEST_IS_REGULAR))
    g_clear_pointer (&dir, g_free);
  g_free (json);
  g_free (top);
  g_free (parent);
  g_free (def);
  return dir;
}

static int
models_list (int argc, char **argv)
{
  char        *catalog = NULL;
  GOptionEntry entries[] = {
    { "catalog", 0, 0, G_OPTION_ARG_FILENAME, &catalog, "Catalog file (default: $GFCG_CATALOG, else the installed one)", "FILE" },
    { NULL }
  };
  Catalog     *cat;
  char       **installed, *top;
  GHashTable  *listed = g_hash_table_new (g_str_hash, g_str_equal);
  gboolean     others = FALSE;

  if (!cli_parse ("models list", "", "Lists the packs of the catalog and whether they are installed.",
                  entries, &argc, &argv))
    return 2;
  if ((cat = load_catalog ("models list", catalog)) == NULL)
    return 1;
  models_sweep_stale ();
  top = gfcg_models_dir ();
  printf ("Catalog %s; packs install into %s\n\n", cat->path, top);
  for (guint i = 0; i < cat->packs->len; i++)
    {
      CatalogPack *p = cat->packs->pdata[i];
      gboolean     exact;
      gint64       dl = catalog_pack_download_size (p, &exact);
      char        *dls = models_format_size (dl), *ins = models_format_size (p->installed_size);

      g_hash_table_add (listed, p->name);
      printf ("%-18s %-14s download %s%s, installed %s%s\n", p->name,
              is_installed_here (p->name) ? "installed" : "not installed",
              exact ? "" : "~", dls, p->installed_size >= 0 ? "~" : "", ins);
      if (p->title != NULL)
        printf ("    %s\n", p->title);
      if (p->n_classes > 0 && p->resolution > 0)
        printf ("    draws: %d ImageNet class%s at %dx%d px\n", p->n_classes,
                p->n_classes == 1 ? "" : "es", p->resolution, p->resolution);
      printf ("    licence: %s\n", p->licence != NULL ? p->licence : "not stated");
      if (p->memory != NULL)
        printf ("    memory: %s\n", p->memory);
      if (p->time != NULL)
        printf ("    time: %s\n", p->time);
      g_free (dls);
      g_free (ins);
    }
  installed = gfcg_installed_packs ();
  for (char **d = installed; *d != NULL; d++)
    {
      char *name = g_path_get_basename (*d);

      if (!g_hash_table_contains (listed, name))
        {
          if (!others)
            printf ("\nOther packs (not in the catalog):\n");
          others = TRUE;
          printf ("%-18s %-14s %s\n", name, "installed", *d);
        }
      g_free (name);
    }
  printf ("\nFetch one with `gfcg models fetch NAME`, then `gfcg sample --pack NAME ...`.\n");
  g_strfreev (installed);
  g_hash_table_unref (listed);
  g_free (top);
  catalog_free (cat);
  g_free (catalog);
  return 0;
}

static int
models_fetch (int argc, char **argv)
{
  char        *catalog = NULL;
  gboolean     force = FALSE, quiet = FALSE;
  GOptionEntry entries[] = {
    { "catalog", 0, 0, G_OPTION_ARG_FILENAME, &catalog, "Catalog file (default: $GFCG_CATALOG, else the installed one)", "FILE" },
    { "force", 'f', 0, G_OPTION_ARG_NONE, &force, "Install again over an installed pack", NULL },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress on stderr", NULL },
    { NULL }
  };
  Catalog     *cat;
  int          status = 0;

  if (!cli_parse ("models fetch", "NAME...",
                  "Downloads a pack's files (resuming an interrupted download), checks their "
                  "checksums, converts them and installs the pack in $XDG_DATA_HOME/gfcg/models. "
                  "Ctrl-C stops cleanly: the partial download is kept, nothing half-installed.",
                  entries, &argc, &argv))
    return 2;
  if (argc < 2)
    {
      g_printerr ("gfcg models fetch: name the pack to fetch (see gfcg models list)\n");
      return 2;
    }
  if ((cat = load_catalog ("models fetch", catalog)) == NULL)
    return 1;
  models_catch_signals ();
#ifdef GFCG_HAVE_CURL
  curl_global_init (CURL_GLOBAL_DEFAULT);
#endif
  for (int i = 1; i < argc && status == 0; i++)
    {
      CatalogPack *p = catalog_find_pack (cat, argv[i]);
      GError      *err = NULL;
      char        *top = gfcg_models_dir (), *shadow = NULL;

      if (p == NULL)
        {
          g_printerr ("gfcg models fetch: no pack '%s' in the catalog %s (see gfcg models list)\n",
                      argv[i], cat->path);
          status = 1;
        }
      else if ((shadow = shipped_pack (p->name)) != NULL)
        {
          /* --pack NAME would keep finding the shipped one. */
          g_printerr ("gfcg models fetch: a pack named '%s' already comes with gfcg (%s)\n",
                      p->name, shadow);
          status = 1;
        }
      else if (is_installed_here (p->name) && !force)
        printf ("%s is already installed in %s/%s (`gfcg models verify %s` checks it; "
                "--force installs it again)\n", p->name, top, p->name, p->name);
      else
        {
          if (!quiet)
            g_printerr ("Fetching %s%s%s\n  licence: %s\n", p->name, p->title != NULL ? ": " : "",
                        p->title != NULL ? p->title : "", p->licence != NULL ? p->licence : "not stated");
          if (models_install (cat, p, force, quiet, &err))
            printf ("installed %s in %s/%s\n", p->name, top, p->name);
          else
            {
              g_printerr ("gfcg models fetch: %s: %s%s\n", p->name, err->message,
                          g_error_matches (err, GFCG_ERROR, GFCG_ERROR_CANCELLED)
                          ? " (nothing installed)" : "");
              g_clear_error (&err);
              status = 1;
            }
        }
      g_free (shadow);
      g_free (top);
    }
#ifdef GFCG_HAVE_CURL
  curl_global_cleanup ();
#endif
  catalog_free (cat);
  g_free (catalog);
  return status;
}

static int
models_verify_cmd (int argc, char **argv)
{
  GOptionEntry entries[] = { { NULL } };
  char       **dirs;
  int          status = 0;

  if (!cli_parse ("models verify", "[NAME...]",
                  "Checks installed packs: each loads, and its files match the checksums "
                  "recorded when it was installed.  Without names, every installed pack.",
                  entries, &argc, &argv))
    return 2;
  models_catch_signals ();
  if (argc > 1)
    {
      dirs = g_new0 (char *, argc);
      for (int i = 1; i < argc; i++)
        {
          GError *err = NULL;

          if ((dirs[i - 1] = gfcg_pack_resolve (argv[i], &err)) == NULL)
            {
              g_strfreev (dirs);
              return cli_fail ("models verify", err);
            }
        }
    }
  else
    dirs = gfcg_installed_packs ();
  for (char **d = dirs; *d != NULL && !models_interrupted; d++)
    {
      char   *report = NULL;
      GError *err = NULL;

      if (models_verify (*d, &report, &err))
        printf ("%s: %s\n", *d, report);
      else
        {
          printf ("%s: FAILED: %s\n", *d, err->message);
          g_clear_error (&err);
          status = 1;
        }
      g_free (report);
    }
  if (models_interrupted)
    status = 1;
  g_strfreev (dirs);
  return status;
}

static int
models_remove_cmd (int argc, char **argv)
{
  GOptionEntry entries[] = { { NULL } };
  int          status = 0;

  if (!cli_parse ("models remove", "NAME...",
                  "Deletes packs installed by `gfcg models fetch` (the download cache stays).",
                  entries, &argc, &argv))
    return 2;
  if (argc < 2)
    {
      g_printerr ("gfcg models remove: name the pack to remove\n");
      return 2;
    }
  for (int i = 1; i < argc; i++)
    {
      GError *err = NULL;

      if (models_remove (argv[i], &err))
        printf ("removed %s\n", argv[i]);
      else
        status = cli_fail ("models remove", err);
    }
  return status;
}

static const CliCommand subcommands[] = {
  { "list", "the catalog's packs, installed or not", models_list },
  { "fetch", "download, check, convert and install a pack", models_fetch },
  { "verify", "check installed packs against their install checksums", models_verify_cmd },
  { "remove", "delete an installed pack", models_remove_cmd },
};

int
cli_models (int argc, char **argv)
{
  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      FILE *f = argc < 2 ? stderr : stdout;

      fprintf (f, "Usage: gfcg models COMMAND [OPTION...]\n\nThe published model packs "
                  "(catalog: $GFCG_CATALOG or --catalog).\n\nCommands:\n");
      for (guint i = 0; i < G_N_ELEMENTS (subcommands); i++)
        fprintf (f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
      return argc < 2 ? 2 : 0;
    }
  for (guint i = 0; i < G_N_ELEMENTS (subcommands); i++)
    if (strcmp (argv[1], subcommands[i].name) == 0)
      {
        char *name = g_strdup_printf ("gfcg models %s", argv[1]);
        int   status;

        argv[1] = name;
        status = subcommands[i].run (argc - 1, argv + 1);
        g_free (name);
        return status;
      }
  g_printerr ("gfcg models: unknown command '%s' (list, fetch, verify, remove)\n", argv[1]);
  return 2;
}
