/* gfcg-private.h — what the engine's files share and clients never see. */
#ifndef GFCG_PRIVATE_H
#define GFCG_PRIVATE_H

#include "gfcg/gfcg.h"
#include "backend.h"
#include "gfcg/gfcg-safetensors.h"

#include <json-glib/json-glib.h>

struct _GfcgContext
{
  GfcgBackend *be;
  char        *device;
};

/* ---- denoisers (denoiser.c: dispatch and the common part; one file per arch) ---- */

/* What the pack and the sampler need to know of a denoiser. */
typedef struct
{
  int   label_dim;   /* 0: unconditional */
  int   channels;    /* of x: 3 (pixels) or the latent's */
  int   resolution;  /* x is [n, channels, resolution, resolution] */
  gsize n_params;
} DenoiserInfo;

/* One denoiser architecture: it builds the network and evaluates D. */
typedef struct
{
  const char *name;                          /* pack.json "arch" */
  /* Reads the arch's config and weights; where names the component. */
  gpointer    (*load)    (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st,
                          const char *where, DenoiserInfo *info, GError **error);
  /* D(x; sigma, labels): x, out [n, channels, R, R], sigma [n], labels
   * [n, label_dim] (NULL: zero labels; ignored when unconditional); host
   * arrays in and out. */
  gboolean    (*denoise) (gpointer net, int n, const float *x, const double *sigma,
                          const float *labels, float *out, GError **error);
  void        (*free)    (gpointer net);
} DenoiserArch;

extern const DenoiserArch denoiser_arch_edm2_unet; /* edm2.c */

typedef struct _Denoiser Denoiser;

Denoiser *denoiser_load     (GfcgBackend *be, const char *component, const char *arch,
                             JsonObject *config, const char *file, GError **error);
void      denoiser_free     (Denoiser *d);
const DenoiserInfo *denoiser_info (const Denoiser *d);
const char *denoiser_arch   (const Denoiser *d);
guint     denoiser_n_unused (const Denoiser *d);
gboolean  denoiser_denoise  (Denoiser *d, int n, const float *x, const double *sigma,
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

/* ---- latent encoders (encoder.c: picture-to-latent chain; one file per arch) ---- */

typedef struct _Encoder Encoder;

/* One encoder architecture: it builds the network; encoder.c maps pictures
 * in and latents out with the constants below, inverting the decoder's. */
typedef struct
{
  const char *name;                  /* pack.json "arch" */
  double      latent_scale;          /* default: network output = latent_scale * raw SD latent */
  float       in_scale, in_shift;    /* SD VAE encoder input units -> network input */
  /* Reads the arch's config and weights; where names the component. */
  gpointer    (*load)    (GfcgBackend *be, JsonObject *config, GfcgSafetensors *st,
                          const char *where, int *latent_channels, int *factor,
                          gsize *n_params, GError **error);
  /* [n, 3, factor h, factor w] -> [n, latent_channels, h, w]. */
  GfcgTensor *(*forward) (gpointer net, const GfcgTensor *x);
  void        (*free)    (gpointer net);
} EncoderArch;

extern const EncoderArch encoder_arch_sd_vae;   /* enc-sd-vae.c */
extern const EncoderArch encoder_arch_taesd;    /* enc-taesd.c */

Encoder    *encoder_load    (GfcgBackend *be, const char *component, const char *arch,
                             JsonObject *config, const char *file, GError **error);
void        encoder_free    (Encoder *e);
const char *encoder_arch    (const Encoder *e);
int         encoder_factor  (const Encoder *e);
int         encoder_latent_channels (const Encoder *e);
gsize       encoder_n_params (const Encoder *e);
guint       encoder_n_unused (const Encoder *e);
/* Pictures rgb [n, 3, f h, f w] in [-1, 1] -> network latents x [n, C, h, w]
 * (the pack's standardisation, as the denoiser sees them). */
gboolean    encoder_encode  (Encoder *e, const LatentSpace *ls, int n, int h, int w,
                             const float *rgb, float *x, GError **error);

/* ---- the SD VAE's shared blocks (vae-blocks.c: dec-sd-vae.c, enc-sd-vae.c) ---- */

#define VAE_MAX_LEVELS 8

/* A component's "config" (docs/pack-format.md, "sd-vae-decoder"). */
typedef struct
{
  int      ch[VAE_MAX_LEVELS], n_levels;  /* block_out_channels */
  int      layers_per_block, latent_channels, groups;
  gboolean quant;                         /* use_quant_conv / use_post_quant_conv */
  gboolean mid_attn;                      /* mid_block_add_attention */
} VaeConfig;

/* The weights of one network: loaded from st, owned for freeing, counted. */
typedef struct
{
  GfcgBackend     *be;
  GfcgSafetensors *st;       /* during load only */
  GPtrArray       *owned;
  gsize            n_params;
} VaeWeights;

/* n1g, n1b [cin]; c1w [cout, cin, 3, 3], c1b [cout]; n2g, n2b [cout]; c2w [cout, cout, 3, 3],
 * c2b [cout]; sw [cout, cin, 1, 1], sb [cout]. */
typedef struct
{
  GfcgTensor *n1g, *n1b, *c1w, *c1b, *n2g, *n2b, *c2w, *c2b;
  GfcgTensor *sw, *sb; /* 1x1 shortcut when the channels change, else NULL */
} VaeResnet;

/* ng, nb [C]; qw, kw, vw, ow [C, C, 1, 1]; qb, kb, vb, ob [C] */
typedef struct
{
  GfcgTensor *ng, *nb, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
} VaeAttn;

/* resnet, attention (when has_attn), resnet; all at C channels */
typedef struct
{
  VaeResnet res[2];
  VaeAttn   attn;
  gboolean  has_attn;
} VaeMid;

/* quant_key: "use_post_quant_conv" (decoder) or "use_quant_conv" (encoder);
 * rgb_key: "out_channels" or "in_channels" (only 3). */
gboolean    vae_config_read   (JsonObject *config, const char *quant_key, const char *rgb_key,
                               const char *where, VaeConfig *c, GError **error);
void        vae_weights_init  (VaeWeights *v, GfcgBackend *be, GfcgSafetensors *st);
void        vae_weights_clear (VaeWeights *v);
/* Adds t to the owned weights (NULL passes through). */
GfcgTensor *vae_take          (VaeWeights *v, GfcgTensor *t);
/* PREFIX.weight [o, i, k, k] and PREFIX.bias [o]; k 0: a norm's [o] pair. */
gboolean    vae_load_pair     (VaeWeights *v, const char *prefix, int o, int i, int k,
                               GfcgTensor **w, GfcgTensor **b, GError **error);
gboolean    vae_load_resnet   (VaeWeights *v, const char *prefix, int cin, int cout,
                               VaeResnet *r, GError **error);
/* PREFIX.resnets.{0,1}.*, PREFIX.attentions.0.* (either naming of the projections). */
gboolean    vae_load_mid      (VaeWeights *v, const char *prefix, int c, gboolean attn,
                               VaeMid *m, GError **error);
/* Level i of BLOCKS ("decoder.up_blocks", "encoder.down_blocks"): its n
 * resnets (the first from cin, the others from cout) into res[0 .. n-1],
 * and with sampler ("upsamplers", "downsamplers"; NULL: none) its
 * [cout, cout, 3, 3] conv into *sw, *sb. */
gboolean    vae_load_level    (VaeWeights *v, const char *blocks, int i, int n, int cin,
                               int cout, VaeResnet *res, const char *sampler, GfcgTensor **sw,
                               GfcgTensor **sb, GError **error);
/* x [N, cin, H, W] -> [N, cout, H, W] */
GfcgTensor *vae_resnet        (const VaeResnet *r, int groups, const GfcgTensor *x);
/* x [N, C, H, W] -> [N, C, H, W] */
GfcgTensor *vae_mid           (const VaeMid *m, int groups, const GfcgTensor *x);
/* silu(group_norm(x)) with the VAE's eps */
GfcgTensor *vae_norm_out      (const GfcgTensor *x, int groups, const GfcgTensor *gamma,
                               const GfcgTensor *beta);

/* ---- TAESD's config, weights and block (taesd-blocks.c), shared by
 * dec-taesd.c and enc-taesd.c ---- */

#define TAESD_MAX_STAGES 8

/* C = channels (config): w[j] [C, C, 3, 3], b[j] [C]; the layer's .conv.{0,2,4} */
typedef struct
{
  GfcgTensor *w[3], *b[3];
} TaesdBlock;

typedef struct
{
  GfcgBackend     *be;
  GfcgSafetensors *st;       /* during load only */
  const char      *prefix;   /* "" (standalone) or "ROLE.layers." (diffusers) */
  int              offset;   /* diffusers' index minus the standalone file's */
  GPtrArray       *owned;
  gsize            n_params;
  int              channels, latent_channels;
  int              n_stages, blocks[TAESD_MAX_STAGES];
  TaesdBlock      *block;    /* all stages' blocks in order */
} TaesdNet;

/* Reads the config (num_blocks, default default_blocks; channels 64;
 * latent_channels 4) and finds the naming.  role: "decoder" or "encoder";
 * first: the standalone Sequential's index of the first conv (the decoder's
 * is 1, after its clamp), which diffusers' naming numbers 0. */
gboolean    taesd_net_init       (TaesdNet *t, GfcgBackend *be, JsonObject *config,
                                  GfcgSafetensors *st, const char *where, const char *role,
                                  const int default_blocks[4], int first, GError **error);
void        taesd_net_clear      (TaesdNet *t);
/* Layer `index` of the standalone Sequential (either naming), ".suffix" appended. */
GfcgTensor *taesd_net_load       (TaesdNet *t, int index, const char *suffix, int ndim,
                                  const gint64 *shape, GError **error);
/* The block at layer `index`: its three [C, C, 3, 3] convs. */
gboolean    taesd_net_load_block (TaesdNet *t, int index, TaesdBlock *b, GError **error);
/* relu(conv(relu(conv(relu(conv(x))))) + x): x [N, C, H, W] -> [N, C, H, W] */
GfcgTensor *taesd_block          (const TaesdBlock *b, const GfcgTensor *x);

/* ---- packs (pack.c) ---- */

typedef struct
{
  int   imagenet;
  char *wnid;
  char *name;
} PackClass;

/* What a pack's networks work on: pictures, or SD latents that a decoder
 * turns into pictures (pack.json "kind"). */
typedef enum { PACK_PIXEL, PACK_LATENT } PackKind;

/* The components a pack may have (pack.json "components"), in load order. */
typedef enum
{
  ROLE_MAIN, ROLE_GUIDE, ROLE_UNCOND, ROLE_CLASSIFIER, ROLE_DECODER, ROLE_PREVIEW,
  ROLE_ENCODER, ROLE_PREVIEW_ENCODER, N_ROLES
} PackRole;

extern const char *const pack_role_names[N_ROLES];
/* The role called name in pack.json, -1 for none. */
int pack_role_from_name (const char *name);

struct _GfcgPack
{
  GfcgContext *ctx;
  char        *dir, *name, *title, *licence, *source;
  PackKind     kind;
  int          resolution, channels;
  int          n_classes;
  PackClass   *classes;
  Denoiser    *main, *guide, *uncond;
  Classifier  *classifier;
  Decoder     *decoder, *preview; /* latent packs: final pictures; GFCG's view and previews */
  Encoder     *encoder, *preview_encoder; /* latent packs, optional: pictures to latents */
  LatentSpace  latent;
  /* pack.json "defaults", read and checked at load time over the built-in
   * ones; guidance_cfg and guidance_atg are NAN when absent. */
  GfcgSampleOptions defaults;
  double       guidance_cfg, guidance_atg;
};

/* pack.c: loading; classes.c: the class map; options.c: pack.json "defaults" */
gboolean pack_load_classes  (GfcgPack *pack, JsonObject *root, const char *where, GError **error);
gboolean pack_load_defaults (GfcgPack *pack, JsonObject *root, const char *path, GError **error);
/* gfcg_pack_find_class, where allow_index FALSE reads a bare number as a
 * name and refuses pack:N (request.c: the plug-in's class-name). */
int      pack_find_class    (const GfcgPack *pack, const char *spec, gboolean allow_index,
                             GError **error);
/* "it draws tench (0), ..." (ImageNet indices) when the pack has a few classes, else a
 * pointer to `gfcg info`: the end of a "cannot draw" message. */
char    *pack_class_list    (const GfcgPack *pack);

/* pack-run.c: the loaded pack at work */
Denoiser *pack_net (GfcgPack *pack, const char *net, GError **error);
/* Softmax over the pack's classes of logits / t for images x [n, 3, h, w] in
 * [-1, 1] -> p [n, n_classes] (double precision). */
gboolean pack_class_probs   (GfcgPack *pack, int n, int h, int w, const float *x, double t,
                             double *p, GError **error);
void     pack_set_cancellable (GfcgPack *pack, GCancellable *cancellable);
/* Network-space images [n, C, R, R] as pictures [n, 3, *size, *size] in
 * [-1, 1]: the preview decoder (else the decoder) when preview is set, the
 * decoder otherwise; pixel packs return x itself.  GFCG_VIEW_HALF pools x
 * 2x2 first (ceil (R / 2) wide; pixel packs: that copy).  Free with
 * pack_picture_free. */
float   *pack_picture (GfcgPack *pack, gboolean preview, GfcgView view, int n, const float *x,
                       int *size, GError **error);
void     pack_picture_free (const float *x, float *picture);

/* ---- config helpers (config.c) ---- */

/* A string member copied to *out (def when absent); other types are errors. */
gboolean cfg_dup_string (JsonObject *o, const char *key, const char *def, char **out,
                         const char *where, GError **error);
/* Sets "WHERE: 'KEY' WHAT" and returns FALSE. */
gboolean cfg_error   (GError **error, const char *where, const char *key, const char *what);
/* A list of n numbers under key (absent: def, unless def is NULL). */
gboolean cfg_float_list (JsonObject *o, const char *key, int n, const float *def, float *out,
                         const char *where, GError **error);

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

/* A shape literal for the loaders: SHAPE (o, i, 3, 3). */
#define SHAPE(...) ((const gint64[]) { __VA_ARGS__ })

/* Reads a tensor of the expected shape and uploads it. */
GfcgTensor *weight_load     (GfcgBackend *be, GfcgSafetensors *st, const char *name,
                             int ndim, const gint64 *shape, GError **error);
/* EDM2 weight normalisation: per output row, gain * W / (sqrt(N) eps + ||W||). */
GfcgTensor *weight_load_mp  (GfcgBackend *be, GfcgSafetensors *st, const char *name,
                             int ndim, const gint64 *shape, float gain, GError **error);
gboolean    scalar_load     (GfcgSafetensors *st, const char *name, float *out, GError **error);
/* PREFIX.weight [o, i, k, k] (a linear layer's [o, i] when k is 0) and
 * PREFIX.bias [o]; *n_params grows by their sizes. */
gboolean    weight_load_conv (GfcgBackend *be, GfcgSafetensors *st, const char *prefix, int o,
                              int i, int k, GfcgTensor **w, GfcgTensor **b, gsize *n_params,
                              GError **error);

/* ---- noise (rng.c) ---- */

void gfcg_rng_normal (guint64 seed, float *out, gsize n);
/* Block b (0, 1, ...) of n normals each of seed's stream; block 0 is
 * gfcg_rng_normal's. */
void gfcg_rng_normal_block (guint64 seed, guint64 block, float *out, gsize n);

/* ---- the sampler (sampler.c) ---- */

/* The first solver step of a run: with strength s only the last
 * k = ceil(s steps - 1e-9) steps run; steps - k (steps: nothing runs). */
int       sample_first_step (const GfcgSampleOptions *o);
/* Guided evaluations of a run: 2 k - 1, 0 when no step runs. */
int       sample_n_evals    (const GfcgSampleOptions *o);
/* out = mask x + (1 - mask) init for x [channels, hw] (o->mask and o->init set). */
void      sample_composite  (const GfcgSampleOptions *o, int channels, gsize hw,
                             const float *x, float *out);

/* ---- one guided prediction (guidance.c) ---- */

typedef struct _Guidance Guidance;

/* Where a run's time went, in seconds (the trace's "timing"): counters,
 * so that a slow run can be read without a profiler. */
typedef struct
{
  double main, guide, uncond;  /* the networks, by role                     */
  double view, classify;       /* GFCG: the classifier's picture, the classifier */
  int    n_classified;         /* classifier runs (views made)               */
  double preview;              /* progress previews                         */
  double decode, verdict;      /* the final picture and its classification  */
} RunTimes;

/* times (the caller's, zeroed) collects the networks' and GFCG's time. */
Guidance *guidance_new  (GfcgPack *pack, const GfcgSampleOptions *o, RunTimes *times);
void      guidance_free (Guidance *g);
/* The guided prediction pred [C, R, R] of the mode at x [C, R, R], sigma;
 * fills info's GFCG fields (c_ref, p_c, ...) and nfe. */
gboolean  guidance_eval (Guidance *g, const float *x, double sigma, GfcgStepInfo *info,
                         float *pred, GError **error);
/* No NaN or infinity among v[0 .. n). */
gboolean  values_finite (const float *v, gsize n);

/* ---- a finished picture (image.c, filled by sampler.c) ---- */

struct _GfcgImage
{
  int           width, height, channels, steps, nfe;
  int           raw_size;  /* network resolution: latent packs decode to width */
  guchar       *rgb;
  float        *raw;
  GArray       *trace; /* GfcgStepInfo */
  GfcgSampleOptions options;
  char         *pack_name;
  /* Where it was computed: the device string asked for, the backend as it
   * ended the run (after any fallback) and its arithmetic. */
  char         *device, *backend;
  GfcgPrecision precision;
  int           imagenet;
  char         *class_name;
  int           final_top1;
  double        final_p_target;
  double        seconds;
  /* Starting from a source: options' init and mask are NULL here (the
   * caller's arrays); whether there were any, and the first step run. */
  gboolean      has_init, has_mask;
  int           first_step;
  double        first_sigma;
  RunTimes      times;
};

/* ---- options (options.c) ---- */

/* value against the documented range of the real option field ("guidance",
 * "sigma_max", ...); the error names it name (pack.json's "guidance_cfg"
 * has guidance's range).  NaN and infinity are always out of range. */
gboolean sample_option_check (const char *name, const char *field, double value,
                              GError **error);

/* ---- quantisation (image.c) ---- */

void gfcg_to_rgb8 (const float *chw, int channels, int h, int w, guchar *rgb);

#endif
