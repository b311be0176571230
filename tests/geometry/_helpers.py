"""Shared helpers for the geometry tests: seeded random inputs and dtype-aware tolerances.

The random inputs are drawn on the CPU (reproducible on every device), then moved to
``device``. The ``device``, ``dtype`` and ``tol`` fixtures are in ``tests/conftest.py``.
"""

from __future__ import annotations

import math

import torch

DTYPES = [torch.float32, torch.float64]

# Tolerances for results that should agree up to round-off in the given dtype (CPU; the
# ``tol`` fixture of tests/conftest.py also covers CUDA).
_TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-12, 1e-10)}


def tol(dtype: torch.dtype) -> dict[str, float]:
    atol, rtol = _TOL.get(dtype, (0.0, 0.0))  # integer and bool tensors: exact
    return {"atol": atol, "rtol": rtol}


def assert_close(actual, expected, dtype=None, **kwargs) -> None:
    """``torch.testing.assert_close`` with the tolerances of ``dtype`` (default: the actual's).

    Both tensors must be on the same device.
    """
    dtype = dtype or (actual.dtype if isinstance(actual, torch.Tensor) else torch.float64)
    opts = {**tol(dtype), **kwargs}
    torch.testing.assert_close(actual, expected, check_dtype=False, **opts)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype=torch.float64, device=None) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64).to(device, dtype)


def random_axis_angle(
    n: int, max_angle: float = math.pi - 0.1, seed: int = 0, dtype=torch.float64, device=None
) -> torch.Tensor:
    """Axis-angle vectors ``(n, 3)`` with angles uniform in ``[0, max_angle]``."""
    g = gen(seed)
    axis = torch.randn(n, 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * max_angle
    return (axis * angle).to(device, dtype)


def random_rotation(n: int, seed: int = 0, dtype=torch.float64, device=None) -> torch.Tensor:
    """Rotation matrices ``(n, 3, 3)`` from random unit quaternions (uniform on SO(3))."""
    q = torch.randn(n, 4, generator=gen(seed), dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(n, 3, 3)  # fmt: skip
    return R.to(device, dtype)


def rot_z(angle: float, dtype=torch.float64, device=None) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=dtype, device=device)
