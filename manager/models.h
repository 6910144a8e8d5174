/* models.h — the model manager behind `gfcg models` (manager/): the catalog
 * of published packs (catalog.c), downloads with resume and checksums
 * (download.c, transfer.c, checksums.c), and installing, verifying and
 * removing packs atomically (install.c, install-steps.c).  The sampling
 * engine knows nothing of it; engine/cli/cmd-models.c is its command line. */
#ifndef GFCG_CLI_MODELS_H
#define GFCG_CLI_MODELS_H

#include "gfcg/gfcg.h"

#include "gfcg/gfcg-json.h" /* json-glib, and the project's JSON writer */
#include <signal.h>

/* One downloadable file of the catalog. */
typedef struct
{
  char   *id;            /* key in the catalog's "files"                       */
  char   *file;          /* name in the download cache                         */
  char  **urls;          /* tried in order                                     */
  gint64  size;          /* exact bytes, or -1 when not published              */
  gint64  approx_size;   /* for estimates when size is -1 (0: unknown)         */
  char   *sha256;        /* lower-case hex, or NULL when not published         */
  char   *sha256_prefix; /* e.g. torchvision's 8 digits in the file name       */
  char   *licence;
  char   *about;
} CatalogFile;

/* One conversion step: a converter of the project, or (tests, plain
 * safetensors) a copy of a downloaded file into the pack. */
typedef struct
{
  char  *tool;           /* "convert-edm2", ...; NULL for a copy               */
  char **args;           /* with {out}, {name} and {ROLE} placeholders         */
  char  *copy_from;      /* "{ROLE}" for a copy step                           */
  char  *copy_to;        /* path inside the pack                               */
} CatalogStep;

typedef struct
{
  char       *name;
  char       *title;
  char       *about;
  char       *licence;
  char       *memory;    /* human estimates                                    */
  char       *time;
  gint64      installed_size; /* approximate bytes of the converted pack       */
  int         resolution;     /* pixels of a side; 0 when the catalog says not */
  int         n_classes;      /* classes it draws; 0 when the catalog says not */
  int        *classes;        /* their ImageNet indices; NULL: all 1000        */
  char      **roles;     /* "main", "guide", ... in catalog order              */
  GPtrArray  *files;     /* CatalogFile * per role (not owned)                 */
  GPtrArray  *steps;     /* CatalogStep *                                      */
} CatalogPack;

typedef struct
{
  char       *path;
  GHashTable *files;     /* id -> CatalogFile *                                */
  GPtrArray  *packs;     /* CatalogPack *, catalog order                       */
} Catalog;

Catalog     *catalog_load          (const char *path, GError **error);
void         catalog_free          (Catalog *cat);
CatalogPack *catalog_find_pack     (Catalog *cat, const char *name);
/* Download bytes of the pack's files, exact or estimated; *exact FALSE when
 * some size is only estimated. */
gint64       catalog_pack_download_size (const CatalogPack *pack, gboolean *exact);
/* The step's command line with placeholders replaced: {out} the staging
 * folder, {name} the pack name, {ROLE} the downloaded file of that role. */
char       **catalog_step_expand   (const CatalogPack *pack, const CatalogStep *step,
                                    const char *out, GHashTable *role_paths, GError **error);
char        *catalog_expand_string (const CatalogPack *pack, const char *s, const char *out,
                                    GHashTable *role_paths, GError **error);

/* Set by SIGINT/SIGTERM/SIGHUP: downloads and conversions stop at once,
 * keeping the partial download and removing the staging folder. */
extern volatile sig_atomic_t models_interrupted;
void     models_catch_signals (void);

/* Download progress of the file being fetched (libcurl's thread: the
 * caller marshals it to its own).  One hook per process: the CLI and the
 * plug-in's Get models window run one install at a time.  NULL: none. */
typedef void (*ModelsProgressFunc) (const char *file, gint64 done, gint64 total,
                                    gpointer user_data);
void     models_set_progress  (ModelsProgressFunc func, gpointer user_data);
/* TRUE when the catalog says pack draws ImageNet class imagenet (FALSE
 * when it does not say which classes it draws). */
gboolean catalog_pack_draws   (const CatalogPack *pack, int imagenet);

/* Human sizes: "1.2 GB", "340 MB", "12 kB". */
char    *models_format_size   (gint64 bytes);

/* The cache of downloads: $XDG_CACHE_HOME/gfcg/downloads. */
char    *models_cache_dir     (void);
/* Downloads f into the cache (resuming FILE.part with an HTTP Range request)
 * unless a verified copy is there, checks size and sha256 (a wrong file is
 * deleted), and returns its path; *sha256 gets its checksum.  A transfer
 * whose completeness neither the server's framing nor the catalog can prove
 * is refused; one longer than the catalog allows is stopped and deleted.
 * quiet: no progress on stderr. */
char    *models_download      (const CatalogFile *f, gboolean quiet, char **sha256,
                               GError **error);
/* SHA-256 of a file as lower-case hex; *size gets its length. */
char    *models_sha256_file   (const char *path, gint64 *size, GError **error);

/* Installs the pack: downloads, converts into a hidden staging folder in
 * gfcg_models_dir(), checks that it loads, writes the install manifest and
 * renames it into place.  Any failure removes the staging folder. */
gboolean models_install       (Catalog *cat, CatalogPack *pack, gboolean force, gboolean quiet,
                               GError **error);
/* Re-checks an installed pack: it loads, and its files match the manifest.
 * Returns FALSE with the reason; *report gets a one-line summary when OK. */
gboolean models_verify        (const char *dir, char **report, GError **error);
/* Deletes a pack installed in gfcg_models_dir() (rename to a hidden trash
 * name first, so a half-deleted pack is never seen). */
gboolean models_remove        (const char *name, GError **error);
/* Removes staging and trash folders left by killed runs (their lock is free). */
void     models_sweep_stale   (void);
/* Deletes a folder tree without following symbolic links. */
gboolean models_rm_rf         (const char *path, GError **error);

/* Classes of ImageNet-1k: what "classes": "imagenet-1k" means. */
#define MODELS_N_IMAGENET 1000

#define MODELS_MANIFEST "install-manifest.json"

/* The most bytes a download may have when the catalog gives neither its
 * size nor an estimate (16 GiB; the largest published file is about 3 GB). */
#define MODELS_MAX_UNSIZED ((gint64) 16 << 30)

/* ---- shared between the manager's files only ---- */

/* The lock file of a staging folder (flock: it dies with its process). */
#define LOCK_NAME ".lock"

/* checksums.c */
char *models_record_lookup (const char *file, char **when);
void models_record_store (const char *file, const char *sha, gint64 size, const char *url);
gboolean models_check_file (const CatalogFile *f, const char *path, const char *expected,
                            const char *origin, char **sha_out, GError **error);

/* transfer.c */
gboolean models_transfer (const CatalogFile *f, const char *url, const char *part,
                          gboolean quiet, gboolean *complete, GError **error);

/* install-steps.c */
void models_fsync_path (const char *path);
gint64 models_free_bytes (const char *path);
gboolean models_run_step (CatalogPack *pack, CatalogStep *step, const char *staging,
                          GHashTable *role_paths, gboolean quiet, GError **error);
gboolean models_write_manifest (Catalog *cat, CatalogPack *pack, const char *staging,
                                GHashTable *role_sha, GHashTable *role_url, GError **error);

#endif
