"""Helpers shared by the learned extractors: config merging, input padding, output levels."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from s2dloc.features.fused import (
    can_fuse,
    can_fuse_channels_last,
    normalize_bfloat16_channels_last,
    normalize_channels_last,
    normalize_channels_last_,
)
from s2dloc.utils.config import from_settings, settings_of

C = TypeVar("C")


def merge_config(cls: type[C], conf: dict[str, Any] | C | None = None, **overrides: Any) -> C:
    """A config dataclass ``cls`` from its defaults, then ``conf``, then ``overrides``.

    Merged by :func:`s2dloc.utils.config.from_settings`: unknown keys and values of the wrong
    type raise :class:`~s2dloc.utils.config.ConfigError` naming them and the valid keys; lists
    become tuples where the default is a tuple, so a config read back from a file compares
    equal.
    """
    values = settings_of(conf) if dataclasses.is_dataclass(conf) else dict(conf or {})
    values.update(overrides)
    return from_settings(cls, values)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right (replicate) to multiples of ``multiple``."""
    H, W = images.shape[-2:]
    ph, pw = -H % multiple, -W % multiple
    if ph or pw:
        images = F.pad(images, (0, pw, 0, ph), mode="replicate")
    return images


def finish_levels(
    maps: list[torch.Tensor],
    size: tuple[int, int],
    strides: tuple[int, ...],
    normalize: bool,
    fused: bool = True,
    in_place: bool = False,
) -> list[torch.Tensor]:
    """Crop padded maps ``(B, C, H', W')`` to ``ceil(size / s)``, optionally L2-normalise over
    channels, and store them channels-last in float32 (without gradients and with ``fused``,
    normalised and stored in one pass: :func:`s2dloc.features.fused.normalize_channels_last`,
    or for a bfloat16 map :func:`~s2dloc.features.fused.normalize_bfloat16_channels_last`).
    With ``in_place`` (the maps are the caller's temporaries) a map already channels-last and
    uncropped is normalised where it is."""
    H, W = size
    out = []
    for m, s in zip(maps, strides):
        crop = (-(-H // s), -(-W // s))
        if m.dtype == torch.bfloat16:  # a bfloat16 convolution's output (inference)
            if normalize and fused and can_fuse_channels_last(m, (torch.bfloat16,)):
                out.append(normalize_bfloat16_channels_last(m, crop))
                continue
            m = m.float()
        m = m[..., : crop[0], : crop[1]]
        if normalize and fused and in_place and can_fuse_channels_last(m):
            out.append(normalize_channels_last_(m))
            continue
        if normalize and fused and can_fuse(m, contiguous=False):
            out.append(normalize_channels_last(m))
            continue
        m = m.contiguous(memory_format=torch.channels_last)
        # Normalising after the layout change reads the channels of a pixel contiguously
        # (about 2x faster than before it at 640x480).
        out.append(F.normalize(m, dim=1) if normalize else m)
    return out


# Plain attributes that set what an extractor module computes (besides config and weights).
SETTING_ATTRS = (
    "strides",
    "channels",
    "factors",
    "blur",
    "grayscale",
    "bf16_decoder",
    "winograd_decoder",
    "winograd_tile",
)


def fingerprint(model: torch.nn.Module) -> str:
    """A digest of what determines an extractor's output: the class, ``config`` and
    :data:`SETTING_ATTRS` of each submodule, and every weight. Equal digests mean equal
    features; a retrained or swapped checkpoint under the same name gives another digest."""
    h = hashlib.blake2b(digest_size=16)
    for name, module in model.named_modules():
        settings = {k: getattr(module, k) for k in SETTING_ATTRS if hasattr(module, k)}
        config = getattr(module, "config", None)
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            settings["config"] = dataclasses.asdict(config)
        h.update(f"{name}:{type(module).__qualname__}:{settings!r};".encode())
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
