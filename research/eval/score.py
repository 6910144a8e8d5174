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

Intervals (95%): Wilson's for precision; for FD, the estimate +- 1.96
standard errors of a class-stratified bootstrap of the generated pictures
(--boot resamples). Not the bootstrap's percentiles: a resample repeats
pictures, so it has fewer distinct ones and a higher FD, and its percentiles
need not contain the estimate (see docs/evaluation.md for the measured size);
the spread is still a fair standard error. Every configuration is sampled
from the same classes and noise (sample_modes.py), so --pairs A:B compares
them paired: the same resamples give precision(A) - precision(B) (percentile
interval) and FD(A) - FD(B) (+- 1.96 SE); an interval that excludes 0 is a
difference the sample shows.
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


class Frechet:
    """Frechet distance of feature sets to one fixed reference set (Gaussian fits).

    tr sqrt(c1 c) is the sum of the square roots of the eigenvalues of the
    symmetric s c s (s = sqrt(c1)). With c = X^T X (X: the n centred rows over
    sqrt(n - 1)), its non-zero eigenvalues are those of the n x n X c1 X^T: for
    300 pictures of 1280 features that is a 300 x 300 problem, so bootstraps are
    cheap."""

    def __init__(self, ref):
        self.m = ref.mean(0)
        self.c = np.cov(ref, rowvar=False)
        self.tr = float(np.trace(self.c))

    def __call__(self, f):
        m = f.mean(0)
        x = (f - m) / np.sqrt(len(f) - 1)
        w = np.linalg.eigvalsh(x @ self.c @ x.T)
        return float(((self.m - m) ** 2).sum() + self.tr + (x * x).sum()
                     - 2 * np.sqrt(np.clip(w, 0, None)).sum())


def frechet(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets."""
    return Frechet(f1)(f2)


def wilson(k, n, z=1.96):
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(mid - half, 0.0)), float(min(mid + half, 1.0)))  # no -0.0 from rounding


def resamples(labels, count, seed=0):
    """`count` class-stratified bootstrap index sets (each class keeps its size)."""
    rng = np.random.default_rng(seed)
    groups = [np.where(labels == k)[0] for k in np.unique(labels)]
    for _ in range(count):
        yield np.concatenate([rng.choice(g, len(g)) for g in groups])


def interval(values):
    """95% percentile interval of bootstrap values."""
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def se_interval(estimate, values):
    """estimate +- 1.96 bootstrap standard errors (for FD: see the module's note)."""
    half = 1.96 * float(np.std(values, ddof=1))
    return [estimate - half, estimate + half]


def diversity(feats, labels):
    out = []
    for k in np.unique(labels):
        f = feats[labels == k]
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        sim = f @ f.T
        n = len(f)
        if n < 2:
            return None  # no pairs within a class
        out.append(1 - (sim.sum() - n) / (n * (n - 1)))
    return float(np.mean(out))


def load_real(root, wnids, per_class, start=0):
    """Pictures number start .. start + per_class - 1 of each class (sorted names), 64 px."""
    imgs, labels = [], []
    for k, wnid in enumerate(wnids):
        for f in sorted(glob.glob(os.path.join(root, wnid, '*')))[start:start + per_class]:
            im = Image.open(f).convert('RGB').resize((64, 64), Image.LANCZOS)
            imgs.append(np.asarray(im))
            labels.append(k)
    return np.stack(imgs), np.array(labels)


def verdict(ci, lower_is_better=False):
    if ci is None:
        return '-'
    lo, hi = ci
    if lo > 0:
        return 'worse' if lower_is_better else 'higher'
    if hi < 0:
        return 'better' if lower_is_better else 'lower'
    return 'no difference shown'


def table_md(rows, pairs):
    """The evaluation table (95% intervals in brackets) and the paired comparisons."""
    out = ['| configuration | N | precision [95%] | mean p(target) | FD (features) [95%] | diversity '
           '| NFE/image | ms/image (GPU, batched) |',
           '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for name, r in rows.items():
        lo, hi = r['precision_ci']
        fd = f"{r['fd']:.1f}"
        if r.get('fd_ci'):
            fd += f" [{r['fd_ci'][0]:.1f}, {r['fd_ci'][1]:.1f}]"
        out.append(f"| {name} | {r['n']} | {100 * r['precision']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] | "
                   f"{r['p_target']:.3f} | {fd} | "
                   f"{'-' if r['diversity'] is None else '%.3f' % r['diversity']} | {r.get('nfe') or '-'} | "
                   f"{'%.1f' % r['ms_per_image'] if r.get('ms_per_image') else '-'} |")
    if pairs:
        out += ['', '| A vs B (same classes and noise) | precision A - B [95%] | | FD A - B [95%] | |',
                '| --- | --- | --- | --- | --- |']
        for pair, d in pairs.items():
            pci, fci = d['precision_diff_ci'], d['fd_diff_ci']
            p = f"{100 * d['precision_diff']:+.1f} pt" + (f" [{100 * pci[0]:+.1f}, {100 * pci[1]:+.1f}]" if pci else '')
            f = f"{d['fd_diff']:+.1f}" + (f" [{fci[0]:+.1f}, {fci[1]:+.1f}]" if fci else '')
            out.append(f"| {pair.replace(':', ' vs ')} | {p} | {verdict(pci)} | {f} | "
                       f"{verdict(fci, lower_is_better=True)} |")
    return '\n'.join(out) + '\n'


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
    ap.add_argument('--boot', type=int, default=500, help='bootstrap resamples (0: no FD intervals)')
    ap.add_argument('--pairs', default='gfcg+cfg-1.5-1:cfg-1.5,gfcg-1:cfg-2.0,gfcg+atg-1.5-1:atg-1.5,'
                    'gfcg+atg-1.5-1-lagged:atg-1.5,gfcg-1:none',
                    help='A:B,... paired comparisons (missing configurations are skipped)')
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
    hit_real = p_real.argmax(1) == inet[real_lab]
    rows = {'real (val, 64 px)': dict(
        precision=float(hit_real.mean()), precision_ci=wilson(int(hit_real.sum()), len(hit_real)),
        p_target=float(p_real[np.arange(len(real_lab)), inet[real_lab]].mean()),
        # the noise floor: two halves of the real images against each other
        fd=frechet(f_real[0::2], f_real[1::2]),
        diversity=diversity(f_real, real_lab), n=len(real_lab))}
    fd_real = Frechet(f_real)
    # A class with one picture resamples to itself: the spread would be 0, not an interval.
    if a.boot and np.bincount(labels).min() < 2:
        print('fewer than 2 pictures in some class: no bootstrap intervals', flush=True)
        a.boot = 0
    boots = list(resamples(labels, a.boot))
    sheet, hits, fd_boot = [], {}, {}
    for name in [k for k in data if k != 'labels']:
        imgs = data[name]
        p, f = evaluate(net, imgs)
        hit = p.argmax(1) == inet[labels]
        hits[name] = hit
        info = log['configs'].get(name, {})
        rows[name] = dict(
            precision=float(hit.mean()), precision_ci=wilson(int(hit.sum()), len(hit)),
            p_target=float(p[np.arange(len(labels)), inet[labels]].mean()),
            fd=fd_real(f), diversity=diversity(f, labels), n=len(labels),
            nfe=info.get('nfe_per_image'),
            ms_per_image=1000 * info['seconds'] / info['images'] if info else None)
        if boots:
            # One FD per resample, kept: the paired comparisons reuse them (same indices).
            fd_boot[name] = np.array([fd_real(f[i]) for i in boots])
            rows[name]['fd_ci'] = se_interval(rows[name]['fd'], fd_boot[name])
        print(name, rows[name], flush=True)
        first = [imgs[np.where(labels == k)[0][0]] for k in range(len(wnids))]
        sheet.append(np.concatenate(first, axis=1))
    pairs = {}
    for pair in filter(None, a.pairs.split(',')):
        x, y = pair.split(':')
        if x not in hits or y not in hits:
            continue
        dp = [hits[x][i].mean() - hits[y][i].mean() for i in boots]
        dfd = fd_boot[x] - fd_boot[y] if boots else None
        fd_diff = rows[x]['fd'] - rows[y]['fd']
        pairs[pair] = dict(precision_diff=float(hits[x].mean() - hits[y].mean()), fd_diff=fd_diff,
                           precision_diff_ci=interval(dp) if boots else None,
                           fd_diff_ci=se_interval(fd_diff, dfd) if boots else None, boot=len(boots))
        print(pair, pairs[pair], flush=True)
    if a.out_json:
        json.dump(dict(rows=rows, pairs=pairs, boot=a.boot, samples_log=log), open(a.out_json, 'w'), indent=1)
    if a.out_md:
        with open(a.out_md, 'w') as md:
            md.write(table_md(rows, pairs))
    if a.sheet:
        Image.fromarray(np.concatenate(sheet, axis=0)).save(a.sheet)


if __name__ == '__main__':
    main()
