"""The evaluation's batched sampler (research/eval/sample_modes.py) follows the
same definitions as the per-image reference, which the engine matches: every
configuration it evaluates, on a tiny pack, batch of 2 with different classes."""

import pytest
import torch

import sample_modes
from gfcg_ref import load_pack, noise, sample


@pytest.mark.parametrize('name', list(sample_modes.CONFIGS))
def test_batched_matches_reference(packs, name):
    mode, w, s_max, lagged = sample_modes.CONFIGS[name]
    pack = load_pack(str(packs / 'tiny-pixel'), torch.float64)
    b = sample_modes.Batched(pack, 'cpu', amp=False)
    b.nets = {k: v.double() for k, v in b.nets.items()}
    b.clf = b.clf.double()
    labels = torch.tensor([1, 3])
    x0 = torch.cat([noise(5, [3, 16, 16]), noise(6, [3, 16, 16])]).double()
    got = sample_modes.sample_batch(b, labels, mode, w, s_max, lagged, 4, None, noise=x0)
    for i, (k, seed) in enumerate([(1, 5), (3, 6)]):
        ref, _ = sample(pack, k, mode=mode, seed=seed, steps=4, guidance=w, s_max=s_max,
                        lagged=lagged, temperature=1.0, sigma_lo=0.0, sigma_hi=1000.0)
        err = (got[i] - ref[0]).abs().max().item()
        assert err < 1e-6, f'{name} image {i}: {err}'
