"""Write tiny random test packs:  python3 tests/reference/make_packs.py OUTDIR

Weights are random and deliberately awkward for an engine: rows of very
different norms (some tiny, so the eps of the weight normalisation matters),
non-zero gains (so the label and embedding paths count), random Fourier
buffers, and a classifier scaled so its pack-class softmax is neither
saturated nor uniform.
"""
import json
import math
import os
import sys

if __name__ == '__main__':  # tiny nets: one thread is the fastest (set before torch loads)
    os.environ.update(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from classifier_ref import ResNetCNN  # noqa: E402
from gfcg_convert.nets.edm2 import EDM2Precond  # noqa: E402

CLASSES = [
    {"imagenet": 0, "wnid": "n01440764", "name": "tench"},
    {"imagenet": 217, "wnid": "n02102040", "name": "English springer"},
    {"imagenet": 482, "wnid": "n02979186", "name": "cassette player"},
    {"imagenet": 491, "wnid": "n03000684", "name": "chain saw"},
]
DEFAULTS = {"mode": "gfcg", "steps": 8, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
            "guidance": 1.0, "s_max": 1.0, "temperature": 1.0,
            "sigma_lo": 0.0, "sigma_hi": 1000.0, "lagged": False}


def unet_config(**kw):
    return {**dict(img_resolution=16, img_channels=3, label_dim=4, model_channels=32,
                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8]), **kw}


def randomize_unet(net, g):
    """Random raw weights with per-row scales spread over 0.003 .. 3."""
    with torch.no_grad():
        for name, p in net.state_dict().items():
            if name.endswith('freqs'):
                p.copy_(2 * math.pi * torch.randn(p.shape, generator=g))
            elif name.endswith('phases'):
                p.copy_(2 * math.pi * torch.rand(p.shape, generator=g))
            elif p.ndim == 0:  # out_gain, emb_gain
                p.fill_(0.5 + torch.rand([], generator=g).item())
            else:
                rows = p.shape[0]
                scale = torch.exp(torch.empty(rows).uniform_(math.log(0.05), math.log(3), generator=g))
                scale[torch.rand(rows, generator=g) < 0.1] = 0.003
                p.copy_(torch.randn(p.shape, generator=g) * scale.view(-1, *[1] * (p.ndim - 1)))
    return net


def make_unet(seed, **config):
    g = torch.Generator().manual_seed(seed)
    return config, randomize_unet(EDM2Precond(**config), g).eval()


def make_relative(seed, base, amount=0.3, **config):
    """A network like `base` (e.g. a guide: an earlier snapshot of the same run),
    so that guidance differences stay image-sized: shared tensors are base's plus
    `amount` relative noise, gains vary by +-20%, Fourier buffers are shared,
    tensors base lacks are random."""
    config, net = make_unet(seed, **config)
    g = torch.Generator().manual_seed(seed + 1000)
    src = base.state_dict()
    with torch.no_grad():
        for name, p in net.state_dict().items():
            if name not in src:
                continue
            v = src[name]
            if name.startswith('emb_fourier'):
                p.copy_(v)
            elif p.ndim == 0:
                p.copy_(v * (0.8 + 0.4 * torch.rand([], generator=g)))
            else:
                rms = v.flatten(1).pow(2).mean(1).sqrt().view(-1, *[1] * (v.ndim - 1))
                p.copy_(v + amount * rms * torch.randn(v.shape, generator=g))
    return config, net


def make_classifier(seed, config, classes, main):
    """He-initialised ResNet whose output layer is rescaled so that, on images
    the main network actually predicts, the largest pack-class probability has
    a median of about 0.55: neither saturated nor uniform."""
    g = torch.Generator().manual_seed(seed)
    net = ResNetCNN(**config).eval()
    with torch.no_grad():
        for name, p in net.state_dict().items():
            if name.endswith('.weight') and p.ndim == 4:
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2 / p[0].numel()))
            elif name.endswith('.bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:  # fc.weight
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        # Calibration inputs: D_main(x; sigma, class) along plausible noise levels.
        main = main.eval()
        c, r, n = main.img_channels, main.img_resolution, main.label_dim
        xs = []
        for i in range(24):
            sigma = torch.tensor([[80.0, 10.0, 2.0, 0.5, 0.1, 0.02][i % 6]])
            x = sigma.view(1, 1, 1, 1) * torch.randn(1, c, r, r, generator=g)
            xs.append(main(x, sigma.view(1), torch.eye(n)[i % n:i % n + 1]))
        logits = net(torch.cat(xs))
        if config['label_space'] == 'imagenet':
            logits = logits[:, [cl['imagenet'] for cl in classes]]
        lo, hi = 1e-3, 1e3  # bisect the logit scale k (logits are linear in k)
        for _ in range(60):
            k = math.sqrt(lo * hi)
            pmax = torch.softmax(k * logits, dim=1).max(1).values.median().item()
            lo, hi = (k, hi) if pmax < 0.55 else (lo, k)
        net.fc.weight.mul_(k)
        net.fc.bias.mul_(k)
    return net


def write_pack(outdir, name, meta, components, dtype=torch.float32, extra=None):
    """components: {name: (arch, config, module)}; extra: {name: {tensor: value}}."""
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    comps = {}
    for cname, (arch, config, module) in components.items():
        tensors = {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}
        tensors.update((extra or {}).get(cname, {}))
        save_file(tensors, os.path.join(d, f'{cname}.safetensors'))
        comps[cname] = {"file": f'{cname}.safetensors', "arch": arch, "config": config}
    manifest = {"format": "gfcg-pack", "format_version": 1, "name": name,
                "licence": "CC0-1.0",
                "source": "random weights written by tests/reference/make_packs.py", **meta,
                "components": comps}
    with open(os.path.join(d, 'pack.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
    return d


def tiny_pixel_components(inet):
    main = make_unet(1, **unet_config())
    guide = make_relative(2, main[1], **unet_config())
    uncond = make_relative(3, main[1], **unet_config(label_dim=0))
    if inet:
        ccfg = dict(in_channels=3, resolution=12, widths=[8, 16], blocks=[1, 1], num_classes=1000,
                    label_space="imagenet", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    else:
        ccfg = dict(in_channels=3, resolution=16, widths=[8, 16], blocks=[1, 1], num_classes=4,
                    label_space="pack", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    cls = make_classifier(5 if inet else 4, ccfg, CLASSES, main[1])
    return {"main": ("edm2-unet",) + main, "guide": ("edm2-unet",) + guide,
            "uncond": ("edm2-unet",) + uncond, "classifier": ("resnet-cnn", ccfg, cls)}


def tiny_latent_full(outdir):
    """A latent pack with every component: 8x8x4 latents, guide, uncond, a
    pack-space classifier and a narrow TAESD decoder (factor 8: 64-px
    pictures), for sampling and parity in every mode."""
    from gfcg_convert.nets.taesd import SD_SCALE, TAESDDecoder, randomize
    cfg = dict(img_resolution=8, img_channels=4, label_dim=4, model_channels=32,
               channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])
    main = make_unet(41, **cfg)
    guide = make_relative(42, main[1], **cfg)
    uncond = make_relative(43, main[1], **dict(cfg, label_dim=0))
    tcfg = dict(latent_channels=4, channels=16, num_blocks=[1, 1, 1, 1])
    mean = torch.tensor([5.81, 3.25, 0.12, -2.15]).view(1, 4, 1, 1)  # EDM2's latent space
    std = torch.tensor([4.17, 4.62, 3.71, 3.28]).view(1, 4, 1, 1)
    g = torch.Generator().manual_seed(45)
    probe = SD_SCALE * (mean + std * torch.randn(2, 4, 8, 8, generator=g))
    with torch.no_grad():
        taesd = randomize(TAESDDecoder(**tcfg).eval(), 45, probe=probe, mean=0.75, std=0.12)

    class Pictures(torch.nn.Module):
        """The main network's predictions as the engine's pictures (for calibration)."""
        img_channels, img_resolution, label_dim = 4, 8, 4

        def forward(self, x, sigma, y):
            raw = main[1](x, sigma, y) * std / 0.5 + mean
            return 2 * (2 * taesd(SD_SCALE * raw) - 1).clamp(0, 1) - 1

    ccfg = dict(in_channels=3, resolution=16, widths=[8, 16], blocks=[1, 1], num_classes=4,
                label_space="pack", mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    cls = make_classifier(44, ccfg, CLASSES, Pictures())
    write_pack(outdir, "tiny-latent-full",
               {"title": "Tiny random latent pack with every component (tests only)",
                "kind": "latent", "resolution": 64, "channels": 4, "classes": CLASSES,
                "defaults": DEFAULTS},
               {"main": ("edm2-unet",) + main, "guide": ("edm2-unet",) + guide,
                "uncond": ("edm2-unet",) + uncond, "classifier": ("resnet-cnn", ccfg, cls),
                "decoder": ("taesd-decoder", tcfg, taesd)})


def main(outdir):
    pixel_meta = lambda title: {"title": title, "kind": "pixel", "resolution": 16, "channels": 3,
                                "classes": CLASSES, "defaults": DEFAULTS}
    comps = tiny_pixel_components(inet=False)
    # Unused tensors an engine must ignore (as in NVIDIA checkpoints).
    extra = {"main": {"logvar_fourier.freqs": torch.randn(32), "logvar_linear.weight": torch.randn(1, 32)}}
    write_pack(outdir, "tiny-pixel", pixel_meta("Tiny random pixel pack (tests only)"), comps, extra=extra)
    write_pack(outdir, "tiny-pixel-f16", pixel_meta("tiny-pixel stored as F16 (tests only)"),
               comps, dtype=torch.float16)
    write_pack(outdir, "tiny-pixel-bf16", pixel_meta("tiny-pixel stored as BF16 (tests only)"),
               {"main": comps["main"]}, dtype=torch.bfloat16)
    write_pack(outdir, "tiny-pixel-inet",
               pixel_meta("Tiny pixel pack with an ImageNet-space classifier (tests only)"),
               tiny_pixel_components(inet=True))

    latent = make_unet(6, img_resolution=8, img_channels=4, label_dim=3, model_channels=32,
                       channel_mult=[1, 2], num_blocks=2, attn_resolutions=[4], channel_mult_emb=3)
    write_pack(outdir, "tiny-latent",
               {"title": "Tiny random latent pack (tests only)", "kind": "latent", "resolution": 64,
                "channels": 4, "classes": CLASSES[:3], "defaults": DEFAULTS},
               {"main": ("edm2-unet",) + latent})
    tiny_latent_full(outdir)

    # Odd sizes (20 -> 10 -> 5, classifier 13 -> 7 -> 4), three levels, several
    # heads of a non-default width, every balance and sigma_data off default,
    # a clip_act that actually clips, main-only (CFG falls back to the zero label),
    # and non-built-in sampling defaults in pack.json.
    odd = make_unet(7, img_resolution=20, img_channels=3, label_dim=3, model_channels=16,
                    channel_mult=[1, 2, 3], num_blocks=1, attn_resolutions=[10, 5],
                    channel_mult_noise=2, label_balance=0.4, concat_balance=0.6,
                    res_balance=0.25, attn_balance=0.35, channels_per_head=16,
                    clip_act=2.5, sigma_data=0.6)
    ocfg = dict(in_channels=3, resolution=13, widths=[8, 12, 16], blocks=[1, 2, 1], num_classes=3,
                label_space="pack", mean=[0.45, 0.5, 0.55], std=[0.5, 0.45, 0.6])
    write_pack(outdir, "tiny-odd",
               {"title": "Tiny odd-sized pixel pack (tests only)", "kind": "pixel", "resolution": 20,
                "channels": 3, "classes": CLASSES[1:],
                "defaults": {"mode": "gfcg+cfg", "steps": 6, "sigma_min": 0.01, "sigma_max": 40.0,
                             "rho": 5.0, "guidance": 1.4, "s_max": 0.8, "temperature": 1.3,
                             "sigma_lo": 0.05, "sigma_hi": 30.0}},
               {"main": ("edm2-unet",) + odd,
                "classifier": ("resnet-cnn", ocfg, make_classifier(8, ocfg, CLASSES[1:], odd[1]))})


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__.splitlines()[0])
    main(sys.argv[1])
