/* modes.c — the guidance modes, one row each: what every client (the
 * sampler, the command line, the plug-in's arguments and dialog) knows
 * about a mode comes from this table.  The definitions are in
 * docs/pack-format.md, "Guided prediction".
 *
 * A new mode is a GfcgMode value (gfcg.h) and a row here; it touches
 * sampler.c only when it needs a kind of term the table cannot express. */
#include "gfcg/gfcg.h"

#include <string.h>

#define N_(s) (s)

static const GfcgModeInfo modes[GFCG_N_MODES] = {
  { GFCG_MODE_NONE, "none", N_("No guidance"), N_("The class-conditional model alone"),
    0, GFCG_WEIGHT_NONE, GFCG_PUSH_NONE, GFCG_REF_NONE },
  { GFCG_MODE_CFG, "cfg", N_("Classifier-free guidance (CFG)"),
    N_("Pushes away from the unconditional prediction by the CFG weight"),
    0, GFCG_WEIGHT_CFG, GFCG_PUSH_UNCOND, GFCG_REF_NONE },
  { GFCG_MODE_ATG, "atg", N_("Autoguidance (ATG)"),
    N_("Pushes away from the pack's smaller guide network by the ATG weight"),
    GFCG_NEEDS_GUIDE, GFCG_WEIGHT_ATG, GFCG_PUSH_GUIDE, GFCG_REF_NONE },
  { GFCG_MODE_GFCG, "gfcg", N_("Gradient-free classifier guidance (GFCG)"),
    N_("Pushes away from the class the classifier confuses with the target"),
    GFCG_NEEDS_CLASSIFIER, GFCG_WEIGHT_NONE, GFCG_PUSH_NONE, GFCG_REF_MAIN },
  { GFCG_MODE_GFCG_CFG, "gfcg+cfg", N_("GFCG + CFG"), N_("Both terms added"),
    GFCG_NEEDS_CLASSIFIER, GFCG_WEIGHT_CFG, GFCG_PUSH_UNCOND, GFCG_REF_MAIN },
  { GFCG_MODE_GFCG_ATG, "gfcg+atg", N_("GFCG + autoguidance"),
    N_("The guide network at a label pulled toward the confused class"),
    GFCG_NEEDS_CLASSIFIER | GFCG_NEEDS_GUIDE, GFCG_WEIGHT_ATG, GFCG_PUSH_NONE,
    GFCG_REF_GUIDE_MIX },
  { GFCG_MODE_GFCG_ATG_ADD, "gfcg+atg-add", N_("GFCG + autoguidance (added)"),
    N_("Both terms added: three network evaluations per step"),
    GFCG_NEEDS_CLASSIFIER | GFCG_NEEDS_GUIDE, GFCG_WEIGHT_ATG, GFCG_PUSH_GUIDE, GFCG_REF_MAIN },
};

const GfcgModeInfo *
gfcg_mode_get_info (GfcgMode mode)
{
  return mode >= 0 && mode < GFCG_N_MODES ? &modes[mode] : NULL;
}

const char *
gfcg_mode_to_string (GfcgMode mode)
{
  const GfcgModeInfo *m = gfcg_mode_get_info (mode);
  return m != NULL ? m->name : "invalid";
}

gboolean
gfcg_mode_from_string (const char *name, GfcgMode *mode)
{
  char *canon;
  gboolean found = FALSE;

  if (name == NULL)
    return FALSE;
  /* "gfcg-cfg" and "gfcg+cfg" are the same mode; only the first '-' or '+'
   * after "gfcg" is a combination sign ("atg-add" keeps its dash). */
  canon = g_ascii_strdown (name, -1);
  if (g_str_has_prefix (canon, "gfcg-"))
    canon[4] = '+';
  for (int m = 0; m < GFCG_N_MODES; m++)
    if (strcmp (canon, modes[m].name) == 0)
      {
        *mode = (GfcgMode) m;
        found = TRUE;
      }
  g_free (canon);
  return found;
}

char *
gfcg_mode_list (const char *sep)
{
  GString *s = g_string_new (NULL);
  for (int m = 0; m < GFCG_N_MODES; m++)
    g_string_append_printf (s, "%s%s", m > 0 ? sep : "", modes[m].name);
  return g_string_free (s, FALSE);
}

void
gfcg_mode_cost (GfcgMode mode, int steps, gboolean weighted, GfcgRunCost *cost)
{
  const GfcgModeInfo *m = gfcg_mode_get_info (mode);
  int evals = MAX (2 * steps - 1, 0);

  memset (cost, 0, sizeof *cost);
  if (m == NULL)
    return;
  cost->main = evals;
  if (m->push == GFCG_PUSH_UNCOND && weighted)
    cost->uncond = evals;
  if (m->push == GFCG_PUSH_GUIDE && weighted)
    cost->guide = evals;
  if (m->ref != GFCG_REF_NONE)
    cost->classifier = evals;
  /* The reference term: main at c_ref, or the guide at the mixed label. */
  if (m->ref == GFCG_REF_MAIN)
    cost->main += evals;
  if (m->ref == GFCG_REF_GUIDE_MIX)
    cost->guide += evals;
}
