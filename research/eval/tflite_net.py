"""Run a classifier converted by converters/gfcg_convert/tflite_to_safetensors.py in PyTorch.

    net = TFLiteNet('mobilenet.safetensors')
    probs, features = net(images_uint8_nhwc)       # [N, 1001], [N, 1280]
    logits = net.logits(images_uint8_nhwc)         # [N, 1001], before the softmax

Float arithmetic with the dequantised weights; each operator's output is
rounded onto its tensor's quantisation grid (scale, zero point, uint8 range)
as the quantised interpreter does, so the results follow the uint8 model
closely (fake_quant=False: plain float inference of the dequantised
weights, what the engine's "mobilenet-v2" computes).  `features` is the
input of the last operator that averages over space (the pooled embedding
used for Frechet distances).

Constants are looked up by the stored name the converter records per tensor
("const"), in PyTorch's weight layout (graph "weights_layout": "torch");
files of the converter's first version (names t{index}, TFLite layouts) are
still read.

dtype=torch.float64 runs the whole graph in double precision: the tests use it
as the reference, so a wrong float32 kernel of the installed PyTorch cannot pass
for an engine error (PyTorch 2.6.0+debian with oneDNN 3.7.2 returns 1x1
convolutions of channels-last batches of 16 or more off by ~50% on AVX-512
machines; the input is made contiguous below for that reason).
"""
import json

import torch
import torch.nn.functional as F
from safetensors import safe_open


def _same_pad(x, kh, kw, sh, sw, dh=1, dw=1):
    """TensorFlow SAME padding: the extra pixel goes bottom/right."""
    h, w = x.shape[2], x.shape[3]
    ph = max((-(-h // sh) - 1) * sh + (kh - 1) * dh + 1 - h, 0)
    pw = max((-(-w // sw) - 1) * sw + (kw - 1) * dw + 1 - w, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class TFLiteNet(torch.nn.Module):
    def __init__(self, path, fake_quant=True, dtype=torch.float32):
        super().__init__()
        with safe_open(path, 'pt') as f:
            self.graph = json.loads(f.metadata()['graph'])
            self.tinfo = self.graph['tensors']
            stored = {t.get('const', f't{i}'): i for i, t in enumerate(self.tinfo)}
            # float32 (or dtype) whatever the file holds (converters/convert-classifier --fp16 writes F16)
            self.consts = {stored[k]: f.get_tensor(k).to(dtype) for k in f.keys() if k in stored}
        self.dtype = dtype
        self.torch_layout = self.graph.get('weights_layout') == 'torch'
        self.fake_quant = fake_quant
        self.input_size = self.tinfo[self.graph['inputs'][0]]['shape'][1]

    def to(self, device):
        self.consts = {k: v.to(device) for k, v in self.consts.items()}
        return self

    def _quant(self, i, x):
        t = self.tinfo[i]
        if not self.fake_quant or t['dtype'] != 'uint8' or not isinstance(t['scale'], list) or not t['scale']:
            return x
        s, z = t['scale'][0], t['zero_point'][0]
        return (torch.clamp(torch.round(x / s) + z, 0, 255) - z) * s

    @staticmethod
    def _act(x, act):
        if act == 'relu':
            return F.relu(x)
        if act == 'relu6':
            return torch.clamp(x, 0, 6)
        if act == 'relu_n1_to_1':
            return torch.clamp(x, -1, 1)
        return x

    def forward(self, images):
        """images: uint8 or float [N, H, W, 3] in 0..255 at the model's input size."""
        vals, features = self._run(images)
        out = vals[self.graph['outputs'][0]]
        return out.reshape(out.shape[0], -1), features

    def logits(self, images):
        """The input of the final SOFTMAX (the graph output when there is none)."""
        vals, _ = self._run(images)
        last = self.graph['ops'][-1]
        out = vals[last['inputs'][0] if last['op'] == 'SOFTMAX' else self.graph['outputs'][0]]
        return out.reshape(out.shape[0], -1)

    def _run(self, images):
        t = self.tinfo[self.graph['inputs'][0]]
        x = images.to(self.dtype)
        if t['dtype'] == 'uint8':
            x = (x - t['zero_point'][0]) * t['scale'][0]
        else:
            x = x / 127.5 - 1.0
        # NCHW internally, contiguous: a permuted (channels-last) tensor takes
        # PyTorch's oneDNN path, which has returned wrong 1x1 convolutions.
        vals = {self.graph['inputs'][0]: x.permute(0, 3, 1, 2).contiguous()}
        features = None
        for op in self.graph['ops']:
            name, o, ins = op['op'], op['options'], op['inputs']
            get = lambda j: vals[j] if j in vals else self.consts[j]  # noqa: E731
            if name in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
                x, w = get(ins[0]), get(ins[1])
                b = get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                groups = 1 if name == 'CONV_2D' else x.shape[1]
                if self.torch_layout:
                    wt = w if w.ndim == 4 else w.reshape(w.shape[0], -1, 1, 1)
                elif name == 'CONV_2D':
                    wt = w.permute(0, 3, 1, 2)                             # OHWI -> OIHW
                else:
                    wt = w.permute(3, 0, 1, 2)                             # 1HWC -> C1HW
                kh, kw = wt.shape[2], wt.shape[3]
                if o['padding'] == 0:
                    x = _same_pad(x, kh, kw, o['stride_h'], o['stride_w'])
                y = F.conv2d(x, wt, b, stride=(o['stride_h'], o['stride_w']),
                             dilation=(o.get('dilation_h', 1), o.get('dilation_w', 1)), groups=groups)
                y = self._act(y, o['act'])
            elif name == 'ADD':
                y = self._act(get(ins[0]) + get(ins[1]), o['act'])
            elif name in ('AVERAGE_POOL_2D', 'MAX_POOL_2D'):
                x = get(ins[0])
                features = x.mean(dim=(2, 3))
                pool = F.avg_pool2d if name == 'AVERAGE_POOL_2D' else F.max_pool2d
                if o['padding'] == 0:
                    x = _same_pad(x, o['filter_h'], o['filter_w'], o['stride_h'], o['stride_w'])
                y = self._act(pool(x, (o['filter_h'], o['filter_w']), (o['stride_h'], o['stride_w'])), o['act'])
            elif name == 'MEAN':
                x = get(ins[0])
                features = x.mean(dim=(2, 3))
                y = features[:, :, None, None]
            elif name == 'RESHAPE':
                x = get(ins[0])
                y = x.reshape(x.shape[0], -1)
            elif name == 'SOFTMAX':
                y = torch.softmax(get(ins[0]) * o['beta'], dim=-1)
            elif name == 'FULLY_CONNECTED':
                x = get(ins[0]).reshape(get(ins[0]).shape[0], -1)
                y = self._act(F.linear(x, get(ins[1]), get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None), o['act'])
            elif name in ('RELU', 'RELU6'):
                y = self._act(get(ins[0]), name.lower())
            else:
                raise ValueError(f'operator {name} is not supported by this runner')
            vals[op['outputs'][0]] = self._quant(op['outputs'][0], y)
        return vals, features
