"""GN-Net: a small U-Net giving dense features at strides 1, 2, 4 and 8 for F-PnP.

Encoder: double conv blocks (3x3 conv, GroupNorm, ReLU or CELU) separated by 2x2 max pooling.
Decoder: nearest-neighbour upsampling (bilinear or transposed convolutions leave checkerboard
artefacts that stall Gauss-Newton training), concatenation with the encoder's skip, double conv.
A 1x1 head per level maps the decoder's activations at stride ``s`` (the bottleneck for the
coarsest level) to ``C`` channels. Optional heads: a per-pixel confidence (sigmoid, one channel
per level) and L2 normalisation of the features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from s2dloc.features.base import HeadedExtractor
from s2dloc.features.common import finish_levels, merge_config, pad_to_multiple
from s2dloc.features.fused import can_fuse_channels_last, upsample_nearest_cat
from s2dloc.features.fused_group_norm import can_group_norm_act, group_norm_act_

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GNNetConfig:
    """GN-Net hyper-parameters (defaults: ~0.5 M parameters, ~2 MB of float32 weights).

    ``widths`` are the encoder widths at strides 1, 2, 4, 8 (the decoder mirrors them);
    ``groups`` the GroupNorm group counts per stride, each dividing its width.
    """

    channels: int = 32
    widths: tuple[int, ...] = (16, 32, 64, 128)
    groups: tuple[int, ...] = (4, 8, 8, 16)
    activation: str = "relu"  # "relu" or "celu"
    confidence: bool = False
    normalize: bool = False

    def __post_init__(self) -> None:
        if len(self.widths) != 4:
            raise ValueError(f"GN-Net needs 4 widths (strides 1, 2, 4, 8), got {self.widths}")
        if self.activation not in ("relu", "celu"):
            raise ValueError(f"activation must be 'relu' or 'celu', got {self.activation!r}")
        if len(self.groups) != len(self.widths):
            raise ValueError(f"GN-Net needs one GroupNorm group count per width, got {self.groups}")
        for w, g in zip(self.widths, self.groups):
            if w % g:
                raise ValueError(f"GroupNorm groups {g} do not divide width {w}")


def _double_conv(c_in: int, c_out: int, groups: int, activation: str) -> nn.Sequential:
    """Two (3x3 conv, GroupNorm, activation) layers; convs have no bias (GroupNorm has one)."""
    act = nn.ReLU if activation == "relu" else nn.CELU
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.GroupNorm(groups, c_out)]
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def _double_conv_layers(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    return block(x)


def _double_conv_fused(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """:func:`_double_conv`'s block on channels-last ``x`` without gradients: each GroupNorm and
    activation one in-place pass whose values do not depend on the number of threads
    (:func:`~s2dloc.features.fused_group_norm.group_norm_act_`)."""
    layers = list(block)
    for conv, norm, act in zip(layers[0::3], layers[1::3], layers[2::3], strict=True):
        x = conv(x)
        if can_fuse_channels_last(x) and can_group_norm_act(norm, act):
            x = group_norm_act_(x, norm, act)
        else:
            x = act(norm(x))
    return x


class GNNet(HeadedExtractor):
    """GN-Net extractor: images ``(B, 3, H, W)`` in [0, 1] -> 4 maps ``(B, C, H/s, W/s)``.

    Any input size is accepted: the input is padded to a multiple of 8 and the outputs are
    cropped back to ``ceil(H / s), ceil(W / s)``. Outputs are finest first and channels-last.
    """

    name = "gnnet"
    strides = (1, 2, 4, 8)

    def __init__(self, config: GNNetConfig | dict[str, Any] | None = None, **overrides: Any):
        super().__init__()
        self.config = conf = merge_config(GNNetConfig, config, **overrides)
        self.channels = (conf.channels,) * 4
        w, g, act = conf.widths, conf.groups, conf.activation
        self.encoder = nn.ModuleList(
            [_double_conv(3 if i == 0 else w[i - 1], w[i], g[i], act) for i in range(4)]
        )
        self.fuse_inference = True  # fused kernels without gradients (features/fused.py)
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        # decoder[i] fuses the upsampled stride-2^(i+1) map with the stride-2^i skip.
        self.decoder = nn.ModuleList(
            [_double_conv(w[i + 1] + w[i], w[i], g[i], act) for i in range(3)]
        )
        self.heads = nn.ModuleList([nn.Conv2d(w[i], conf.channels, 1) for i in range(4)])
        self.confidence_heads = (
            nn.ModuleList([nn.Conv2d(w[i], 1, 1) for i in range(4)]) if conf.confidence else None
        )
        logger.debug("GN-Net with %d parameters, config %s", self.num_parameters(), conf)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _trunk(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Padded images ``(B, 3, H, W)`` -> decoder activations at strides 1, 2, 4, 8."""
        fused = self.fuse_inference and can_fuse_channels_last(images)
        skips = []
        x = images
        run = _double_conv_fused if fused else _double_conv_layers
        for i, block in enumerate(self.encoder):
            x = run(block, self.pool(x) if i else x)
            skips.append(x)
        acts = [x]
        for i in (2, 1, 0):
            if fused:  # upsampled straight into the concatenation (features/fused.py)
                x = run(self.decoder[i], upsample_nearest_cat(x, skips[i]))
            else:
                x = run(self.decoder[i], torch.cat([self.upsample(x), skips[i]], 1))
            acts.append(x)
        return acts[::-1]

    def _features(
        self, images: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], tuple[int, int]]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        size = (images.shape[-2], images.shape[-1])
        # Channels-last activations run the convolutions ~1.6x faster on CPU.
        x = pad_to_multiple(images, 8).contiguous(memory_format=torch.channels_last)
        acts = self._trunk(x)
        feats = [self._head(head, a) for head, a in zip(self.heads, acts)]
        return finish_levels(feats, size, self.strides, self.config.normalize), acts, size
