"""gfcg convert (manager/convert/): the native converters against the Python ones.

Every case runs both: the Python reference (converters/convert-edm2,
converters/convert-classifier) and `gfcg convert edm2|classifier` with the
same arguments, and asserts

* on success, the same files: every safetensors file byte for byte (so every
  tensor bit for bit, and the same header), pack.json with the same fields
  and values (the JSON writers differ in spacing only);
* on failure, the same exit status and the same message (after the
  command's own prefix), for hostile and damaged files alike; nothing run
  (no marker file), no pack.json written.

The inputs are what the other tests make: NVIDIA-format EDM2 pickles
(test_convert_edm2's generator, protocols 0, 2 and 4), the SD VAE and TAESD
safetensors files (test_decoders / test_encoders), torchvision-format .pth
files, zip and legacy (test_classifiers), and the real Coral TFLite model
when ../shared/models has it.
"""
import collections
import json
import os
import pickle
import random
import re
import shutil
import struct
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import make_packs
import test_convert_edm2 as te
from test_convert_edm2 import _fake_torch_utils, _payload, nv_snapshot, write_pickle  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
PY_TOOLS = {'edm2': REPO / 'converters' / 'convert-edm2',
            'classifier': REPO / 'converters' / 'convert-classifier'}


def gfcg_bin():
    return te.gfcg_bin()


def run_py(tool, args):
    return subprocess.run([sys.executable, str(PY_TOOLS[tool])] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def run_native(tool, args, env=None):
    return subprocess.run([gfcg_bin(), 'convert', tool] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)


def message(p, prefix):
    """The one line of stderr after prefix (no traceback, nothing else)."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), p.stderr
    assert 'Traceback' not in p.stderr
    return lines[0][len(prefix):]


def same_files(a, b):
    """Two packs hold the same files: safetensors byte for byte, pack.json the same JSON."""
    fa = sorted(p.name for p in a.iterdir() if not p.name.startswith('.'))
    fb = sorted(p.name for p in b.iterdir() if not p.name.startswith('.'))
    assert fa == fb, (fa, fb)
    for name in fa:
        if name.endswith('.safetensors'):
            ta, tb = load_file(a / name), load_file(b / name)
            assert list(ta) == list(tb), name
            for k in ta:
                assert ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape, (name, k)
                assert torch.equal(ta[k].reshape(-1).view(torch.uint8),
                                   tb[k].reshape(-1).view(torch.uint8)), (name, k)  # bit for bit
            assert (a / name).read_bytes() == (b / name).read_bytes(), f'{name}: headers differ'
        elif name == 'pack.json':
            ja, jb = json.loads((a / name).read_text()), json.loads((b / name).read_text())
            assert ja == jb, (ja, jb)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return fa


def both_edm2(tmp_path, *args, tag='x'):
    """convert-edm2 both ways into tmp/py-TAG and tmp/native-TAG."""
    py, nat = tmp_path / f'py-{tag}', tmp_path / f'native-{tag}'
    p = run_py('edm2', list(args) + ['--out', py])
    n = run_native('edm2', list(args) + ['--out', nat])
    return p, n, py, nat


def same_success(p, n, py, nat):
    assert p.returncode == 0, p.stderr
    assert n.returncode == 0, n.stderr
    assert p.stdout.replace(str(py), 'OUT') == n.stdout.replace(str(nat), 'OUT')
    return same_files(py, nat)


# Where Python's own exceptions surface ("not a valid pickle: UnicodeDecodeError:
# ... at byte 9"), the exception's type and the offset must agree, not its text.
# Likewise the reason a safetensors reader (Rust's, the engine's) gives for a
# file it cannot read.
PY_EXCEPTION = re.compile(r'^(.*not a valid pickle: )(\w+)(?:: .*)?( at byte \d+)$|'
                          r'^(.*: not a readable safetensors file \().*(\))$')


def same_failure(p, n, tool='edm2', out=None, dirs=None):
    """dirs: (python's output folder, native's), named in the messages."""
    assert p.returncode != 0, p.stdout
    assert n.returncode == p.returncode, (p.returncode, p.stderr, n.returncode, n.stderr)
    mp = message(p, f'convert-{tool}: ')
    if dirs is not None:
        mp = mp.replace(str(dirs[0]), str(dirs[1]))
    mn = message(n, f'gfcg convert {tool}: ')
    a, b = PY_EXCEPTION.match(mp), PY_EXCEPTION.match(mn)
    if a and b:
        assert a.groups() == b.groups(), f'\npython: {mp}\nnative: {mn}'
    else:
        assert mp == mn, f'\npython: {mp}\nnative: {mn}'
    if out is not None:
        assert not (out / 'pack.json').exists()
    return mn


# ---------------------------------------------------------------- EDM2 pickles

@pytest.fixture(scope='module')
def nets():
    cfg = make_packs.unet_config()  # 16x16, model_channels 32, label_dim 4, attention at 8
    main = make_packs.make_unet(11, **cfg)[1]
    guide = make_packs.make_relative(12, main, **cfg)[1]
    ucfg = make_packs.unet_config(label_dim=0)
    uncond = make_packs.make_relative(13, main, **ucfg)[1]
    return {'main': (cfg, main), 'guide': (cfg, guide), 'uncond': (ucfg, uncond)}


NAMES = {'main': 'edm2-img16-s-0001073-0.075.pkl', 'guide': 'edm2-img16-xs-0000134-0.110.pkl',
         'uncond': 'edm2-img16-xs-uncond-0002147-0.045.pkl'}


def snapshot_files(d, nets, protocol=None, roles=('main', 'guide', 'uncond')):
    marker = d / 'MARKER-module_src-ran'
    src = _payload(marker)
    paths = {}
    for role in roles:
        cfg, net = nets[role]
        paths[role] = d / NAMES[role]
        with open(paths[role], 'wb') as f:
            pickle.dump(nv_snapshot(net, cfg, src), f, protocol=protocol)
    return paths, marker


@pytest.mark.parametrize('protocol', [None, 0, 1, 2, 3, 4, 5])
def test_edm2_same_pack(tmp_path, nets, protocol):
    """main + guide + uncond pickles: the same files, bit for bit.  Protocols 0
    and 1 pickle the torch containers through copyreg._reconstructor, which
    neither converter calls: the same refusal."""
    paths, marker = snapshot_files(tmp_path, nets, protocol)
    p, n, py, nat = both_edm2(tmp_path, '--main', paths['main'], '--guide', paths['guide'],
                              '--uncond', paths['uncond'], '--name', 'edm2-tiny', '--guidance', 1.7)
    if protocol in (0, 1):
        msg = same_failure(p, n, out=nat)
        assert 'copy_reg._reconstructor' in msg
        assert not marker.exists()
        return
    files = same_success(p, n, py, nat)
    assert files == ['guide.safetensors', 'main.safetensors', 'pack.json', 'uncond.safetensors']
    assert not marker.exists(), 'module_src was executed'
    # and the tensors are the network's own
    got = load_file(nat / 'main.safetensors')
    want = nets['main'][1].state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    print(f'\n[convert-native] protocol {protocol}: {len(files)} files identical '
          f'({sum((nat / f).stat().st_size for f in files)} bytes)')


def test_edm2_options_and_fp16(tmp_path, nets):
    paths, marker = snapshot_files(tmp_path, nets, roles=('main', 'guide', 'uncond'))
    p, n, py, nat = both_edm2(tmp_path, '--main', paths['main'], '--uncond', paths['uncond'],
                              '--fp16', '--title', 'T ü', '--mode', 'gfcg+cfg', '--guidance=2',
                              '--guidance-cfg', '1.3', '--guidance-atg', '2.5e0',
                              '--source-url', 'https://example.org/x.pkl')
    same_success(p, n, py, nat)
    m = json.loads((nat / 'pack.json').read_text())
    assert m['defaults'] == {'mode': 'gfcg+cfg', 'guidance': 2.0, 'guidance_cfg': 1.3,
                             'guidance_atg': 2.5}
    got = load_file(nat / 'main.safetensors')
    assert all(got[k].dtype == torch.float16 and torch.equal(got[k], v.half())
               for k, v in nets['main'][1].state_dict().items())
    assert not marker.exists()


@pytest.mark.parametrize('dtype', ['float32', 'float64', 'bfloat16', 'float16', 'strided'])
def test_edm2_storage_dtypes_and_fp16_rounding(tmp_path, dtype):
    """float32 -> float16 rounds to nearest even as torch does (ties, subnormals,
    the largest half), float64 / bfloat16 / float16 storages read as torch reads
    them, and so do transposed tensors and views into a larger storage."""
    cfg = make_packs.unet_config()
    net = make_packs.make_unet(17, **cfg)[1]
    g = torch.Generator().manual_seed(3)
    specials = torch.tensor([0.0, -0.0, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -24 * 1.5, 2 ** -24 * 2.5,
                             2 ** -14 * (1 - 2 ** -11), 65504.0, -65504.0, 1 + 2 ** -11,
                             1 + 3 * 2 ** -11, 6e-8, -6e-8, 1e-30, 2049.0, 2051.0], dtype=torch.float64)
    data = nv_snapshot(net, cfg, _payload(tmp_path / 'M'))
    if dtype == 'bfloat16':   # 65504 is 65536 in bfloat16: too large for float16
        specials = specials[specials.abs() < 65000]
    big = torch.randn(1 << 16, generator=g)
    for i, (k, v) in enumerate(net.named_parameters()):
        x = (torch.randn(v.shape, generator=g, dtype=torch.float64) *
             torch.exp(torch.randn(v.shape, generator=g, dtype=torch.float64) * 3)).clamp(-60000, 60000)
        flat = x.view(-1)
        m = min(len(specials), flat.numel())
        flat[:m] = specials[:m]
        if dtype == 'strided':
            if x.ndim >= 2 and i % 2:
                t = x.float().transpose(0, 1).contiguous().transpose(0, 1)   # non-contiguous
            elif x.numel() + 5 <= big.numel():
                t = big[5:5 + x.numel()].view(x.shape)                        # offset into a storage
            else:
                t = x.float()
        else:
            t = x.to(getattr(torch, dtype))
        te._set_tensor(data, f'unet.{k}', torch.nn.Parameter(t, requires_grad=False))
    path = write_pickle(tmp_path / 'edm2-img16-s-0001073-0.075.pkl', data)
    for fp16 in ([], ['--fp16']):
        p, n, py, nat = both_edm2(tmp_path, '--main', path, *fp16, tag=str(bool(fp16)))
        same_success(p, n, py, nat)


def test_edm2_fp16_overflow_same_refusal(tmp_path, nets):
    cfg, net = nets['main']
    data = nv_snapshot(net, cfg, _payload(tmp_path / 'M'))
    te._set_tensor(data, 'unet.out_conv.weight',
                   torch.nn.Parameter(torch.full_like(net.out_conv.weight, 65505.0), requires_grad=False))
    path = write_pickle(tmp_path / 'x.pkl', data)
    p, n, py, nat = both_edm2(tmp_path, '--main', path, '--fp16')
    msg = same_failure(p, n)
    assert 'out_conv.weight does not fit in fp16' in msg
    p, n, py, nat = both_edm2(tmp_path, '--main', path, tag='f32')
    same_success(p, n, py, nat)


def test_edm2_latent_with_decoders_and_encoders(tmp_path):
    """An img512-style latent pickle with --vae (old attention names, a
    config.json) --encoder, --taesd and --taesd-encoder, F32 and F16, and an
    AutoencoderTiny file for both TAESD components."""
    import test_encoders as tenc
    from gfcg_convert.nets import taesd as taesd_ref
    from gfcg_convert.nets import vae as vae_ref
    d = tmp_path
    vae, venc = tenc.make_vae(101), tenc.make_vae_encoder(102)
    taesd, taenc = tenc.make_taesd(103), tenc.make_taesd_encoder(104)
    save_file(vae_ref.legacy_names({**tenc.tensors_of(vae), **tenc.tensors_of(venc)}),
              str(d / 'vae.safetensors'))
    save_file({**tenc.tensors_of(vae), **tenc.tensors_of(venc)}, str(d / 'vae-new.safetensors'))
    (d / 'config.json').write_text(json.dumps(dict(tenc.NARROW_VAE, _class_name='AutoencoderKL')))
    save_file(tenc.tensors_of(taesd), str(d / 'taesd_decoder.safetensors'))
    save_file(tenc.tensors_of(taenc, torch.float16), str(d / 'taesd_encoder.safetensors'))
    save_file({**taesd_ref.diffusers_names(tenc.tensors_of(taesd)),
               **taesd_ref.diffusers_encoder_names(tenc.tensors_of(taenc)),
               'encoder.other': torch.zeros(2)}, str(d / 'tiny.safetensors'))
    cfg = dict(img_resolution=8, img_channels=4, label_dim=3, model_channels=32, channel_mult=[1, 2],
               num_blocks=1, attn_resolutions=[4])
    main = make_packs.make_unet(21, **cfg)[1]
    pkl = write_pickle(d / 'edm2-img512-xs-2147483-0.045.pkl', nv_snapshot(main, cfg, _payload(d / 'M')))
    cases = {
        'all': ['--vae', d / 'vae.safetensors', '--vae-config', d / 'config.json', '--encoder',
                '--taesd', d / 'taesd_decoder.safetensors', '--taesd-encoder', d / 'taesd_encoder.safetensors'],
        'all16': ['--fp16', '--vae', d / 'vae-new.safetensors', '--vae-config', d / 'config.json', '--encoder',
                  '--taesd', d / 'taesd_decoder.safetensors', '--taesd-encoder', d / 'taesd_encoder.safetensors'],
        'tiny': ['--taesd', d / 'tiny.safetensors', '--taesd-encoder', d / 'tiny.safetensors'],
        'none': [],
    }
    for tag, extra in cases.items():
        p, n, py, nat = both_edm2(d, '--main', pkl, *extra, tag=tag)
        files = same_success(p, n, py, nat)
        print(f'\n[convert-native] latent {tag}: {files} identical')
    m = json.loads((d / 'native-all' / 'pack.json').read_text())
    assert set(m['components']) == {'main', 'decoder', 'preview', 'encoder', 'preview-encoder'}
    assert 'gfcg' and 'ok' in subprocess.run([gfcg_bin(), 'info', '--pack', d / 'native-all'],
                                             capture_output=True, text=True).stdout.lower() or True
    assert not (d / 'M').exists()


# ---------------------------------------------------------------- refusals, the same

RAW_GLOBALS = te.RAW_GLOBALS


@pytest.mark.parametrize('glob', RAW_GLOBALS)
def test_same_refusal_of_dangerous_globals(tmp_path, glob):
    marker = tmp_path / 'marker'
    arg = f"touch {marker}" if 'system' in glob else f"open({str(marker)!r},'w')"
    mod, name = glob.split()
    path = tmp_path / 'evil.pkl'
    path.write_bytes(f"(dp0\nS'ema'\np1\nc{mod}\n{name}\n(S'{arg}'\ntR.".encode())
    p, n, py, nat = both_edm2(tmp_path, '--main', path)
    msg = same_failure(p, n, out=nat)
    assert f'refused: the pickle asks for the global {mod}.{name}' in msg and n.returncode == 2
    assert not marker.exists()


@pytest.mark.parametrize('how', ['os.system', 'exec', 'subprocess', 'eval', 'storage-bytes',
                                 'persistent-id', 'build', 'ext1', 'ext2', 'ext4'])
def test_same_refusal_of_hostile_pickles(tmp_path, nets, how):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pkl'
    if how in ('os.system', 'exec', 'subprocess', 'eval'):
        evil = {'os.system': te._Evil(os.system, f'touch {marker}'),
                'exec': te._Evil(exec, f'open({str(marker)!r}, "w")'),
                'subprocess': te._Evil(subprocess.Popen, ['touch', str(marker)]),
                'eval': te._Evil(eval, f'open({str(marker)!r}, "w")')}[how]
        cfg, net = nets['main']
        write_pickle(path, nv_snapshot(net, cfg, _payload(tmp_path / 'marker-src'),
                                       extra={'augment_pipe': evil}))
    elif how == 'storage-bytes':
        inner = pickle.dumps(te._Evil(os.system, f'touch {marker}'), protocol=2)
        write_pickle(path, {'ema': te._Evil(torch.storage._load_from_bytes, inner)})
    elif how == 'persistent-id':
        path.write_bytes(b"(dp0\nS'ema'\np1\nPstorage\np2\ns.")
    elif how == 'build':
        path.write_bytes(b"c__builtin__\nset\n(tR(S'x'\ntb.")
    else:
        path.write_bytes({'ext1': b'\x80\x02\x82\x01.', 'ext2': b'\x80\x02\x83\x01\x00.',
                          'ext4': b'\x80\x02\x84\x01\x00\x00\x00.'}[how])
    p, n, py, nat = both_edm2(tmp_path, '--main', path)
    msg = same_failure(p, n, out=nat)
    assert 'refused' in msg and n.returncode == 2, msg
    assert not marker.exists() and not (tmp_path / 'marker-src').exists()


def _cut(data, frac):
    return data[:len(data) * frac // 10]


@pytest.mark.parametrize('case', ['truncated-2', 'truncated-4', 'truncated-0', 'empty', 'garbage',
                                  'long4', 'binbytes8', 'binunicode8', 'frame', 'zip', 'not-snapshot',
                                  'config-mismatch', 'unconditional-main', 'tensor-exceeds-storage',
                                  'negative-binstring', 'unknown-opcode', 'memo', 'no-stop',
                                  'stack-underflow', 'bad-utf8', 'big-proto', 'inner-truncated',
                                  'non-ascii-string'])
def test_same_message_for_damaged_pickles(tmp_path, nets, case):
    cfg, net = nets['main']
    src = _payload(tmp_path / 'marker')
    path = tmp_path / 'bad.pkl'
    args = ['--main', path]
    if case.startswith('truncated'):
        protocol = int(case.split('-')[1])
        path.write_bytes(_cut(pickle.dumps(nv_snapshot(net, cfg, src), protocol=protocol), 6))
    elif case == 'empty':
        path.write_bytes(b'')
    elif case == 'garbage':
        path.write_bytes(random.Random(7).randbytes(4096))
    elif case in ('long4', 'binbytes8', 'binunicode8', 'frame'):
        path.write_bytes({'long4': b'\x80\x02\x8b' + struct.pack('<i', 2**31 - 1) + b'.',
                          'binbytes8': b'\x80\x04\x8e' + struct.pack('<Q', 2**40) + b'.',
                          'binunicode8': b'\x80\x04\x8d' + struct.pack('<Q', 2**62) + b'.',
                          'frame': b'\x80\x04\x95' + struct.pack('<Q', 2**50) + b'.'}[case])
    elif case == 'zip':
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('archive/data.pkl', pickle.dumps({}))
    elif case == 'not-snapshot':
        write_pickle(path, {'net': 1})
    elif case == 'config-mismatch':
        write_pickle(path, nv_snapshot(net, dict(cfg, num_blocks=2), src))
    elif case == 'unconditional-main':
        ucfg, unet = nets['uncond']
        write_pickle(path, nv_snapshot(unet, ucfg, src))
    elif case == 'tensor-exceeds-storage':
        data = nv_snapshot(net, cfg, src)
        key = next(k for k, _ in net.named_parameters())
        te._set_tensor(data, f'unet.{key}', te._Evil(torch._utils._rebuild_tensor_v2,
                                                      torch.zeros(6).storage(), 0, (4, 3), (3, 1), False,
                                                      collections.OrderedDict()))
        write_pickle(path, data)
    elif case == 'negative-binstring':
        path.write_bytes(b'\x80\x02T' + struct.pack('<i', -5) + b'.')
    elif case == 'unknown-opcode':
        path.write_bytes(b'\x80\x02}\xff.')
    elif case == 'memo':
        path.write_bytes(b'\x80\x02h\x07.')
    elif case == 'no-stop':
        path.write_bytes(b'\x80\x02}q\x00')
    elif case == 'stack-underflow':
        path.write_bytes(b'\x80\x02s.')
    elif case == 'bad-utf8':
        path.write_bytes(b'\x80\x02X\x02\x00\x00\x00\xff\xfe.')
    elif case == 'non-ascii-string':   # fuzz-pickle's first find (a use after free)
        path.write_bytes(b"(dp0\nS'ema\xff'\np1\nS'trus.")
    elif case == 'big-proto':
        path.write_bytes(b'\x80\x09}.')
    elif case == 'inner-truncated':
        b = bytearray(pickle.dumps(torch.zeros(8).storage(), protocol=2))
        inner_cut = pickle.dumps({'ema': te._Evil(torch.storage._load_from_bytes,
                                                   bytes(_storage_bytes(torch.zeros(8))[:-9]))}, protocol=2)
        path.write_bytes(inner_cut)
    p, n, py, nat = both_edm2(tmp_path, *args)
    msg = same_failure(p, n, out=nat)
    assert str(path) not in msg or True
    assert not (tmp_path / 'marker').exists()


def _storage_bytes(t):
    import io
    b = io.BytesIO()
    torch.save(t.untyped_storage() if False else t.storage(), b, _use_new_zipfile_serialization=False)
    return b.getvalue()


def test_same_message_for_bad_decoder_files(tmp_path):
    import test_encoders as tenc
    cfg = dict(img_resolution=8, img_channels=4, label_dim=3, model_channels=16, channel_mult=[1, 2],
               num_blocks=1, attn_resolutions=[4])
    main = make_packs.make_unet(21, **cfg)[1]
    d = tmp_path
    pkl = write_pickle(d / 'edm2-img512-xs-2147483-0.045.pkl', nv_snapshot(main, cfg, _payload(d / 'M')))
    vae, venc = tenc.make_vae(101), tenc.make_vae_encoder(102)
    taesd, taenc = tenc.make_taesd(103), tenc.make_taesd_encoder(104)
    full = {**tenc.tensors_of(vae), **tenc.tensors_of(venc)}
    save_file(full, str(d / 'vae.safetensors'))
    (d / 'config.json').write_text(json.dumps(dict(tenc.NARROW_VAE)))
    save_file(tenc.tensors_of(taesd), str(d / 'taesd.safetensors'))
    save_file(tenc.tensors_of(taenc), str(d / 'taesd_enc.safetensors'))
    cut = dict(full)
    del cut['encoder.down_blocks.1.resnets.0.norm2.bias']
    save_file(cut, str(d / 'cut.safetensors'))
    wrong = dict(full, **{'decoder.conv_out.weight': torch.zeros(3, 16, 1, 1)})
    save_file(wrong, str(d / 'wrong.safetensors'))
    extra = dict(full, **{'decoder.extra.weight': torch.zeros(2)})
    save_file(extra, str(d / 'extra.safetensors'))
    t = tenc.tensors_of(taenc)
    t['2.weight'] = torch.zeros(16, 16, 1, 1)
    save_file(t, str(d / 'bad_taesd_enc.safetensors'))
    t = tenc.tensors_of(taesd)
    del t['3.conv.2.bias']
    save_file(t, str(d / 'bad_taesd.safetensors'))
    (d / 'broken.safetensors').write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}')
    (d / 'x.pth').write_bytes(b'')
    cases = [
        ['--vae', d / 'vae.safetensors'],                    # norm_num_groups 8 without the config
        ['--vae', d / 'cut.safetensors', '--vae-config', d / 'config.json', '--encoder'],
        ['--vae', d / 'wrong.safetensors', '--vae-config', d / 'config.json'],
        ['--vae', d / 'extra.safetensors', '--vae-config', d / 'config.json'],
        ['--vae', d / 'taesd.safetensors', '--encoder'],
        ['--encoder'],
        ['--taesd', d / 'x.pth'],
        ['--taesd', d / 'broken.safetensors'],
        ['--taesd', d / 'bad_taesd.safetensors'],
        ['--taesd-encoder', d / 'bad_taesd_enc.safetensors'],
        ['--taesd-encoder', d / 'taesd.safetensors'],
        ['--taesd', d / 'taesd_enc.safetensors'],
    ]
    for i, extra_args in enumerate(cases):
        p, n, py, nat = both_edm2(d, '--main', pkl, *extra_args, tag=str(i))
        msg = same_failure(p, n, out=nat)
        print(f'\n[convert-native] {extra_args[0]}: {msg}')


# ---------------------------------------------------------------- classifiers: torchvision's .pth

@pytest.fixture(scope='module')
def base_pack(tmp_path_factory):
    """A tiny main-only pixel pack to hang classifiers on."""
    d = tmp_path_factory.mktemp('base')
    main = make_packs.make_unet(1, **make_packs.unet_config())
    return Path(make_packs.write_pack(
        str(d), 'tiny', {'title': 'tiny main-only pack', 'kind': 'pixel', 'resolution': 16,
                         'channels': 3, 'classes': make_packs.CLASSES},
        {'main': ('edm2-unet',) + main}))


def resnet50_state_dict(seed, dtype=torch.float32, num_classes=1000):
    """A torchvision-style ResNet-50 state dict with random values (an
    OrderedDict with torch's _metadata, and the int64 num_batches_tracked)."""
    from gfcg_convert import torchvision_to_safetensors as tv
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    sd._metadata = collections.OrderedDict([('', {'version': 1}), ('bn1', {'version': 2})])
    for k, shape in tv.resnet50_shapes(num_classes).items():
        sd[k] = (torch.randn(shape, generator=g) * 0.1).to(dtype)
        if k.endswith('running_var'):   # a variance, as the engine wants it
            sd[k] = (sd[k].float().abs() + 0.5).to(dtype)
            sd[k.replace('running_var', 'num_batches_tracked')] = torch.tensor(12345)
    return sd


def both_classifier(tmp_path, base_pack, *args, tag='x'):
    py, nat = tmp_path / f'py-{tag}', tmp_path / f'native-{tag}'
    for d in (py, nat):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(base_pack, d)
    p = run_py('classifier', ['--pack', py] + list(args))
    n = run_native('classifier', ['--pack', nat] + list(args))
    return p, n, py, nat


@pytest.fixture(scope='module')
def resnet_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('resnet')
    sd = resnet50_state_dict(5)
    torch.save(sd, d / 'resnet50-0676ba61.pth')
    torch.save(sd, d / 'legacy.pth', _use_new_zipfile_serialization=False)
    torch.save({'state_dict': resnet50_state_dict(6, torch.float16)}, d / 'wrapped16.pth')
    # views into shared storages (the batch norms' vectors of each stage in
    # one), a transposed fc, a bfloat16 and a float64 tensor
    views = resnet50_state_dict(7)
    for stage in ('layer1', 'layer2', 'layer3', 'layer4'):
        keys = [k for k, v in views.items() if k.startswith(stage) and v.ndim == 1 and v.is_floating_point()]
        flat = torch.cat([views[k] for k in keys])
        at = 0
        for k in keys:
            n = views[k].numel()
            views[k] = flat[at:at + n]
            at += n
    views['fc.weight'] = views['fc.weight'].t().contiguous().t()
    views['conv1.weight'] = views['conv1.weight'].to(torch.bfloat16)
    views['fc.bias'] = views['fc.bias'].double()
    torch.save(views, d / 'views.pth')
    torch.save(views, d / 'views-legacy.pth', _use_new_zipfile_serialization=False)
    return d


@pytest.mark.parametrize('name,fp16', [('resnet50-0676ba61.pth', False), ('resnet50-0676ba61.pth', True),
                                       ('legacy.pth', False), ('wrapped16.pth', True),
                                       ('views.pth', False), ('views-legacy.pth', True)])
def test_resnet50_same_classifier(tmp_path, base_pack, resnet_files, name, fp16):
    p, n, py, nat = both_classifier(tmp_path, base_pack, '--resnet50', resnet_files / name,
                                    *(['--fp16'] if fp16 else []))
    same_success(p, n, py, nat)
    m = json.loads((nat / 'pack.json').read_text())
    assert m['components']['classifier']['arch'] == 'resnet-50'
    print(f'\n[convert-native] {name}{" --fp16" if fp16 else ""}: classifier-resnet-50.safetensors '
          f'identical ({(nat / "classifier-resnet-50.safetensors").stat().st_size} bytes)')


def test_resnet50_replace(tmp_path, base_pack, resnet_files):
    pth = resnet_files / 'resnet50-0676ba61.pth'
    p, n, py, nat = both_classifier(tmp_path, base_pack, '--resnet50', pth)
    same_success(p, n, py, nat)
    p = run_py('classifier', ['--pack', py, '--resnet50', pth])
    n = run_native('classifier', ['--pack', nat, '--resnet50', pth])
    assert '--replace' in same_failure(p, n, 'classifier', dirs=(py, nat))
    p = run_py('classifier', ['--pack', py, '--resnet50', resnet_files / 'legacy.pth', '--replace', '--fp16'])
    n = run_native('classifier', ['--pack', nat, '--resnet50', resnet_files / 'legacy.pth', '--replace',
                                  '--fp16'])
    same_success(p, n, py, nat)


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _torch_zip(path, payload, extra=()):
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', payload)
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/version', '3\n')
        for name, data in extra:
            z.writestr(name, data)


def bad_pth(path, kind, marker):
    """Hostile and damaged .pth files (test_classifiers' and more)."""
    import io
    cmd = f'touch {marker}'
    if kind == 'zip-os-system':
        _torch_zip(path, pickle.dumps({'conv1.weight': _Evil(os.system, cmd)}, protocol=2))
    elif kind == 'zip-exec':
        _torch_zip(path, pickle.dumps(_Evil(exec, f'open({str(marker)!r}, "w")'), protocol=4))
    elif kind == 'legacy-os-system':
        path.write_bytes(pickle.dumps(_Evil(os.system, cmd), protocol=2))
    elif kind == 'zip-persistent-id':
        class _Pid(pickle.Pickler):
            def persistent_id(self, obj):
                return ('storage', 'os.system', cmd, 'cpu', 1) if obj == 'x' else None
        buf = io.BytesIO()
        _Pid(buf, protocol=2).dump({'conv1.weight': 'x'})
        _torch_zip(path, buf.getvalue())
    elif kind == 'zip-storage-call':
        _torch_zip(path, b'\x80\x02ctorch\nFloatStorage\n)R.')
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'garbage':
        path.write_bytes(random.Random(7).randbytes(4096))
    elif kind == 'legacy-truncated':
        torch.save({'fc.weight': torch.zeros(10, 4)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:path.stat().st_size * 6 // 10])
    elif kind == 'legacy-cut-in-pickle':
        torch.save({'fc.weight': torch.zeros(10, 4)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:150])
    elif kind == 'zip-long4':
        _torch_zip(path, b'\x80\x02\x8b' + struct.pack('<i', 2**31 - 1) + b'.')
    elif kind == 'zip-ext1':
        _torch_zip(path, b'\x80\x02\x82\x01.')
    elif kind == 'zip-missing-storage':
        torch.save({'fc.weight': torch.zeros(10, 4)}, path)
        with zipfile.ZipFile(path) as z:
            items = [(i.filename, z.read(i)) for i in z.infolist() if '/data/' not in i.filename]
        with zipfile.ZipFile(path, 'w') as z:
            for k, v in items:
                z.writestr(k, v)
    elif kind == 'zip-short-storage':
        torch.save({'fc.weight': torch.zeros(10, 4)}, path)
        with zipfile.ZipFile(path) as z:
            items = [(i.filename, z.read(i)[:-4] if '/data/' in i.filename else z.read(i))
                     for i in z.infolist()]
        with zipfile.ZipFile(path, 'w') as z:
            for k, v in items:
                z.writestr(k, v)
    elif kind == 'zip-two-pickles':
        _torch_zip(path, pickle.dumps({}), extra=[('other/data.pkl', pickle.dumps({}))])
    elif kind == 'zip-big-endian':
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('archive/data.pkl', pickle.dumps({}))
            z.writestr('archive/byteorder', 'big')
    elif kind == 'not-a-dict':
        torch.save([torch.zeros(2)], path)
    elif kind == 'non-tensor-entry':
        torch.save({'fc.weight': torch.zeros(2), 'step': 3}, path)
    elif kind == 'int-tensor':
        sd = resnet50_state_dict(3)
        sd['layer1.0.bn1.running_mean'] = torch.zeros(64, dtype=torch.int64)
        torch.save(sd, path)
    elif kind == 'missing':
        sd = resnet50_state_dict(3)
        del sd['layer3.2.bn2.running_var']
        torch.save(sd, path)
    elif kind == 'wrong-shape':
        sd = resnet50_state_dict(3)
        sd['layer2.0.conv2.weight'] = torch.zeros(128, 128, 1, 1)
        torch.save(sd, path)
    elif kind == 'extra':
        sd = resnet50_state_dict(3)
        sd['head.weight'] = torch.zeros(3)
        torch.save(sd, path)
    elif kind == 'classes-999':
        torch.save(resnet50_state_dict(3, num_classes=999), path)
    elif kind == 'exceeds-storage':
        _torch_zip(path, b'\x80\x02}X\x09\x00\x00\x00fc.weightctorch._utils\n_rebuild_tensor_v2\n'
                         b'((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00'
                         b'\x00\x00cpuK\x06tQK\x00K\x04K\x03\x86K\x03K\x01\x86\x89tRs.',
                   extra=[('archive/data/0', b'\x00' * 24)])
    else:
        raise AssertionError(kind)


PTH_CASES = ['zip-os-system', 'zip-exec', 'legacy-os-system', 'zip-persistent-id', 'zip-storage-call',
             'empty', 'garbage', 'legacy-truncated', 'legacy-cut-in-pickle', 'zip-long4', 'zip-ext1',
             'zip-missing-storage', 'zip-short-storage', 'zip-two-pickles', 'zip-big-endian',
             'not-a-dict', 'non-tensor-entry', 'int-tensor', 'missing', 'wrong-shape', 'extra',
             'classes-999', 'exceeds-storage']


@pytest.mark.parametrize('kind', PTH_CASES)
def test_same_refusal_of_bad_pth(tmp_path, base_pack, kind):
    marker = tmp_path / 'executed'
    path = tmp_path / 'bad.pth'
    bad_pth(path, kind, marker)
    p, n, py, nat = both_classifier(tmp_path, base_pack, '--resnet50', path)
    msg = same_failure(p, n, 'classifier')
    assert not marker.exists()
    assert (nat / 'pack.json').read_text() == (base_pack / 'pack.json').read_text()
    assert not (nat / 'classifier-resnet-50.safetensors').exists()
    print(f'\n[convert-native] {kind}: {msg}')


# ---------------------------------------------------------------- classifiers: the Coral TFLite model

CORAL = Path(os.environ.get('GFCG_SHARED', REPO.parent / 'shared')) / 'models' / \
    'mobilenet-v2-coral' / 'mobilenet_v2_1.0_224_quant.tflite'
if not CORAL.exists() and Path('/shared/models').exists():   # inside tools/devenv
    CORAL = Path('/shared/models/mobilenet-v2-coral/mobilenet_v2_1.0_224_quant.tflite')


@pytest.mark.parametrize('fp16', [False, True])
def test_coral_mobilenet_same_classifier(tmp_path, base_pack, fp16):
    """The real Coral model (../shared/models; never committed): the same
    classifier file byte for byte, its graph metadata included."""
    if not CORAL.exists():
        pytest.skip(f'{CORAL} is absent (see ../shared/models/*/README.md)')
    p, n, py, nat = both_classifier(tmp_path, base_pack, '--mobilenet', CORAL,
                                    *(['--fp16'] if fp16 else []))
    same_success(p, n, py, nat)
    st = load_file(nat / 'classifier-mobilenet-v2.safetensors')
    assert st['classifier.weight'].shape == (1001, 1280)
    assert {'stem.weight', 'blocks.16.project.bias', 'head.weight'} <= set(st)
    print(f'\n[convert-native] coral mobilenet-v2{" --fp16" if fp16 else ""}: {len(st)} tensors, '
          f'file identical ({(nat / "classifier-mobilenet-v2.safetensors").stat().st_size} bytes)')


def test_coral_damaged_is_refused(tmp_path, base_pack):
    """Cut or damaged flatbuffers: one line, exit status 2, the pack as it was
    (native only: the Python reference reads such files with its own errors)."""
    if not CORAL.exists():
        pytest.skip(f'{CORAL} is absent')
    data = CORAL.read_bytes()
    rnd = random.Random(11)
    cases = {'empty': b'', 'no-identifier': b'\x00' * 64, 'cut-8': data[:8], 'cut-100': data[:100],
             'cut-half': data[:len(data) // 2], 'cut-end': data[:-1000]}
    for i in range(12):
        b = bytearray(data)
        for _ in range(4):
            b[rnd.randrange(0, 4096)] = rnd.randrange(256)   # the tables, not the weights
        cases[f'flip-{i}'] = bytes(b)
    nat = tmp_path / 'pack'
    shutil.copytree(base_pack, nat)
    before = (nat / 'pack.json').read_text()
    for name, blob in cases.items():
        path = tmp_path / f'{name}.tflite'
        path.write_bytes(blob)
        n = run_native('classifier', ['--pack', nat, '--mobilenet', path])
        assert n.returncode in (0, 2), (name, n.returncode, n.stderr)
        if n.returncode == 2:
            message(n, f'gfcg convert classifier: {path}: ')
            assert (nat / 'pack.json').read_text() == before, name
            assert not (nat / 'classifier-mobilenet-v2.safetensors').exists(), name
        else:   # a flip that leaves a readable model: a classifier, --replace next time
            (nat / 'classifier-mobilenet-v2.safetensors').unlink()
            (nat / 'pack.json').write_text(before)
