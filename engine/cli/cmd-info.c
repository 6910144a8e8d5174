/* cmd-info.c — `gfcg info` and `gfcg devices`. */
#include "gfcg-cli.h"

int
cli_info (int argc, char **argv)
{
  char *pack_dir = NULL;
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name (default: the default pack)", "PACK" },
    { NULL }
  };
  GfcgContext *ctx;
  GfcgPack *pack;
  char *text;

  if (!cli_parse ("info", "", "Describes a model pack: components, sizes, defaults, classes.",
                  entries, &argc, &argv))
    return 2;
  if ((pack = cli_load_pack ("info", pack_dir, "cpu", &ctx)) == NULL)
    {
      g_free (pack_dir);
      return 1;
    }
  text = gfcg_pack_describe (pack);
  fputs (text, stdout);
  g_free (text);
  gfcg_pack_free (pack);
  gfcg_context_free (ctx);
  g_free (pack_dir);
  return 0;
}

int
cli_devices (int argc, char **argv)
{
  GOptionEntry entries[] = { { NULL } };
  if (!cli_parse ("devices", "", "Lists the compute devices --device accepts.", entries,
                  &argc, &argv))
    return 2;
  {
    char *text = gfcg_devices_describe ();
    fputs (text, stdout);
    g_free (text);
  }
  return 0;
}
