"""Latent packs' image decoders (SD VAE decoder, TAESD) against the float64
PyTorch references (gfcg_convert/nets/vae.py, taesd.py, tests/reference/latent_ref.py),
their load errors, and img512-style sampling from converted NVIDIA-format
pickles through `converters/convert-edm2 --vae --taesd` and `gfcg sample`.

Measured errors are printed (pytest -s shows them).
"""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import make_packs
from gfcg_ref import load_pack, quantize, sample
from latent_ref import EDM2_LATENT, load_decoder
from gfcg_convert.nets import taesd as taesd_ref
from gfcg_convert.nets import vae as vae_ref
from test_convert_edm2 import (_fake_persistence, _fake_torch_utils, _payload, convert_inproc,  # noqa: F401
                               gfcg, gfcg_bin, nv_snapshot, run_convert, write_pickle)

DEC_TOL = 1e-4        # decoder output and picture, max abs
TRAJ_TOL = 1e-3       # as test_parity: final latent (relative to max(1, |x|)) and trace s

NARROW_VAE = dict(block_out_channels=[16, 16, 32, 32], layers_per_block=1, latent_channels=4,
                  norm_num_groups=8)
NARROW_TAESD = dict(latent_channels=4, channels=16, num_blocks=[1, 1, 1, 1])


def raw_probe(n, h, w, seed):
    """Raw SD latents of EDM2's statistics (for calibrating random decoders)."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.tensor(EDM2_LATENT['raw_mean']).view(1, -1, 1, 1)
    std = torch.tensor(EDM2_LATENT['raw_std']).view(1, -1, 1, 1)
    return mean + std * torch.randn(n, 4, h, w, generator=g)


def make_vae(seed, config=NARROW_VAE, calibrate=True):
    net = vae_ref.SDVAEDecoder(**config).eval()
    probe = raw_probe(2, 8, 8, seed + 1) if calibrate else None
    with torch.no_grad():
        return vae_ref.randomize(net, seed, probe=probe)


def make_taesd(seed, config=NARROW_TAESD, calibrate=True):
    net = taesd_ref.TAESDDecoder(**config).eval()
    probe = taesd_ref.SD_SCALE * raw_probe(2, 8, 8, seed + 1) if calibrate else None
    with torch.no_grad():
        # EDM2's pictures are the upper half of TAESD's range ([0, 1] pixels
        # are SD VAE values 0..1, i.e. TAESD outputs 0.5..1).
        return taesd_ref.randomize(net, seed, probe=probe, mean=0.75, std=0.12)


def tensors_of(module, dtype=torch.float32):
    return {k: v.detach().to(dtype).contiguous() for k, v in module.state_dict().items()}


@pytest.fixture(scope='module')
def latent_main():
    """A small 8x8, 4-channel main network (every pack needs one)."""
    return make_packs.make_unet(31, img_resolution=8, img_channels=4, label_dim=3, model_channels=16,
                                channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])


def write_latent_pack(d, main, decoders, latent=None, resolution=64, kind='latent',
                      channels=4):
    """decoders: {role: (arch, config, {tensor: value})}."""
    os.makedirs(d, exist_ok=True)
    cfg, net = main
    save_file(tensors_of(net), os.path.join(d, 'main.safetensors'))
    comps = {'main': {'file': 'main.safetensors', 'arch': 'edm2-unet', 'config': cfg}}
    for role, (arch, config, tensors) in decoders.items():
        save_file(tensors, os.path.join(d, f'{role}.safetensors'))
        comps[role] = {'file': f'{role}.safetensors', 'arch': arch, 'config': config}
    meta = {'format': 'gfcg-pack', 'format_version': 1, 'name': os.path.basename(d),
            'licence': 'CC0-1.0', 'source': 'random weights (tests/test_decoders.py)',
            'kind': kind, 'resolution': resolution, 'channels': channels,
            'classes': make_packs.CLASSES[:3], 'components': comps}
    if latent is not None:
        meta['latent'] = latent
    with open(os.path.join(d, 'pack.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    return d


def engine_decode(tmp_path, pack, net, x):
    save_file({'x': x.contiguous()}, str(tmp_path / 'lat.safetensors'))
    gfcg('denoise', '--pack', pack, '--net', net, '--in', tmp_path / 'lat.safetensors',
         '--out', tmp_path / 'dec.safetensors')
    out = load_file(str(tmp_path / 'dec.safetensors'))
    return out['image'].double(), out['decoded'].double()


def check_parity(tmp_path, pack, role, x, tag):
    meta = json.loads((pack / 'pack.json').read_text())
    ref = load_decoder(str(pack), meta, meta['components'][role])
    img, dec = engine_decode(tmp_path, pack, role, x)
    with torch.no_grad():
        want_img, want_dec = ref(x.double())
    assert img.shape == want_img.shape and dec.shape == want_dec.shape
    e_dec = float((dec - want_dec).abs().max())
    e_img = float((img - want_img).abs().max())
    inside = float(((want_img > -1) & (want_img < 1)).double().mean())
    print(f'\n[decoders] {tag}: decoded max abs err {e_dec:.3e} (|out| <= '
          f'{float(want_dec.abs().max()):.2f}), picture {e_img:.3e}, unclamped {inside:.0%}')
    assert e_dec <= DEC_TOL and e_img <= DEC_TOL
    assert inside > 0.5, 'the test decoder should mostly stay inside the picture range'
    return want_img


def net_latents(n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return 0.6 * torch.randn(n, 4, h, w, generator=g)


# ---------------------------------------------------------------- parity

@pytest.mark.parametrize('naming', ['to_q', 'query'])
def test_vae_parity_narrow(tmp_path, latent_main, naming):
    """Both attention namings; two latents, one not square (6x10 -> 48x80)."""
    vae = make_vae(41)
    t = tensors_of(vae)
    if naming == 'query':
        t = vae_ref.legacy_names(t)
        assert 'decoder.mid_block.attentions.0.proj_attn.weight' in t
    pack = write_latent_pack(tmp_path / 'p', latent_main,
                             {'decoder': ('sd-vae-decoder', NARROW_VAE, t)})
    check_parity(tmp_path, pack, 'decoder', net_latents(2, 6, 10, 5), f'sd-vae narrow ({naming})')


def test_vae_parity_full_width(tmp_path, latent_main):
    """sd-vae-ft-mse's own config (49.5M parameters, stored F16) on an 8x8 latent."""
    vae = make_vae(42, vae_ref.SD_VAE_CONFIG, calibrate=False)
    n_params = sum(p.numel() for p in vae.parameters())
    t = vae_ref.legacy_names(tensors_of(vae, torch.float16))
    # The published file also holds the encoder; the engine ignores it.
    t['encoder.conv_in.weight'] = torch.zeros(128, 3, 3, 3, dtype=torch.float16)
    t['quant_conv.weight'] = torch.zeros(8, 8, 1, 1, dtype=torch.float16)
    del vae
    pack = write_latent_pack(tmp_path / 'p', latent_main, {'decoder': ('sd-vae-decoder', {}, t)})
    info = gfcg('info', '--pack', pack).stdout
    assert f'sd-vae-decoder, {n_params / 1e6:.2f}M parameters, 4x8x8 latent -> 64x64 RGB' in info
    assert '(2 unused tensors ignored)' in info
    x = net_latents(1, 8, 8, 6)
    meta = json.loads((pack / 'pack.json').read_text())
    ref = load_decoder(str(pack), meta, meta['components']['decoder'])
    img, dec = engine_decode(tmp_path, pack, 'decoder', x)
    with torch.no_grad():
        want_img, want_dec = ref(x.double())
    e_dec = float((dec - want_dec).abs().max())
    e_img = float((img - want_img).abs().max())
    print(f'\n[decoders] sd-vae full width ({n_params} parameters): decoded max abs err '
          f'{e_dec:.3e} (|out| <= {float(want_dec.abs().max()):.2f}), picture {e_img:.3e}')
    assert n_params == 49490179 + 20  # the published decoder, plus post_quant_conv
    assert e_dec <= DEC_TOL and e_img <= DEC_TOL


@pytest.mark.parametrize('naming', ['standalone', 'diffusers'])
def test_taesd_parity(tmp_path, latent_main, naming):
    """TAESD's published config (64 channels, blocks 3,3,3,1) in both namings,
    with a latent far out of range so the tanh clamp matters."""
    net = make_taesd(43, dict(latent_channels=4))
    t = tensors_of(net)
    if naming == 'diffusers':
        t = taesd_ref.diffusers_names(t)
        t['encoder.layers.0.weight'] = torch.zeros(64, 3, 3, 3)
    pack = write_latent_pack(tmp_path / 'p', latent_main,
                             {'decoder': ('taesd-decoder', {}, t)})
    info = gfcg('info', '--pack', pack).stdout
    assert 'taesd-decoder, 1.22M parameters' in info
    x = net_latents(2, 8, 8, 7)
    x[1] *= 6  # raw latents far beyond +-3 after SD's scaling
    check_parity(tmp_path, pack, 'decoder', x, f'taesd ({naming})')


def test_preview_and_latent_object(tmp_path, latent_main):
    """A VAE decoder with a TAESD preview, a non-default 'latent' object (other
    statistics, decoded_range [-1, 1] as for SD's own convention) and a
    non-default latent_scale."""
    latent = dict(raw_mean=[1.0, -0.5, 0.2, 0.0], raw_std=[2.0, 1.5, 1.0, 3.0], final_mean=0.1,
                  final_std=0.8, decoded_range=[-1.0, 1.0])
    tcfg = dict(NARROW_TAESD, latent_scale=0.25)
    pack = write_latent_pack(tmp_path / 'p', latent_main,
                             {'decoder': ('sd-vae-decoder', NARROW_VAE, tensors_of(make_vae(44))),
                              'preview': ('taesd-decoder', tcfg, tensors_of(make_taesd(45)))},
                             latent=latent)
    x = net_latents(1, 8, 8, 8)
    for role in ('decoder', 'preview'):
        meta = json.loads((pack / 'pack.json').read_text())
        ref = load_decoder(str(pack), meta, meta['components'][role])
        img, dec = engine_decode(tmp_path, pack, role, x)
        with torch.no_grad():
            want_img, want_dec = ref(x.double())
        e = max(float((dec - want_dec).abs().max()), float((img - want_img).abs().max()))
        print(f'\n[decoders] {role} with a custom latent object: max abs err {e:.3e}')
        assert e <= DEC_TOL
    info = gfcg('info', '--pack', pack).stdout
    assert 'decoder    sd-vae-decoder' in info and 'preview    taesd-decoder' in info


# ---------------------------------------------------------------- bad input

def bad_pack(tmp_path, latent_main, mutate, decoders=None, **kw):
    t = tensors_of(make_vae(46, calibrate=False))
    decoders = decoders or {'decoder': ['sd-vae-decoder', dict(NARROW_VAE), t]}
    mutate(decoders)
    return write_latent_pack(tmp_path / 'bad', latent_main,
                             {k: tuple(v) for k, v in decoders.items()}, **kw)


def info_fails(pack):
    p = subprocess.run([gfcg_bin(), 'info', '--pack', str(pack)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0, p.stdout
    return p.stderr


BAD = {
    'missing': (lambda d: d['decoder'][2].pop('decoder.up_blocks.2.resnets.1.norm2.bias'),
                "decoder.safetensors: tensor 'decoder.up_blocks.2.resnets.1.norm2.bias' is missing"),
    'misshaped': (lambda d: d['decoder'][2].update({'decoder.conv_out.weight': torch.zeros(3, 16, 1, 1)}),
                  "tensor 'decoder.conv_out.weight' has shape [3, 16, 1, 1], the pack's config needs [3, 16, 3, 3]"),
    'attention': (lambda d: d['decoder'][2].pop('decoder.mid_block.attentions.0.to_k.bias'),
                  "tensor 'decoder.mid_block.attentions.0.to_k.bias' is missing"),
    'groups': (lambda d: d['decoder'][1].update(norm_num_groups=5),
               "component 'decoder': block_out_channels[0] = 16 is not a multiple of norm_num_groups 5"),
    'arch': (lambda d: d['decoder'].__setitem__(0, 'consistency-decoder'),
             "component 'decoder': architecture 'consistency-decoder' is not supported "
             "(sd-vae-decoder, taesd-decoder)"),
    'channels': (lambda d: d['decoder'][1].update(latent_channels=3),
                 "tensor 'post_quant_conv.weight' has shape [4, 4, 1, 1], the pack's config needs [3, 3, 1, 1]"),
    'factor': (lambda d: d['decoder'][1].update(block_out_channels=[16, 32, 32]),
               "component 'decoder' turns 8 latent pixels into 32, the pack's resolution is 64"),
    'preview-alone': (lambda d: d.update(preview=d.pop('decoder')),
                      "'components.preview' needs a 'decoder' component too"),
    'taesd-naming': (lambda d: d.update(decoder=['taesd-decoder', {}, {'x.weight': torch.zeros(1)}]),
                     'holds neither TAESD decoder naming'),
    'taesd-missing': (lambda d: d.update(decoder=['taesd-decoder', dict(NARROW_TAESD), {
        k: v for k, v in tensors_of(taesd_ref.TAESDDecoder(**NARROW_TAESD)).items() if k != '5.weight'}]),
        "tensor '5.weight' is missing"),
}


@pytest.mark.parametrize('case', list(BAD))
def test_bad_decoder(tmp_path, latent_main, case):
    mutate, msg = BAD[case]
    err = info_fails(bad_pack(tmp_path, latent_main, mutate))
    assert msg in err, err
    if case not in ('arch', 'groups', 'preview-alone'):
        assert str(tmp_path / 'bad' / 'decoder.safetensors') in err or 'component' in err


def test_bad_pack_level(tmp_path, latent_main):
    keep = lambda d: None
    # The decoder's factor must turn the latent into the pack's resolution.
    err = info_fails(bad_pack(tmp_path, latent_main, keep, resolution=128))
    assert "component 'decoder' turns 8 latent pixels into 64, the pack's resolution is 128" in err
    err = info_fails(bad_pack(tmp_path, latent_main, keep, latent={'raw_std': [1, 2, 3]}))
    assert "'latent.raw_std' must be a list of 4 numbers" in err
    err = info_fails(bad_pack(tmp_path, latent_main, keep, latent={'final_std': 0}))
    assert 'needs raw_std and final_std > 0' in err
    err = info_fails(bad_pack(tmp_path, latent_main, keep, kind='pixel', resolution=8))
    assert "'components.decoder' belongs to latent packs only" in err


def test_latent_pack_without_decoder(tmp_path, latent_main):
    pack = write_latent_pack(tmp_path / 'p', latent_main, {})
    assert 'none: `gfcg denoise` works' in gfcg('info', '--pack', pack).stdout
    p = subprocess.run([gfcg_bin(), 'sample', '--pack', str(pack), '--class', '0', '--mode', 'none',
                        '--steps', '1', '--out', str(tmp_path / 'x.png')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "latent pack without a 'decoder' component" in p.stderr
    p = subprocess.run([gfcg_bin(), 'denoise', '--pack', str(pack), '--net', 'decoder',
                        '--in', str(tmp_path / 'none'), '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0


# ---------------------------------------------------------------- from NVIDIA pickles

LATENT_UNET = dict(img_resolution=64, img_channels=4, label_dim=4, model_channels=16,
                   channel_mult=[1, 1, 2], num_blocks=1, attn_resolutions=[16])
INET_CLASSIFIER = dict(in_channels=3, resolution=12, widths=[8, 16], blocks=[1, 1], num_classes=1000,
                       label_space='imagenet', mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])


def add_classifier(pack_dir, seed=51):
    """An ImageNet-space resnet-cnn (the converter has no classifier option)."""
    pix = make_packs.make_unet(seed, **make_packs.unet_config())[1]
    cls = make_packs.make_classifier(seed, INET_CLASSIFIER, make_packs.CLASSES, pix)
    save_file(tensors_of(cls), os.path.join(pack_dir, 'classifier.safetensors'))
    meta = json.loads((pack_dir / 'pack.json').read_text())
    meta['components']['classifier'] = {'file': 'classifier.safetensors', 'arch': 'resnet-cnn',
                                        'config': INET_CLASSIFIER}
    (pack_dir / 'pack.json').write_text(json.dumps(meta, indent=1))


@pytest.fixture(scope='module')
def decoder_files(tmp_path_factory):
    """sd-vae-ft-mse-like file (older attention names, encoder tensors, a
    diffusers config.json) and a standalone TAESD file, narrow and random."""
    d = tmp_path_factory.mktemp('decoders')
    vae, taesd = make_vae(61), make_taesd(62)
    t = vae_ref.legacy_names(tensors_of(vae))
    t['encoder.conv_in.weight'] = torch.randn(16, 3, 3, 3)
    t['quant_conv.weight'] = torch.randn(8, 8, 1, 1)
    t['quant_conv.bias'] = torch.randn(8)
    save_file(t, str(d / 'vae.safetensors'))
    (d / 'config.json').write_text(json.dumps(dict(NARROW_VAE, _class_name='AutoencoderKL',
                                                   scaling_factor=0.18215)))
    save_file(tensors_of(taesd), str(d / 'taesd_decoder.safetensors'))
    return d, vae, taesd


@pytest.fixture(scope='module')
def latent_pickles(tmp_path_factory):
    d = tmp_path_factory.mktemp('latent-pkl')
    main = make_packs.make_unet(63, **LATENT_UNET)[1]
    guide = make_packs.make_relative(64, main, **LATENT_UNET)[1]
    src = _payload(d / 'MARKER')
    with pytest.MonkeyPatch.context() as mp:  # the generator's stand-in torch_utils
        pkg = types.ModuleType('torch_utils')
        pkg.persistence = _fake_persistence
        mp.setitem(sys.modules, 'torch_utils', pkg)
        mp.setitem(sys.modules, 'torch_utils.persistence', _fake_persistence)
        return (write_pickle(d / 'edm2-img512-xs-0002147-0.135.pkl', nv_snapshot(main, LATENT_UNET, src)),
                write_pickle(d / 'edm2-img512-xs-0000134-0.110.pkl', nv_snapshot(guide, LATENT_UNET, src)),
                d / 'MARKER')


def test_convert_with_decoders(tmp_path, decoder_files, latent_pickles):
    d, vae, taesd = decoder_files
    main, guide, marker = latent_pickles
    out = tmp_path / 'pack'
    p = run_convert('--main', main, '--guide', guide, '--out', out, '--vae', d / 'vae.safetensors',
                    '--vae-config', d / 'config.json', '--taesd', d / 'taesd_decoder.safetensors',
                    '--guidance', 1.5)
    assert p.returncode == 0, p.stderr
    assert not marker.exists()
    m = json.loads((out / 'pack.json').read_text())
    assert (m['kind'], m['resolution'], m['channels']) == ('latent', 512, 4)
    assert m['latent'] == EDM2_LATENT and 'note' not in m
    dec, prev = m['components']['decoder'], m['components']['preview']
    assert dec['arch'] == 'sd-vae-decoder' and prev['arch'] == 'taesd-decoder'
    assert {k: dec['config'][k] for k in NARROW_VAE} == NARROW_VAE
    assert prev['config'] == NARROW_TAESD
    assert dec['source']['licence'] == prev['source']['licence'] == 'MIT'
    assert dec['source']['dropped'] == 3 and 'sd-vae-ft-mse' in dec['source']['url']
    assert 'MIT' in m['licence_note']
    got = load_file(out / 'decoder.safetensors')
    want = vae_ref.legacy_names(tensors_of(vae))
    assert set(got) == set(want)  # no encoder tensors
    assert all(torch.equal(got[k], want[k]) for k in want)
    got = load_file(out / 'preview.safetensors')
    assert all(torch.equal(got[k], v) for k, v in tensors_of(taesd).items())

    # fp16, TAESD alone becomes the decoder.
    p = run_convert('--main', main, '--out', tmp_path / 'p16', '--fp16', '--taesd',
                    d / 'taesd_decoder.safetensors')
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / 'p16' / 'pack.json').read_text())
    assert m['components']['decoder']['arch'] == 'taesd-decoder' and 'preview' not in m['components']
    got = load_file(tmp_path / 'p16' / 'decoder.safetensors')
    assert all(torch.equal(got[k], v.half()) for k, v in tensors_of(taesd).items())


def test_convert_decoder_errors(tmp_path, capsys, decoder_files, latent_pickles, nets_pixel):
    d, vae, taesd = decoder_files
    main, _, _ = latent_pickles
    rc, err = convert_inproc(capsys, '--main', main, '--out', tmp_path / 'a', '--vae',
                             d / 'vae.safetensors')
    assert rc == 2 and 'not multiples of norm_num_groups 32 (give the VAE\'s config.json' in err, err
    (tmp_path / 'x.pth').write_bytes(b'not read')
    rc, err = convert_inproc(capsys, '--main', main, '--out', tmp_path / 'b', '--taesd', tmp_path / 'x.pth')
    assert rc == 2 and 'pickled .pth/.ckpt files run code' in err
    t = load_file(d / 'taesd_decoder.safetensors')
    t['8.weight'] = torch.zeros(16, 16, 1, 1)
    save_file(t, str(tmp_path / 'bad_taesd.safetensors'))
    rc, err = convert_inproc(capsys, '--main', main, '--out', tmp_path / 'c', '--taesd',
                             tmp_path / 'bad_taesd.safetensors')
    assert rc == 2 and '8.weight has shape [16, 16, 1, 1], the config needs [16, 16, 3, 3]' in err
    del t['8.weight']
    save_file(t, str(tmp_path / 'bad_taesd.safetensors'))
    rc, err = convert_inproc(capsys, '--main', main, '--out', tmp_path / 'd', '--taesd',
                             tmp_path / 'bad_taesd.safetensors')
    assert rc == 2 and 'layer 7 is neither a block nor a conv' in err
    rc, err = convert_inproc(capsys, '--main', nets_pixel, '--out', tmp_path / 'e', '--taesd',
                             d / 'taesd_decoder.safetensors')
    assert rc == 2 and 'belong to latent' in err
    for sub in 'abcde':
        assert not (tmp_path / sub / 'pack.json').exists()


@pytest.fixture
def nets_pixel(tmp_path):
    cfg = make_packs.unet_config()
    net = make_packs.make_unet(65, **cfg)[1]
    return write_pickle(tmp_path / 'pix.pkl', nv_snapshot(net, cfg, _payload(tmp_path / 'M')))


def test_sample_latent_gfcg_atg(tmp_path, decoder_files, latent_pickles):
    """The issue's "done when": converted img512-style pickles with --vae and
    --taesd, plus an ImageNet classifier, sample with gfcg+atg into a 512x512
    PNG; the trajectory (the classifier seeing TAESD's picture of x_c) matches
    the reference sampler and the PNG is the reference VAE decode of the
    engine's final latent."""
    d, _, _ = decoder_files
    main, guide, marker = latent_pickles
    out = tmp_path / 'pack'
    p = run_convert('--main', main, '--guide', guide, '--out', out, '--vae', d / 'vae.safetensors',
                    '--vae-config', d / 'config.json', '--taesd', d / 'taesd_decoder.safetensors')
    assert p.returncode == 0, p.stderr
    add_classifier(out)
    info = gfcg('info', '--pack', out).stdout
    assert 'kind:       latent, 512x512 pixels, 4 channels' in info
    assert 'preview    taesd-decoder' in info and 'decoder    sd-vae-decoder' in info
    png, raw, trace = tmp_path / 'x.png', tmp_path / 'raw.safetensors', tmp_path / 't.json'
    gfcg('sample', '--pack', out, '--mode', 'gfcg+atg', '--guidance', 1.5, '--s-max', 1.5,
         '--steps', 2, '--class', 1, '--seed', 5, '--out', png, '--out-raw', raw, '--trace', trace,
         '--previews', tmp_path / 'pv', '--threads', 2, '--quiet')
    assert not marker.exists()

    from PIL import Image
    img = Image.open(png)
    assert img.size == (512, 512) and img.mode == 'RGB'
    got_x = load_file(str(raw))['x']
    assert got_x.shape == (1, 4, 64, 64)

    ref = load_pack(str(out), torch.float64)
    preds = {}
    want_x, want_tr = sample(ref, 1, 'gfcg+atg', 5, steps=2, guidance=1.5, s_max=1.5,
                             on_eval=lambda i, pred: preds.__setitem__(i, pred))
    tr = json.loads(trace.read_text())
    ev = tr['evaluations']
    assert [e['classified'] for e in ev] == [True] * 3
    assert [e['c_ref'] for e in ev] == [e['c_ref'] for e in want_tr]
    s_err = max(abs(e['s'] - w['s']) for e, w in zip(ev, want_tr))
    p_err = max(abs(e['p_c'] - w['p_c']) for e, w in zip(ev, want_tr))
    x_err = float((got_x.double() - want_x).abs().max()) / max(1.0, float(want_x.abs().max()))

    # The PNG: the reference VAE decode of the engine's own final latent
    # (at 512 pixels the CPU backend unfolds its convolutions in bands).
    pic = check_parity(tmp_path, out, 'decoder', got_x, 'sd-vae narrow, 64x64 -> 512x512')
    want_png = quantize(pic[0].numpy()).astype(int)
    d_png = np.abs(np.asarray(img).astype(int) - want_png).max()
    top1 = int(torch.argmax(torch.softmax(
        ref.classifier(pic)[0][[c['imagenet'] for c in ref.classes]], 0)))
    print(f'\n[decoders] gfcg+atg 64x64 latent -> 512x512: x err {x_err:.3e}, s err {s_err:.3e}, '
          f'p_c err {p_err:.3e}, PNG max diff {d_png}/255, classified s {[e["s"] for e in ev]}')
    assert x_err <= TRAJ_TOL and s_err <= TRAJ_TOL and p_err <= TRAJ_TOL
    assert d_png <= 2
    assert tr['final']['top1'] == top1
    assert np.asarray(img).std() > 5, 'a flat picture would not test the decoder'

    # --previews: every evaluation's guided estimate through the TAESD preview.
    assert sorted(os.listdir(tmp_path / 'pv')) == [f'preview-0000-00{i}.png' for i in range(3)]
    for i in range(3):
        pv = np.asarray(Image.open(tmp_path / 'pv' / f'preview-0000-00{i}.png')).astype(int)
        with torch.no_grad():
            want = quantize(ref.decoders['preview'](preds[i])[0][0].numpy()).astype(int)
        d = np.abs(pv - want).max()
        print(f'[decoders] preview {i}: max diff {d}/255 (std {pv.std():.1f})')
        assert pv.shape == (512, 512, 3) and d <= 2


def test_sample_img64_pixel_pair(tmp_path):
    """A 64x64 pixel (img64-style) main/guide pair through the converter and
    `gfcg sample --mode atg`, against the reference sampler."""
    cfg = dict(img_resolution=64, img_channels=3, label_dim=4, model_channels=16,
               channel_mult=[1, 1, 2], num_blocks=1, attn_resolutions=[16])
    main = make_packs.make_unet(71, **cfg)[1]
    guide = make_packs.make_relative(72, main, **cfg)[1]
    src = _payload(tmp_path / 'MARKER')
    mp = write_pickle(tmp_path / 'edm2-img64-s-1073741-0.075.pkl', nv_snapshot(main, cfg, src))
    gp = write_pickle(tmp_path / 'edm2-img64-xs-0134217-0.110.pkl', nv_snapshot(guide, cfg, src))
    out = tmp_path / 'pack'
    p = run_convert('--main', mp, '--guide', gp, '--out', out, '--guidance', 1.7)
    assert p.returncode == 0, p.stderr
    gfcg('sample', '--pack', out, '--steps', 3, '--class', 2, '--seed', 9,
         '--out', tmp_path / 'x.png', '--out-raw', tmp_path / 'raw.safetensors', '--quiet')
    from PIL import Image
    assert Image.open(tmp_path / 'x.png').size == (64, 64)
    got = load_file(str(tmp_path / 'raw.safetensors'))['x'].double()
    want, _ = sample(load_pack(str(out), torch.float64), 2, None, 9, steps=3)
    err = float((got - want).abs().max()) / max(1.0, float(want.abs().max()))
    print(f'\n[decoders] img64 pixel pair, atg w=1.7: x err {err:.3e}')
    assert err <= TRAJ_TOL
    assert not (tmp_path / 'MARKER').exists()


def test_ctrl_c_stops_inside_the_decoder(tmp_path):
    """Ctrl-C during the final 512-px decode (one long network evaluation)
    stops it inside the network: the engine checks the run's cancellable
    before every op.  Exit 1, the message says where, no picture."""
    import signal
    import time
    main = make_packs.make_unet(61, img_resolution=64, img_channels=4, label_dim=3,
                                model_channels=8, channel_mult=[1], num_blocks=1,
                                attn_resolutions=[])
    config = dict(NARROW_VAE, block_out_channels=[32, 32, 64, 64], layers_per_block=2)
    vae = make_vae(62, config)   # its decode at 512 px: ~4 s on 2 busy cores
    pack = write_latent_pack(tmp_path / 'p', main,
                             {'decoder': ('sd-vae-decoder', config,
                                          vae_ref.legacy_names(tensors_of(vae)))},
                             resolution=512)
    out = tmp_path / 'x.png'
    p = subprocess.Popen([gfcg_bin(), 'sample', '--pack', str(pack), '--class', '0', '--mode',
                          'none', '--steps', '1', '--seed', '1', '--out', str(out)],
                         stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()   # the only evaluation's progress line: the decode follows
    assert 'eval  1/1' in line, line
    time.sleep(0.3)              # past the progress callback, into the ~3 s decode
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 1
    stopped = time.monotonic() - t0
    print(f'\n[decoders] Ctrl-C during a 512-px decode: stopped after {stopped:.2f} s')
    assert 'cancelled during a network evaluation' in err, err
    assert not out.exists()


def test_preview_every(packs, tmp_path):
    """--preview-every N (GfcgSampleOptions.preview_every; the plug-in uses 4 for
    latent packs): previews at every Nth evaluation and at the last only, the
    picture unchanged."""
    pack = packs / 'tiny-pixel'
    common = ['sample', '--pack', pack, '--class', 217, '--mode', 'none', '--steps', 4,
              '--seed', 2, '--quiet']
    gfcg(*common, '--out', tmp_path / 'a.png', '--previews', tmp_path / 'all')
    gfcg(*common, '--out', tmp_path / 'b.png', '--previews', tmp_path / 'some',
         '--preview-every', 3)
    assert len(os.listdir(tmp_path / 'all')) == 7
    assert sorted(os.listdir(tmp_path / 'some')) == [f'preview-0000-00{i}.png' for i in (0, 3, 6)]
    for name in os.listdir(tmp_path / 'some'):
        assert (tmp_path / 'some' / name).read_bytes() == (tmp_path / 'all' / name).read_bytes()
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'a.png')),
                          np.asarray(Image.open(tmp_path / 'b.png')))
    p = subprocess.run([gfcg_bin()] + [str(a) for a in common] +
                       ['--out', str(tmp_path / 'c.png'), '--preview-every', '0'],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and '--preview-every must be >= 1' in p.stderr
