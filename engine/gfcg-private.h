/* gfcg-private.h — what the engine's files share and clients never see. */
#ifndef GFCG_PRIVATE_H
#define GFCG_PRIVATE_H

#include "gfcg/gfcg.h"
#include "backend.h"
#include "safetensors.h"

#include <json-glib/json-glib.h>

struct _GfcgContext
{
  GfcgBackend *be;
  char        *device;
};

/* ---- EDM2 UNet (edm2.c) ---- */

typedef struct _Edm2Net Edm2Net;

Edm2Net *edm2_load        (GfcgBackend *be, JsonObject *config, const char *file,
                           const char *component, GError **error);
void     edm2_free        (Edm2Net *net);
int      edm2_label_dim   (const Edm2Net *net);
int      edm2_channels    (const Edm2Net *net);
int      edm2_resolution  (const Edm2Net *net);
gsize    edm2_n_params    (const Edm2Net *net);
guint    edm2_n_unused    (const Edm2Net *net);
/* D(x; sigma, labels) for a batch, host arrays in and out.  labels may be
 * NULL (zero labels); ignored for unconditional nets. */
gboolean edm2_denoise     (Edm2Net *net, int n, const float *x, const double *sigma,
                           const float *labels, float *out, GError **error);

/* ---- classifiers (classifier.c: common input handling; one file per arch) ---- */

typedef struct _Classifier Classifier;

/* One classifier architecture.  classifier.c reads the common config (input
 * size, normalisation, label space), prepares the input image and calls
 * forward on it; an arch only builds its network. */
typedef struct
{
  const char *name;                          /* pack.json "arch" */
  /* Reads the arch's own config and weights.  n_outputs is the number of
   * logits forward must produce; *n_params gets the parameter count. */
  gpointer    (*load)    (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st,
                          int n_outputs, gsize *n_params, GError **error);
  /* Prepared input [n, 3, R, R] -> raw logits [n, n_outputs]. */
  GfcgTensor *(*forward) (gpointer net, const GfcgTensor *x);
  void        (*free)    (gpointer net);
} ClassifierArch;

extern const ClassifierArch classifier_arch_resnet_cnn;   /* cls-resnet-cnn.c */

Classifier *classifier_load    (GfcgBackend *be, const char *arch, JsonObject *config,
                                const char *file, GError **error);
void        classifier_free    (Classifier *c);
int         classifier_n_outputs (const Classifier *c);
gboolean    classifier_imagenet_space (const Classifier *c);
int         classifier_resolution (const Classifier *c);
gsize       classifier_n_params (const Classifier *c);
const char *classifier_arch    (const Classifier *c);
/* Logits [n, n_outputs] for images x [n, C, H, W] in [-1, 1]. */
gboolean    classifier_logits  (Classifier *c, int n, int channels, int h, int w,
                                const float *x, float *logits, GError **error);

/* ---- packs (pack.c) ---- */

typedef struct
{
  int   imagenet;
  char *wnid;
  char *name;
} PackClass;

struct _GfcgPack
{
  GfcgContext *ctx;
  char        *dir, *name, *title, *licence, *source, *kind;
  int          resolution, channels;
  int          n_classes;
  PackClass   *classes;
  Edm2Net     *main, *guide, *uncond;
  Classifier  *classifier;
  gboolean     has_decoder;
  JsonObject  *defaults;    /* may be NULL */
};

Edm2Net *pack_net (GfcgPack *pack, const char *net, GError **error);

/* ---- config helpers (pack.c) ---- */

gboolean cfg_int     (JsonObject *o, const char *key, int def, gboolean required, int lo,
                      int hi, int *out, const char *where, GError **error);
gboolean cfg_double  (JsonObject *o, const char *key, double def, gboolean required,
                      double *out, const char *where, GError **error);
/* Integer list; *out newly allocated, *n its length. */
gboolean cfg_int_list (JsonObject *o, const char *key, gboolean required, int lo, int hi,
                       int **out, int *n, const char *where, GError **error);

/* ---- weights (weights.c) ---- */

/* Reads a tensor of the expected shape and uploads it. */
GfcgTensor *weight_load     (GfcgBackend *be, GfcgSafetensors *st, const char *name,
                             int ndim, const gint64 *shape, GError **error);
/* EDM2 weight normalisation: per output row, gain * W / (sqrt(N) eps + ||W||). */
GfcgTensor *weight_load_mp  (GfcgBackend *be, GfcgSafetensors *st, const char *name,
                             int ndim, const gint64 *shape, float gain, GError **error);
gboolean    scalar_load     (GfcgSafetensors *st, const char *name, float *out, GError **error);

/* ---- noise (rng.c) ---- */

void gfcg_rng_normal (guint64 seed, float *out, gsize n);

/* ---- quantisation (sampler.c) ---- */

void gfcg_to_rgb8 (const float *chw, int channels, int h, int w, guchar *rgb);

#endif
