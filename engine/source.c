/* source.c — starting from a picture: a source picture and its mask mapped
 * onto the pack's canvas and network grid (the sampler's init and mask), and
 * the finished picture mapped back and composited at the source's size
 * (docs/pack-format.md, "Starting from a source"). */
#include "gfcg-private.h"

#include <math.h>
#include <string.h>

struct _GfcgSource
{
  int     width, height;     /* the source picture */
  guchar *rgb;               /* [height, width, 3] */
  float  *mask;              /* [height, width], NULL: everywhere */
  int     canvas;            /* the pack's resolution */
  int     fit_w, fit_h;      /* the picture on the canvas ... */
  int     off_x, off_y;      /* ... and where */
  int     channels, grid;    /* the network's [channels, grid, grid] */
  float  *init;              /* [channels, grid, grid] network space */
  float  *net_mask;          /* [grid, grid], NULL: everywhere */
};

/* ---- Resampling --------------------------------------------------------- */

/* Output pixel i of n_in -> n_out: a triangle filter with half-pixel centres,
 * widened by the scale when shrinking (PIL's and PyTorch's bilinear with
 * antialias, as the classifier's input preparation); enlarging, plain
 * align_corners=False bilinear; at the same size, the identity.  Writes
 * *lo and the normalised weights; returns their number. */
static int
taps (int i, int n_in, int n_out, int *lo, double *w)
{
  double scale = (double) n_in / n_out, support = MAX (scale, 1.0);
  double center = scale * (i + 0.5), total = 0.0;
  int first = MAX ((int) (center - support + 0.5), 0);
  int n = MIN ((int) (center + support + 0.5), n_in) - first;

  for (int j = 0; j < n; j++)
    {
      double t = fabs ((j + first - center + 0.5) / support);
      w[j] = t < 1.0 ? 1.0 - t : 0.0;
      total += w[j];
    }
  for (int j = 0; j < n; j++)
    w[j] = total > 0.0 ? w[j] / total : 0.0;
  *lo = first;
  return n;
}

/* src [sh, sw] (row stride src_stride) -> dst [dh, dw], separably in double. */
static void
resample (const float *src, int sw, int sh, gsize src_stride, float *dst, int dw, int dh)
{
  int max_x = (int) ceil (2.0 * MAX ((double) sw / dw, 1.0)) + 2;
  int max_y = (int) ceil (2.0 * MAX ((double) sh / dh, 1.0)) + 2;
  double *wx = g_new (double, (gsize) dw * max_x), *wy = g_new (double, max_y);
  int *x0 = g_new (int, dw), *nx = g_new (int, dw);
  double *rows = g_new (double, (gsize) sh * dw);

  for (int o = 0; o < dw; o++)
    nx[o] = taps (o, sw, dw, &x0[o], wx + (gsize) o * max_x);
  for (int y = 0; y < sh; y++)
    for (int o = 0; o < dw; o++)
      {
        const float *row = src + (gsize) y * src_stride + x0[o];
        double v = 0.0;
        for (int i = 0; i < nx[o]; i++)
          v += wx[(gsize) o * max_x + i] * row[i];
        rows[(gsize) y * dw + o] = v;
      }
  for (int o = 0; o < dh; o++)
    {
      int y0, n = taps (o, sh, dh, &y0, wy);
      for (int x = 0; x < dw; x++)
        {
          double v = 0.0;
          for (int j = 0; j < n; j++)
            v += wy[j] * rows[(gsize) (y0 + j) * dw + x];
          dst[(gsize) o * dw + x] = (float) v;
        }
    }
  g_free (wx);
  g_free (wy);
  g_free (x0);
  g_free (nx);
  g_free (rows);
}

/* ---- The mask on the network grid ------------------------------------------ */

typedef struct
{
  int     first, n;     /* source pixels the cell overlaps */
  double *overlap;      /* their overlap, in source pixels */
  double  length, inside;
} Cell;

/* Cell g of the grid (grid cells over a canvas of `canvas` pixels) in source
 * coordinates: the picture spans canvas [off, off + fit) for source [0, n). */
static void
cell_span (int g, int grid, int canvas, int off, int fit, int n, Cell *c)
{
  double k = (double) n / fit;
  double a = ((double) g * canvas / grid - off) * k;
  double b = ((double) (g + 1) * canvas / grid - off) * k;
  int lo = MAX ((int) floor (a), 0), hi = MIN ((int) ceil (b), n);

  c->length = b - a;
  c->first = lo;
  c->n = MAX (hi - lo, 0);
  c->overlap = g_new (double, MAX (c->n, 1));
  c->inside = 0.0;
  for (int i = 0; i < c->n; i++)
    {
      c->overlap[i] = MIN (b, lo + i + 1.0) - MAX (a, (double) (lo + i));
      c->inside += c->overlap[i];
    }
}

/* The area average of the mask over each grid cell; canvas outside the
 * picture counts as 1.  Values within 1e-6 of 0 or 1 are snapped to them. */
static float *
mask_to_grid (const GfcgSource *s)
{
  int g = s->grid;
  Cell *cx = g_new (Cell, g), *cy = g_new (Cell, g);
  float *m = g_new (float, (gsize) g * g);

  for (int i = 0; i < g; i++)
    {
      cell_span (i, g, s->canvas, s->off_x, s->fit_w, s->width, &cx[i]);
      cell_span (i, g, s->canvas, s->off_y, s->fit_h, s->height, &cy[i]);
    }
  for (int y = 0; y < g; y++)
    for (int x = 0; x < g; x++)
      {
        const Cell *a = &cx[x], *b = &cy[y];
        double sum = a->length * b->length - a->inside * b->inside, v;
        for (int j = 0; a->n > 0 && j < b->n; j++)
          {
            const float *row = s->mask + (gsize) (b->first + j) * s->width + a->first;
            double r = 0.0;
            for (int i = 0; i < a->n; i++)
              r += a->overlap[i] * row[i];
            sum += b->overlap[j] * r;
          }
        v = CLAMP (sum / (a->length * b->length), 0.0, 1.0);
        m[(gsize) y * g + x] = v < 1e-6 ? 0.0f : v > 1.0 - 1e-6 ? 1.0f : (float) v;
      }
  for (int i = 0; i < g; i++)
    {
      g_free (cx[i].overlap);
      g_free (cy[i].overlap);
    }
  g_free (cx);
  g_free (cy);
  return m;
}

/* ---- The source --------------------------------------------------------- */

/* Canvas pictures [3, R, R] in [-1, 1] -> network-space latents, through
 * the pack's encoder (the SD VAE's; TAESD's when it is the only one). */
static gboolean
encode (GfcgPack *pack, int grid, const float *rgb, float *latent, GError **error)
{
  int f;

  if (!gfcg_pack_has_encoder (pack))
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "pack '%s' has no encoder: it cannot start from a picture (converters/"
                   "convert-edm2 --encoder or --taesd-encoder adds one)", pack->name);
      return FALSE;
    }
  /* The encoder must land on the denoiser's grid: the latent is that big. */
  f = gfcg_pack_encode (pack, "encoder", 1, pack->resolution, pack->resolution, rgb, NULL, error);
  if (f < 1 || pack->resolution % f != 0 || pack->resolution / f != grid)
    {
      if (f >= 1)
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_MODEL,
                     "pack '%s': its encoder makes %dx%d latents of a %d-px picture, and the "
                     "main network's grid is %dx%d", pack->name, pack->resolution / f,
                     pack->resolution / f, pack->resolution, grid, grid);
      return FALSE;
    }
  return gfcg_pack_encode (pack, "encoder", 1, pack->resolution, pack->resolution, rgb, latent,
                           error) > 0;
}

/* The picture on the canvas, [3, R, R] in [-1, 1]: scaled into its place,
 * the edge pixels repeated around it. */
static float *
canvas_picture (const GfcgSource *s)
{
  int r = s->canvas, fw = s->fit_w, fh = s->fit_h;
  gsize n = (gsize) s->width * s->height;
  float *plane = g_new (float, n), *fit = g_new (float, (gsize) fw * fh);
  float *pic = g_new (float, (gsize) 3 * r * r);

  for (int c = 0; c < 3; c++)
    {
      float *dst = pic + (gsize) c * r * r;
      for (gsize p = 0; p < n; p++)
        plane[p] = (float) (s->rgb[p * 3 + c] / 127.5 - 1.0);
      resample (plane, s->width, s->height, s->width, fit, fw, fh);
      for (int y = 0; y < r; y++)
        for (int x = 0; x < r; x++)
          {
            int fx = CLAMP (x - s->off_x, 0, fw - 1), fy = CLAMP (y - s->off_y, 0, fh - 1);
            dst[(gsize) y * r + x] = fit[(gsize) fy * fw + fx];
          }
    }
  g_free (plane);
  g_free (fit);
  return pic;
}

GfcgSource *
gfcg_source_new (GfcgPack *pack, const guchar *rgb, int width, int height, const float *mask,
                 GError **error)
{
  const DenoiserInfo *m = denoiser_info (pack->main);
  GfcgSource *s;
  gsize n = (gsize) width * height;
  float *pic;

  if (width < 1 || height < 1 || n > GFCG_MAX_IMAGE_PIXELS)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "a source picture of %dx%d pixels: it must have 1 to %u pixels", width,
                   height, GFCG_MAX_IMAGE_PIXELS);
      return NULL;
    }
  for (gsize i = 0; mask != NULL && i < n; i++)
    if (!(mask[i] >= 0.0f && mask[i] <= 1.0f))
      {
        g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                     "mask value %g at (%d, %d): a mask lies in [0, 1]", (double) mask[i],
                     (int) (i % width), (int) (i / width));
        return NULL;
      }
  s = g_new0 (GfcgSource, 1);
  s->width = width;
  s->height = height;
  s->rgb = g_memdup2 (rgb, n * 3);
  s->mask = mask != NULL ? g_memdup2 (mask, n * sizeof (float)) : NULL;
  s->canvas = pack->resolution;
  s->channels = m->channels;
  s->grid = m->resolution;
  /* Scaled to fit, aspect kept (the longer side fills the canvas), centred. */
  s->fit_w = width >= height ? s->canvas
             : MAX (1, (int) lround ((double) width * s->canvas / height));
  s->fit_h = height >= width ? s->canvas
             : MAX (1, (int) lround ((double) height * s->canvas / width));
  s->off_x = (s->canvas - s->fit_w) / 2;
  s->off_y = (s->canvas - s->fit_h) / 2;

  pic = canvas_picture (s);
  if (pack->kind == PACK_LATENT)
    {
      s->init = g_new (float, (gsize) s->channels * s->grid * s->grid);
      if (!encode (pack, s->grid, pic, s->init, error))
        {
          g_free (pic);
          gfcg_source_free (s);
          return NULL;
        }
      g_free (pic);
    }
  else
    s->init = pic; /* pixel packs: the canvas is the network grid */
  if (s->mask != NULL)
    s->net_mask = mask_to_grid (s);
  return s;
}

void
gfcg_source_free (GfcgSource *s)
{
  if (s == NULL)
    return;
  g_free (s->rgb);
  g_free (s->mask);
  g_free (s->init);
  g_free (s->net_mask);
  g_free (s);
}

int gfcg_source_get_width (const GfcgSource *s) { return s->width; }

int gfcg_source_get_height (const GfcgSource *s) { return s->height; }

void
gfcg_source_apply (const GfcgSource *s, GfcgSampleOptions *o)
{
  o->init = s->init;
  o->mask = s->net_mask;
}

guchar *
gfcg_source_composite (const GfcgSource *s, const GfcgImage *img, GError **error)
{
  int w = s->width, h = s->height, r = s->canvas;
  gsize n = (gsize) w * h;
  guchar *out;
  float *plane, *back;

  if (img->trace->len == 0)
    return g_memdup2 (s->rgb, n * 3); /* no step ran: the source itself */
  if (img->width != r || img->height != r)
    {
      g_set_error (error, GFCG_ERROR, GFCG_ERROR_INVALID_ARGUMENT,
                   "a %dx%d picture cannot go back onto a source mapped to a %dx%d canvas",
                   img->width, img->height, r, r);
      return NULL;
    }
  out = g_new (guchar, n * 3);
  plane = g_new (float, (gsize) r * r);
  back = g_new (float, n);
  for (int c = 0; c < 3; c++)
    {
      for (gsize p = 0; p < (gsize) r * r; p++)
        plane[p] = img->rgb[p * 3 + c];
      resample (plane + (gsize) s->off_y * r + s->off_x, s->fit_w, s->fit_h, r, back, w, h);
      for (gsize p = 0; p < n; p++)
        {
          double m = s->mask != NULL ? s->mask[p] : 1.0, v;
          guchar src = s->rgb[p * 3 + c];
          if (m <= 0.0)
            {
              out[p * 3 + c] = src;
              continue;
            }
          v = m * back[p] + (1.0 - m) * src;
          out[p * 3 + c] = (guchar) CLAMP (floor (v + 0.5), 0.0, 255.0);
        }
    }
  g_free (plane);
  g_free (back);
  return out;
}
