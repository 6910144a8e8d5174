#!/usr/bin/env python3
"""Real pictures in the layout of sample_modes.py's archives, for score.py: the FD and
precision floor at the evaluation's N, and a known-worse control.

    python3 research/eval/real_samples.py --real ../shared/datasets/imagenette/val \
        --pack data/models/imagenette-64 --out real.npz

Configuration 'real-b': val pictures number --start .. --start + --per-class - 1 of
each class (sorted file names), 64 px (Lanczos); score.py's reference set is numbers
0..99, so with --start 100 none is in both. 'real-blur': the same through --blur px
(Lanczos down, bilinear up). Never commit the output: the pictures are ImageNet's.
"""
import argparse
import json
import os

import numpy as np
from PIL import Image

from score import load_real


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--real', required=True, help='Imagenette val folder (<wnid>/*.JPEG)')
    ap.add_argument('--pack', required=True, help='the pack whose classes to take')
    ap.add_argument('--start', type=int, default=100)
    ap.add_argument('--per-class', type=int, default=30)
    ap.add_argument('--blur', type=int, default=24)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    wnids = [c['wnid'] for c in json.load(open(os.path.join(a.pack, 'pack.json')))['classes']]
    # score.py's own loader: the same crop and 64-px Lanczos as its reference set.
    sharp, labels = load_real(a.real, wnids, a.per_class, start=a.start)
    counts = np.bincount(labels, minlength=len(wnids))
    if counts.min() < a.per_class:
        raise SystemExit(f'{wnids[counts.argmin()]}: only {counts.min()} pictures from number {a.start}')
    blur = np.stack([np.asarray(Image.fromarray(x).resize((a.blur, a.blur), Image.LANCZOS)
                                .resize((64, 64), Image.BILINEAR)) for x in sharp])
    np.savez(a.out, labels=labels, **{'real-b': sharp, 'real-blur': blur})
    print(f'{a.out}: {len(labels)} pictures per configuration')


if __name__ == '__main__':
    main()
