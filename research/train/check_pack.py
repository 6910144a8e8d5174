#!/usr/bin/env python3
"""Check an exported pack against docs/pack-format.md, the PyTorch reference and
(when built) the C engine.

    python3 research/train/check_pack.py PACK_DIR [--engine build/engine/cli/gfcg] [--steps 4]

- pack.json: the fields train.py writes; every component file <= 15 MiB;
- every tensor F16, and the names exactly the reference module's state-dict
  keys (nothing missing, nothing extra);
- tests/reference/gfcg_ref.load_pack loads it; one gfcg sample (class 0,
  seed 1) in float64;
- with the engine: `gfcg info` and `gfcg sample --out-raw`, compared with the
  reference sample (max abs difference in network space).
Exit status 1 on any failure.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import gfcg_ref  # noqa: E402
from classifier_ref import ResNetCNN  # noqa: E402
from gfcg_convert.nets.edm2 import EDM2Precond  # noqa: E402

MAX_BYTES = 15 * 2**20


def header(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop('__metadata__', None)
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('pack')
    ap.add_argument('--engine', default=os.path.join(REPO, 'build', 'engine', 'cli', 'gfcg'))
    ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--tolerance', type=float, default=2e-3,
                    help='max abs difference engine vs reference (network space)')
    a = ap.parse_args()
    failures = []

    def check(ok, msg):
        print(('ok    ' if ok else 'FAIL  ') + msg, flush=True)
        if not ok:
            failures.append(msg)

    meta = json.load(open(os.path.join(a.pack, 'pack.json')))
    check(meta.get('format') == 'gfcg-pack' and meta.get('format_version') == 1, 'format gfcg-pack v1')
    for key in ('name', 'title', 'licence', 'source', 'kind', 'resolution', 'channels', 'classes',
                'components', 'defaults'):
        check(key in meta, f'pack.json has "{key}"')
    check(all({'imagenet', 'wnid', 'name'} <= set(c) for c in meta['classes']), 'classes carry imagenet/wnid/name')
    total = os.path.getsize(os.path.join(a.pack, 'pack.json'))
    for name, comp in meta['components'].items():
        path = os.path.join(a.pack, comp['file'])
        size = os.path.getsize(path)
        total += size
        check(size <= MAX_BYTES, f'{comp["file"]}: {size:,} bytes <= 15 MiB')
        h = header(path)
        check(all(v['dtype'] == 'F16' for v in h.values()), f'{comp["file"]}: all tensors F16')
        module = EDM2Precond(**comp['config']) if comp['arch'] == 'edm2-unet' else ResNetCNN(**comp['config'])
        want = {k: list(v.shape) for k, v in module.state_dict().items()}
        got = {k: v['shape'] for k, v in h.items()}
        check(set(got) == set(want), f'{comp["file"]}: tensor names exactly the reference keys '
              f'(missing {sorted(set(want) - set(got))[:3]}, extra {sorted(set(got) - set(want))[:3]})')
        check(all(got.get(k) == s for k, s in want.items()), f'{comp["file"]}: shapes match')
        n = sum(v.numel() for v in load_file(path).values())
        print(f'      {name}: {comp["arch"]} {n:,} parameters')
    print(f'      pack total {total:,} bytes ({total / 2**20:.2f} MiB)')

    pack = gfcg_ref.load_pack(a.pack, torch.float64)
    check(True, f'gfcg_ref.load_pack: components {sorted(pack.nets)} + classifier {pack.classifier is not None}')
    x_ref, trace = gfcg_ref.sample(pack, 0, mode='gfcg', seed=1, steps=a.steps)
    check(bool(torch.isfinite(x_ref).all()), f'reference gfcg sample ({a.steps} steps) is finite; '
          f'c_ref of the first evaluation {trace[0]["c_ref"]}, s {trace[0]["s"]:.3f}')

    if not os.path.exists(a.engine):
        print(f'      no engine at {a.engine}: engine checks skipped')
    else:
        r = subprocess.run([a.engine, 'info', '--pack', a.pack], capture_output=True, text=True)
        print(r.stdout + r.stderr)
        check(r.returncode == 0, 'gfcg info')
        with tempfile.TemporaryDirectory() as tmp:
            png = os.path.join(tmp, 'smoke.png')
            raw = os.path.join(tmp, 'smoke.safetensors')
            cmd = [a.engine, 'sample', '--pack', a.pack, '--pack-class', '0', '--mode', 'gfcg',
                   '--steps', str(a.steps), '--seed', '1', '--out', png, '--out-raw', raw]
            r = subprocess.run(cmd, capture_output=True, text=True)
            print(' '.join(cmd[1:]) + '\n' + r.stdout + r.stderr)
            check(r.returncode == 0 and os.path.exists(png), 'gfcg sample writes a PNG')
            if os.path.exists(raw):
                x_eng = load_file(raw)['x'].double()
                diff = (x_eng.reshape(x_ref.shape) - x_ref).abs().max().item()
                check(diff <= a.tolerance, f'engine vs reference sample: max abs diff {diff:.2e} '
                      f'(tolerance {a.tolerance:g})')
    print('FAILED: ' + '; '.join(failures) if failures else 'all checks passed')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
