"""The pack's `resnet-cnn` guidance classifier (docs/pack-format.md).

Inference form: every conv has a bias (batch norm folded in at export).
Training form: `ResNetCNN(..., batchnorm=True)` puts a BatchNorm2d after every
conv (bias-free convs); `fold_bn()` returns the equivalent inference module,
whose state_dict has exactly the pack tensor names.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _bn(on, c):
    return nn.BatchNorm2d(c) if on else None


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride, batchnorm):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=not batchnorm)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=not batchnorm)
        self.bn1, self.bn2 = _bn(batchnorm, cout), _bn(batchnorm, cout)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Conv2d(cin, cout, 1, stride, 0, bias=not batchnorm)
            self.skip_bn = _bn(batchnorm, cout)

    @staticmethod
    def _cbn(conv, bn, x):
        x = conv(x)
        return bn(x) if bn is not None else x

    def forward(self, h):
        t = F.relu(self._cbn(self.conv1, self.bn1, h))
        t = self._cbn(self.conv2, self.bn2, t)
        k = h if self.skip is None else self._cbn(self.skip, self.skip_bn, h)
        return F.relu(t + k)


class ResNetCNN(nn.Module):
    def __init__(self, in_channels, resolution, widths, blocks, num_classes,
                 label_space='pack', mean=0.5, std=0.5, batchnorm=False):
        super().__init__()
        self.config = dict(in_channels=in_channels, resolution=resolution, widths=list(widths),
                           blocks=list(blocks), num_classes=num_classes,
                           label_space=label_space, mean=mean, std=std)
        self.resolution, self.label_space = resolution, label_space
        per_channel = lambda v: v if isinstance(v, (list, tuple)) else [v] * in_channels
        # Plain attributes, not buffers: they are config, not pack tensors.
        self.mean, self.std = per_channel(mean), per_channel(std)
        self.batchnorm = batchnorm
        # The stem maps to the first stage's width.
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batchnorm)
        self.stem_bn = _bn(batchnorm, widths[0])
        self.stages = nn.ModuleList()
        cin = widths[0]
        for s, (cout, nb) in enumerate(zip(widths, blocks)):
            stage = nn.ModuleList()
            for b in range(nb):
                stage.append(ResBlock(cin, cout, 2 if s > 0 and b == 0 else 1, batchnorm))
                cin = cout
            self.stages.append(stage)
        self.fc = nn.Linear(cin, num_classes)

    def prepare(self, x):
        """Network-space image ([-1, 1]) -> normalised classifier input."""
        v = ((x + 1) / 2).clamp(0, 1)
        if v.shape[-2:] != (self.resolution, self.resolution):
            v = F.interpolate(v, size=(self.resolution, self.resolution), mode='bilinear',
                              align_corners=False, antialias=True)
        mean = torch.tensor(self.mean, dtype=v.dtype, device=v.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=v.dtype, device=v.device).view(1, -1, 1, 1)
        return (v - mean) / std

    def features(self, v):
        h = self.stem(v)
        h = F.relu(self.stem_bn(h) if self.stem_bn is not None else h)
        for stage in self.stages:
            for block in stage:
                h = block(h)
        return h.mean(dim=(2, 3))

    def forward(self, x):
        """Raw logits [N, num_classes] of a network-space image batch."""
        return self.fc(self.features(self.prepare(x)))

    @torch.no_grad()
    def fold_bn(self):
        """Inference copy with batch norm folded into conv weights and biases."""
        out = ResNetCNN(**self.config, batchnorm=False).to(self.fc.weight.dtype)
        if not self.batchnorm:
            out.load_state_dict(self.state_dict())
            return out

        def fold(conv, bn, dst):
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.bias)
            dst.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            dst.bias.copy_((bias - bn.running_mean) * scale + bn.bias)

        fold(self.stem, self.stem_bn, out.stem)
        for st_src, st_dst in zip(self.stages, out.stages):
            for b_src, b_dst in zip(st_src, st_dst):
                fold(b_src.conv1, b_src.bn1, b_dst.conv1)
                fold(b_src.conv2, b_src.bn2, b_dst.conv2)
                if b_src.skip is not None:
                    fold(b_src.skip, b_src.skip_bn, b_dst.skip)
        out.fc.load_state_dict(self.fc.state_dict())
        return out
