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
import glob
import json
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--real', required=True, help='Imagenette val folder (<wnid>/*.JPEG)')
    ap.add_argument('--pack', required=True, help='the pack whose classes to take')
    ap.add_argument('--start', type=int, default=100)
    ap.add_argument('--per-class', type=int, default=30)
    ap.add_argument('--blur', type=int, default=24)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    classes = json.load(open(os.path.join(a.pack, 'pack.json')))['classes']
    sharp, blur, labels = [], [], []
    for k, c in enumerate(classes):
        files = sorted(glob.glob(os.path.join(a.real, c['wnid'], '*')))[a.start:a.start + a.per_class]
        if len(files) < a.per_class:
            raise SystemExit(f'{c["wnid"]}: only {len(files)} pictures from number {a.start}')
        for f in files:
            im = Image.open(f).convert('RGB').resize((64, 64), Image.LANCZOS)
            sharp.append(np.asarray(im))
            small = im.resize((a.blur, a.blur), Image.LANCZOS)
            blur.append(np.asarray(small.resize((64, 64), Image.BILINEAR)))
            labels.append(k)
    np.savez(a.out, labels=np.array(labels), **{'real-b': np.stack(sharp), 'real-blur': np.stack(blur)})
    print(f'{a.out}: {len(labels)} pictures per configuration')


if __name__ == '__main__':
    main()
