"""research/train/train.py --resume: GPU loans are 15 minutes, so the default pack's
training has to add up across them. A resumed run must start from the pack's weights,
continue its image count (which the lr decay and the EMA half-life follow), keep its
defaults, and refuse a pack it cannot continue. Smoke-size nets on random pictures:
this checks the bookkeeping, not the quality."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gfcg_convert.nets.edm2 import EDM2Precond, MPConv, normalize

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / 'research' / 'train' / 'train.py'
SHIPPED = REPO / 'data' / 'models' / 'imagenette-64'
WNIDS = [c['wnid'] for c in json.loads((SHIPPED / 'pack.json').read_text())['classes']]


def run_train(tmp, out, *extra):
    # The script runs as the GPU machine runs it: its folder on the path, nothing else.
    cmd = [sys.executable, str(TRAIN), '--smoke', '--data', str(tmp / 'data.npz'),
           '--out', str(out), '--report', str(out), '--no-samples', '--time-limit', '0',
           '--budget-main', '1', '--budget-guide', '1', '--budget-classifier', '1', *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def packs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('train')
    rng = np.random.default_rng(0)
    np.savez(tmp / 'data.npz',
             train_x=rng.integers(0, 256, (48, 64, 64, 3), dtype=np.uint8),
             train_y=np.arange(48, dtype=np.uint8) % 10,
             val_x=rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8),
             val_y=np.arange(40, dtype=np.uint8) % 10,
             wnids=np.asarray(WNIDS))
    a = run_train(tmp, tmp / 'a')
    assert a.returncode == 0, a.stdout[-3000:] + a.stderr[-3000:]
    # Defaults the evaluation would have set: a resumed pack must keep them.
    manifest = json.loads((tmp / 'a' / 'pack.json').read_text())
    manifest['defaults']['guidance_cfg'] = 3.25
    (tmp / 'a' / 'pack.json').write_text(json.dumps(manifest))
    # lr ~ 0 throughout (an endless re-warm-up): the resumed weights stay the start weights.
    b = run_train(tmp, tmp / 'b', '--resume', str(tmp / 'a'), '--resume-rampup-kimg', '1e9')
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    return tmp


def read_log(pack):
    return json.loads((pack / 'train-log.json').read_text())


def test_fresh_pack_is_labelled_like_the_shipped_one(packs):
    shipped = json.loads((SHIPPED / 'pack.json').read_text())
    written = json.loads((packs / 'a' / 'pack.json').read_text())
    for key in ('name', 'title', 'licence', 'classes'):
        assert written[key] == shipped[key], key
    # A fresh pack's defaults are the shipped ones but for what the evaluation tuned.
    assert written['defaults'].keys() == shipped['defaults'].keys()


def test_resume_continues_the_image_count(packs):
    a, b = read_log(packs / 'a'), read_log(packs / 'b')
    assert b['resumed_from']['images_seen'] == {n: a[n]['images_seen'] for n in ('main', 'guide')}
    for name in ('main', 'guide'):
        assert b[name]['images_seen'] > 0
        assert b[name]['images_seen_total'] == a[name]['images_seen'] + b[name]['images_seen']
        assert b[name]['ema_halflife_images'] == round(0.05 * b[name]['images_seen_total'])
    b_manifest = json.loads((packs / 'b' / 'pack.json').read_text())
    assert b_manifest['defaults']['guidance_cfg'] == 3.25
    assert 'resumed' in b_manifest['source'] and 'from scratch' in b_manifest['source']


@pytest.mark.parametrize('name', ['main', 'guide'])
def test_resume_starts_from_the_pack_weights(packs, name):
    config = json.loads((packs / 'a' / 'pack.json').read_text())['components'][name]['config']
    net = EDM2Precond(**config)
    net.load_state_dict({k: v.float() for k, v in load_file(packs / 'a' / f'{name}.safetensors').items()})
    with torch.no_grad():  # training starts with EDM2's forced weight normalisation
        for m in net.modules():
            if isinstance(m, MPConv):
                m.weight.copy_(normalize(m.weight))
    resumed = load_file(packs / 'b' / f'{name}.safetensors')
    fresh = load_file(packs / 'a' / f'{name}.safetensors')
    worst = 0.0
    for k, v in net.state_dict().items():
        scale = max(v.abs().max().item(), 1e-3)
        worst = max(worst, (resumed[k].float() - v).abs().max().item() / scale)
    assert worst < 2e-3, f'{name}: resumed weights differ from the pack\'s by {worst:.2e} (relative)'
    # ...and a fresh start is nowhere near (the comparison can fail).
    other = EDM2Precond(**config).state_dict()
    far = max((other[k] - fresh[k].float()).abs().max().item() for k in other if 'weight' in k)
    assert far > 0.1


def test_resume_refuses_a_pack_without_its_log(packs, tmp_path):
    bad = tmp_path / 'nolog'
    shutil.copytree(packs / 'a', bad)
    os.remove(bad / 'train-log.json')
    r = run_train(packs, tmp_path / 'out', '--resume', str(bad))
    assert r.returncode != 0
    assert 'train-log.json' in r.stderr and 'images already seen' in r.stderr


def test_resume_refuses_other_classes(packs, tmp_path):
    bad = tmp_path / 'classes'
    shutil.copytree(packs / 'a', bad)
    manifest = json.loads((bad / 'pack.json').read_text())
    manifest['classes'] = manifest['classes'][::-1]
    (bad / 'pack.json').write_text(json.dumps(manifest))
    r = run_train(packs, tmp_path / 'out', '--resume', str(bad))
    assert r.returncode != 0
    assert "classes are not imagenette-64's" in r.stderr
