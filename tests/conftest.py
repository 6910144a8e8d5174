"""Shared pytest fixtures: one thread for the reference, the tiny packs."""
import os

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

import make_packs  # noqa: E402  (tests/reference, on the path by pytest.ini)


@pytest.fixture(scope='session')
def packs(tmp_path_factory):
    """Directory holding every pack written by make_packs.py (tiny-pixel, ...)."""
    d = tmp_path_factory.mktemp('packs')
    make_packs.main(str(d))
    return d
