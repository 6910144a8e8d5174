"""Attach an ImageNet classifier to an existing gfcg pack (converters/convert-classifier).

    converters/convert-classifier --pack DIR --mobilenet mobilenet_v2_1.0_224_quant.tflite [--fp16]
    converters/convert-classifier --pack DIR --resnet50 resnet50-0676ba61.pth [--fp16]

Writes the weights into DIR (classifier-<arch>.safetensors) and the
`classifier` component (docs/pack-format.md: arch, config with label_space
"imagenet", resolution 224, mean/std, label_offset; the weights' licence and
source) into DIR/pack.json.  Both files are written to a temporary name in DIR
and renamed over the old ones, so an interrupted run leaves the pack as it
was.  An existing classifier is replaced only with --replace (its file stays).
"""
import argparse
import json
import os
import sys
import tempfile

from . import torchvision_to_safetensors as tv
from .edm2_pickle import ConvertError, RefusedPickle, describe

CORAL_LICENCE = 'Apache-2.0'
CORAL_NOTE = ('MobileNetV2 1.0 224 (quantised) from Google\'s Coral test data, Apache License '
              '2.0; dequantised to float by converters/convert-classifier.')
IMAGENET_RES = 224


def mobilenet_component(path):
    """-> (tensors, config, provenance, file metadata) for the Coral TFLite MobileNetV2."""
    from . import tflite_to_safetensors  # needs the flatbuffers runtime: only here
    try:
        consts, graph = tflite_to_safetensors.convert(path)
    except (ValueError, KeyError, IndexError) as e:
        raise ConvertError(f'{path}: {e}') from None
    if graph['arch'] != 'mobilenet-v2':
        raise ConvertError(f'{path}: the graph is not a MobileNetV2 (stem, inverted residual '
                           'blocks, head, pool, classifier)')
    inp = graph['tensors'][graph['inputs'][0]]['shape']
    n_out = consts['classifier.weight'].shape[0]
    if inp[1:3] != [IMAGENET_RES, IMAGENET_RES] or n_out not in (1000, 1001):
        raise ConvertError(f'{path}: input {inp}, {n_out} outputs: not an ImageNet-1k '
                           f'{IMAGENET_RES}px classifier')
    mean, std = tflite_to_safetensors.input_normalisation(graph)
    config = {'in_channels': 3, 'resolution': IMAGENET_RES, 'num_classes': 1000,
              'label_space': 'imagenet', 'label_offset': n_out - 1000,
              'mean': mean, 'std': std, 'padding': 'same'}
    source = {'file': os.path.basename(path), 'sha256': tv._sha256(path),
              'licence': CORAL_LICENCE, 'licence_note': CORAL_NOTE}
    return consts, config, source, {'graph': json.dumps(graph)}


def resnet50_component(path):
    tensors, info = tv.convert(path)
    if tensors['fc.weight'].shape[0] != 1000:
        raise ConvertError(f'{path}: fc has {tensors["fc.weight"].shape[0]} outputs, not 1000')
    config = {'in_channels': 3, 'resolution': IMAGENET_RES, 'num_classes': 1000,
              'label_space': 'imagenet', 'label_offset': 0,
              'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}
    source = dict(info, licence=tv.LICENCE, licence_note=tv.LICENCE_NOTE)
    return tensors, config, source, None


def _atomic_write(path, write):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=d)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def attach(pack, mobilenet=None, resnet50=None, fp16=False, replace=False, log=print):
    if (mobilenet is None) == (resnet50 is None):
        raise ConvertError('give exactly one of --mobilenet and --resnet50')
    manifest_path = os.path.join(pack, 'pack.json')
    try:
        with open(manifest_path, encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise ConvertError(f'{manifest_path}: {e}') from None
    if not isinstance(manifest, dict) or manifest.get('format') != 'gfcg-pack' or \
            not isinstance(manifest.get('components'), dict):
        raise ConvertError(f'{manifest_path}: not a gfcg pack manifest')
    old = manifest['components'].get('classifier')
    if old is not None and not replace:
        raise ConvertError(f'{pack} already has a classifier ({old.get("arch")}, '
                           f'{old.get("file")}); pass --replace to replace it')
    arch = 'mobilenet-v2' if mobilenet else 'resnet-50'
    tensors, config, source, metadata = (mobilenet_component(mobilenet) if mobilenet
                                         else resnet50_component(resnet50))
    import torch  # after the file is read: a refused pickle never needs it
    from safetensors.torch import save_file
    dtype = torch.float16 if fp16 else torch.float32
    for k, v in tensors.items():
        if fp16 and v.abs().max().item() > 65504:
            raise ConvertError(f'{k} does not fit in fp16; convert without --fp16')
    tensors = {k: v.to(dtype).contiguous() for k, v in tensors.items()}
    file = f'classifier-{arch}.safetensors'
    _atomic_write(os.path.join(pack, file), lambda p: save_file(tensors, p, metadata=metadata))
    manifest['components']['classifier'] = {
        'file': file, 'arch': arch, 'config': config,
        'licence': source.pop('licence'), 'licence_note': source.pop('licence_note'),
        'source': source, 'converter': 'converters/convert-classifier'}

    def write_manifest(p):
        with open(p, 'w', encoding='utf-8') as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write('\n')
    _atomic_write(manifest_path, write_manifest)
    log(f'{pack}: classifier {arch} ({sum(v.numel() for v in tensors.values()) / 1e6:.2f} M '
        f'parameters, {"F16" if fp16 else "F32"}) in {file}'
        + (f'; replaced {old.get("arch")} (file {old.get("file")} left in place)' if old else ''))
    return manifest['components']['classifier']


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog='convert-classifier',
        description='Attach an ImageNet classifier to a gfcg pack: the Coral MobileNetV2 '
                    '(TFLite) or torchvision\'s ResNet-50 (.pth, read without executing it).')
    ap.add_argument('--pack', required=True, help='pack directory (holds pack.json)')
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--mobilenet', metavar='FILE.tflite',
                     help='Coral mobilenet_v2_1.0_224_quant.tflite')
    src.add_argument('--resnet50', metavar='FILE.pth', help="torchvision's resnet50-*.pth")
    ap.add_argument('--fp16', action='store_true', help='store F16 tensors (default F32)')
    ap.add_argument('--replace', action='store_true', help='replace an existing classifier')
    a = ap.parse_args(argv)
    try:
        attach(a.pack, mobilenet=a.mobilenet, resnet50=a.resnet50, fp16=a.fp16, replace=a.replace)
    except (RefusedPickle, ConvertError) as e:
        print(f'convert-classifier: {e}', file=sys.stderr)
        return 2
    except OSError as e:
        print(f'convert-classifier: {e}', file=sys.stderr)
        return 1
    except Exception as e:  # backstop: one line, never a traceback
        print(f'convert-classifier: {a.mobilenet or a.resnet50}: unexpected error: {describe(e)}',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
