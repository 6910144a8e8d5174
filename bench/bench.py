#!/usr/bin/env python3
"""Benchmarks: the engine's backends against PyTorch on the same network and machine.

    tools/devenv python3 bench/bench.py [--shapes tiny,default,xs] [--devices cpu,opencl:0]
                                        [--evals 3] [--batch 1] [--out bench/results.json]

For every network shape: writes a pack with random weights and the real shapes
(tiny = tests' tiny-pixel, 16x16; default = data/models/imagenette-64;
xs / xxl = EDM2-XS / EDM2-XXL at 512, i.e. the 64x64x4 latent UNet, 1000 labels),
then times `gfcg bench` on each device and PyTorch (tests/reference/edm2_ref.py in
fp32, normalised weights cached so it does not renormalise per call) in the same
run.  PyTorch runs on the CPU, and on CUDA when present with TF32 off and on.
Prints a markdown table (per evaluation, per image at 32 steps = 63 evaluations,
peak memory, GEMM share and efficiency, ratio to PyTorch) and writes JSON.
Timing is never part of the tests.
"""
import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'reference'))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_packs  # noqa: E402
from edm2_ref import EDM2Precond, MPConv, normalize  # noqa: E402

SHAPES = {
    # EDM2 configs (NVlabs/edm2 training presets): latent 64x64x4, 1000 classes.
    'xs': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=128,
               channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8]),
    'xxl': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=448,
                channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8]),
}


def pack_for(shape, workdir):
    if shape == 'default':
        return os.path.join(ROOT, 'data', 'models', 'imagenette-64')
    if shape == 'tiny':
        d = os.path.join(workdir, 'tiny-pixel')
        if not os.path.exists(os.path.join(d, 'pack.json')):
            make_packs.write_pack(workdir, 'tiny-pixel',
                                  {"title": "tiny", "kind": "pixel", "resolution": 16,
                                   "channels": 3, "classes": make_packs.CLASSES},
                                  {"main": ("edm2-unet",) + make_packs.make_unet(
                                      1, **make_packs.unet_config())})
        return d
    cfg = SHAPES[shape]
    name = f'edm2-{shape}-random'
    d = os.path.join(workdir, name)
    if not os.path.exists(os.path.join(d, 'pack.json')):
        print(f'bench: writing {name} (random weights, fp16)', file=sys.stderr)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            net = EDM2Precond(**cfg).eval()
            for k, p in net.state_dict().items():
                if k.endswith('freqs'):
                    p.copy_(2 * math.pi * torch.randn(p.shape, generator=g))
                elif k.endswith('phases'):
                    p.copy_(2 * math.pi * torch.rand(p.shape, generator=g))
                elif p.ndim == 0:
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g))
        classes = [{"imagenet": i, "wnid": f"n{i:08d}", "name": f"class {i}"} for i in range(1000)]
        make_packs.write_pack(workdir, name, {"title": name, "kind": "latent", "resolution": 512,
                                              "channels": 4, "classes": classes},
                              {"main": ("edm2-unet", cfg, net)}, dtype=torch.float16)
    return d


def run_engine(pack, device, evals, batch, steps, threads):
    env = dict(os.environ, GFCG_OPENCL_PROFILE='1')
    if os.environ.get('GFCG_RT_LIBS'):  # runtime libraries shipped to a GPU host (gpu-run.sh)
        env['LD_LIBRARY_PATH'] = os.environ['GFCG_RT_LIBS']
    cmd = [os.environ.get('GFCG_BIN', 'gfcg'), 'bench', '--pack', pack, '--device', device, '--evals', str(evals),
           '--batch', str(batch), '--steps', str(steps)]
    if threads:
        cmd += ['--threads', str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def torch_net(pack):
    with open(os.path.join(pack, 'pack.json')) as f:
        meta = json.load(f)
    comp = meta['components']['main']
    from safetensors.torch import load_file
    net = EDM2Precond(**comp['config'])
    t = load_file(os.path.join(pack, comp['file']))
    net.load_state_dict({k: t[k].float() for k in net.state_dict()})
    net = net.eval().requires_grad_(False)
    # Inference with the weights normalised once (as the engine does at load).
    for m in net.modules():
        if isinstance(m, MPConv):
            m.register_buffer('_wn', normalize(m.weight) / math.sqrt(m.weight[0].numel()))
            m.forward = types.MethodType(_mpconv_fast, m)
    return net, comp['config']


def _mpconv_fast(self, x, gain=1.0):
    w = self._wn if (not torch.is_tensor(gain) and gain == 1.0) else self._wn * gain
    return x @ w.t() if w.ndim == 2 else F.conv2d(x, w, padding=w.shape[-1] // 2)


def gemm_flops(net, x, sigma, labels):
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x, sigma, labels)
    return fc.get_total_flops()


def run_torch(pack, device, evals, batch, tf32=False):
    net, cfg = torch_net(pack)
    dev = torch.device(device)
    net = net.to(dev)
    r, c, ld = cfg['img_resolution'], cfg['img_channels'], cfg['label_dim']
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(batch, c, r, r, generator=g) * 4 - 2).to(dev)
    sigma = torch.ones(batch, device=dev)
    labels = torch.eye(ld)[torch.arange(batch) % ld].to(dev) if ld else None
    if dev.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.reset_peak_memory_stats()
    flops = gemm_flops(net, x, sigma, labels)
    times = []
    with torch.inference_mode():
        for i in range(evals + 1):
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x, sigma, labels)
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            if i:
                times.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated() if dev.type == 'cuda' else None
    return dict(best_ms=min(times), mean_ms=sum(times) / len(times), flops=flops,
                peak_device_bytes=peak)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shapes', default='tiny,default,xs')
    ap.add_argument('--devices', default='cpu,opencl:0')
    ap.add_argument('--evals', type=int, default=3)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--steps', type=int, default=32)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--peak-gflops', type=float, default=0,
                    help='device fp32 peak for the GEMM efficiency column (0: not shown)')
    ap.add_argument('--workdir', default=os.path.join(ROOT, 'build', 'bench'))
    ap.add_argument('--out', default=os.path.join(ROOT, 'build', 'bench', 'results.json'))
    ap.add_argument('--no-torch', action='store_true')
    ap.add_argument('--no-torch-cpu', action='store_true', help='PyTorch on CUDA only')
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for shape in a.shapes.split(','):
        pack = pack_for(shape, a.workdir)
        ref = None
        if not a.no_torch:
            if not a.no_torch_cpu:
                ref = run_torch(pack, 'cpu', a.evals, a.batch)
                rows.append(dict(shape=shape, runner='PyTorch CPU fp32', **ref))
            if torch.cuda.is_available():
                for tf32 in (False, True):
                    t = run_torch(pack, 'cuda', a.evals, a.batch, tf32)
                    rows.append(dict(shape=shape, runner=f'PyTorch CUDA fp32, TF32 {"on" if tf32 else "off"}', **t))
        flops = ref['flops'] if ref else None
        for dev in a.devices.split(','):
            e = run_engine(pack, dev, a.evals, a.batch, a.steps, a.threads)
            if e is None:
                rows.append(dict(shape=shape, runner=f'gfcg {dev}', error=True))
                continue
            rows.append(dict(shape=shape, runner=f'gfcg {dev} ({e["backend"]})', flops=flops, **e))
    # Ratios: engine time / PyTorch time on the same kind of device.
    for r in rows:
        base = [q for q in rows if q['shape'] == r['shape'] and q['runner'] == 'PyTorch CPU fp32']
        if 'best_ms' in r and base:
            r['ratio_vs_torch_cpu'] = r['best_ms'] / base[0]['best_ms']
        cuda_off = [q for q in rows if q['shape'] == r['shape'] and 'TF32 off' in q['runner']]
        if 'best_ms' in r and cuda_off:
            r['ratio_vs_torch_cuda_tf32_off'] = r['best_ms'] / cuda_off[0]['best_ms']
    info = dict(date=datetime.date.today().isoformat(), machine=platform.node(),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                torch=torch.__version__, batch=a.batch, evals=a.evals,
                command=' '.join(sys.argv))
    with open(a.out, 'w') as f:
        json.dump(dict(info=info, rows=rows), f, indent=2)
    print(f"\n{info['date']}, {info['machine']} ({info['cores']} cores), torch {info['torch']}, "
          f"batch {a.batch}, best of {a.evals}\n")
    print('| net | runner | ms / eval | ms / image-eval | s / image (63 evals) | peak device MiB '
          '| GEMM share | GEMM GFLOP/s | eff. | x PyTorch CPU | x PyTorch CUDA (TF32 off) |')
    print('|' + '---|' * 11)
    for r in rows:
        if r.get('error'):
            print(f"| {r['shape']} | {r['runner']} | failed |" + ' |' * 8)
            continue
        per = r['best_ms'] / a.batch
        peak = r.get('peak_device_bytes') or r.get('peak_tensor_bytes')
        gshare = f"{100 * r['gemm_ms'] / r['mean_ms']:.0f}%" if r.get('gemm_ms') else ''
        gfl = f"{r['gemm_gflops']:.1f}" if r.get('gemm_gflops') else (
            f"{r['flops'] / r['best_ms'] / 1e6:.1f}*" if r.get('flops') and 'PyTorch' in r['runner'] else '')
        eff = f"{100 * r['gemm_gflops'] / a.peak_gflops:.0f}%" if r.get('gemm_gflops') and a.peak_gflops else ''
        rc = f"{r['ratio_vs_torch_cpu']:.2f}" if 'ratio_vs_torch_cpu' in r else ''
        rg = f"{r['ratio_vs_torch_cuda_tf32_off']:.2f}" if 'ratio_vs_torch_cuda_tf32_off' in r else ''
        print(f"| {r['shape']} | {r['runner']} | {r['best_ms']:.1f} | {per:.1f} | "
              f"{per * (2 * a.steps - 1) / 1e3:.2f} | {peak / 1048576 if peak else 0:.0f} | {gshare} | "
              f"{gfl} | {eff} | {rc} | {rg} |")
    print('\n(* whole-network GFLOP/s of PyTorch, from torch.utils.flop_counter)')


if __name__ == '__main__':
    main()
