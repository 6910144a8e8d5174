#!/usr/bin/env python3
"""Imagenette -> 64x64 training arrays for research/train/train.py.

    python3 research/train/prepare_data.py [--src ../shared/datasets/imagenette]
                                        [--out .gpu/imagenette64.npz]

Reads `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`, centre-crops to a square
(the Imagenette copy is already 224x224), downscales to 64x64 with PIL's
antialiased Lanczos filter and writes one .npz with

    train_y [N] uint8, val_y [M] uint8    pack class 0..9 = sorted wnid order
    wnids   [10] str                       the class order used
and the pixels either raw
    train_x [N,64,64,3] uint8, val_x [M,64,64,3] uint8
or, when the compressed raw arrays would exceed --max-mb (the file has to
travel to the training machine with the repository), JPEG-encoded at the
highest quality (<= --quality) whose file fits in --max-mb
    train_jpeg [bytes] uint8 + train_off [N+1] int64 (image i is
    jpeg[off[i]:off[i+1]]), the same for val, and jpeg_quality [].
The default 40 MB fits beside the working tree *with* the shipped pack
(25.8 MB, of which the pack is 22.0) in the device's 64 MiB transfer, which a
run resumed from that pack needs.
`load(path)` (also used by train.py) returns the raw arrays in both cases.

The images are ImageNet's (via fast.ai's Imagenette): training data for the
project's own demonstration models, never committed (.gpu/ is git-ignored).
"""
import argparse
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

RES = 64
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def load_image(path, res=RES):
    with Image.open(path) as im:
        im = im.convert('RGB')
        w, h = im.size
        s = min(w, h)
        if w != h:  # centre crop to a square
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        # Lanczos is antialiased in PIL (the kernel widens with the scale);
        # reducing_gap first box-reduces by an integer factor when the ratio is large.
        im = im.resize((res, res), Image.LANCZOS, reducing_gap=3.0)
        return np.asarray(im, dtype=np.uint8)


def _load_many(paths):
    return np.stack([load_image(p) for p in paths])


def read_split(root, wnids, workers):
    paths, labels = [], []
    for k, wnid in enumerate(wnids):
        d = os.path.join(root, wnid)
        files = sorted(f for f in os.listdir(d) if f.lower().endswith(('.jpeg', '.jpg', '.png')))
        paths += [os.path.join(d, f) for f in files]
        labels += [k] * len(files)
    chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(ex.map(_load_many, chunks))
    else:
        parts = [_load_many(c) for c in chunks]
    return np.concatenate(parts), np.asarray(labels, dtype=np.uint8)


def encode_jpeg(x, quality):
    bufs = []
    for img in x:
        b = io.BytesIO()
        # 4:4:4 chroma: at 64x64 the default 4:2:0 visibly blurs colour edges.
        Image.fromarray(img).save(b, format='JPEG', quality=quality, subsampling=0)
        bufs.append(np.frombuffer(b.getvalue(), dtype=np.uint8))
    off = np.zeros(len(bufs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(b) for b in bufs])
    return np.concatenate(bufs), off


def decode_jpeg(buf, off):
    n = len(off) - 1
    first = np.asarray(Image.open(io.BytesIO(buf[off[0]:off[1]].tobytes())).convert('RGB'))
    out = np.empty((n,) + first.shape, dtype=np.uint8)
    for i in range(n):
        with Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())) as im:
            out[i] = np.asarray(im.convert('RGB'))
    return out


def load(path):
    """{'train_x', 'train_y', 'val_x', 'val_y', 'wnids'} as numpy arrays (uint8 pixels)."""
    with np.load(path, allow_pickle=False) as z:
        out = {}
        for split in ('train', 'val'):
            if f'{split}_x' in z:
                out[f'{split}_x'] = z[f'{split}_x']
            else:
                out[f'{split}_x'] = decode_jpeg(z[f'{split}_jpeg'], z[f'{split}_off'])
            out[f'{split}_y'] = z[f'{split}_y'].astype(np.int64)
        out['wnids'] = [str(w) for w in z['wnids']]
        out['encoding'] = 'jpeg' if 'train_jpeg' in z else 'raw'
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--src', default=os.path.join(REPO, '..', 'shared', 'datasets', 'imagenette'))
    ap.add_argument('--out', default=os.path.join(REPO, '.gpu', 'imagenette64.npz'))
    ap.add_argument('--max-mb', type=float, default=40.0,
                    help='largest file (MB, 1e6 bytes): raw if it fits, else JPEG at the highest '
                         'quality that fits')
    ap.add_argument('--quality', type=int, default=95, help='highest JPEG quality to try')
    ap.add_argument('--min-quality', type=int, default=80, help='lowest JPEG quality to accept')
    ap.add_argument('--force-jpeg', action='store_true')
    ap.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()

    t0 = time.time()
    wnids = sorted(d for d in os.listdir(os.path.join(a.src, 'train'))
                   if os.path.isdir(os.path.join(a.src, 'train', d)))
    assert len(wnids) == 10, wnids
    tx, ty = read_split(os.path.join(a.src, 'train'), wnids, a.workers)
    vx, vy = read_split(os.path.join(a.src, 'val'), wnids, a.workers)
    print(f'read {len(tx)} train + {len(vx)} val images in {time.time() - t0:.1f} s; '
          f'per class train {np.bincount(ty).tolist()} val {np.bincount(vy).tolist()}', flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    common = dict(train_y=ty, val_y=vy, wnids=np.asarray(wnids))
    size = None
    if not a.force_jpeg:
        np.savez_compressed(a.out, train_x=tx, val_x=vx, **common)
        size = os.path.getsize(a.out)
        print(f'raw uint8, compressed: {size:,} bytes ({size / 1e6:.1f} MB)')
    if a.force_jpeg or size > a.max_mb * 1e6:
        # Size falls with quality: bisect for the highest quality that fits.
        lo, hi, best = a.min_quality, a.quality, None
        while lo <= hi:
            q = (lo + hi) // 2
            enc = encode_jpeg(tx, q) + encode_jpeg(vx, q)
            nbytes = sum(e.nbytes for e in enc) + 4096  # + labels, offsets, zip headers
            print(f'JPEG q{q} 4:4:4: about {nbytes / 1e6:.1f} MB', flush=True)
            if nbytes <= a.max_mb * 1e6:
                best, lo = (q, enc), q + 1
            else:
                hi = q - 1
        if best is None:
            raise SystemExit(f'no JPEG quality >= {a.min_quality} fits in {a.max_mb} MB')
        q, (tj, to, vj, vo) = best
        # The JPEG bytes do not compress further: store them plainly.
        np.savez(a.out, train_jpeg=tj, train_off=to, val_jpeg=vj, val_off=vo,
                 jpeg_quality=np.int64(q), **common)
        size = os.path.getsize(a.out)
        err = np.abs(decode_jpeg(vj, vo).astype(np.float64) - vx).mean()
        print(f'JPEG q{q} 4:4:4: {size:,} bytes ({size / 1e6:.1f} MB, '
              f'{size / 2**20:.1f} MiB); mean abs error on val {err:.2f} / 255')
    d = load(a.out)
    assert d['train_x'].shape == tx.shape and d['val_x'].shape == vx.shape
    print(f'wrote {a.out}: {size:,} bytes ({size / 1e6:.1f} MB), encoding {d["encoding"]}, '
          f'{time.time() - t0:.1f} s')


if __name__ == '__main__':
    sys.exit(main())
