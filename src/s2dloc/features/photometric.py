"""Photometric "features": the image itself, blurred and downsampled, as a feature pyramid.

This is classical direct (photometric) alignment expressed in the same interface as learned
features: a list of maps ``(C, H/s, W/s)`` for strides ``s``, finest first.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d, get_gaussian_kernel1d


def image_to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """An image ``(H, W, 3)`` / ``(H, W)`` (uint8 or float in [0, 1]) -> float32 ``(C, H, W)``.

    A tensor is taken as ``(C, H, W)`` already; it keeps its device and its floating dtype
    (other dtypes become float32).
    """
    if isinstance(image, np.ndarray):
        scale = 1 / 255 if image.dtype == np.uint8 else 1.0
        image = torch.from_numpy(np.ascontiguousarray(image)).float() * scale
        image = image[None] if image.dim() == 2 else image.permute(2, 0, 1)
    return image if image.is_floating_point() else image.float()


def photometric_pyramid(
    image: np.ndarray | torch.Tensor,
    strides: tuple[int, ...] = (1, 2, 4, 8, 16),
    blur: float = 1.0,
    grayscale: bool = False,
    normalize: bool = True,
) -> list[torch.Tensor]:
    """Blurred, downsampled copies of ``image`` as maps ``(C, H/s, W/s)``, finest first.

    Each level is blurred with a Gaussian of ``sigma = blur * s`` before area downsampling by
    ``s``, which widens the basin of convergence at coarse levels. With ``normalize`` every
    level is shifted and scaled to zero mean and unit variance per channel, so residuals are
    comparable across images with different exposure.
    """
    x = image_to_tensor(image)
    if grayscale and x.shape[0] == 3:
        x = (x * x.new_tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
    levels = []
    for s in strides:
        sigma = blur * s
        k = 2 * int(np.ceil(3 * sigma)) + 1
        if x.shape[-2] % s == 0 and x.shape[-1] % s == 0:
            y = _blur_area(x[None], k, sigma, s)[0]
        else:  # area windows of unequal sizes: blur at full resolution, then pool
            y = gaussian_blur2d(x[None], (k, k), (sigma, sigma), border_type="replicate")
            y = F.interpolate(y, scale_factor=1 / s, mode="area")[0] if s > 1 else y[0]
        if normalize:
            y = (y - y.mean((1, 2), keepdim=True)) / y.std((1, 2), keepdim=True).clamp_min(1e-6)
        # Stored channels-last (a (H, W, C) buffer viewed as (C, H, W)): F-PnP samples it fastest.
        levels.append(y.permute(1, 2, 0).contiguous().permute(2, 0, 1))
    return levels


def _blur_area(x: torch.Tensor, k: int, sigma: float, s: int) -> torch.Tensor:
    """Gaussian blur (``k`` taps, replicate border) then ``s x s`` area pooling of ``(1, C, H, W)``
    with ``H, W`` multiples of ``s``, as one separable strided convolution per axis: the 1D kernel
    is the Gaussian convolved with a box of ``s`` taps, evaluated only at the kept pixels (the
    blurred full-resolution image is never formed)."""
    g = get_gaussian_kernel1d(k, sigma).to(x)[0]
    kern = F.conv1d(F.pad(g, (s - 1, s - 1))[None, None], x.new_full((1, 1, s), 1 / s))[0, 0]
    C, n, r = x.shape[1], len(kern), k // 2
    y = F.pad(x, (r, r, r, r), mode="replicate").transpose(0, 1).contiguous()  # channels as batch
    y = F.conv2d(y, kern.view(1, 1, 1, n), stride=(1, s))
    y = F.conv2d(y, kern.view(1, 1, n, 1), stride=(s, 1))
    return y.reshape(1, C, *y.shape[-2:])
