#!/usr/bin/env python3
"""Train and export the project's default pack `imagenette-64` in one run.

    python3 research/train/train.py --data .gpu/imagenette64.npz --out $OUT/pack
    python3 research/train/train.py --smoke --data .gpu/imagenette64.npz --out /tmp/smoke-pack

Three time-budgeted phases, then export (see research/train/README.md):

  main        EDM2 pixel UNet, 64x64, class-conditional (10 classes), label
              dropout, log-normal sigmas, EDM2 loss with the learned
              log-variance head, Adam + inverse-sqrt lr, EMA (exported).
  guide       the same recipe, a smaller net and a shorter budget (autoguidance).
  classifier  resnet-cnn with BatchNorm (folded at export), trained on clean
              images and on the main EMA's denoised estimates D(x + sigma n).

Written by the project from docs/pack-format.md, ../shared/docs/edm2.md and
../shared/docs/gfcg.md. The networks are tests/reference's modules, so the
state-dict keys are the pack tensor names.
"""
import argparse
import copy
import json
import math
import os
import platform
import random
import re
import time

T0 = time.time()

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import gfcg_ref  # noqa: E402
import prepare_data  # noqa: E402
import sample_modes  # noqa: E402
from classifier_ref import ResNetCNN  # noqa: E402
from gfcg_convert.nets.edm2 import Block, EDM2Precond, Fourier, MPConv, normalize  # noqa: E402

PACK_NAME = 'imagenette-64'
RES = 64
SIGMA_DATA = 0.5
# Pack class k = k-th wnid in sorted order (../shared/datasets/imagenette/README.md).
CLASSES = [
    {"imagenet": 0, "wnid": "n01440764", "name": "tench"},
    {"imagenet": 217, "wnid": "n02102040", "name": "English springer"},
    {"imagenet": 482, "wnid": "n02979186", "name": "cassette player"},
    {"imagenet": 491, "wnid": "n03000684", "name": "chain saw"},
    {"imagenet": 497, "wnid": "n03028079", "name": "church"},
    {"imagenet": 566, "wnid": "n03394916", "name": "French horn"},
    {"imagenet": 569, "wnid": "n03417042", "name": "garbage truck"},
    {"imagenet": 571, "wnid": "n03425413", "name": "gas pump"},
    {"imagenet": 574, "wnid": "n03445777", "name": "golf ball"},
    {"imagenet": 701, "wnid": "n03888257", "name": "parachute"},
]
NCLS = len(CLASSES)
# A fresh pack's defaults; a resumed one keeps its own (set by the evaluation, docs/eval/).
DEFAULTS = {"mode": "gfcg", "steps": 32, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0,
            "guidance": 1.0, "guidance_cfg": 2.0, "guidance_atg": 1.5, "s_max": 1.0,
            "temperature": 1.0, "sigma_lo": 0.0, "sigma_hi": 1000.0, "lagged": False}
LICENCE = ("CC-BY-NC-4.0 (the project's own weights; trained on ImageNet images via Imagenette, "
           "whose terms allow non-commercial research use), see README.md")
TITLE = "Imagenette 64x64: 10 ImageNet classes, the project's own EDM2 pixel model"
EVAL_SIGMAS = [0.5, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0]      # classifier accuracy on D(x; sigma)
LOSS_SIGMAS = [0.05, 0.3, 1.0, 3.0, 10.0]                 # denoiser validation loss

# Presets. Each net's config holds only pack-format `edm2-unet` keys.
PRESETS = {
    # One H100, ~10 minutes in all. main: 7.79M params = 14.85 MiB in fp16.
    'gpu': dict(
        main=dict(model_channels=64, channel_mult=[1, 1, 2, 2], num_blocks=2, attn_resolutions=[16, 8]),
        guide=dict(model_channels=32, channel_mult=[1, 1, 2, 2], num_blocks=2, attn_resolutions=[16, 8]),
        classifier=dict(widths=[32, 64, 128, 256], blocks=[1, 1, 1, 1]),
        batch=256, cls_batch=256, budget_main=370.0, budget_guide=100.0, budget_classifier=110.0,
        time_limit=585.0, reserve=30.0, lr=0.01, rampup_kimg=50.0, decay_kimg=150.0,
        cls_lr=2e-3, eval_n=None, grid_cols=6, grid_per_class=16, grid_steps=32, eval_batch=500),
    # A CPU-scale run (hours on a few cores): small nets, small batches.
    'cpu': dict(
        main=dict(model_channels=32, channel_mult=[1, 1, 2, 2], num_blocks=1, attn_resolutions=[16, 8]),
        guide=dict(model_channels=16, channel_mult=[1, 1, 2, 4], num_blocks=1, attn_resolutions=[8]),
        classifier=dict(widths=[16, 32, 64, 128], blocks=[1, 1, 1, 1]),
        batch=32, cls_batch=64, budget_main=3 * 3600.0, budget_guide=1800.0, budget_classifier=1800.0,
        time_limit=0.0, reserve=300.0, lr=0.01, rampup_kimg=5.0, decay_kimg=20.0,
        cls_lr=2e-3, eval_n=1000, grid_cols=4, grid_per_class=4, grid_steps=32, eval_batch=100),
    # Seconds on a CPU: checks the pipeline end to end, not quality.
    'smoke': dict(
        main=dict(model_channels=8, channel_mult=[1, 2, 4, 8], num_blocks=1, attn_resolutions=[8]),
        guide=dict(model_channels=4, channel_mult=[1, 2, 4, 16], num_blocks=1, attn_resolutions=[8]),
        classifier=dict(widths=[8, 16, 32, 64], blocks=[1, 1, 1, 1]),
        batch=16, cls_batch=32, budget_main=15.0, budget_guide=6.0, budget_classifier=6.0,
        time_limit=110.0, reserve=30.0, lr=0.01, rampup_kimg=0.2, decay_kimg=0.5,
        cls_lr=2e-3, eval_n=40, grid_cols=1, grid_per_class=1, grid_steps=4, eval_batch=40, threads=1,
        loss_sigmas=[0.3, 3.0]),
}


# ---------------------------------------------------------------- logging

class Logger:
    def __init__(self):
        self.file = None
        self.lines = []

    def open(self, path):
        self.file = open(path, 'w')
        for line in self.lines:
            self.file.write(line + '\n')
        self.file.flush()

    def __call__(self, msg):
        line = f'[{time.time() - T0:7.1f}s] {msg}'
        print(line, flush=True)
        self.lines.append(line)
        if self.file:
            self.file.write(line + '\n')
            self.file.flush()


log = Logger()


# ---------------------------------------------------------------- data

def to_net(x_u8):
    """uint8 NCHW -> float network space [-1, 1]."""
    return x_u8.float() / 127.5 - 1


class Batches:
    """Random batches without replacement within an epoch, on the device."""

    def __init__(self, x, y, batch, gen):
        self.x, self.y, self.batch, self.gen = x, y, batch, gen
        self.perm = torch.empty(0, dtype=torch.long, device=x.device)

    def __call__(self):
        if len(self.perm) < self.batch:
            self.perm = torch.cat([self.perm, torch.randperm(len(self.x), device=self.x.device,
                                                             generator=self.gen)])
        idx, self.perm = self.perm[:self.batch], self.perm[self.batch:]
        return to_net(self.x[idx]), self.y[idx]


def hflip(x, gen):
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def shift(x, gen, pad):
    """Per-image random translation by up to `pad` pixels (reflect padding)."""
    if pad <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode='reflect')
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    iy = (dy[:, None] + ar_h)[:, None, :, None].expand(n, c, h, w + 2 * pad)
    xp = xp.gather(2, iy)
    ix = (dx[:, None] + ar_w)[:, None, None, :].expand(n, c, h, w)
    return xp.gather(3, ix)


def onehot(y, n=NCLS):
    return F.one_hot(y, n).float()


# ---------------------------------------------------------------- denoiser training

def mpconv_weights(module):
    return [m.weight for m in module.modules() if isinstance(m, MPConv)]


@torch.no_grad()
def force_normalize(weights):
    """EDM2's forced weight normalisation: every row back to RMS 1 (norm sqrt(fan_in))."""
    for w in weights:
        w.copy_(normalize(w))


class Denoiser(nn.Module):
    """EDM2Precond + the training-only log-variance head and optional dropout.

    The wrapped `net` is kept in eval mode: its only training-mode behaviour is
    the forced weight normalisation, which this wrapper applies explicitly after
    every optimiser step (same effect, and nothing mutates inside the forward)."""

    def __init__(self, config, dropout=0.0, logvar_channels=128):
        super().__init__()
        self.net = EDM2Precond(**config).eval()
        self.logvar_fourier = Fourier(logvar_channels)
        self.logvar_linear = MPConv(logvar_channels, 1)
        self.dropout, self.dropout_on = dropout, False
        with torch.no_grad():  # fp16-exact Fourier buffers: the export is then lossless for them
            for b in self.net.emb_fourier.buffers():
                b.copy_(b.half().float())
        if dropout > 0:
            # EDM2 drops out the input of each block's second residual conv.
            for m in self.net.modules():
                if isinstance(m, Block):
                    m.conv_res1.register_forward_pre_hook(self._dropout_hook)

    def _dropout_hook(self, module, args):
        if self.dropout_on:
            return (F.dropout(args[0], self.dropout, training=True),) + tuple(args[1:])
        return None

    def loss(self, x0, labels, P_mean, P_std):
        n = x0.shape[0]
        sigma = (torch.randn(n, device=x0.device) * P_std + P_mean).exp()
        noisy = x0 + torch.randn_like(x0) * sigma[:, None, None, None]
        D = self.net(noisy, sigma, labels).float()
        logvar = self.logvar_linear(self.logvar_fourier(sigma.log() / 4)).float().reshape(-1, 1, 1, 1)
        w = ((sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2).reshape(-1, 1, 1, 1)
        wmse = w * (D - x0) ** 2
        loss = wmse / logvar.exp() + logvar
        # EDM2: sum over pixels, mean over the batch.
        return loss.sum((1, 2, 3)).mean(), wmse.mean().detach(), loss.mean().detach()


class EMA:
    """Exponential moving average with a half-life of `frac` x images seen so far."""

    def __init__(self, net, config, frac):
        self.module = EDM2Precond(**config).to(next(net.parameters()).device).eval()
        self.module.load_state_dict(net.state_dict())
        self.module.requires_grad_(False)
        self.frac = frac
        self.dst = list(self.module.parameters())
        self.src = list(net.parameters())

    @torch.no_grad()
    def update(self, nimg, batch):
        halflife = max(self.frac * nimg, 1e-8)
        beta = 0.5 ** (batch / halflife)
        torch._foreach_lerp_(self.dst, self.src, 1 - beta)
        return halflife


def lr_schedule(nimg, a):
    """EDM2: ref lr / sqrt(max(t / t_ref, 1)), times a linear ramp-up (t in images)."""
    lr = a.lr / math.sqrt(max(nimg / (a.decay_kimg * 1e3), 1))
    if a.rampup_kimg > 0:
        lr *= min(nimg / (a.rampup_kimg * 1e3), 1)
    return lr


def autocast(a):
    """bf16 autocast for the networks' forward passes (CUDA by default)."""
    return torch.autocast(a.device_type, dtype=torch.bfloat16, enabled=a.amp)


def nparams(module):
    return sum(p.numel() for p in module.state_dict().values())


def sync(dev):
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def train_denoiser(tag, config, budget, data, a, dev, seed, start=None, prior=0):
    """Train one denoiser for `budget` seconds. `start`: a state dict to begin from (a
    resumed pack's EMA weights) and `prior`: the images it has already seen, which the
    lr decay and the EMA half-life continue from."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    model = Denoiser(config, dropout=a.dropout).to(dev).eval()  # eval: see Denoiser
    if start is not None:
        model.net.load_state_dict(start)  # the log-variance head starts afresh
    weights = mpconv_weights(model)
    force_normalize(weights)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=a.lr, betas=(0.9, 0.99), eps=1e-8)
    ema = EMA(model.net, config, a.ema_frac)
    loss_fn = torch.compile(model.loss) if a.compile else model.loss
    batches = Batches(data['train_x'], data['train_y'], a.batch, gen)
    npar = nparams(model.net)
    log(f'[{tag}] config {json.dumps(config)}: {npar:,} parameters ({npar * 2 / 2**20:.2f} MiB fp16), '
        f'budget {budget:.0f} s, batch {a.batch}'
        + (f', resumed after {prior:,} images' if start is not None else ''))

    def lr_at(n):
        # A resumed run re-warms (fresh Adam moments) over its first resume_rampup_kimg.
        lr = lr_schedule(prior + n, a)
        if start is not None and a.resume_rampup_kimg > 0:
            lr *= min(n / (a.resume_rampup_kimg * 1e3), 1)
        return lr

    step = nimg = 0
    lr = 0.0
    t_start = time.time()
    deadline = t_start + budget
    t_log, n_log = t_start, 0
    acc = torch.zeros(3, device=dev)  # loss sum, wmse sum, count
    last = {}
    model.dropout_on = True
    while True:
        now = time.time()
        if now >= deadline:
            break
        lr = lr_at(nimg + a.batch / 2)
        for g in opt.param_groups:
            g['lr'] = lr
        x0, y = batches()
        x0 = hflip(x0, gen)
        labels = onehot(y)
        keep = (torch.rand(x0.shape[0], 1, device=dev, generator=gen) >= a.label_dropout).float()
        labels = labels * keep  # zero label = unconditional
        with autocast(a):
            loss, wmse, lmean = loss_fn(x0, labels, a.P_mean, a.P_std)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        force_normalize(weights)
        step += 1
        nimg += a.batch
        halflife = ema.update(prior + nimg, a.batch)
        acc += torch.stack([lmean, wmse, torch.ones((), device=dev)])
        if step % 10 == 0:
            sync(dev)  # keep the wall-clock check honest
        if time.time() - t_log >= a.log_every or time.time() >= deadline:
            sync(dev)
            t = time.time()
            s = acc.tolist()
            acc.zero_()
            ips = (nimg - n_log) / (t - t_log)
            last = dict(loss=s[0] / max(s[2], 1), wmse=s[1] / max(s[2], 1), img_per_s=ips)
            log(f'[{tag}] step {step} kimg {nimg / 1e3:.1f} img/s {ips:.0f} loss {last["loss"]:.4f} '
                f'wmse {last["wmse"]:.4f} lr {lr:.5f} ema-hl {halflife / 1e3:.1f}k '
                f'elapsed {t - t_start:.0f}s eta {max(deadline - t, 0):.0f}s')
            t_log, n_log = t, nimg
    sync(dev)
    model.dropout_on = False
    seconds = time.time() - t_start
    stats = dict(config=config, params=npar, steps=step, images_seen=nimg, seconds=round(seconds, 2),
                 img_per_s_mean=round(nimg / seconds, 1), final_lr=lr_at(nimg),
                 ema_halflife_images=round(a.ema_frac * (prior + nimg)), final_train=last,
                 images_seen_total=prior + nimg)
    log(f'[{tag}] done: {step} steps, {nimg:,} images in {seconds:.0f} s ({nimg / seconds:.0f} img/s)')
    if dev.type == 'cuda':
        stats['peak_memory_gib'] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return ema.module, model, stats


@torch.no_grad()
def denoiser_val(net, x_u8, y, a, dev, seed=1234):
    """Mean EDM-weighted MSE of D at fixed sigmas (true labels, fixed noise)."""
    out = {}
    gen = torch.Generator(device=dev).manual_seed(seed)
    for s in a.preset.get('loss_sigmas', LOSS_SIGMAS):
        tot = 0.0
        for i in range(0, len(x_u8), a.eval_batch):
            x0 = to_net(x_u8[i:i + a.eval_batch])
            sig = torch.full((len(x0),), s, device=dev)
            n = torch.randn(x0.shape, device=dev, generator=gen)
            with autocast(a):
                D = net(x0 + s * n, sig, onehot(y[i:i + a.eval_batch])).float()
            w = (s ** 2 + SIGMA_DATA ** 2) / (s * SIGMA_DATA) ** 2
            tot += (w * (D - x0) ** 2).mean((1, 2, 3)).sum().item()
        out[str(s)] = round(tot / len(x_u8), 5)
    return out


# ---------------------------------------------------------------- classifier

def train_classifier(main, budget, data, a, dev, seed):
    torch.manual_seed(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    cfg = classifier_config(a)
    clf = ResNetCNN(**cfg, batchnorm=True).to(dev).train()
    opt = torch.optim.AdamW(clf.parameters(), lr=a.cls_lr, betas=(0.9, 0.99),
                            weight_decay=a.cls_wd)
    batches = Batches(data['train_x'], data['train_y'], a.cls_batch, gen)
    npar = nparams(clf.fold_bn())
    log(f'[classifier] config {json.dumps(cfg)}: {npar:,} parameters after folding, budget {budget:.0f} s, '
        f'batch {a.cls_batch} ({a.cls_clean:.0%} clean, rest denoised by main EMA)')
    lo, hi = math.log(0.002), math.log(80.0)
    step = nimg = 0
    t_start = time.time()
    deadline = t_start + budget
    t_log, n_log = t_start, 0
    acc = torch.zeros(3, device=dev)  # loss sum, correct, count
    last = {}
    while True:
        now = time.time()
        if now >= deadline:
            break
        frac = (now - t_start) / budget
        warm = min(1.0, frac / 0.05)
        lr = a.cls_lr * warm * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g['lr'] = lr
        x0, y = batches()
        x0 = shift(hflip(x0, gen), gen, a.cls_shift)
        n = x0.shape[0]
        nc = int(round(n * a.cls_clean))
        nd = n - nc
        if nd > 0:
            xd = x0[nc:]
            sigma = torch.exp(lo + (hi - lo) * torch.rand(nd, device=dev, generator=gen))
            labels = onehot(y[nc:])
            labels[nd // 2:] = 0  # half of the denoised estimates without the label
            noisy = xd + sigma[:, None, None, None] * torch.randn(xd.shape, device=dev, generator=gen)
            with torch.no_grad(), autocast(a):
                den = main(noisy, sigma, labels).float()
            x_in = torch.cat([x0[:nc], den])
        else:
            x_in = x0
        with autocast(a):
            logits = clf(x_in).float()
        loss = F.cross_entropy(logits, y, label_smoothing=a.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        nimg += n
        acc += torch.stack([loss.detach() * n, (logits.argmax(1) == y).float().sum(),
                            torch.tensor(float(n), device=dev)])
        if step % 10 == 0:
            sync(dev)
        if time.time() - t_log >= a.log_every or time.time() >= deadline:
            sync(dev)
            t = time.time()
            s = acc.tolist()
            acc.zero_()
            ips = (nimg - n_log) / (t - t_log)
            last = dict(loss=s[0] / max(s[2], 1), acc=s[1] / max(s[2], 1), img_per_s=ips)
            log(f'[classifier] step {step} kimg {nimg / 1e3:.1f} img/s {ips:.0f} loss {last["loss"]:.4f} '
                f'train-acc {last["acc"]:.3f} lr {lr:.5f} elapsed {t - t_start:.0f}s '
                f'eta {max(deadline - t, 0):.0f}s')
            t_log, n_log = t, nimg
    sync(dev)
    seconds = time.time() - t_start
    clf.eval()
    stats = dict(config=cfg, params=npar, steps=step, images_seen=nimg, seconds=round(seconds, 2),
                 img_per_s_mean=round(nimg / seconds, 1), final_train=last)
    log(f'[classifier] done: {step} steps, {nimg:,} images in {seconds:.0f} s')
    return clf, stats


def classifier_config(a):
    return dict(in_channels=3, resolution=RES, widths=list(a.preset['classifier']['widths']),
                blocks=list(a.preset['classifier']['blocks']), num_classes=NCLS, label_space='pack',
                mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])


@torch.no_grad()
def classifier_eval(clf, main, x_u8, y, a, dev, seed=4321):
    """Top-1 accuracy on clean val images and on D_main(x + sigma n; sigma, label)."""
    def accuracy(make_input):
        correct = 0
        gen = torch.Generator(device=dev).manual_seed(seed)
        for i in range(0, len(x_u8), a.eval_batch):
            x0 = to_net(x_u8[i:i + a.eval_batch])
            yy = y[i:i + a.eval_batch]
            inp = make_input(x0, yy, gen)
            with autocast(a):
                correct += (clf(inp).float().argmax(1) == yy).sum().item()
        return round(correct / len(x_u8), 4)

    def denoised(s, cond):
        def make(x0, yy, gen):
            sig = torch.full((len(x0),), s, device=dev)
            labels = onehot(yy) if cond else torch.zeros(len(x0), NCLS, device=dev)
            n = torch.randn(x0.shape, device=dev, generator=gen)
            with autocast(a):
                return main(x0 + s * n, sig, labels).float()
        return make

    res = {'clean': accuracy(lambda x0, yy, gen: x0), 'denoised_true_label': {},
           'denoised_zero_label': {}}
    for s in EVAL_SIGMAS:
        res['denoised_true_label'][str(s)] = accuracy(denoised(s, True))
        res['denoised_zero_label'][str(s)] = accuracy(denoised(s, False))
    return res


# ---------------------------------------------------------------- export

def write_safetensors(module, path, expected_keys):
    sd = module.state_dict()
    assert list(sd) == list(expected_keys), f'{path}: unexpected tensor names'
    tensors = {}
    for k, v in sd.items():
        v = v.detach().float().cpu()
        assert v.abs().max().item() < 60000, f'{k} overflows fp16'
        tensors[k] = v.half().contiguous()
    save_file(tensors, path)
    size = os.path.getsize(path)
    assert size <= 15 * 2**20, f'{path} is {size} bytes (> 15 MiB)'
    return size


def write_manifest(out, components, source, defaults=None):
    comps = {}
    for name, (arch, config) in components.items():
        comps[name] = {"file": f'{name}.safetensors', "arch": arch, "config": config}
    manifest = {
        "format": "gfcg-pack", "format_version": 1, "name": PACK_NAME,
        "title": TITLE,
        "licence": LICENCE,
        "source": source,
        "kind": "pixel", "resolution": RES, "channels": 3,
        "classes": CLASSES,
        "components": comps,
        "defaults": defaults or DEFAULTS,
    }
    with open(os.path.join(out, 'pack.json'), 'w') as f:
        f.write(compact_json(manifest) + '\n')


def compact_json(obj):
    """Indented JSON with flat lists and class entries kept on one line."""
    text = json.dumps(obj, indent=2, default=str)
    flat = lambda m: re.sub(r'\s*\n\s*', ' ', m.group(0)).replace('[ ', '[').replace(' ]', ']') \
        .replace('{ ', '{').replace(' }', '}')
    text = re.sub(r'\[[^\[\]{}]*\]', flat, text)                # lists of scalars
    text = re.sub(r'\{[^\[\]{}]*"wnid"[^\[\]{}]*\}', flat, text)  # class entries
    return text


def unet_full_config(config):
    return dict(img_resolution=RES, img_channels=3, label_dim=NCLS, **config)


# ---------------------------------------------------------------- resuming

def load_resume(path):
    """A pack written by this script (pack.json, train-log.json, F16 tensors) -> what a
    resumed run needs: its configs, its EMA weights as fp32 state dicts, the images each
    denoiser has seen, its defaults. Only tensors are read (safetensors): no code."""
    with open(os.path.join(path, 'pack.json')) as f:
        manifest = json.load(f)
    log_path = os.path.join(path, 'train-log.json')
    if not os.path.exists(log_path):
        raise SystemExit(f'--resume {path}: no train-log.json, so the images already seen '
                         '(which the lr decay and EMA continue from) are unknown')
    with open(log_path) as f:
        prior_log = json.load(f)
    if [c['wnid'] for c in manifest['classes']] != [c['wnid'] for c in CLASSES]:
        raise SystemExit(f'--resume {path}: its classes are not imagenette-64\'s')
    out = dict(path=os.path.abspath(path), defaults=manifest.get('defaults'),
               source=manifest.get('source', ''), configs={}, weights={}, images={})
    for name in ('main', 'guide'):
        comp = manifest['components'][name]
        config = comp['config']
        keys = EDM2Precond(**config).state_dict().keys()
        sd = load_file(os.path.join(path, comp['file']))
        if set(sd) != set(keys):
            raise SystemExit(f'--resume {path}: {name} tensors do not match its config')
        out['configs'][name] = config
        out['weights'][name] = {k: v.float() for k, v in sd.items()}
        st = prior_log.get(name, {})
        out['images'][name] = int(st.get('images_seen_total', st.get('images_seen', 0)))
    ccfg = manifest['components']['classifier']['config']
    out['classifier'] = dict(widths=ccfg['widths'], blocks=ccfg['blocks'])
    return out


# ---------------------------------------------------------------- sampling

@torch.no_grad()
def sample_batch(pack, classes, seeds, mode, steps, w=1.0, s_max=1.0, temperature=1.0, dev=None):
    """Batched deterministic Heun in any guidance mode (research/eval/sample_modes.py, the
    evaluation's sampler), fp32, engine noise for the given seeds, no lag.
    Returns the final x [N,3,H,W] and None (kept for the log's mean_r field)."""
    b = sample_modes.Batched(pack, dev, amp=False)
    noise = torch.stack([gfcg_ref.noise(s, [3, RES, RES])[0] for s in seeds]).to(dev)
    labels = torch.as_tensor(classes, device=dev)
    x = sample_modes.sample_batch(b, labels, mode, w, s_max, False, steps, None,
                                  T=temperature, noise=noise)
    return x, None


def to_u8(x):
    return (127.5 * x + 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def make_grid(panels, cols, path):
    """panels: [(title, uint8 [NCLS * per_class, H, W, 3] class-major)] -> one PNG,
    one panel per mode side by side, a row per class, `cols` samples each."""
    head, gap, pad = 14, 8, 1
    cell = RES + pad
    pw = cols * cell
    img = Image.new('RGB', (len(panels) * (pw + gap) - gap, head + NCLS * cell), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for p, (title, u8, per_class) in enumerate(panels):
        x0 = p * (pw + gap)
        draw.text((x0 + 2, 1), title, fill=(0, 0, 0))
        for k in range(NCLS):
            for j in range(cols):
                img.paste(Image.fromarray(u8[k * per_class + j]), (x0 + j * cell, head + k * cell))
    img.save(path)


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    env_out = os.environ.get('OUT')
    ap.add_argument('--data', default=os.path.join(REPO, '.gpu', 'imagenette64.npz'))
    ap.add_argument('--out', default=os.path.join(env_out, 'pack') if env_out
                    else os.path.join(REPO, 'data', 'models', PACK_NAME))
    ap.add_argument('--report', default=None,
                    help='train.log, samples.png (default $OUT/report if OUT is set, '
                         'else <out>-report next to the pack directory)')
    ap.add_argument('--smoke', action='store_true', help='tiny nets and budgets (CPU, ~1-2 minutes)')
    ap.add_argument('--resume', default=None, metavar='PACK',
                    help='continue main and guide from this pack (its EMA weights, configs, images '
                         'seen and defaults); the classifier is trained afresh on the new main')
    ap.add_argument('--resume-rampup-kimg', type=float, default=10.0,
                    help='lr warm-up of a resumed run (its Adam moments start at zero)')
    ap.add_argument('--preset', choices=sorted(PRESETS), default=None,
                    help='default: smoke with --smoke, else gpu on CUDA, else cpu')
    ap.add_argument('--device', default=None, help='default: cuda if available (not with --smoke)')
    for name in ('main', 'guide', 'classifier'):
        ap.add_argument(f'--budget-{name}', type=float, default=None, help='seconds of training')
    ap.add_argument('--time-limit', type=float, default=None,
                    help='cap on the whole run in seconds (phases shrink in proportion; 0 = none)')
    ap.add_argument('--reserve', type=float, default=None,
                    help='seconds kept for the final evaluation, samples and export')
    ap.add_argument('--batch', type=int, default=None)
    ap.add_argument('--lr', type=float, default=None, help='reference learning rate')
    ap.add_argument('--rampup-kimg', type=float, default=None)
    ap.add_argument('--decay-kimg', type=float, default=None, help='inverse-sqrt decay starts here')
    ap.add_argument('--ema-frac', type=float, default=0.05, help='EMA half-life / images seen')
    ap.add_argument('--label-dropout', type=float, default=0.1)
    ap.add_argument('--dropout', type=float, default=0.0, help='EDM2 block dropout (main and guide)')
    ap.add_argument('--P-mean', type=float, default=-0.8)
    ap.add_argument('--P-std', type=float, default=1.6)
    ap.add_argument('--cls-batch', type=int, default=None)
    ap.add_argument('--cls-lr', type=float, default=None)
    ap.add_argument('--cls-wd', type=float, default=0.05)
    ap.add_argument('--cls-clean', type=float, default=0.5, help='fraction of clean images per batch')
    ap.add_argument('--cls-shift', type=int, default=4, help='random translation (pixels)')
    ap.add_argument('--label-smoothing', type=float, default=0.1)
    ap.add_argument('--grid-steps', type=int, default=None)
    ap.add_argument('--grid-per-class', type=int, default=None,
                    help='samples per class and mode for the sample statistics')
    ap.add_argument('--grid-cols', type=int, default=None, help='samples per class shown in samples.png')
    ap.add_argument('--atg-guidance', type=float, default=2.0, help='w of the atg panels')
    ap.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None,
                    help='bf16 autocast (default: on with CUDA)')
    ap.add_argument('--no-samples', action='store_true')
    ap.add_argument('--compile', action='store_true', help='torch.compile the training step (untested default off)')
    ap.add_argument('--threads', type=int, default=None,
                    help='CPU threads (smoke: 1, which is the fastest on a busy machine)')
    ap.add_argument('--log-every', type=float, default=15.0)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()

    if a.device is None:
        a.device = 'cuda' if torch.cuda.is_available() and not a.smoke else 'cpu'
    if a.preset is None:
        a.preset = 'smoke' if a.smoke else ('gpu' if a.device.startswith('cuda') else 'cpu')
    p = PRESETS[a.preset]
    a.preset_name, a.preset = a.preset, p
    a.eval_batch = p['eval_batch']
    for k in ('batch', 'cls_batch', 'time_limit', 'reserve', 'lr', 'rampup_kimg', 'decay_kimg',
              'cls_lr', 'grid_steps', 'grid_per_class', 'grid_cols'):
        if getattr(a, k) is None:
            setattr(a, k, p[k])
    a.budgets = {n: getattr(a, f'budget_{n}') if getattr(a, f'budget_{n}') is not None
                 else p[f'budget_{n}'] for n in ('main', 'guide', 'classifier')}
    a.grid_cols = min(a.grid_cols, a.grid_per_class)
    if a.report is None:
        a.report = (os.path.join(os.environ['OUT'], 'report') if os.environ.get('OUT')
                    else os.path.abspath(a.out).rstrip('/') + '-report')
    return a


def main():
    a = parse_args()
    resume = load_resume(a.resume) if a.resume else None  # a bad pack fails before any write
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.report, exist_ok=True)
    log.open(os.path.join(a.report, 'train.log'))
    dev = torch.device(a.device)
    threads = a.threads or a.preset.get('threads')
    if threads:
        torch.set_num_threads(threads)
    a.device_type = dev.type
    if a.amp is None:
        a.amp = dev.type == 'cuda'
    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        devname = torch.cuda.get_device_name(dev)
    else:
        devname = f'cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'
    log(f'torch {torch.__version__}, device {devname}, preset {a.preset_name}, '
        f'budgets {a.budgets}, time limit {a.time_limit or "none"} s, out {a.out}, report {a.report}')

    record = dict(pack=PACK_NAME, torch=torch.__version__, python=platform.python_version(),
                  device=devname, preset=a.preset_name, seed=a.seed,
                  args={k: v for k, v in vars(a).items() if k not in ('preset',)},
                  started=time.strftime('%Y-%m-%d %H:%M:%S %Z'))
    record['args']['preset_values'] = a.preset

    def save_record():
        record['elapsed_s'] = round(time.time() - T0, 1)
        # In the pack: it makes the pack resumable (images seen) and says how it was made.
        with open(os.path.join(a.out, 'train-log.json'), 'w') as f:
            f.write(compact_json(record) + '\n')

    # ---- data
    t = time.time()
    d = prepare_data.load(a.data)
    assert d['wnids'] == [c['wnid'] for c in CLASSES], d['wnids']
    data = {k: torch.from_numpy(d[k]).permute(0, 3, 1, 2).contiguous().to(dev)
            for k in ('train_x', 'val_x')}
    data.update({k: torch.from_numpy(d[k]).to(dev) for k in ('train_y', 'val_y')})
    record['data'] = dict(file=os.path.basename(a.data), encoding=d['encoding'],
                          train=len(d['train_y']), val=len(d['val_y']), load_s=round(time.time() - t, 1))
    log(f'data: {len(d["train_y"])} train, {len(d["val_y"])} val images ({d["encoding"]}) '
        f'in {time.time() - t:.1f} s')
    del d
    ev_n = a.preset['eval_n'] or len(data['val_y'])
    gen = torch.Generator().manual_seed(99)
    ev_idx = torch.randperm(len(data['val_y']), generator=gen)[:ev_n].to(dev)
    tr_idx = torch.randperm(len(data['train_y']), generator=gen)[:ev_n].to(dev)
    val_x, val_y = data['val_x'][ev_idx], data['val_y'][ev_idx]
    trs_x, trs_y = data['train_x'][tr_idx], data['train_y'][tr_idx]

    order = ['main', 'guide', 'classifier']

    def budget_for(name):
        b = a.budgets[name]
        if a.time_limit:
            rest = sum(a.budgets[n] for n in order[order.index(name):])
            avail = T0 + a.time_limit - a.reserve - time.time()
            f = min(1.0, max(avail, 0.0) / rest)
            if f < 1:
                log(f'time limit: {name} budget {b:.0f} s -> {b * f:.0f} s')
            b *= f
        return max(b, 1.0)

    components = {}
    defaults = None
    if resume:
        # The pack's own sizes, whatever the preset says (the classifier too, though it is
        # trained afresh: the pack stays what the README describes).
        a.preset = dict(a.preset, classifier=resume['classifier'])
        record['args']['preset_values'] = a.preset
        # Same networks, same defaults: only the evaluation (docs/eval/) changes those.
        defaults = resume['defaults']
        record['resumed_from'] = dict(pack=resume['path'], source=resume['source'],
                                      images_seen=resume['images'])
        log(f'resuming main and guide from {resume["path"]}: images already seen {resume["images"]}')
        source = (f'trained by research/train/train.py (preset {a.preset_name}, seed {a.seed}) on '
                  f'Imagenette (fast.ai subset of ImageNet, 10 classes), resumed '
                  f'{time.strftime("%Y-%m-%d")} on torch {torch.__version__}, {devname}, from: '
                  f'{resume["source"]}')
    else:
        source = (f'trained from scratch by research/train/train.py (preset {a.preset_name}, seed {a.seed}) '
                  f'on Imagenette (fast.ai subset of ImageNet, 10 classes), {time.strftime("%Y-%m-%d")}, '
                  f'torch {torch.__version__}, {devname}')
    sizes = {}

    def cfg_of(name):
        return resume['configs'][name] if resume else unet_full_config(a.preset[name])

    def start_of(name):
        return (resume['weights'][name], resume['images'][name]) if resume else (None, 0)

    # ---- main
    main_cfg = cfg_of('main')
    main_ema, main_raw, st = train_denoiser('main', main_cfg, budget_for('main'), data, a, dev, a.seed + 1,
                                            *start_of('main'))
    st['val_wmse_ema'] = denoiser_val(main_ema, val_x, val_y, a, dev)
    st['train_wmse_ema'] = denoiser_val(main_ema, trs_x, trs_y, a, dev)
    st['val_wmse_raw'] = denoiser_val(main_raw.net, val_x, val_y, a, dev)
    log(f'[main] EMA weighted MSE by sigma, val {st["val_wmse_ema"]}')
    log(f'[main] EMA weighted MSE by sigma, train subset {st["train_wmse_ema"]}')
    log(f'[main] raw weighted MSE by sigma, val {st["val_wmse_raw"]}')
    del main_raw
    record['main'] = st
    sizes['main'] = write_safetensors(main_ema, os.path.join(a.out, 'main.safetensors'),
                                      EDM2Precond(**main_cfg).state_dict().keys())
    components['main'] = ('edm2-unet', main_cfg)
    write_manifest(a.out, components, source, defaults)
    save_record()

    # ---- guide
    guide_cfg = cfg_of('guide')
    guide_ema, guide_raw, st = train_denoiser('guide', guide_cfg, budget_for('guide'), data, a, dev,
                                              a.seed + 2, *start_of('guide'))
    del guide_raw
    st['val_wmse_ema'] = denoiser_val(guide_ema, val_x, val_y, a, dev)
    log(f'[guide] EMA weighted MSE by sigma, val {st["val_wmse_ema"]}')
    record['guide'] = st
    sizes['guide'] = write_safetensors(guide_ema, os.path.join(a.out, 'guide.safetensors'),
                                       EDM2Precond(**guide_cfg).state_dict().keys())
    components['guide'] = ('edm2-unet', guide_cfg)
    write_manifest(a.out, components, source, defaults)
    save_record()

    # ---- classifier
    clf, st = train_classifier(main_ema, budget_for('classifier'), data, a, dev, a.seed + 3)
    t = time.time()
    st['val_accuracy'] = classifier_eval(clf, main_ema, val_x, val_y, a, dev)
    st['val_images'] = ev_n
    log(f'[classifier] val accuracy clean {st["val_accuracy"]["clean"]:.4f}')
    log(f'[classifier] val accuracy on D(x; sigma, true label) {st["val_accuracy"]["denoised_true_label"]}')
    log(f'[classifier] val accuracy on D(x; sigma, zero label) {st["val_accuracy"]["denoised_zero_label"]}')
    folded = clf.fold_bn().to(dev).eval()
    ccfg = classifier_config(a)
    sizes['classifier'] = write_safetensors(folded, os.path.join(a.out, 'classifier.safetensors'),
                                            ResNetCNN(**ccfg).state_dict().keys())
    components['classifier'] = ('resnet-cnn', ccfg)
    write_manifest(a.out, components, source, defaults)
    st['eval_s'] = round(time.time() - t, 1)
    record['classifier'] = st
    save_record()

    # ---- check the written pack with the reference loader
    t = time.time()
    pack = gfcg_ref.load_pack(a.out, torch.float32)
    for name in ('main', 'guide'):
        pack.nets[name].to(dev)
    pack.classifier.to(dev)
    chk = {}
    g = torch.Generator(device=dev).manual_seed(5)
    x0 = to_net(val_x[:32])
    sig = torch.exp(torch.randn(32, device=dev, generator=g) * 1.2 - 0.5)
    xn = x0 + sig[:, None, None, None] * torch.randn(x0.shape, device=dev, generator=g)
    lab = onehot(val_y[:32])
    with torch.no_grad():
        for name, ref in (('main', main_ema), ('guide', guide_ema)):
            diff = (pack.nets[name](xn, sig, lab) - ref(xn, sig, lab)).abs().max().item()
            chk[f'{name}_fp16_vs_fp32_max_abs_diff'] = diff
        lp, lr_ = pack.classifier(x0), clf(x0)
        chk['classifier_folded_fp16_vs_bn_max_abs_logit_diff'] = (lp - lr_).abs().max().item()
        chk['classifier_folded_fp16_top1_agreement'] = (lp.argmax(1) == lr_.argmax(1)).float().mean().item()
        correct = 0
        for i in range(0, len(val_x), a.eval_batch):
            correct += (pack.classifier(to_net(val_x[i:i + a.eval_batch])).argmax(1)
                        == val_y[i:i + a.eval_batch]).sum().item()
        chk['classifier_exported_clean_val_accuracy'] = round(correct / len(val_x), 4)
    chk['seconds'] = round(time.time() - t, 1)
    record['export_check'] = chk
    log(f'export check (reference load_pack, fp16 files): {chk}')

    # ---- samples
    if not a.no_samples:
        t = time.time()
        per = a.grid_per_class
        classes = [k for k in range(NCLS) for _ in range(per)]
        seeds = [j for _ in range(NCLS) for j in range(per)]
        modes = [('none', 'none', 1.0), (f'atg w={a.atg_guidance:g}', 'atg', a.atg_guidance),
                 ('gfcg s_max=1', 'gfcg', 1.0), (f'gfcg+atg w={a.atg_guidance:g}', 'gfcg+atg', a.atg_guidance)]
        panels, sstats = [], {}
        for title, mode, w in modes:
            xs, conf = [], []
            for i in range(0, len(classes), a.eval_batch):
                x, c = sample_batch(pack, classes[i:i + a.eval_batch], seeds[i:i + a.eval_batch],
                                    mode, a.grid_steps, w=w, dev=dev)
                xs.append(x)
                conf.append(c)
            x = torch.cat(xs)
            u8 = to_u8(x)
            q = torch.from_numpy(u8).to(dev).permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1
            with torch.no_grad():
                p = torch.softmax(pack.classifier(q), dim=1)
            yt = torch.as_tensor(classes, device=dev)
            sstats[title] = dict(
                mode=mode, guidance=w,
                top1_by_pack_classifier=round((p.argmax(1) == yt).float().mean().item(), 4),
                mean_p_target=round(p.gather(1, yt[:, None]).mean().item(), 4),
                mean_r=None if conf[0] is None else round(float(np.mean(conf)), 4))
            panels.append((title, u8, per))
        make_grid([(tt, u8, per) for tt, u8, per in panels], a.grid_cols,
                  os.path.join(a.report, 'samples.png'))
        record['samples'] = dict(steps=a.grid_steps, per_class=per, seeds=f'0..{per - 1} for every class',
                                 png='samples.png: one panel per mode, a row per pack class (0 at the top), '
                                     f'columns = seeds 0..{a.grid_cols - 1}',
                                 note='top1/p_target are measured by the pack\'s own (guidance) classifier: '
                                      'indicative only, not an independent precision',
                                 by_mode=sstats, seconds=round(time.time() - t, 1))
        for k, v in sstats.items():
            log(f'[samples] {k}: {v}')

    record['files'] = {f'{k}.safetensors': v for k, v in sizes.items()}
    record['pack_bytes'] = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    log(f'pack {a.out}: {record["pack_bytes"]:,} bytes ({record["pack_bytes"] / 2**20:.2f} MiB); '
        f'files {record["files"]}')
    log(f'total {time.time() - T0:.0f} s')
    save_record()


if __name__ == '__main__':
    main()
