"""Convert a TFLite classifier (e.g. the Coral MobileNetV2) into safetensors.

    python3 tools/convert/tflite_to_safetensors.py model.tflite out.safetensors

Reads the flatbuffer with the `flatbuffers` runtime alone (field positions of
TFLite's schema.fbs are written out below), dequantises every constant tensor
to float32 (uint8/int8 weights: scale * (q - zero_point), per tensor or per
channel; int32 biases: scale * q) and stores them under their TFLite names.
The graph (operators, their inputs/outputs and options, the input
quantisation) goes into the file's __metadata__ as JSON, so that
tools/eval/tflite_net.py can run it.  Nothing in the model file is executed.
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
    tensors, consts, info = sg.tables(0), {}, []
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
            v = scale.reshape(bshape) * (v - z)
        consts[f't{i}'] = torch.from_numpy(v.astype(np.float32)).contiguous()
    ops = []
    for op in sg.tables(3):
        code = codes[op.scalar(0, nt.Uint32Flags)]
        name = OPS.get(code)
        if name is None:
            raise ValueError(f'{path}: builtin operator {code} is not supported')
        ops.append(dict(op=name, inputs=op.vector(1, np.int32).tolist(),
                        outputs=op.vector(2, np.int32).tolist(),
                        options=options(name, op.table(4))))
    graph = dict(source=path, tensors=info, ops=ops,
                 inputs=sg.vector(1, np.int32).tolist(), outputs=sg.vector(2, np.int32).tolist())
    return consts, graph


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: tflite_to_safetensors.py MODEL.tflite OUT.safetensors')
    consts, graph = convert(sys.argv[1])
    save_file(consts, sys.argv[2], metadata={'graph': json.dumps(graph)})
    print(f'{len(consts)} constant tensors, {len(graph["ops"])} operators -> {sys.argv[2]}')


if __name__ == '__main__':
    main()
