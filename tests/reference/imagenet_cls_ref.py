"""The ImageNet classifier architectures of docs/pack-format.md, in PyTorch.

`MobileNetV2` ("mobilenet-v2"): batch norm folded (every conv has a bias),
state_dict names are the pack tensor names (stem, blocks.{i}.expand /
depthwise / project, head, classifier); padding "same" (TensorFlow) or
"torch" (symmetric).

`ResNet50` ("resnet-50"): torchvision's layout and state-dict names (conv1,
bn1, layer{1..4}.{i}.conv{1,2,3} / bn{1,2,3} / downsample.{0,1}, fc), with
real BatchNorm2d layers; run it in eval mode.

`prepare` is the input handling every pack classifier shares.  Written from
the document, not from torchvision or TensorFlow code.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# (expansion t, channels c, repeats n, stride s) of MobileNetV2 1.0.
MOBILENET_V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def prepare(x, resolution, mean, std):
    """Network-space image ([-1, 1]) -> normalised classifier input."""
    v = ((x + 1) / 2).clamp(0, 1)
    if v.shape[-2:] != (resolution, resolution):
        v = F.interpolate(v, size=(resolution, resolution), mode='bilinear',
                          align_corners=False, antialias=True)
    mean = torch.tensor(mean, dtype=v.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=v.dtype).view(1, -1, 1, 1)
    return (v - mean) / std


def same_pad(x, k, stride):
    """TensorFlow SAME: total padding max((ceil(n/s) - 1) s + k - n, 0), the
    odd pixel after (bottom/right)."""
    pads = []
    for n in (x.shape[3], x.shape[2]):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class InvertedResidual(nn.Module):
    def __init__(self, cin, t, cout, stride):
        super().__init__()
        hidden = cin * t
        self.stride, self.residual = stride, stride == 1 and cin == cout
        self.expand = nn.Conv2d(cin, hidden, 1) if t != 1 else None
        self.depthwise = nn.Conv2d(hidden, hidden, 3, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)

    def forward(self, x, conv3):
        h = x if self.expand is None else self.expand(x).clamp(0, 6)
        h = conv3(self.depthwise, h, self.stride).clamp(0, 6)
        h = self.project(h)
        return x + h if self.residual else h


class MobileNetV2(nn.Module):
    def __init__(self, num_outputs=1001, padding='same', resolution=224,
                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        assert padding in ('same', 'torch')
        self.padding, self.resolution, self.mean, self.std = padding, resolution, mean, std
        self.stem = nn.Conv2d(3, 32, 3)
        blocks, cin = [], 32
        for t, c, n, s in MOBILENET_V2_STAGES:
            for r in range(n):
                blocks.append(InvertedResidual(cin, t, c, s if r == 0 else 1))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1280, 1)
        self.classifier = nn.Linear(1280, num_outputs)

    def conv3(self, conv, x, stride):
        if self.padding == 'same':
            return F.conv2d(same_pad(x, 3, stride), conv.weight, conv.bias, stride,
                            groups=conv.groups)
        return F.conv2d(x, conv.weight, conv.bias, stride, 1, groups=conv.groups)

    def features(self, v):
        h = self.conv3(self.stem, v, 2).clamp(0, 6)
        for b in self.blocks:
            h = b(h, self.conv3)
        return self.head(h).clamp(0, 6).mean(dim=(2, 3))

    def forward(self, x):
        """Raw outputs (all of them, background included) of a network-space batch."""
        return self.classifier(self.features(prepare(x, self.resolution, self.mean, self.std)))


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)   # v1.5: stride here
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, num_classes=1000, resolution=224, mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.resolution, self.mean, self.std = resolution, mean, std
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for s, (n, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
            layer = []
            for i in range(n):
                layer.append(Bottleneck(cin, width, 2 if s > 0 and i == 0 else 1))
                cin = width * 4
            setattr(self, f'layer{s + 1}', nn.Sequential(*layer))
        self.fc = nn.Linear(cin, num_classes)

    def features(self, v):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(v))), 3, 2, 1)
        for s in range(1, 5):
            h = getattr(self, f'layer{s}')(h)
        return h.mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(prepare(x, self.resolution, self.mean, self.std)))
