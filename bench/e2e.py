#!/usr/bin/env python3
"""End-to-end time of one img512 GFCG+ATG picture, broken down by part.

    tools/devenv python3 bench/e2e.py [--views full:1,half:1,half:2] [--steps 32]
                                      [--threads 2] [--workdir build/bench-e2e]

Writes (once) a pack of img512 shapes with random weights: EDM2-XS main and an
EDM2-XS guide (NVIDIA's autoguidance pairs an XS snapshot with its model;
64x64x4 latent, 1000 classes), Coral's MobileNetV2 as the classifier (what
the published img512 packs carry), TAESD's decoder as the preview (GFCG's
view) and the SD VAE decoder (sd-vae-ft-mse's config) for the final picture.
Then draws one picture per VIEW:K (`gfcg sample --gfcg-view VIEW
--classify-every K`) and prints the trace's "timing": seconds in the main
and guide networks, GFCG's view (preview decode), the classifier, the final
decode and the rest (the solver, copies).  Random weights give the real
cost, never a real picture.  Timing is never part of the tests.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import bench  # noqa: E402
import make_packs  # noqa: E402
import torch  # noqa: E402


def write_pack(workdir):
    name = 'edm2-xs-gfcg-random'
    d = os.path.join(workdir, name)
    if os.path.exists(os.path.join(d, 'pack.json')):
        return d
    print(f'e2e: writing {name} (random weights, fp16)', file=sys.stderr)
    cfg = bench.SHAPES['xs']
    comps = {"main": ("edm2-unet", cfg, bench.random_unet(cfg, 1)),
             "guide": ("edm2-unet", cfg, bench.random_unet(cfg, 2)),
             "classifier": bench.random_classifier('mobilenet'),
             "preview": bench.random_decoder('taesd512'),
             "decoder": bench.random_decoder('vae512')}
    classes = [{"imagenet": i, "wnid": f"n{i:08d}", "name": f"class {i}"} for i in range(1000)]
    return make_packs.write_pack(workdir, name, {"title": name, "kind": "latent",
                                                 "resolution": 512, "channels": 4,
                                                 "classes": classes}, comps,
                                 dtype=torch.float16)


def run(pack, view, k, steps, threads, seed, out):
    trace = os.path.join(out, f'{view}-{k}.json')
    cmd = [os.environ.get('GFCG_BIN', 'gfcg'), 'sample', '--pack', pack, '--mode', 'gfcg+atg',
           '--guidance', '2.1', '--s-max', '1', '--imagenet', '207', '--seed', str(seed),
           '--steps', str(steps), '--threads', str(threads), '--gfcg-view', view,
           '--classify-every', str(k), '--out', os.path.join(out, f'{view}-{k}.png'),
           '--trace', trace, '--quiet']
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - t0
    with open(trace) as f:
        tr = json.load(f)
    return dict(tr['timing'], view=view, k=k, seconds=tr['seconds'], wall=wall,
                load_before=load, load_after=os.getloadavg()[0],
                evals=len(tr['evaluations']))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--views', default='full:1,half:1,half:2')
    ap.add_argument('--steps', type=int, default=32)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--workdir', default=os.path.join(ROOT, 'build', 'bench-e2e'))
    ap.add_argument('--out', help='JSON results file')
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    pack = write_pack(a.workdir)
    rows = []
    for spec in a.views.split(','):
        view, _, k = spec.partition(':')
        rows.append(run(pack, view, int(k or 1), a.steps, a.threads, a.seed, a.workdir))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f'\n{a.steps} steps, gfcg+atg, {a.threads} threads\n')
    print('| view | classify every | total s | main s | guide s | view s | classifier s '
          '| final decode s | rest s | classifications | ms per view | ms per guided step '
          '(main + guide) | load before / after |')
    print('|' + '---|' * 13)
    for r in rows:
        parts = r['main_s'] + r['guide_s'] + r['view_s'] + r['classify_s'] + r['decode_s']
        rest = r['seconds'] - parts
        n = max(r['classifications'], 1)
        print(f"| {r['view']} | {r['k']} | {r['seconds']:.1f} | {r['main_s']:.1f} | "
              f"{r['guide_s']:.1f} | {r['view_s']:.1f} | {r['classify_s']:.1f} | "
              f"{r['decode_s']:.1f} | {rest:.1f} | {r['classifications']} | "
              f"{1e3 * r['view_s'] / n:.0f} | "
              f"{1e3 * (r['main_s'] + r['guide_s']) / r['evals']:.0f} | "
              f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
