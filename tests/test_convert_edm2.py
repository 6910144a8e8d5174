"""converters/convert-edm2: NVIDIA EDM2 snapshot pickles -> packs, never running their code.

The pickles here are written in NVIDIA's format by our own generator: every
network module pickles as `torch_utils.persistence._reconstruct_persistent_obj(meta)`
with `meta = dict(type='class', version=6, module_src=..., class_name=...,
state=<__dict__>)`, `torch.nn.ModuleDict`s pickle the default way and tensors the
`pickle.dump` way (`_rebuild_parameter(_rebuild_tensor_v2(_load_from_bytes(...)))`).
Each `module_src` would create a marker file if it were ever executed; a control
test shows that a naive loader does execute it, the converter must not.
"""
import collections
import copy
import json
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import make_packs

REPO = Path(__file__).resolve().parent.parent
CONVERT = REPO / 'converters' / 'convert-edm2'
from gfcg_convert import edm2_pickle  # noqa: E402


# ---------------------------------------------------------------- NVIDIA-format generator

def _payload(marker):
    """Module source that, if executed, leaves a marker file behind."""
    return (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src was executed')\n"
            "class Precond: pass\nclass UNet: pass\nclass Block: pass\n"
            "class MPConv: pass\nclass MPFourier: pass\n")


class _Persistent:
    """Pickles exactly like an edm2 persistent_class instance."""

    def __init__(self, class_name, state, src):
        self.meta = dict(type='class', version=6, module_src=src, class_name=class_name, state=state)

    def __reduce__(self):
        return (_fake_persistence._reconstruct_persistent_obj, (self.meta,))


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


_fake_persistence = types.ModuleType('torch_utils.persistence')


def _never_called(meta):
    raise AssertionError('the generator never unpickles')


_fake_persistence._reconstruct_persistent_obj = _never_called
_never_called.__module__ = 'torch_utils.persistence'
_never_called.__name__ = _never_called.__qualname__ = '_reconstruct_persistent_obj'


@pytest.fixture(autouse=True)
def _fake_torch_utils(monkeypatch):
    """pickle.dump looks `torch_utils.persistence._reconstruct_persistent_obj` up by name."""
    pkg = types.ModuleType('torch_utils')
    pkg.persistence = _fake_persistence
    monkeypatch.setitem(sys.modules, 'torch_utils', pkg)
    monkeypatch.setitem(sys.modules, 'torch_utils.persistence', _fake_persistence)


NV_NAMES = {'EDM2Precond': 'UNet', 'Block': 'Block', 'MPConv': 'MPConv', 'Fourier': 'MPFourier'}


def _nv_tree(m, src, init_kwargs=None):
    """A reference module as NVIDIA's pickle would hold it."""
    state = dict(m.__dict__)
    state['_modules'] = type(m._modules)(
        (k, None if v is None else _nv_tree(v, src)) for k, v in m._modules.items())
    state['_parameters'] = type(m._parameters)(m._parameters)
    state['_buffers'] = type(m._buffers)(m._buffers)
    if isinstance(m, torch.nn.ModuleDict):
        md = torch.nn.ModuleDict.__new__(torch.nn.ModuleDict)
        md.__dict__.update(state)
        return md
    state['_init_args'] = ()
    state['_init_kwargs'] = copy.deepcopy(init_kwargs or {})
    return _Persistent(NV_NAMES[type(m).__name__], state, src)


def nv_snapshot(net, config, src, extra=None):
    """{'ema': Precond(unet=UNet(...), logvar_*), 'loss_fn': ..., 'dataset_kwargs': ...}."""
    g = torch.Generator().manual_seed(99)
    unet_kwargs = {k: v for k, v in config.items() if k != 'sigma_data'}
    unet_kwargs.update(resample_filter=[1, 1], dropout=0)
    unet = _nv_tree(net, src, unet_kwargs)
    unet.meta['state']['training'] = False
    lv = {'freqs': torch.randn(128, generator=g), 'phases': torch.rand(128, generator=g)}
    logvar_fourier = _Persistent('MPFourier', {'training': False, '_parameters': {}, '_buffers': lv,
                                               '_modules': {}, '_init_args': (), '_init_kwargs': {}}, src)
    logvar_linear = _Persistent('MPConv', {
        'training': False, '_parameters': {'weight': torch.nn.Parameter(torch.randn(1, 128, generator=g))},
        '_buffers': {}, '_modules': {}, '_init_args': (), '_init_kwargs': {}}, src)
    pkw = dict(config, use_fp16=True, logvar_channels=128)
    base = torch.nn.Module()
    pstate = dict(base.__dict__)
    pstate.update(training=False, img_resolution=config['img_resolution'],
                  img_channels=config['img_channels'], label_dim=config['label_dim'],
                  use_fp16=True, sigma_data=config.get('sigma_data', 0.5),
                  _init_args=(), _init_kwargs=pkw)
    pstate['_modules'] = {'unet': unet, 'logvar_fourier': logvar_fourier, 'logvar_linear': logvar_linear}
    data = {'ema': _Persistent('Precond', pstate, src),
            'loss_fn': _Persistent('EDM2Loss', {'P_mean': -0.4, 'P_std': 1.0, 'sigma_data': 0.5}, src),
            'dataset_kwargs': {'class_name': 'training.dataset.ImageFolderDataset', 'path': 'x.zip'}}
    data.update(extra or {})
    return data


def write_pickle(path, obj):
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return path


def convert_inproc(capsys, *args):
    """The command's main() in this process (a marker would show execution just the same)."""
    rc = edm2_pickle.main([str(a) for a in args])
    return rc, capsys.readouterr().err


def run_convert(*args):
    return subprocess.run([sys.executable, str(CONVERT)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def gfcg_bin():
    b = os.environ.get('GFCG_BIN') or shutil.which('gfcg') or str(REPO / 'build' / 'engine' / 'cli' / 'gfcg')
    if not os.access(b, os.X_OK):
        pytest.fail('engine binary not found: set GFCG_BIN or put gfcg on PATH', pytrace=False)
    return b


def gfcg(*args):
    p = subprocess.run([gfcg_bin()] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f'gfcg {args}\n{p.stdout}\n{p.stderr}'
    return p


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def nets():
    cfg = make_packs.unet_config()  # 16x16, model_channels 32, label_dim 4, attention at 8
    main = make_packs.make_unet(11, **cfg)[1]
    guide = make_packs.make_relative(12, main, **cfg)[1]
    ucfg = make_packs.unet_config(label_dim=0)
    uncond = make_packs.make_relative(13, main, **ucfg)[1]
    return {'main': (cfg, main), 'guide': (cfg, guide), 'uncond': (ucfg, uncond)}


@pytest.fixture
def snapshots(tmp_path, nets):
    marker = tmp_path / 'MARKER-module_src-ran'
    src = _payload(marker)
    paths = {}
    names = {'main': 'edm2-img16-s-0001073-0.075.pkl', 'guide': 'edm2-img16-xs-0000134-0.110.pkl',
             'uncond': 'edm2-img16-xs-uncond-0002147-0.045.pkl'}
    for role, (cfg, net) in nets.items():
        paths[role] = write_pickle(tmp_path / names[role], nv_snapshot(net, cfg, src))
    return paths, marker


# ---------------------------------------------------------------- the generator is hostile

def test_control_naive_loader_runs_module_src(tmp_path, snapshots):
    """The generated pickles are dangerous: a loader doing what NVIDIA's
    persistence module does (exec module_src) creates the marker."""
    paths, marker = snapshots
    lib = tmp_path / 'naive' / 'torch_utils'
    lib.mkdir(parents=True)
    (lib / '__init__.py').write_text('')
    (lib / 'persistence.py').write_text(
        'import types\n'
        'def _reconstruct_persistent_obj(meta):\n'
        '    exec(meta["module_src"], types.ModuleType("m").__dict__)\n'
        '    return meta\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path / 'naive'))
    p = subprocess.run([sys.executable, '-c', 'import pickle, sys; pickle.load(open(sys.argv[1], "rb"))',
                        str(paths['main'])], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert marker.exists()


# ---------------------------------------------------------------- conversion

def test_convert_main_guide_uncond(tmp_path, snapshots, nets):
    paths, marker = snapshots
    out = tmp_path / 'pack'
    p = run_convert('--main', paths['main'], '--guide', paths['guide'], '--uncond', paths['uncond'],
                    '--out', out, '--name', 'edm2-tiny', '--guidance', 1.7)
    assert p.returncode == 0, p.stderr
    assert not marker.exists(), 'the converter executed module_src'
    m = json.loads((out / 'pack.json').read_text())
    assert m['format'] == 'gfcg-pack' and m['format_version'] == 1 and m['name'] == 'edm2-tiny'
    assert m['kind'] == 'pixel' and m['resolution'] == 16 and m['channels'] == 3
    assert m['licence'] == 'CC-BY-NC-SA-4.0' and 'never redistributes' in m['licence_note']
    assert m['source'].endswith('/edm2/posthoc-reconstructions/edm2-img16-s-0001073-0.075.pkl')
    assert [c['imagenet'] for c in m['classes']] == [0, 1, 2, 3]
    assert m['defaults'] == {'mode': 'atg', 'guidance': 1.7}
    assert set(m['components']) == {'main', 'guide', 'uncond'}
    g = m['components']['guide']['source']
    assert (g['ema_std'], g['training_kimg'], g['conditional']) == (0.11, 134, True)
    assert m['components']['uncond']['source']['conditional'] is False
    assert m['components']['main']['source']['dropped'] == ['logvar_fourier.freqs',
                                                            'logvar_fourier.phases', 'logvar_linear.weight']
    for role, (cfg, net) in nets.items():
        comp = m['components'][role]
        assert comp['arch'] == 'edm2-unet'
        for k, v in cfg.items():
            assert comp['config'][k] == v, (role, k)
        got = load_file(out / comp['file'])
        want = net.state_dict()
        assert set(got) == set(want)
        for k in want:
            assert got[k].dtype == torch.float32 and torch.equal(got[k], want[k]), (role, k)


def test_installed_converter_runs_on_its_own(tmp_path, snapshots, nets):
    """`meson install` puts the converters `gfcg models fetch` runs under
    libexec/gfcg/converters with what they import: the installed copy converts without
    the source tree (run from elsewhere, with no PYTHONPATH)."""
    build = Path(gfcg_bin()).resolve().parent.parent
    if not (build / 'meson-private').is_dir() or shutil.which('meson') is None:
        pytest.skip('the engine binary is not in a meson build folder')
    dest = tmp_path / 'dest'
    subprocess.run(['meson', 'install', '-C', str(build), '--no-rebuild', '--quiet',
                    '--destdir', str(dest)], check=True, capture_output=True, timeout=300)
    tools = list(dest.rglob('libexec/gfcg/converters/convert-edm2'))
    assert len(tools) == 1, 'convert-edm2 is not installed under libexec/gfcg/converters'
    paths, marker = snapshots
    out = tmp_path / 'pack'
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    p = subprocess.run([sys.executable, str(tools[0]), '--main', paths['main'], '--guide',
                        paths['guide'], '--out', str(out)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert not marker.exists(), 'the converter executed module_src'
    got = load_file(out / 'main.safetensors')
    want = nets['main'][1].state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert 'guide' in gfcg('info', '--pack', out).stdout


def test_guidance_weight_follows_the_mode(tmp_path, snapshots):
    """--guidance-cfg: the pack's CFG modes default to their own weight, the
    autoguidance modes to --guidance; an explicit --guidance wins."""
    paths, _ = snapshots
    out = tmp_path / 'pack'
    p = run_convert('--main', paths['main'], '--guide', paths['guide'], '--uncond', paths['uncond'],
                    '--out', out, '--guidance', 1.7, '--guidance-cfg', 1.3)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / 'pack.json').read_text())['defaults'] == {
        'mode': 'atg', 'guidance': 1.7, 'guidance_cfg': 1.3}

    def weight(*args):
        trace = tmp_path / 'trace.json'
        gfcg('sample', '--pack', out, '--class', 1, '--steps', 2, '--seed', 1, '--quiet',
             '--trace', trace, '--out', tmp_path / 'x.png', *args)
        return json.loads(trace.read_text())['options']['guidance']

    assert weight('--mode', 'cfg') == 1.3
    assert weight('--mode', 'atg') == 1.7
    assert weight() == 1.7  # the pack's default mode, atg
    assert weight('--mode', 'cfg', '--guidance', 2.5) == 2.5


def test_convert_fp16(tmp_path, snapshots, nets):
    paths, marker = snapshots
    out = tmp_path / 'pack16'
    p = run_convert('--main', paths['main'], '--out', out, '--fp16', '--source-url', 'https://example.org/x.pkl')
    assert p.returncode == 0, p.stderr
    m = json.loads((out / 'pack.json').read_text())
    assert m['source'] == 'https://example.org/x.pkl' and m['defaults'] == {'mode': 'none'}
    assert m['name'] == 'edm2-img16-s-0001073-0.075'
    got = load_file(out / 'main.safetensors')
    for k, v in nets['main'][1].state_dict().items():
        assert got[k].dtype == torch.float16 and torch.equal(got[k], v.half()), k
    assert not marker.exists()


def test_config_mismatch_is_an_error(tmp_path, nets):
    cfg, net = nets['main']
    src = _payload(tmp_path / 'marker')
    data = nv_snapshot(net, dict(cfg, num_blocks=2), src)  # claims more blocks
    path = write_pickle(tmp_path / 'bad.pkl', data)
    p = run_convert('--main', path, '--out', tmp_path / 'o')
    assert p.returncode == 2 and 'missing tensors' in p.stderr
    assert not (tmp_path / 'marker').exists() and not (tmp_path / 'o' / 'pack.json').exists()


# ---------------------------------------------------------------- hostile pickles

def _snapshot_with(tmp_path, nets, evil):
    cfg, net = nets['main']
    return nv_snapshot(net, cfg, _payload(tmp_path / 'marker-src'), extra={'augment_pipe': evil})


RAW_GLOBALS = ['os system', 'posix system', 'builtins exec', 'builtins eval', '__builtin__ eval',
               'subprocess Popen', 'subprocess check_call', 'torch load', 'torch.serialization load',
               'builtins getattr', 'importlib import_module', 'pickle loads', 'numpy load',
               'torch_utils.persistence _src_to_module', 'torch_utils.persistence persistent_class',
               'torch.storage _load_from_bytes_unsafe', 'collections namedtuple', 'builtins __import__']


@pytest.mark.parametrize('glob', RAW_GLOBALS)
def test_refuses_dangerous_globals(tmp_path, capsys, glob):
    """Hand-written protocol-0 pickles calling GLOBAL(ARG) where ARG would touch a marker."""
    marker = tmp_path / 'marker'
    arg = f"touch {marker}" if 'system' in glob else f"open({str(marker)!r},'w')"
    mod, name = glob.split()
    data = f"(dp0\nS'ema'\np1\nc{mod}\n{name}\n(S'{arg}'\ntR.".encode()
    path = tmp_path / 'evil.pkl'
    path.write_bytes(data)
    rc, err = convert_inproc(capsys, '--main', path, '--out', tmp_path / 'o')
    assert rc == 2, err
    assert f'refused: the pickle asks for the global {mod}.{name}' in err
    assert not marker.exists() and not (tmp_path / 'o' / 'pack.json').exists()


@pytest.mark.parametrize('how', ['os.system', 'exec', 'subprocess', 'eval'])
def test_refuses_payload_inside_real_snapshot(tmp_path, capsys, nets, how):
    """A valid EDM2 snapshot with one extra object that runs code on load."""
    marker = tmp_path / 'marker'
    evil = {'os.system': _Evil(os.system, f'touch {marker}'),
            'exec': _Evil(exec, f'open({str(marker)!r}, "w")'),
            'subprocess': _Evil(subprocess.Popen, ['touch', str(marker)]),
            'eval': _Evil(eval, f'open({str(marker)!r}, "w")')}[how]
    path = write_pickle(tmp_path / 'evil.pkl', _snapshot_with(tmp_path, nets, evil))
    if how == 'os.system':  # once through the real command line
        p = run_convert('--main', path, '--out', tmp_path / 'o')
        rc, err = p.returncode, p.stderr
    else:
        rc, err = convert_inproc(capsys, '--main', path, '--out', tmp_path / 'o')
    assert rc == 2 and 'refused' in err, err
    assert not marker.exists() and not (tmp_path / 'marker-src').exists()
    assert not (tmp_path / 'o').exists() or not (tmp_path / 'o' / 'pack.json').exists()


def test_refuses_hostile_storage_bytes(tmp_path):
    """_load_from_bytes with a payload that is a pickle calling os.system: refused
    in our own words, never passing on torch's advice to retry with
    weights_only=False."""
    marker = tmp_path / 'marker'
    inner = pickle.dumps(_Evil(os.system, f'touch {marker}'), protocol=2)
    data = {'ema': _Evil(torch.storage._load_from_bytes, inner)}
    path = write_pickle(tmp_path / 'evil.pkl', data)
    p = run_convert('--main', path, '--out', tmp_path / 'o')
    line = one_clear_line(p, path, 2)
    assert 'refused' in line and 'storage' in line and 'system' in line, line
    assert 'weights_only' not in p.stderr and 'weights_only' not in p.stdout
    assert not marker.exists()


def test_refuses_persistent_id_and_foreign_build(tmp_path):
    pid = tmp_path / 'pid.pkl'
    pid.write_bytes(b"(dp0\nS'ema'\np1\nPstorage\np2\ns.")
    with pytest.raises(edm2_pickle.RefusedPickle, match='persistent ids'):
        edm2_pickle.restricted_load(pid)
    build = tmp_path / 'build.pkl'  # set state on a set through BUILD
    build.write_bytes(b"c__builtin__\nset\n(tR(S'x'\ntb.")
    with pytest.raises(edm2_pickle.RefusedPickle, match='BUILD'):
        edm2_pickle.restricted_load(build)


# ---------------------------------------------------------------- damaged files: one clear line

def one_clear_line(p, path, code):
    """The converter failed with exit status `code` and said why in exactly one
    line `convert-edm2: PATH: what is wrong`, without a traceback."""
    assert p.returncode == code, (p.returncode, p.stderr)
    assert 'Traceback' not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    prefix = f'convert-edm2: {path}: '
    assert lines[0].startswith(prefix) and lines[0][len(prefix):].strip(), lines[0]
    return lines[0][len(prefix):]


@pytest.mark.parametrize('protocol', [2, 4])
def test_truncated_pickle(tmp_path, nets, protocol):
    """Cut at 60%: inside a frame (protocol 4) or in the unframed stream (2)."""
    cfg, net = nets['main']
    data = pickle.dumps(nv_snapshot(net, cfg, _payload(tmp_path / 'marker')), protocol=protocol)
    path = tmp_path / 'cut.pkl'
    path.write_bytes(data[:len(data) * 6 // 10])
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 1)
    assert 'truncated' in msg and 'byte' in msg, msg


def test_empty_file(tmp_path):
    path = tmp_path / 'empty.pkl'
    path.write_bytes(b'')
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 1)
    assert 'empty' in msg, msg


def test_garbage(tmp_path):
    path = tmp_path / 'garbage.pkl'
    path.write_bytes(random.Random(7).randbytes(4096))
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 1)
    assert 'not a valid pickle' in msg and 'byte' in msg, msg


@pytest.mark.parametrize('op,data', [
    ('LONG4', b'\x80\x02\x8b' + struct.pack('<i', 2**31 - 1) + b'.'),
    ('BINBYTES8', b'\x80\x04\x8e' + struct.pack('<Q', 2**40) + b'.'),
    ('BINUNICODE8', b'\x80\x04\x8d' + struct.pack('<Q', 2**62) + b'.'),
    ('FRAME', b'\x80\x04\x95' + struct.pack('<Q', 2**50) + b'.'),
])
def test_oversized_length(tmp_path, op, data):
    """A length larger than what is left of the file is refused before reading."""
    path = tmp_path / 'long.pkl'
    path.write_bytes(data)
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 1)
    assert op in msg and 'exceeds' in msg and 'at byte 2' in msg, msg


@pytest.mark.parametrize('op,data', [('EXT1', b'\x80\x02\x82\x01.'),
                                     ('EXT2', b'\x80\x02\x83\x01\x00.'),
                                     ('EXT4', b'\x80\x02\x84\x01\x00\x00\x00.')])
def test_extension_opcodes_refused(tmp_path, op, data):
    """EXT1/2/4 name globals through copyreg's registry (and a process-wide
    cache that bypasses find_class): refused, named."""
    path = tmp_path / 'ext.pkl'
    path.write_bytes(data)
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 2)
    assert 'refused' in msg and op in msg, msg


def _set_tensor(data, name, value):
    """Replace the parameter `name` (state_dict-style, under 'ema') in an nv_snapshot."""
    *mods, leaf = name.split('.')
    node = data['ema']
    for m in mods:
        node = (node.meta['state'] if isinstance(node, _Persistent) else node.__dict__)['_modules'][m]
    (node.meta['state'] if isinstance(node, _Persistent) else node.__dict__)['_parameters'][leaf] = value


@pytest.mark.filterwarnings('ignore:TypedStorage is deprecated')
def test_tensor_exceeding_storage_is_named(tmp_path, nets):
    cfg, net = nets['main']
    data = nv_snapshot(net, cfg, _payload(tmp_path / 'marker'))
    key = next(k for k, _ in net.named_parameters())
    _set_tensor(data, f'unet.{key}', _Evil(torch._utils._rebuild_tensor_v2, torch.zeros(6).storage(),
                                            0, (4, 3), (3, 1), False, collections.OrderedDict()))
    path = write_pickle(tmp_path / 'big.pkl', data)
    msg = one_clear_line(run_convert('--main', path, '--out', tmp_path / 'o'), path, 2)
    assert f'unet.{key}' in msg and 'exceeds its storage' in msg, msg
    assert '12' in msg and '6' in msg, msg


def test_unconditional_main_refused(tmp_path, snapshots):
    """An unconditional network makes a pack without classes, which the engine
    refuses: the converter says so and points at --uncond."""
    paths, _ = snapshots
    msg = one_clear_line(run_convert('--main', paths['uncond'], '--out', tmp_path / 'o'),
                         paths['uncond'], 2)
    assert 'unconditional' in msg and '--uncond' in msg, msg
    assert not (tmp_path / 'o' / 'pack.json').exists()


def test_not_a_snapshot(tmp_path):
    path = write_pickle(tmp_path / 'x.pkl', {'net': 1})
    p = run_convert('--main', path, '--out', tmp_path / 'o')
    assert p.returncode == 2 and "no 'ema' entry" in p.stderr


# ---------------------------------------------------------------- through the engine

def test_engine_denoise_matches_original(tmp_path, snapshots, nets):
    paths, marker = snapshots
    out = tmp_path / 'pack'
    p = run_convert('--main', paths['main'], '--guide', paths['guide'], '--out', out, '--guidance', 2.0)
    assert p.returncode == 0, p.stderr
    g = torch.Generator().manual_seed(5)
    sigma = torch.tensor([80.0, 2.0, 0.3, 0.01])
    x = torch.randn(4, 3, 16, 16, generator=g) * sigma.view(-1, 1, 1, 1).clamp(min=0.5)
    labels = torch.eye(4)[[0, 1, 2, 3]]
    labels[3] = 0.5 * labels[3] + 0.5 * labels[0]
    save_file({'x': x, 'sigma': sigma, 'labels': labels}, str(tmp_path / 'in.safetensors'))
    for role in ('main', 'guide'):
        gfcg('denoise', '--pack', out, '--net', role, '--in', tmp_path / 'in.safetensors',
             '--out', tmp_path / f'{role}.safetensors')
        got = load_file(tmp_path / f'{role}.safetensors')['D'].double()
        net = copy.deepcopy(nets[role][1]).double()
        with torch.no_grad():
            want = net(x.double(), sigma.double(), labels.double())
        err = (got - want).abs().max().item()
        print(f'\n[convert-edm2] {role} denoise max abs err {err:.3e}')
        assert err <= 1e-4, (role, err)
    p = gfcg('sample', '--pack', out, '--mode', 'atg', '--guidance', 2.0, '--steps', 4, '--class', 1,
             '--seed', 3, '--out', tmp_path / 'atg.png', '--out-raw', tmp_path / 'atg.safetensors',
             '--threads', 2, '--quiet')
    assert (tmp_path / 'atg.png').stat().st_size > 0
    xr = load_file(tmp_path / 'atg.safetensors')['x']
    assert xr.shape == (1, 3, 16, 16) and torch.isfinite(xr).all()
    assert not marker.exists()


def test_latent_protocol2(tmp_path, capsys):
    """A 4-channel (img512-like latent) net, pickled with protocol 2 (builtins as
    __builtin__, sets by REDUCE): kind latent, resolution 8x the net's, decoder note."""
    cfg = dict(img_resolution=8, img_channels=4, label_dim=3, model_channels=32,
               channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], channel_mult_emb=3)
    net = make_packs.make_unet(21, **cfg)[1]
    marker = tmp_path / 'marker'
    path = tmp_path / 'latent.pkl'
    with open(path, 'wb') as f:
        pickle.dump(nv_snapshot(net, cfg, _payload(marker)), f, protocol=2)
    rc, err = convert_inproc(capsys, '--main', path, '--out', tmp_path / 'o', '--fp16')
    assert rc == 0, err
    m = json.loads((tmp_path / 'o' / 'pack.json').read_text())
    assert (m['kind'], m['resolution'], m['channels']) == ('latent', 64, 4)
    assert 'decoder' in m['note'] and len(m['classes']) == 3
    assert m['components']['main']['config']['channel_mult_emb'] == 3
    got = load_file(tmp_path / 'o' / 'main.safetensors')
    assert all(torch.equal(got[k], v.half()) for k, v in net.state_dict().items())
    assert not marker.exists()
