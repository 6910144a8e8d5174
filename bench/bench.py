#!/usr/bin/env python3
"""Benchmarks: the engine's backends against PyTorch on the same network and machine.

    tools/devenv python3 bench/bench.py [--shapes tiny,default,xs] [--devices cpu,opencl:0]
                                        [--evals 3] [--batch 1] [--out bench/results.json]

For every network shape: writes a pack with random weights and the real shapes
(tiny = tests' tiny-pixel, 16x16; default = data/models/imagenette-64;
xs / xxl = EDM2-XS / EDM2-XXL at 512, i.e. the 64x64x4 latent UNet, 1000 labels),
then times `gfcg bench` on each device and PyTorch (converters/gfcg_convert/nets/edm2.py in
fp32, normalised weights cached so it does not renormalise per call) in the same
run.  PyTorch runs on the CPU, and on CUDA when present with TF32 off and on.

Other networks of a pack (`gfcg bench --net decoder|classifier`), each in a pack
with a tiny main UNet that is not timed:
  vae512    the SD VAE decoder (sd-vae-ft-mse's config, 49.5M parameters):
            a 64x64x4 latent -> 512x512 picture (converters/gfcg_convert/nets/vae.py)
  taesd512  TAESD's published decoder (64 channels, blocks 3,3,3,1), same latent
  mobilenet MobileNetV2 1.0 as Coral's (TF SAME padding, 1001 outputs)
  resnet50  torchvision's ResNet-50 (random batch-norm statistics)
The classifiers sit in a 64x64 pixel pack, so they are fed 64x64 images that
they resize to 224 (as during GFCG sampling of the 64 px packs).  PyTorch runs
tests/reference/latent_ref.py (latent mapping, decoder, picture clamp) and
imagenet_cls_ref.py (input preparation, network) in fp32; its ResNet-50 has
batch norm folded into the convs (torch.nn.utils.fusion), as the engine folds it.

PyTorch runs in a fresh process per network (spawn), with torch.set_num_threads
set to --threads (when given) like the engine: one warm-up evaluation (the one
the flop counter watches), then best of --evals.  Peak memory: PyTorch CUDA's
max allocated bytes; on the CPU the peak resident set (VmHWM, reset once the
weights are loaded) of the PyTorch process, with its resident set before
loading the network ("idle": the PyTorch runtime), and the engine process's
max RSS (loading included).  `gfcg cpu` rows also give the whole network's
GFLOP/s (the engine's own count of its convolutions and products), that as a
share of this machine's fp32 SGEMM rate (OpenBLAS and oneDNN, 2048^3, measured
by `gfcg bench` in the same run at the same thread count), and the
convolutions' own rate; devices cpu@blas and cpu@onednn pick the CPU
backend's convolution path (GFCG_CPU_CONV), and cpu:bf16 is the CPU backend
with bf16 convolutions (where the CPU has them).  Prints a markdown table (per evaluation, per image at
32 steps = 63 evaluations for UNets, peak memory, GEMM share and efficiency,
ratio to PyTorch) and writes JSON.  Timing is never part of the tests.
"""
import argparse
import datetime
import json
import gc
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import make_packs  # noqa: E402
from gfcg_convert.nets import taesd as taesd_ref  # noqa: E402
from gfcg_convert.nets import vae as vae_ref  # noqa: E402
from gfcg_convert.nets.edm2 import EDM2Precond, MPConv, normalize  # noqa: E402
from imagenet_cls_ref import Bottleneck, MobileNetV2, ResNet50  # noqa: E402
from latent_ref import load_decoder  # noqa: E402

SHAPES = {
    # EDM2 configs (NVlabs/edm2 training presets): latent 64x64x4, 1000 classes.
    'xs': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=128,
               channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8]),
    'xxl': dict(img_resolution=64, img_channels=4, label_dim=1000, model_channels=448,
                channel_mult=[1, 2, 3, 4], num_blocks=3, attn_resolutions=[16, 8]),
}

# Shapes that are not UNets: the `gfcg bench --net` they time.
NETS = {'vae512': 'decoder', 'taesd512': 'decoder', 'mobilenet': 'classifier',
        'resnet50': 'classifier'}
UNETS = ('main', 'guide', 'uncond')
IMAGENET_CLS = dict(in_channels=3, resolution=224, num_classes=1000, label_space='imagenet')


def net_of(shape):
    return NETS.get(shape, 'main')


def tiny_main(res, channels):
    """The main UNet every pack needs; as small as it gets (never timed here)."""
    return make_packs.make_unet(1, img_resolution=res, img_channels=channels, label_dim=4,
                                model_channels=16, channel_mult=[1], num_blocks=1,
                                attn_resolutions=[])


@torch.no_grad()
def random_decoder(shape):
    if shape == 'vae512':
        cfg = dict(vae_ref.SD_VAE_CONFIG)
        return 'sd-vae-decoder', cfg, vae_ref.randomize(vae_ref.SDVAEDecoder(**cfg).eval(), 1)
    return 'taesd-decoder', {}, taesd_ref.randomize(taesd_ref.TAESDDecoder().eval(), 1)


@torch.no_grad()
def random_classifier(shape):
    """He-scaled weights (and, for ResNet-50, batch norms far from identity),
    so activations keep their size through the network."""
    g = torch.Generator().manual_seed(1)
    if shape == 'mobilenet':
        q = 128 / 255   # Coral's uint8 input: (q - 128) / 128
        cfg = dict(IMAGENET_CLS, mean=[q] * 3, std=[q] * 3, label_offset=1, padding='same')
        net = MobileNetV2(1001, 'same', mean=cfg['mean'], std=cfg['std'])
        for name, p in net.named_parameters():
            if name.endswith('.bias'):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 4:
                gain = 1.0 if '.project.' in name else 2.0
                p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(gain / p[0].numel()))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
        return 'mobilenet-v2', cfg, net.eval()
    cfg = dict(IMAGENET_CLS, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    net = ResNet50()
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) *
                           math.sqrt(2 / m.weight[0].numel()))
        elif isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            lo, hi = (0.1, 0.4) if name.endswith('bn3') else (0.6, 1.4)
            m.weight.copy_(lo + (hi - lo) * torch.rand(n, generator=g))
            m.bias.copy_(0.2 * torch.randn(n, generator=g))
            m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
    net.fc.weight.copy_(torch.randn(net.fc.weight.shape, generator=g) / math.sqrt(2048))
    net.fc.bias.copy_(0.1 * torch.randn(1000, generator=g))
    return 'resnet-50', cfg, net.eval()


def component_pack(shape, workdir):
    """A pack holding the decoder or classifier of `shape` beside a tiny main UNet."""
    name = f'{shape}-random'
    d = os.path.join(workdir, name)
    if os.path.exists(os.path.join(d, 'pack.json')):
        return d
    print(f'bench: writing {name} (random weights, fp32)', file=sys.stderr)
    if NETS[shape] == 'decoder':
        meta = {"title": name, "kind": "latent", "resolution": 512, "channels": 4}
        comps = {"main": ("edm2-unet",) + tiny_main(64, 4), "decoder": random_decoder(shape)}
    else:
        meta = {"title": name, "kind": "pixel", "resolution": 64, "channels": 3}
        comps = {"main": ("edm2-unet",) + tiny_main(64, 3),
                 "classifier": random_classifier(shape)}
    return make_packs.write_pack(workdir, name, dict(meta, classes=make_packs.CLASSES), comps)


@torch.no_grad()
def random_unet(cfg, seed):
    """An EDM2 UNet of config cfg with random weights (EDM2 normalises them
    at every use, so plain normals serve)."""
    g = torch.Generator().manual_seed(seed)
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
    return net


def pack_for(shape, workdir):
    if shape in NETS:
        return component_pack(shape, workdir)
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
        net = random_unet(cfg, 1)
        classes = [{"imagenet": i, "wnid": f"n{i:08d}", "name": f"class {i}"} for i in range(1000)]
        make_packs.write_pack(workdir, name, {"title": name, "kind": "latent", "resolution": 512,
                                              "channels": 4, "classes": classes},
                              {"main": ("edm2-unet", cfg, net)}, dtype=torch.float16)
    return d


def run_engine(pack, net, device, evals, batch, steps, threads):
    env = dict(os.environ, GFCG_OPENCL_PROFILE='1')
    # "cpu@blas" / "cpu@onednn": the CPU backend with that convolution path
    # (GFCG_CPU_CONV), so that both paths of one build run in the same table.
    device, _, path = device.partition('@')
    if path:
        env['GFCG_CPU_CONV'] = path
    if os.environ.get('GFCG_RT_LIBS'):  # runtime libraries shipped to a GPU host (gpu-run.sh)
        env['LD_LIBRARY_PATH'] = os.environ['GFCG_RT_LIBS']
    cmd = [os.environ.get('GFCG_BIN', 'gfcg'), 'bench', '--pack', pack, '--net', net,
           '--device', device, '--evals', str(evals), '--batch', str(batch), '--steps', str(steps)]
    if threads:
        cmd += ['--threads', str(threads)]
    # Through a small Python that waits for the engine with wait4: a child
    # forked from this process (PyTorch loaded) would report this process's
    # resident set as its own maximum.
    p = subprocess.run([sys.executable, '-c', RSS_HELPER] + cmd, capture_output=True, text=True,
                       env=env)
    err, _, rss = p.stderr.rpartition('BENCH_MAXRSS_KB ')
    sys.stderr.write(err)
    if p.returncode != 0:
        return None
    return dict(json.loads(p.stdout.strip().splitlines()[-1]), peak_rss_bytes=int(rss) * 1024)


RSS_HELPER = """import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
sys.stderr.write(f'BENCH_MAXRSS_KB {usage.ru_maxrss}')
sys.exit(os.waitstatus_to_exitcode(status))
"""


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


def fold_batchnorm(net):
    """ResNet50 with every batch norm folded into its conv (what the engine runs)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    net.conv1, net.bn1 = fuse_conv_bn_eval(net.conv1, net.bn1), torch.nn.Identity()
    for m in net.modules():
        if isinstance(m, Bottleneck):
            for i in (1, 2, 3):
                conv, bn = getattr(m, f'conv{i}'), getattr(m, f'bn{i}')
                setattr(m, f'conv{i}', fuse_conv_bn_eval(conv, bn))
                setattr(m, f'bn{i}', torch.nn.Identity())
            if m.downsample is not None:
                m.downsample = torch.nn.Sequential(fuse_conv_bn_eval(*m.downsample))
    return net


def torch_component(pack, net_name):
    """(module, pack.json) of the pack's decoder or classifier in fp32, eval mode."""
    with open(os.path.join(pack, 'pack.json')) as f:
        meta = json.load(f)
    comp = meta['components'][net_name]
    if net_name in ('decoder', 'preview'):
        return load_decoder(pack, meta, comp, dtype=torch.float32), meta
    from safetensors.torch import load_file
    cfg = comp['config']
    kw = dict(resolution=cfg['resolution'], mean=tuple(cfg['mean']), std=tuple(cfg['std']))
    if comp['arch'] == 'mobilenet-v2':
        net = MobileNetV2(cfg.get('label_offset', 0) + cfg['num_classes'],
                          cfg.get('padding', 'same'), **kw)
    else:
        net = ResNet50(cfg['num_classes'], **kw)
    t = load_file(os.path.join(pack, comp['file']))
    net.load_state_dict({k: t[k].to(v.dtype) for k, v in net.state_dict().items()})
    net = net.eval().requires_grad_(False)
    if comp['arch'] == 'resnet-50':
        net = fold_batchnorm(net)
    return net, meta


def torch_inputs(pack, net_name, batch):
    """(module, inputs of one evaluation), the inputs as `gfcg bench` makes them."""
    g = torch.Generator().manual_seed(1)
    if net_name in UNETS:
        net, cfg = torch_net(pack)
        r, c, ld = cfg['img_resolution'], cfg['img_channels'], cfg['label_dim']
        x = torch.rand(batch, c, r, r, generator=g) * 4 - 2
        labels = torch.eye(ld)[torch.arange(batch) % ld] if ld else None
        return net, (x, torch.ones(batch), labels)
    net, meta = torch_component(pack, net_name)
    if net_name == 'classifier':
        r = meta['resolution']
        return net, (torch.rand(batch, 3, r, r, generator=g) * 2 - 1,)
    r = meta['components']['main']['config']['img_resolution']
    return net, (torch.rand(batch, meta['channels'], r, r, generator=g) * 4 - 2,)


def counted_run(net, args):
    """One evaluation under the flop counter (None when torch lacks it)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        net(*args)
        return None
    with FlopCounterMode(display=False) as fc:
        net(*args)
    return fc.get_total_flops()


def reset_peak_rss():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')   # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def proc_status(key):
    """Bytes of a /proc/self/status field (VmRSS, VmHWM), else None."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss(reset_ok):
    if reset_ok:
        return proc_status('VmHWM')
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def torch_child(pack, net_name, device, evals, batch, threads, tf32):
    if threads:
        torch.set_num_threads(threads)
    idle_rss = proc_status('VmRSS')   # PyTorch imported, no network yet
    dev = torch.device(device)
    net, args = torch_inputs(pack, net_name, batch)
    net = net.to(dev)
    args = tuple(a.to(dev) if a is not None else None for a in args)
    if dev.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.reset_peak_memory_stats()
    gc.collect()
    reset_ok = reset_peak_rss()
    times = []
    with torch.inference_mode():
        flops = counted_run(net, args)   # the warm-up evaluation
        for i in range(evals):
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(*args)
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
    out = dict(best_ms=min(times), mean_ms=sum(times) / len(times), flops=flops,
               threads=torch.get_num_threads())
    if dev.type == 'cuda':
        out['peak_device_bytes'] = torch.cuda.max_memory_allocated()
    else:
        out['peak_rss_bytes'] = peak_rss(reset_ok)
        out['idle_rss_bytes'] = idle_rss
    return out


def run_torch(pack, net_name, device, evals, batch, threads=0, tf32=False):
    """PyTorch in a fresh process, so that its peak memory is this network's."""
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(torch_child, (pack, net_name, device, evals, batch, threads, tf32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shapes', default='tiny,default,xs')
    ap.add_argument('--devices', default='cpu,opencl:0',
                    help='engine devices; cpu@blas and cpu@onednn pick the CPU convolution path, '
                    'cpu:bf16 its bf16 convolutions')
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
    ap.add_argument('--omp-wait-policy', choices=['active', 'passive'],
                    help="OMP_WAIT_POLICY of the PyTorch processes (default: OpenMP's own); "
                    "passive keeps PyTorch's threads from spinning at barriers, which costs "
                    "a lot where other work shares the cores")
    a = ap.parse_args()
    if a.omp_wait_policy:   # read by libgomp when the spawned PyTorch process starts
        os.environ['OMP_WAIT_POLICY'] = a.omp_wait_policy.upper()
    os.makedirs(a.workdir, exist_ok=True)
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    load0 = os.getloadavg()[0]   # other work on the machine skews CPU timings
    for shape in a.shapes.split(','):
        pack = pack_for(shape, a.workdir)
        net = net_of(shape)
        ref = None
        if not a.no_torch:
            if not a.no_torch_cpu:
                ref = run_torch(pack, net, 'cpu', a.evals, a.batch, a.threads)
                rows.append(dict(shape=shape, net=net, runner='PyTorch CPU fp32', **ref))
            if torch.cuda.is_available():
                for tf32 in (False, True):
                    t = run_torch(pack, net, 'cuda', a.evals, a.batch, a.threads, tf32)
                    rows.append(dict(shape=shape, net=net,
                                     runner=f'PyTorch CUDA fp32, TF32 {"on" if tf32 else "off"}', **t))
        flops = ref['flops'] if ref else None
        for dev in a.devices.split(','):
            e = run_engine(pack, net, dev, a.evals, a.batch, a.steps, a.threads)
            if e is None:
                rows.append(dict(shape=shape, net=net, runner=f'gfcg {dev}', error=True))
                continue
            e.pop('net', None)
            rows.append(dict(shape=shape, net=net, runner=f'gfcg {dev} ({e["backend"]})',
                             flops=flops, **e))
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
                torch=torch.__version__, batch=a.batch, evals=a.evals, threads=a.threads,
                omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                command=' '.join(sys.argv), load_before=load0, load_after=os.getloadavg()[0])
    with open(a.out, 'w') as f:
        json.dump(dict(info=info, rows=rows), f, indent=2)
    print(f"\n{info['date']}, {info['machine']} ({info['cores']} cores), torch {info['torch']}, "
          f"batch {a.batch}, best of {a.evals}, threads {a.threads or 'all'}"
          f"{', OMP_WAIT_POLICY ' + info['omp_wait_policy'] if info['omp_wait_policy'] else ''}, "
          f"load average {load0:.1f} before, {info['load_after']:.1f} after\n")
    sg = [r for r in rows if r.get('sgemm_gflops')]
    if sg:
        print('fp32 SGEMM on this machine (2048^3, measured by each gfcg cpu run): ' +
              '; '.join(f"{r['runner']} {r['shape']}: OpenBLAS {r['sgemm_gflops_openblas']:.1f}, "
                        f"oneDNN {r['sgemm_gflops_onednn']:.1f} GFLOP/s" for r in sg) + '\n')
    print('| net | runner | ms / eval | ms / image-eval | s / image (63 evals) | peak device MiB '
          '| peak RSS MiB | GEMM share | GEMM GFLOP/s | eff. | net GFLOP/s | % of SGEMM '
          '| conv GFLOP/s (% SGEMM) | x PyTorch CPU | x PyTorch CUDA (TF32 off) |')
    print('|' + '---|' * 15)
    for r in rows:
        if r.get('error'):
            print(f"| {r['shape']} | {r['runner']} | failed |" + ' |' * 12)
            continue
        per = r['best_ms'] / a.batch
        # Per image at --steps: UNet evaluations only (2 steps - 1 per picture).
        img = f"{per * (2 * a.steps - 1) / 1e3:.2f}" if r['net'] in UNETS else ''
        peak = r.get('peak_device_bytes') or r.get('peak_tensor_bytes')
        rss = f"{r['peak_rss_bytes'] / 1048576:.0f}" if r.get('peak_rss_bytes') else ''
        if rss and r.get('idle_rss_bytes'):
            rss += f" ({r['idle_rss_bytes'] / 1048576:.0f} idle)"
        gshare = f"{100 * r['gemm_ms'] / r['mean_ms']:.0f}%" if r.get('gemm_ms') else ''
        gfl = f"{r['gemm_gflops']:.1f}" if r.get('gemm_gflops') else (
            f"{r['flops'] / r['best_ms'] / 1e6:.1f}*" if r.get('flops') and 'PyTorch' in r['runner'] else '')
        eff = f"{100 * r['gemm_gflops'] / a.peak_gflops:.0f}%" if r.get('gemm_gflops') and a.peak_gflops else ''
        # Whole-network rate: the engine's own count of its products (CPU),
        # PyTorch's flop counter for PyTorch; as a share of the SGEMM rate
        # the engine measured in the same run at the same thread count.
        sgemm = max([q['sgemm_gflops'] for q in sg if q['shape'] == r['shape']] or [0])
        ngf = r.get('net_gflops') or (r['flops'] / r['best_ms'] / 1e6 if r.get('flops') else 0)
        net_gf = f"{ngf:.1f}" if ngf else ''
        pct = f"{100 * ngf / sgemm:.0f}%" if ngf and sgemm else ''
        conv = (f"{r['conv_gflops']:.1f} ({r['conv_pct_of_sgemm']:.0f}%)"
                if r.get('conv_gflops') else '')
        rc = f"{r['ratio_vs_torch_cpu']:.2f}" if 'ratio_vs_torch_cpu' in r else ''
        rg = f"{r['ratio_vs_torch_cuda_tf32_off']:.2f}" if 'ratio_vs_torch_cuda_tf32_off' in r else ''
        print(f"| {r['shape']} | {r['runner']} | {r['best_ms']:.1f} | {per:.1f} | "
              f"{img} | {peak / 1048576 if peak else 0:.0f} | {rss} | {gshare} | "
              f"{gfl} | {eff} | {net_gf} | {pct} | {conv} | {rc} | {rg} |")
    print('\n(* whole-network GFLOP/s of PyTorch, from torch.utils.flop_counter)')


if __name__ == '__main__':
    main()
