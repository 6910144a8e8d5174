"""Convert a TFLite classifier (e.g. the Coral MobileNetV2) into safetensors.

    python3 -m gfcg_convert.tflite_to_safetensors model.tflite out.safetensors

Reads the flatbuffer with the `flatbuffers` runtime alone (field positions of
TFLite's schema.fbs are written out below), dequantises every constant tensor
to float32 (uint8/int8 weights: scale * (q - zero_point), per tensor or per
channel; int32 biases: scale * q), moves conv weights to PyTorch's layout
(CONV_2D OHWI -> OIHW, DEPTHWISE_CONV_2D 1HWC -> C1HW) and names them:

* a MobileNetV2 graph (stem conv, inverted residual blocks, 1x1 head conv,
  average pool, 1x1 conv or fully connected classifier) gets the engine's
  "mobilenet-v2" names of docs/pack-format.md (stem.weight, blocks.{i}.expand
  / depthwise / project.weight, head.weight, classifier.weight [N, 1280] and
  the .bias of each), so the file is a pack component as it is;
* every other constant is `const.{index}` (index = the TFLite tensor index).

The graph (operators, their inputs/outputs and options, the input
quantisation, each constant's stored name under "const") goes into the
file's __metadata__ as JSON, so that research/eval/tflite_net.py can run it.
Nothing in the model file is executed.
"""
import json
import sys

import flatbuffers
import numpy as np
import torch
from flatbuffers import number_types as nt
from safetensors.torch import save_file

# BuiltinOperator codes used by image classifiers.
OPS = {0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION', 3: 'CONV_2D',
       4: 'DEPTHWISE_CONV_2D', 6: 'DEQUANTIZE', 9: 'FULLY_CONNECTED', 14: 'LOGISTIC',
       17: 'MAX_POOL_2D', 18: 'MUL', 19: 'RELU', 21: 'RELU6', 22: 'RESHAPE', 25: 'SOFTMAX',
       40: 'MEAN', 114: 'QUANTIZE'}
DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8,
          7: np.int16}
ACT = {0: None, 1: 'relu', 2: 'relu_n1_to_1', 3: 'relu6'}


class T:
    """A flatbuffer table with TFLite-schema field access by slot number."""

    def __init__(self, buf, pos):
        self.t = flatbuffers.table.Table(buf, pos)

    def _o(self, slot):
        return self.t.Offset(4 + 2 * slot)

    def scalar(self, slot, flags, default=0):
        o = self._o(slot)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def table(self, slot):
        o = self._o(slot)
        return T(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def string(self, slot):
        o = self._o(slot)
        return self.t.String(o + self.t.Pos).decode() if o else ''

    def tables(self, slot):
        o = self._o(slot)
        if not o:
            return []
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [T(self.t.Bytes, self.t.Indirect(start + 4 * i)) for i in range(n)]

    def vector(self, slot, dtype):
        o = self._o(slot)
        if not o:
            return np.zeros(0, dtype)
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return np.frombuffer(self.t.Bytes, dtype=dtype, count=n, offset=start).copy()


def options(op_name, opt):
    """Builtin options as a dict (only the fields the runner needs)."""
    if opt is None:
        return {}
    if op_name == 'CONV_2D':
        return dict(padding=opt.scalar(0, nt.Int8Flags), stride_w=opt.scalar(1, nt.Int32Flags),
                    stride_h=opt.scalar(2, nt.Int32Flags),
                    act=ACT[opt.scalar(3, nt.Int8Flags)],
                    dilation_w=opt.scalar(4, nt.Int32Flags, 1),
                    dilation_h=opt.scalar(5, nt.Int32Flags, 1))
    if op_name == 'DEPTHWISE_CONV_2D':
        return dict(padding=opt.scalar(0, nt.Int8Flags), stride_w=opt.scalar(1, nt.Int32Flags),
                    stride_h=opt.scalar(2, nt.Int32Flags),
                    depth_multiplier=opt.scalar(3, nt.Int32Flags),
                    act=ACT[opt.scalar(4, nt.Int8Flags)],
                    dilation_w=opt.scalar(5, nt.Int32Flags, 1),
                    dilation_h=opt.scalar(6, nt.Int32Flags, 1))
    if op_name in ('AVERAGE_POOL_2D', 'MAX_POOL_2D'):
        return dict(padding=opt.scalar(0, nt.Int8Flags), stride_w=opt.scalar(1, nt.Int32Flags),
                    stride_h=opt.scalar(2, nt.Int32Flags),
                    filter_w=opt.scalar(3, nt.Int32Flags), filter_h=opt.scalar(4, nt.Int32Flags),
                    act=ACT[opt.scalar(5, nt.Int8Flags)])
    if op_name in ('ADD', 'MUL'):
        return dict(act=ACT[opt.scalar(0, nt.Int8Flags)])
    if op_name == 'FULLY_CONNECTED':
        return dict(act=ACT[opt.scalar(0, nt.Int8Flags)])
    if op_name == 'SOFTMAX':
        return dict(beta=opt.scalar(0, nt.Float32Flags, 1.0))
    return {}


def mobilenet_v2_names(tensors, ops):
    """{tensor index: engine name} for a MobileNetV2 graph, or None.

    The roles follow from the operator sequence alone: the first conv is the
    stem; then blocks of [1x1 CONV_2D (expansion)] DEPTHWISE_CONV_2D 1x1
    CONV_2D (projection) [ADD]; a 1x1 CONV_2D (head); a pool; the classifier
    (1x1 CONV_2D or FULLY_CONNECTED); then only RESHAPE / SOFTMAX."""
    seq = [op for op in ops if op['op'] not in ('ADD', 'RESHAPE', 'SOFTMAX', 'QUANTIZE',
                                                'DEQUANTIZE')]
    names, k, block = {}, 0, 0

    def kernel(op):
        return tensors[op['inputs'][1]]['shape'][1:3]

    def name(op, role):
        if len(op['inputs']) < 3 or op['inputs'][2] < 0:
            raise KeyError(role)
        names[op['inputs'][1]] = f'{role}.weight'
        names[op['inputs'][2]] = f'{role}.bias'

    try:
        if seq[0]['op'] != 'CONV_2D' or kernel(seq[0]) != [3, 3]:
            return None
        name(seq[0], 'stem')
        k = 1
        while True:
            if seq[k]['op'] == 'CONV_2D' and seq[k + 1]['op'] == 'DEPTHWISE_CONV_2D':
                name(seq[k], f'blocks.{block}.expand')
                k += 1
            if seq[k]['op'] != 'DEPTHWISE_CONV_2D':
                break
            if seq[k + 1]['op'] != 'CONV_2D' or kernel(seq[k + 1]) != [1, 1]:
                return None
            name(seq[k], f'blocks.{block}.depthwise')
            name(seq[k + 1], f'blocks.{block}.project')
            k, block = k + 2, block + 1
        if (seq[k]['op'] != 'CONV_2D' or kernel(seq[k]) != [1, 1] or
                seq[k + 1]['op'] not in ('AVERAGE_POOL_2D', 'MEAN') or
                seq[k + 2]['op'] not in ('CONV_2D', 'FULLY_CONNECTED') or len(seq) != k + 3):
            return None
        name(seq[k], 'head')
        name(seq[k + 2], 'classifier')
    except (IndexError, KeyError):
        return None
    return names


def _torch_layout(v, op, role):
    """TFLite weight layouts -> PyTorch's (see the module docstring)."""
    if op == 'CONV_2D':
        v = v.transpose(0, 3, 1, 2)                        # OHWI -> OIHW
        if role == 'classifier.weight':
            v = v.reshape(v.shape[0], -1)                  # a 1x1 conv on 1x1: [N, 1280]
    elif op == 'DEPTHWISE_CONV_2D':
        v = v.transpose(3, 0, 1, 2)                        # 1HWC -> C1HW
    return np.ascontiguousarray(v)


def convert(path):
    buf = bytearray(open(path, 'rb').read())
    if len(buf) < 8 or bytes(buf[4:8]) != b'TFL3':
        raise ValueError(f'{path}: not a TFLite flatbuffer (no TFL3 identifier)')
    model = T(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    codes = []
    for oc in model.tables(1):
        code = max(oc.scalar(0, nt.Int8Flags), oc.scalar(3, nt.Int32Flags))
        codes.append(code)
    buffers = [b.vector(0, np.uint8) for b in model.tables(4)]
    (sg,) = model.tables(2)[:1]
    tensors, values, info = sg.tables(0), {}, []
    for i, t in enumerate(tensors):
        shape = t.vector(0, np.int32).tolist()
        dtype = DTYPES[t.scalar(1, nt.Int8Flags)]
        name = t.string(3) or f'tensor{i}'
        q = t.table(4)
        scale = q.vector(2, np.float32) if q else np.zeros(0, np.float32)
        zp = q.vector(3, np.int64) if q else np.zeros(0, np.int64)
        qdim = q.scalar(6, nt.Int32Flags) if q else 0
        data = buffers[t.scalar(2, nt.Uint32Flags)]
        info.append(dict(name=name, shape=shape, dtype=np.dtype(dtype).name,
                         scale=scale.tolist()[:1] if len(scale) <= 1 else 'per-channel',
                         zero_point=zp.tolist()[:1] if len(zp) <= 1 else 'per-channel'))
        if len(data) == 0:
            continue
        v = np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape).astype(np.float64)
        if len(scale):
            bshape = [1] * len(shape)
            if len(scale) > 1:
                bshape[qdim] = len(scale)
            z = zp.reshape(bshape) if len(zp) > 1 else (zp[0] if len(zp) else 0)
            v = scale.astype(np.float64).reshape(bshape) * (v - z)
        values[i] = v
    ops = []
    for op in sg.tables(3):
        code = codes[op.scalar(0, nt.Uint32Flags)]
        name = OPS.get(code)
        if name is None:
            raise ValueError(f'{path}: builtin operator {code} is not supported')
        ops.append(dict(op=name, inputs=op.vector(1, np.int32).tolist(),
                        outputs=op.vector(2, np.int32).tolist(),
                        options=options(name, op.table(4))))
    names = mobilenet_v2_names(info, ops) or {}
    weight_op = {op['inputs'][1]: op['op'] for op in ops
                 if op['op'] in ('CONV_2D', 'DEPTHWISE_CONV_2D') and len(op['inputs']) > 1}
    consts = {}
    for i, v in values.items():
        stored = names.get(i, f'const.{i}')
        if i in weight_op:
            v = _torch_layout(v, weight_op[i], stored)
        consts[stored] = torch.from_numpy(v.astype(np.float32)).contiguous()
        info[i]['const'] = stored
    graph = dict(source=path, tensors=info, ops=ops, weights_layout='torch',
                 arch='mobilenet-v2' if names else None,
                 inputs=sg.vector(1, np.int32).tolist(), outputs=sg.vector(2, np.int32).tolist())
    return consts, graph


def input_normalisation(graph):
    """mean, std on [0, 1] pixels equivalent to the model's input encoding.

    uint8 input q = 255 v read as scale (q - zero_point) is (v - zp/255) /
    (1 / (255 scale)); a float input is taken to be [-1, 1] (TensorFlow's
    MobileNet convention): mean 0.5, std 0.5."""
    t = graph['tensors'][graph['inputs'][0]]
    if t['dtype'] == 'uint8' and isinstance(t['scale'], list) and t['scale']:
        s, z = t['scale'][0], (t['zero_point'] or [0])[0]
        return [z / 255.0] * 3, [1.0 / (255.0 * s)] * 3
    return [0.5] * 3, [0.5] * 3


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: tflite_to_safetensors.py MODEL.tflite OUT.safetensors')
    consts, graph = convert(sys.argv[1])
    save_file(consts, sys.argv[2], metadata={'graph': json.dumps(graph)})
    print(f'{len(consts)} constant tensors, {len(graph["ops"])} operators'
          f'{", MobileNetV2 names" if graph["arch"] else ""} -> {sys.argv[2]}')


if __name__ == '__main__':
    main()
