"""Checks of the PyTorch reference itself (no engine needed)."""
import math

import numpy as np
import pytest
import torch

from classifier_ref import ResNetCNN
from gfcg_convert.nets.edm2 import EDM2Precond, MPConv, mp_cat, mp_sum, normalize, Block
from gfcg_ref import (first_step, load_pack, noise, normals, sample, sigmas, splitmix64, uniforms,
                      quantize)


# ---------------------------------------------------------------- primitives

def test_normalize_unit_rms():
    x = torch.randn(4, 7, 5, 5, dtype=torch.float64) * 3 + 1
    rms = normalize(x, dim=1).pow(2).mean(1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)
    rows = normalize(x).flatten(1).pow(2).mean(1).sqrt()
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-3)


def test_magnitude_preserving_ops():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 64, 200, 200, generator=g, dtype=torch.float64)
    for t in (0.3, 0.5, 0.7):
        assert abs(mp_sum(a, b, t).var().item() - 1) < 0.01
        assert abs(mp_cat(a[:, :16], b, t).var().item() - 1) < 0.01


def test_weight_norm_formula():
    conv = MPConv(5, 3, 3).double().eval()
    w = conv.weight.detach()
    x = torch.randn(1, 5, 6, 6, dtype=torch.float64)
    fan_in = 5 * 9
    wn = 1.7 * w / (math.sqrt(fan_in) * 1e-4 + w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    want = torch.nn.functional.conv2d(x, wn, padding=1)
    assert torch.allclose(conv(x, gain=1.7), want, atol=1e-12)


def test_attention_layout():
    """The block's attention against a loop written from the spec's index rule."""
    torch.manual_seed(0)
    blk = Block(128, 128, 8, 'dec', attention=True).double().eval()
    with torch.no_grad():
        blk.emb_gain.fill_(0.7)
    x = torch.randn(2, 128, 4, 4, dtype=torch.float64)
    emb = torch.randn(2, 8, dtype=torch.float64)
    got = blk(x, emb)
    # Recompute: residual path by hand, then attention channel by channel.
    blk_noattn = Block(128, 128, 8, 'dec').double().eval()
    blk_noattn.load_state_dict({k: v for k, v in blk.state_dict().items() if 'attn' not in k})
    blk_noattn.clip_act = None
    h = blk_noattn(x, emb)
    qkv = blk.attn_qkv(h).reshape(2, 384, 16)
    y = torch.zeros(2, 128, 16, dtype=torch.float64)
    for head in range(2):
        idx = lambda s: [head * 192 + c * 3 + s for c in range(64)]
        q, k, v = (normalize(qkv[:, idx(s)], dim=1) for s in range(3))
        att = torch.softmax(torch.einsum('ncq,nck->nqk', q, k) / 8, dim=2)
        y[:, head * 64:(head + 1) * 64] = torch.einsum('nqk,nck->ncq', att, v)
    want = mp_sum(h, blk.attn_proj(y.reshape(2, 128, 4, 4)), 0.3).clamp(-256, 256)
    assert torch.allclose(got, want, atol=1e-10)


# ---------------------------------------------------------------- EDM2 network

def test_state_dict_names_and_shapes():
    net = EDM2Precond(img_resolution=16, img_channels=3, label_dim=4, model_channels=32,
                      channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8])
    sd = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert sd['emb_fourier.freqs'] == [32] and sd['emb_fourier.phases'] == [32]
    assert sd['emb_noise.weight'] == [64, 32] and sd['emb_label.weight'] == [64, 4]
    assert sd['out_gain'] == [] and sd['out_conv.weight'] == [3, 32, 3, 3]
    assert sd['enc.16x16_conv.weight'] == [32, 4, 3, 3]
    assert sd['enc.8x8_block0.conv_skip.weight'] == [64, 32, 1, 1]
    assert sd['enc.8x8_block0.attn_qkv.weight'] == [192, 64, 1, 1]
    assert sd['dec.8x8_in0.attn_proj.weight'] == [64, 64, 1, 1]
    assert 'dec.8x8_in1.attn_qkv.weight' not in sd
    assert sd['dec.16x16_block1.conv_skip.weight'] == [32, 64, 1, 1]
    assert sd['dec.16x16_block0.conv_res0.weight'] == [32, 96, 3, 3]
    assert sd['dec.16x16_up.emb_linear.weight'] == [64, 64]
    assert not any(k.startswith('unet.') for k in sd)
    enc = [k.split('.')[1] for k in sd if k.startswith('enc.') and k.endswith('conv_res1.weight')]
    assert enc == ['16x16_block0', '8x8_down', '8x8_block0']
    dec = [k.split('.')[1] for k in sd if k.startswith('dec.') and k.endswith('conv_res1.weight')]
    assert dec == ['8x8_in0', '8x8_in1', '8x8_block0', '8x8_block1',
                   '16x16_up', '16x16_block0', '16x16_block1']


@pytest.mark.parametrize('channels,params', [(128, 125e6), (192, 280e6)])
def test_param_count_img512(channels, params):
    """The published img512 XS / S sizes (edm2.md) pin the whole architecture."""
    with torch.device('meta'):
        net = EDM2Precond(img_resolution=64, img_channels=4, label_dim=1000, model_channels=channels,
                          channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8])
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - params) / params < 0.01, n


def test_float32_matches_float64(packs):
    p64 = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    p32 = load_pack(str(packs / 'tiny-pixel'), torch.float32)
    x = torch.randn(3, 3, 16, 16)
    sigma = torch.tensor([0.01, 1.0, 50.0])
    y = torch.eye(4)[:3]
    with torch.no_grad():
        for name in ('main', 'guide', 'uncond'):
            a = p32.nets[name](x, sigma, y)
            b = p64.nets[name](x.double(), sigma.double(), y.double())
            assert (a.double() - b).abs().max() < 1e-5, name
        a = p32.classifier(x)
        b = p64.classifier(x.double())
        assert (a.double() - b).abs().max() < 1e-5


def test_labels_matter(packs):
    """Random non-zero gains: the label and embedding paths change the output."""
    p = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    s = torch.tensor([1.0], dtype=torch.float64)
    d0 = p.nets['main'](x, s, torch.eye(4, dtype=torch.float64)[:1])
    d1 = p.nets['main'](x, s, torch.eye(4, dtype=torch.float64)[1:2])
    assert (d0 - d1).abs().max() > 1e-2


# ---------------------------------------------------------------- classifier

def test_fold_bn():
    torch.manual_seed(0)
    net = ResNetCNN(in_channels=3, resolution=12, widths=[8, 16], blocks=[1, 2], num_classes=5,
                    mean=[0.4, 0.5, 0.6], std=[0.3, 0.5, 0.4], batchnorm=True).double()
    net.train()
    with torch.no_grad():
        for _ in range(3):  # populate running statistics
            net(torch.rand(8, 3, 16, 16, dtype=torch.float64) * 2 - 1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
    net.eval()
    folded = net.fold_bn()
    assert set(folded.state_dict()) >= {'stem.weight', 'stem.bias', 'stages.1.0.skip.bias',
                                        'stages.1.1.conv2.weight', 'fc.weight', 'fc.bias'}
    assert 'stages.0.0.skip.weight' not in folded.state_dict()
    x = torch.rand(4, 3, 16, 16, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(net(x), folded(x), atol=1e-10)


def test_classifier_spread(packs):
    """Test packs' classifiers are neither saturated nor uniform on denoised images."""
    from gfcg_ref import pack_probs
    for name in ('tiny-pixel', 'tiny-pixel-inet'):
        p = load_pack(str(packs / name), torch.float64)
        ps = []
        for seed in range(6):
            x = 80 * noise(seed, [3, 16, 16]).double()
            for sigma in (80.0, 5.0, 0.5):
                with torch.no_grad():
                    xc = p.nets['main'](x, torch.tensor([sigma], dtype=torch.float64),
                                        torch.eye(4, dtype=torch.float64)[seed % 4:seed % 4 + 1])
                    ps.append(pack_probs(p, xc).max().item())
        print(name, 'max p per image', np.round(ps, 2))
        assert 0.35 < np.median(ps) < 0.85


# ---------------------------------------------------------------- noise, schedule, sampler

def test_rng_matches_spec_literal():
    it = splitmix64(12345)
    ints = [next(it) for _ in range(1000)]
    want = np.array([((z >> 11) + 0.5) * 2.0 ** -53 for z in ints])
    assert np.array_equal(uniforms(12345, 1000), want)
    big = (1 << 64) - 3  # wrap-around of the state
    it = splitmix64(big)
    assert np.array_equal(uniforms(big, 4), [((next(it) >> 11) + 0.5) * 2.0 ** -53 for _ in range(4)])


def test_normals_statistics_and_seeds():
    n = normals(0, 100001)  # odd length
    assert n.dtype == np.float32 and n.shape == (100001,)
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01
    u = uniforms(0, 2)
    assert n[0] == np.float32(math.sqrt(-2 * math.log(u[0])) * math.cos(2 * math.pi * u[1]))
    assert n[1] == np.float32(math.sqrt(-2 * math.log(u[0])) * math.sin(2 * math.pi * u[1]))
    batch = noise(7, [3, 5, 5], count=3)
    for j in range(3):
        assert torch.equal(batch[j], noise(7 + j, [3, 5, 5])[0])


def test_noise_blocks_continue_the_stream():
    """Block b of n normals starts after b * 2 ceil(n/2) draws of the stream
    (odd n: each block ends on a whole pair, its last n1 dropped)."""
    for n in (7, 8):
        pairs = (n + 1) // 2
        u = uniforms(99, 3 * 2 * pairs)
        it = splitmix64(99)
        assert np.array_equal(u, [((next(it) >> 11) + 0.5) * 2.0 ** -53 for _ in range(len(u))])
        for b in range(3):
            v = u[2 * pairs * b:2 * pairs * (b + 1)]
            r = np.sqrt(-2 * np.log(v[0::2]))
            want = np.stack([r * np.cos(2 * np.pi * v[1::2]), r * np.sin(2 * np.pi * v[1::2])], 1)
            assert np.array_equal(normals(99, n, block=b), want.reshape(-1)[:n].astype(np.float32))
    assert torch.equal(noise(5, [3, 4, 4], block=0), noise(5, [3, 4, 4]))
    assert first_step(0.3, 10) == 7 and first_step(1, 8) == 0 and first_step(0, 8) == 8
    assert first_step(0.1, 8) == 7 and first_step(0.9, 8) == 0 and first_step(1e-12, 8) == 8


def test_sigmas():
    ts = sigmas(8)
    assert len(ts) == 9 and ts[0] == pytest.approx(80) and ts[7] == pytest.approx(0.002) and ts[8] == 0
    assert all(a > b for a, b in zip(ts, ts[1:]))


def _scalar_heun(steps, x, sd=0.5):
    """The Heun sampler on one scalar with D(x) = c_skip x, written out longhand."""
    ts = sigmas(steps)
    for i in range(steps):
        t, tn = ts[i], ts[i + 1]
        d = x * (1 - sd ** 2 / (t * t + sd ** 2)) / t
        xn = x + (tn - t) * d
        if i < steps - 1:
            d2 = xn * (1 - sd ** 2 / (tn * tn + sd ** 2)) / tn
            xn = x + (tn - t) * (0.5 * d + 0.5 * d2)
        x = xn
    return x


def test_sampler_on_scaling_denoiser(packs):
    """With out_gain = 0, D(x) = c_skip x: the probability-flow ODE has the exact
    solution x(sigma) = x0 sqrt(sigma^2 + sd^2) / sqrt(sigma0^2 + sd^2), which the
    longhand scalar Heun approaches at second order, and which the sampler must
    reproduce image-wide."""
    exact = 0.5 / math.sqrt(80 ** 2 + 0.25)
    errs = [abs(_scalar_heun(n, 1.0) / exact - 1) for n in (32, 64, 128)]
    assert errs[0] / errs[1] > 3.5 and errs[1] / errs[2] > 3.5 and errs[2] < 1e-3
    p = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    with torch.no_grad():
        p.nets['main'].out_gain.zero_()
    x, tr = sample(p, 0, 'none', seed=5, steps=8)
    x0 = 80 * noise(5, [3, 16, 16]).double()
    assert torch.allclose(x, x0 * _scalar_heun(8, 1.0), rtol=1e-12)
    assert len(tr) == 15 and all(e['c_ref'] == -1 and e['nfe'] == 1 for e in tr)


def test_zero_coefficients_are_skipped(packs):
    p = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    x_none, _ = sample(p, 1, 'none', 3, steps=4)
    for mode, kw in [('cfg', dict(guidance=1.0)), ('atg', dict(guidance=1.0)),
                     ('gfcg', dict(s_max=0.0)), ('gfcg+atg', dict(guidance=1.0, s_max=0.0))]:
        x, tr = sample(p, 1, mode, 3, steps=4, **kw)
        assert torch.equal(x, x_none) and sum(e['nfe'] for e in tr) == 7, mode


def test_gfcg_trace_and_lag(packs):
    p = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    _, tr = sample(p, 1, 'gfcg', 7, steps=8, s_max=1.5)
    assert all(e['classified'] and e['c_ref'] not in (-1, 1) for e in tr)
    for e in tr:
        assert e['r'] == pytest.approx(e['p_ref'] / (e['p_c'] + e['p_ref']))
        assert e['s'] == pytest.approx(1.5 * min(1, 2 * e['r']))
        assert e['nfe'] == 2
    _, lag = sample(p, 1, 'gfcg', 7, steps=8, s_max=1.5, lagged=True)
    assert lag[0]['c_ref'] == -1 and lag[0]['s'] == 0 and lag[0]['nfe'] == 1
    assert lag[0]['sigma'] == tr[0]['sigma']
    # The first evaluation is identical in both runs, so its classification is
    # what the lagged run uses at the second evaluation.
    assert lag[1]['c_ref'] == tr[0]['c_ref'] and lag[1]['s'] == pytest.approx(tr[0]['s'])
    _, win = sample(p, 1, 'gfcg', 7, steps=8, sigma_lo=0.5, sigma_hi=20)
    assert [e['classified'] for e in win] == [0.5 <= e['sigma'] <= 20 for e in win]


def test_quantize_rounds_half_away():
    x = np.array([[[-1.0, 1.0, 2.0, -2.0, (0.5 - 127.5) / 127.5, (100.5 - 127.5) / 127.5]]])
    assert quantize(x)[0, :, 0].tolist() == [0, 255, 255, 0, 1, 101]
