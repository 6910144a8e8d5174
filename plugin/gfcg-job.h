/* gfcg-job.h — one run of the plug-in as the engine sees it: the pack, the
 * resolved class and options, and the pictures it drew.  It makes no GIMP
 * call, so it may run in a worker thread. */
#ifndef GFCG_JOB_H
#define GFCG_JOB_H

#include "gfcg-args.h"

G_BEGIN_DECLS

typedef struct
{
  char             *pack_dir;
  char             *device;
  GfcgContext      *ctx;
  GfcgPack         *pack;
  GfcgRequest       req;       /* class, mode, options, count, first seed */
  GPtrArray        *images;    /* GfcgImage *, filled by gfcg_job_run     */
} GfcgJob;

/* A pack already loaded, with its context: the dialog's probe hands over the
 * one it loaded and timed, so that pressing Draw does not load it again. */
typedef struct
{
  char        *dir;     /* as gfcg_job_pack_dir resolved it */
  char        *device;
  GfcgContext *ctx;
  GfcgPack    *pack;
} GfcgLoadedPack;

void      gfcg_loaded_pack_free  (GfcgLoadedPack      *loaded);

/* Called from the thread that runs the job; return FALSE to stop. */
typedef gboolean (*GfcgJobProgressFunc) (GfcgJob            *job,
                                         int                 picture,
                                         const GfcgProgress *progress,
                                         gpointer            user_data);

/* Loads the pack and resolves every argument.  A value the pack or the
 * engine refuses fails with GFCG_ERROR_INVALID_ARGUMENT and a message that
 * starts with the argument's name ("class-index: ...").  loaded (may be
 * NULL) is taken over instead of loading when it holds the same pack on the
 * same device; the job then owns its context and pack, and *loaded is
 * emptied. */
GfcgJob  *gfcg_job_new           (const GfcgArgs      *args,
                                  GfcgLoadedPack      *loaded,
                                  GError             **error);
gboolean  gfcg_job_run           (GfcgJob             *job,
                                  GfcgJobProgressFunc  progress,
                                  gpointer             user_data,
                                  GCancellable        *cancellable,
                                  GError             **error);
void      gfcg_job_free          (GfcgJob             *job);

/* Resolves the pack argument: "" = the default pack, a bare name = a pack
 * beside the default one or installed by `gfcg models fetch`, else a
 * directory (gfcg_pack_resolve). */
char     *gfcg_job_pack_dir      (const char          *pack);

/* "tench (gfcg, seed 7)" for picture j. */
char     *gfcg_job_layer_name    (GfcgJob             *job,
                                  int                  picture);
/* Every parameter, the engine version, the trace and the equivalent
 * `gfcg sample` command, as JSON, for picture j. */
char     *gfcg_job_parameters    (GfcgJob             *job,
                                  int                  picture);

G_END_DECLS

#endif /* GFCG_JOB_H */
