"""Reference Stable Diffusion VAE decoder and encoder (docs/pack-format.md,
"sd-vae-decoder", "sd-vae-encoder").

Written from the architecture of diffusers' AutoencoderKL, with module names
chosen so that `state_dict()` has the keys of its diffusers-format safetensors
file (`post_quant_conv.*`, `decoder.*`; `encoder.*`, `quant_conv.*`). Decoder:

    z -> post_quant_conv (1x1) -> conv_in (3x3, to the last width)
      -> mid: resnet, attention (one head over all pixels), resnet
      -> up blocks, deepest first: layers_per_block + 1 resnets, then (all but
         the last) nearest 2x and a 3x3 conv
      -> GroupNorm, SiLU, conv_out (3x3, to 3 channels)

Encoder:

    x -> conv_in (3x3, to the first width)
      -> down blocks: layers_per_block resnets, then (all but the last) zero
         padding of one row and column at the bottom and right and a 3x3
         stride-2 conv without padding
      -> mid: resnet, attention, resnet
      -> GroupNorm, SiLU, conv_out (3x3, to 2 latent_channels: mean, log-variance)
      -> quant_conv (1x1); the latent is the mean (the first latent_channels)

A resnet is `x' = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))))))`, the
shortcut a 1x1 conv when the width changes. Every GroupNorm has eps 1e-6.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6
SD_VAE_CONFIG = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2,
                     latent_channels=4, norm_num_groups=32)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.conv_shortcut is None else self.conv_shortcut(x)) + h


class Attention(nn.Module):
    """diffusers' Attention as the VAE mid block uses it (newer key names)."""

    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=EPS)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)   # [n, hw, c]
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        y = self.to_out[0](att @ v).transpose(1, 2).reshape(n, c, h, w)
        return x + y


class MidBlock(nn.Module):
    def __init__(self, c, groups, attention=True):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(c, c, groups), ResnetBlock(c, c, groups)])
        self.attentions = nn.ModuleList([Attention(c, groups)] if attention else [])

    def forward(self, x):
        x = self.resnets[0](x)
        for a in self.attentions:
            x = a(x)
        return self.resnets[1](x)


class Upsampler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class UpBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, upsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout, groups)
                                      for i in range(n)])
        self.upsamplers = nn.ModuleList([Upsampler(cout)] if upsample else [])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for u in self.upsamplers:
            x = u(x)
        return x


class Decoder(nn.Module):
    def __init__(self, block_out_channels, layers_per_block, latent_channels, norm_num_groups,
                 mid_block_add_attention=True):
        super().__init__()
        ch, g = list(block_out_channels), norm_num_groups
        self.conv_in = nn.Conv2d(latent_channels, ch[-1], 3, padding=1)
        self.mid_block = MidBlock(ch[-1], g, mid_block_add_attention)
        rev = ch[::-1]
        self.up_blocks = nn.ModuleList([
            UpBlock(rev[max(i - 1, 0)], rev[i], layers_per_block + 1, g, i < len(ch) - 1)
            for i in range(len(ch))])
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=EPS)
        self.conv_out = nn.Conv2d(ch[0], 3, 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class SDVAEDecoder(nn.Module):
    """Raw SD latents [N, 4, h, w] -> the VAE decoder's output [N, 3, 8h, 8w]."""

    def __init__(self, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                 latent_channels=4, norm_num_groups=32, use_post_quant_conv=True,
                 mid_block_add_attention=True, **_):
        super().__init__()
        self.factor = 2 ** (len(block_out_channels) - 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1) \
            if use_post_quant_conv else None
        self.decoder = Decoder(block_out_channels, layers_per_block, latent_channels,
                               norm_num_groups, mid_block_add_attention)

    def forward(self, z):
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)


class Downsampler(nn.Module):
    """diffusers' Downsample2D of the VAE encoder: asymmetric zero padding
    (left 0, right 1, top 0, bottom 1), then a 3x3 conv at stride 2."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class DownBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout, groups)
                                      for i in range(n)])
        self.downsamplers = nn.ModuleList([Downsampler(cout)] if downsample else [])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        for d in self.downsamplers:
            x = d(x)
        return x


class Encoder(nn.Module):
    def __init__(self, block_out_channels, layers_per_block, latent_channels, norm_num_groups,
                 mid_block_add_attention=True):
        super().__init__()
        ch, g = list(block_out_channels), norm_num_groups
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList([
            DownBlock(ch[max(i - 1, 0)], ch[i], layers_per_block, g, i < len(ch) - 1)
            for i in range(len(ch))])
        self.mid_block = MidBlock(ch[-1], g, mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], 2 * latent_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class SDVAEEncoder(nn.Module):
    """Pictures [N, 3, H, W] in the VAE's input units (EDM2 feeds [0, 1]) ->
    the raw SD latent, the mean of the posterior [N, 4, H/8, W/8]."""

    def __init__(self, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                 latent_channels=4, norm_num_groups=32, use_quant_conv=True,
                 mid_block_add_attention=True, **_):
        super().__init__()
        self.factor = 2 ** (len(block_out_channels) - 1)
        self.latent_channels = latent_channels
        self.encoder = Encoder(block_out_channels, layers_per_block, latent_channels,
                               norm_num_groups, mid_block_add_attention)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1) \
            if use_quant_conv else None

    def moments(self, x):
        m = self.encoder(x)
        return m if self.quant_conv is None else self.quant_conv(m)

    def forward(self, x):
        return self.moments(x)[:, :self.latent_channels]


LEGACY = {'to_q': 'query', 'to_k': 'key', 'to_v': 'value', 'to_out.0': 'proj_attn'}


def legacy_names(state_dict):
    """The older diffusers naming of the attention (sd-vae-ft-mse's file):
    query/key/value/proj_attn instead of to_q/to_k/to_v/to_out.0."""
    out = {}
    for k, v in state_dict.items():
        for new, old in LEGACY.items():
            k = k.replace(f'.attentions.0.{new}.', f'.attentions.0.{old}.')
        out[k] = v
    return out


def randomize(net, seed, out_std=0.25, probe=None):
    """Random weights an engine cannot get right by accident: GroupNorm affines
    away from (1, 0), non-zero biases, convs at a variance-preserving scale.
    With `probe` (a latent batch), conv_out is rescaled so the output has the
    given std around 0.5, i.e. mostly inside the [0, 1] range EDM2 reads."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if '.norm' in name or 'group_norm' in name or 'conv_norm_out' in name:
                base = 1.0 if name.endswith('weight') else 0.0
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        if probe is not None:
            out = net(probe.to(next(net.parameters()).dtype))
            net.decoder.conv_out.weight.mul_(out_std / float(out.std()))
            net.decoder.conv_out.bias.add_(0.5 - float(net(probe.to(out.dtype)).mean()))
    return net


def randomize_encoder(net, seed, probe=None, mean=None, std=None):
    """randomize()'s weights for an SDVAEEncoder; with `probe` (pictures in
    its input units) the last layer is set so each latent channel c has about
    mean[c] +- std[c] (default: EDM2's statistics of sd-vae-ft-mse latents)."""
    mean = mean or [5.81, 3.25, 0.12, -2.15]
    std = std or [4.17, 4.62, 3.71, 3.28]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if '.norm' in name or 'group_norm' in name or 'conv_norm_out' in name:
                base = 1.0 if name.endswith('weight') else 0.0
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
        if probe is not None:
            last = net.quant_conv if net.quant_conv is not None else net.encoder.conv_out
            lc = net.latent_channels
            out = net(probe.to(last.weight.dtype))
            for c in range(lc):
                last.weight[c].mul_(std[c] / float(out[:, c].std()))
            out = net(probe.to(last.weight.dtype))
            for c in range(lc):
                last.bias[c].add_(mean[c] - float(out[:, c].mean()))
    return net
