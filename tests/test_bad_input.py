"""Bad input to the `gfcg` command: each case is a clear error, exit status 1
(never a crash: a signal would give a negative status), and nothing written.

Runs against $GFCG_BIN; `make check` runs it again with the AddressSanitizer
build, so a memory error on any of these paths fails the suite.
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

GFCG = os.environ.get('GFCG_BIN') or shutil.which('gfcg')


def gfcg(*args, timeout=300):
    if not GFCG:
        pytest.fail('engine binary not found: set GFCG_BIN', pytrace=False)
    return subprocess.run([GFCG] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def expect_error(p, *fragments):
    assert p.returncode == 1, f'exit {p.returncode}\n{p.stderr}'
    for f in fragments:
        assert f in p.stderr, f'{f!r} not in: {p.stderr}'


@pytest.fixture
def pack(packs, tmp_path):
    """A private copy of tiny-pixel to break."""
    d = tmp_path / 'pack'
    shutil.copytree(packs / 'tiny-pixel', d)
    return d


def header_and_data(path):
    raw = path.read_bytes()
    n = struct.unpack('<Q', raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data, hlen=None):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack('<Q', len(h) if hlen is None else hlen) + h + data)


def sample_args(pack, out, *extra):
    return ['sample', '--pack', pack, '--class', 1, '--mode', 'none', '--steps', 2,
            '--seed', 1, '--quiet', '--out', out] + list(extra)


def test_valid_pack_works(pack, tmp_path):
    p = gfcg(*sample_args(pack, tmp_path / 'ok.png'))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / 'ok.png').stat().st_size > 0


@pytest.mark.parametrize('case', ['truncated', 'huge-header', 'overlap', 'dtype', 'nan',
                                  'missing-tensor', 'empty', 'garbage-json'])
def test_corrupt_weights(pack, tmp_path, case):
    f = pack / 'main.safetensors'
    header, data = header_and_data(f)
    name = 'enc.16x16_block0.conv_res0.weight'
    expected = {'truncated': 'outside', 'huge-header': 'header length', 'overlap': 'overlap',
                'dtype': 'unsupported dtype', 'nan': 'non-finite',
                'missing-tensor': "'%s' is missing" % name, 'empty': 'too short',
                'garbage-json': 'not valid JSON'}[case]
    if case == 'truncated':
        f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    elif case == 'huge-header':
        write_st(f, header, data, hlen=1 << 60)
    elif case == 'overlap':
        a, b = sorted((k for k in header if k != '__metadata__'),
                      key=lambda k: header[k]['data_offsets'][0])[:2]
        header[b]['data_offsets'] = [header[a]['data_offsets'][0],
                                     header[a]['data_offsets'][0] +
                                     header[b]['data_offsets'][1] - header[b]['data_offsets'][0]]
        write_st(f, header, data)
    elif case == 'dtype':
        header[name]['dtype'] = 'I32'
        write_st(f, header, data)
    elif case == 'nan':
        start = header[name]['data_offsets'][0]
        data = bytearray(data)
        data[start:start + 4] = struct.pack('<f', float('nan'))
        write_st(f, header, bytes(data))
    elif case == 'missing-tensor':
        del header[name]
        write_st(f, header, data)
    elif case == 'empty':
        f.write_bytes(b'')
    elif case == 'garbage-json':
        f.write_bytes(struct.pack('<Q', 9) + b'{"a": [1,' + data)
    out = tmp_path / 'x.png'
    expect_error(gfcg(*sample_args(pack, out)), 'main.safetensors', expected)
    assert not out.exists()
    expect_error(gfcg('info', '--pack', pack), expected)


def edit_pack_json(pack, fn):
    meta = json.loads((pack / 'pack.json').read_text())
    fn(meta)
    (pack / 'pack.json').write_text(json.dumps(meta))


@pytest.mark.parametrize('case,expected', [
    ('wrong-shape', "has shape"),
    ('label-dim', 'label_dim'),
    ('missing-file', 'No such file'),
    ('escape', 'inside the pack'),
    ('no-main', 'components.main'),
    ('bad-arch', 'not supported'),
    ('bad-kind', '"kind"'),
    ('bad-class', 'imagenet'),
    ('bad-default', 'steps'),
])
def test_bad_manifest(pack, tmp_path, case, expected):
    def fn(m):
        c = m['components']
        if case == 'wrong-shape':
            c['main']['config']['model_channels'] = 64
        elif case == 'label-dim':
            c['guide']['config']['label_dim'] = 7
        elif case == 'missing-file':
            c['guide']['file'] = 'nothere.safetensors'
        elif case == 'escape':
            c['guide']['file'] = '../../etc/passwd'
        elif case == 'no-main':
            del c['main']
        elif case == 'bad-arch':
            c['main']['arch'] = 'python-pickle'
        elif case == 'bad-kind':
            m['kind'] = 'video'
        elif case == 'bad-class':
            m['classes'][0]['imagenet'] = 1000
        elif case == 'bad-default':
            m['defaults']['steps'] = 0
    edit_pack_json(pack, fn)
    expect_error(gfcg('info', '--pack', pack), expected)


def test_not_json(pack):
    (pack / 'pack.json').write_text('{"format": "gfcg-pack", ')
    expect_error(gfcg('info', '--pack', pack), 'pack.json')


def test_missing_pack(tmp_path):
    expect_error(gfcg('info', '--pack', tmp_path / 'nowhere'), 'no such model pack')


@pytest.mark.parametrize('args,expected', [
    (['--class', 'unicorn'], "unknown class 'unicorn'"),
    (['--class', 'zebra'], "ImageNet class 'zebra' (inet:340, zebra) is not one that pack"),
    (['--class', '99'], 'out of range'),
    (['--class', 'inet:1'], 'not one that pack'),
    (['--class', 'goldfish'], "ImageNet class 'goldfish' (inet:1, goldfish) is not one that pack"),
    (['--class', 'Carassius auratus'], '(inet:1, goldfish)'),
    (['--class', '1', '--mode', 'fast'], "unknown mode 'fast'"),
    (['--class', '1', '--steps', '0'], 'steps'),
    (['--class', '1', '--guidance', '-1'], 'guidance'),
    (['--class', '1', '--temperature', '0'], 'temperature'),
    (['--class', '1', '--sigma-lo', '5', '--sigma-hi', '1'], 'window'),
    (['--class', '1', '--device', 'gpu7'], "unknown device 'gpu7'"),
])
def test_bad_arguments(pack, tmp_path, args, expected):
    out = tmp_path / 'x.png'
    p = gfcg('sample', '--pack', pack, '--seed', 1, '--quiet', '--out', out, *args)
    expect_error(p, expected)
    assert not out.exists()


def test_mode_needs_component(packs, tmp_path):
    d = tmp_path / 'noclf'
    shutil.copytree(packs / 'tiny-pixel', d)
    edit_pack_json(d, lambda m: (m['components'].pop('classifier'), m['components'].pop('guide')))
    for mode, what in [('gfcg', 'classifier'), ('atg', 'guide network')]:
        expect_error(gfcg('sample', '--pack', d, '--class', 1, '--mode', mode, '--steps', 2,
                          '--out', tmp_path / 'x.png'), what)


def test_denoise_wrong_shape(pack, tmp_path):
    import torch
    from safetensors.torch import save_file
    f = tmp_path / 'in.safetensors'
    save_file({'x': torch.zeros(1, 3, 8, 8), 'sigma': torch.ones(1)}, str(f))
    expect_error(gfcg('denoise', '--pack', pack, '--in', f, '--out', tmp_path / 'o'),
                 'takes [N, 3, 16, 16]')
    save_file({'x': torch.zeros(2, 3, 16, 16), 'sigma': torch.ones(1)}, str(f))
    expect_error(gfcg('denoise', '--pack', pack, '--in', f, '--out', tmp_path / 'o'),
                 'sigma has 1 entries for 2 images')
    save_file({'x': torch.zeros(1, 3, 16, 16), 'sigma': torch.zeros(1)}, str(f))
    expect_error(gfcg('denoise', '--pack', pack, '--in', f, '--out', tmp_path / 'o'),
                 'must be finite and > 0')
    assert not (tmp_path / 'o').exists()


def test_interrupt_stops_cleanly(pack, tmp_path):
    """Ctrl-C ends the run between evaluations: exit 1, 'cancelled', no file,
    and an older file of the same name is left as it was."""
    out = tmp_path / 'x.png'
    out.write_bytes(b'keep me')
    p = subprocess.Popen([GFCG, 'sample', '--pack', str(pack), '--class', '1', '--mode', 'gfcg',
                          '--steps', '400', '--seed', '1', '--out', str(out)],
                         stderr=subprocess.PIPE, text=True)
    p.stderr.readline()          # the first progress line: sampling has started
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 1
    assert 'cancelled' in err
    assert out.read_bytes() == b'keep me'


def test_imagenet_names_and_synonyms(pack, tmp_path):
    """Any ImageNet name, synonym or wnid finds the pack's class (tiny-pixel
    has ImageNet 491, 'chain saw', as pack class 3)."""
    for spec in ['chainsaw', 'Chain Saw', 'n03000684', 'inet:491', '3']:
        trace = tmp_path / 't.json'
        p = gfcg('sample', '--pack', pack, '--class', spec, '--mode', 'none', '--steps', 1,
                 '--seed', 1, '--quiet', '--out', tmp_path / 'x.png', '--trace', trace)
        assert p.returncode == 0, p.stderr
        assert json.loads(trace.read_text())['class']['index'] == 3, spec
