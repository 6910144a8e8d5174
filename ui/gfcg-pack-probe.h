/* gfcg-pack-probe.h — what the dialog needs to know about a pack, found in a
 * worker thread: its classes, components and defaults, and the measured
 * cost of one network evaluation on the chosen device (for the estimate). */
#ifndef GFCG_PACK_PROBE_H
#define GFCG_PACK_PROBE_H

#include <gio/gio.h>
#include <gfcg/gfcg.h>
#include "gfcg-job.h"

G_BEGIN_DECLS

/* Seconds per evaluation: the fastest and slowest of the timed runs that
 * follow a warm-up run (0, 0 when there is no such network). */
typedef struct
{
  double lo, hi;
} GfcgProbeTime;

typedef struct
{
  char             *spec;         /* the `pack` argument as typed           */
  char             *dir;          /* as resolved from it                    */
  char             *device;
  GError           *error;        /* set when the pack or device failed     */

  char             *name, *title, *licence;
  int               resolution;
  int               n_classes;
  int              *imagenet;     /* [n_classes]                             */
  gboolean          has_guide, has_uncond, has_classifier;
  GfcgSampleOptions defaults;
  double            guidance[GFCG_N_MODES]; /* the pack's weight per mode    */

  GfcgProbeTime     t_main;       /* one evaluation of main                  */
  GfcgProbeTime     t_main2;      /* main at a batch of two                  */
  GfcgProbeTime     t_guide;      /* ... of guide (main's when absent)       */
  GfcgProbeTime     t_classifier; /* ... of the classifier (0 when absent)   */
  GfcgProbeTime     t_uncond;     /* ... of uncond (main's when absent)      */
  GfcgProbeTime     t_decoder;    /* one final decode (latent packs, else 0) */
  GfcgProbeTime     t_preview;    /* one quick decode of an estimate         */
  gsize             memory;       /* bytes: weights and one evaluation       */

  GfcgLoadedPack   *loaded;       /* the pack itself, for the job to take     */
} GfcgPackProbe;

/* Runs in a thread; the callback gets a GfcgPackProbe * to free. */
void     gfcg_pack_probe_async  (const char          *pack,
                                 const char          *device,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data);
GfcgPackProbe *gfcg_pack_probe_finish (GAsyncResult  *result);
void     gfcg_pack_probe_free   (GfcgPackProbe       *probe);

/* Estimated seconds for count pictures, as a range [*lo, *hi]: the fastest
 * and slowest measured cost of each network times how often the mode
 * evaluates it, plus the classifier's view and the decodes (the GFCG term
 * counts at every evaluation, an upper bound when the noise window is
 * narrower). */
void     gfcg_pack_probe_estimate (const GfcgPackProbe *probe,
                                   GfcgMode             mode,
                                   int                  steps,
                                   double               guidance,
                                   int                  count,
                                   double              *lo,
                                   double              *hi);

G_END_DECLS

#endif /* GFCG_PACK_PROBE_H */
