"""Helpers of the plug-in tests: running tools/gimp-batch and `gfcg sample`,
reading PNGs."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get('GFCG_BUILD_DIR', ROOT / 'build'))
GFCG = os.environ.get('GFCG_BIN', str(BUILD / 'engine' / 'cli' / 'gfcg'))


class Gimp:
    def __init__(self, profile, workdir):
        self.profile = profile
        self.workdir = workdir

    def run(self, *exprs, python=False, expect_ok=True, env=None, wrap=()):
        """Runs the expressions in one gimp-console; returns (rc, output).
        wrap: a command to run gimp-batch under (xvfb-run)."""
        cmd = [*wrap, str(ROOT / 'tools' / 'gimp-batch'), '--build', str(BUILD),
               '--profile', str(self.profile)]
        if python:
            cmd.append('--python')
        cmd += list(exprs)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=900, cwd=self.workdir,
                           env=None if env is None else {**os.environ, **env})
        if expect_ok and p.returncode != 0:
            raise AssertionError(f'gimp-batch failed ({p.returncode}):\n{p.stdout}')
        if not expect_ok and p.returncode == 0:
            raise AssertionError(f'gimp-batch succeeded but should have failed:\n{p.stdout}')
        return p.returncode, p.stdout


def gfcg_sample(out, pack, imagenet, mode, seed, steps, *extra):
    """`gfcg sample` with the same settings: the reference pictures."""
    cmd = [GFCG, 'sample', '--imagenet', str(imagenet), '--mode', mode, '--seed', str(seed),
           '--steps', str(steps), '--out', str(out), '-q', *map(str, extra)]
    if pack is not None:
        cmd += ['--pack', str(pack)]
    subprocess.run(cmd, check=True, timeout=900)


def png_rgb(path):
    """(width, height, RGB bytes) of a PNG."""
    from PIL import Image
    im = Image.open(path)
    assert im.mode == 'RGB', f'{path}: mode {im.mode}'
    return im.width, im.height, im.tobytes()
