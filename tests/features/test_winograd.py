"""Winograd's F(6x6, 5x5) convolution equals the direct one to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2dloc.features import winograd
from s2dloc.features.winograd import (
    BIAS_POSITION,
    _at,
    _bt_ends,
    _bt_pairs,
    conv5x5,
    filter_matrix,
    input_matrix,
    output_matrix,
    winograd_weights,
)


def test_transforms_compute_a_correlation_exactly():
    """``A^T [(G g) * (B^T d)]`` is the 6 outputs of the 5-tap correlation of 10 values
    (float64, to rounding): the three matrices belong together."""
    rng = np.random.default_rng(0)
    at, g, bt = output_matrix(), filter_matrix(), input_matrix()
    assert at.shape == (6, 10) and g.shape == (10, 5) and bt.shape == (10, 10)
    for _ in range(20):
        d, w = rng.standard_normal(10), rng.standard_normal(5)
        expected = [w @ d[i : i + 5] for i in range(6)]
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-12)
    # the bias position's 6x6 output is all ones, so the bias enters there once
    k = np.zeros(100)
    k[BIAS_POSITION] = 1.0
    np.testing.assert_array_equal(at @ k.reshape(10, 10) @ at.T, np.ones((6, 6)))


def test_transform_coefficients_are_exact_in_float32():
    """Every coefficient of B^T and A^T is a float32 value: the compiled transforms use them
    unrounded."""
    for m in (input_matrix(), output_matrix()):
        np.testing.assert_array_equal(m.astype(np.float32).astype(np.float64), m)
    # and they are float32 scalars (a float64 one would widen the compiled loops' arithmetic)
    names = [f"{g}{i}" for g in "EABCD" for i in range(3)] + ["E3", "P0", "P1", "P2", "P3"]
    names += [f"W{k}{i}" for k in (1, 2, 3) for i in range(1, 6)]
    assert all(type(getattr(winograd, n)) is np.float32 for n in names)


def test_compiled_transforms_are_the_matrices():
    """The hand-shared terms of the compiled transforms compute ``B^T d`` and ``A^T m``."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        d = rng.standard_normal(10).astype(np.float32)
        bt = input_matrix() @ d
        np.testing.assert_allclose(_bt_ends(*d), bt[[0, 9]], rtol=0, atol=1e-5)
        np.testing.assert_allclose(_bt_pairs(*d[1:9]), bt[1:9], rtol=0, atol=1e-5)
        np.testing.assert_allclose(_at(*d), output_matrix() @ d, rtol=0, atol=1e-5)


def random_conv(B, Ci, Co, H, W, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, Ci, H, W, generator=g).abs() * 3  # gated activations are mostly >= 0
    weight = torch.randn(Co, Ci, 5, 5, generator=g) / (5 * Ci**0.5)
    b = torch.randn(Co, generator=g) if bias else None
    return x.contiguous(memory_format=torch.channels_last), weight, b


@pytest.mark.parametrize(
    "shape",
    [
        (1, 80, 32, 37, 50),
        (2, 7, 129, 3, 5),
        (1, 16, 8, 8, 8),
        (1, 3, 4, 1, 9),
        (2, 64, 64, 13, 6),
        (1, 40, 24, 48, 250),  # several tile rows per matrix product (see TILES_PER_PRODUCT)
        (1, 8, 8, 7, 1100),  # rows longer than one vertical pass (COLUMNS_PER_PASS)
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv2d(shape, bias):
    x, weight, b = random_conv(*shape, bias=bias)
    expected = F.conv2d(x, weight, b, padding=2)
    with torch.no_grad():
        out = conv5x5(x, winograd_weights(weight, b))
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    scale = float(expected.abs().max())
    torch.testing.assert_close(out, expected, rtol=0, atol=2.5e-4 * scale)


def test_does_not_depend_on_the_thread_count():
    """Tile rows are split over the threads, each computed the same way: bit for bit."""
    x, weight, b = random_conv(2, 24, 16, 29, 41, seed=1)
    weights = winograd_weights(weight, b)
    before = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                outs.append(conv5x5(x, weights).clone())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


def test_workspace_output_and_reuse():
    """With ``into`` the result lives in the thread's workspace, overwritten by the next call
    of the same name; the buffers of one size serve another."""
    x, weight, b = random_conv(1, 8, 4, 12, 20, seed=2)
    weights = winograd_weights(weight, b)
    with torch.no_grad():
        first = conv5x5(x, weights, into="test_winograd")
        kept = first.clone()
        conv5x5(x[..., :8, :8].contiguous(memory_format=torch.channels_last), weights)
        second = conv5x5(2 * x, weights, into="test_winograd")
    assert first.data_ptr() == second.data_ptr()
    expected = 2 * kept - weights.bias[BIAS_POSITION, 0, :, None, None]
    torch.testing.assert_close(first, expected, rtol=0, atol=2.5e-4 * float(expected.abs().max()))


def test_names_what_does_not_fit():
    x, weight, b = random_conv(1, 8, 4, 12, 20)
    weights = winograd_weights(weight, b)
    with pytest.raises(ValueError, match="channels-last float32"):
        conv5x5(x.contiguous(), weights)
    with pytest.raises(ValueError, match="channels-last float32"):
        conv5x5(x.double(), weights)
    with pytest.raises(ValueError, match="do not take 9 channels"):
        conv5x5(torch.zeros(1, 9, 4, 4).contiguous(memory_format=torch.channels_last), weights)
    with pytest.raises(ValueError, match="5x5"):
        winograd_weights(torch.zeros(4, 8, 3, 3), None)
