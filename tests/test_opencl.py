"""The OpenCL backend against the CPU backend, through the `gfcg` command.

Runs on whatever device $GFCG_TEST_OPENCL_DEVICE names (default opencl:0: PoCL
in the build environment).  Whole sampling in every guidance mode must agree
with the CPU backend within 1e-3 (max abs / max(1, max |x|)) and the PNGs within
1/255; single network evaluations within 1e-4.  The fallback paths (no
platform, kernels that do not build, an allocation refused at load time or in
the middle of a run, a kernel failing) must end in the CPU backend's result
after one message.  Skipped when the machine has no OpenCL device at all.
"""
import os
import re
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

DEV = os.environ.get('GFCG_TEST_OPENCL_DEVICE', 'opencl:0')
TRAJ_TOL = 1e-3
EVAL_TOL = 1e-4


def gfcg_bin():
    b = os.environ.get('GFCG_BIN')
    assert b and os.access(b, os.X_OK), 'set GFCG_BIN'
    return b


def run(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([gfcg_bin()] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=900, env=e)
    if check and p.returncode != 0:
        pytest.fail(f'gfcg {" ".join(map(str, args))}: exit {p.returncode}\n{p.stderr}',
                    pytrace=False)
    return p


@pytest.fixture(scope='session', autouse=True)
def need_device():
    out = run('devices').stdout
    if not re.search(r'^opencl:\d', out, re.M):
        pytest.skip('no OpenCL device on this machine')


@pytest.fixture(scope='session')
def cache(tmp_path_factory):
    """A private kernel cache, shared by the tests of this session (PoCL's own
    cache stays where it is: rebuilding it costs minutes)."""
    return str(tmp_path_factory.mktemp('cache'))


def sample(packs, tmp, device, pack='tiny-pixel', cls=217, mode='gfcg', seed=3, extra=(),
           env=None, tag='x'):
    png, raw = tmp / f'{tag}.png', tmp / f'{tag}.safetensors'
    p = run('sample', '--pack', packs / pack, '--class', cls, '--mode', mode, '--steps', 8,
            '--seed', seed, '--out', png, '--out-raw', raw, '-q', '--device', device, *extra,
            env=env)
    return load_file(str(raw))['x'].double(), np.asarray(Image.open(png)).astype(int), p.stderr


def x_err(a, b):
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


MODES = [
    ('none', ()), ('cfg', ('--guidance', 2.0)), ('atg', ('--guidance', 2.0)),
    ('gfcg', ('--s-max', 1.5)), ('gfcg', ('--s-max', 1.5, '--lagged')),
    ('gfcg+cfg', ('--guidance', 1.5, '--s-max', 2.0)),
    ('gfcg+cfg', ('--guidance', 1.5, '--s-max', 2.0, '--lagged')),
    ('gfcg+atg', ('--guidance', 2.0, '--s-max', 1.0)),
    ('gfcg+atg', ('--guidance', 2.0, '--s-max', 1.0, '--lagged')),
    ('gfcg+atg-add', ('--guidance', 1.5, '--s-max', 1.5)),
]


@pytest.mark.parametrize('mode,extra', MODES, ids=[m + ('-lagged' if '--lagged' in e else '')
                                                    for m, e in MODES])
def test_sampling_matches_cpu(packs, tmp_path, cache, mode, extra):
    env = {'GFCG_KERNEL_CACHE_DIR': cache}
    xc, pc, _ = sample(packs, tmp_path, 'cpu', mode=mode, extra=extra, tag='c')
    xo, po, err = sample(packs, tmp_path, DEV, mode=mode, extra=extra, env=env, tag='o')
    assert 'continuing on the CPU' not in err and 'running on the CPU' not in err, err
    e = x_err(xo, xc)
    print(f'\n[opencl] sample {mode} {extra}: {e:.3e}')
    assert e <= TRAJ_TOL
    assert np.abs(po - pc).max() <= 1, 'PNGs differ by more than 1/255'


@pytest.mark.parametrize('pack,net', [('tiny-latent', 'main'), ('tiny-odd', 'main'),
                                      ('tiny-pixel-f16', 'uncond'), ('tiny-odd', 'classifier'),
                                      ('tiny-pixel-inet', 'classifier')])
def test_denoise_matches_cpu(packs, tmp_path, cache, pack, net):
    g = torch.Generator().manual_seed(5)
    meta = run('info', '--pack', packs / pack).stdout
    r = 64 if pack == 'tiny-latent' else 20 if pack == 'tiny-odd' else 16
    c = 4 if pack == 'tiny-latent' else 3
    if pack == 'tiny-latent':
        r = 8
    x = torch.randn(3, c, r, r, generator=g) * 2
    save_file({'x': x, 'sigma': torch.tensor([0.01, 1.0, 50.0])}, str(tmp_path / 'in.safetensors'))
    outs = []
    for dev in ('cpu', DEV):
        o = tmp_path / f'{dev.replace(":", "_")}.safetensors'
        run('denoise', '--pack', packs / pack, '--net', net, '--in', tmp_path / 'in.safetensors',
            '--out', o, '--device', dev, env={'GFCG_KERNEL_CACHE_DIR': cache})
        t = load_file(str(o))
        outs.append(t['logits' if net == 'classifier' else 'D'].double())
    e = float((outs[0] - outs[1]).abs().max())
    print(f'\n[opencl] denoise {pack}/{net}: {e:.3e}')
    assert e <= EVAL_TOL, meta


def test_encoders_match_cpu(tmp_path, cache):
    """The latent encoders on the device: the SD VAE encoder (its stride-2
    convs padded at the bottom and right only, the mid attention) and TAESD's."""
    import make_packs
    import test_encoders as te
    main = make_packs.make_unet(31, img_resolution=8, img_channels=4, label_dim=3,
                                model_channels=8, channel_mult=[1], num_blocks=1,
                                attn_resolutions=[])
    pack = te.write_latent_pack(
        tmp_path / 'p', main,
        {'encoder': ('sd-vae-encoder', te.NARROW_VAE, te.tensors_of(te.make_vae_encoder(81))),
         'preview-encoder': ('taesd-encoder', te.NARROW_TAESD_ENC,
                             te.tensors_of(te.make_taesd_encoder(82)))})
    save_file({'x': te.pictures(2, 48, 64, 1)}, str(tmp_path / 'in.safetensors'))
    for role in ('encoder', 'preview-encoder'):
        outs = []
        for dev in ('cpu', DEV):
            o = tmp_path / f'{role}-{dev.replace(":", "_")}.safetensors'
            run('denoise', '--pack', pack, '--net', role, '--in', tmp_path / 'in.safetensors',
                '--out', o, '--device', dev, env={'GFCG_KERNEL_CACHE_DIR': cache})
            outs.append(load_file(str(o))['latent'].double())
        e = float((outs[0] - outs[1]).abs().max())
        print(f'\n[opencl] {role}: {e:.3e}')
        assert e <= EVAL_TOL


FALLBACKS = [
    ('no-platform', {'OCL_ICD_VENDORS': '/nonexistent', 'OPENCL_VENDOR_PATH': '/nonexistent'},
     'no OpenCL platform', True),
    ('build-failure', {'GFCG_OPENCL_BREAK_KERNELS': '1'}, 'do not build', True),
    ('alloc-at-load', {'GFCG_OPENCL_FAIL_ALLOC': '3'}, 'allocation refused', True),
    ('alloc-mid-run', {'GFCG_OPENCL_FAIL_ALLOC': '1500'}, 'allocation refused', False),
    ('memory-budget', {'GFCG_OPENCL_MEMORY_MB': '1'}, 'CL_MEM_OBJECT_ALLOCATION_FAILURE', False),
    ('kernel-mid-run', {'GFCG_OPENCL_FAIL_KERNEL': '900'}, 'kernel failure forced', False),
]


@pytest.mark.parametrize('name,env,msg,exact', FALLBACKS, ids=[f[0] for f in FALLBACKS])
def test_fallback(packs, tmp_path, cache, name, env, msg, exact):
    env = {'GFCG_KERNEL_CACHE_DIR': cache, **env}
    xc, pc, _ = sample(packs, tmp_path, 'cpu', mode='gfcg+cfg', extra=('--guidance', 1.5), tag='c')
    xo, po, err = sample(packs, tmp_path, DEV, mode='gfcg+cfg', extra=('--guidance', 1.5),
                         env=env, tag='o')
    ours = [l for l in err.splitlines() if l.startswith('gfcg')]
    assert len(ours) == 1 and msg in ours[0] and 'CPU backend' in ours[0], err
    if exact:   # everything ran on the CPU backend
        assert torch.equal(xo, xc) and np.array_equal(po, pc)
    else:       # part of the run on the device, the rest on the CPU
        assert x_err(xo, xc) <= TRAJ_TOL and np.abs(po - pc).max() <= 1


def test_bad_device_index_falls_back(packs, tmp_path, cache):
    xc, _, _ = sample(packs, tmp_path, 'cpu', tag='c')
    xo, _, err = sample(packs, tmp_path, 'opencl:99', env={'GFCG_KERNEL_CACHE_DIR': cache}, tag='o')
    assert 'no OpenCL device 99' in err and torch.equal(xo, xc)


def test_kernel_binary_cache(packs, tmp_path):
    env = {'GFCG_KERNEL_CACHE_DIR': str(tmp_path / 'cache')}
    args = ('bench', '--pack', packs / 'tiny-pixel', '--device', DEV, '--evals', 1, '--warmup', 0)
    first = run(*args, env=env).stderr
    bins = list((tmp_path / 'cache').glob('*.bin'))
    assert len(bins) == 1 and 'built from source' in first, first
    second = run(*args, env=env).stderr
    assert 'from the binary cache' in second, second
    bins[0].write_bytes(b'garbage')           # a corrupt entry is rebuilt, not trusted
    third = run(*args, env=env).stderr
    assert 'built from source' in third and 'continuing' not in third, third


def test_fp16_weights(packs, tmp_path, cache):
    xc, pc, _ = sample(packs, tmp_path, 'cpu', mode='cfg', extra=('--guidance', 2.0), tag='c')
    xo, po, err = sample(packs, tmp_path, DEV + ':fp16', mode='cfg', extra=('--guidance', 2.0),
                         env={'GFCG_KERNEL_CACHE_DIR': cache}, tag='o')
    e = x_err(xo, xc)
    print(f'\n[opencl] fp16 weights, cfg trajectory: {e:.3e}')
    assert 'CPU' not in err and e <= 1e-2


def test_verbose_reports_device_and_peak_memory(packs, tmp_path):
    """`gfcg sample --verbose` names the device and reports peak memory."""
    p = run('sample', '--pack', packs / 'tiny-pixel', '--class', 217, '--steps', 2, '--seed', 1,
            '--quiet', '--verbose', '--device', DEV, '--out', tmp_path / 'v.png')
    m = re.search(r'peak memory ([0-9.]+) MiB in tensors, ([0-9.]+) MiB on the device', p.stderr)
    assert m, p.stderr
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0
    assert 'opencl:' in p.stderr
