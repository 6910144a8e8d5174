"""Reference for latent packs: from the network's latent to a picture
(docs/pack-format.md, "Latent packs").

    raw   = x * raw_std / final_std + raw_mean - final_mean * raw_std / final_std
    v     = sd-vae-decoder(raw)                   (SD VAE units)
          = 2 * taesd-decoder(latent_scale * raw) - 1
    pixel = clamp((v - black) / (white - black), 0, 1),  [black, white] = decoded_range
    image = 2 * pixel - 1

and back, for the encoders (the exact inverse, without a clamp):

    v     = black + (image + 1) / 2 * (white - black)    (EDM2: the VAE is fed [0, 1])
    raw   = sd-vae-encoder(v)                             (the posterior's mean)
          = taesd-encoder((v + 1) / 2) / latent_scale     (TAESD takes [0, 1] for the VAE's [-1, 1])
    x     = (raw - shift) / scale
"""
import os

import torch
from safetensors.torch import load_file

from gfcg_convert.nets.taesd import SD_SCALE, TAESDDecoder, TAESDEncoder
from gfcg_convert.nets.vae import LEGACY, SDVAEDecoder, SDVAEEncoder

EDM2_LATENT = dict(raw_mean=[5.81, 3.25, 0.12, -2.15], raw_std=[4.17, 4.62, 3.71, 3.28],
                   final_mean=0.0, final_std=0.5, decoded_range=[0.0, 1.0])
ARCHS = {'sd-vae-decoder': SDVAEDecoder, 'taesd-decoder': TAESDDecoder,
         'sd-vae-encoder': SDVAEEncoder, 'taesd-encoder': TAESDEncoder}


def latent_space(meta):
    """(scale [C], shift [C], black, white) of pack.json's 'latent' (EDM2's by default)."""
    ls = {**EDM2_LATENT, **meta.get('latent', {})}
    std = torch.tensor(ls['raw_std'], dtype=torch.float64)
    mean = torch.tensor(ls['raw_mean'], dtype=torch.float64)
    scale = std / ls['final_std']
    return scale, mean - ls['final_mean'] * scale, ls['decoded_range'][0], ls['decoded_range'][1]


class LatentDecoder(torch.nn.Module):
    """One decoder component: network latents -> (picture in [-1, 1], network output)."""

    def __init__(self, arch, config, meta):
        super().__init__()
        self.arch = arch
        self.net = ARCHS[arch](**config)
        default = 1.0 if arch == 'sd-vae-decoder' else SD_SCALE
        self.latent_scale = float(config.get('latent_scale', default))
        self.out_scale, self.out_shift = (1.0, 0.0) if arch == 'sd-vae-decoder' else (2.0, -1.0)
        self.scale, self.shift, self.black, self.white = latent_space(meta)

    def forward(self, x):
        view = (1, -1, 1, 1)
        raw = x * self.scale.to(x.dtype).view(view) + self.shift.to(x.dtype).view(view)
        decoded = self.net(self.latent_scale * raw)
        v = self.out_scale * decoded + self.out_shift
        pixel = ((v - self.black) / (self.white - self.black)).clamp(0, 1)
        return 2 * pixel - 1, decoded


class LatentEncoder(torch.nn.Module):
    """One encoder component: pictures in [-1, 1] -> (network latents, network output)."""

    def __init__(self, arch, config, meta):
        super().__init__()
        self.arch = arch
        self.net = ARCHS[arch](**config)
        default = 1.0 if arch == 'sd-vae-encoder' else SD_SCALE
        self.latent_scale = float(config.get('latent_scale', default))
        self.in_scale, self.in_shift = (1.0, 0.0) if arch == 'sd-vae-encoder' else (0.5, 0.5)
        self.scale, self.shift, self.black, self.white = latent_space(meta)

    def forward(self, image):
        view = (1, -1, 1, 1)
        v = self.black + (image + 1) / 2 * (self.white - self.black)
        out = self.net(self.in_scale * v + self.in_shift)
        raw = out / self.latent_scale
        x = (raw - self.shift.to(out.dtype).view(view)) / self.scale.to(out.dtype).view(view)
        return x, out


def pack_tensor_names(arch, tensors):
    """The file's names -> the reference modules' names (either naming of each arch)."""
    if arch in ('sd-vae-decoder', 'sd-vae-encoder'):
        out = {}
        for k, v in tensors.items():
            for new, old in LEGACY.items():
                k = k.replace(f'.attentions.0.{old}.', f'.attentions.0.{new}.')
            out[k] = v
        return out
    if arch == 'taesd-encoder':
        if any(k.startswith('encoder.layers.') for k in tensors):
            return {k[len('encoder.layers.'):]: v for k, v in tensors.items()
                    if k.startswith('encoder.layers.')}
        return tensors
    if any(k.startswith('decoder.layers.') for k in tensors):
        return {f'{int(k.split(".")[2]) + 1}.{k.split(".", 3)[3]}': v
                for k, v in tensors.items() if k.startswith('decoder.layers.')}
    return tensors


def load_decoder(pack_dir, meta, comp, dtype=torch.float64):
    m = LatentDecoder(comp['arch'], comp['config'], meta)
    tensors = pack_tensor_names(comp['arch'], load_file(os.path.join(pack_dir, comp['file'])))
    want = m.net.state_dict()
    missing = set(want) - set(tensors)
    assert not missing, f'{comp["file"]}: missing {sorted(missing)[:5]}'
    m.net.load_state_dict({k: tensors[k].to(torch.float32) for k in want})
    return m.to(dtype).eval().requires_grad_(False)


def load_encoder(pack_dir, meta, comp, dtype=torch.float64):
    m = LatentEncoder(comp['arch'], comp['config'], meta)
    tensors = pack_tensor_names(comp['arch'], load_file(os.path.join(pack_dir, comp['file'])))
    want = m.net.state_dict()
    missing = set(want) - set(tensors)
    assert not missing, f'{comp["file"]}: missing {sorted(missing)[:5]}'
    m.net.load_state_dict({k: tensors[k].to(torch.float32) for k in want})
    return m.to(dtype).eval().requires_grad_(False)
