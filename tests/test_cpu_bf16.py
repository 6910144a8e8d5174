"""`--device cpu:bf16`: a whole sampling run on bf16 convolutions stays close to
the fp32 one, the trace says which arithmetic drew it, and where bf16 cannot
run (a CPU without avx512_bf16 or AMX, the OpenBLAS path) the command fails
with the reason instead of drawing in fp32 under a bf16 label.

Tolerance: relative RMS error of the final raw sample against fp32 <= 2e-2.
Each bf16 convolution is ~2e-3 off (tests/test-cpu-bf16.c); over a
trajectory the errors of its 2N-1 evaluations partly cancel and are damped
by the sampler: measured 7.7e-3 for this test's run (pack class 2, seed 5,
8 steps), 3.8e-3 for class 0, seed 1 at 32 steps.  2e-2 leaves 2.6x of room,
and a picture drawn wrong (a dropped layer, a garbled channel) is off by
order 1.  Below 1e-4 the run was fp32, not bf16.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

PACK = Path(__file__).resolve().parent.parent / 'data' / 'models' / 'imagenette-64'
GFCG = os.environ.get('GFCG_BIN') or shutil.which('gfcg')
REL_TOL = 2e-2
MIN_BF16 = 1e-4


def gfcg(*args, env=None):
    if not GFCG:
        pytest.fail('engine binary not found: set GFCG_BIN', pytrace=False)
    return subprocess.run([GFCG] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, **(env or {})))


def bf16_missing():
    """Why cpu:bf16 cannot run here (the line `gfcg devices` prints), or None."""
    p = gfcg('devices')
    assert p.returncode == 0, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith('cpu:bf16'))
    return line.split('unavailable: ', 1)[1] if 'unavailable: ' in line else None


def sample(tmp_path, device, steps):
    name = device.replace(':', '-')
    p = gfcg('sample', '--pack', PACK, '--class', 'pack:2', '--seed', 5, '--steps', steps,
             '--device', device, '--out', tmp_path / f'{name}.png',
             '--out-raw', tmp_path / f'{name}.safetensors', '--trace', tmp_path / f'{name}.json',
             '--quiet')
    assert p.returncode == 0, p.stderr
    trace = json.loads((tmp_path / f'{name}.json').read_text())
    return load_file(str(tmp_path / f'{name}.safetensors'))['x'].double(), trace


def test_bf16_sample_is_close_to_fp32_and_traced(tmp_path):
    why = bf16_missing()
    if why:
        pytest.skip(f'cpu:bf16 unavailable: {why}')
    x32, t32 = sample(tmp_path, 'cpu', 8)
    x16, t16 = sample(tmp_path, 'cpu:bf16', 8)
    rel = float((x16 - x32).norm() / x32.norm())
    assert MIN_BF16 < rel <= REL_TOL, f'relative RMS error against fp32 {rel:.3g}'
    assert t32['device']['requested'] == 'cpu' and t32['device']['precision'] == 'fp32'
    assert t16['device']['requested'] == 'cpu:bf16' and t16['device']['precision'] == 'bf16'
    assert 'bf16' in t16['device']['backend'] and 'bf16' not in t32['device']['backend']


@pytest.mark.parametrize('env,reason', [
    # oneDNN dispatches to plain AVX-512 here: no bf16 instructions
    ({'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE'}, 'neither avx512_bf16 nor AMX'),
    ({'GFCG_CPU_CONV': 'blas'}, 'GFCG_CPU_CONV=blas'),
])
def test_bf16_refused_with_the_reason(tmp_path, env, reason):
    if 'without oneDNN' in (bf16_missing() or ''):
        reason = 'without oneDNN'
    p = gfcg('sample', '--pack', PACK, '--class', 'pack:2', '--steps', 2, '--device', 'cpu:bf16',
             '--out', tmp_path / 'x.png', env=env)
    assert p.returncode != 0 and not (tmp_path / 'x.png').exists()
    assert 'cpu:bf16' in p.stderr and reason in p.stderr, p.stderr
    p = gfcg('devices', env=env)
    assert p.returncode == 0 and 'cpu:bf16    unavailable: ' in p.stdout, p.stdout
