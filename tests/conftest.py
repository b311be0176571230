"""Fixtures for every test: the devices and dtypes to run on, and dtype-aware tolerances.

A test that takes ``device`` runs once per device: on the CPU, and on CUDA when
``torch.cuda.is_available()`` (``--device cpu`` or ``--device cuda`` picks one; asking for CUDA
without it skips those cases). A test that takes ``dtype`` runs in float32 and float64
(``--dtype float64`` picks one). ``tol`` gives ``atol``/``rtol`` for ``torch.testing.
assert_close`` suited to the test's ``dtype`` and ``device``, e.g.::

    def test_op(device, dtype, tol):
        x = torch.rand(4, 3, device=device, dtype=dtype)
        torch.testing.assert_close(op(x), expected.to(device, dtype), **tol)

Gradient checks (``torch.autograd.gradcheck``) run in float64 only, on every ``device``.
Tests comparing float32 convolutions on CUDA with a reference take ``no_tf32`` (TF32 keeps
only 10 bits of mantissa).
"""

from __future__ import annotations

import pytest
import torch

from s2dloc.datasets.synthetic import write as synthetic_write

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# (atol, rtol) for results that agree up to round-off in a dtype. CUDA float32 is looser:
# convolutions may use TF32 and reductions run in a different order.
TOLERANCES = {
    ("cpu", torch.float32): (1e-5, 1e-5),
    ("cpu", torch.float64): (1e-12, 1e-10),
    ("cuda", torch.float32): (1e-4, 1e-4),
    ("cuda", torch.float64): (1e-10, 1e-9),
}


def tolerance(dtype: torch.dtype, device: str | torch.device = "cpu") -> dict[str, float]:
    """``{"atol": ..., "rtol": ...}`` for comparing ``dtype`` results computed on ``device``."""
    kind = torch.device(device).type
    atol, rtol = TOLERANCES.get((kind, dtype), TOLERANCES.get(("cpu", dtype), (0.0, 0.0)))
    return {"atol": atol, "rtol": rtol}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("s2dloc")
    group.addoption(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda", "all"),
        help="devices for tests taking `device`: auto = cpu + cuda when available (default)",
    )
    group.addoption(
        "--dtype",
        default="all",
        choices=("all", *DTYPES),
        help="dtypes for tests taking `dtype` (default: float32 and float64)",
    )


def _device_params(choice: str) -> list:
    cuda = torch.cuda.is_available()
    names = {"cpu": ["cpu"], "cuda": ["cuda"], "all": ["cpu", "cuda"]}.get(choice)
    names = names or (["cpu", "cuda"] if cuda else ["cpu"])
    skip = pytest.mark.skip(reason="no CUDA device (torch.cuda.is_available() is False)")
    # "cuda:0", not "cuda": tensors report an indexed device, and tests compare with ``==``.
    devices = {"cpu": torch.device("cpu"), "cuda": torch.device("cuda", 0)}
    return [pytest.param(devices[n], id=n, marks=() if n == "cpu" or cuda else skip) for n in names]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``device`` and ``dtype`` (unless a test parametrises them itself)."""
    explicit = {
        name
        for mark in metafunc.definition.iter_markers("parametrize")
        for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
    }
    explicit = {n.strip() for n in explicit}
    if "device" in metafunc.fixturenames and "device" not in explicit:
        metafunc.parametrize("device", _device_params(metafunc.config.getoption("--device")))
    if "dtype" in metafunc.fixturenames and "dtype" not in explicit:
        choice = metafunc.config.getoption("--dtype")
        names = list(DTYPES) if choice == "all" else [choice]
        metafunc.parametrize("dtype", [pytest.param(DTYPES[n], id=n) for n in names])


@pytest.fixture
def tol(request: pytest.FixtureRequest) -> dict[str, float]:
    """Tolerances for the test's ``dtype`` (float64 if it takes none) on its ``device``."""
    names = request.fixturenames
    dtype = request.getfixturevalue("dtype") if "dtype" in names else torch.float64
    device = request.getfixturevalue("device") if "device" in names else "cpu"
    return tolerance(dtype, device)


@pytest.fixture
def no_tf32():
    """Full float32 precision for CUDA convolutions and matrix products during the test."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    yield
    cudnn.allow_tf32, matmul.allow_tf32 = saved


@pytest.fixture
def interrupt_after():
    """``stop(monkeypatch, n)``: the synthetic world writer stops (like a kill) after ``n``
    images."""

    def stop(monkeypatch: pytest.MonkeyPatch, num_images: int) -> None:
        real, count = synthetic_write.write_png, [0]

        def write_png(path, rgb):
            if count[0] == num_images:
                raise KeyboardInterrupt
            count[0] += 1
            real(path, rgb)

        monkeypatch.setattr(synthetic_write, "write_png", write_png)

    return stop
