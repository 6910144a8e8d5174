"""Reference for the engine's noise, sampler and guidance (docs/pack-format.md).

    pack = load_pack('packs/tiny-pixel', torch.float64)
    x, trace = sample(pack, class_index=1, mode='gfcg', seed=3, steps=8)

Options left as None take the pack's `defaults`, then the built-in defaults.
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import load_file

from classifier_ref import ResNetCNN
from gfcg_convert.nets.edm2 import EDM2Precond

BUILTIN_DEFAULTS = dict(mode='gfcg', steps=32, sigma_min=0.002, sigma_max=80.0, rho=7.0,
                        guidance=1.0, s_max=1.0, temperature=1.0,
                        sigma_lo=0.0, sigma_hi=1000.0, lagged=False, gfcg_view='full',
                        classify_every=1)
MODES = ('none', 'cfg', 'atg', 'gfcg', 'gfcg+cfg', 'gfcg+atg', 'gfcg+atg-add')

# ---------------------------------------------------------------- noise

MASK64 = (1 << 64) - 1
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(seed):
    """Pure-Python splitmix64 stream (the spec, literally); used to check `uniforms`."""
    s = seed & MASK64
    while True:
        s = (s + GOLDEN) & MASK64
        z = s
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        yield z ^ (z >> 31)


def uniforms(seed, n, start=0):
    """n uniforms in (0, 1) of the stream after its first `start`, vectorised:
    draw k (1-based) has s = seed + k*GOLDEN."""
    u64 = np.uint64
    with np.errstate(over='ignore'):
        s = u64(seed & MASK64) + np.arange(start + 1, start + n + 1, dtype=u64) * u64(GOLDEN)
        z = (s ^ (s >> u64(30))) * u64(MIX1)
        z = (z ^ (z >> u64(27))) * u64(MIX2)
        z = z ^ (z >> u64(31))
    return ((z >> u64(11)).astype(np.float64) + 0.5) * 2.0 ** -53


def normals(seed, n, block=0):
    """n standard normals (float32) by Box-Muller on pairs (u1, u2); block b
    is the b-th run of n normals of the stream (block 0 first), each taking
    2 ceil(n/2) uniforms."""
    pairs = (n + 1) // 2
    u = uniforms(seed, 2 * pairs, start=block * 2 * pairs)
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    out = np.empty(2 * pairs)
    out[0::2] = r * np.cos(2 * np.pi * u2)
    out[1::2] = r * np.sin(2 * np.pi * u2)
    return out[:n].astype(np.float32)   # odd n: the last pair's n1 is dropped


def noise(seed, shape, count=1, block=0):
    """[count, *shape] float32 tensor; image j uses seed + j (its stream's block `block`)."""
    n = int(np.prod(shape))
    return torch.from_numpy(np.stack([normals(seed + j, n, block).reshape(shape)
                                      for j in range(count)]))


def first_step(strength, steps):
    """With strength s only the last k = ceil(s N - 1e-9) of the N steps run
    (the tolerance absorbs binary rounding); returns N - k."""
    k = math.ceil(strength * steps - 1e-9)
    return steps - min(max(k, 0), steps)


def sigmas(steps, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    """EDM sigma schedule in double precision, with the trailing sigma_N = 0."""
    if steps == 1:  # i/(N-1) is undefined; a single step starts at sigma_max
        return [float(sigma_max), 0.0]
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + i / (steps - 1) * (b - a)) ** rho for i in range(steps)] + [0.0]


# ---------------------------------------------------------------- packs

class Pack:
    def __init__(self, path, meta, nets, classifier, decoders=None, encoders=None):
        self.path, self.meta, self.nets, self.classifier = path, meta, nets, classifier
        self.decoders = decoders or {}  # latent packs: 'decoder', 'preview' (latent_ref)
        self.encoders = encoders or {}  # latent packs: 'encoder', 'preview-encoder'
        self.name, self.kind = meta['name'], meta['kind']
        self.resolution, self.channels, self.classes = meta['resolution'], meta['channels'], meta['classes']
        self.defaults = {**BUILTIN_DEFAULTS, **meta.get('defaults', {})}

    @property
    def net_shape(self):
        cfg = self.nets['main'].img_channels, self.nets['main'].img_resolution
        return [cfg[0], cfg[1], cfg[1]]


def load_pack(path, dtype=torch.float64):
    with open(os.path.join(path, 'pack.json')) as f:
        meta = json.load(f)
    assert meta['format'] == 'gfcg-pack' and meta['format_version'] == 1
    nets, classifier, decoders, encoders = {}, None, {}, {}
    for name, comp in meta['components'].items():
        if name in ('decoder', 'preview'):
            from latent_ref import load_decoder
            decoders[name] = load_decoder(path, meta, comp, dtype)
            continue
        if name in ('encoder', 'preview-encoder'):
            from latent_ref import load_encoder
            encoders[name] = load_encoder(path, meta, comp, dtype)
            continue
        if comp['arch'] == 'edm2-unet':
            module = EDM2Precond(**comp['config'])
        elif comp['arch'] == 'resnet-cnn':
            module = ResNetCNN(**comp['config'])
        else:
            continue
        tensors = load_file(os.path.join(path, comp['file']))
        want = module.state_dict()
        missing = set(want) - set(tensors)
        assert not missing, f'{comp["file"]}: missing {sorted(missing)}'
        # Extra tensors (logvar_*, ...) are ignored, as the engine does.
        module.load_state_dict({k: tensors[k].to(torch.float32) for k in want})
        module = module.to(dtype).eval().requires_grad_(False)
        if name == 'classifier':
            classifier = module
        else:
            nets[name] = module
    return Pack(path, meta, nets, classifier, decoders, encoders)


def onehot(pack, k, dtype):
    y = torch.zeros(1, pack.nets['main'].label_dim, dtype=dtype)
    y[0, k] = 1
    return y


def picture(pack, x, preview=True):
    """Network-space [1,C,H,W] -> the picture in [-1, 1]: latent packs decode
    with the preview decoder (else the decoder), or with the decoder when
    preview is False."""
    if pack.kind == 'pixel':
        return x
    d = pack.decoders.get('preview' if preview else 'decoder') or pack.decoders['decoder']
    return d(x)[0]


def view(x, gfcg_view):
    """GFCG's view of a network-space image [1,C,H,W]: itself ('full') or
    its 2x2 average pool ('half'; an odd edge averages the cells it has)."""
    if gfcg_view == 'full':
        return x
    assert gfcg_view == 'half', gfcg_view
    return torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)


def pack_probs(pack, x, temperature=1.0, preview=True, gfcg_view='full'):
    """Classifier softmax over the pack's classes for a network-space image
    [1,C,H,W] (latent packs: the picture the engine decodes for GFCG)."""
    logits = pack.classifier(picture(pack, view(x, gfcg_view), preview))[0]
    if pack.classifier.label_space == 'imagenet':
        logits = logits[[c['imagenet'] for c in pack.classes]]
    else:
        assert logits.shape[0] == len(pack.classes)
    return torch.softmax(logits.double() / temperature, dim=0)


def final_verdict(pack, x):
    """{"top1", "p_target"-ready probs} of the final image (temperature 1)."""
    p = pack_probs(pack, x, 1.0, preview=False)
    return int(torch.argmax(p)), p


# ---------------------------------------------------------------- sampler

def sample(pack, class_index, mode=None, seed=0, steps=None, guidance=None, s_max=None,
           temperature=None, sigma_lo=None, sigma_hi=None, lagged=None,
           sigma_min=None, sigma_max=None, rho=None, on_eval=None,
           strength=1.0, init=None, mask=None, gfcg_view=None, classify_every=None):
    """on_eval(index, prediction), when given, sees every guided evaluation's result.

    gfcg_view ('full', 'half') and classify_every K: the classifier sees
    view(x_c) and runs on the 1st, (K+1)th, ... evaluation in the GFCG window;
    the evaluations between reuse that classification.

    Starting from a source (docs/pack-format.md, "Starting from a source"):
    init [1,C,H,W] in network space, mask [H,W] (1 = regenerate, 0 = keep) or
    None, strength in [0, 1] (below 1 needs init)."""
    o = dict(pack.defaults)
    given = dict(mode=mode, steps=steps, guidance=guidance, s_max=s_max, temperature=temperature,
                 sigma_lo=sigma_lo, sigma_hi=sigma_hi, lagged=lagged,
                 sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, gfcg_view=gfcg_view,
                 classify_every=classify_every)
    o.update({k: v for k, v in given.items() if v is not None})
    mode = o['mode'].replace('-', '+').replace('+add', '-add')
    assert mode in MODES, mode
    w, c = float(o['guidance']), class_index
    main = pack.nets['main']
    dtype = main.out_gain.dtype
    uses_gfcg = mode.startswith('gfcg') and pack.classifier is not None
    if mode in ('atg', 'gfcg+atg', 'gfcg+atg-add'):
        assert 'guide' in pack.nets, 'mode needs a guide component'

    def D(name, x, sigma, y):
        return pack.nets[name](x, torch.tensor([sigma], dtype=dtype), y)

    def D_uncond(x, sigma):
        if 'uncond' in pack.nets:
            return D('uncond', x, sigma, None)
        return D('main', x, sigma, torch.zeros(1, main.label_dim, dtype=dtype))

    held = None  # the last classification (lagged: the previous evaluation's), or None
    n_window = 0  # GFCG evaluations in the window so far
    trace = []

    def guided(x, sigma, step, stage):
        nonlocal held, n_window
        yc = onehot(pack, c, dtype)
        x_c = D('main', x, sigma, yc)
        nfe = 1
        in_window = o['sigma_lo'] <= sigma <= o['sigma_hi']
        in_gfcg = uses_gfcg and in_window and len(pack.classes) > 1
        cls = None
        if in_gfcg and n_window % max(int(o['classify_every']), 1) == 0:
            # With a mask the classifier sees the fill in its surroundings.
            p = pack_probs(pack, x_c if m is None else m * x_c + (1 - m) * init,
                           o['temperature'], gfcg_view=o['gfcg_view'])
            q = p.clone()
            q[c] = -1.0
            c_ref = int(torch.argmax(q))          # first maximum = lowest index on ties
            p_c, p_ref = float(p[c]), float(p[c_ref])
            r = p_ref / (p_c + p_ref)
            a = min(1.0, 2 * r)
            cls = dict(c_ref=c_ref, p_c=p_c, p_ref=p_ref, r=r, a=a, s=o['s_max'] * a)
        n_window += in_gfcg
        if o['lagged']:
            use = held if in_gfcg else None
            held = (cls or held) if in_gfcg else None
        else:
            held = cls or held
            use = held if in_gfcg else None
        c_ref = use['c_ref'] if use else -1
        s, a = (use['s'], use['a']) if use else (0.0, 0.0)

        out = x_c
        if mode in ('cfg', 'gfcg+cfg') and w - 1 != 0:
            out = out + (w - 1) * (x_c - D_uncond(x, sigma)); nfe += 1
        if mode in ('atg', 'gfcg+atg-add') and w - 1 != 0:
            out = out + (w - 1) * (x_c - D('guide', x, sigma, yc)); nfe += 1
        if mode in ('gfcg', 'gfcg+cfg', 'gfcg+atg-add') and s != 0:
            out = out + s * (x_c - D('main', x, sigma, onehot(pack, c_ref, dtype))); nfe += 1
        if mode == 'gfcg+atg' and (w - 1 + s) != 0:
            y_ref = (1 - a) * yc + (a * onehot(pack, c_ref, dtype) if c_ref >= 0 else 0)
            out = out + (w - 1 + s) * (x_c - D('guide', x, sigma, y_ref)); nfe += 1
        trace.append(dict(step=step, stage=stage, sigma=sigma, classified=cls is not None,
                          c_ref=c_ref, p_c=use['p_c'] if use else None,
                          p_ref=use['p_ref'] if use else None, r=use['r'] if use else None,
                          a=a, s=s, nfe=nfe))
        if on_eval is not None:
            on_eval(len(trace) - 1, out)
        return out

    ts = sigmas(int(o['steps']), o['sigma_min'], o['sigma_max'], o['rho'])
    n = len(ts) - 1
    assert 0 <= strength <= 1 and (init is not None or (strength == 1 and mask is None))
    first = first_step(strength, n)
    if init is not None:
        init = init.to(dtype).reshape([1] + pack.net_shape)
    m = None if mask is None else mask.to(dtype).reshape(1, 1, *pack.net_shape[1:])
    # The start: noise block 0 at the first sigma run, plus the source; from
    # the full schedule only where the mask keeps it (strength 1 without a
    # mask is sampling from noise).
    x = ts[first] * noise(seed, pack.net_shape).to(dtype)
    if init is not None:
        x = x + (init if first > 0 else 0 * init if m is None else (1 - m) * init)
    with torch.no_grad():
        for i in range(first, n):
            t, t_next = ts[i], ts[i + 1]
            d = (x - guided(x, t, i, 'euler')) / t
            x_next = x + (t_next - t) * d
            if i < n - 1:
                d2 = (x_next - guided(x_next, t_next, i, 'heun')) / t_next
                x_next = x + (t_next - t) * (0.5 * d + 0.5 * d2)
            x = x_next
            if m is not None:
                # The kept part: the source noised to t_next with the run's
                # next noise block (one per step, none at sigma 0).
                known = init
                if t_next > 0:
                    eps = noise(seed, pack.net_shape, block=i - first + 1).to(dtype)
                    known = init + t_next * eps
                x = m * x + (1 - m) * known
    return x, trace


def quantize(x):
    """Network-space image [C,H,W] -> uint8 [H,W,C], round half away from zero."""
    v = 127.5 * np.asarray(x, dtype=np.float64) + 127.5
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(q, 0, 255).astype(np.uint8).transpose(1, 2, 0)
