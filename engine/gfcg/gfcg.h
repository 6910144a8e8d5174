/* gfcg.h — public interface of the GFCG diffusion engine.
 *
 * The engine samples class-conditional EDM2 diffusion models ("model packs",
 * see docs/pack-format.md) with classifier-free guidance, autoguidance and
 * Gradient-Free Classifier Guidance.  It has no GIMP dependency: the GIMP
 * plug-in and the `gfcg` command are thin clients of this header.
 *
 * Errors are reported as GError in the GFCG_ERROR domain.  Nothing here keeps
 * global state except the backend's one-time initialisation.
 */
#ifndef GFCG_H
#define GFCG_H

#include <glib.h>
#include <gio/gio.h>

G_BEGIN_DECLS

#define GFCG_VERSION "0.1.0"

#define GFCG_ERROR (gfcg_error_quark ())
GQuark gfcg_error_quark (void);

typedef enum
{
  GFCG_ERROR_INVALID_ARGUMENT, /* bad option value, unknown class or mode */
  GFCG_ERROR_IO,               /* a file could not be read or written      */
  GFCG_ERROR_MODEL,            /* a pack or tensor file is malformed       */
  GFCG_ERROR_DEVICE,           /* the compute device failed                */
  GFCG_ERROR_NO_MEMORY,        /* an allocation was refused                */
  GFCG_ERROR_CANCELLED         /* the caller stopped the run               */
} GfcgError;

typedef enum
{
  GFCG_MODE_NONE,
  GFCG_MODE_CFG,
  GFCG_MODE_ATG,
  GFCG_MODE_GFCG,
  GFCG_MODE_GFCG_CFG,
  GFCG_MODE_GFCG_ATG,     /* 2 evaluations: guide at a label pulled to c_ref */
  GFCG_MODE_GFCG_ATG_ADD, /* 3 evaluations: ATG term plus GFCG term          */
  GFCG_N_MODES
} GfcgMode;

/* What GFCG's classifier looks at (docs/pack-format.md, "Classifier view"):
 * the denoised estimate itself, or it 2x average-pooled in network space
 * first (latent packs: a 32x32 latent through the preview decoder, a
 * quarter of the decoding work; the classifier resizes to 224 anyway). */
typedef enum
{
  GFCG_VIEW_FULL,
  GFCG_VIEW_HALF,
  GFCG_N_VIEWS
} GfcgView;

/* "full", "half"; NULL when out of range. */
const char *gfcg_view_to_string   (GfcgView view);
gboolean    gfcg_view_from_string (const char *name, GfcgView *view);

const char *gfcg_version (void);

/* ---- Guidance modes: one table (engine/modes.c) ------------------------ */

/* What a mode needs besides the main network. */
typedef enum
{
  GFCG_NEEDS_CLASSIFIER = 1 << 0,
  GFCG_NEEDS_GUIDE      = 1 << 1,
} GfcgModeNeeds;

/* Which of the pack's weights the mode's w is (pack.json "guidance_cfg" /
 * "guidance_atg", both falling back to "guidance"). */
typedef enum
{
  GFCG_WEIGHT_NONE,
  GFCG_WEIGHT_CFG,
  GFCG_WEIGHT_ATG,
} GfcgWeightKind;

/* The prediction the mode pushes away from with weight w - 1: none, the
 * unconditional one (the uncond network, else main at the zero label), or
 * the guide network's at the target class. */
typedef enum
{
  GFCG_PUSH_NONE,
  GFCG_PUSH_UNCOND,
  GFCG_PUSH_GUIDE,
} GfcgPush;

/* GFCG's own term: none; main at the reference class with weight s; or the
 * guide at the target label pulled toward the reference, weight w - 1 + s
 * (it replaces the guide push). */
typedef enum
{
  GFCG_REF_NONE,
  GFCG_REF_MAIN,
  GFCG_REF_GUIDE_MIX,
} GfcgRefTerm;

typedef struct
{
  GfcgMode       mode;
  const char    *name;   /* canonical: "gfcg+cfg" ("gfcg-cfg" is accepted as input) */
  const char    *label;  /* for people, untranslated: clients translate (N_ in modes.c) */
  const char    *help;   /* one sentence, untranslated */
  GfcgModeNeeds  needs;
  GfcgWeightKind weight;
  GfcgPush       push;
  GfcgRefTerm    ref;
} GfcgModeInfo;

/* The row of mode, NULL when out of range.  Modes are 0 .. GFCG_N_MODES - 1. */
const GfcgModeInfo *gfcg_mode_get_info (GfcgMode mode);
const char *gfcg_mode_to_string (GfcgMode mode);
/* Accepts "gfcg+cfg" and "gfcg-cfg" alike.  Returns FALSE for unknown names. */
gboolean    gfcg_mode_from_string (const char *name, GfcgMode *mode);
/* "none, cfg, atg, ..." (every canonical name, joined by sep); free with g_free. */
char       *gfcg_mode_list (const char *sep);

/* What one run costs, in network evaluations: a guided prediction is made
 * 2 steps - 1 times (Heun); weighted is FALSE when w = 1 turns the push off.
 * uncond counts the evaluations of the unconditional prediction (run by the
 * uncond network when the pack has one, else by main); classifier counts
 * GFCG's classifications, each of which also decodes a preview in latent
 * packs. */
typedef struct
{
  int main, guide, uncond, classifier;
} GfcgRunCost;

void        gfcg_mode_cost (GfcgMode mode, int steps, gboolean weighted, GfcgRunCost *cost);

/* ---- Context: the compute device ------------------------------------- */

typedef struct _GfcgContext GfcgContext;

/* device: NULL or "auto" (the first OpenCL GPU, else the CPU backend), "cpu",
 * or "opencl:N" (device N of `gfcg devices`), optionally followed by
 * ":fp16" (weights stored as fp16, fp32 arithmetic) and/or ":tiled" (the
 * built-in GEMM kernel instead of CLBlast).  A device that cannot be used
 * (no OpenCL, no such device, kernels that do not build) gives the CPU
 * backend after one message on stderr; so does a device failing later (out
 * of memory, a kernel failing): the run goes on there.  A malformed name is
 * an error. */
GfcgContext *gfcg_context_new         (const char *device, GError **error);
/* One line: the backend in use and, for OpenCL, the device and its set-up. */
char        *gfcg_context_describe    (GfcgContext *ctx);
/* Peak bytes held in tensors, and (OpenCL) peak device bytes including the
 * buffer pool and scratch.  Either pointer may be NULL. */
void         gfcg_context_get_memory  (GfcgContext *ctx, gsize *peak_tensors, gsize *peak_device);
/* Waits for queued device work (for timing); returns nanoseconds spent in
 * matrix products and their flops since the last call, when
 * GFCG_OPENCL_PROFILE=1 (else 0). */
guint64      gfcg_context_sync        (GfcgContext *ctx, guint64 *gemm_flops);
/* Human listing of the devices --device accepts (`gfcg devices`). */
char        *gfcg_devices_describe    (void);
void         gfcg_context_free        (GfcgContext *ctx);
const char  *gfcg_context_get_backend (GfcgContext *ctx);
/* Threads used by the CPU backend (0 = all cores). */
void         gfcg_context_set_threads (GfcgContext *ctx, int n_threads);

/* The CPU backend's own timing (gfcg bench), process-wide: nanoseconds and
 * flops in convolutions (whole ops) and in the other matrix products since
 * the last call. */
typedef struct
{
  guint64 conv_ns, conv_flops, gemm_ns, gemm_flops;
} GfcgCpuCounters;
void         gfcg_cpu_take_counters   (GfcgCpuCounters *c);
/* This machine's fp32 SGEMM rate in GFLOP/s: an n x n x n product, best of
 * reps, through "openblas" or "onednn" on n_threads (0 = all cores); 0 when
 * that library is not in this build. */
double       gfcg_cpu_sgemm_gflops    (const char *lib, int n, int reps, int n_threads);
/* The CPU backend's convolution path now: "onednn" or "blas"; its threads. */
const char  *gfcg_cpu_conv_path       (void);
int          gfcg_cpu_threads         (void);
/* Why the device "cpu:bf16" (bf16 convolutions) cannot run here: no oneDNN
 * in this build, its path switched off, or a CPU without avx512_bf16 / AMX;
 * NULL where it can. */
const char  *gfcg_cpu_bf16_unsupported (void);

/* ---- Model packs --------------------------------------------------------- */

typedef struct _GfcgPack GfcgPack;

GfcgPack   *gfcg_pack_load            (GfcgContext *ctx, const char *dir, GError **error);
void        gfcg_pack_free            (GfcgPack *pack);
/* The pack used when none is named: $GFCG_DEFAULT_PACK, else the one that
 * was installed (or sits in the source tree for uninstalled runs). */
char       *gfcg_default_pack_dir     (void);

/* Installed packs (models.c).  `gfcg models fetch` installs into
 * gfcg_models_dir(): $XDG_DATA_HOME/gfcg/models. */
char       *gfcg_models_dir           (void);
/* The catalog of published packs `gfcg models` reads: $GFCG_CATALOG, else
 * the installed data/models/catalog.json (the source tree's when uninstalled). */
char       *gfcg_models_catalog_path  (void);
/* Folders of the packs beside the default pack (the default first), then of
 * the packs in gfcg_models_dir(), each name once; NULL-terminated. */
char      **gfcg_installed_packs      (void);
/* spec: NULL or "" (the default pack), a folder, or the name of an installed
 * pack.  Returns the folder; NULL with an error for an unknown name. */
char       *gfcg_pack_resolve         (const char *spec, GError **error);
/* A usable pack name: letters, digits, '-', '_', '.', not hidden, no "..". */
gboolean    gfcg_pack_name_is_valid   (const char *name);

const char *gfcg_pack_get_name        (const GfcgPack *pack);
const char *gfcg_pack_get_title       (const GfcgPack *pack);
const char *gfcg_pack_get_licence     (const GfcgPack *pack);
const char *gfcg_pack_get_source      (const GfcgPack *pack);
const char *gfcg_pack_get_kind        (const GfcgPack *pack); /* "pixel" | "latent" */
int         gfcg_pack_get_resolution  (const GfcgPack *pack);
int         gfcg_pack_get_n_classes   (const GfcgPack *pack);
/* Any out-parameter may be NULL.  Returns FALSE when k is out of range. */
gboolean    gfcg_pack_get_class       (const GfcgPack *pack, int k, int *imagenet,
                                       const char **wnid, const char **name);
/* Pack class for an ImageNet-1k index, or -1 when the pack cannot draw it. */
int         gfcg_pack_class_from_imagenet (const GfcgPack *pack, int imagenet);
/* The pack class (0 .. n_classes - 1) of spec: an ImageNet-1k index ("217",
 * or "inet:217"), "pack:N" (the pack's own index N), or a wnid, name or
 * synonym (case-insensitive) of the pack's classes or of any ImageNet
 * class.  A bare number is always an ImageNet index, as everywhere else
 * (the plug-in's class-index, the trace's "imagenet").  Returns -1 and sets
 * error when unknown or not in the pack. */
int         gfcg_pack_find_class      (const GfcgPack *pack, const char *spec, GError **error);
gboolean    gfcg_pack_has_component   (const GfcgPack *pack, const char *component);

/* The ImageNet-1k table: the index of an English name, wnid or synonym
 * (case-insensitive, '_' as a space, outer blanks ignored), or -1; and the
 * name of an index (NULL if out of range).  Names are tried before wnids and
 * wnids before synonyms, and a match in an earlier kind wins ("crane" is the
 * machine, not the bird whose synonym it is).  When several classes match in
 * the same kind, the first for which prefer (may be NULL) returns TRUE wins,
 * else the first. */
typedef gboolean (*GfcgImagenetPreferFunc) (int imagenet, gpointer user_data);
int         gfcg_imagenet_find        (const char *spec);
int         gfcg_imagenet_find_preferring (const char *spec, GfcgImagenetPreferFunc prefer,
                                           gpointer user_data);
const char *gfcg_imagenet_name        (int index);
/* Near misses of spec for "did you mean": up to max ImageNet indices whose
 * name, synonym or wnid is a few typing edits (insertions, deletions,
 * substitutions, swapped neighbours) away from spec, nearest first (of equal
 * distance, the lower index), then those with spec as a whole word of their
 * name or a synonym ("retriever"), written to out; returns how many.  A spec
 * under 4 characters gets only exact matches; longer ones may be about one
 * edit in four off. */
int         gfcg_imagenet_suggest     (const char *spec, int *out, int max);

/* One ImageNet-1k class as the table (data/imagenet-classes.tsv, embedded)
 * gives it; the only copy of the table: clients (the plug-in's class picker)
 * read it here. */
typedef struct
{
  int         index;     /* 0 .. 999                              */
  const char *wnid;      /* "" where no offline source names it   */
  const char *name;      /* unique English name                   */
  const char *synonyms;  /* comma-separated, may be ""            */
} GfcgImagenetClass;

/* Class index, or NULL when out of range (or the table is missing). */
const GfcgImagenetClass *gfcg_imagenet_get (int index);
/* A multi-line human description (components, sizes, defaults). */
char       *gfcg_pack_describe        (const GfcgPack *pack);

/* Evaluate one network of the pack on a batch (the hook for parity tests).
 * net: "main", "guide" or "uncond".  x: [n, C, H, W] network-space floats,
 * sigma: [n], labels: [n, label_dim] or NULL (zero labels).  out: [n, C, H, W]. */
gboolean    gfcg_pack_get_net_shape   (const GfcgPack *pack, const char *net, int *channels,
                                       int *resolution, int *label_dim, GError **error);
gboolean    gfcg_pack_denoise         (GfcgPack *pack, const char *net, int n,
                                       const float *x, const float *sigma, const float *labels,
                                       float *out, GError **error);
/* The pack's classifier on network-space images x [n, 3, H, W] (any size:
 * they are resized to the classifier's input); logits
 * [n, num_classes] are its raw outputs.  Returns num_classes, or -1 on error;
 * with logits NULL it only returns num_classes. */
int         gfcg_pack_classify        (GfcgPack *pack, int n, int height, int width,
                                       const float *x, float *logits, GError **error);
/* Whether the pack's classifier scores the 1000 ImageNet-1k classes in
 * index order (label_space "imagenet"), so that its logits rank classes the
 * pack cannot draw too; FALSE when it scores the pack's classes or there is
 * no classifier. */
gboolean    gfcg_pack_classifier_is_imagenet (const GfcgPack *pack);
/* Probabilities over the pack's classes (temperature 1) for the same input:
 * probs [n, n_classes]. */
gboolean    gfcg_pack_class_probs     (GfcgPack *pack, int n, int height, int width,
                                       const float *x, float *probs, GError **error);
/* A latent pack's "decoder" or "preview" component on network-space latents
 * x [n, C, height, width]: rgb gets the pictures [n, 3, f height, f width]
 * (f: the decoder's factor, 8 for SD) in [-1, 1] as sampling makes them;
 * decoded, when not NULL, the decoder network's own output before the
 * mapping to pixels.  Returns f, or -1 on error; with rgb NULL it only
 * returns f. */
int         gfcg_pack_decode          (GfcgPack *pack, const char *decoder, int n, int height,
                                       int width, const float *x, float *rgb, float *decoded,
                                       GError **error);
/* Whether a latent pack has an "encoder" component (pictures to latents:
 * img2img, refining a layer, filling a selection). */
gboolean    gfcg_pack_has_encoder     (const GfcgPack *pack);
/* A latent pack's "encoder" (NULL picks it) or "preview-encoder" component
 * (the fast TAESD one, when a pack has both) on pictures rgb [n, 3, height,
 * width] in [-1, 1] (as gfcg_pack_decode makes them; not clamped): latents
 * gets [n, C, height / f, width / f] in the pack's network space, standardised
 * exactly as the denoiser sees it (the inverse of the decoder's mapping).
 * height and width must be multiples of f (8 for SD).  The latent is the
 * VAE's mean (deterministic).  Returns f, or -1 on error; with latents NULL
 * it only returns f. */
int         gfcg_pack_encode          (GfcgPack *pack, const char *encoder, int n, int height,
                                       int width, const float *rgb, float *latents,
                                       GError **error);

/* ---- Sampling ------------------------------------------------------------ */

typedef struct
{
  int           class_index;  /* pack class                                    */
  GfcgMode      mode;
  int           steps;        /* N: 2N-1 guided evaluations                     */
  double        sigma_min, sigma_max, rho;
  double        guidance;     /* CFG/ATG weight w, EDM2 convention (1 = off)    */
  double        s_max;        /* GFCG strength                                  */
  double        temperature;  /* classifier softmax temperature                */
  double        sigma_lo, sigma_hi; /* GFCG window                              */
  gboolean      lagged;       /* reference from the previous evaluation        */
  guint64       seed;
  GCancellable *cancellable;  /* checked between evaluations; may be NULL       */
  gboolean      no_previews;  /* progress gets preview NULL: spares latent packs a
                                 decode per evaluation                           */
  int           preview_every;/* N > 1: a preview every Nth evaluation and at the
                                 last (preview NULL between); 0, 1: every one   */
  /* Starting from a picture (docs/pack-format.md, "Starting from a source").
   * Both arrays are the caller's, in network space, and must outlive the run;
   * gfcg_source_apply () fills them from a picture. */
  double        strength;     /* 0..1: only the last ceil(strength steps) steps
                                 run, from init noised to their first sigma;
                                 0 returns init, 1 (default) ignores it where
                                 the mask regenerates.  Below 1 needs init.    */
  const float  *init;         /* [C, R, R] network space (pixel packs: RGB in
                                 [-1, 1]; latent packs: standardised latents),
                                 or NULL                                        */
  const float  *mask;         /* [R, R] on the network grid, 1 = regenerate,
                                 0 = keep (re-noised from init at every step);
                                 NULL = regenerate everywhere.  Needs init.     */
  GfcgView      view;         /* what the GFCG classifier sees (full)           */
  int           classify_every; /* K > 1: the classifier runs on the 1st, (K+1)th,
                                 ... evaluation inside the GFCG window and the
                                 evaluations between reuse its reference; 0, 1:
                                 every one (1..1000)                            */
} GfcgSampleOptions;

/* What one guided evaluation did (also the rows of the trace). */
typedef struct
{
  int    step;        /* solver step 0..steps-1                              */
  int    stage;       /* 0 = Euler evaluation, 1 = Heun correction           */
  double sigma;
  gboolean classified;/* the classifier ran on this evaluation              */
  int    c_ref;       /* reference pack class in use, -1 when none          */
  double p_c, p_ref, r, a, s;
  int    nfe;         /* network evaluations spent                          */
} GfcgStepInfo;

typedef struct
{
  int                 eval;    /* 0-based evaluation index                     */
  int                 n_evals; /* 2N-1                                         */
  int                 picture; /* which of a request's pictures (0 with gfcg_sample) */
  int                 n_pictures; /* the request's count (1 with gfcg_sample)  */
  const GfcgStepInfo *info;
  /* The guided denoised estimate of this evaluation as 8-bit RGB (width x
   * height x 3), for live previews; valid during the callback only. */
  const guchar       *preview;
  int                 width, height;
} GfcgProgress;

/* Return FALSE to stop the run (it then fails with GFCG_ERROR_CANCELLED). */
typedef gboolean (*GfcgProgressFunc) (const GfcgProgress *progress, gpointer user_data);

/* Built-in defaults, then the pack's "defaults" (pack may be NULL). */
void     gfcg_sample_options_init     (GfcgSampleOptions *options, const GfcgPack *pack);
/* The pack's default CFG/ATG weight w for a mode (pack.json's guidance_cfg,
 * guidance_atg or guidance; 1 without any).  For callers that let the user
 * change the mode but not the weight. */
double   gfcg_pack_get_guidance       (const GfcgPack *pack, GfcgMode mode);
/* TRUE when pack has the networks mode needs (gfcg_mode_get_info ()->needs);
 * else FALSE and an error naming what is missing. */
gboolean gfcg_pack_supports_mode      (const GfcgPack *pack, GfcgMode mode, GError **error);
gboolean gfcg_sample_options_validate (const GfcgSampleOptions *options, const GfcgPack *pack,
                                       GError **error);

typedef struct _GfcgImage GfcgImage;

GfcgImage    *gfcg_sample               (GfcgPack *pack, const GfcgSampleOptions *options,
                                         GfcgProgressFunc progress, gpointer user_data,
                                         GError **error);
void          gfcg_image_free           (GfcgImage *image);
int           gfcg_image_get_width      (const GfcgImage *image);
int           gfcg_image_get_height     (const GfcgImage *image);
/* 8-bit RGB, rows top to bottom, width*3 bytes per row. */
const guchar *gfcg_image_get_pixels     (const GfcgImage *image);
/* Final state in network space, [C, H, W] floats (before quantisation). */
const float  *gfcg_image_get_raw        (const GfcgImage *image, int *channels, int *height,
                                         int *width);
int           gfcg_image_get_n_steps    (const GfcgImage *image);
const GfcgStepInfo *gfcg_image_get_step (const GfcgImage *image, int eval);
int           gfcg_image_get_nfe        (const GfcgImage *image);
/* Wall-clock seconds the sampling took. */
double        gfcg_image_get_seconds    (const GfcgImage *image);
/* The full record (options, per-evaluation trace, final verdict) as JSON. */
char         *gfcg_image_get_trace_json (const GfcgImage *image);

/* ---- Starting from a picture (engine/source.c) ---------------------------- */

typedef struct _GfcgSource GfcgSource;

/* A source picture for refining or filling with pack: rgb (8-bit RGB, width x
 * height, rows top to bottom) and mask (NULL: regenerate everywhere; else
 * width x height values in [0, 1], 1 = regenerate, 0 = keep, edges may be
 * feathered).  The picture is scaled (triangle filter, antialiased when
 * shrinking) to fit the pack's square canvas (gfcg_pack_get_resolution) with
 * its aspect kept, centred; the rest of the canvas repeats the edge pixels
 * and counts as mask 1 (it is cropped away afterwards).  The mask goes to the
 * network grid by area average (latent packs: the latent grid, 1/8 of the
 * canvas).  Latent packs need an encoder to start from a picture.  The
 * source copies rgb and mask. */
GfcgSource  *gfcg_source_new       (GfcgPack *pack, const guchar *rgb, int width, int height,
                                    const float *mask, GError **error);
void         gfcg_source_free      (GfcgSource *source);
int          gfcg_source_get_width  (const GfcgSource *source);
int          gfcg_source_get_height (const GfcgSource *source);
/* Points options->init and options->mask at the source's network-space
 * arrays (valid while source lives); strength is left to the caller. */
void         gfcg_source_apply     (const GfcgSource *source, GfcgSampleOptions *options);
/* The picture of a run started from source, back at the source's size (the
 * canvas part that holds the picture, scaled with the same filter) and
 * composited in 8 bits: out = src where the mask is 0, the result where it is
 * 1, round(m result + (1 - m) src) between; a run where no step ran
 * (strength 0) gives the source itself.  So pixels outside the mask's
 * support come back byte for byte.  width x height x 3 bytes; g_free it. */
guchar      *gfcg_source_composite (const GfcgSource *source, const GfcgImage *image,
                                    GError **error);

/* ---- Requests: what a client asks for, in its words ----------------------- */

/* One call of a client (the CLI, the plug-in): a class and a mode by name,
 * the options, and COUNT pictures with the seeds SEED, SEED+1, ...  Each
 * setter checks its own value against the pack and fails with
 * GFCG_ERROR_INVALID_ARGUMENT, so that a client can say which of its
 * arguments is wrong.  Fields not covered by a setter (steps, weights,
 * window, previews, cancellable) are set in options directly; then
 * gfcg_request_run validates them all. */
typedef struct
{
  GfcgPack          *pack;      /* not owned                                     */
  GfcgSampleOptions  options;   /* options.seed: the first picture's seed        */
  int                imagenet;  /* the class as an ImageNet-1k index             */
  int                count;     /* pictures, 1 ..GFCG_MAX_REQUEST_COUNT          */
} GfcgRequest;

#define GFCG_MAX_REQUEST_COUNT 10000

typedef enum
{
  GFCG_CLASS_SPEC_DEFAULT    = 0,
  /* A bare number is a name, not a class index, and pack:N is refused (the
   * plug-in's class-name argument: ImageNet indices have their own
   * argument there). */
  GFCG_CLASS_SPEC_NAMES_ONLY = 1 << 0,
} GfcgClassSpecFlags;

/* The pack's defaults (class 0, the pack's mode and its weight), count 1,
 * seed 0. */
void       gfcg_request_init         (GfcgRequest *request, GfcgPack *pack);
/* spec as gfcg_pack_find_class takes it; of several ImageNet classes with the
 * name, one the pack can draw wins.  A class the pack cannot draw is refused
 * with the classes it can (when they are few). */
gboolean   gfcg_request_set_class    (GfcgRequest *request, const char *spec,
                                      GfcgClassSpecFlags flags, GError **error);
gboolean   gfcg_request_set_imagenet (GfcgRequest *request, int imagenet, GError **error);
/* name: a mode's name ('-' for '+' accepted), or NULL or "" for the pack's
 * default.  The mode must be one the pack can run.  Sets options.guidance to
 * the pack's weight for the mode: give an explicit weight after this. */
gboolean   gfcg_request_set_mode     (GfcgRequest *request, const char *name, GError **error);
gboolean   gfcg_request_set_count    (GfcgRequest *request, int count, GError **error);
/* The seed of picture j. */
guint64    gfcg_request_get_seed     (const GfcgRequest *request, int picture);

/* Called with each finished picture, which it owns; return FALSE, with error
 * set, to stop (writing it failed). */
typedef gboolean (*GfcgPictureFunc) (const GfcgRequest *request, int picture, GfcgImage *image,
                                     gpointer user_data, GError **error);
/* Validates the options, then draws the pictures in order, one at a time;
 * progress (may be NULL) sees progress->picture.  Stops at the first
 * failure, cancellation or refusal of picture. */
gboolean   gfcg_request_run          (GfcgRequest *request, GfcgProgressFunc progress,
                                      GfcgPictureFunc picture, gpointer user_data,
                                      GError **error);

/* ---- Small utilities shared by the clients --------------------------------- */

gboolean gfcg_write_png (const char *path, const guchar *rgb, int width, int height,
                         const char *comment, GError **error);
/* The largest picture the engine reads (classify, init images and masks):
 * 16 Mpx, 4096x4096, 64 times the pixels of a 512x512 sample.  A bigger one
 * is refused from its header, before anything is allocated: reading takes
 * 3 bytes a pixel and classifying about 30 more (floats, backend copies). */
#define GFCG_MAX_IMAGE_SIDE   4096u
#define GFCG_MAX_IMAGE_PIXELS (GFCG_MAX_IMAGE_SIDE * GFCG_MAX_IMAGE_SIDE)

/* Reads any PNG (any bit depth and colour type) as 8-bit RGB: palette and grey
 * expanded, 16 bits scaled to 8, alpha dropped, gamma not applied.  Pictures of
 * more than GFCG_MAX_IMAGE_PIXELS pixels and chunks larger than libpng's limits
 * set here are errors naming the file. */
guchar  *gfcg_read_png  (const char *path, int *width, int *height, GError **error);
/* The same from bytes in memory; name is used in messages. */
guchar  *gfcg_read_png_from_memory (const char *name, const guint8 *data, gsize len,
                                    int *width, int *height, GError **error);
/* A mask: a grey PNG of any bit depth (16 bits kept), as width x height
 * floats in [0, 1] (white 1 = regenerate); alpha is ignored; a colour PNG is
 * an error.  The same limits as gfcg_read_png. */
float   *gfcg_read_png_mask (const char *path, int *width, int *height, GError **error);

G_END_DECLS

#endif /* GFCG_H */
