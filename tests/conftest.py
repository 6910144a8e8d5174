"""Shared pytest fixtures: the reference modules on sys.path, the tiny packs."""
import os
import sys
from pathlib import Path

# The reference networks are tiny: one thread is ~50x faster than an OpenMP /
# OpenBLAS team fighting for two busy cores. The variables must be set when
# torch loads; they are restored afterwards so the engine under test keeps its
# own threading.
_saved = {v: os.environ.get(v) for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS')}
os.environ.update({v: '1' for v in _saved})
import torch  # noqa: E402
for _v, _old in _saved.items():
    if _old is None:
        del os.environ[_v]
    else:
        os.environ[_v] = _old
torch.set_num_threads(1)

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / 'reference'))

import make_packs  # noqa: E402


@pytest.fixture(scope='session')
def packs(tmp_path_factory):
    """Directory holding every pack written by make_packs.py (tiny-pixel, ...)."""
    d = tmp_path_factory.mktemp('packs')
    make_packs.main(str(d))
    return d
