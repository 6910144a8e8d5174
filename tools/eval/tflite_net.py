"""Run a classifier converted by tools/convert/tflite_to_safetensors.py in PyTorch.

    net = TFLiteNet('mobilenet.safetensors')
    probs, features = net(images_uint8_nhwc)       # [N, 1001], [N, 1280]

Float arithmetic with the dequantised weights; each operator's output is
rounded onto its tensor's quantisation grid (scale, zero point, uint8 range)
as the quantised interpreter does, so the results follow the uint8 model
closely.  `features` is the input of the last operator that averages over
space (the pooled embedding used for Frechet distances).
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
    def __init__(self, path, fake_quant=True):
        super().__init__()
        with safe_open(path, 'pt') as f:
            self.graph = json.loads(f.metadata()['graph'])
            self.consts = {int(k[1:]): f.get_tensor(k) for k in f.keys()}
        self.fake_quant = fake_quant
        self.tinfo = self.graph['tensors']
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
        t = self.tinfo[self.graph['inputs'][0]]
        x = images.float()
        if t['dtype'] == 'uint8':
            x = (x - t['zero_point'][0]) * t['scale'][0]
        else:
            x = x / 127.5 - 1.0
        vals = {self.graph['inputs'][0]: x.permute(0, 3, 1, 2)}   # NCHW internally
        features = None
        for op in self.graph['ops']:
            name, o, ins = op['op'], op['options'], op['inputs']
            get = lambda j: vals[j] if j in vals else self.consts[j]  # noqa: E731
            if name in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
                x, w = get(ins[0]), get(ins[1])
                b = get(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                if name == 'CONV_2D':
                    wt, groups = w.permute(0, 3, 1, 2), 1                  # OHWI -> OIHW
                else:
                    wt, groups = w.permute(3, 0, 1, 2), x.shape[1]         # 1HWC -> C1HW
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
        out = vals[self.graph['outputs'][0]]
        return out.reshape(out.shape[0], -1), features
