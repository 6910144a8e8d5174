"""Fixtures of the plug-in tests: tiny packs, and one GIMP profile for the
whole session (so GIMP scans its plug-ins once)."""

import pytest

from plugin_helpers import Gimp


@pytest.fixture(scope='session')
def tiny_packs(tmp_path_factory):
    """tests/reference/make_packs.py's packs (tiny-pixel: 16x16, ImageNet
    classes 0, 217, 482, 491, with guide, uncond and classifier)."""
    import make_packs  # noqa: E402  (imports torch)
    d = tmp_path_factory.mktemp('packs')
    make_packs.main(str(d))
    return d


@pytest.fixture(scope='session')
def profile(tmp_path_factory):
    return tmp_path_factory.mktemp('gimp-profile')


@pytest.fixture
def gimp(profile, tmp_path):
    return Gimp(profile, tmp_path)
