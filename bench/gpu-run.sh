#!/bin/sh
# bench/gpu-run.sh — the benchmark on an NVIDIA GPU host (Ubuntu 24.04, H100),
# with build-host/engine/cli/gfcg built natively on Debian 12 and the runtime .debs
# of bench/gpu-prepare.sh in bench/gpu-debs/.  Needs PyTorch with CUDA there.
#
#   sh bench/gpu-run.sh [SHAPES] [OUTDIR]     (default: tiny,default,xs,xxl and $OUT or build/bench)
#
# SHAPES: any of bench/bench.py's (UNets tiny, default, xs, xxl; decoders
# vae512, taesd512; classifiers mobilenet, resnet50).  BATCH_SHAPES (default
# xs; empty: none) are run again at batch 2.  BENCH_WORK: where the random
# packs are written (default OUTDIR; vae512's is 200 MB, so keep it out of $OUT).
#
# What it does (environment.md, "An NVIDIA GPU host"): unpacks the .debs into
# a private folder, registers NVIDIA's OpenCL library with the ICD loader
# through OCL_ICD_VENDORS (no root needed), lists the devices, checks that
# opencl:N and cpu give the same picture, then runs bench/bench.py: NVIDIA
# OpenCL (fp32 and fp16 weights, batch 1 and 2) against PyTorch fp32 with TF32
# off and on.  Results: OUTDIR/gpu-*.json and the markdown tables in OUTDIR/gpu-bench.md.
set -u
cd "$(dirname "$0")/.."
# The import path tools/devenv sets (docs/testing.md): this runs outside it.
export PYTHONPATH="$PWD/converters:$PWD/tests/reference:$PWD/research/eval"
shapes=${1:-tiny,default,xs,xxl}
out=${2:-${OUT:-build/bench}}
mkdir -p "$out"
rt=${TMPDIR:-/tmp}/gfcg-rt
rm -rf "$rt"; mkdir -p "$rt/vendors"
for f in bench/gpu-debs/*.deb; do dpkg -x "$f" "$rt"; done
libs="$rt/usr/lib/x86_64-linux-gnu:$rt/usr/lib/x86_64-linux-gnu/openblas-pthread:$rt/lib/x86_64-linux-gnu"
nv=""
for p in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat /usr/lib/nvidia; do
  [ -e "$p/libnvidia-opencl.so.1" ] && { nv="$p/libnvidia-opencl.so.1"; break; }
done
[ -n "$nv" ] || nv=$(find / -name 'libnvidia-opencl.so.1' 2>/dev/null | head -1)
echo "gpu-run: NVIDIA OpenCL library: ${nv:-NOT FOUND}"
[ -n "$nv" ] && echo "$nv" > "$rt/vendors/nvidia.icd"
export OCL_ICD_VENDORS="$rt/vendors"
export GFCG_RT_LIBS="$libs"
export GFCG_BIN="$PWD/build-host/engine/cli/gfcg"
export GFCG_KERNEL_CACHE_DIR="$out/kernel-cache"
run() { LD_LIBRARY_PATH="$libs" "$GFCG_BIN" "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
run devices | tee "$out/gpu-devices.txt"
dev=$(run devices | sed -n 's/^auto *\(opencl:[0-9]*\).*/\1/p')
[ -n "$dev" ] || { echo "gpu-run: no OpenCL GPU found"; dev=opencl:0; }
echo "gpu-run: GPU device $dev"
# Same picture on the GPU and on the CPU backend (the default pack, 8 steps).
run sample --class 217 --steps 8 --seed 3 --out "$out/gpu.png" --out-raw "$out/gpu.st" -q --device "$dev"
run sample --class 217 --steps 8 --seed 3 --out "$out/cpu.png" --out-raw "$out/cpu.st" -q --device cpu
python3 - "$out" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
from PIL import Image
d = sys.argv[1]
a, b = load_file(f'{d}/gpu.st')['x'], load_file(f'{d}/cpu.st')['x']
pa, pb = (np.asarray(Image.open(f'{d}/{n}.png')).astype(int) for n in ('gpu', 'cpu'))
print(f'gpu-run: sample opencl vs cpu: max abs {np.abs(a - b).max():.3g}, PNG max diff {np.abs(pa - pb).max()}/255')
PY
py="python3 bench/bench.py --workdir ${BENCH_WORK:-$out} --no-torch-cpu --peak-gflops ${PEAK_GFLOPS:-67000}"
: > "$out/gpu-bench.md"
# One shape at a time, so that a time limit keeps what was measured.
for s in $(echo "$shapes" | tr , ' '); do
  $py --shapes "$s" --devices "$dev,$dev:fp16" --evals 5 --out "$out/gpu-b1-$s.json" | tee -a "$out/gpu-bench.md"
done
for s in $(echo "${BATCH_SHAPES-xs}" | tr , ' '); do
  $py --shapes "$s" --devices "$dev" --evals 5 --batch 2 --out "$out/gpu-b2-$s.json" | tee -a "$out/gpu-bench.md"
done
