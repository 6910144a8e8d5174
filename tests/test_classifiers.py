"""ImageNet classifiers of the engine ("mobilenet-v2", "resnet-50") and their converters.

* Parity: the engine's logits (`gfcg denoise --net classifier`) against the
  float64 PyTorch modules of tests/reference/imagenet_cls_ref.py with random
  weights (ResNet-50: random batch-norm statistics too, folded by the engine),
  max abs error <= 1e-4, on 64 px inputs (resized to 224) and 224 px inputs.
* converters/convert-classifier: a torchvision-format .pth written by torch.save
  (zip and legacy formats) -> pack -> engine; hostile pickles refused with
  nothing executed; missing tensors and wrong shapes named, by the converter
  and by the engine.
* The real Coral MobileNetV2, when ../shared/models has it: converted, run by
  the engine on Imagenette images and compared with research/eval/tflite_net.py.
* `gfcg classify`: an ImageNet-space classifier ranks all 1000 classes (a class
  the pack cannot draw can come first, marked "-"), a pack-space one the pack's.

The engine runs from $GFCG_BIN (else `gfcg` on PATH).
"""
import io
import json
import math
import os
import pickle
import random
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import make_packs
from imagenet_cls_ref import MobileNetV2, ResNet50

REPO = Path(__file__).resolve().parent.parent
CONVERT = REPO / 'converters' / 'convert-classifier'
TOL = 1e-4
CORAL = Path(os.environ.get('GFCG_SHARED', REPO.parent / 'shared')) / 'models' / \
    'mobilenet-v2-coral' / 'mobilenet_v2_1.0_224_quant.tflite'
IMAGENETTE = CORAL.parents[2] / 'datasets' / 'imagenette' / 'val'
if not CORAL.exists() and Path('/shared/models').exists():   # inside tools/devenv
    CORAL = Path('/shared/models/mobilenet-v2-coral/mobilenet_v2_1.0_224_quant.tflite')
    IMAGENETTE = Path('/shared/datasets/imagenette/val')
MOBILENET_CFG = dict(in_channels=3, resolution=224, num_classes=1000, label_space='imagenet',
                     mean=[0.5, 0.45, 0.55], std=[0.5, 0.52, 0.48])


# ---------------------------------------------------------------- helpers

def gfcg_bin():
    b = os.environ.get('GFCG_BIN') or shutil.which('gfcg')
    if not b or not os.access(b, os.X_OK):
        pytest.fail('engine binary not found: set GFCG_BIN or put gfcg on PATH', pytrace=False)
    return b


def run(cmd, ok=True):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
    if ok and p.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))}\nexit {p.returncode}\n{p.stdout}\n{p.stderr}',
                    pytrace=False)
    return p


def convert(*args, ok=True):
    return run([sys.executable, CONVERT] + list(args), ok=ok)


@pytest.fixture(scope='module')
def base_pack(tmp_path_factory):
    """A tiny main-only pixel pack to hang classifiers on."""
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


def set_classifier(pack, arch, config, tensors, dtype=torch.float32):
    save_file({k: v.detach().to(dtype).contiguous() for k, v in tensors.items()},
              str(pack / 'cls.safetensors'))
    m = json.loads((pack / 'pack.json').read_text())
    m['components']['classifier'] = {'file': 'cls.safetensors', 'arch': arch, 'config': config}
    (pack / 'pack.json').write_text(json.dumps(m))


def engine_logits(pack, x, tmp_path, ok=True):
    inp, out = tmp_path / 'x.safetensors', tmp_path / 'logits.safetensors'
    save_file({'x': x.float().contiguous()}, str(inp))
    p = run([gfcg_bin(), 'denoise', '--pack', pack, '--net', 'classifier', '--in', inp,
             '--out', out], ok=ok)
    return load_file(str(out))['logits'] if p.returncode == 0 else p


def inputs(seed):
    """Two 64 px images (resized to 224 by the engine) and one at 224, slightly
    beyond [-1, 1] so that the clamp of the input preparation matters."""
    g = torch.Generator().manual_seed(seed)
    smooth = lambda n, r: torch.nn.functional.interpolate(  # noqa: E731
        torch.rand(n, 3, r // 8, r // 8, generator=g, dtype=torch.float64) * 2.6 - 1.3,
        size=(r, r), mode='bilinear') + 0.2 * torch.randn(n, 3, r, r, generator=g,
                                                          dtype=torch.float64)
    return {64: smooth(2, 64).float().double(), 224: smooth(1, 224).float().double()}


def report(case, err, scale):
    print(f'\n[classifiers] {case}: max abs err {err:.3e} (tol {TOL:g}), max |logit| {scale:.2f}')


# ---------------------------------------------------------------- random weights

@torch.no_grad()
def random_mobilenet(seed, n_out, padding):
    g = torch.Generator().manual_seed(seed)
    net = MobileNetV2(n_out, padding, mean=MOBILENET_CFG['mean'], std=MOBILENET_CFG['std'])
    for name, p in net.named_parameters():
        if name.endswith('.bias'):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif p.ndim == 4:
            gain = 1.0 if '.project.' in name else 2.0   # linear bottleneck vs ReLU6
            p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(gain / p[0].numel()))
        else:
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
    return net.double().eval()


@torch.no_grad()
def random_resnet50(seed):
    """Random torchvision-style ResNet-50 whose batch norms are far from
    identity: running mean/var and affine parameters all random."""
    g = torch.Generator().manual_seed(seed)
    net = ResNet50()
    u = lambda shape, lo, hi: lo + (hi - lo) * torch.rand(shape, generator=g)  # noqa: E731
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) *
                           math.sqrt(2 / m.weight[0].numel()))
        elif isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            # The last BN of a residual branch small (as trained ResNets have it),
            # so 16 blocks do not blow the activations up.
            m.weight.copy_(u(n, 0.1, 0.4) if name.endswith('bn3') else u(n, 0.6, 1.4))
            m.bias.copy_(0.2 * torch.randn(n, generator=g))
            m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
            m.running_var.copy_(u(n, 0.5, 2.0))
            m.num_batches_tracked.fill_(12345)
    net.fc.weight.copy_(torch.randn(net.fc.weight.shape, generator=g) / math.sqrt(2048))
    net.fc.bias.copy_(0.1 * torch.randn(1000, generator=g))
    # Round to float32 (what the file holds), compute in float64.
    return net.float().double().eval()


@torch.no_grad()
def scale_logits(net, fc, xs, target=4.0):
    """Rescale the classifier layer so the logits' std is `target`; returns the
    reference logits of every input batch (features computed once)."""
    feats = {k: net.features(_prep(net, x)) for k, x in xs.items()}
    std = torch.cat([torch.nn.functional.linear(f, fc.weight) for f in feats.values()]).std()
    fc.weight.mul_(target / std)
    fc.weight.copy_(fc.weight.float().double())
    return {k: fc(f) for k, f in feats.items()}


def _prep(net, x):
    from imagenet_cls_ref import prepare
    return prepare(x, net.resolution, net.mean, net.std)


# ---------------------------------------------------------------- mobilenet-v2 parity

@pytest.mark.parametrize('padding,n_out', [('same', 1001), ('torch', 1000)])
def test_mobilenet_parity(pack, tmp_path, padding, n_out):
    net = random_mobilenet(3 if padding == 'same' else 4, n_out, padding)
    xs = inputs(5)
    want = scale_logits(net, net.classifier, xs)
    config = dict(MOBILENET_CFG, label_offset=n_out - 1000, padding=padding)
    set_classifier(pack, 'mobilenet-v2', config, net.state_dict())
    for size, x in xs.items():
        got = engine_logits(pack, x, tmp_path)
        w = want[size][:, n_out - 1000:]
        assert got.dtype == torch.float32 and got.shape == w.shape
        err = float((got.double() - w).abs().max())
        report(f'mobilenet-v2/{padding}/{size}px', err, float(w.abs().max()))
        assert 1.0 < float(w.abs().max()) < 40.0
        assert err <= TOL


def test_mobilenet_padding_matters(pack, tmp_path):
    """The two paddings give different networks (so the parity above is not
    blind to it): SAME at stride 2 drops the top/left zero row/column."""
    net = random_mobilenet(3, 1000, 'same')
    x = inputs(5)[224]
    want = scale_logits(net, net.classifier, {224: x})[224]
    set_classifier(pack, 'mobilenet-v2', dict(MOBILENET_CFG, padding='torch'), net.state_dict())
    got = engine_logits(pack, x, tmp_path)
    assert float((got.double() - want).abs().max()) > 100 * TOL


# ---------------------------------------------------------------- resnet-50 parity

@pytest.fixture(scope='module')
def resnet(tmp_path_factory):
    """(reference net, reference logits per input size, inputs, torchvision-format .pth)."""
    d = tmp_path_factory.mktemp('resnet')
    net = random_resnet50(7)
    xs = inputs(9)
    want = scale_logits(net, net.fc, xs)
    pth = d / 'resnet50-random.pth'
    torch.save({k: v.float() for k, v in net.state_dict().items()}, pth)
    return net, want, xs, pth


def test_resnet50_parity(pack, tmp_path, resnet):
    net, want, xs, pth = resnet
    convert('--pack', pack, '--resnet50', pth)
    m = json.loads((pack / 'pack.json').read_text())['components']['classifier']
    assert m['arch'] == 'resnet-50' and m['licence'] == 'BSD-3-Clause'
    assert m['config']['mean'] == [0.485, 0.456, 0.406] and m['config']['resolution'] == 224
    stored = load_file(str(pack / m['file']))
    assert 'layer4.2.bn3.running_var' in stored and 'fc.weight' in stored
    assert not any(k.endswith('num_batches_tracked') for k in stored)
    for size, x in xs.items():
        got = engine_logits(pack, x, tmp_path)
        w = want[size]
        assert got.shape == w.shape == (x.shape[0], 1000)
        err = float((got.double() - w).abs().max())
        report(f'resnet-50/{size}px', err, float(w.abs().max()))
        assert 1.0 < float(w.abs().max()) < 40.0
        assert err <= TOL


def test_resnet50_fp16(pack, tmp_path, resnet):
    """--fp16 stores F16 (batch norm statistics included); the engine folds
    them in float and stays close to the float64 reference."""
    net, want, xs, pth = resnet
    convert('--pack', pack, '--resnet50', pth, '--fp16')
    with open(pack / 'classifier-resnet-50.safetensors', 'rb') as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), 'little')))
    assert {v['dtype'] for k, v in header.items() if k != '__metadata__'} == {'F16'}
    got = engine_logits(pack, xs[64][:1], tmp_path)
    err = float((got.double() - want[64][:1]).abs().max())
    report('resnet-50/fp16/64px', err, float(want[64].abs().max()))
    assert err <= 0.05 * float(want[64].abs().max())


def test_legacy_torch_save(tmp_path, resnet):
    """torch's pre-1.6 serialisation reads to the same tensors as the zip one."""
    from gfcg_convert import torchvision_to_safetensors as tv
    _, _, _, pth = resnet
    sd = tv.load_state_dict(pth)
    legacy = tmp_path / 'legacy.pth'
    torch.save(dict(sd), legacy, _use_new_zipfile_serialization=False)
    sd2 = tv.load_state_dict(legacy)
    assert list(sd) == list(sd2)
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    want = torch.load(pth, weights_only=True)
    assert all(torch.equal(sd[k], want[k]) for k in want)


# ---------------------------------------------------------------- hostile and broken files

class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _torch_zip(path, payload):
    """A torch.save-shaped zip archive whose data.pkl is `payload`."""
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('archive/data.pkl', payload)
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/version', '3\n')


@pytest.mark.parametrize('kind', ['zip-os-system', 'zip-exec', 'legacy-os-system',
                                  'zip-persistent-id'])
def test_hostile_pth_refused(pack, tmp_path, kind):
    marker = tmp_path / 'executed'
    cmd = f'touch {marker}'
    if kind == 'zip-os-system':
        payload = pickle.dumps({'conv1.weight': _Evil(os.system, cmd)}, protocol=2)
    elif kind == 'zip-exec':
        payload = pickle.dumps(_Evil(exec, f'open({str(marker)!r}, "w")'), protocol=4)
    elif kind == 'legacy-os-system':
        payload = pickle.dumps(_Evil(os.system, cmd), protocol=2)
    else:   # a storage reference that is not one
        class _Pid(pickle.Pickler):
            def persistent_id(self, obj):
                return ('storage', 'os.system', cmd, 'cpu', 1) if obj == 'x' else None
        buf = io.BytesIO()
        _Pid(buf, protocol=2).dump({'conv1.weight': 'x'})
        payload = buf.getvalue()
    path = tmp_path / 'evil.pth'
    if kind.startswith('legacy'):
        path.write_bytes(payload)
    else:
        _torch_zip(path, payload)
    before = (pack / 'pack.json').read_text()
    p = convert('--pack', pack, '--resnet50', path, ok=False)
    assert p.returncode == 2, p.stderr
    assert 'refused' in p.stderr and 'nothing was executed' in p.stderr or \
        'persistent id' in p.stderr, p.stderr
    assert not marker.exists()
    assert (pack / 'pack.json').read_text() == before
    assert not (pack / 'classifier-resnet-50.safetensors').exists()


@pytest.mark.parametrize('kind', ['empty', 'garbage', 'legacy-truncated', 'zip-long4', 'zip-ext1'])
def test_damaged_pth_one_line(pack, tmp_path, kind):
    """A damaged or hostile file: one line naming it and what is wrong, no traceback."""
    path = tmp_path / 'bad.pth'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'garbage':
        path.write_bytes(random.Random(7).randbytes(4096))
    elif kind == 'legacy-truncated':
        torch.save({'fc.weight': torch.zeros(10, 4)}, path, _use_new_zipfile_serialization=False)
        path.write_bytes(path.read_bytes()[:path.stat().st_size * 6 // 10])
    elif kind == 'zip-long4':
        _torch_zip(path, b'\x80\x02\x8b' + struct.pack('<i', 2**31 - 1) + b'.')
    else:
        _torch_zip(path, b'\x80\x02\x82\x01.')
    before = (pack / 'pack.json').read_text()
    p = convert('--pack', pack, '--resnet50', path, ok=False)
    assert p.returncode == 2 and 'Traceback' not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f'convert-classifier: {path}: '), p.stderr
    want = {'empty': 'empty', 'garbage': 'not a valid pickle', 'legacy-truncated': 'truncated',
            'zip-long4': 'LONG4', 'zip-ext1': 'EXT1'}[kind]
    assert want in lines[0], lines[0]
    assert (pack / 'pack.json').read_text() == before


def test_converter_names_bad_tensors(pack, tmp_path, resnet):
    _, _, _, pth = resnet
    sd = torch.load(pth, weights_only=True)
    missing = {k: v for k, v in sd.items() if k != 'layer3.2.bn2.running_var'}
    torch.save(missing, tmp_path / 'missing.pth')
    p = convert('--pack', pack, '--resnet50', tmp_path / 'missing.pth', ok=False)
    assert p.returncode == 2 and 'layer3.2.bn2.running_var' in p.stderr, p.stderr
    wrong = dict(sd, **{'layer2.0.conv2.weight': torch.zeros(128, 128, 1, 1)})
    torch.save(wrong, tmp_path / 'wrong.pth')
    p = convert('--pack', pack, '--resnet50', tmp_path / 'wrong.pth', ok=False)
    assert p.returncode == 2 and 'layer2.0.conv2.weight' in p.stderr \
        and '[128, 128, 3, 3]' in p.stderr, p.stderr
    # An existing classifier is kept unless --replace.
    convert('--pack', pack, '--resnet50', pth)
    p = convert('--pack', pack, '--resnet50', pth, ok=False)
    assert p.returncode == 2 and '--replace' in p.stderr


def test_engine_names_bad_tensors(pack, tmp_path, resnet):
    net = random_mobilenet(3, 1001, 'same')
    x = torch.zeros(1, 3, 8, 8)
    sd = net.state_dict()
    cfg = dict(MOBILENET_CFG, label_offset=1)
    set_classifier(pack, 'mobilenet-v2', cfg,
                   {k: v for k, v in sd.items() if k != 'blocks.5.depthwise.bias'})
    p = engine_logits(pack, x, tmp_path, ok=False)
    assert p.returncode != 0 and 'blocks.5.depthwise.bias' in p.stderr \
        and 'cls.safetensors' in p.stderr, p.stderr
    set_classifier(pack, 'mobilenet-v2', cfg,
                   dict(sd, **{'blocks.3.project.weight': torch.zeros(32, 144, 3, 3)}))
    p = engine_logits(pack, x, tmp_path, ok=False)
    assert p.returncode != 0 and 'blocks.3.project.weight' in p.stderr, p.stderr
    set_classifier(pack, 'mobilenet-v2', dict(cfg, padding='valid'), sd)
    p = engine_logits(pack, x, tmp_path, ok=False)
    assert p.returncode != 0 and 'padding' in p.stderr, p.stderr
    # resnet-50: the engine reads torchvision's names itself.
    _, _, _, pth = resnet
    rsd = {k: v for k, v in torch.load(pth, weights_only=True).items()
           if not k.endswith('num_batches_tracked')}
    rcfg = dict(in_channels=3, resolution=224, num_classes=1000, label_space='imagenet',
                mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    set_classifier(pack, 'resnet-50', rcfg,
                   {k: v for k, v in rsd.items() if k != 'layer4.1.bn3.running_mean'})
    p = engine_logits(pack, x, tmp_path, ok=False)
    assert p.returncode != 0 and 'layer4.1.bn3.running_mean' in p.stderr, p.stderr
    set_classifier(pack, 'resnet-50', rcfg, dict(rsd, **{'fc.weight': torch.zeros(1000, 1024)}))
    p = engine_logits(pack, x, tmp_path, ok=False)
    assert p.returncode != 0 and 'fc.weight' in p.stderr, p.stderr


# ---------------------------------------------------------------- the real Coral MobileNetV2

def _imagenette(per_class):
    from PIL import Image
    wnid_to_index = {}
    for line in (REPO / 'data' / 'imagenet-classes.tsv').read_text().splitlines():
        cols = line.split('\t')
        if not line.startswith('#') and len(cols) > 1 and cols[1]:
            wnid_to_index[cols[1]] = int(cols[0])
    imgs, labels = [], []
    for d in sorted(IMAGENETTE.iterdir()):
        for f in sorted(d.iterdir())[:per_class]:
            im = Image.open(f).convert('RGB').resize((224, 224), Image.BILINEAR)
            imgs.append(np.asarray(im))
            labels.append(wnid_to_index[d.name])
    return torch.from_numpy(np.stack(imgs)), torch.tensor(labels)


def test_coral_mobilenet(pack, tmp_path):
    if not CORAL.exists() or not IMAGENETTE.is_dir():
        pytest.skip(f'{CORAL} or {IMAGENETTE} is absent (see ../shared/models/*/README.md)')
    from tflite_net import TFLiteNet
    convert('--pack', pack, '--mobilenet', CORAL)
    m = json.loads((pack / 'pack.json').read_text())['components']['classifier']
    assert m['arch'] == 'mobilenet-v2' and m['licence'] == 'Apache-2.0'
    assert m['config']['label_offset'] == 1 and m['config']['padding'] == 'same'
    assert m['config']['mean'] == m['config']['std'] == [128 / 255] * 3   # (q - 128) / 128

    u8, labels = _imagenette(2)            # 20 images, 2 per Imagenette class
    x = u8.permute(0, 3, 1, 2).double() / 127.5 - 1
    got = engine_logits(pack, x, tmp_path).double()
    # The PyTorch evaluator runs the graph stored in the same file, in float64:
    # the reference must not depend on the float32 kernels of whatever PyTorch
    # the build root has (a oneDNN bug once put this check 9.6 logits off).
    with torch.no_grad():
        ref = TFLiteNet(str(pack / m['file']), fake_quant=False,
                        dtype=torch.float64).logits(u8)[:, 1:]
        ref32 = TFLiteNet(str(pack / m['file']), fake_quant=False).logits(u8).double()[:, 1:]
        quant = TFLiteNet(str(pack / m['file']), fake_quant=True)(u8)[0].double()[:, 1:]
    err = float((got - ref).abs().max())
    # research/eval scores pictures with the float32 evaluator: it must agree too.
    err32 = float((ref32 - ref).abs().max())
    top_e, top_r, top_q = got.argmax(1), ref.argmax(1), quant.argmax(1)
    inet10 = labels.unique()
    top10 = inet10[got[:, inet10].argmax(1)]
    print(f'\n[classifiers] coral mobilenet-v2, {len(labels)} Imagenette images: logits max abs '
          f'diff vs tflite_net (float64) {err:.3e}, tflite_net float32 vs float64 {err32:.3e} '
          f'(max |logit| {float(ref.abs().max()):.1f}); '
          f'top-1 agreement float {float((top_e == top_r).double().mean()):.0%}, '
          f'uint8-simulated {float((top_e == top_q).double().mean()):.0%}; engine top-1 correct '
          f'{float((top_e == labels).double().mean()):.0%} (1000-way), '
          f'{float((top10 == labels).double().mean()):.0%} (10-way)')
    assert err <= 1e-3
    assert err32 <= 1e-3
    assert bool((top_e == top_r).all())
    assert float((top_e == top_q).double().mean()) >= 0.85
    assert float((top_e == labels).double().mean()) >= 0.6
    assert float((top10 == labels).double().mean()) >= 0.9


# ---------------------------------------------------------------- gfcg classify

CLASSIFY_ROW = re.compile(r'^  +([0-9.]+)%  inet:([0-9]+) +(pack:[0-9]+|-) +(.+)$')
RESNET_CNN_CFG = dict(in_channels=3, resolution=12, widths=[8, 16], blocks=[1, 1],
                      mean=[0.5] * 3, std=[0.5] * 3)


def classify_rows(pack, png, *args):
    """`gfcg classify` on one PNG: [(percent, imagenet, 'pack:N' or '-', name)]."""
    p = run([gfcg_bin(), 'classify', '--pack', pack, '--device', 'cpu', *args, png])
    lines = p.stdout.splitlines()
    assert lines[0] == f'{png}:', p.stdout
    rows = [CLASSIFY_ROW.match(line) for line in lines[1:]]
    assert all(rows), p.stdout
    return [(float(m[1]), int(m[2]), m[3], m[4]) for m in rows]


def random_png(tmp_path, seed):
    """A 16x16 RGB picture; returns its path and its network-space pixels."""
    from PIL import Image
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8)
    f = tmp_path / 'x.png'
    Image.fromarray(u8.numpy()).save(f)
    return f, u8.permute(2, 0, 1)[None].double() / 127.5 - 1


def expected_ranking(probs):
    return sorted(range(len(probs)), key=lambda i: (-float(probs[i]), i))


def test_classify_ranks_all_imagenet_classes(pack, tmp_path):
    """An ImageNet-space classifier: the top classes over all 1000, with
    probabilities over the 1000, whether the pack can draw them or not.  The
    classifier is biased toward goldfish (ImageNet 1, not in the pack) and
    English springer (217, the pack's class 1), so the first row is a class
    the pack cannot draw; before, only the pack's 4 classes were ranked and
    the first row was always one of them."""
    from classifier_ref import ResNetCNN
    from make_packs import CLASSES
    torch.manual_seed(21)
    cfg = dict(RESNET_CNN_CFG, num_classes=1000, label_space='imagenet')
    net = ResNetCNN(**cfg)
    with torch.no_grad():
        net.fc.bias[1] += 9.0
        net.fc.bias[217] += 8.0
    set_classifier(pack, 'resnet-cnn', cfg, net.state_dict())
    png, x = random_png(tmp_path, 3)
    # The engine's logits of the same pixels (their parity with PyTorch is
    # checked elsewhere); the ranking and the softmax over 1000 are checked here.
    probs = torch.softmax(engine_logits(pack, x, tmp_path)[0].double(), 0)
    want = expected_ranking(probs)
    drawable = {c['imagenet']: k for k, c in enumerate(CLASSES)}

    rows = classify_rows(pack, png)
    assert [r[1] for r in rows] == want[:5]
    assert rows[0][1] == 1 and rows[0][2] == '-' and rows[0][3] == 'goldfish', rows
    assert rows[1][1] == 217 and rows[1][2] == 'pack:1', rows
    for pct, inet, mark, _ in rows:
        assert abs(pct - 100 * float(probs[inet])) <= 0.005 + 1e-9
        assert mark == (f'pack:{drawable[inet]}' if inet in drawable else '-')
    # The goldfish's probability is over 1000 classes: well below 100 %.
    assert 5.0 < rows[0][0] < 95.0, rows

    rows = classify_rows(pack, png, '--top', '12')
    assert [r[1] for r in rows] == want[:12]
    rows = classify_rows(pack, png, '--top', '1000')
    assert sorted(r[1] for r in rows) == list(range(1000))
    assert sorted(r[2] for r in rows if r[2] != '-') == [f'pack:{k}' for k in range(len(CLASSES))]
    # Rounded to 0.01 %: each of the 1000 within half of that of its probability.
    assert max(abs(pct - 100 * float(probs[inet])) for pct, inet, *_ in rows) <= 0.005 + 1e-9
    for bad in ('0', '1001', 'five'):
        p = run([gfcg_bin(), 'classify', '--pack', pack, '--top', bad, png], ok=False)
        assert p.returncode == 2 and '--top' in p.stderr and p.stdout == '', (bad, p.stderr)


def test_classify_pack_space_ranks_pack_classes(pack, tmp_path):
    """A pack-space classifier knows only the pack's classes: all of them
    ranked (4 rows, not 5), each marked with its pack index, summing to 100 %."""
    from classifier_ref import ResNetCNN
    from make_packs import CLASSES
    torch.manual_seed(22)
    cfg = dict(RESNET_CNN_CFG, num_classes=len(CLASSES), label_space='pack')
    set_classifier(pack, 'resnet-cnn', cfg, ResNetCNN(**cfg).state_dict())
    png, x = random_png(tmp_path, 4)
    probs = torch.softmax(engine_logits(pack, x, tmp_path)[0].double(), 0)
    rows = classify_rows(pack, png)
    want = expected_ranking(probs)
    assert [r[2] for r in rows] == [f'pack:{k}' for k in want]
    assert [r[1] for r in rows] == [CLASSES[k]['imagenet'] for k in want]
    for (pct, *_), k in zip(rows, want):
        assert abs(pct - 100 * float(probs[k])) <= 0.005 + 1e-9
