#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/
(run inside tools/devenv: the pack seeds need PyTorch).  The files are
committed; this script is how they were made:

    tools/devenv python3 tests/fuzz/make-corpus.py
"""
import io
import json
import os
import struct
import zlib

import torch
from safetensors.torch import save

import make_packs  # tests/reference, on the PYTHONPATH tools/devenv sets
from classifier_ref import ResNetCNN

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def st(tensors):
    """safetensors bytes written by hand: {name: (dtype, shape, raw bytes)}."""
    header, data = {}, b''
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(',', ':')).encode()
    return struct.pack('<Q', len(h)) + h + data


def safetensors_seeds():
    out('safetensors', 'f32', st({'w': ('F32', [2, 2], struct.pack('<4f', 1, -2, 0.5, 3)),
                                  'b': ('F32', [2], struct.pack('<2f', 0, 1))}))
    out('safetensors', 'f16-bf16', st({'h': ('F16', [3], struct.pack('<3H', 0x3c00, 0x8001, 0x7bff)),
                                       'g': ('BF16', [1, 2], struct.pack('<2H', 0x3f80, 0xc000)),
                                       's': ('F32', [], struct.pack('<f', 2.0))}))
    h = b'{"__metadata__":{"format":"pt"},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'
    out('safetensors', 'metadata-empty', struct.pack('<Q', len(h)) + h)


def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def png(w, h, depth, colour, extra=b'', interlace=0, raw=None):
    ch = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    if raw is None:
        row = (w * depth * ch + 7) // 8
        raw = b''.join(bytes([y % 5]) + bytes((x * 37 + y * 11) & 0xff for x in range(row))
                       for y in range(h))
    return (b'\x89PNG\r\n\x1a\n' +
            chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, colour, 0, 0, interlace)) +
            extra + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def png_seeds():
    out('png', 'rgb8', png(4, 3, 8, 2, extra=chunk(b'tEXt', b'gfcg\x00{"seed":1}')))
    out('png', 'rgba16', png(3, 2, 16, 6, extra=chunk(b'gAMA', struct.pack('>I', 45455))))
    out('png', 'grey1', png(9, 2, 1, 0))
    out('png', 'grey-alpha8', png(2, 2, 8, 4))
    out('png', 'palette4-trns', png(5, 2, 4, 3, extra=chunk(b'PLTE', bytes(range(48))) +
                                     chunk(b'tRNS', b'\x00\x80\xff')))
    # 1x1 interlaced: only Adam7's first pass has a pixel.
    out('png', 'interlaced', png(1, 1, 8, 2, interlace=1, raw=b'\x00\x10\x20\x30'))
    out('png', 'text-chunks', png(1, 1, 8, 0, raw=b'\x00\x7f',
                                  extra=chunk(b'zTXt', b'k\x00\x00' + zlib.compress(b'hello')) +
                                  chunk(b'iTXt', b'k\x00\x00\x00en\x00k\x00v') +
                                  chunk(b'sPLT', b'p\x00\x08\x01\x02\x03\x04\x00\x01')))


def container(manifest, files):
    data = json.dumps(manifest, separators=(',', ':')).encode()
    for name, body in files.items():
        data += b'\n--file ' + name.encode() + b'\n' + body
    return data


def pack_seeds():
    classes = [{'imagenet': 0, 'name': 'tench'}, {'imagenet': 217}]
    config, net = make_packs.make_unet(1, img_resolution=4, img_channels=3, label_dim=2,
                                       model_channels=4, channel_mult=[1], num_blocks=1,
                                       attn_resolutions=[])
    main = save({k: v.detach().half().contiguous() for k, v in net.state_dict().items()})
    base = {'format': 'gfcg-pack', 'format_version': 1, 'name': 'f', 'kind': 'pixel',
            'resolution': 4, 'channels': 3, 'classes': classes,
            'components': {'main': {'file': 'm', 'arch': 'edm2-unet', 'config': config}}}
    out('pack', 'pixel-main', container(base, {'m': main}))
    with_defaults = dict(base, defaults={'mode': 'cfg', 'steps': 4, 'guidance': 2.0})
    with_defaults['components'] = dict(base['components'],
                                       uncond={'file': 'm', 'arch': 'edm2-unet', 'config': config})
    out('pack', 'pixel-uncond-defaults', container(with_defaults, {'m': main}))
    cls = ResNetCNN(3, 4, [2], [1], 2, label_space='pack', mean=[0.5] * 3, std=[0.5] * 3)
    ccfg = cls.config
    c = save({k: v.detach().half().contiguous() for k, v in cls.state_dict().items()})
    with_cls = dict(base)
    with_cls['components'] = dict(base['components'],
                                  classifier={'file': 'c', 'arch': 'resnet-cnn', 'config': ccfg})
    out('pack', 'pixel-classifier', container(with_cls, {'m': main, 'c': c}))
    out('pack', 'no-files', container(base, {}))


if __name__ == '__main__':
    torch.manual_seed(0)
    safetensors_seeds()
    png_seeds()
    pack_seeds()
