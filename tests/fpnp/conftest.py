"""Session-scoped toy problems for the F-PnP tests, built once per worker at small size."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from s2dloc.datasets.toy import make_toy_problem
from s2dloc.features import photometric_pyramid

# Three levels (strides 1, 2, 4) keep the per-level assertions of these tests explicit.
THREE_LEVELS = partial(photometric_pyramid, strides=(1, 2, 4))

# Two workers share two cores: intra-op threads would only oversubscribe them.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy():
    """A 320x240 toy problem with 512 points lifted from the reference view."""
    return make_toy_problem(seed=0, width=320, height=240, num_points=512)


@pytest.fixture(scope="session")
def oracle(toy):
    """Noise-free features: per level ``(N, C)`` references and ``(C, H, W)`` maps, finest first."""
    return toy.features(THREE_LEVELS, oracle=True)


@pytest.fixture(scope="session")
def photometric(toy):
    """Reference features sampled from the reference image (real appearance, not oracle)."""
    return toy.features(THREE_LEVELS)


@pytest.fixture(params=["torch", "numba"])
def backend(request, device):
    """Both solver paths: the torch reference (differentiable) and the compiled CPU path
    (skipped on another ``device``: it runs on the CPU only)."""
    if request.param == "numba":
        if device.type != "cpu":
            pytest.skip("the numba backend runs on the CPU only")
        pytest.importorskip("numba")
    return request.param
