"""The evaluation's statistics (research/eval/score.py): the Frechet distance in its
small-sample form against the textbook formula, Wilson intervals against published
values, the stratified bootstrap, and a whole scoring run with a stand-in evaluator
whose verdicts are known."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import score


def frechet_textbook(f1, f2):
    """|m1 - m2|^2 + tr(c1 + c2 - 2 sqrtm(c1 c2)), tr sqrtm(c1 c2) from the eigenvalues
    of the (non-symmetric) product, which are real and non-negative."""
    m1, m2 = f1.mean(0), f2.mean(0)
    c1, c2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    lam = np.linalg.eigvals(c1 @ c2).real
    return ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()


@pytest.mark.parametrize('n2', [7, 19, 80])  # fewer pictures than features, and more
def test_frechet_matches_textbook(n2):
    rng = np.random.default_rng(n2)
    d = 24
    mix = rng.normal(size=(d, d))
    f1 = rng.normal(size=(120, d)) @ mix
    f2 = rng.normal(size=(n2, d)) @ mix * 0.7 + 0.3
    got, ref = score.frechet(f1, f2), frechet_textbook(f1, f2)
    # Square roots of eigenvalues near zero amplify rounding in either form: the
    # tolerance is relative to the traces (a wrong formula is off by O(1) of them).
    scale = np.trace(np.cov(f1, rowvar=False)) + np.trace(np.cov(f2, rowvar=False))
    assert abs(got - ref) <= 1e-6 * scale, (got, ref, scale)
    assert abs(score.frechet(f1, f1)) <= 1e-6 * scale
    assert got > 0.05 * scale  # the two sets do differ


@pytest.mark.parametrize('k,n,lo,hi', [
    (0, 10, 0.0, 0.2775),      # upper bound z^2 / (n + z^2)
    (5, 10, 0.2366, 0.7634),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),
])
def test_wilson(k, n, lo, hi):
    got = score.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=6e-5)
    assert 0.0 <= got[0] and got[1] <= 1.0 and str(got[0]) != '-0.0'


def test_resamples_keep_each_class_size():
    labels = np.repeat(np.arange(4), [3, 5, 7, 9])
    sets = list(score.resamples(labels, 50))
    assert len(sets) == 50
    for idx in sets:
        assert np.bincount(labels[idx], minlength=4).tolist() == [3, 5, 7, 9]
    assert len({tuple(s) for s in sets}) > 40  # they do differ


class StandIn:
    """An evaluator whose answer is written in the picture: the top-left red value / 20
    is the pack class it 'sees'; features are the picture's 4x4 mean colours."""

    input_size = 16

    def __init__(self, inet):
        self.inet = inet

    def __call__(self, x):
        k = (x[:, 0, 0, 0] / 20).round().long().clamp(0, 9)
        probs = torch.full((len(x), 1000), 1e-4)
        probs[torch.arange(len(x)), torch.as_tensor(self.inet)[k]] = 1.0
        feats = torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 4).flatten(1)
        return probs, feats


def test_scoring_run(tmp_path, monkeypatch):
    pack = tmp_path / 'pack'
    pack.mkdir()
    classes = [{'imagenet': 10 * k + 3, 'wnid': f'n{k:08d}', 'name': f'c{k}'} for k in range(10)]
    (pack / 'pack.json').write_text(json.dumps({'classes': classes}))
    rng = np.random.default_rng(1)

    def picture(k, shade):
        img = np.clip(rng.normal(shade, 30, (64, 64, 3)), 0, 255).astype(np.uint8)
        img[:4, :4, 0] = 20 * k  # survives the evaluator's resize as the class code
        return img

    real = tmp_path / 'real'
    for k in range(10):
        (real / classes[k]['wnid']).mkdir(parents=True)
        for j in range(12):
            Image.fromarray(picture(k, 100 + 5 * k)).save(real / classes[k]['wnid'] / f'{j}.png')
    labels = np.repeat(np.arange(10), 30)
    good = np.stack([picture(k, 100 + 5 * k) for k in labels])            # right class, real look
    wrong = np.stack([picture((k + 1) % 10, 180) for k in labels])        # wrong class, off look
    np.savez(tmp_path / 's.npz', labels=labels, good=good, wrong=wrong)
    monkeypatch.setattr(score, 'TFLiteNet', lambda path: StandIn([c['imagenet'] for c in classes]))
    monkeypatch.setattr('sys.argv', ['score.py', '--samples', str(tmp_path / 's.npz'), '--pack', str(pack),
                                     '--evaluator', 'unused', '--real', str(real), '--real-per-class', '12',
                                     '--boot', '200', '--pairs', 'good:wrong,wrong:good,good:absent',
                                     '--out-json', str(tmp_path / 'o.json'), '--out-md', str(tmp_path / 'o.md')])
    score.main()
    out = json.loads((tmp_path / 'o.json').read_text())
    rows, pairs = out['rows'], out['pairs']
    assert rows['good']['precision'] == 1.0 and rows['wrong']['precision'] == 0.0
    assert rows['good']['precision_ci'] == pytest.approx(score.wilson(300, 300))
    lo, hi = rows['good']['fd_ci']
    assert lo <= rows['good']['fd'] <= hi and hi < rows['wrong']['fd_ci'][0]
    assert set(pairs) == {'good:wrong', 'wrong:good'}
    assert pairs['good:wrong']['precision_diff'] == 1.0
    assert pairs['good:wrong']['fd_diff_ci'][1] < 0
    md = (tmp_path / 'o.md').read_text()
    assert '| good vs wrong | +100.0 pt [+100.0, +100.0] | higher |' in md
    assert '| wrong vs good |' in md and '| lower |' in md and '| worse |' in md


def test_one_picture_per_class_gives_no_intervals(tmp_path, monkeypatch):
    """One picture per class resamples to itself: zero spread must not pass for an
    interval (nor give a verdict)."""
    pack = tmp_path / 'pack'
    pack.mkdir()
    classes = [{'imagenet': k, 'wnid': f'n{k:08d}', 'name': f'c{k}'} for k in range(10)]
    (pack / 'pack.json').write_text(json.dumps({'classes': classes}))
    rng = np.random.default_rng(2)
    real = tmp_path / 'real'
    for k in range(10):
        (real / classes[k]['wnid']).mkdir(parents=True)
        for j in range(6):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                real / classes[k]['wnid'] / f'{j}.png')
    labels = np.arange(10)
    np.savez(tmp_path / 's.npz', labels=labels,
             a=rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8),
             b=rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8))
    monkeypatch.setattr(score, 'TFLiteNet', lambda path: StandIn(list(range(10))))
    monkeypatch.setattr('sys.argv', ['score.py', '--samples', str(tmp_path / 's.npz'), '--pack', str(pack),
                                     '--evaluator', 'unused', '--real', str(real), '--real-per-class', '6',
                                     '--pairs', 'a:b', '--out-json', str(tmp_path / 'o.json'),
                                     '--out-md', str(tmp_path / 'o.md')])
    score.main()
    out = json.loads((tmp_path / 'o.json').read_text())
    assert 'fd_ci' not in out['rows']['a'] and out['rows']['a']['diversity'] is None
    assert out['pairs']['a:b']['fd_diff_ci'] is None
    assert '| a vs b |' in (tmp_path / 'o.md').read_text() and 'better' not in (tmp_path / 'o.md').read_text()
