/* cmd-classify.c — `gfcg classify`: the pack's classifier on PNG files, the
 * K most likely classes of each.
 *
 * An ImageNet-space classifier (label_space "imagenet") scores all 1000
 * classes, so all 1000 are ranked, with probabilities over the 1000: a
 * picture the classifier calls "goldfish" must not be reported as the most
 * goldfish-like of the pack's four classes.  Each row says whether the pack
 * can draw the class ("pack:N", its pack index) or not ("-").  A pack-space
 * classifier knows only the pack's classes and ranks those. */
#include "gfcg-cli.h"

#include <math.h>
#include <stdlib.h>

typedef struct
{
  double p;
  int    imagenet;
  int    pack_class;   /* -1: the pack cannot draw it */
} ClassifyRow;

/* Most likely first; of equal probability, the lower ImageNet index, so the
 * order does not depend on qsort's whims. */
static int
row_compare (const void *a, const void *b)
{
  const ClassifyRow *x = a, *y = b;
  if (x->p != y->p)
    return x->p < y->p ? 1 : -1;
  return (x->imagenet > y->imagenet) - (x->imagenet < y->imagenet);
}

/* Fills rows (1000 of them, or the pack's n_classes) for one picture x
 * [1, 3, h, w]; returns how many, or -1 with error set. */
static int
classify_rows (GfcgPack *pack, int h, int w, const float *x, ClassifyRow *rows, GError **error)
{
  int n;

  if (gfcg_pack_classifier_is_imagenet (pack))
    {
      float logits[1000];
      double mx = -INFINITY, sum = 0.0;
      /* Softmax in double, as the engine's own over the pack's classes. */
      if ((n = gfcg_pack_classify (pack, 1, h, w, x, logits, error)) != 1000)
        return -1;
      for (int i = 0; i < n; i++)
        mx = MAX (mx, logits[i]);
      for (int i = 0; i < n; i++)
        sum += rows[i].p = exp ((double) logits[i] - mx);
      for (int i = 0; i < n; i++)
        {
          rows[i].p /= sum;
          rows[i].imagenet = i;
          rows[i].pack_class = gfcg_pack_class_from_imagenet (pack, i);
        }
    }
  else
    {
      float *p;
      n = gfcg_pack_get_n_classes (pack);
      p = g_new (float, n);
      if (!gfcg_pack_class_probs (pack, 1, h, w, x, p, error))
        n = -1;
      for (int k = 0; k < n; k++)
        {
          rows[k].p = p[k];
          rows[k].pack_class = k;
          gfcg_pack_get_class (pack, k, &rows[k].imagenet, NULL, NULL);
        }
      g_free (p);
    }
  if (n > 0)
    qsort (rows, n, sizeof *rows, row_compare);
  return n;
}

static void
print_row (GfcgPack *pack, const ClassifyRow *r)
{
  const char *name = NULL;
  char where[32] = "-";

  if (r->pack_class >= 0)
    {
      g_snprintf (where, sizeof where, "pack:%d", r->pack_class);
      gfcg_pack_get_class (pack, r->pack_class, NULL, NULL, &name);
    }
  if (name == NULL)
    name = gfcg_imagenet_name (r->imagenet);
  printf ("  %6.2f%%  inet:%-4d %-8s %s\n", 100.0 * r->p, r->imagenet, where,
          name != NULL ? name : "?");
}

int
cli_classify (int argc, char **argv)
{
  char *pack_dir = NULL, *device = NULL, *top_text = NULL;
  GOptionEntry entries[] = {
    { "pack", 'p', 0, G_OPTION_ARG_FILENAME, &pack_dir, "Model pack folder or installed pack name (default: the default pack)", "PACK" },
    { "top", 'k', 0, G_OPTION_ARG_STRING, &top_text, "How many classes to list (1..1000, default 5)", "K" },
    { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "auto, cpu, cpu:bf16 or opencl:N[:fp16]", "DEV" },
    { NULL }
  };
  GfcgContext *ctx = NULL;
  GfcgPack *pack = NULL;
  GError *error = NULL;
  ClassifyRow *rows = NULL;
  gint64 top = 5;
  int status = 0;

  if (!cli_parse ("classify", "PNG...", "Prints the most likely classes of each picture by the "
                  "pack's classifier: all 1000 ImageNet classes ranked when it is an ImageNet "
                  "classifier, each marked pack:N when the pack can draw it and - when not.",
                  entries, &argc, &argv))
    return 2;
  if (!cli_parse_int ("classify", "--top", top_text, 1, 1000, &top))
    {
      status = 2;
      goto done;
    }
  if (argc < 2)
    {
      g_printerr ("gfcg classify: name at least one PNG file\n");
      status = 2;
      goto done;
    }
  if ((pack = cli_load_pack ("classify", pack_dir, device, &ctx)) == NULL)
    {
      status = 1;
      goto done;
    }
  rows = g_new (ClassifyRow, MAX (1000, gfcg_pack_get_n_classes (pack)));
  for (int i = 1; i < argc; i++)
    {
      int w, h, n;
      guchar *rgb = gfcg_read_png (argv[i], &w, &h, &error);
      float *x;

      if (rgb == NULL)
        {
          status = cli_fail ("classify", error);
          error = NULL;
          continue;
        }
      x = g_new (float, (gsize) 3 * w * h);
      for (gsize q = 0; q < (gsize) w * h; q++)
        for (int c = 0; c < 3; c++)
          x[(gsize) c * w * h + q] = rgb[q * 3 + c] / 127.5f - 1.0f;
      if ((n = classify_rows (pack, h, w, x, rows, &error)) < 0)
        {
          status = cli_fail ("classify", error);
          error = NULL;
        }
      else
        {
          printf ("%s:\n", argv[i]);
          for (int r = 0; r < MIN (top, n); r++)
            print_row (pack, &rows[r]);
        }
      g_free (x);
      g_free (rgb);
    }

done:
  g_free (rows);
  gfcg_pack_free (pack);
  gfcg_context_free (ctx);
  g_free (pack_dir);
  g_free (device);
  g_free (top_text);
  return status;
}
