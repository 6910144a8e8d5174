#!/usr/bin/env python3
"""A stand-in `gfcg` CLI built on the float32 reference, for checking the
parity tests themselves (GFCG_BIN=tests/reference/gfcg_mock.py pytest ...).
It implements only `denoise` and `sample` with the flags test_parity.py uses;
passing it shows the harness works and that float32 arithmetic fits the
tolerances. It is not the engine."""
import argparse
import json
import os
import time

os.environ.update(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from gfcg_ref import final_verdict, load_pack, quantize, sample  # noqa: E402


def denoise(a):
    pack = load_pack(a.pack, torch.float32)
    if a.cls is None:  # --class N: an ImageNet index, as gfcg's
        a.cls = [c['imagenet'] for c in pack.classes].index(a.inet)
    inp = load_file(a.inp)
    with torch.no_grad():
        if a.net == 'classifier':
            out = {'logits': pack.classifier(inp['x'])}
        else:
            out = {'D': pack.nets[a.net](inp['x'], inp['sigma'], inp.get('labels'))}
    save_file({k: v.float().contiguous() for k, v in out.items()}, a.out)


def run_sample(a):
    t0 = time.time()
    pack = load_pack(a.pack, torch.float32)
    if a.cls is None:  # --class N: an ImageNet index, as gfcg's
        a.cls = [c['imagenet'] for c in pack.classes].index(a.inet)
    opts = dict(mode=a.mode, steps=a.steps, guidance=a.guidance, s_max=a.s_max,
                temperature=a.temperature, sigma_lo=a.sigma_lo, sigma_hi=a.sigma_hi,
                lagged=True if a.lagged else None)
    x, trace = sample(pack, a.cls, seed=a.seed, **opts)
    x = x.float()
    if a.out_raw:
        save_file({'x': x.contiguous()}, a.out_raw)
    if a.out:
        Image.fromarray(quantize(x[0].numpy())).save(a.out)
    if a.trace:
        used = dict(pack.defaults)
        used.update({k: v for k, v in opts.items() if v is not None})
        cl = pack.classes[a.cls]
        doc = {'engine': 'gfcg-mock', 'pack': pack.name, 'mode': used.pop('mode'), 'seed': a.seed,
               'class': {'index': a.cls, 'imagenet': cl['imagenet'], 'name': cl['name']},
               'options': used, 'evaluations': trace,
               'nfe': sum(e['nfe'] for e in trace)}
        if pack.classifier is not None:
            top1, p = final_verdict(pack, x)
            doc['final'] = {'top1': top1, 'p_target': float(p[a.cls])}
        doc['seconds'] = time.time() - t0
        with open(a.trace, 'w') as f:
            json.dump(doc, f, indent=1)


def main():
    ap = argparse.ArgumentParser(prog='gfcg-mock')
    sub = ap.add_subparsers(dest='cmd', required=True)
    d = sub.add_parser('denoise')
    d.add_argument('--pack', required=True)
    d.add_argument('--net', required=True, choices=['main', 'guide', 'uncond', 'classifier'])
    d.add_argument('--in', dest='inp', required=True)
    d.add_argument('--out', required=True)
    s = sub.add_parser('sample')
    s.add_argument('--pack', required=True)
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument('--class', dest='inet', type=int, help='ImageNet-1k index')
    which.add_argument('--pack-class', dest='cls', type=int, help="the pack's own index")
    s.add_argument('--seed', type=int, default=0)
    s.add_argument('--mode')
    s.add_argument('--steps', type=int)
    for name in ('guidance', 's-max', 'temperature', 'sigma-lo', 'sigma-hi'):
        s.add_argument('--' + name, type=float)
    s.add_argument('--lagged', action='store_true')
    s.add_argument('--out')
    s.add_argument('--out-raw')
    s.add_argument('--trace')
    a = ap.parse_args()
    torch.set_num_threads(1)
    (denoise if a.cmd == 'denoise' else run_sample)(a)


if __name__ == '__main__':
    main()
