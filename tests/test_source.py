"""Starting from a picture (`gfcg sample --init [--strength] [--mask]`): the
promises made at the source's own pixels, and bad files.

- strength 0 gives the source back byte for byte, whatever its size;
- strength 1 without a mask is sampling from noise with the same seed (the
  same pixels, the same raw state, the same trace);
- a masked run leaves every pixel where the mask is 0 exactly as it was;
- the picture's place on the canvas (scaled to fit, aspect kept, edges
  repeated) is the reference's (PyTorch's antialiased bilinear resize);
- 16-bit sources are read as 8 bits, alpha is ignored;
- a mask of another size, a file that is not a PNG or is cut short, a colour
  mask, strength out of range, a latent pack without an encoder: one clear
  line, exit status 1 (2 for misused options), nothing written.

In the loader and bad-input suites, so `make check` runs it under ASan too.
"""
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from test_bad_input import ENV, GFCG, expect_error, gfcg  # noqa: F401


def write_png16(path, a):
    """A 16-bit PNG (grey [H, W] or RGB [H, W, 3] uint16), which PIL cannot write."""
    h, w = a.shape[:2]
    kind = 0 if a.ndim == 2 else 2
    rows = b''.join(b'\0' + a[y].astype('>u2').tobytes() for y in range(h))

    def chunk(t, body):
        return struct.pack('>I', len(body)) + t + body + struct.pack('>I', zlib.crc32(t + body))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, kind, 0, 0, 0))
                     + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def picture(h, w, seed):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).round().astype(np.uint8)


def feathered_mask(h, w):
    """0 around, 255 in a block, feathered (128, 40) on two of its edges."""
    m = np.zeros((h, w), np.uint8)
    m[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
    m[h // 4 - 1, w // 4:3 * w // 4] = 128
    m[h // 4:3 * h // 4, 3 * w // 4] = 40
    return m


def pixels(path):
    img = Image.open(path)
    assert img.mode == 'RGB'
    return np.asarray(img)


def sample(pack, out, *extra, steps=3, mode='gfcg'):
    p = gfcg('sample', '--pack', pack, '--class', 217, '--mode', mode, '--steps', steps,
             '--seed', 7, '--quiet', '--out', out, *extra)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def pack(packs):
    return packs / 'tiny-pixel'


# ---- the promises -------------------------------------------------------

@pytest.mark.parametrize('h,w', [(13, 20), (20, 13), (16, 16), (5, 3), (37, 50)])
@pytest.mark.parametrize('masked', [False, True])
def test_strength_zero_returns_the_source(pack, tmp_path, h, w, masked):
    """Nothing runs: the PNG is the source byte for byte, the trace has no
    evaluation, and the raw state is the source on the canvas."""
    src = picture(h, w, h * 100 + w)
    Image.fromarray(src).save(tmp_path / 'src.png')
    extra = ['--init', tmp_path / 'src.png', '--strength', 0, '--out-raw', tmp_path / 'raw.st',
             '--trace', tmp_path / 't.json']
    if masked:
        Image.fromarray(feathered_mask(h, w)).save(tmp_path / 'm.png')
        extra += ['--mask', tmp_path / 'm.png']
    sample(pack, tmp_path / 'x.png', *extra)
    assert (pixels(tmp_path / 'x.png') == src).all()
    t = json.loads((tmp_path / 't.json').read_text())
    assert t['evaluations'] == [] and t['nfe'] == 0
    assert t['source'] == {'init': True, 'mask': masked, 'start_step': 3, 'start_sigma': 0}
    assert t['options']['strength'] == 0

    # The canvas: scaled to fit (the longer side 16 px), centred, the edges
    # repeated: PyTorch's antialiased bilinear resize and replicate padding.
    x = torch.from_numpy(src.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None].double()
    fw = 16 if w >= h else max(1, round(w * 16 / h))
    fh = 16 if h >= w else max(1, round(h * 16 / w))
    fit = torch.nn.functional.interpolate(x, size=(fh, fw), mode='bilinear', align_corners=False,
                                          antialias=True)
    ox, oy = (16 - fw) // 2, (16 - fh) // 2
    want = torch.nn.functional.pad(fit, (ox, 16 - fw - ox, oy, 16 - fh - oy), mode='replicate')
    got = load_file(str(tmp_path / 'raw.st'))['x']
    err = float((got.double() - want).abs().max())
    print(f'\n[source] {w}x{h} on the 16x16 canvas: max abs err {err:.2e}')
    assert err <= 1e-5


@pytest.mark.parametrize('mode', ['none', 'gfcg', 'gfcg+atg'])
def test_strength_one_is_sampling_from_noise(pack, tmp_path, mode):
    """Without a mask, strength 1 ignores the source: the same pixels, raw
    state and trace as sampling from noise with the seed (a canvas-sized
    source maps back one to one)."""
    Image.fromarray(picture(16, 16, 3)).save(tmp_path / 'src.png')
    sample(pack, tmp_path / 'a.png', '--out-raw', tmp_path / 'a.st', '--trace', tmp_path / 'a.json',
           mode=mode)
    sample(pack, tmp_path / 'b.png', '--out-raw', tmp_path / 'b.st', '--trace', tmp_path / 'b.json',
           '--init', tmp_path / 'src.png', '--strength', 1, mode=mode)
    assert (pixels(tmp_path / 'a.png') == pixels(tmp_path / 'b.png')).all()
    assert torch.equal(load_file(str(tmp_path / 'a.st'))['x'], load_file(str(tmp_path / 'b.st'))['x'])
    a, b = (json.loads((tmp_path / f).read_text()) for f in ('a.json', 'b.json'))
    assert a['evaluations'] == b['evaluations'] and a['final'] == b['final']
    assert a['source'] == {'init': False, 'mask': False, 'start_step': 0, 'start_sigma': 80}
    assert b['source'] == {'init': True, 'mask': False, 'start_step': 0, 'start_sigma': 80}


@pytest.mark.parametrize('h,w,strength,bits', [(13, 20, 0.6, 8), (16, 16, 1, 8), (37, 50, 0.5, 16),
                                               (7, 5, 1, 16)])
def test_mask_keeps_pixels(pack, tmp_path, h, w, strength, bits):
    """Every pixel where the mask is 0 comes back unchanged; the masked
    block changes."""
    src = picture(h, w, 11)
    m = feathered_mask(h, w)
    Image.fromarray(src).save(tmp_path / 'src.png')
    if bits == 16:
        m16 = m.astype(np.uint16) * 257
        m16[0, 0] = 1    # not 0: may change (by less than half a level)
        write_png16(tmp_path / 'm.png', m16)
    else:
        Image.fromarray(m).save(tmp_path / 'm.png')
    sample(pack, tmp_path / 'x.png', '--init', tmp_path / 'src.png', '--mask', tmp_path / 'm.png',
           '--strength', strength, '--trace', tmp_path / 't.json', steps=4)
    out = pixels(tmp_path / 'x.png')
    assert out.shape == src.shape
    keep = m == 0
    assert (out[keep] == src[keep]).all()
    assert (out[m == 255] != src[m == 255]).mean() > 0.5
    t = json.loads((tmp_path / 't.json').read_text())
    assert t['source']['mask'] is True and t['options']['strength'] == strength


def test_sixteen_bit_source(pack, tmp_path):
    """A 16-bit source is read as 8 bits (v / 257 rounded): strength 0 gives
    that back, and a masked run keeps it outside the mask."""
    rng = np.random.default_rng(4)
    src16 = (rng.random((13, 20, 3)) * 65535).round().astype(np.uint16)
    write_png16(tmp_path / 'src.png', src16)
    want = np.round(src16 / 257).astype(np.uint8)
    sample(pack, tmp_path / 'x.png', '--init', tmp_path / 'src.png', '--strength', 0)
    assert (pixels(tmp_path / 'x.png') == want).all()
    m = feathered_mask(13, 20)
    Image.fromarray(m).save(tmp_path / 'm.png')
    sample(pack, tmp_path / 'y.png', '--init', tmp_path / 'src.png', '--strength', 0.7, '--mask',
           tmp_path / 'm.png')
    assert (pixels(tmp_path / 'y.png')[m == 0] == want[m == 0]).all()


def test_alpha_is_ignored(pack, tmp_path):
    """RGBA and grey+alpha sources: the colour is used as stored, alpha is
    ignored (not composited, not a mask); the output is RGB."""
    rgba = np.concatenate([picture(13, 20, 8), np.zeros((13, 20, 1), np.uint8)], axis=2)
    rgba[::2, :, 3] = 255
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'src.png')
    sample(pack, tmp_path / 'x.png', '--init', tmp_path / 'src.png', '--strength', 0)
    assert (pixels(tmp_path / 'x.png') == rgba[..., :3]).all()
    la = np.stack([picture(13, 20, 9)[..., 0], np.full((13, 20), 77, np.uint8)], axis=2)
    Image.fromarray(la, 'LA').save(tmp_path / 'g.png')
    m = feathered_mask(13, 20)
    Image.fromarray(m).save(tmp_path / 'm.png')
    sample(pack, tmp_path / 'y.png', '--init', tmp_path / 'g.png', '--mask', tmp_path / 'm.png',
           '--strength', 0.5)
    out = pixels(tmp_path / 'y.png')
    assert (out[m == 0] == np.repeat(la[..., :1], 3, axis=2)[m == 0]).all()


# ---- bad files and options -------------------------------------------------

@pytest.mark.parametrize('case,status,expected', [
    ('mask-size', 1, 'm.png: the mask is 10x10 pixels and the picture '),
    ('not-png', 1, 'src.png: not a PNG file'),
    ('empty', 1, 'src.png: not a PNG file'),
    ('truncated', 1, 'src.png: file truncated'),
    ('missing', 1, 'nothere.png: No such file'),
    ('mask-not-png', 1, 'm.png: not a PNG file'),
    ('mask-truncated', 1, 'm.png: file truncated'),
    ('mask-colour', 1, 'm.png: a mask must be a grey PNG (8 or 16 bits), this one has colour'),
    ('strength-high', 1, 'strength is 1.5: it must lie in [0, 1]'),
    ('strength-negative', 1, 'strength is -0.1: it must lie in [0, 1]'),
    ('strength-nan', 1, 'strength is nan'),
    ('strength-text', 1, "--strength: 'half' is not a number"),
    ('strength-alone', 2, '--strength and --mask need a picture to start from (--init)'),
    ('mask-alone', 2, '--strength and --mask need a picture to start from (--init)'),
    ('raw-and-init', 2, '--init-raw holds its own mask'),
    ('raw-shape', 1, 'raw.st'),
    ('raw-no-x', 1, "needs a tensor 'x' [1, 3, 16, 16]"),
    ('raw-mask-range', 1, 'mask value 2 at (0, 0): a mask lies in [0, 1]'),
])
def test_bad_source(pack, tmp_path, case, status, expected):
    src = picture(13, 20, 1)
    Image.fromarray(src).save(tmp_path / 'src.png')
    Image.fromarray(feathered_mask(13, 20)).save(tmp_path / 'm.png')
    good = (tmp_path / 'src.png').read_bytes()
    args = ['--init', tmp_path / 'src.png']
    if case == 'mask-size':
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / 'm.png')
        args += ['--mask', tmp_path / 'm.png']
    elif case == 'not-png':
        (tmp_path / 'src.png').write_bytes(b'GIF89a' + good[6:])
    elif case == 'empty':
        (tmp_path / 'src.png').write_bytes(b'')
    elif case == 'truncated':
        (tmp_path / 'src.png').write_bytes(good[:len(good) // 2])
    elif case == 'missing':
        args = ['--init', tmp_path / 'nothere.png']
    elif case == 'mask-not-png':
        (tmp_path / 'm.png').write_text('P5 20 13 255\n')
        args += ['--mask', tmp_path / 'm.png']
    elif case == 'mask-truncated':
        (tmp_path / 'm.png').write_bytes((tmp_path / 'm.png').read_bytes()[:40])
        args += ['--mask', tmp_path / 'm.png']
    elif case == 'mask-colour':
        Image.fromarray(src).save(tmp_path / 'm.png')
        args += ['--mask', tmp_path / 'm.png']
    elif case.startswith('strength-') and case != 'strength-alone':
        args += ['--strength', {'strength-high': '1.5', 'strength-negative': '-0.1',
                                'strength-nan': 'nan', 'strength-text': 'half'}[case]]
    elif case == 'strength-alone':
        args = ['--strength', '0.5']
    elif case == 'mask-alone':
        args = ['--mask', tmp_path / 'm.png']
    elif case.startswith('raw'):
        x = torch.zeros(1, 3, 16, 16)
        t = {'raw-and-init': {'x': x}, 'raw-shape': {'x': torch.zeros(1, 3, 8, 8)},
             'raw-no-x': {'init': x}, 'raw-mask-range': {'x': x, 'mask': torch.full((16, 16), 2.0)}}
        save_file(t[case], str(tmp_path / 'raw.st'))
        args = ['--init-raw', tmp_path / 'raw.st'] + (args if case == 'raw-and-init' else [])
    out, trace = tmp_path / 'x.png', tmp_path / 't.json'
    p = gfcg('sample', '--pack', pack, '--class', 217, '--mode', 'none', '--steps', 2, '--seed', 1,
             '--quiet', '--out', out, '--trace', trace, *args)
    assert p.returncode == status, f'exit {p.returncode}\n{p.stderr}'
    assert expected in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not out.exists() and not trace.exists()


def test_latent_pack_without_encoder(packs, tmp_path):
    """Latent packs need an encoder to start from a picture (none yet); a
    network-space source (--init-raw) works."""
    Image.fromarray(picture(13, 20, 1)).save(tmp_path / 'src.png')
    out = tmp_path / 'x.png'
    p = gfcg('sample', '--pack', packs / 'tiny-latent-full', '--class', 217, '--mode', 'none',
             '--steps', 2, '--seed', 1, '--quiet', '--out', out, '--init', tmp_path / 'src.png')
    expect_error(p, "pack 'tiny-latent-full' has no encoder: it cannot start from a picture")
    assert not out.exists()
    save_file({'x': torch.zeros(1, 4, 8, 8)}, str(tmp_path / 'raw.st'))
    p = gfcg('sample', '--pack', packs / 'tiny-latent-full', '--class', 217, '--mode', 'none',
             '--steps', 2, '--seed', 1, '--quiet', '--out', out, '--init-raw', tmp_path / 'raw.st',
             '--strength', 0.5)
    assert p.returncode == 0, p.stderr
    assert Image.open(out).size == (64, 64)
