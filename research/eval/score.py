"""Score the evaluation samples with an independent classifier.

    python3 research/eval/score.py --samples samples.npz --pack DIR \
        --evaluator mobilenet.safetensors --real ../shared/datasets/imagenette/val \
        --out-md table.md --out-json scores.json --sheet contact.png

The evaluator is the Coral MobileNetV2 (ImageNet-1k, converted by
converters/gfcg_convert/tflite_to_safetensors.py), never the pack's guidance classifier.
Per configuration: precision (top-1 over all 1000 ImageNet classes equals the
target), mean target probability, Frechet distance of the evaluator's pooled
features against the real validation images of the same classes (passed
through the same 64-pixel bottleneck), within-class diversity (mean pairwise
cosine distance of those features), evaluations and time per image.
"""
import argparse
import glob
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tflite_net import TFLiteNet


def evaluate(net, imgs64, batch=100):
    """uint8 [N, 64, 64, 3] -> (probs over 1000 classes [N, 1000], features [N, D])."""
    probs, feats = [], []
    size = net.input_size
    for i in range(0, len(imgs64), batch):
        x = torch.from_numpy(imgs64[i:i + batch]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
        with torch.no_grad():
            p, f = net(x.clamp(0, 255).permute(0, 2, 3, 1))
        probs.append(p[:, 1:] if p.shape[1] == 1001 else p)   # drop "background"
        feats.append(f)
    return torch.cat(probs).double().numpy(), torch.cat(feats).double().numpy()


def frechet(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets."""
    m1, m2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # sqrt(c1 c2) through the symmetric form sqrt(s c2 s), s = sqrt(c1)
    w, v = np.linalg.eigh(c1)
    s = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    w2 = np.linalg.eigvalsh(s @ c2 @ s)
    return float(((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(np.clip(w2, 0, None)).sum())


def diversity(feats, labels):
    out = []
    for k in np.unique(labels):
        f = feats[labels == k]
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = f @ f.T
        n = len(f)
        out.append(1 - (sim.sum() - n) / (n * (n - 1)))
    return float(np.mean(out))


def load_real(root, wnids, per_class):
    imgs, labels = [], []
    for k, wnid in enumerate(wnids):
        for f in sorted(glob.glob(os.path.join(root, wnid, '*')))[:per_class]:
            im = Image.open(f).convert('RGB').resize((64, 64), Image.LANCZOS)
            imgs.append(np.asarray(im))
            labels.append(k)
    return np.stack(imgs), np.array(labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--samples', required=True,
                    help='npz of research/eval/sample_modes.py; several: comma-separated')
    ap.add_argument('--pack', required=True)
    ap.add_argument('--evaluator', required=True)
    ap.add_argument('--real', required=True)
    ap.add_argument('--real-per-class', type=int, default=100)
    ap.add_argument('--out-md')
    ap.add_argument('--out-json')
    ap.add_argument('--sheet')
    a = ap.parse_args()
    torch.set_num_threads(2)
    meta = json.load(open(os.path.join(a.pack, 'pack.json')))
    inet = np.array([c['imagenet'] for c in meta['classes']])
    wnids = [c['wnid'] for c in meta['classes']]
    # Several archives (research/train/gpu-session.sh splits them): merged, in order.
    data, log = {}, {'configs': {}}
    for path in a.samples.split(','):
        part = np.load(path)
        data.update({k: part[k] for k in part.files})
        log_path = os.path.splitext(path)[0] + '.json'
        if os.path.exists(log_path):
            part_log = json.load(open(log_path))
            log.update({k: v for k, v in part_log.items() if k != 'configs'})
            log['configs'].update(part_log['configs'])
    labels = data['labels']
    net = TFLiteNet(a.evaluator)

    real, real_lab = load_real(a.real, wnids, a.real_per_class)
    p_real, f_real = evaluate(net, real)
    rows = {'real (val, 64 px)': dict(
        precision=float((p_real.argmax(1) == inet[real_lab]).mean()),
        p_target=float(p_real[np.arange(len(real_lab)), inet[real_lab]].mean()),
        # the noise floor: two halves of the real images against each other
        fd=frechet(f_real[0::2], f_real[1::2]),
        diversity=diversity(f_real, real_lab), n=len(real_lab))}
    sheet = []
    for name in [k for k in data if k != 'labels']:
        imgs = data[name]
        p, f = evaluate(net, imgs)
        info = log['configs'].get(name, {})
        rows[name] = dict(
            precision=float((p.argmax(1) == inet[labels]).mean()),
            p_target=float(p[np.arange(len(labels)), inet[labels]].mean()),
            fd=frechet(f, f_real), diversity=diversity(f, labels), n=len(labels),
            nfe=info.get('nfe_per_image'),
            ms_per_image=1000 * info['seconds'] / info['images'] if info else None)
        print(name, rows[name], flush=True)
        first = [imgs[np.where(labels == k)[0][0]] for k in range(len(wnids))]
        sheet.append(np.concatenate(first, axis=1))
    if a.out_json:
        json.dump(dict(rows=rows, samples_log=log), open(a.out_json, 'w'), indent=1)
    if a.out_md:
        with open(a.out_md, 'w') as md:
            md.write('| configuration | precision | mean p(target) | FD (features) | diversity | NFE/image | ms/image (GPU, batched) |\n')
            md.write('| --- | --- | --- | --- | --- | --- | --- |\n')
            for name, r in rows.items():
                md.write(f"| {name} | {100 * r['precision']:.1f}% | {r['p_target']:.3f} | "
                         f"{r['fd']:.1f} | {r['diversity']:.3f} | {r.get('nfe') or '-'} | "
                         f"{'%.1f' % r['ms_per_image'] if r.get('ms_per_image') else '-'} |\n")
    if a.sheet:
        Image.fromarray(np.concatenate(sheet, axis=0)).save(a.sheet)


if __name__ == '__main__':
    main()
