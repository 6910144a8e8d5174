"""Reference TAESD decoder and encoder (docs/pack-format.md, "taesd-decoder",
"taesd-encoder").

Written from madebyollin/taesd's architecture: an nn.Sequential whose
`state_dict()` has the keys of the standalone `taesd_decoder.safetensors`:

    0 clamp 3 tanh(x / 3)    1 conv 3x3 latent -> C    2 ReLU
    then per stage: num_blocks[s] blocks; all but the last stage add a nearest
    2x upsampling and a 3x3 conv without bias; the last ends in a 3x3 conv to 3.
    block: relu(conv(relu(conv(relu(conv(x))))) + x)

Input: SD's scaled latents (raw * 0.18215); output: approximately [0, 1], where
the SD VAE decoder gives [-1, 1]. diffusers' AutoencoderTiny stores the same
layers as `decoder.layers.{i - 1}` (its Sequential has no clamp layer).

The encoder, `taesd_encoder.safetensors`, is an nn.Sequential too:

    0 conv 3x3 3 -> C    then per stage: (all but the first) a 3x3 stride-2
    conv without bias (padding 1), then num_blocks[s] blocks; a last 3x3 conv
    C -> latent_channels.

Input: pictures in [0, 1] (where the SD VAE encoder takes [-1, 1]); output:
SD's scaled latents (about 0.18215 * the VAE's mean). AutoencoderTiny stores
it as `encoder.layers.{i}` (same indices).
"""
import math

import torch
from torch import nn

SD_SCALE = 0.18215


class Clamp(nn.Module):
    def forward(self, x):
        return 3 * torch.tanh(x / 3)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


class TAESDDecoder(nn.Sequential):
    def __init__(self, latent_channels=4, channels=64, num_blocks=(3, 3, 3, 1), **_):
        layers = [Clamp(), nn.Conv2d(latent_channels, channels, 3, padding=1), nn.ReLU()]
        for s, n in enumerate(num_blocks):
            layers += [Block(channels) for _ in range(n)]
            if s < len(num_blocks) - 1:
                layers += [nn.Upsample(scale_factor=2, mode='nearest'),
                           nn.Conv2d(channels, channels, 3, padding=1, bias=False)]
            else:
                layers.append(nn.Conv2d(channels, 3, 3, padding=1))
        super().__init__(*layers)
        self.factor = 2 ** (len(num_blocks) - 1)


class TAESDEncoder(nn.Sequential):
    def __init__(self, latent_channels=4, channels=64, num_blocks=(1, 3, 3, 3), **_):
        layers = [nn.Conv2d(3, channels, 3, padding=1)]
        for s, n in enumerate(num_blocks):
            if s > 0:
                layers.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False))
            layers += [Block(channels) for _ in range(n)]
        layers.append(nn.Conv2d(channels, latent_channels, 3, padding=1))
        super().__init__(*layers)
        self.factor = 2 ** (len(num_blocks) - 1)


def diffusers_encoder_names(state_dict):
    """AutoencoderTiny's keys: 'encoder.layers.{i}.rest' for the standalone 'i.rest'."""
    return {f'encoder.layers.{k}': v for k, v in state_dict.items()}


def diffusers_names(state_dict):
    """AutoencoderTiny's keys: 'decoder.layers.{i-1}.rest' for the standalone 'i.rest'."""
    out = {}
    for k, v in state_dict.items():
        i, rest = k.split('.', 1)
        out[f'decoder.layers.{int(i) - 1}.{rest}'] = v
    return out


def randomize(net, seed, probe=None, mean=0.5, std=0.25):
    """He-scaled convs (the ReLU stack keeps its magnitude), non-zero biases;
    with `probe` (scaled latents) the last conv is set so the output is
    about mean +- std, like a real picture."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2 / p[0].numel()))
        if probe is not None:
            last = net[len(net) - 1]
            out = net(probe.to(last.weight.dtype))
            last.weight.mul_(std / float(out.std()))
            last.bias.add_(mean - float(net(probe.to(last.weight.dtype)).mean()))
    return net
