"""Batched sampling of a pack in every guidance mode, for the evaluation.

    python3 research/eval/sample_modes.py --pack DIR --per-class 16 --out samples.npz

The same definitions as the engine (docs/pack-format.md: Heun sampler, every
guidance mode, window, temperature, lagged reference), vectorised over a batch
of images so that a GPU can draw thousands of pictures in a minute.  The C
engine is checked against the per-image reference (tests/reference/gfcg_ref.py)
by the parity tests; this file reuses that reference's networks and schedule.
Noise comes from torch's generator (seeded), not the engine's: evaluation needs
many independent pictures, not bit-equality with `gfcg sample`.

Writes an npz with, per configuration name, uint8 images [N, 64, 64, 3], their
target pack classes, and the mean network evaluations per image; plus a JSON
log with timings.
"""
import argparse
import json
import os
import time

import numpy as np
import torch

from gfcg_ref import load_pack, sigmas

# name: (mode, guidance w, s_max, lagged)
CONFIGS = {
    'none': ('none', 1.0, 0.0, False),
    'cfg-1.5': ('cfg', 1.5, 0.0, False),
    'cfg-2.0': ('cfg', 2.0, 0.0, False),
    'atg-1.5': ('atg', 1.5, 0.0, False),
    'atg-2.0': ('atg', 2.0, 0.0, False),
    'gfcg-1': ('gfcg', 1.0, 1.0, False),
    'gfcg-2': ('gfcg', 1.0, 2.0, False),
    'gfcg-1-lagged': ('gfcg', 1.0, 1.0, True),
    'gfcg+cfg-1.5-1': ('gfcg+cfg', 1.5, 1.0, False),
    'gfcg+atg-1.5-1': ('gfcg+atg', 1.5, 1.0, False),
    'gfcg+atg-1.5-1-lagged': ('gfcg+atg', 1.5, 1.0, True),
    'gfcg+atg-add-1.5-1': ('gfcg+atg-add', 1.5, 1.0, False),
}


class Batched:
    """The pack's networks on a device, evaluated on batches with per-row labels."""

    def __init__(self, pack, device, amp):
        self.pack, self.device, self.amp = pack, device, amp
        self.nets = {k: v.to(device) for k, v in pack.nets.items()}
        self.clf = pack.classifier.to(device)
        self.L = self.nets['main'].label_dim
        self.nfe = 0

    def D(self, name, x, sigma, y):
        s = torch.full((x.shape[0],), sigma, device=self.device, dtype=x.dtype)
        with torch.autocast('cuda', torch.bfloat16, enabled=self.amp):
            out = self.nets[name](x, s, y)
        self.nfe += x.shape[0]
        return out.to(x.dtype)

    def probs(self, x, t):
        logits = self.clf(x).double()
        if self.clf.label_space == 'imagenet':
            logits = logits[:, [c['imagenet'] for c in self.pack.classes]]
        return torch.softmax(logits / t, dim=1)

    def onehot(self, k):
        return torch.nn.functional.one_hot(k, self.L).to(self.nets['main'].out_gain.dtype)


def sample_batch(b, labels, mode, w, s_max, lagged, steps, gen, T=1.0, lo=0.0, hi=1000.0,
                 noise=None):
    n, dev = labels.shape[0], b.device
    res = b.nets['main'].img_resolution
    ts = sigmas(steps)
    if noise is None:
        noise = torch.randn(n, 3, res, res, generator=gen, device=dev)
    x = ts[0] * noise
    yc = b.onehot(labels)
    gfcg = mode.startswith('gfcg')
    prev = None

    def reference(x_c):
        p = b.probs(x_c, T)
        q = p.clone()
        q[torch.arange(n), labels] = -1.0
        c_ref = q.argmax(1)
        p_c, p_ref = p[torch.arange(n), labels], p[torch.arange(n), c_ref]
        a = torch.clamp(2 * p_ref / (p_c + p_ref), max=1.0).to(x_c.dtype)
        return c_ref, a

    def guided(x, sigma):
        nonlocal prev
        x_c = b.D('main', x, sigma, yc)
        out = x_c
        c_ref, a = None, torch.zeros(n, device=dev, dtype=x.dtype)
        if gfcg and lo <= sigma <= hi:
            cls = reference(x_c)
            if lagged:
                use, prev = prev, cls
            else:
                use = cls
            if use is not None:
                c_ref, a = use
        elif lagged:
            prev = None
        s = (s_max * a).view(-1, 1, 1, 1)
        if mode in ('cfg', 'gfcg+cfg') and w != 1:
            U = b.nets.get('uncond')
            out = out + (w - 1) * (x_c - (b.D('uncond', x, sigma, None) if U is not None else
                                          b.D('main', x, sigma, torch.zeros_like(yc))))
        if mode in ('atg', 'gfcg+atg-add') and w != 1:
            out = out + (w - 1) * (x_c - b.D('guide', x, sigma, yc))
        if mode in ('gfcg', 'gfcg+cfg', 'gfcg+atg-add') and c_ref is not None:
            out = out + s * (x_c - b.D('main', x, sigma, b.onehot(c_ref)))
        if mode == 'gfcg+atg':
            y = yc if c_ref is None else (1 - a).view(-1, 1) * yc + a.view(-1, 1) * b.onehot(c_ref)
            out = out + ((w - 1) + s) * (x_c - b.D('guide', x, sigma, y))
        return out

    with torch.no_grad():
        for i in range(steps):
            t, tn = ts[i], ts[i + 1]
            d = (x - guided(x, t)) / t
            xn = x + (tn - t) * d
            if i < steps - 1:
                d2 = (xn - guided(xn, tn)) / tn
                xn = x + (tn - t) * (0.5 * d + 0.5 * d2)
            x = xn
    return x


def to_uint8(x):
    return (x * 127.5 + 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--pack', required=True)
    ap.add_argument('--per-class', type=int, default=16)
    ap.add_argument('--steps', type=int, default=32)
    ap.add_argument('--batch', type=int, default=160)
    ap.add_argument('--configs', default='all')
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--no-amp', action='store_true')
    a = ap.parse_args()
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    if dev == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    pack = load_pack(a.pack, torch.float32)
    b = Batched(pack, dev, amp=(dev == 'cuda' and not a.no_amp))
    n_cls = len(pack.classes)
    names = list(CONFIGS) if a.configs == 'all' else a.configs.split(',')
    out, log = {}, {'device': torch.cuda.get_device_name() if dev == 'cuda' else 'cpu',
                    'torch': torch.__version__, 'per_class': a.per_class, 'steps': a.steps,
                    'configs': {}}
    labels_all = torch.arange(n_cls, device=dev).repeat_interleave(a.per_class)
    for name in names:
        mode, w, s_max, lagged = CONFIGS[name]
        gen = torch.Generator(device=dev).manual_seed(a.seed)  # same noise for every mode
        t0, b.nfe, imgs = time.time(), 0, []
        for i in range(0, len(labels_all), a.batch):
            lab = labels_all[i:i + a.batch]
            imgs.append(to_uint8(sample_batch(b, lab, mode, w, s_max, lagged, a.steps, gen)))
        if dev == 'cuda':
            torch.cuda.synchronize()
        sec = time.time() - t0
        out[name] = np.concatenate(imgs)
        log['configs'][name] = dict(mode=mode, guidance=w, s_max=s_max, lagged=lagged,
                                    nfe_per_image=b.nfe / len(labels_all),
                                    seconds=sec, images=len(labels_all))
        print(f'{name:24s} {len(labels_all)} images {sec:6.1f} s  nfe/img {b.nfe / len(labels_all):.1f}',
              flush=True)
        # Saved after every configuration: a run cut short keeps what it drew.
        out['labels'] = labels_all.cpu().numpy()
        np.savez_compressed(a.out, **out)
        with open(os.path.splitext(a.out)[0] + '.json', 'w') as f:
            json.dump(log, f, indent=1)


if __name__ == '__main__':
    main()
