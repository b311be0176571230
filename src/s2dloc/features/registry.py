"""Loading dense extractors by name or from a checkpoint file, and saving checkpoints.

A checkpoint is a ``torch.save``'d dict with keys ``model`` (``"gnnet"`` or ``"disk"``),
``config`` (the model's config as a plain dict) and ``state_dict``, plus any extra entries
(e.g. the trainer's optimizer state and step). It is written atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from pathlib import Path
from typing import Any

import torch

from s2dloc.features.base import DenseExtractor, PhotometricExtractor
from s2dloc.features.disk_backbone import DISKBackbone
from s2dloc.features.gnnet import GNNet
from s2dloc.utils.io import atomic_path

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Shipped checkpoints by name, and the documented command that produces each.
SHIPPED: dict[str, tuple[Path, str]] = {
    "gnnet-disk": (
        ASSETS / "gnnet_disk.pt",
        "s2dloc train --conf configs/gnnet_disk.yaml --out outputs/train/gnnet_disk "
        "(see the README)",
    ),
    "gnnet-distilled": (
        ASSETS / "gnnet_distilled.pt",
        "s2dloc train --conf configs/gnnet_distilled.yaml --out outputs/train/gnnet_distilled "
        "(see the README)",
    ),
    "gnnet": (
        ASSETS / "gnnet.pt",
        "s2dloc train --conf configs/gnnet.yaml --out outputs/train/gnnet (see the README)",
    ),
}
# What "default" loads (every command's extractor when --extractor is omitted).
DEFAULT = "gnnet-disk"

MODELS: dict[str, type[DenseExtractor]] = {"gnnet": GNNet, "disk": DISKBackbone}
NAMES = ("default", *SHIPPED, "photometric")
# Untrained networks for comparisons (random or orthogonal heads): not extractors to use.
BASELINES: dict[str, type[DenseExtractor]] = {"gnnet-untrained": GNNet, "disk-trunk": DISKBackbone}
RESERVED = ("model", "config", "state_dict")


def _seeded(cls: type[DenseExtractor], seed: int, **kwargs: Any) -> DenseExtractor:
    """Build ``cls(**kwargs)`` with its random initialisation drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def save_checkpoint(
    model: DenseExtractor, path: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (a GN-Net or DISK backbone) and ``extra`` entries atomically to ``path``."""
    name = getattr(model, "name", None)
    if name not in MODELS or not isinstance(model, MODELS[name]):
        raise TypeError(f"cannot checkpoint {type(model).__name__}: only {sorted(MODELS)} models")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(RESERVED))
    if clash:
        raise ValueError(f"extra entries {clash} would overwrite reserved checkpoint keys")
    ckpt = {
        "model": name,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    logger.info("saved %s checkpoint to %s", name, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict written by :func:`save_checkpoint` (checks its keys).

    Checkpoints are always read with ``torch.load(..., weights_only=True)`` (tensors and plain
    containers only, no arbitrary code). Unreadable, truncated or foreign files raise a
    ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            if fh.read(2) == b"PK":  # torch.save's zip format, cut short
                raise ValueError(
                    f"{path}: not a readable checkpoint: truncated or damaged file "
                    "(incomplete zip archive)"
                )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt pickle, non-weights objects, I/O errors, ...
        raise ValueError(f"{path}: not a readable checkpoint: {_load_error(err)}") from None
    missing = [k for k in RESERVED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not an s2dloc checkpoint: missing keys {missing}")
    if ckpt["model"] not in MODELS:
        raise ValueError(f"{path}: unknown model {ckpt['model']!r}; known: {sorted(MODELS)}")
    if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["state_dict"], dict):
        raise ValueError(f"{path}: 'config' and 'state_dict' must be dicts")
    return ckpt


def _load_error(err: Exception) -> str:
    """A one-line reason from ``torch.load``'s (multi-line) error."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        if reason.startswith("Unsupported global"):
            what = reason.split("GLOBAL", 1)[-1].split(" was not")[0].strip()
            return (
                f"it holds a {what} object; checkpoints are read weights-only (tensors and "
                "plain containers)"
            )
        return f"not a PyTorch checkpoint, or a damaged one ({reason})"
    return (
        f"not a PyTorch checkpoint, or a truncated or damaged one ({type(err).__name__}: "
        f"{(text.strip().splitlines() or [''])[0][:200]})"
    )


def _brief(items: list[str], n: int = 3) -> str:
    """``"5 (a, b, c, ...)"``: a count and the first few names."""
    more = ", ..." if len(items) > n else ""
    return f"{len(items)} ({', '.join(items[:n])}{more})"


def check_state_dict(model: torch.nn.Module, state: dict[str, Any], source: str) -> None:
    """``ValueError`` naming ``source`` if ``state`` does not fit ``model``: missing and
    unexpected keys and shape mismatches, each listed briefly."""
    expected = model.state_dict()
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad = [
        k
        for k in sorted(set(state) & set(expected))
        if not torch.is_tensor(state[k]) or state[k].shape != expected[k].shape
    ]
    if missing:
        problems.append(f"missing keys {_brief(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_brief(unexpected)}")
    if bad:
        shapes = [
            f"{k} {tuple(getattr(state[k], 'shape', ()))} vs {tuple(expected[k].shape)}"
            for k in bad
        ]
        problems.append(f"shape mismatches {_brief(shapes, 2)}")
    if problems:
        raise ValueError(
            f"{source}: the weights do not fit the {model.name} model of its "
            f"config: {'; '.join(problems)}"
        )


def model_from_checkpoint(
    ckpt: dict[str, Any], source: str | Path = "checkpoint", **overrides: Any
) -> DenseExtractor:
    """The model of a checkpoint dict; ``overrides`` update its config (e.g. ``normalize``).
    Errors (a config or weights that do not fit the model) name ``source``."""
    cls = MODELS[ckpt["model"]]
    kwargs: dict[str, Any] = {"pretrained": False} if cls is DISKBackbone else {}
    try:
        model = cls(ckpt["config"], **kwargs, **overrides)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{source}: its config does not fit the {ckpt['model']} model: {err}"
        ) from None
    check_state_dict(model, ckpt["state_dict"], str(source))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def load_baseline(name: str, seed: int = 0, **overrides: Any) -> DenseExtractor:
    """An untrained comparison network by name (eval mode): ``"gnnet-untrained"`` (GN-Net with
    random weights from ``seed``) or ``"disk-trunk"`` (DISK's pretrained trunk with orthogonal
    heads from ``seed``). Overrides are model config keys."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    return _seeded(BASELINES[name], seed, **overrides).eval()


def load_extractor_or_baseline(name_or_path: str | Path, **overrides: Any) -> DenseExtractor:
    """:func:`load_baseline` for the baseline names, else :func:`load_extractor` (benchmarks)."""
    if str(name_or_path) in BASELINES:
        return load_baseline(str(name_or_path), **overrides)
    return load_extractor(name_or_path, **overrides)


def load_extractor(name_or_path: str | Path, **overrides: Any) -> DenseExtractor:
    """A ready (eval-mode) extractor by name or from a checkpoint path.

    Names: ``"default"`` (the shipped default, :data:`DEFAULT`), ``"gnnet-disk"``
    (``s2dloc/assets/gnnet_disk.pt``: GN-Net heads on DISK's pretrained trunk, trained with
    GN-Net's losses on real geometry with synthesized appearance change),
    ``"gnnet-distilled"`` (``assets/gnnet_distilled.pt``: GN-Net taught by ``"gnnet-disk"``
    under synthesized appearance change; about 4x faster),
    ``"gnnet"`` (the previous GN-Net trained on the synthetic world, ``assets/gnnet.pt``) and
    ``"photometric"`` (:class:`PhotometricExtractor`, overrides are its arguments). Other
    overrides are model config keys. Untrained comparison networks: :func:`load_baseline`.
    """
    name = str(name_or_path)
    if name == "default":
        name = DEFAULT
    if name == "photometric":
        return PhotometricExtractor(**overrides).eval()
    if name in SHIPPED:
        path, command = SHIPPED[name]
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped {name!r} checkpoint {path} does not exist; train it with: {command}"
            )
    else:
        path = Path(name_or_path)
        if not path.is_file():
            hint = f"; untrained comparison networks: load_baseline({sorted(BASELINES)})"
            if name in BASELINES:
                raise FileNotFoundError(f"{name!r} is not a trained extractor{hint}")
            raise FileNotFoundError(
                f"{name!r} is neither a known extractor name {list(NAMES)} nor a checkpoint file"
            )
    model = model_from_checkpoint(load_checkpoint(path), path, **overrides)
    logger.info("loaded %s extractor from %s", model.name, path)
    return model
