"""Refine a layer and fill a selection (source 'layer' / 'selection') in a
real headless GIMP 3: the new layer goes right above the source, over the
region; every pixel outside the selection keeps its bytes; the redrawn part
is the very picture `gfcg sample --init --mask` draws from the same region;
bad calls are calling errors that name the argument and leave the image as
it was."""
import json
import re

import numpy as np
import pytest

from plugin_helpers import GFCG, png_rgb

import subprocess


def markers(out, key):
    return [m.group(1) for m in re.finditer(rf'^{key} (.*)$', out, re.M)]


def write_photo(path, w=24, h=20):
    """A photo-like test picture: smooth gradients and some texture."""
    from PIL import Image
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(5)
    rgb = np.stack([x * 255 / (w - 1), y * 255 / (h - 1), (x + y) * 127 / (w + h)], -1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb, 'RGB').save(path)
    return rgb


PY_PRELUDE = '''
import json
from gi.repository import Gimp, Gegl, Gio
pdb = Gimp.get_pdb()
proc = pdb.lookup_procedure('plug-in-gfcg-render')
def buffer_bytes(d, fmt="R'G'B' u8", x=0, y=0, w=None, h=None):
    w = d.get_width() if w is None else w
    h = d.get_height() if h is None else h
    r = Gegl.Rectangle.new(x, y, w, h)
    return bytes(d.get_buffer().get(r, 1.0, fmt, Gegl.AbyssPolicy.CLAMP))
def call(img, drawables, **kw):
    cfg = proc.create_config()
    if img is not None:
        cfg.set_property('image', img)
    cfg.set_core_object_array('drawables', drawables)
    for k, v in kw.items():
        cfg.set_property(k.replace('_', '-'), v)
    res = proc.run(cfg)
    return res.index(0), pdb.get_last_error()
def load(path):
    return Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
'''


def test_fill_selection_python_fu(gimp, tiny_packs, tmp_path):
    """An elliptic (antialiased) selection: the layer covers its bounding
    box, keeps every unselected pixel byte for byte, and equals
    `gfcg sample --init REGION --mask SELECTION` exactly."""
    from PIL import Image
    pack = tiny_packs / 'tiny-pixel'
    photo = write_photo(tmp_path / 'photo.png')
    gimp.run(PY_PRELUDE + f'''
img = load('{tmp_path}/photo.png')
src = img.get_layers()[0]
img.select_ellipse(Gimp.ChannelOps.REPLACE, 5, 3, 13, 11)
b = Gimp.Selection.bounds(img)
x1, y1, x2, y2 = b[2], b[3], b[4], b[5]
mask = buffer_bytes(img.get_selection(), "Y u8", x1, y1, x2 - x1, y2 - y1)
status, err = call(img, [src], source='selection', strength=0.75, class_index=217, mode='gfcg',
                   steps=4, seed=3, pack='{pack}', device='cpu')
assert status == Gimp.PDBStatusType.SUCCESS, err
layers = img.get_layers()
new = layers[0]
json.dump({{'names': [l.get_name() for l in layers], 'box': [x1, y1, x2, y2],
           'w': new.get_width(), 'h': new.get_height(),
           'offsets': list(new.get_offsets()[1:]), 'mask': mask.hex(),
           'parasite': bytes(new.get_parasite('gfcg-parameters').get_data()).rstrip(b'\\0').decode(),
           'pixels': buffer_bytes(new).hex(), 'source': buffer_bytes(src).hex()}},
          open('{tmp_path}/out.json', 'w'))
''', python=True)
    r = json.load(open(tmp_path / 'out.json'))
    x1, y1, x2, y2 = r['box']
    w, h = x2 - x1, y2 - y1
    assert len(r['names']) == 2 and r['names'][0] == 'English springer (gfcg, seed 3)'
    assert (r['w'], r['h'], r['offsets']) == (w, h, [x1, y1])
    layer = np.frombuffer(bytes.fromhex(r['pixels']), np.uint8).reshape(h, w, 3)
    mask = np.frombuffer(bytes.fromhex(r['mask']), np.uint8).reshape(h, w)
    region = photo[y1:y2, x1:x2]
    assert bytes.fromhex(r['source']) == photo.tobytes(), 'GIMP read the photo differently'
    assert (mask == 0).any() and (mask == 255).any()
    assert np.array_equal(layer[mask == 0], region[mask == 0]), 'an unselected pixel changed'
    assert (layer[mask == 255] != region[mask == 255]).any(), 'nothing was redrawn'

    # The same region and selection through the command line: the same bytes.
    Image.fromarray(np.ascontiguousarray(region), 'RGB').save(tmp_path / 'region.png')
    Image.fromarray(np.ascontiguousarray(mask), 'L').save(tmp_path / 'mask.png')
    subprocess.run([GFCG, 'sample', '--pack', str(pack), '--imagenet', '217', '--mode', 'gfcg',
                    '--steps', '4', '--seed', '3', '--init', str(tmp_path / 'region.png'),
                    '--mask', str(tmp_path / 'mask.png'), '--strength', '0.75', '-q',
                    '--out', str(tmp_path / 'cli.png')], check=True, timeout=600)
    cw, ch, cli = png_rgb(tmp_path / 'cli.png')
    assert (cw, ch) == (w, h) and cli == layer.tobytes()

    par = json.loads(r['parasite'])
    src = par['plugin']['source']
    assert (src['kind'], src['x'], src['y'], src['width'], src['height'], src['masked']) == \
        ('selection', x1, y1, w, h, True)
    assert src['strength'] == 0.75
    assert '--init region.png --strength 0.75 --mask selection.png' in par['plugin']['command']


def test_refine_layer_script_fu(gimp, tiny_packs, tmp_path):
    """Script-Fu named arguments, source 'layer' on an offset layer under
    another one: the new layer goes right above it, at its offsets and size;
    a rectangular selection elsewhere changes nothing outside it."""
    pack = tiny_packs / 'tiny-pixel'
    write_photo(tmp_path / 'photo.png', 20, 12)
    out = tmp_path / 'flat.png'
    _, log = gimp.run(f'''
      (let* ((img (car (gimp-image-new 32 32 RGB)))
             (photo (car (gimp-file-load-layer RUN-NONINTERACTIVE img "{tmp_path}/photo.png")))
             (top (car (gimp-layer-new img "top" 4 4 RGB-IMAGE 100 LAYER-MODE-NORMAL))))
        (gimp-image-insert-layer img photo 0 0)
        (gimp-image-insert-layer img top 0 0)
        (gimp-layer-set-offsets photo 6 9)
        (plug-in-gfcg-render #:run-mode RUN-NONINTERACTIVE #:image img #:drawables (vector photo)
                             #:pack "{pack}" #:class-index 482 #:mode "cfg" #:steps 3 #:seed 2
                             #:source "layer" #:strength 0.5)
        (let* ((layers (car (gimp-image-get-layers img)))
               (new (vector-ref layers 1)))
          (display (string-append "ORDER " (car (gimp-item-get-name (vector-ref layers 0))) " | "
                                  (car (gimp-item-get-name new)) " | "
                                  (car (gimp-item-get-name (vector-ref layers 2))) "\\n"))
          (display (string-append "GEOMETRY "
            (number->string (car (gimp-drawable-get-width new))) " "
            (number->string (car (gimp-drawable-get-height new))) " "
            (number->string (car (gimp-drawable-get-offsets new))) " "
            (number->string (cadr (gimp-drawable-get-offsets new))) "\\n"))))''')
    assert markers(log, 'ORDER') == ['top | cassette player (cfg, seed 2) | photo.png']
    assert markers(log, 'GEOMETRY') == ['20 12 6 9']


BAD = [
    ("source='selection'", 'source', 'empty selection'),
    ("source='layer'", 'source', 'no drawable'),
    ("source='paper'", 'source', 'unknown source'),
    ("source='layer', strength=1.5", 'strength', 'strength out of range'),
    ("source='layer', pack='{latent}'", 'source', 'latent pack without an encoder'),
]


def test_bad_calls(gimp, tiny_packs, tmp_path):
    """Each bad call: a calling error whose message starts with the
    argument's name, and the image unchanged and clean."""
    pack, latent = tiny_packs / 'tiny-pixel', tiny_packs / 'tiny-latent'
    write_photo(tmp_path / 'photo.png')
    calls = []
    for kw, _, why in BAD:
        drawables = '[]' if why == 'no drawable' else '[src]'
        kw = kw.format(latent=latent)
        pk = '' if 'pack=' in kw else f", pack='{pack}'"
        calls.append(f'''
status, err = call(img, {drawables}, {kw}{pk}, steps=2, device='cpu')
res.append([str(status), err, len(img.get_layers()), img.is_dirty()])''')
    gimp.run(PY_PRELUDE + f'''
img = load('{tmp_path}/photo.png')
src = img.get_layers()[0]
img.clean_all()
res = []
''' + ''.join(calls) + f'''
json.dump(res, open('{tmp_path}/out.json', 'w'))
''', python=True)
    res = json.load(open(tmp_path / 'out.json'))
    for (kw, argument, why), (status, err, n_layers, dirty) in zip(BAD, res):
        assert 'CALLING_ERROR' in status, (why, status, err)
        assert err.startswith(f'{argument}: '), (why, err)
        assert (n_layers, dirty) == (1, False), why
