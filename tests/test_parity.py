"""Parity of the C engine (`gfcg`) with the float64 PyTorch reference.

The binary comes from $GFCG_BIN, else `gfcg` on PATH; a missing binary fails
every test (nothing is skipped). Measured errors are printed (run pytest with
-s to see them) and, when $GFCG_PARITY_REPORT names a file, written there as
JSON {case: max abs error}.
"""
import json
import os
import shutil
import subprocess
import zlib

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from gfcg_ref import load_pack, quantize, sample, final_verdict, sigmas

DENOISE_TOL = 1e-4      # D and logits, max abs
TRAJ_TOL = 1e-3         # final x (max abs / max(1, max |x|)) and trace s (max abs)
REPORT = {}
_refs = {}


# ---------------------------------------------------------------- helpers

def gfcg_bin():
    b = os.environ.get('GFCG_BIN') or shutil.which('gfcg')
    if not b or not os.access(b, os.X_OK):
        pytest.fail('engine binary not found: set GFCG_BIN or put gfcg on PATH', pytrace=False)
    return b


def run(*args):
    cmd = [gfcg_bin()] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        pytest.fail(f'{" ".join(cmd)}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}', pytrace=False)
    return p


def ref(packs, name):
    if name not in _refs:
        _refs[name] = load_pack(str(packs / name), torch.float64)
    return _refs[name]


def record(case, err, tol, what='max abs err'):
    print(f'\n[parity] {case}: {what} {err:.3e} (tol {tol:g})')
    REPORT[case] = err


@pytest.fixture(scope='session', autouse=True)
def _write_report():
    yield
    path = os.environ.get('GFCG_PARITY_REPORT')
    if path:
        with open(path, 'w') as f:
            json.dump(REPORT, f, indent=2, sort_keys=True)


def test_binary_present():
    gfcg_bin()


# ---------------------------------------------------------------- (a) denoiser

def denoise_batch(net, seed):
    """Six images at sigma 0.002 .. 80 with one-hot, zero and mixed labels."""
    g = torch.Generator().manual_seed(seed)
    c, r = net.img_channels, net.img_resolution
    sigma = torch.tensor([0.002, 0.05, 1.0, 10.0, 80.0, 0.3])
    clean = torch.rand(6, c, max(r // 2, 1), max(r // 2, 1), generator=g) * 2 - 1
    clean = torch.nn.functional.interpolate(clean, size=(r, r), mode='bilinear')
    x = clean + sigma.view(-1, 1, 1, 1) * torch.randn(6, c, r, r, generator=g)
    labels = None
    if net.label_dim:
        n = net.label_dim
        labels = torch.zeros(6, n)
        labels[0, 0] = 1                      # one-hot
        labels[1, n - 1] = 1                  # one-hot, last class
        # row 2: zero label (unconditional)
        labels[3, 0], labels[3, 1] = 0.3, 0.7  # mix of two classes
        labels[4, 1 % n] = 1
        labels[5] = 1.0 / n                   # uniform mix
    return x, sigma, labels


DENOISE_CASES = [
    ('tiny-pixel', 'main', True), ('tiny-pixel', 'main', False), ('tiny-pixel', 'guide', True),
    ('tiny-pixel', 'uncond', False),
    ('tiny-pixel-f16', 'main', True), ('tiny-pixel-f16', 'guide', True),
    ('tiny-pixel-f16', 'uncond', False), ('tiny-pixel-bf16', 'main', True),
    ('tiny-latent', 'main', True), ('tiny-odd', 'main', True),
]


@pytest.mark.parametrize('pack,net,with_labels', DENOISE_CASES,
                         ids=[f'{p}-{n}' + ('' if l else '-nolabels') for p, n, l in DENOISE_CASES])
def test_denoise(packs, tmp_path, pack, net, with_labels):
    model = ref(packs, pack).nets[net]
    x, sigma, labels = denoise_batch(model, seed=zlib.crc32(f'{pack}/{net}'.encode()))
    inp = {'x': x.contiguous(), 'sigma': sigma}
    if with_labels and labels is not None:
        inp['labels'] = labels
    save_file(inp, str(tmp_path / 'in.safetensors'))
    run('denoise', '--pack', packs / pack, '--net', net,
        '--in', tmp_path / 'in.safetensors', '--out', tmp_path / 'out.safetensors')
    got = load_file(str(tmp_path / 'out.safetensors'))['D']
    assert got.dtype == torch.float32 and list(got.shape) == list(x.shape)
    with torch.no_grad():
        want = model(x.double(), sigma.double(), labels.double() if 'labels' in inp else None)
    err_per_sigma = (got.double() - want).abs().flatten(1).max(1).values
    err = float(err_per_sigma.max())
    record(f'denoise/{pack}/{net}' + ('' if with_labels else '/nolabels'), err, DENOISE_TOL)
    assert err <= DENOISE_TOL, f'per-sigma errors {dict(zip(sigma.tolist(), err_per_sigma.tolist()))}'


# ---------------------------------------------------------------- (b) classifier

@pytest.mark.parametrize('pack,size', [('tiny-pixel', None), ('tiny-pixel-inet', None),
                                       ('tiny-pixel-f16', None), ('tiny-odd', None),
                                       # resizing to the classifier's 12 px: enlarging, and
                                       # shrinking by 3.4x and 5.3x (antialiased)
                                       ('tiny-pixel-inet', 7), ('tiny-pixel-inet', 41),
                                       ('tiny-pixel-inet', 64)])
def test_classifier(packs, tmp_path, pack, size):
    p = ref(packs, pack)
    g = torch.Generator().manual_seed(11)
    r = size or p.resolution
    # Slightly beyond [-1, 1] so the clamp of the input preparation matters.
    x = torch.rand(5, 3, r, r, generator=g) * 2.6 - 1.3
    save_file({'x': x, 'sigma': torch.ones(5)}, str(tmp_path / 'in.safetensors'))
    run('denoise', '--pack', packs / pack, '--net', 'classifier',
        '--in', tmp_path / 'in.safetensors', '--out', tmp_path / 'out.safetensors')
    got = load_file(str(tmp_path / 'out.safetensors'))['logits']
    with torch.no_grad():
        want = p.classifier(x.double())
    assert got.dtype == torch.float32 and got.shape == want.shape
    err = float((got.double() - want).abs().max())
    record(f'classifier/{pack}' + (f'/{size}px' if size else ''), err, DENOISE_TOL)
    assert err <= DENOISE_TOL


# ---------------------------------------------------------------- (c) trajectories

def case(pack, cls, mode, seed, **opts):
    return dict(pack=pack, cls=cls, mode=mode, seed=seed, opts=opts)


TRAJ = [
    case('tiny-pixel', 1, 'none', 3),
    case('tiny-pixel', 2, 'cfg', 4, guidance=2.0),
    case('tiny-pixel', 0, 'cfg', 5, guidance=1.0),          # zero coefficient: D_U not run
    case('tiny-pixel', 3, 'atg', 6, guidance=2.0),
    case('tiny-pixel', 1, 'gfcg', 7, s_max=1.5),
    case('tiny-pixel', 1, 'gfcg', 7, s_max=1.5, lagged=True),
    case('tiny-pixel', 2, 'gfcg+cfg', 8, guidance=1.5, s_max=2.0),
    case('tiny-pixel', 2, 'gfcg+cfg', 8, guidance=1.5, s_max=2.0, lagged=True),
    case('tiny-pixel', 0, 'gfcg+atg', 9, guidance=2.0, s_max=1.0),
    case('tiny-pixel', 0, 'gfcg+atg', 9, guidance=2.0, s_max=1.0, lagged=True),
    case('tiny-pixel', 3, 'gfcg+atg-add', 10, guidance=1.5, s_max=1.5),
    case('tiny-pixel', 3, 'gfcg+atg-add', 10, guidance=1.5, s_max=1.5, lagged=True),
    # window that excludes the first and last steps, temperature
    case('tiny-pixel', 1, 'gfcg', 11, s_max=2.0, temperature=2.0, sigma_lo=0.5, sigma_hi=20.0),
    case('tiny-pixel', 2, 'gfcg-atg', 12, guidance=1.5, s_max=1.0, temperature=0.7,
         sigma_lo=0.1, sigma_hi=5.0, lagged=True),
    # s_max 0: the classifier runs but the GFCG term has coefficient 0
    case('tiny-pixel', 0, 'gfcg-atg-add', 13, guidance=2.0, s_max=0.0),
    case('tiny-pixel-inet', 2, 'gfcg', 14, s_max=1.5),
    case('tiny-pixel-inet', 3, 'gfcg+cfg', 15, guidance=1.5, s_max=1.0, lagged=True),
    case('tiny-pixel-f16', 1, 'gfcg+atg', 16, guidance=2.0, s_max=1.5),
    case('tiny-odd', 0, 'cfg', 17, guidance=2.0),            # no uncond: main, zero label
    case('tiny-odd', 1, None, 18),                          # everything from pack.json defaults
    # GFCG's cheap views: the 2x pooled estimate, classifying every Kth
    # evaluation (held reference between), lagged or not, inside a window,
    # on an odd pooled size (20 -> 10 -> the classifier's 13) and through a
    # latent pack's decoder (8x8 -> 4x4 latent -> 32 px).
    case('tiny-pixel', 1, 'gfcg', 7, s_max=1.5, gfcg_view='half'),
    case('tiny-pixel', 2, 'gfcg+cfg', 8, guidance=1.5, s_max=2.0, classify_every=3),
    case('tiny-pixel', 0, 'gfcg+atg', 9, guidance=2.0, s_max=1.0, lagged=True, gfcg_view='half',
         classify_every=2),
    case('tiny-pixel', 1, 'gfcg', 11, s_max=2.0, sigma_lo=0.5, sigma_hi=20.0, classify_every=4),
    case('tiny-odd', 1, 'gfcg', 21, s_max=1.5, gfcg_view='half', classify_every=2),
    case('tiny-latent-full', 1, 'gfcg+atg', 19, guidance=2.0, s_max=1.5, gfcg_view='half'),
    case('tiny-latent-full', 2, 'gfcg', 20, s_max=1.5, lagged=True, classify_every=3),
]


def traj_id(c):
    o = ','.join(f'{k}={v}' for k, v in c['opts'].items())
    return f"{c['pack']}-{c['mode'] or 'defaults'}-c{c['cls']}-s{c['seed']}" + (f'-{o}' if o else '')


@pytest.mark.parametrize('c', TRAJ, ids=[traj_id(c) for c in TRAJ])
def test_trajectory(packs, tmp_path, c):
    p = ref(packs, c['pack'])
    o = c['opts']
    args = ['sample', '--pack', packs / c['pack'], '--pack-class', c['cls'], '--seed', c['seed'],
            '--out', tmp_path / 'x.png', '--out-raw', tmp_path / 'raw.safetensors',
            '--trace', tmp_path / 't.json']
    if c['mode'] is not None:
        args += ['--mode', c['mode'], '--steps', 8]
        for key in ('guidance', 's_max', 'temperature', 'sigma_lo', 'sigma_hi'):
            if key in o:
                args += ['--' + key.replace('_', '-'), o[key]]
        if o.get('lagged'):
            args += ['--lagged']
        if 'gfcg_view' in o:
            args += ['--gfcg-view', o['gfcg_view']]
        if 'classify_every' in o:
            args += ['--classify-every', o['classify_every']]
    run(*args)

    steps = 8 if c['mode'] is not None else None
    want_x, want_tr = sample(p, c['cls'], c['mode'], c['seed'], steps=steps, **o)
    got_x = load_file(str(tmp_path / 'raw.safetensors'))['x']
    assert got_x.dtype == torch.float32 and got_x.shape == want_x.shape
    # Guided trajectories can leave [-1, 1] by far; the error is taken relative
    # to the image's own scale once that exceeds 1.
    x_err = float((got_x.double() - want_x).abs().max()) / max(1.0, float(want_x.abs().max()))

    with open(tmp_path / 't.json') as f:
        tr = json.load(f)
    ev = tr['evaluations']
    n = steps or p.defaults['steps']
    assert len(ev) == len(want_tr) == 2 * n - 1
    assert [e['stage'] for e in ev] == [e['stage'] for e in want_tr]
    assert [e['step'] for e in ev] == [e['step'] for e in want_tr]
    np.testing.assert_allclose([e['sigma'] for e in ev], [e['sigma'] for e in want_tr], rtol=1e-6)
    assert [e['classified'] for e in ev] == [e['classified'] for e in want_tr]
    assert [e['c_ref'] for e in ev] == [e['c_ref'] for e in want_tr], 'c_ref sequence'
    s_err = max(abs(e['s'] - w['s']) for e, w in zip(ev, want_tr))
    assert tr['nfe'] == sum(e['nfe'] for e in want_tr), 'nfe (zero-coefficient terms must be skipped)'
    assert tr['timing']['classifications'] == sum(e['classified'] for e in ev)
    assert tr['seed'] == c['seed'] and tr['class']['index'] == c['cls']
    assert tr['class']['imagenet'] == p.classes[c['cls']]['imagenet']
    for key, val in tr['options'].items():
        if key in p.defaults and key != 'mode':
            want = o.get(key, steps if key == 'steps' and steps else p.defaults[key])
            ok = val == want if isinstance(want, (bool, str)) else val == pytest.approx(want)
            assert ok, f'options.{key}: {val!r} != {want!r}'
    if p.classifier is not None:
        assert tr['final']['top1'] == final_verdict(p, got_x.double())[0]

    # PNG (pixel packs; a latent pack's is its decoder's, test_decoders.py): right
    # size, and exactly the quantisation of the engine's own raw output
    # (a +-1 difference is allowed only within 1e-3 of a rounding boundary).
    from PIL import Image
    img = Image.open(tmp_path / 'x.png')
    assert img.size == (p.resolution, p.resolution) and img.mode == 'RGB'
    if p.kind == 'pixel':
        png = np.asarray(img).astype(int)
        raw = got_x[0].double().numpy()
        q = quantize(raw).astype(int)
        v = (127.5 * raw + 127.5).transpose(1, 2, 0)
        near_half = np.abs(np.abs(v - np.trunc(v)) - 0.5) < 1e-3
        bad = (png != q) & ~(near_half & (np.abs(png - q) == 1))
        assert not bad.any(), f'{bad.sum()} PNG pixels differ from the quantised raw output'

    name = f'trajectory/{traj_id(c)}'
    record(name + '/x', x_err, TRAJ_TOL, 'max abs err / max(1, max|x|)')
    record(name + '/s', s_err, TRAJ_TOL)
    assert x_err <= TRAJ_TOL
    assert s_err <= TRAJ_TOL


def test_trajectory_cases_cover_contract():
    """Guard against the case table drifting: every mode and both lagged settings."""
    from gfcg_ref import MODES
    seen = {(c['mode'] or '').replace('-', '+').replace('+add', '-add') for c in TRAJ}
    assert set(MODES) <= seen
    assert any(c['opts'].get('sigma_hi', 1000) < 80 for c in TRAJ)
    # The window case must leave some evaluations out and keep some in.
    ts = sigmas(8)
    assert any(not (0.5 <= t <= 20) for t in ts) and any(0.5 <= t <= 20 for t in ts)


# ---------------------------------------------------------------- (d) from a source

def source_tensors(p, seed, with_mask):
    """A smooth network-space source for pack p ([C, R, R]: pictures in [-1, 1],
    latents about EDM2's scale) and a feathered mask [R, R]: 1 in a block, 0
    around it, 0.5 and 0.25 at its edges."""
    g = torch.Generator().manual_seed(seed)
    c, r = p.net_shape[0], p.net_shape[1]
    coarse = torch.rand(1, c, max(r // 2, 1), max(r // 2, 1), generator=g) * 2 - 1
    init = torch.nn.functional.interpolate(coarse, size=(r, r), mode='bilinear')[0]
    if p.kind == 'latent':
        init = 1.2 * init
    if not with_mask:
        return init.contiguous(), None
    m = torch.zeros(r, r)
    a, b = r // 4, 3 * r // 4
    m[a:b, a // 2:b] = 1
    m[a - 1, a // 2:b] = 0.5
    m[a:b, b] = 0.25
    return init.contiguous(), m


def src_case(pack, cls, mode, seed, strength, mask, **opts):
    return dict(pack=pack, cls=cls, mode=mode, seed=seed, strength=strength, mask=mask, opts=opts)


# Every mode on a pixel and a latent pack, with and without a mask, several
# strengths (8 steps: 0.1 runs 1 step, 0.3 3, 0.5 4, 0.6 5, 0.75 6, 0.9 8 - 1e-9
# rounds up to 8, 1 all of them, 0 none).
SOURCE = [
    src_case('tiny-pixel', 1, 'none', 21, 0.5, True),
    src_case('tiny-pixel', 2, 'cfg', 22, 0.75, False, guidance=2.0),
    src_case('tiny-pixel', 3, 'atg', 23, 1.0, True, guidance=2.0),
    src_case('tiny-pixel', 1, 'gfcg', 24, 0.5, True, s_max=1.5),
    src_case('tiny-pixel', 1, 'gfcg', 25, 0.3, False, s_max=1.5, lagged=True),
    src_case('tiny-pixel', 2, 'gfcg+cfg', 26, 0.6, True, guidance=1.5, s_max=2.0),
    src_case('tiny-pixel', 0, 'gfcg+atg', 27, 0.5, True, guidance=2.0, s_max=1.0, lagged=True),
    src_case('tiny-pixel', 3, 'gfcg+atg-add', 28, 0.9, False, guidance=1.5, s_max=1.5),
    src_case('tiny-pixel', 1, 'gfcg', 29, 0.1, True, s_max=1.0),
    src_case('tiny-pixel', 1, 'gfcg', 30, 0.0, True),
    src_case('tiny-latent-full', 1, 'none', 31, 0.5, True),
    src_case('tiny-latent-full', 2, 'cfg', 32, 0.75, False, guidance=2.0),
    src_case('tiny-latent-full', 3, 'atg', 33, 1.0, True, guidance=2.0),
    src_case('tiny-latent-full', 0, 'gfcg', 34, 0.5, True, s_max=1.5),
    src_case('tiny-latent-full', 1, 'gfcg+cfg', 35, 0.6, False, guidance=1.5, s_max=2.0),
    src_case('tiny-latent-full', 2, 'gfcg+atg', 36, 0.5, True, guidance=2.0, s_max=1.0),
    src_case('tiny-latent-full', 3, 'gfcg+atg-add', 37, 0.75, True, guidance=1.5, s_max=1.5,
             lagged=True),
]


def src_id(c):
    o = ','.join(f'{k}={v}' for k, v in c['opts'].items())
    return (f"{c['pack']}-{c['mode']}-c{c['cls']}-s{c['seed']}-strength{c['strength']}" +
            ('-mask' if c['mask'] else '') + (f'-{o}' if o else ''))


def check_trace(tr, want_tr, steps, strength, mask):
    """The trace of a run from a source against the reference's; returns the
    largest errors of s, p_c and p_ref."""
    ev = tr['evaluations']
    k = int(np.ceil(strength * steps - 1e-9))
    assert len(ev) == len(want_tr) == max(2 * k - 1, 0)
    assert [(e['step'], e['stage']) for e in ev] == [(e['step'], e['stage']) for e in want_tr]
    np.testing.assert_allclose([e['sigma'] for e in ev], [e['sigma'] for e in want_tr], rtol=1e-6)
    assert [e['classified'] for e in ev] == [e['classified'] for e in want_tr]
    assert [e['c_ref'] for e in ev] == [e['c_ref'] for e in want_tr], 'c_ref sequence'
    assert tr['nfe'] == sum(e['nfe'] for e in want_tr)
    assert tr['options']['strength'] == pytest.approx(strength)
    src = tr['source']
    assert src['init'] is True and src['mask'] is mask
    assert src['start_step'] == steps - k
    assert src['start_sigma'] == pytest.approx(sigmas(steps)[steps - k], rel=1e-9)
    errs = [0.0, 0.0, 0.0]
    for e, w in zip(ev, want_tr):
        errs[0] = max(errs[0], abs(e['s'] - w['s']))
        if w['p_c'] is not None:
            errs[1] = max(errs[1], abs(e['p_c'] - w['p_c']))
            errs[2] = max(errs[2], abs(e['p_ref'] - w['p_ref']))
    return errs


@pytest.mark.parametrize('c', SOURCE, ids=[src_id(c) for c in SOURCE])
def test_trajectory_from_source(packs, tmp_path, c):
    """Sampling from a network-space source (--init-raw): the start on the
    schedule, the masked re-noising and the classifier's composited view,
    against the reference."""
    p = ref(packs, c['pack'])
    o = c['opts']
    init, mask = source_tensors(p, c['seed'], c['mask'])
    tensors = {'x': init[None].contiguous()}
    if mask is not None:
        tensors['mask'] = mask
    save_file(tensors, str(tmp_path / 'src.safetensors'))
    args = ['sample', '--pack', packs / c['pack'], '--pack-class', c['cls'], '--seed', c['seed'],
            '--mode', c['mode'], '--steps', 8, '--strength', c['strength'],
            '--init-raw', tmp_path / 'src.safetensors', '--out', tmp_path / 'x.png',
            '--out-raw', tmp_path / 'raw.safetensors', '--trace', tmp_path / 't.json', '--quiet']
    for key in ('guidance', 's_max'):
        if key in o:
            args += ['--' + key.replace('_', '-'), o[key]]
    if o.get('lagged'):
        args += ['--lagged']
    run(*args)

    want_x, want_tr = sample(p, c['cls'], c['mode'], c['seed'], steps=8, strength=c['strength'],
                             init=init.double(), mask=None if mask is None else mask.double(), **o)
    got_x = load_file(str(tmp_path / 'raw.safetensors'))['x']
    assert got_x.shape == want_x.shape
    x_err = float((got_x.double() - want_x).abs().max()) / max(1.0, float(want_x.abs().max()))
    tr = json.loads((tmp_path / 't.json').read_text())
    s_err, pc_err, pref_err = check_trace(tr, want_tr, 8, c['strength'], mask is not None)
    if c['strength'] == 0:
        assert torch.equal(got_x[0], init), 'strength 0 returns the source itself'
    if mask is not None:
        # At sigma 0 the kept part is the source exactly (float32 blend).
        keep = (mask == 0).expand_as(init)
        assert torch.equal(got_x[0][keep], init[keep])
    if p.kind == 'pixel':
        from PIL import Image
        png = np.asarray(Image.open(tmp_path / 'x.png')).astype(int)
        q = quantize(got_x[0].double().numpy()).astype(int)
        assert np.abs(png - q).max() <= 1
    name = f'from-source/{src_id(c)}'
    record(name + '/x', x_err, TRAJ_TOL, 'max abs err / max(1, max|x|)')
    record(name + '/s', s_err, TRAJ_TOL)
    record(name + '/p', max(pc_err, pref_err), TRAJ_TOL)
    assert x_err <= TRAJ_TOL and s_err <= TRAJ_TOL and pc_err <= TRAJ_TOL and pref_err <= TRAJ_TOL


def test_source_cases_cover_contract():
    from gfcg_ref import MODES
    for kind in ('tiny-pixel', 'tiny-latent-full'):
        cases = [c for c in SOURCE if c['pack'] == kind]
        assert {c['mode'] for c in cases} == set(MODES)
        assert {True, False} <= {c['mask'] for c in cases}
    assert {0.0, 1.0} <= {c['strength'] for c in SOURCE}


def test_picture_source_parity(packs, tmp_path):
    """--init and --mask as PNGs of the canvas's own size (16x16: the mapping
    is the identity): the trajectory is the reference's from p/127.5 - 1 and
    mask/255, and the PNG the 8-bit composite of its picture and the source."""
    from PIL import Image
    p = ref(packs, 'tiny-pixel')
    rng = np.random.default_rng(5)
    src = (rng.random((16, 16, 3)) * 255).round().astype(np.uint8)
    m8 = np.zeros((16, 16), np.uint8)
    m8[4:12, 3:11] = 255
    m8[3, 3:11] = 128
    m8[4:12, 11] = 40
    Image.fromarray(src).save(tmp_path / 'src.png')
    Image.fromarray(m8).save(tmp_path / 'mask.png')
    run('sample', '--pack', packs / 'tiny-pixel', '--class', 482, '--mode', 'gfcg+cfg', '--steps', 8,
        '--seed', 41, '--guidance', 1.5, '--init', tmp_path / 'src.png', '--mask',
        tmp_path / 'mask.png', '--strength', 0.6, '--out', tmp_path / 'x.png', '--out-raw',
        tmp_path / 'raw.safetensors', '--trace', tmp_path / 't.json', '--quiet')
    init = torch.from_numpy((src.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1).copy())
    mask = torch.from_numpy(m8.astype(np.float32) / 255)
    # ImageNet 482, cassette player, is tiny-pixel's class 2.
    want_x, want_tr = sample(p, 2, 'gfcg+cfg', 41, steps=8, guidance=1.5, strength=0.6,
                             init=init.double(), mask=mask.double())
    got_x = load_file(str(tmp_path / 'raw.safetensors'))['x']
    x_err = float((got_x.double() - want_x).abs().max()) / max(1.0, float(want_x.abs().max()))
    tr = json.loads((tmp_path / 't.json').read_text())
    errs = check_trace(tr, want_tr, 8, 0.6, True)
    record('from-source/png-16x16/x', x_err, TRAJ_TOL)
    assert x_err <= TRAJ_TOL and max(errs) <= TRAJ_TOL
    # The PNG: the source where the mask is 0, the picture where it is 1, the
    # 8-bit blend between.
    got = np.asarray(Image.open(tmp_path / 'x.png')).astype(np.float64)
    q = quantize(got_x[0].double().numpy()).astype(np.float64)
    mm = (m8.astype(np.float32) / 255).astype(np.float64)[..., None]
    want = np.where(mm > 0, np.floor(mm * q + (1 - mm) * src + 0.5), src)
    assert np.abs(got - want).max() <= 1
    assert (got[m8 == 0] == src[m8 == 0]).all()


def test_latent_picture_source_parity(packs, tmp_path):
    """A latent pack starting from a picture (--init PNG of the canvas's size,
    --mask PNG on whole latent cells): the engine encodes it with the pack's
    encoder, and the trajectory is the reference's from the float64
    reference encoder's latent; the PNG keeps every unmasked pixel."""
    from PIL import Image
    from latent_ref import load_encoder
    from test_decoders import tensors_of
    from test_encoders import NARROW_TAESD_ENC, make_taesd_encoder
    d = tmp_path / 'with-encoder'
    shutil.copytree(packs / 'tiny-latent-full', d)
    save_file(tensors_of(make_taesd_encoder(61)), str(d / 'encoder.safetensors'))
    meta = json.loads((d / 'pack.json').read_text())
    meta['components']['encoder'] = {'file': 'encoder.safetensors', 'arch': 'taesd-encoder',
                                     'config': NARROW_TAESD_ENC}
    (d / 'pack.json').write_text(json.dumps(meta))
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[0:64, 0:64]
    src = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1) + rng.normal(0, 10, (64, 64, 3))
    src = np.clip(src, 0, 255).round().astype(np.uint8)
    m8 = np.zeros((64, 64), np.uint8)
    m8[16:48, 8:40] = 255
    Image.fromarray(src).save(tmp_path / 'src.png')
    Image.fromarray(m8).save(tmp_path / 'mask.png')
    run('sample', '--pack', d, '--class', 217, '--mode', 'gfcg', '--steps', 8, '--seed', 43,
        '--init', tmp_path / 'src.png', '--mask', tmp_path / 'mask.png', '--strength', 0.75,
        '--out', tmp_path / 'x.png', '--out-raw', tmp_path / 'raw.safetensors', '--quiet')

    enc = load_encoder(str(d), meta, meta['components']['encoder'])
    pic = torch.from_numpy(src.astype(np.float64) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.no_grad():
        init = enc(pic)[0][0]
    mask = torch.zeros(8, 8, dtype=torch.float64)
    mask[2:6, 1:5] = 1
    p = ref(packs, 'tiny-latent-full')
    want_x, _ = sample(p, 1, 'gfcg', 43, steps=8, strength=0.75, init=init, mask=mask)  # 217
    got_x = load_file(str(tmp_path / 'raw.safetensors'))['x']
    x_err = float((got_x.double() - want_x).abs().max()) / max(1.0, float(want_x.abs().max()))
    record('from-picture/tiny-latent-full+taesd-encoder/x', x_err, TRAJ_TOL,
           'max abs err / max(1, max|x|)')
    assert x_err <= TRAJ_TOL
    out = np.asarray(Image.open(tmp_path / 'x.png'))
    assert out.shape == src.shape
    assert np.array_equal(out[m8 == 0], src[m8 == 0]), 'an unmasked pixel changed'
    assert (out[m8 == 255] != src[m8 == 255]).any()
