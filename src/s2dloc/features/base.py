"""The dense feature extractor interface shared by photometric and learned features."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2dloc.features.common import finish_levels
from s2dloc.features.fused import can_fuse, channels_adjacent, conv1x1_channels_last
from s2dloc.features.photometric import image_to_tensor, photometric_pyramid


def extraction_size(
    width: int, height: int, multiple: int = 1, max_side: int | None = None
) -> tuple[int, int]:
    """The ``(w, h)`` an image of ``width x height`` is resized to before extraction: each side
    a multiple of ``multiple`` (the coarsest stride, so that every level ``l`` is exactly
    ``(h / s_l, w / s_l)`` and a full-resolution pixel ``u`` lies at ``u * W_l / width``), the
    long side at most ``max_side`` (None: no limit; images are never enlarged beyond the
    rounding), keeping the aspect ratio as closely as the rounding allows."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max_side is not None and max_side < multiple:
        raise ValueError(f"max_side {max_side} must be at least the size multiple {multiple}")
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0

    def side(n: int, limit: float) -> int:
        k = max(1, round(n * scale / multiple))
        while k > 1 and k * multiple > limit:
            k -= 1
        return k * multiple

    limit = float(max_side) if max_side else float("inf")
    return side(width, limit), side(height, limit)


def size_multiple(extractor) -> int:
    """The multiple ``extractor`` rounds image sides to (its ``size_multiple``; for an object
    without one, its coarsest stride)."""
    return int(getattr(extractor, "size_multiple", max(extractor.strides)))


class DenseExtractor(nn.Module):
    """Maps images ``(B, 3, H, W)`` (float RGB in [0, 1]) to feature levels, finest first.

    ``forward`` returns a list over levels of maps ``(B, C_l, ceil(H / s_l), ceil(W / s_l))``
    for ``strides`` ``s_l``. Maps should be channels-last in memory: F-PnP samples them fastest.
    """

    strides: tuple[int, ...] = (1,)
    channels: tuple[int, ...] = (3,)

    @property
    def size_multiple(self) -> int:
        """Image sides :meth:`extract` rounds to: the coarsest stride."""
        return int(max(self.strides))

    def extract(
        self, image: np.ndarray | torch.Tensor, max_side: int | None = None
    ) -> list[torch.Tensor]:
        """One image ``(H, W, 3)`` (uint8 or float) -> list of ``(C_l, H_l, W_l)`` CPU maps.

        The image is first resized (bilinear, antialiased) to :func:`extraction_size`: sides
        that are multiples of the coarsest stride and a long side of at most ``max_side``. So
        each level spans the whole image exactly and scaling full-resolution pixels (and
        cameras) by ``W_l / W, H_l / H`` is exact for any image size. The image runs on the
        device and in the dtype of the model's parameters (as given for a model without
        parameters).
        """
        x = image_to_tensor(image)
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        param = next(self.parameters(), None)
        if param is not None:
            x = x.to(param.device, param.dtype)
        H, W = x.shape[-2:]
        w, h = extraction_size(W, H, self.size_multiple, max_side)
        if (w, h) != (W, H):
            x = F.interpolate(
                x[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True
            )[0]
        # A contiguous (3, H, W) input: the HWC-strided view from numpy makes the first
        # convolutions take a slow path (about 1.6x slower on CPU).
        x = x.contiguous()
        with torch.no_grad():
            return [m[0].cpu() for m in self(x[None])]


class PhotometricExtractor(DenseExtractor):
    """The image itself, blurred and downsampled (classical direct alignment)."""

    def __init__(self, strides=(1, 2, 4, 8, 16), blur: float = 1.0, grayscale: bool = False):
        super().__init__()
        self.strides = tuple(strides)
        self.blur, self.grayscale = blur, grayscale
        self.channels = (1 if grayscale else 3,) * len(self.strides)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        per_image = [
            photometric_pyramid(im, self.strides, self.blur, self.grayscale) for im in images
        ]
        return [
            torch.stack(level).contiguous(memory_format=torch.channels_last)
            for level in zip(*per_image)
        ]


class HeadedExtractor(DenseExtractor):
    """A trunk giving per-level activations and 1x1 heads on them (GN-Net, DISK backbone).

    Subclasses implement ``_features(images) -> (features per level, activations, (H, W))``
    and may set ``confidence_heads`` (an ``nn.ModuleList`` or None).
    """

    def _features(self, images: torch.Tensor):
        raise NotImplementedError

    def _head(self, head: nn.Module, act: torch.Tensor) -> torch.Tensor:
        """A 1x1 head (feature or confidence) on one level's activations ``(B, C, H, W)``;
        with the fused kernels (``fuse_inference``, no gradients) one matrix product whose
        values do not depend on the number of threads
        (:func:`~s2dloc.features.fused.conv1x1_channels_last`)."""
        dense = can_fuse(act) or (can_fuse(act, contiguous=False) and channels_adjacent(act))
        if getattr(self, "fuse_inference", False) and dense:
            return conv1x1_channels_last(act, head.weight, head.bias)
        return head(act)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self._features(images)[0]

    def forward_with_confidence(
        self, images: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Features per level ``(B, C, H/s, W/s)`` and confidences ``(B, 1, H/s, W/s)`` in (0, 1),
        or ``None`` when the model has no confidence head."""
        feats, acts, size = self._features(images)
        heads = getattr(self, "confidence_heads", None)
        if heads is None:
            return feats, None
        conf = [torch.sigmoid(self._head(head, a)) for head, a in zip(heads, acts)]
        return feats, finish_levels(conf, size, self.strides, False)
