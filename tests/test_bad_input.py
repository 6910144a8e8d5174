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


# A GLib critical (asking json-glib for the string of a list, say) is a bug
# on any input: fatal here, so it shows as a signal, not as a passing test.
ENV = dict(os.environ, G_DEBUG='fatal-criticals')


def gfcg(*args, timeout=300):
    if not GFCG:
        pytest.fail('engine binary not found: set GFCG_BIN', pytrace=False)
    return subprocess.run([GFCG] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def strict_json(text):
    """json.loads that refuses NaN and Infinity (Python accepts them)."""
    def refuse(name):
        raise ValueError(f'non-JSON constant {name}')
    return json.loads(text, parse_constant=refuse)


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
    return ['sample', '--pack', pack, '--class', 217, '--mode', 'none', '--steps', 2,
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
    (['--class', 'unicorn'], "unknown class 'unicorn' for pack 'tiny-pixel' (give"),
    # A typo gets the nearest ImageNet names, a word of several names them all.
    (['--class', 'golden retreiver'],
     "unknown class 'golden retreiver' for pack 'tiny-pixel': did you mean 'golden retriever'?"),
    (['--class', 'Chainsow'], "did you mean 'chain saw'?"),
    (['--class', 'retriever'],
     "did you mean 'flat-coated retriever', 'curly-coated retriever' or 'golden retriever'?"),
    (['--class', 'zebra'], "ImageNet class 'zebra' (inet:340, zebra) is not one that pack"),
    # A number is an ImageNet index; the pack's own index is --pack-class (or pack:N).
    (['--class', '1'], "ImageNet class 1 (goldfish) is not one that pack 'tiny-pixel' can draw; "
     'it draws tench (0), English springer (217), cassette player (482), chain saw (491)'),
    (['--class', '1000'], 'class 1000 is not an ImageNet-1k class index (0..999'),
    (['--pack-class', '99'], "pack class 99 is out of range: pack 'tiny-pixel' has classes 0..3"),
    (['--class', 'pack:4'], 'pack class 4 is out of range'),
    (['--class', 'inet:1'], 'not one that pack'),
    (['--class', 'goldfish'], "ImageNet class 'goldfish' (inet:1, goldfish) is not one that pack"),
    (['--class', 'Carassius auratus'], '(inet:1, goldfish)'),
    (['--class', '217', '--mode', 'fast'], "unknown mode 'fast'"),
    (['--class', '217', '--steps', '0'], 'steps'),
    (['--class', '217', '--guidance', '-1'], 'guidance'),
    (['--class', '217', '--temperature', '0'], 'temperature'),
    (['--class', '217', '--sigma-lo', '5', '--sigma-hi', '1'], 'window'),
    (['--class', '217', '--device', 'gpu7'], "unknown device 'gpu7'"),
])
def test_bad_arguments(pack, tmp_path, args, expected):
    out = tmp_path / 'x.png'
    p = gfcg('sample', '--pack', pack, '--seed', 1, '--quiet', '--out', out, *args)
    expect_error(p, expected)
    assert not out.exists()


@pytest.mark.parametrize('option', ['--out', '--trace', '--out-raw'])
def test_output_folder_checked_first(pack, tmp_path, option):
    """An output in a folder that is not there fails at once, before the pack
    is loaded or anything is sampled (1000 steps would take minutes)."""
    (tmp_path / 'file').write_text('')
    for folder, why in [(tmp_path / 'no' / 'such', 'does not exist'),
                        (tmp_path / 'file', 'is not a folder')]:
        args = sample_args(pack, tmp_path / 'x.png', '--steps', 1000)
        if option == '--out':
            args[args.index('--out') + 1] = folder / 'x.png'
        else:
            args += [option, folder / 'x.out']
        t = time.monotonic()
        p = gfcg(*args)
        assert time.monotonic() - t < 1.0
        name = 'x.png' if option == '--out' else 'x.out'
        expect_error(p, f"{option} {folder / name}: the folder '{folder}' {why} "
                        '(nothing was drawn)')
        assert not (tmp_path / 'x.png').exists()
    p = gfcg(*sample_args(pack, tmp_path))
    expect_error(p, f"--out '{tmp_path}' is a folder")


def test_class_spellings_resolve_alike(pack, tmp_path):
    """The engine's request API resolves a class the same way for the CLI and
    the plug-in: an ImageNet index, inet:N, pack:N, the wnid in any case and the
    name with '_' for spaces and outer blanks all draw the same picture."""
    from PIL import Image
    cls = json.loads((pack / 'pack.json').read_text())['classes'][1]
    spellings = [str(cls['imagenet']), f"inet:{cls['imagenet']}", 'pack:1',
                 f"  {cls['name'].replace(' ', '_').upper()} "]
    if cls.get('wnid'):
        spellings.append(cls['wnid'].upper())
    pictures = []
    for j, spec in enumerate(spellings):
        out = tmp_path / f'{j}.png'
        args = sample_args(pack, out)
        args[args.index('--class') + 1] = spec
        p = gfcg(*args)
        assert p.returncode == 0, (spec, p.stderr)
        with Image.open(out) as im:  # the PNG's text holds timings: compare pixels
            pictures.append(im.tobytes())
    assert all(b == pictures[0] for b in pictures), spellings


def test_mode_needs_component(packs, tmp_path):
    d = tmp_path / 'noclf'
    shutil.copytree(packs / 'tiny-pixel', d)
    edit_pack_json(d, lambda m: (m['components'].pop('classifier'), m['components'].pop('guide')))
    for mode, what in [('gfcg', 'classifier'), ('atg', 'guide network')]:
        expect_error(gfcg('sample', '--pack', d, '--class', 217, '--mode', mode, '--steps', 2,
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
    p = subprocess.Popen([GFCG, 'sample', '--pack', str(pack), '--class', '217', '--mode', 'gfcg',
                          '--steps', '400', '--seed', '1', '--out', str(out)],
                         stderr=subprocess.PIPE, text=True, env=ENV)
    p.stderr.readline()          # the first progress line: sampling has started
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 1
    assert 'cancelled' in err
    assert out.read_bytes() == b'keep me'


def test_interrupt_with_nothing_to_cancel_ends_the_process(pack):
    """A command that runs networks takes Ctrl-C on a thread of its own
    (engine/cli/cli-signals.c); where nothing is there to cancel (bench), it
    still ends the process as Ctrl-C does: killed by SIGINT, at once."""
    p = subprocess.Popen([GFCG, 'bench', '--pack', str(pack), '--batch', '64', '--evals', '10000'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(1.0)
    assert p.poll() is None, p.communicate()
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGINT
    assert time.monotonic() - t0 < 5


def test_imagenet_names_and_synonyms(pack, tmp_path):
    """Any ImageNet name, synonym, wnid or index finds the pack's class
    (tiny-pixel has ImageNet 491, 'chain saw', as pack class 3), and so does
    the pack's own index, asked for as such."""
    for spec in [['--class', s] for s in ('chainsaw', 'Chain Saw', 'n03000684', 'inet:491',
                                          '491', 'pack:3')] + [['--pack-class', '3'],
                                                               ['--imagenet', '491']]:
        trace = tmp_path / 't.json'
        p = gfcg('sample', '--pack', pack, *spec, '--mode', 'none', '--steps', 1,
                 '--seed', 1, '--quiet', '--out', tmp_path / 'x.png', '--trace', trace)
        assert p.returncode == 0, p.stderr
        t = json.loads(trace.read_text())['class']
        assert (t['index'], t['imagenet']) == (3, 491), spec
    # One way to name the class at a time.
    p = gfcg('sample', '--pack', pack, '--class', 491, '--pack-class', 3,
             '--out', tmp_path / 'x.png')
    assert p.returncode == 2 and 'one of --class, --imagenet and --pack-class' in p.stderr


# ---- non-finite and out-of-range values (sampling options) ----------------

@pytest.mark.parametrize('args,status,expected', [
    # Finite but huge or tiny: the schedule overflowed and a black PNG came out.
    (['--sigma-max', '1e300'], 1, 'sigma_max is 1e+300: it must lie in [1e-05, 10000]'),
    (['--rho', '1e-300'], 1, 'rho is 1e-300: it must lie in [1, 100]'),
    (['--rho', '0.5'], 1, 'rho is 0.5'),
    (['--sigma-min', '1e-300'], 1, 'sigma_min'),
    (['--temperature', '1e-300'], 1, 'temperature'),
    (['--s-max', 'inf'], 1, 's_max is inf'),
    (['--sigma-hi', 'nan'], 1, 'sigma_hi is nan'),
    # These used to mean "the pack's default" or "a random seed".
    (['--guidance', 'nan'], 1, 'guidance is nan'),
    (['--sigma-lo', 'nan'], 1, 'sigma_lo is nan'),
    (['--steps', '-1'], 1, 'steps is -1'),
    (['--seed', '-1'], 2, '--seed'),
    (['--guidance', '2x'], 1, "--guidance: '2x' is not a number"),
    (['--threads', '-3'], 2, '--threads'),
])
def test_bad_option_values(pack, tmp_path, args, status, expected):
    out, trace = tmp_path / 'x.png', tmp_path / 't.json'
    base = ['sample', '--pack', pack, '--class', 217, '--mode', 'none', '--steps', 2, '--quiet',
            '--out', out, '--trace', trace]
    if '--seed' not in args:
        base += ['--seed', 1]
    p = gfcg(*base, *args)
    assert p.returncode == status, f'exit {p.returncode}\n{p.stderr}'
    assert expected in p.stderr, p.stderr
    assert not out.exists() and not trace.exists()


def test_bad_imagenet_index(pack, tmp_path):
    """--imagenet -7 used to read as "no --imagenet" and ask for --class."""
    p = gfcg('sample', '--pack', pack, '--imagenet', -7, '--out', tmp_path / 'x.png')
    assert p.returncode == 2, p.stderr
    assert '--imagenet' in p.stderr and 'required' not in p.stderr, p.stderr


def poison_out_gain(pack):
    """A finite but huge output gain: the main network overflows to inf/NaN."""
    import torch
    from safetensors.torch import load_file, save_file
    f = str(pack / 'main.safetensors')
    t = load_file(f)
    t['out_gain'] = torch.full_like(t['out_gain'], 3e38)
    save_file(t, f)


@pytest.mark.parametrize('count', [1, 2])
def test_non_finite_network_output(pack, tmp_path, count):
    """The first evaluation whose network output is not finite stops the run
    with its name; no PNG (the NaN used to be cast to a byte: black) and no
    trace (it held "sigma" : -nan.0)."""
    poison_out_gain(pack)
    out, trace = tmp_path / 'x.png', tmp_path / 't.json'
    p = gfcg(*sample_args(pack, out, '--trace', trace, '--count', count))
    expect_error(p, "network 'main' gave non-finite values at evaluation 1 of 3", 'sigma 80')
    assert list(tmp_path.glob('*.png')) == [] and list(tmp_path.glob('*.json')) == []


def png_comment(path):
    """The text chunk gfcg sample writes (zlib or plain)."""
    import zlib
    raw = path.read_bytes()
    pos = 8
    while pos < len(raw):
        n, kind = struct.unpack('>I4s', raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b'tEXt':
            return body.split(b'\0', 1)[1].decode('latin-1')
        if kind == b'zTXt':
            return zlib.decompress(body.split(b'\0', 1)[1][1:]).decode('latin-1')
        if kind == b'iTXt':
            key, rest = body.split(b'\0', 1)
            compressed, rest = rest[0], rest[2:]
            rest = rest.split(b'\0', 2)[2]
            return (zlib.decompress(rest) if compressed else rest).decode()
        pos += 12 + n
    return None


def test_outputs_are_json(pack, tmp_path):
    """The trace and the PNG's text chunk parse with a strict JSON parser, at
    the edges of the option ranges too."""
    out, trace = tmp_path / 'x.png', tmp_path / 't.json'
    p = gfcg(*sample_args(pack, out, '--trace', trace, '--sigma-min', '1e-5', '--sigma-max',
                          '1e4', '--rho', '1', '--temperature', '1e-3', '--sigma-hi', '1e4'))
    assert p.returncode == 0, p.stderr
    t = strict_json(trace.read_text())
    assert t['options']['sigma_min'] == 1e-5 and t['options']['sigma_max'] == 1e4
    assert all(e['sigma'] > 0 for e in t['evaluations'])
    comment = png_comment(out)
    assert comment is not None and strict_json(comment) == t


# ---- pack.json: defaults, label map and JSON types ----------------------

@pytest.mark.parametrize('case,expected', [
    ('sigma-max', "sigma_max is 1e+300"),
    ('rho', 'rho is 1e-300'),
    ('guidance-string', "'guidance' must be a finite number"),
    ('guidance-cfg', 'guidance_cfg is 500'),
    ('steps-float', "'steps' must be an integer"),
    ('mode-number', "'mode' must be a string"),
    ('mode-unknown', "'mode' is 'fast'"),
    ('lagged-string', "'lagged' must be true or false"),
    ('view-unknown', "'gfcg_view' must be \"full\" or \"half\""),
    ('classify-every-0', "'classify_every'"),
    ('defaults-list', "'defaults' must be an object"),
    ('dup-imagenet', "'imagenet' is the same as that of classes[0]"),
    ('dup-name', "'name' is the same as that of classes[0]"),
    ('empty-name', "'name' must be a non-empty string"),
    ('name-number', "'name' must be a string"),
    ('file-number', "'file' must be a string"),
    ('file-list', "'file' must be a string"),
    ('arch-object', "'arch' must be a string"),
    ('format-list', "'format' must be a string"),
    ('kind-list', "'kind' must be a string"),
    ('label-space-list', "'label_space' must be a string"),
])
def test_bad_pack_values(pack, tmp_path, case, expected):
    def fn(m):
        c, d, k = m['components'], m['defaults'], m['classes']
        if case == 'sigma-max':
            d['sigma_max'] = 1e300
        elif case == 'rho':
            d['rho'] = 1e-300
        elif case == 'guidance-string':
            d['guidance'] = '2'
        elif case == 'guidance-cfg':
            d['guidance_cfg'] = 500
        elif case == 'steps-float':
            d['steps'] = 3.5
        elif case == 'mode-number':
            d['mode'] = 5
        elif case == 'mode-unknown':
            d['mode'] = 'fast'
        elif case == 'lagged-string':
            d['lagged'] = 'yes'
        elif case == 'view-unknown':
            d['gfcg_view'] = 'quarter'
        elif case == 'classify-every-0':
            d['classify_every'] = 0
        elif case == 'defaults-list':
            m['defaults'] = [1]
        elif case == 'dup-imagenet':
            k[1]['imagenet'] = k[0]['imagenet']
        elif case == 'dup-name':
            k[1]['name'] = k[0]['name'].upper()
        elif case == 'empty-name':
            k[1]['name'] = ' '
        elif case == 'name-number':
            k[1]['name'] = 7
        elif case == 'file-number':
            c['guide']['file'] = 5
        elif case == 'file-list':
            c['guide']['file'] = ['guide.safetensors']
        elif case == 'arch-object':
            c['main']['arch'] = {'name': 'edm2-unet'}
        elif case == 'format-list':
            m['format'] = ['gfcg-pack']
        elif case == 'kind-list':
            m['kind'] = ['pixel']
        elif case == 'label-space-list':
            c['classifier']['config']['label_space'] = ['pack']
    edit_pack_json(pack, fn)
    expect_error(gfcg('info', '--pack', pack), expected)
    out = tmp_path / 'x.png'
    expect_error(gfcg(*sample_args(pack, out)), expected)
    assert not out.exists()


@pytest.mark.parametrize('dtype', [['F32'], 32, {'t': 'F32'}])
def test_dtype_not_a_string(pack, tmp_path, dtype):
    f = pack / 'main.safetensors'
    header, data = header_and_data(f)
    header['enc.16x16_block0.conv_res0.weight']['dtype'] = dtype
    write_st(f, header, data)
    expect_error(gfcg('info', '--pack', pack), 'main.safetensors', "'dtype' must be a string")
