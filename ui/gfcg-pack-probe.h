/* gfcg-pack-probe.h — what the dialog needs to know about a pack, found in a
 * worker thread: its classes, components and defaults, and the measured
 * cost of one network evaluation on the chosen device (for the estimate). */
#ifndef GFCG_PACK_PROBE_H
#define GFCG_PACK_PROBE_H

#include <gio/gio.h>
#include <gfcg/gfcg.h>
#include "gfcg-job.h"

G_BEGIN_DECLS

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

  double            t_main;       /* seconds per evaluation of main          */
  double            t_guide;      /* ... of guide (0 when absent)            */
  double            t_classifier; /* ... of the classifier (0 when absent)   */
  double            t_uncond;     /* ... of uncond (main's when absent)      */
  double            t_decoder;    /* one final decode (latent packs, else 0) */
  double            t_preview;    /* one quick decode of an estimate         */
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

/* Estimated seconds for count pictures: the measured cost of each network
 * times how often the mode evaluates it (the GFCG term counts at every
 * evaluation, an upper bound when the noise window is narrower). */
double   gfcg_pack_probe_estimate (const GfcgPackProbe *probe,
                                   GfcgMode             mode,
                                   int                  steps,
                                   double               guidance,
                                   int                  count);

G_END_DECLS

#endif /* GFCG_PACK_PROBE_H */
