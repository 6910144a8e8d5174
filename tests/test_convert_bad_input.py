"""gfcg convert against hostile and damaged files (suites loader and bad-input,
so also under AddressSanitizer): the native readers alone.

Zip archives (torch.save's .pth and the storages nested in pickles): cut
files, entries that overlap, are compressed, encrypted, named twice, with a
wrong CRC-32, a local header naming another file, a zip64 locator pointing
elsewhere, a directory claiming more entries than it holds; legacy torch.save
files cut in their storages; pickles that call what they must not, nest
deeply, claim lengths beyond the file, or end early.  Each: exit status 2 (1
for an unreadable pickle), one line naming the file and what is wrong, no
file written, nothing run.
"""
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import make_packs
import test_convert_edm2 as te
from test_convert_edm2 import _fake_torch_utils, _payload, nv_snapshot, write_pickle  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def native(tool, *args):
    return subprocess.run([te.gfcg_bin(), 'convert', tool] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=300)


def one_line(p, prefix, code):
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), p.stderr
    assert 'AddressSanitizer' not in p.stderr and 'runtime error' not in p.stderr
    return lines[0][len(prefix):]


@pytest.fixture(scope='module')
def base_pack(tmp_path_factory):
    d = tmp_path_factory.mktemp('base')
    main = make_packs.make_unet(1, **make_packs.unet_config())
    return Path(make_packs.write_pack(
        str(d), 'tiny', {'title': 'tiny main-only pack', 'kind': 'pixel', 'resolution': 16,
                         'channels': 3, 'classes': make_packs.CLASSES},
        {'main': ('edm2-unet',) + main}))


@pytest.fixture
def pack(base_pack, tmp_path):
    d = tmp_path / 'pack'
    shutil.copytree(base_pack, d)
    return d


def classifier_refused(pack, path, code=2):
    before = (pack / 'pack.json').read_text()
    msg = one_line(native('classifier', '--pack', pack, '--resnet50', path),
                   f'gfcg convert classifier: {path}: ', code)
    assert (pack / 'pack.json').read_text() == before
    assert not (pack / 'classifier-resnet-50.safetensors').exists()
    assert [p.name for p in pack.iterdir() if p.name.startswith('.')] == []
    return msg


# ---------------------------------------------------------------- zip archives

def small_pth(path):
    torch.save({'fc.weight': torch.arange(40, dtype=torch.float32).reshape(10, 4),
                'fc.bias': torch.ones(10)}, path)
    return path.read_bytes()


def entries(data):
    """(name, local header offset, data offset, size) of each entry."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for i in z.infolist():
            n, x = struct.unpack('<HH', data[i.header_offset + 26:i.header_offset + 30])
            out.append((i.filename, i.header_offset, i.header_offset + 30 + n + x, i.file_size))
    return out


def central(data):
    """Offsets of the central directory records, by name."""
    out = {}
    at = data.find(b'PK\x01\x02')
    while at >= 0:
        n, x, c = struct.unpack('<HHH', data[at + 28:at + 34])
        out[data[at + 46:at + 46 + n].decode()] = at
        at = data.find(b'PK\x01\x02', at + 46 + n + x + c)
    return out


def handmade_zip(files, inside=None):
    """A stored zip archive of (name, data); inside=(a, b): entry b's local
    header and data are written inside entry a's data (an overlap)."""
    import zlib
    out, cent, offs = bytearray(), bytearray(), {}

    def local(name, data):
        n = name.encode()
        return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0, zlib.crc32(data), len(data),
                           len(data), len(n), 0) + n + data
    blobs = dict(files)
    if inside is not None:
        a, b = inside
        blobs[a] = local(b, blobs[b])
    for name, data in files:
        if inside is not None and name == inside[1]:
            continue
        offs[name] = len(out)
        out += local(name, blobs[name])
    if inside is not None:
        offs[inside[1]] = offs[inside[0]] + 30 + len(inside[0].encode())
    for name, data in files:
        n, d = name.encode(), blobs[name]
        cent += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0, zlib.crc32(d), len(d),
                            len(d), len(n), 0, 0, 0, 0, 0, offs[name]) + n
    end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(files), len(files), len(cent), len(out), 0)
    return bytes(out + cent + end)


def test_overlapping_zip_entries(pack, tmp_path):
    """Two entries sharing bytes (one's local header and data inside the
    other's data, each valid on its own: the zip bomb's trick) are refused."""
    files = [('archive/data.pkl', pickle.dumps({}, protocol=2)), ('archive/data/0', b'\x00' * 8),
             ('archive/byteorder', b'little')]
    path = tmp_path / 'plain.pth'
    path.write_bytes(handmade_zip(files))
    assert 'holds' not in classifier_refused(pack, path)   # reads: an empty state dict, not a ResNet
    path = tmp_path / 'overlap.pth'
    path.write_bytes(handmade_zip(files, inside=('archive/data/0', 'archive/byteorder')))
    msg = classifier_refused(pack, path)
    assert 'damaged zip archive: entries archive/data/0 and archive/byteorder overlap' in msg, msg


@pytest.mark.parametrize('case', ['cut-in-storage', 'cut-in-directory', 'cut-to-header', 'overlap',
                                  'same-offset', 'compressed', 'encrypted', 'bad-crc', 'twice',
                                  'local-name', 'zip64-locator', 'too-many-entries', 'size-mismatch',
                                  'past-directory', 'not-a-zip'])
def test_damaged_zip(pack, tmp_path, case):
    path = tmp_path / 'bad.pth'
    data = bytearray(small_pth(path))
    ents = {name.split('/', 1)[1]: (h, d, s) for name, h, d, s in entries(bytes(data))}
    cen = central(bytes(data))
    store = next(k for k in ents if k.startswith('data/'))
    if case == 'cut-in-storage':
        h, d, s = ents[store]
        data = data[:d + s // 2]
    elif case == 'cut-in-directory':
        data = data[:min(cen.values()) + 20]
    elif case == 'cut-to-header':
        data = data[:30]
    elif case in ('overlap', 'same-offset'):
        # the storage's directory record points into (or at) the pickle's entry
        h, d, s = ents['data.pkl']
        rec = cen[next(n for n in cen if n.endswith(store))]
        target = h if case == 'same-offset' else d - 30 - len(('archive/' + store).encode())
        data[rec + 42:rec + 46] = struct.pack('<I', target)
    elif case == 'compressed':
        rec = cen[next(n for n in cen if n.endswith(store))]
        data[rec + 10:rec + 12] = struct.pack('<H', 8)
    elif case == 'encrypted':
        rec = cen[next(n for n in cen if n.endswith(store))]
        data[rec + 8:rec + 10] = struct.pack('<H', 1)
    elif case == 'bad-crc':
        h, d, s = ents[store]
        data[d] ^= 0x40
    elif case == 'twice':
        data = handmade_zip([('archive/data.pkl', pickle.dumps({}, protocol=2)),
                             ('archive/data.pkl', pickle.dumps([], protocol=2))])
    elif case == 'local-name':
        h, d, s = ents['data.pkl']
        data[h + 30] ^= 0x01
    elif case == 'zip64-locator':
        loc = data.rfind(b'PK\x06\x07')
        data[loc + 8:loc + 16] = struct.pack('<Q', 12345)
    elif case == 'too-many-entries':
        eocd = data.rfind(b'PK\x05\x06')
        data[eocd + 8:eocd + 12] = struct.pack('<HH', 60000, 60000)
        z64 = data.rfind(b'PK\x06\x06')
        data[z64 + 24:z64 + 40] = struct.pack('<QQ', 10**9, 10**9)
    elif case == 'size-mismatch':
        rec = cen[next(n for n in cen if n.endswith(store))]
        data[rec + 20:rec + 24] = struct.pack('<I', 3)
    elif case == 'past-directory':
        rec = cen[next(n for n in cen if n.endswith(store))]
        data[rec + 20:rec + 28] = struct.pack('<II', 10**6, 10**6)
    elif case == 'not-a-zip':
        data = b'PK' + b'\x00' * 100
    path.write_bytes(bytes(data))
    msg = classifier_refused(pack, path)
    assert 'not a readable torch.save file (damaged zip archive:' in msg, msg
    print(f'\n[convert-bad-input] {case}: {msg}')


def test_zip_entries_are_data_only(pack, tmp_path):
    """An archive without a data.pkl, with two, or a storage key naming a path
    outside the archive's data/ folder."""
    for payload_names, want in (([], 'without exactly one */data.pkl'),
                                (['a/data.pkl', 'b/data.pkl'], 'without exactly one */data.pkl')):
        path = tmp_path / 'x.pth'
        with zipfile.ZipFile(path, 'w') as z:
            z.writestr('a/version', '3')
            for n in payload_names:
                z.writestr(n, pickle.dumps({}))
        assert want in classifier_refused(pack, path)
    path = tmp_path / 'key.pth'
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl',
                   b'\x80\x02}X\x09\x00\x00\x00fc.weightctorch._utils\n_rebuild_tensor_v2\n'
                   b'((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x0b\x00\x00\x00../data.pklX\x03\x00'
                   b'\x00\x00cpuK\x01tQK\x00K\x01\x85K\x01\x85\x89tRs.')
        z.writestr('data.pkl', b'\x00' * 4)
    assert 'storage ../data.pkl is missing from the archive' in classifier_refused(pack, path)


def test_legacy_cut_storages(pack, tmp_path):
    path = tmp_path / 'legacy.pth'
    torch.save({'fc.weight': torch.zeros(10, 4), 'fc.bias': torch.ones(10)}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) - 40, len(data) - 44, len(data) * 3 // 4):
        path.write_bytes(data[:cut])
        msg = classifier_refused(pack, path)
        assert 'truncated' in msg or 'not a readable torch.save file' in msg, msg
    # a count that disagrees with the tensors
    i = data.rfind(struct.pack('<q', 10))
    path.write_bytes(data[:i] + struct.pack('<q', 2**40) + data[i + 8:])
    assert 'truncated' in classifier_refused(pack, path)


# ---------------------------------------------------------------- pickles

def edm2_refused(tmp_path, path, code):
    out = tmp_path / 'out'
    msg = one_line(native('edm2', '--main', path, '--out', out), f'gfcg convert edm2: {path}: ', code)
    assert not (out / 'pack.json').exists()
    return msg


def test_nested_storage_pickles(tmp_path):
    """torch.storage._load_from_bytes payloads: a zip archive or a legacy file
    that is cut, calls a global, or holds something else than a storage."""
    marker = tmp_path / 'executed'
    good = io.BytesIO()
    torch.save(torch.zeros(8).storage(), good, _use_new_zipfile_serialization=False)
    zipped = io.BytesIO()
    torch.save(torch.zeros(8).storage(), zipped)
    payloads = {
        'legacy-cut': good.getvalue()[:-5],
        'zip-cut': zipped.getvalue()[:len(zipped.getvalue()) // 2],
        'global': pickle.dumps(te._Evil(os.system, f'touch {marker}'), protocol=2),
        'not-a-storage': b''.join(pickle.dumps(x, protocol=2) for x in
                                  (0x1950a86a20f9469cfc6c, 1001, {'little_endian': True}, {}, [])),
        'empty': b'',
        'text': 'not bytes',
    }
    for name, payload in payloads.items():
        path = write_pickle(tmp_path / f'{name}.pkl', {'ema': te._Evil(torch.storage._load_from_bytes, payload)})
        msg = edm2_refused(tmp_path, path, 2)
        assert 'storage' in msg and ('refused' in msg or 'not' in msg), (name, msg)
    assert not marker.exists()


def test_a_zip_inside_a_pickle_reads(tmp_path):
    """A storage nested as a zip archive (torch.save's newer format) reads."""
    cfg = make_packs.unet_config()
    net = make_packs.make_unet(11, **cfg)[1]
    data = nv_snapshot(net, cfg, _payload(tmp_path / 'M'))
    key = 'out_conv.weight'
    w = net.out_conv.weight.detach().clone()
    b = io.BytesIO()
    torch.save(w.storage(), b)
    te._set_tensor(data, f'unet.{key}', te._Evil(torch._utils._rebuild_tensor_v2,
                                                  te._Evil(torch.storage._load_from_bytes, b.getvalue()),
                                                  0, tuple(w.shape), tuple(w.stride()), False,
                                                  __import__('collections').OrderedDict()))
    path = write_pickle(tmp_path / 'zip-inside.pkl', data)
    p = native('edm2', '--main', path, '--out', tmp_path / 'o')
    assert p.returncode == 0, p.stderr
    from safetensors.torch import load_file
    assert torch.equal(load_file(tmp_path / 'o' / 'main.safetensors')[key], w)


@pytest.mark.parametrize('case', ['deep-lists', 'deep-dicts', 'deep-tuple-key', 'many-marks',
                                  'wide-dict', 'long-text-int', 'memo-far', 'frame-in-frame',
                                  'frame-cross', 'persid-text', 'inst', 'obj', 'newobj-ex',
                                  'dup-build', 'bigint', 'float-text', 'unicode-escape'])
def test_odd_pickles(tmp_path, case):
    """Legal but odd pickles: no crash, no hang; refused or not a snapshot."""
    n = 200000
    data = {
        'deep-lists': b'\x80\x02' + b']' * n + b'a' * (n - 1) + b'.',
        'deep-dicts': b'\x80\x02' + b'}X\x01\x00\x00\x00k' * n + b's' * (n - 1) + b'.',
        'deep-tuple-key': b'\x80\x02}' + b')' + b'\x85' * 5000 + b'Ns.',
        'many-marks': b'\x80\x02' + b'(' * n + b'N.',
        'wide-dict': b'\x80\x02}(' + b''.join(b'J' + struct.pack('<i', i) + b'N' for i in range(n)) + b'u.',
        'long-text-int': b'I' + b'9' * 5000 + b'\n.',
        'memo-far': b'\x80\x02Nr\xff\xff\xff\xffj\xff\xff\xff\xff.',
        'frame-in-frame': b'\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x95\x01\x00\x00\x00\x00\x00\x00\x00N.',
        'frame-cross': b'\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00\x00X\x05\x00\x00\x00abcde.',
        'persid-text': b'Pstorage\n.',
        'inst': b'(icollections\nOrderedDict\n.',
        'obj': b'(ccollections\nOrderedDict\no.',
        'newobj-ex': b'\x80\x04\x8c\x0bcollections\x8c\x0bOrderedDict\x93)}\x92.',
        'dup-build': b'\x80\x02}2}b.',
        'bigint': b'\x80\x02\x8a\x20' + b'\xff' * 32 + b'.',
        'float-text': b'Fnan\n.',
        'unicode-escape': b'V\\u00e9\\U0001f600\\\\u\n.',
    }[case]
    path = tmp_path / f'{case}.pkl'
    path.write_bytes(data)
    p = native('edm2', '--main', path, '--out', tmp_path / 'o')
    assert p.returncode in (1, 2), p.stderr
    one_line(p, f'gfcg convert edm2: {path}: ', p.returncode)


CORPUS = REPO / 'tests' / 'fuzz' / 'corpus'


@pytest.mark.parametrize('seed', sorted(f'{p.parent.name}/{p.name}' for d in ('pickle', 'zip')
                                        for p in (CORPUS / d).glob('crash-*')))
def test_fuzzer_finds_stay_fixed(tmp_path, base_pack, seed):
    """What fuzz-pickle and fuzz-zip found (kept in their seed corpora): a clean
    refusal now."""
    path = CORPUS / seed
    if path.parent.name == 'pickle':
        p = native('edm2', '--main', path, '--out', tmp_path / 'o')
        prefix = f'gfcg convert edm2: {path}: '
    else:
        pack = tmp_path / 'pack'
        shutil.copytree(base_pack, pack)
        p = native('classifier', '--pack', pack, '--resnet50', path)
        prefix = f'gfcg convert classifier: {path}: '
    assert p.returncode in (1, 2), p.stderr
    one_line(p, prefix, p.returncode)
