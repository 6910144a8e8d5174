#!/usr/bin/env python3
"""How often GFCG's half view picks the same reference class as the full view,
on the same denoised states.

    tools/devenv python3 bench/view_agreement.py --pack DIR [--steps 16] [--seeds 4]
                                                 [--class-index K] [--s-max 1]

Runs EDM2's Heun trajectory (mode none, the pack's main network, seeds
SEED..SEED+n-1 as one batch) through `gfcg denoise`, keeps every
evaluation's denoised estimate x_c, and shows each to the classifier both
ways, as the sampler would (docs/pack-format.md, "Classifier view"): full =
x_c through the preview decoder (pixel packs: x_c itself), half = x_c 2x2
average-pooled first.  For every state and every target class c it compares
c_ref = argmax_{k != c} p_k and s = s_max min(1, 2 p_ref / (p_c + p_ref))
between the views, and (full view) how often an evaluation's c_ref equals the
one classify_every K would hold for it (that of evaluation e - e % K).  The engine does all the network work; the pooling here is
the reference's (torch avg_pool2d, ceil_mode).  With random weights the
numbers say nothing about pictures: only a trained pack's states and
classifier make them meaningful.
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from gfcg_ref import noise, sigmas


def denoise(pack, net, tmp, **tensors):
    i, o = os.path.join(tmp, 'in.safetensors'), os.path.join(tmp, 'out.safetensors')
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, i)
    subprocess.run([os.environ.get('GFCG_BIN', 'gfcg'), 'denoise', '--pack', pack, '--net', net,
                    '--in', i, '--out', o], check=True)
    return load_file(o)


def batched(pack, net, tmp, x, key, n=16):
    return torch.cat([denoise(pack, net, tmp, x=x[i:i + n])[key] for i in range(0, len(x), n)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--pack', required=True)
    ap.add_argument('--steps', type=int, default=16)
    ap.add_argument('--seeds', type=int, default=4)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--class-index', type=int, default=0, help="pack class of the trajectory")
    ap.add_argument('--s-max', type=float, default=1.0)
    ap.add_argument('--out', help='JSON results file')
    a = ap.parse_args()
    with open(os.path.join(a.pack, 'pack.json')) as f:
        meta = json.load(f)
    main_cfg = meta['components']['main']['config']
    c, r, ld = main_cfg['img_channels'], main_cfg['img_resolution'], main_cfg['label_dim']
    latent = meta['kind'] == 'latent'
    viewer = 'preview' if 'preview' in meta['components'] else 'decoder'
    inet = meta['components']['classifier']['config'].get('label_space') == 'imagenet'
    ids = [k['imagenet'] for k in meta['classes']] if inet else list(range(len(meta['classes'])))
    n = a.seeds
    labels = torch.zeros(n, ld)
    labels[:, a.class_index] = 1
    ts = sigmas(a.steps)
    states = []
    with tempfile.TemporaryDirectory() as tmp:
        x = torch.cat([noise(a.seed + j, [c, r, r]) for j in range(n)]) * ts[0]

        def D(x, t):
            d = denoise(a.pack, 'main', tmp, x=x, sigma=torch.full([n], t), labels=labels)['D']
            states.append(d)
            return d
        for i in range(a.steps):
            t, tn = ts[i], ts[i + 1]
            d = (x - D(x, t)) / t
            xn = x + (tn - t) * d
            if i < a.steps - 1:
                xn = x + (tn - t) * (0.5 * d + 0.5 * (xn - D(xn, tn)) / tn)
            x = xn
        xc = torch.cat(states)                       # [evals * seeds, C, R, R]
        half = F.avg_pool2d(xc, 2, ceil_mode=True)
        if latent:
            full_pic = batched(a.pack, viewer, tmp, xc, 'image')
            half_pic = batched(a.pack, viewer, tmp, half, 'image')
        else:
            full_pic, half_pic = xc, half
        lf = batched(a.pack, 'classifier', tmp, full_pic, 'logits')[:, ids].double()
        lh = batched(a.pack, 'classifier', tmp, half_pic, 'logits')[:, ids].double()
    pf, ph = torch.softmax(lf, 1), torch.softmax(lh, 1)
    k = pf.shape[1]
    # classify_every K (full view): evaluation e of a trajectory uses the
    # classification of evaluation e - e % K; states are [evaluation, seed].
    n_ev = len(states)
    held = {}
    for kk in (2, 3, 4):
        src = torch.tensor([(e - e % kk) * n + j for e in range(n_ev) for j in range(n)])
        same = total_k = 0
        for tgt in range(pf.shape[1]):
            q = pf.clone()
            q[:, tgt] = -1
            cr = q.argmax(1)
            same += int((cr == cr[src]).sum())
            total_k += len(cr)
        held[f'c_ref_agreement_classify_every_{kk}'] = same / total_k
    agree = total = 0
    s_diff, own_agree, top1 = [], 0, float((pf.argmax(1) == ph.argmax(1)).double().mean())
    for tgt in range(k):
        def ref(p):
            q = p.clone()
            q[:, tgt] = -1
            cr = q.argmax(1)
            pr, pc = p.gather(1, cr[:, None])[:, 0], p[:, tgt]
            return cr, a.s_max * torch.clamp(2 * pr / (pc + pr), max=1.0)
        cf, sf = ref(pf)
        ch, sh = ref(ph)
        agree += int((cf == ch).sum())
        total += len(cf)
        s_diff.append((sf - sh).abs())
        if tgt == a.class_index:
            own_agree = float((cf == ch).double().mean())
            own_s = float((sf - sh).abs().mean())
    res = dict(pack=meta['name'], states=len(xc), steps=a.steps, seeds=n, targets=k,
               c_ref_agreement_all_targets=agree / total, c_ref_agreement_own_class=own_agree,
               top1_agreement=top1, mean_abs_s_diff_all=float(torch.cat(s_diff).mean()),
               mean_abs_s_diff_own=own_s, full_size=full_pic.shape[-1], half_size=half_pic.shape[-1], **held)
    print(json.dumps(res))
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
