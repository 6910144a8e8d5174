"""Decoders and encoders for latent packs: the SD VAE's decoder and encoder and
TAESD's, from their published safetensors files (docs/pack-format.md, "Latent
packs").

Only safetensors files are read (plain tensors, no code); pickled `.pth` /
`.ckpt` files are refused. Each component keeps only its own tensors: the
decoder `decoder.*` and `post_quant_conv.*` of the VAE file, the encoder
`encoder.*` and `quant_conv.*` of the same file. The config is read from the
tensor shapes (the VAE's `norm_num_groups` cannot be, so a diffusers
`config.json` may be given), then every tensor is checked against the network
definitions of nets/ built with that config on the meta device.
"""
import json
import os
import re

VAE_SOURCE = {'url': 'https://huggingface.co/stabilityai/sd-vae-ft-mse', 'licence': 'MIT',
              'name': 'sd-vae-ft-mse (Stability AI)'}
TAESD_SOURCE = {'url': 'https://github.com/madebyollin/taesd', 'licence': 'MIT',
                'name': 'TAESD (Ollin Boer Bohan)'}
# EDM2's standardisation of SD latents (NVlabs/edm2 StabilityVAEEncoder).
EDM2_LATENT = {'raw_mean': [5.81, 3.25, 0.12, -2.15], 'raw_std': [4.17, 4.62, 3.71, 3.28],
               'final_mean': 0.0, 'final_std': 0.5, 'decoded_range': [0.0, 1.0]}
VAE_CONFIG_KEYS = ('block_out_channels', 'layers_per_block', 'latent_channels', 'norm_num_groups')


class DecoderError(Exception):
    """The file is not a decoder this converter knows."""


def _load(path):
    from safetensors.torch import load_file
    if not str(path).endswith('.safetensors'):
        raise DecoderError(f'{path}: give the .safetensors file (pickled .pth/.ckpt files run code '
                           'when loaded and are not read)')
    try:
        return load_file(str(path))
    except Exception as e:  # header or data errors of a damaged file
        raise DecoderError(f'{path}: not a readable safetensors file ({e})') from None


def _check(path, tensors, want):
    """tensors must hold every name of want with its shape (extras: an error)."""
    missing = [k for k in want if k not in tensors]
    if missing:
        raise DecoderError(f'{path}: missing tensors for the config: ' + ', '.join(missing[:6])
                           + (' ...' if len(missing) > 6 else ''))
    extra = [k for k in tensors if k not in want]
    if extra:
        raise DecoderError(f'{path}: tensors the config does not use: ' + ', '.join(extra[:6]))
    for k, shape in want.items():
        if tuple(tensors[k].shape) != shape:
            raise DecoderError(f'{path}: {k} has shape {list(tensors[k].shape)}, the config '
                               f'needs {list(shape)}')
        if not tensors[k].is_floating_point():
            raise DecoderError(f'{path}: {k} is {tensors[k].dtype}, not floating point')


def convert_vae(path, config_path=None):
    """-> (config, {tensor name: tensor}, source info) for an AutoencoderKL file."""
    import torch
    from .nets import vae as vae_ref
    all_t = _load(path)
    t = {k: v for k, v in all_t.items()
         if k.startswith('decoder.') or k.startswith('post_quant_conv.')}
    if 'decoder.conv_in.weight' not in t:
        raise DecoderError(f'{path}: no decoder.conv_in.weight: not a diffusers AutoencoderKL file')
    # Attention projections: linear [C, C] (diffusers) or 1x1 conv [C, C, 1, 1].
    t = {k: (v[:, :, 0, 0] if '.attentions.' in k and k.endswith('.weight') and v.ndim == 4 else v)
         for k, v in t.items()}
    ups = sorted({int(m.group(1)) for k in t for m in [re.match(r'decoder\.up_blocks\.(\d+)\.', k)] if m})
    if not ups or ups != list(range(len(ups))):
        raise DecoderError(f'{path}: decoder.up_blocks are missing or not numbered 0..n-1')
    n_res = len({k.split('.')[4] for k in t if k.startswith('decoder.up_blocks.0.resnets.')})
    widths = [int(t[f'decoder.up_blocks.{i}.resnets.0.conv1.weight'].shape[0])
              for i in reversed(ups)] if all(
        f'decoder.up_blocks.{i}.resnets.0.conv1.weight' in t for i in ups) else None
    if widths is None:
        raise DecoderError(f'{path}: an up block has no resnets.0.conv1.weight')
    cfg = {'block_out_channels': widths, 'layers_per_block': n_res - 1,
           'latent_channels': int(t['decoder.conv_in.weight'].shape[1]), 'norm_num_groups': 32}
    if config_path:
        with open(config_path) as f:
            given = json.load(f)
        cfg.update({k: given[k] for k in VAE_CONFIG_KEYS if k in given})
    bad = [c for c in cfg['block_out_channels'] if c % cfg['norm_num_groups']]
    if bad:
        raise DecoderError(f'{path}: widths {cfg["block_out_channels"]} are not multiples of '
                           f'norm_num_groups {cfg["norm_num_groups"]} (give the VAE\'s config.json '
                           'with --vae-config)')
    cfg['use_post_quant_conv'] = 'post_quant_conv.weight' in t
    mid_attn = any('.attentions.' in k for k in t)
    if not mid_attn:
        cfg['mid_block_add_attention'] = False
    with torch.device('meta'):
        net = vae_ref.SDVAEDecoder(**cfg)
    if any('.attentions.0.query.' in k for k in t):  # the older naming: keep the file's names
        want = {k: tuple(v.shape) for k, v in vae_ref.legacy_names(net.state_dict()).items()}
    else:
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    _check(path, t, want)
    info = {**VAE_SOURCE, 'file': os.path.basename(path), 'sha256': _sha256(path),
            'dropped': len(all_t) - len(t)}
    return cfg, t, info


def convert_vae_encoder(path, config_path=None):
    """-> (config, {tensor name: tensor}, source info): the encoder of an
    AutoencoderKL file (encoder.*, quant_conv.*), the file's names kept."""
    import torch
    from .nets import vae as vae_ref
    all_t = _load(path)
    t = {k: v for k, v in all_t.items()
         if k.startswith('encoder.') or k.startswith('quant_conv.')}
    if 'encoder.conv_in.weight' not in t:
        raise DecoderError(f'{path}: no encoder.conv_in.weight: the file holds no AutoencoderKL '
                           'encoder')
    t = {k: (v[:, :, 0, 0] if '.attentions.' in k and k.endswith('.weight') and v.ndim == 4 else v)
         for k, v in t.items()}
    downs = sorted({int(m.group(1)) for k in t
                    for m in [re.match(r'encoder\.down_blocks\.(\d+)\.', k)] if m})
    if not downs or downs != list(range(len(downs))):
        raise DecoderError(f'{path}: encoder.down_blocks are missing or not numbered 0..n-1')
    key = 'encoder.down_blocks.{}.resnets.0.conv1.weight'
    if not all(key.format(i) in t for i in downs):
        raise DecoderError(f'{path}: a down block has no resnets.0.conv1.weight')
    n_res = len({k.split('.')[4] for k in t if k.startswith('encoder.down_blocks.0.resnets.')})
    if 'encoder.conv_out.weight' not in t:
        raise DecoderError(f'{path}: no encoder.conv_out.weight')
    cfg = {'block_out_channels': [int(t[key.format(i)].shape[0]) for i in downs],
           'layers_per_block': n_res,
           'latent_channels': int(t['encoder.conv_out.weight'].shape[0]) // 2,
           'norm_num_groups': 32}
    if config_path:
        with open(config_path) as f:
            given = json.load(f)
        cfg.update({k: given[k] for k in VAE_CONFIG_KEYS if k in given})
    bad = [c for c in cfg['block_out_channels'] if c % cfg['norm_num_groups']]
    if bad:
        raise DecoderError(f'{path}: widths {cfg["block_out_channels"]} are not multiples of '
                           f'norm_num_groups {cfg["norm_num_groups"]} (give the VAE\'s config.json '
                           'with --vae-config)')
    cfg['use_quant_conv'] = 'quant_conv.weight' in t
    if not any('.attentions.' in k for k in t):
        cfg['mid_block_add_attention'] = False
    with torch.device('meta'):
        net = vae_ref.SDVAEEncoder(**cfg)
    if any('.attentions.0.query.' in k for k in t):
        want = {k: tuple(v.shape) for k, v in vae_ref.legacy_names(net.state_dict()).items()}
    else:
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    _check(path, t, want)
    info = {**VAE_SOURCE, 'file': os.path.basename(path), 'sha256': _sha256(path),
            'dropped': len(all_t) - len(t)}
    return cfg, t, info


def convert_taesd_encoder(path):
    """-> (config, tensors, source info) for taesd_encoder.safetensors (or diffusers'
    AutoencoderTiny file, whose encoder.layers.N keys are kept as they are)."""
    import torch
    from .nets import taesd as taesd_ref
    all_t = _load(path)
    if 'encoder.layers.0.weight' in all_t:
        t = {k: v for k, v in all_t.items() if k.startswith('encoder.layers.')}
        std = {k[len('encoder.layers.'):]: v for k, v in t.items()}
    elif '0.weight' in all_t:
        t = std = dict(all_t)
    else:
        raise DecoderError(f'{path}: neither a TAESD encoder ("0.weight") nor diffusers\' '
                           'AutoencoderTiny ("encoder.layers.0.weight")')
    # Stages start at the bias-free stride-2 convs; the last layer is the conv
    # to the latent (with a bias).
    stages, i = [0], 1
    while True:
        if f'{i}.conv.0.weight' in std:
            stages[-1] += 1
        elif f'{i}.weight' in std and f'{i}.bias' not in std:
            stages.append(0)
        elif f'{i}.weight' in std:
            break
        else:
            raise DecoderError(f'{path}: layer {i} is neither a block nor a conv')
        i += 1
    w = std['0.weight']
    cfg = {'latent_channels': int(std[f'{i}.weight'].shape[0]), 'channels': int(w.shape[0]),
           'num_blocks': stages}
    with torch.device('meta'):
        net = taesd_ref.TAESDEncoder(**cfg)
    _check(path, std, {k: tuple(v.shape) for k, v in net.state_dict().items()})
    info = {**TAESD_SOURCE, 'file': os.path.basename(path), 'sha256': _sha256(path),
            'dropped': len(all_t) - len(t)}
    return cfg, t, info


def convert_taesd(path):
    """-> (config, tensors, source info) for taesd_decoder.safetensors (or diffusers'
    AutoencoderTiny file, whose decoder.layers.N keys are kept as they are)."""
    import torch
    from .nets import taesd as taesd_ref
    all_t = _load(path)
    if 'decoder.layers.0.weight' in all_t:
        t = {k: v for k, v in all_t.items() if k.startswith('decoder.layers.')}
        std = {f'{int(k.split(".")[2]) + 1}.{k.split(".", 3)[3]}': v for k, v in t.items()}
    elif '1.weight' in all_t:
        t = std = dict(all_t)
    else:
        raise DecoderError(f'{path}: neither a TAESD decoder ("1.weight") nor diffusers\' '
                           'AutoencoderTiny ("decoder.layers.0.weight")')
    # Stages end at the bias-free upsampling convs; the last at the conv to RGB.
    blocks, stages, i = 0, [], 3
    while True:
        if f'{i}.conv.0.weight' in std:
            blocks, i = blocks + 1, i + 1
        elif f'{i + 1}.weight' in std and f'{i + 1}.bias' not in std:
            stages.append(blocks)
            blocks, i = 0, i + 2
        elif f'{i}.weight' in std:
            stages.append(blocks)
            break
        else:
            raise DecoderError(f'{path}: layer {i} is neither a block nor a conv')
    w = std['1.weight']
    cfg = {'latent_channels': int(w.shape[1]), 'channels': int(w.shape[0]), 'num_blocks': stages}
    with torch.device('meta'):
        net = taesd_ref.TAESDDecoder(**cfg)
    _check(path, std, {k: tuple(v.shape) for k, v in net.state_dict().items()})
    info = {**TAESD_SOURCE, 'file': os.path.basename(path), 'sha256': _sha256(path),
            'dropped': len(all_t) - len(t)}
    return cfg, t, info


def _sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
