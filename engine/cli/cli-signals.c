/* cli-signals.c — Ctrl-C for the commands that run networks.
 *
 * A signal handler runs on whichever thread the kernel picks, on that
 * thread's stack, usually the main thread, which computes.  Ctrl-C during a
 * 512-px decode on a loaded machine aborted the process with glibc's
 * "corrupted size vs. prev_size" in 3 of 72 runs, the main thread inside
 * oneDNN's sgemm (the exact bad write was not found); with the signal kept
 * off the compute threads, 0 of 300.  So main() blocks SIGINT before such a
 * command starts any thread (OpenMP's and OpenCL's workers inherit the mask)
 * and one idle thread takes it.  A command that registered a cancellable gets
 * it cancelled, which the engine checks before every op; a second Ctrl-C, or
 * one with nothing to cancel, ends the process as Ctrl-C always does.
 * `models` and `convert` keep their own handler (manager/checksums.c). */
#include "gfcg-cli.h"

#include <pthread.h>
#include <signal.h>

static volatile sig_atomic_t got_sigint;
static GMutex        lock;      /* guards target against its owner freeing it */
static GCancellable *target;

static void
on_sigint (int sig)
{
  (void) sig;
  got_sigint = 1;
}

static void
sigint_mask (int how)
{
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGINT);
  pthread_sigmask (how, &set, NULL);
}

static gpointer
watch (gpointer data)
{
  (void) data;
  sigint_mask (SIG_UNBLOCK);
  for (;;)
    {
      if (got_sigint)
        {
          gboolean cancelled = FALSE;
          got_sigint = 0;
          g_mutex_lock (&lock);
          if (target != NULL && !g_cancellable_is_cancelled (target))
            {
              g_cancellable_cancel (target);
              cancelled = TRUE;
            }
          g_mutex_unlock (&lock);
          if (!cancelled)
            {
              /* The default action, for the whole process. */
              signal (SIGINT, SIG_DFL);
              raise (SIGINT);
            }
        }
      g_usleep (20000);
    }
  return NULL;
}

void
cli_signals_init (void)
{
  struct sigaction sa = { 0 };

  sigint_mask (SIG_BLOCK);
  sa.sa_handler = on_sigint;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction (SIGINT, &sa, NULL);
  g_thread_unref (g_thread_new ("gfcg-sigint", watch, NULL));
}

void
cli_signals_cancel_on_sigint (GCancellable *cancellable)
{
  g_mutex_lock (&lock);
  target = cancellable;
  g_mutex_unlock (&lock);
}
