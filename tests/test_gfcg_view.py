"""GFCG's cheap classifier views (--gfcg-view, --classify-every, pack.json
defaults): that each option is obeyed, reaches the trace and keeps the full
view's results.  Their numbers against the reference sampler are
test_parity.py's trajectory cases."""
import json
import math
import shutil

import pytest
from safetensors.torch import load_file

from test_bad_input import expect_error, gfcg

STEPS = 8            # 15 evaluations
N_EVALS = 2 * STEPS - 1


def run(pack, tmp_path, *extra, mode='gfcg', name='t'):
    trace, raw = tmp_path / f'{name}.json', tmp_path / f'{name}.safetensors'
    args = ['sample', '--pack', pack, '--pack-class', 1, '--seed', 7, '--steps', STEPS,
            '--s-max', 1.5, '--out', tmp_path / f'{name}.png', '--out-raw', raw,
            '--trace', trace, '--quiet']
    if mode is not None:
        args += ['--mode', mode]
    p = gfcg(*args, *extra)
    assert p.returncode == 0, p.stderr
    return json.loads(trace.read_text()), load_file(str(raw))['x']


@pytest.mark.parametrize('lagged', [False, True], ids=['now', 'lagged'])
@pytest.mark.parametrize('k', [1, 2, 3, 5, 20])
def test_classify_every_k(packs, tmp_path, k, lagged):
    """ceil(n / k) classifications, on evaluations 0, k, 2k, ...; the
    evaluations between use the reference of the last one (lagged: from the
    evaluation after it)."""
    extra = ['--classify-every', k] + (['--lagged'] if lagged else [])
    tr, _ = run(packs / 'tiny-pixel', tmp_path, *extra)
    ev = tr['evaluations']
    assert len(ev) == N_EVALS
    assert tr['options']['classify_every'] == k
    assert [i for i, e in enumerate(ev) if e['classified']] == list(range(0, N_EVALS, k))
    assert tr['timing']['classifications'] == math.ceil(N_EVALS / k)
    lag = 1 if lagged else 0
    for i, e in enumerate(ev):
        src = (i - lag) // k * k    # the classification this evaluation uses
        if i - lag < 0:
            assert e['c_ref'] == -1 and e['s'] == 0
            continue
        # Lagged, the classified evaluation's own fields are the previous
        # classification's; compare with the following evaluation instead.
        want = ev[src + lag]
        assert (e['c_ref'], e['s'], e['p_c']) == (want['c_ref'], want['s'], want['p_c']), i


def test_half_view_is_used(packs, tmp_path):
    """The first evaluation classifies the same x_c in both runs: only the
    view can make p_c differ."""
    full, _ = run(packs / 'tiny-pixel', tmp_path, '--gfcg-view', 'full', name='full')
    half, _ = run(packs / 'tiny-pixel', tmp_path, '--gfcg-view', 'half', name='half')
    assert full['options']['gfcg_view'] == 'full' and half['options']['gfcg_view'] == 'half'
    assert abs(full['evaluations'][0]['p_c'] - half['evaluations'][0]['p_c']) > 1e-6


@pytest.mark.parametrize('pack', ['tiny-pixel', 'tiny-latent-full'])
def test_full_view_every_one_is_the_default(packs, tmp_path, pack):
    """Absent options and the explicit full view, every evaluation: the same
    bits (the parity suite ties the default to the reference)."""
    a, xa = run(packs / pack, tmp_path, mode='gfcg+atg', name='a')
    b, xb = run(packs / pack, tmp_path, '--gfcg-view', 'full', '--classify-every', 1,
                mode='gfcg+atg', name='b')
    assert a['options']['gfcg_view'] == 'full' and a['options']['classify_every'] == 1
    assert (xa == xb).all()
    assert a['evaluations'] == b['evaluations']


def test_pack_defaults_and_override(packs, tmp_path):
    """pack.json "defaults" set both; the command line overrides them."""
    pack = tmp_path / 'p'
    shutil.copytree(packs / 'tiny-pixel', pack)
    meta = json.loads((pack / 'pack.json').read_text())
    meta.setdefault('defaults', {}).update(gfcg_view='half', classify_every=4)
    (pack / 'pack.json').write_text(json.dumps(meta))
    tr, _ = run(pack, tmp_path, name='d')
    assert tr['options']['gfcg_view'] == 'half' and tr['options']['classify_every'] == 4
    assert sum(e['classified'] for e in tr['evaluations']) == math.ceil(N_EVALS / 4)
    tr, _ = run(pack, tmp_path, '--gfcg-view', 'full', '--classify-every', 1, name='o')
    assert tr['options']['gfcg_view'] == 'full' and tr['options']['classify_every'] == 1
    assert sum(e['classified'] for e in tr['evaluations']) == N_EVALS


@pytest.mark.parametrize('args,msg', [
    (['--gfcg-view', 'quarter'], '--gfcg-view must be full or half'),
    (['--classify-every', '0'], '--classify-every'),
    (['--classify-every', '1001'], '--classify-every'),
    (['--classify-every', 'two'], '--classify-every'),
])
def test_bad_options(packs, tmp_path, args, msg):
    p = gfcg('sample', '--pack', packs / 'tiny-pixel', '--pack-class', 1, '--out', tmp_path / 'x.png',
             *args)
    expect_error(p, msg)
    assert not (tmp_path / 'x.png').exists()


def test_timing_in_trace(packs, tmp_path):
    """The trace says where the time went, for the benchmarks."""
    tr, _ = run(packs / 'tiny-latent-full', tmp_path, mode='gfcg+atg', name='t')
    t = tr['timing']
    assert t['classifications'] == N_EVALS
    for key in ('main_s', 'guide_s', 'view_s', 'classify_s', 'decode_s'):
        assert t[key] > 0, key
    assert t['uncond_s'] == 0 and t['preview_s'] == 0
    assert sum(v for k, v in t.items() if k.endswith('_s')) <= tr['seconds'] * 1.01 + 1e-3
