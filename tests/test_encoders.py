"""Latent packs' image encoders (the SD VAE encoder, TAESD's) against the
float64 PyTorch references (gfcg_convert/nets/vae.py, taesd.py,
tests/reference/latent_ref.py), the round trip through the decoders, their
load errors, and the converter's --encoder / --taesd-encoder.

The engine side is `gfcg denoise --net encoder|preview-encoder` (pictures in
[-1, 1] -> `latent` in network space and `encoded`, the network's own output).
Measured errors are printed (pytest -s shows them).
"""
import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

import make_packs
from latent_ref import EDM2_LATENT, load_decoder, load_encoder
from gfcg_convert.nets import taesd as taesd_ref
from gfcg_convert.nets import vae as vae_ref
from test_convert_edm2 import gfcg, gfcg_bin, run_convert  # noqa: F401
from test_decoders import (NARROW_TAESD, NARROW_VAE, engine_decode, latent_pickles,  # noqa: F401
                           make_taesd, make_vae, tensors_of, write_latent_pack)

ENC_TOL = 1e-4        # network output and network-space latent, max abs
TRIP_TOL = 1e-4       # picture after encode + decode, max abs

NARROW_TAESD_ENC = dict(latent_channels=4, channels=16, num_blocks=[1, 1, 1, 1])


def pictures(n, h, w, seed):
    """Smooth pictures in [-1, 1]: a few low-frequency waves plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(1, 1, h, 1)
    x = torch.linspace(0, 1, w).view(1, 1, 1, w)
    f = torch.rand(n, 3, 4, generator=g) * 6
    img = torch.sin(f[..., 0, None, None] * x + f[..., 1, None, None] * y + f[..., 2, None, None])
    img = 0.8 * img + 0.15 * torch.randn(n, 3, h, w, generator=g)
    return img.clamp(-1, 1)


def make_vae_encoder(seed, config=NARROW_VAE, calibrate=True):
    net = vae_ref.SDVAEEncoder(**config).eval()
    probe = (pictures(2, 32, 32, seed + 1) + 1) / 2 if calibrate else None   # EDM2 feeds [0, 1]
    with torch.no_grad():
        return vae_ref.randomize_encoder(net, seed, probe=probe)


def make_taesd_encoder(seed, config=NARROW_TAESD_ENC, calibrate=True):
    net = taesd_ref.TAESDEncoder(**config).eval()
    # TAESD sees (v + 1) / 2 of the VAE's input v in [0, 1]; its output is
    # SD's scaled latent, about 0.18215 * EDM2's raw statistics.
    probe = (pictures(2, 32, 32, seed + 1) + 3) / 4 if calibrate else None
    with torch.no_grad():
        return taesd_ref.randomize(net, seed, probe=probe, mean=0.3, std=0.75)


@pytest.fixture(scope='module')
def latent_main():
    return make_packs.make_unet(31, img_resolution=8, img_channels=4, label_dim=3, model_channels=16,
                                channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])


def engine_encode(tmp_path, pack, net, img):
    """The engine's network-space latents of pictures img."""
    save_file({'x': img.float().contiguous()}, str(tmp_path / 'img.safetensors'))
    gfcg('denoise', '--pack', pack, '--net', net, '--in', tmp_path / 'img.safetensors',
         '--out', tmp_path / 'enc.safetensors')
    return load_file(str(tmp_path / 'enc.safetensors'))['latent'].double()


def reference(pack, role):
    meta = json.loads((pack / 'pack.json').read_text())
    comp = meta['components'][role]
    load = load_encoder if role in ('encoder', 'preview-encoder') else load_decoder
    return load(str(pack), meta, comp)


def network_output(ref, lat):
    """The encoder network's output that a network-space latent stands for
    (the reference's mapping undone in float64)."""
    view = (1, -1, 1, 1)
    return (lat * ref.scale.view(view) + ref.shift.view(view)) * ref.latent_scale


def check_parity(tmp_path, pack, role, img, tag):
    ref = reference(pack, role)
    lat = engine_encode(tmp_path, pack, role, img)
    enc = network_output(ref, lat)
    with torch.no_grad():
        want_lat, want_enc = ref(img.double())
    assert lat.shape == want_lat.shape and enc.shape == want_enc.shape
    e_enc = float((enc - want_enc).abs().max())
    e_lat = float((lat - want_lat).abs().max())
    print(f'\n[encoders] {tag}: network output max abs err {e_enc:.3e} (|out| <= '
          f'{float(want_enc.abs().max()):.2f}), latent {e_lat:.3e} (|x| <= '
          f'{float(want_lat.abs().max()):.2f}, std {float(want_lat.std()):.2f})')
    assert e_enc <= ENC_TOL and e_lat <= ENC_TOL
    return want_lat


# ---------------------------------------------------------------- parity

@pytest.mark.parametrize('naming', ['to_q', 'query'])
def test_vae_encoder_parity_narrow(tmp_path, latent_main, naming):
    """Both attention namings; two pictures, one not square (48x80 -> 6x10)."""
    t = tensors_of(make_vae_encoder(81))
    if naming == 'query':
        t = vae_ref.legacy_names(t)
        assert 'encoder.mid_block.attentions.0.proj_attn.weight' in t
    pack = write_latent_pack(tmp_path / 'p', latent_main,
                             {'encoder': ('sd-vae-encoder', NARROW_VAE, t)})
    lat = check_parity(tmp_path, pack, 'encoder', pictures(2, 48, 80, 1),
                       f'sd-vae encoder narrow ({naming})')
    assert lat.shape == (2, 4, 6, 10)
    assert 0.2 < float(lat.std()) < 2, 'the test encoder should give latents of EDM2-like scale'


def test_vae_encoder_parity_full_width(tmp_path, latent_main):
    """sd-vae-ft-mse's own config (34.2M parameters, stored F16) on a 64x64
    picture, read from one file that holds the whole VAE (the decoder's
    tensors are ignored), as the published file."""
    enc = make_vae_encoder(82, vae_ref.SD_VAE_CONFIG)
    n_params = sum(p.numel() for p in enc.parameters())
    t = vae_ref.legacy_names(tensors_of(enc, torch.float16))
    t['decoder.conv_in.weight'] = torch.zeros(512, 4, 3, 3, dtype=torch.float16)
    t['post_quant_conv.weight'] = torch.zeros(4, 4, 1, 1, dtype=torch.float16)
    del enc
    pack = write_latent_pack(tmp_path / 'p', latent_main, {'encoder': ('sd-vae-encoder', {}, t)})
    info = gfcg('info', '--pack', pack).stdout
    # The engine keeps quant_conv's mean rows only: 4 x 8 + 4 of its 72 numbers.
    assert n_params == 34163664, n_params
    assert f'sd-vae-encoder, {(n_params - 36) / 1e6:.2f}M parameters, 64x64 RGB -> 4x8x8 latent' \
        in info, info
    assert '(2 unused tensors ignored)' in info
    check_parity(tmp_path, pack, 'encoder', pictures(1, 64, 64, 2),
                 f'sd-vae encoder full width ({n_params} parameters)')


@pytest.mark.parametrize('naming', ['standalone', 'diffusers'])
def test_taesd_encoder_parity(tmp_path, latent_main, naming):
    """TAESD's published encoder config (64 channels, blocks 1,3,3,3) in both
    namings; the diffusers file also holds the decoder."""
    t = tensors_of(make_taesd_encoder(83, dict(latent_channels=4)))
    if naming == 'diffusers':
        t = taesd_ref.diffusers_encoder_names(t)
        t['decoder.layers.0.weight'] = torch.zeros(64, 4, 3, 3)
    pack = write_latent_pack(tmp_path / 'p', latent_main, {'encoder': ('taesd-encoder', {}, t)})
    info = gfcg('info', '--pack', pack).stdout
    assert 'encoder    taesd-encoder, 1.22M parameters, 64x64 RGB -> 4x8x8 latent' in info, info
    check_parity(tmp_path, pack, 'encoder', pictures(2, 40, 64, 3), f'taesd encoder ({naming})')


def test_preview_encoder_and_latent_object(tmp_path, latent_main):
    """A VAE encoder with a TAESD preview-encoder, next to their decoders,
    with a non-default 'latent' object (decoded_range [-1, 1], SD's own
    convention) and a non-default latent_scale."""
    latent = dict(raw_mean=[1.0, -0.5, 0.2, 0.0], raw_std=[2.0, 1.5, 1.0, 3.0], final_mean=0.1,
                  final_std=0.8, decoded_range=[-1.0, 1.0])
    pack = write_latent_pack(
        tmp_path / 'p', latent_main,
        {'decoder': ('sd-vae-decoder', NARROW_VAE, tensors_of(make_vae(84))),
         'preview': ('taesd-decoder', NARROW_TAESD, tensors_of(make_taesd(85))),
         'encoder': ('sd-vae-encoder', NARROW_VAE, tensors_of(make_vae_encoder(86))),
         'preview-encoder': ('taesd-encoder', dict(NARROW_TAESD_ENC, latent_scale=0.25),
                             tensors_of(make_taesd_encoder(87)))},
        latent=latent)
    img = pictures(1, 32, 32, 4)
    for role in ('encoder', 'preview-encoder'):
        check_parity(tmp_path, pack, role, img, f'{role} with a custom latent object')
    info = gfcg('info', '--pack', pack).stdout
    assert 'encoder    sd-vae-encoder' in info and 'preview-encoder taesd-encoder' in info, info


# ---------------------------------------------------------------- round trips

def test_round_trip_against_the_reference(tmp_path, latent_main):
    """The engine's decode of the engine's encode equals the reference's
    decode of the reference's encode: VAE encoder -> VAE decoder and TAESD
    encoder -> TAESD decoder."""
    pack = write_latent_pack(
        tmp_path / 'p', latent_main,
        {'decoder': ('sd-vae-decoder', NARROW_VAE, tensors_of(make_vae(91))),
         'preview': ('taesd-decoder', NARROW_TAESD, tensors_of(make_taesd(92))),
         'encoder': ('sd-vae-encoder', NARROW_VAE, tensors_of(make_vae_encoder(93))),
         'preview-encoder': ('taesd-encoder', NARROW_TAESD_ENC, tensors_of(make_taesd_encoder(94)))})
    img = pictures(2, 48, 64, 5)
    for enc, dec in (('encoder', 'decoder'), ('preview-encoder', 'preview')):
        lat = engine_encode(tmp_path, pack, enc, img)
        got, _ = engine_decode(tmp_path, pack, dec, lat.float())
        with torch.no_grad():
            want = reference(pack, dec)(reference(pack, enc)(img.double())[0])[0]
        err = float((got - want).abs().max())
        inside = float(((want > -1) & (want < 1)).double().mean())
        print(f'\n[encoders] {enc} -> {dec}: picture max abs err {err:.3e} (unclamped {inside:.0%})')
        assert got.shape == img.shape and err <= TRIP_TOL
        assert inside > 0.5


def identity_taesd_pair(lc=4, eps=0.001):
    """A factor-1 TAESD encoder and decoder that invert each other when the
    decoder's latent_scale is eps times the encoder's: the encoder's output is
    its RGB input (0 in the other latent channels); the decoder's first conv
    splits its input into +-RGB / eps, ReLU, and its last adds the halves back
    (its tanh clamp, 3 tanh(z / 3) - z = -z^3 / 27, costs 4e-8 at these sizes).
    Centre taps only."""
    enc = taesd_ref.TAESDEncoder(latent_channels=lc, channels=3, num_blocks=[0])
    dec = taesd_ref.TAESDDecoder(latent_channels=lc, channels=6, num_blocks=[0])
    with torch.no_grad():
        for p in list(enc.parameters()) + list(dec.parameters()):
            p.zero_()
        for c in range(3):
            enc[0].weight[c, c, 1, 1] = 1.0
            enc[1].weight[c, c, 1, 1] = 1.0
            dec[1].weight[c, c, 1, 1] = 1 / eps
            dec[1].weight[3 + c, c, 1, 1] = -1 / eps
            dec[3].weight[c, c, 1, 1] = 1.0
            dec[3].weight[c, 3 + c, 1, 1] = -1.0
    return enc, dec


@pytest.mark.parametrize('latent', [None, dict(raw_mean=[0.5, -0.2, 0.1, 0.0],
                                               raw_std=[0.5, 1.5, 2.0, 1.0], final_mean=0.2,
                                               final_std=0.7, decoded_range=[-1.0, 1.0])],
                         ids=['edm2', 'custom'])
def test_engine_round_trip_is_exact(tmp_path, latent, latent_main):
    """The engine alone: with an encoder and a decoder that invert each other,
    decode(encode(picture)) gives the picture back, so encoder.c's mapping
    (picture -> VAE input -> latent -> network space) is the exact inverse of
    decoder.c's, EDM2's [0, 1] convention and a custom latent object alike."""
    main = make_packs.make_unet(32, img_resolution=16, img_channels=4, label_dim=3,
                                model_channels=8, channel_mult=[1], num_blocks=1,
                                attn_resolutions=[])
    enc, dec = identity_taesd_pair()
    pack = write_latent_pack(tmp_path / 'p', main,
                             {'decoder': ('taesd-decoder', dict(latent_channels=4, channels=6,
                                                                num_blocks=[0],
                                                                latent_scale=0.001 * taesd_ref.SD_SCALE),
                                          tensors_of(dec)),
                              'encoder': ('taesd-encoder', dict(latent_channels=4, channels=3,
                                                                num_blocks=[0]), tensors_of(enc))},
                             latent=latent, resolution=16)
    img = pictures(2, 16, 24, 6) * 0.95
    lat = engine_encode(tmp_path, pack, 'encoder', img)
    got, _ = engine_decode(tmp_path, pack, 'decoder', lat.float())
    err = float((got - img.double()).abs().max())
    print(f'\n[encoders] engine decode(encode(x)) with inverse nets ({"custom" if latent else "EDM2"}'
          f' latent object): max abs err {err:.3e}')
    assert err <= 1e-5
    # And the latent is the standardisation of TAESD's view: raw = (v + 1) / 2 / 0.18215.
    ls = {**EDM2_LATENT, **(latent or {})}
    b, w = ls['decoded_range']
    v = b + (img.double() + 1) / 2 * (w - b)
    raw = (v + 1) / 2 / taesd_ref.SD_SCALE
    std = torch.tensor(ls['raw_std'][:3], dtype=torch.float64).view(1, 3, 1, 1)
    mean = torch.tensor(ls['raw_mean'][:3], dtype=torch.float64).view(1, 3, 1, 1)
    want = (raw - mean) * ls['final_std'] / std + ls['final_mean']
    assert float((lat[:, :3] - want).abs().max()) <= 1e-5


# ---------------------------------------------------------------- bad input

def info_fails(pack):
    p = subprocess.run([gfcg_bin(), 'info', '--pack', str(pack)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0, p.stdout
    return p.stderr


def bad_pack(tmp_path, latent_main, mutate, **kw):
    comps = {'encoder': ['sd-vae-encoder', dict(NARROW_VAE),
                         tensors_of(make_vae_encoder(95, calibrate=False))]}
    mutate(comps)
    return write_latent_pack(tmp_path / 'bad', latent_main,
                             {k: tuple(v) for k, v in comps.items()}, **kw)


BAD = {
    'missing': (lambda d: d['encoder'][2].pop('encoder.down_blocks.2.resnets.0.conv_shortcut.bias'),
                "encoder.safetensors: tensor 'encoder.down_blocks.2.resnets.0.conv_shortcut.bias' "
                "is missing"),
    'misshaped': (lambda d: d['encoder'][2].update({'quant_conv.weight': torch.zeros(8, 8, 3, 3)}),
                  "tensor 'quant_conv.weight' has shape [8, 8, 3, 3], the pack's config needs "
                  "[8, 8, 1, 1]"),
    'downsampler': (lambda d: d['encoder'][2].pop('encoder.down_blocks.0.downsamplers.0.conv.weight'),
                    "tensor 'encoder.down_blocks.0.downsamplers.0.conv.weight' is missing"),
    'attention': (lambda d: d['encoder'][2].pop('encoder.mid_block.attentions.0.to_v.weight'),
                  "tensor 'encoder.mid_block.attentions.0.to_v.weight' is missing"),
    'arch': (lambda d: d['encoder'].__setitem__(0, 'vq-encoder'),
             "component 'encoder': architecture 'vq-encoder' is not supported "
             "(sd-vae-encoder, taesd-encoder)"),
    'layers': (lambda d: d['encoder'][1].update(layers_per_block=0),
               "component 'encoder': 'layers_per_block' must be >= 1 for an encoder"),
    'channels': (lambda d: d['encoder'][1].update(latent_channels=3),
                 "tensor 'encoder.conv_out.weight' has shape [8, 32, 3, 3], the pack's config "
                 "needs [6, 32, 3, 3]"),
    'widths': (lambda d: d['encoder'][1].update(block_out_channels=[16, 32, 32]),
               "tensor 'encoder.down_blocks.1.resnets.0.conv1.weight' has shape [16, 16, 3, 3], "
               "the pack's config needs [32, 16, 3, 3]"),
    'preview alone': (lambda d: d.__setitem__('preview-encoder', d.pop('encoder')),
                      "'components.preview-encoder' needs an 'encoder' component too"),
    'taesd naming': (lambda d: d.__setitem__('encoder', ['taesd-encoder', {}, {'x': torch.zeros(1)}]),
                     "holds neither TAESD encoder naming (tensor '0.weight' of the standalone "
                     "file, or 'encoder.layers.0.weight' of diffusers' AutoencoderTiny)"),
}


@pytest.mark.parametrize('case', BAD)
def test_bad_encoders(tmp_path, latent_main, case):
    mutate, message = BAD[case]
    err = info_fails(bad_pack(tmp_path, latent_main, mutate))
    assert message in err, err


def test_encoder_needs_a_latent_pack_of_its_size(tmp_path, latent_main):
    pixel = make_packs.make_unet(33, img_resolution=8, img_channels=3, label_dim=3,
                                 model_channels=8, channel_mult=[1], num_blocks=1,
                                 attn_resolutions=[])
    err = info_fails(bad_pack(tmp_path, pixel, lambda d: None, kind='pixel', channels=3,
                              resolution=8))
    assert "'components.encoder' belongs to latent packs only" in err, err
    three = dict(NARROW_TAESD_ENC, num_blocks=[1, 1, 1])   # factor 4
    err = info_fails(write_latent_pack(tmp_path / 'f', latent_main,
                                       {'encoder': ('taesd-encoder', three,
                                                    tensors_of(taesd_ref.TAESDEncoder(**three)))}))
    assert "component 'encoder' turns 8 latent pixels into 32, the pack's resolution is 64" in err, err
    # A latent pack without encoders loads and says so when asked to encode.
    pack = write_latent_pack(tmp_path / 'none', latent_main,
                             {'decoder': ('taesd-decoder', NARROW_TAESD,
                                          tensors_of(make_taesd(96)))})
    save_file({'x': pictures(1, 16, 16, 7)}, str(tmp_path / 'img.safetensors'))
    p = subprocess.run([gfcg_bin(), 'denoise', '--pack', str(pack), '--net', 'encoder', '--in',
                        str(tmp_path / 'img.safetensors'), '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "pack 'none' has no encoder component 'encoder'" in p.stderr
    assert not (tmp_path / 'o').exists()


def test_encode_refuses_bad_pictures(tmp_path, latent_main):
    pack = write_latent_pack(tmp_path / 'p', latent_main,
                             {'encoder': ('taesd-encoder', NARROW_TAESD_ENC,
                                          tensors_of(make_taesd_encoder(97, calibrate=False)))})
    for shape, message in (((1, 3, 20, 16), 'multiples of 8'), ((1, 4, 16, 16), '[N <= 64, 3, H, W]')):
        save_file({'x': torch.zeros(shape)}, str(tmp_path / 'img.safetensors'))
        p = subprocess.run([gfcg_bin(), 'denoise', '--pack', str(pack), '--net', 'encoder', '--in',
                            str(tmp_path / 'img.safetensors'), '--out', str(tmp_path / 'o')],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 1 and message in p.stderr, p.stderr
        assert not (tmp_path / 'o').exists()


# ---------------------------------------------------------------- the converter

@pytest.fixture(scope='module')
def encoder_files(tmp_path_factory):
    """An sd-vae-ft-mse-like file holding decoder and encoder (older attention
    names, a diffusers config.json), standalone TAESD decoder and encoder files,
    and a diffusers AutoencoderTiny file with both, narrow and random."""
    d = tmp_path_factory.mktemp('encoders')
    vae, venc = make_vae(101), make_vae_encoder(102)
    taesd, tenc = make_taesd(103), make_taesd_encoder(104)
    save_file(vae_ref.legacy_names({**tensors_of(vae), **tensors_of(venc)}),
              str(d / 'vae.safetensors'))
    (d / 'config.json').write_text(json.dumps(dict(NARROW_VAE, _class_name='AutoencoderKL')))
    save_file(tensors_of(taesd), str(d / 'taesd_decoder.safetensors'))
    save_file(tensors_of(tenc), str(d / 'taesd_encoder.safetensors'))
    save_file({**taesd_ref.diffusers_names(tensors_of(taesd)),
               **taesd_ref.diffusers_encoder_names(tensors_of(tenc))},
              str(d / 'tiny.safetensors'))
    return d, venc, tenc


def test_convert_with_encoders(tmp_path, encoder_files, latent_pickles):
    d, venc, tenc = encoder_files
    main, guide, _ = latent_pickles
    out = tmp_path / 'pack'
    p = run_convert('--main', main, '--out', out, '--vae', d / 'vae.safetensors', '--vae-config',
                    d / 'config.json', '--encoder', '--taesd', d / 'taesd_decoder.safetensors',
                    '--taesd-encoder', d / 'taesd_encoder.safetensors')
    assert p.returncode == 0, p.stderr
    m = json.loads((out / 'pack.json').read_text())
    comps = m['components']
    assert set(comps) == {'main', 'decoder', 'preview', 'encoder', 'preview-encoder'}
    enc, penc = comps['encoder'], comps['preview-encoder']
    assert enc['arch'] == 'sd-vae-encoder' and penc['arch'] == 'taesd-encoder'
    assert {k: enc['config'][k] for k in NARROW_VAE} == NARROW_VAE
    assert enc['config']['use_quant_conv'] is True
    assert penc['config'] == NARROW_TAESD_ENC
    assert enc['source']['licence'] == penc['source']['licence'] == 'MIT'
    assert 'Encoders: encoder' in m['licence_note'] and m['latent'] == EDM2_LATENT
    got = load_file(out / 'encoder.safetensors')
    want = vae_ref.legacy_names(tensors_of(venc))
    assert set(got) == set(want)   # no decoder tensors
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert set(load_file(out / 'decoder.safetensors')).isdisjoint(want)
    got = load_file(out / 'preview-encoder.safetensors')
    assert all(torch.equal(got[k], v) for k, v in tensors_of(tenc).items())
    info = gfcg('info', '--pack', out).stdout
    assert 'encoder    sd-vae-encoder' in info and 'preview-encoder taesd-encoder' in info, info
    assert 'unused' not in info
    (tmp_path / 'w').mkdir()
    for role in ('encoder', 'preview-encoder'):
        check_parity(tmp_path / 'w', out, role, pictures(1, 64, 64, 8), f'converted {role}')

    # fp16; the AutoencoderTiny file alone gives both TAESD components, TAESD's
    # encoder becoming the encoder.
    p = run_convert('--main', main, '--out', tmp_path / 'p16', '--fp16', '--taesd',
                    d / 'tiny.safetensors', '--taesd-encoder', d / 'tiny.safetensors')
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / 'p16' / 'pack.json').read_text())
    assert m['components']['encoder']['arch'] == 'taesd-encoder'
    assert 'preview-encoder' not in m['components']
    got = load_file(tmp_path / 'p16' / 'encoder.safetensors')
    want = taesd_ref.diffusers_encoder_names(tensors_of(tenc))
    assert set(got) == set(want) and all(torch.equal(got[k], v.half()) for k, v in want.items())
    check_parity(tmp_path / 'w', tmp_path / 'p16', 'encoder', pictures(1, 32, 32, 9),
                 'converted AutoencoderTiny encoder, F16')


def test_convert_encoder_errors(tmp_path, encoder_files, latent_pickles):
    d, _, _ = encoder_files
    main, _, _ = latent_pickles
    cases = [
        (['--encoder'], '--encoder takes the encoder of the --vae file; give --vae too'),
        (['--vae', d / 'taesd_decoder.safetensors', '--encoder'], None),
        (['--taesd-encoder', d / 'taesd_decoder.safetensors'],
         'neither a TAESD encoder ("0.weight") nor diffusers\' AutoencoderTiny'),
    ]
    t = load_file(d / 'vae.safetensors')
    del t['encoder.down_blocks.1.resnets.0.norm2.bias']
    save_file(t, str(tmp_path / 'cut.safetensors'))
    cases.append((['--vae', tmp_path / 'cut.safetensors', '--vae-config', d / 'config.json',
                   '--encoder'], 'missing tensors for the config: '
                                 'encoder.down_blocks.1.resnets.0.norm2.bias'))
    t = {k: v for k, v in t.items() if not k.startswith('encoder.')}
    save_file(t, str(tmp_path / 'dec-only.safetensors'))
    cases.append((['--vae', tmp_path / 'dec-only.safetensors', '--vae-config', d / 'config.json',
                   '--encoder'], 'no encoder.conv_in.weight: the file holds no AutoencoderKL encoder'))
    t = load_file(d / 'taesd_encoder.safetensors')
    t['2.weight'] = torch.zeros(16, 16, 1, 1)
    save_file(t, str(tmp_path / 'bad_tenc.safetensors'))
    cases.append((['--taesd-encoder', tmp_path / 'bad_tenc.safetensors'],
                  '2.weight has shape [16, 16, 1, 1], the config needs [16, 16, 3, 3]'))
    for i, (args, message) in enumerate(cases):
        p = run_convert('--main', main, '--out', tmp_path / f'o{i}', *args)
        assert p.returncode == 2, (args, p.stderr)
        assert message is None or message in p.stderr, (args, p.stderr)
        assert not (tmp_path / f'o{i}' / 'pack.json').exists()
