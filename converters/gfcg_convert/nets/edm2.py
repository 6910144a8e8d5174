"""EDM2 denoiser (UNet + preconditioning) as a plain PyTorch reference.

Written from docs/pack-format.md and ../shared/docs/edm2.md, not from NVIDIA's
code. The module's state_dict keys are exactly the pack tensor names
(`enc.16x16_conv.weight`, `dec.8x8_in0.attn_qkv.weight`, `out_gain`, ...), so a
pack file loads with `load_state_dict` and a trained module saves as a pack.

Stored weights are the raw trained tensors; the magnitude-preserving weight
normalisation is applied in every forward pass (that is what the engine does at
load time). Works in float32 and float64 (`.double()`).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-4


# ---------------------------------------------------------------- primitives

def normalize(x, dim=None, eps=EPS):
    """x / (eps + RMS over `dim`); dim None = every dimension but the first."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    n = x[0].numel() if isinstance(dim, list) else x.shape[dim]
    return x / (eps + norm / math.sqrt(n))


def mp_silu(x):
    # 0.596 = std of silu(N(0,1)): keeps unit variance.
    return F.silu(x) / 0.596


def mp_sum(a, b, t=0.5):
    return ((1 - t) * a + t * b) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a, b, t=0.5, dim=1):
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    return torch.cat([a * (c * (1 - t) / math.sqrt(na)),
                      b * (c * t / math.sqrt(nb))], dim=dim)


class MPConv(nn.Module):
    """Bias-free conv (kernel k x k) or linear (kernel None) with weight norm."""

    def __init__(self, cin, cout, kernel=None):
        super().__init__()
        shape = [cout, cin] + ([kernel, kernel] if kernel else [])
        self.weight = nn.Parameter(torch.randn(shape))

    def forward(self, x, gain=1.0):
        w = self.weight
        if self.training:
            # EDM2's "forced" weight normalisation: keep the stored rows at
            # norm sqrt(fan_in) while training, so the effective learning rate
            # does not decay. Inference never changes the weights.
            with torch.no_grad():
                w.copy_(normalize(w))
        fan_in = w[0].numel()
        # w_o = gain * W_o / (sqrt(fan_in) * eps + ||W_o||)
        w = normalize(w) * (gain / math.sqrt(fan_in))
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)


class Fourier(nn.Module):
    """sqrt(2) cos(freqs x + phases); freqs/phases are stored, never regenerated."""

    def __init__(self, n):
        super().__init__()
        self.register_buffer('freqs', 2 * math.pi * torch.randn(n))
        self.register_buffer('phases', 2 * math.pi * torch.rand(n))

    def forward(self, x):
        return math.sqrt(2) * torch.cos(torch.outer(x, self.freqs) + self.phases)


def resample(x, mode):
    if mode == 'down':
        return F.avg_pool2d(x, 2)
    if mode == 'up':
        return F.interpolate(x, scale_factor=2, mode='nearest')
    return x


# ---------------------------------------------------------------- block

class Block(nn.Module):
    def __init__(self, cin, cout, cemb, flavor, resample_mode=None, attention=False,
                 channels_per_head=64, res_balance=0.3, attn_balance=0.3, clip_act=256):
        super().__init__()
        self.cout, self.flavor, self.resample_mode = cout, flavor, resample_mode
        self.res_balance, self.attn_balance, self.clip_act = res_balance, attn_balance, clip_act
        # As in EDM2, a block narrower than one head gets no attention at all
        # (and no attention tensors).
        self.heads = cout // channels_per_head if attention else 0
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(cout if flavor == 'enc' else cin, cout, 3)
        self.emb_linear = MPConv(cemb, cout)
        self.conv_res1 = MPConv(cout, cout, 3)
        self.conv_skip = MPConv(cin, cout, 1) if cin != cout else None
        if self.heads:
            self.attn_qkv = MPConv(cout, 3 * cout, 1)
            self.attn_proj = MPConv(cout, cout, 1)

    def forward(self, x, emb):
        x = resample(x, self.resample_mode)
        if self.flavor == 'enc':
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)  # pixel norm
        y = self.conv_res0(mp_silu(x))
        c = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = self.conv_res1(mp_silu(y * c[:, :, None, None]))
        if self.flavor == 'dec' and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, self.res_balance)
        if self.heads:
            n, ch, h, w = x.shape
            # qkv channel index = head*3*d + c*3 + s, s in (q, k, v)
            qkv = self.attn_qkv(x).reshape(n, self.heads, ch // self.heads, 3, h * w)
            q, k, v = normalize(qkv, dim=2).unbind(3)           # [n, heads, d, hw]
            a = torch.einsum('nhcq,nhck->nhqk', q, k / math.sqrt(q.shape[2])).softmax(dim=3)
            y = torch.einsum('nhqk,nhck->nhcq', a, v).reshape(n, ch, h, w)
            x = mp_sum(x, self.attn_proj(y), self.attn_balance)
        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x


# ---------------------------------------------------------------- UNet + precond

class EDM2Precond(nn.Module):
    """D(x; sigma, labels). Constructor keys = the pack's `edm2-unet` config keys."""

    def __init__(self, img_resolution, img_channels, label_dim, model_channels,
                 channel_mult, num_blocks, attn_resolutions, channel_mult_noise=None,
                 channel_mult_emb=None, label_balance=0.5, concat_balance=0.5,
                 res_balance=0.3, attn_balance=0.3, channels_per_head=64,
                 clip_act=256, sigma_data=0.5):
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.label_balance, self.concat_balance, self.sigma_data = label_balance, concat_balance, sigma_data
        cblock = [model_channels * m for m in channel_mult]
        cnoise = model_channels * channel_mult_noise if channel_mult_noise is not None else cblock[0]
        cemb = model_channels * channel_mult_emb if channel_mult_emb is not None else max(cblock)
        bk = dict(channels_per_head=channels_per_head, res_balance=res_balance,
                  attn_balance=attn_balance, clip_act=clip_act)

        self.emb_fourier = Fourier(cnoise)
        self.emb_noise = MPConv(cnoise, cemb)
        self.emb_label = MPConv(label_dim, cemb) if label_dim else None
        self.out_gain = nn.Parameter(torch.zeros([]))

        self.enc = nn.ModuleDict()
        cout = img_channels + 1  # + constant-ones channel
        for level, ch in enumerate(cblock):
            r = img_resolution >> level
            if level == 0:
                self.enc[f'{r}x{r}_conv'] = MPConv(cout, ch, 3)
                cout = ch
            else:
                self.enc[f'{r}x{r}_down'] = Block(cout, cout, cemb, 'enc', 'down', **bk)
            for i in range(num_blocks):
                self.enc[f'{r}x{r}_block{i}'] = Block(cout, ch, cemb, 'enc',
                                                      attention=r in attn_resolutions, **bk)
                cout = ch
        skips = [m.weight.shape[0] if isinstance(m, MPConv) else m.cout for m in self.enc.values()]

        self.dec = nn.ModuleDict()
        for level, ch in reversed(list(enumerate(cblock))):
            r = img_resolution >> level
            if level == len(cblock) - 1:
                self.dec[f'{r}x{r}_in0'] = Block(cout, cout, cemb, 'dec', attention=True, **bk)
                self.dec[f'{r}x{r}_in1'] = Block(cout, cout, cemb, 'dec', **bk)
            else:
                self.dec[f'{r}x{r}_up'] = Block(cout, cout, cemb, 'dec', 'up', **bk)
            for i in range(num_blocks + 1):
                self.dec[f'{r}x{r}_block{i}'] = Block(cout + skips.pop(), ch, cemb, 'dec',
                                                      attention=r in attn_resolutions, **bk)
                cout = ch
        self.out_conv = MPConv(cout, img_channels, 3)

    def unet(self, x, c_noise, labels):
        emb = self.emb_noise(self.emb_fourier(c_noise))
        if self.emb_label is not None:
            emb = mp_sum(emb, self.emb_label(labels * math.sqrt(self.label_dim)), self.label_balance)
        emb = mp_silu(emb)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, block in self.enc.items():
            x = block(x) if name.endswith('_conv') else block(x, emb)
            skips.append(x)
        for name, block in self.dec.items():
            if '_block' in name:
                x = mp_cat(x, skips.pop(), self.concat_balance)
            x = block(x, emb)
        return self.out_conv(x, gain=self.out_gain)

    def forward(self, x, sigma, labels=None):
        sigma = sigma.to(x.dtype).reshape(-1)
        if self.label_dim and labels is None:
            labels = torch.zeros(x.shape[0], self.label_dim, dtype=x.dtype, device=x.device)
        if labels is not None:
            labels = labels.to(x.dtype)
        s = sigma.reshape(-1, 1, 1, 1)
        sd = self.sigma_data
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip * x + c_out * self.unet(c_in * x, c_noise, labels)
