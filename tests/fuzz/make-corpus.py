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


def nvidia_generator():
    """tests/test_convert_edm2.py's NVIDIA-format generator (by file, not by
    import path), with its stand-in torch_utils.persistence registered."""
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location(
        'test_convert_edm2', os.path.join(HERE, '..', 'test_convert_edm2.py'))
    t = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(t)
    pkg = type(sys)('torch_utils')
    pkg.persistence = t._fake_persistence
    sys.modules['torch_utils'] = pkg
    sys.modules['torch_utils.persistence'] = t._fake_persistence
    return t


def pickle_seeds():
    """EDM2 snapshots (a tiny network, protocols 2 and 4), hostile and odd pickles."""
    import collections
    import pickle
    t = nvidia_generator()
    cfg = dict(img_resolution=4, img_channels=3, label_dim=2, model_channels=4, channel_mult=[1],
               num_blocks=1, attn_resolutions=[])
    net = make_packs.make_unet(1, **cfg)[1].half()
    snap = t.nv_snapshot(net, cfg, 'class Precond: pass\n')
    out('pickle', 'snapshot-p4', pickle.dumps(snap, protocol=4))
    out('pickle', 'snapshot-p2', pickle.dumps(snap, protocol=2))
    out('pickle', 'os-system', b"(dp0\nS'ema'\np1\ncos\nsystem\n(S'true'\ntR.")
    out('pickle', 'persistent-id', b"(dp0\nS'ema'\np1\nPstorage\np2\ns.")
    out('pickle', 'build-set', b"c__builtin__\nset\n(tR(S'x'\ntb.")
    out('pickle', 'ext1', b'\x80\x02\x82\x01.')
    odd = {'s': {1, 2}, 'f': frozenset([3]), 't': (1.5, -2, 2**70, None, True), 'u': 'é\U0001f600',
           'b': b'\x00\xff', 'o': collections.OrderedDict(a=[1, [2, [3]]])}
    out('pickle', 'plain-p0', pickle.dumps(odd, protocol=0))
    out('pickle', 'plain-p4', pickle.dumps(odd, protocol=4))


def zip_seeds():
    """torch.save state dicts: zip archives (with torch's zip64 end records) and
    the legacy format, with views into one storage and several dtypes."""
    import collections
    sd = collections.OrderedDict()
    sd._metadata = collections.OrderedDict([('', {'version': 1})])
    base = torch.arange(24, dtype=torch.float32)
    sd['fc.weight'] = base[:12].view(3, 4)
    sd['fc.bias'] = base[12:15]
    sd['t'] = base[15:21].view(2, 3).t()
    sd['h'] = torch.ones(2, dtype=torch.float16)
    sd['n'] = torch.tensor(7)
    for name, legacy in (('zip', False), ('legacy', True)):
        b = io.BytesIO()
        torch.save(sd, b, _use_new_zipfile_serialization=not legacy)
        out('zip', name, b.getvalue())
    b = io.BytesIO()
    torch.save({'state_dict': {'w': torch.zeros(2, 2, dtype=torch.bfloat16)}}, b)
    out('zip', 'wrapped', b.getvalue())


def tflite(tensors, buffers, opcodes, ops, inputs, outputs):
    """A TFLite flatbuffer by schema.fbs's slot numbers, the fields
    cv-tflite.c reads.  tensors: (name, shape, type, buffer, quant) with quant
    None or (scales, zero_points, dim); buffers: bytes (buffer 0 empty, as
    TFLite has it); opcodes: builtin codes; ops: (opcode index, inputs,
    outputs, options) with options None or (kind, {slot: value}), kind 'b'
    for an int8 slot, 'i' int32, 'f' float."""
    import flatbuffers
    b = flatbuffers.Builder(1024)

    def vec(vals, width, prepend):
        b.StartVector(width, len(vals), width)
        for v in reversed(vals):
            prepend(v)
        return b.EndVector()

    def table(fields):
        """fields: (slot, kind, value), offsets made before."""
        b.StartObject(max([f[0] for f in fields], default=-1) + 1)
        for slot, kind, v in fields:
            {'b': lambda: b.PrependInt8Slot(slot, v, 0), 'B': lambda: b.PrependUint8Slot(slot, v, 0),
             'i': lambda: b.PrependInt32Slot(slot, v, 0), 'u': lambda: b.PrependUint32Slot(slot, v, 0),
             'f': lambda: b.PrependFloat32Slot(slot, v, 0.0),
             'o': lambda: b.PrependUOffsetTRelativeSlot(slot, v, 0)}[kind]()
        return b.EndObject()

    ints = lambda vals: vec(vals, 4, b.PrependInt32)           # noqa: E731
    tabs = lambda offs: vec(offs, 4, b.PrependUOffsetTRelative)  # noqa: E731
    bufs = tabs([table([(0, 'o', b.CreateByteVector(d))] if d else []) for d in buffers])
    tens = []
    for name, shape, dtype, buf, quant in tensors:
        fields = [(0, 'o', ints(shape)), (1, 'b', dtype), (2, 'u', buf), (3, 'o', b.CreateString(name))]
        if quant is not None:
            scales, zps, dim = quant
            q = table([(2, 'o', vec(scales, 4, b.PrependFloat32)),
                       (3, 'o', vec(zps, 8, b.PrependInt64)), (6, 'i', dim)])
            fields.append((4, 'o', q))
        tens.append(table(fields))
    tens = tabs(tens)
    opers = []
    for code, ins, outs, options in ops:
        fields = [(0, 'u', code), (1, 'o', ints(ins)), (2, 'o', ints(outs))]
        if options is not None:
            kind, slots = options
            fields += [(3, 'B', kind), (4, 'o', table([(k, t, v) for k, (t, v) in slots.items()]))]
        opers.append(table(fields))
    opers = tabs(opers)
    sg = tabs([table([(0, 'o', tens), (1, 'o', ints(inputs)), (2, 'o', ints(outputs)),
                      (3, 'o', opers), (4, 'o', b.CreateString('main'))])])
    codes = tabs([table([(0, 'b', min(c, 127)), (3, 'i', c)]) for c in opcodes])
    b.Finish(table([(0, 'u', 3), (1, 'o', codes), (2, 'o', sg), (4, 'o', bufs)]),
             file_identifier=b'TFL3')
    return bytes(b.Output())


def tflite_seeds():
    """A tiny quantised MobileNetV2-shaped graph (stem, a block without and one
    with expansion, head, pool, classifier: the naming path), a float graph of
    other operators and constant types, and a graph without operators."""
    import random
    import struct
    rnd = random.Random(1)
    u8 = lambda n: bytes(rnd.randrange(256) for _ in range(n))              # noqa: E731
    i32 = lambda n: struct.pack(f'<{n}i', *(rnd.randrange(-500, 500) for _ in range(n)))  # noqa: E731
    tensors, buffers = [('input', [1, 8, 8, 3], 3, 0, ([1 / 128], [128], 0))], [b'']
    ops = []
    conv, dw, add, pool, reshape, softmax = 0, 1, 2, 3, 4, 5

    def const(name, shape, dtype, data, quant):
        buffers.append(data)
        tensors.append((name, shape, dtype, len(buffers) - 1, quant))
        return len(tensors) - 1

    def act(name, shape):
        tensors.append((name, shape, 3, 0, ([0.05], [0], 0)))
        return len(tensors) - 1

    def layer(kind, x, cout, k, cin, size, per_channel=True):
        n = cout if kind == conv else cin
        shape = [cout, k, k, cin] if kind == conv else [1, k, k, cin]
        q = ([0.01 + 0.001 * c for c in range(n)], [128] * n, 0 if kind == conv else 3) \
            if per_channel else ([0.02], [127], 0)
        w = const(f'w{len(tensors)}', shape, 3, u8(cout * k * k * cin if kind == conv else k * k * cin), q)
        bias = const(f'b{len(tensors)}', [n], 2, i32(n), ([1e-4] * n, [0] * n, 0))
        y = act(f'y{len(tensors)}', [1, size, size, n])
        opt = (1, {0: ('b', 1), 1: ('i', 1), 2: ('i', 1), 3: ('b', 3)}) if kind == conv else \
            (2, {0: ('b', 1), 1: ('i', 1), 2: ('i', 1), 3: ('i', 1), 4: ('b', 3)})
        ops.append((kind, [x, w, bias], [y], opt))
        return y

    x = layer(conv, 0, 4, 3, 3, 4)                      # stem
    x = layer(conv, layer(dw, x, 4, 3, 4, 4, per_channel=False), 2, 1, 4, 4)
    y = layer(conv, layer(dw, layer(conv, x, 6, 1, 2, 4), 6, 3, 6, 4), 2, 1, 6, 4)
    s = act('sum', [1, 4, 4, 2])
    ops.append((add, [x, y], [s], (11, {0: ('b', 0)})))
    h = layer(conv, s, 8, 1, 2, 4)                      # head
    p = act('pool', [1, 1, 1, 8])
    ops.append((pool, [h], [p], (5, {0: ('b', 1), 1: ('i', 1), 2: ('i', 1), 3: ('i', 4), 4: ('i', 4)})))
    logits = layer(conv, p, 5, 1, 8, 1)                 # classifier
    flat, probs = act('flat', [1, 5]), act('probs', [1, 5])
    ops.append((reshape, [logits], [flat], None))
    ops.append((softmax, [flat], [probs], (9, {0: ('f', 1.0)})))
    out('tflite', 'mobilenet-tiny', tflite(tensors, buffers, [3, 4, 0, 1, 22, 25], ops, [0], [probs]))

    f32 = lambda *v: struct.pack(f'<{len(v)}f', *v)                          # noqa: E731
    tensors = [('x', [1, 4], 0, 0, None),
               ('w', [3, 4], 1, 1, None), ('b', [3], 0, 2, None), ('y', [1, 3], 0, 0, None),
               ('axes', [1], 4, 3, None), ('m', [1], 0, 0, None), ('q', [1], 9, 0, ([0.1], [-3], 0)),
               ('c8', [2], 9, 4, ([0.5], [1], 0)), ('c16', [2], 7, 5, None), ('', [], 0, 6, None)]
    buffers = [b'', struct.pack('<12e', *range(12)), f32(0.5, -1, 2), struct.pack('<q', 1),
               b'\x80\x7f', struct.pack('<2h', -2, 3), f32(7)]
    ops = [(0, [0, 1, 2], [3], (8, {0: ('b', 1)})), (1, [3, 4], [5], None), (2, [5], [6], None),
           (3, [6], [5], None), (4, [5, 7], [5], (12, {0: ('b', 3)}))]
    out('tflite', 'float-ops', tflite(tensors, buffers, [9, 40, 114, 6, 18], ops, [0], [5]))
    out('tflite', 'no-ops', tflite([('x', [1], 0, 0, None)], [b''], [], [], [0], [0]))


if __name__ == '__main__':
    torch.manual_seed(0)
    safetensors_seeds()
    png_seeds()
    pack_seeds()
    pickle_seeds()
    zip_seeds()
    tflite_seeds()
