#!/bin/sh
# research/train/gpu-session.sh — the default pack's training and its evaluation
# samples on a lent NVIDIA GPU, in two calls that fit one 15-minute device
# budget (~1.5 min start, 9.5 min training, 3 min sampling).
#
#   sh research/train/gpu-session.sh train     # -> $OUT/pack/ (the new pack)
#   sh research/train/gpu-session.sh eval      # -> $OUT/samples-{a,b,c}.npz + .json
#
# "train" continues the shipped pack data/models/imagenette-64 (train.py
# --resume: its EMA weights, the images it has seen, its defaults), so GPU
# sessions add up; FRESH=1 trains from scratch instead.  It needs
# .gpu/imagenette64.npz (research/train/prepare_data.py, <= 40 MB; carry
# ".gpu" and nothing else: the tree with the pack is 25.8 MB and all must stay
# under 64 MiB; with FRESH=1 the pack may be moved out of the tree first).
# "eval" needs only the new pack, copied to data/models/imagenette-64 first
# (carry nothing).  The
# device returns at most 8 files of 16 MiB each, so the samples are split in
# three archives of four configurations (30 pictures per class: 300 per
# configuration).  Score them here with research/eval/score.py.
set -eu
cd "$(dirname "$0")/../.."
# The import path tools/devenv sets (docs/testing.md): this runs outside it.
export PYTHONPATH="$PWD/converters:$PWD/tests/reference:$PWD/research/eval"
out=${OUT:-build/gpu-session}
mkdir -p "$out"
case "${1:-}" in
  train)
    # 560 s: leaves the eval call its 3 minutes inside the 15-minute budget.
    if [ -n "${FRESH:-}" ]; then resume=; else resume="--resume data/models/imagenette-64"; fi
    # TRAIN_ARGS: more options for train.py (a dry run here: "--smoke --time-limit 0").
    # shellcheck disable=SC2086 # $resume and $TRAIN_ARGS are words or none
    python3 research/train/train.py --data .gpu/imagenette64.npz --out "$out/pack" \
      --time-limit 560 $resume ${TRAIN_ARGS:-}
    ;;
  eval)
    pack=${PACK:-data/models/imagenette-64}
    set -- "none,cfg-1.5,cfg-2.0,atg-1.5" \
           "atg-2.0,gfcg-1,gfcg-2,gfcg-1-lagged" \
           "gfcg+cfg-1.5-1,gfcg+atg-1.5-1,gfcg+atg-1.5-1-lagged,gfcg+atg-add-1.5-1"
    i=0
    for configs in "$@"; do
      part=$(echo abc | cut -c$((i + 1)))
      python3 research/eval/sample_modes.py --pack "$pack" --per-class "${PER_CLASS:-30}" \
        --configs "$configs" --out "$out/samples-$part.npz"
      i=$((i + 1))
    done
    ;;
  *)
    echo "usage: $0 train|eval" >&2
    exit 2
    ;;
esac
