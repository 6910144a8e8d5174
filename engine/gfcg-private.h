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
extern const ClassifierArch classifier_arch_mobilenet_v2; /* cls-mobilenet-v2.c */
extern const ClassifierArch classifier_arch_resnet50;     /* cls-resnet50.c */

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

/* ---- latent decoders (decoder.c: the latent-to-picture chain; one file per arch) ---- */

#define GFCG_MAX_LATENT_CHANNELS 16

typedef struct _Decoder Decoder;

/* One decoder architecture: it builds the network; decoder.c maps latents
 * in and pictures out with the constants below. */
typedef struct
{
  const char *name;                  /* pack.json "arch" */
  double      latent_scale;          /* default: raw SD latent -> network input */
  float       out_scale, out_shift;  /* network output -> SD VAE decoder units */
  /* Reads the arch's config and weights; where names the component. */
  gpointer    (*load)    (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st,
                          const char *where, int *latent_channels, int *factor,
                          gsize *n_params, GError **error);
  /* [n, latent_channels, h, w] -> [n, 3, factor h, factor w]. */
  GfcgTensor *(*forward) (gpointer net, const GfcgTensor *z);
  void        (*free)    (gpointer net);
} DecoderArch;

extern const DecoderArch decoder_arch_sd_vae;   /* dec-sd-vae.c */
extern const DecoderArch decoder_arch_taesd;    /* dec-taesd.c */

/* pack.json "latent": network latent x -> raw latent x * scale + shift, and
 * the decoder outputs (SD VAE units) that stand for black and white. */
typedef struct
{
  float scale[GFCG_MAX_LATENT_CHANNELS], shift[GFCG_MAX_LATENT_CHANNELS];
  float black, white;
} LatentSpace;

Decoder    *decoder_load    (GfcgBackend *be, const char *component, const char *arch,
                             JsonObject *config, const char *file, GError **error);
void        decoder_free    (Decoder *d);
const char *decoder_arch    (const Decoder *d);
int         decoder_factor  (const Decoder *d);
int         decoder_latent_channels (const Decoder *d);
gsize       decoder_n_params (const Decoder *d);
guint       decoder_n_unused (const Decoder *d);
/* Network latents x [n, C, h, w] -> pictures rgb [n, 3, f h, f w] in [-1, 1];
 * decoded (may be NULL) gets the network's own output, before the mapping. */
gboolean    decoder_decode  (Decoder *d, const LatentSpace *ls, int n, int h, int w,
                             const float *x, float *rgb, float *decoded, GError **error);

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
  Decoder     *decoder, *preview; /* latent packs: final pictures; GFCG's view and previews */
  LatentSpace  latent;
  /* pack.json "defaults", read and checked at load time over the built-in
   * ones; guidance_cfg and guidance_atg are NAN when absent. */
  GfcgSampleOptions defaults;
  double       guidance_cfg, guidance_atg;
};

Edm2Net *pack_net (GfcgPack *pack, const char *net, GError **error);
/* Network-space images [n, C, R, R] as pictures [n, 3, *size, *size] in
 * [-1, 1]: the preview decoder (else the decoder) when preview is set, the
 * decoder otherwise; pixel packs return x itself.  Free with pack_picture_free. */
float   *pack_picture (GfcgPack *pack, gboolean preview, int n, const float *x, int *size,
                       GError **error);
void     pack_picture_free (const float *x, float *picture);

/* ---- config helpers (pack.c) ---- */

gboolean cfg_int     (JsonObject *o, const char *key, int def, gboolean required, int lo,
                      int hi, int *out, const char *where, GError **error);
/* A finite number (JSON integers too). */
gboolean cfg_double  (JsonObject *o, const char *key, double def, gboolean required,
                      double *out, const char *where, GError **error);
/* A string; *out points into o (def when absent and not required).  Any
 * other JSON type is an error naming the key, never a GLib critical. */
gboolean cfg_string  (JsonObject *o, const char *key, const char *def, gboolean required,
                      const char **out, const char *where, GError **error);
gboolean cfg_bool    (JsonObject *o, const char *key, gboolean def, gboolean *out,
                      const char *where, GError **error);
/* The entry named arch of an architecture table (structs whose first member
 * is their name, like ClassifierArch), or NULL and an error listing the
 * supported ones. */
gconstpointer arch_lookup (const char *arch, gconstpointer const *table, guint n,
                           const char *where, GError **error);
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

/* ---- options (sampler.c) ---- */

/* value against the documented range of the real option field ("guidance",
 * "sigma_max", ...); the error names it name (pack.json's "guidance_cfg"
 * has guidance's range).  NaN and infinity are always out of range. */
gboolean sample_option_check (const char *name, const char *field, double value,
                              GError **error);

/* ---- quantisation (sampler.c) ---- */

void gfcg_to_rgb8 (const float *chw, int channels, int h, int w, guchar *rgb);

#endif
