"""Training configuration: defaults, merged strictly with a YAML file and ``section.key=value``
overrides (:mod:`s2dloc.utils.config`).

Unknown keys and values of the wrong type are rejected with the valid keys listed. ``model.*``
is checked against the model's config dataclass (``model.name`` picks it), and every entry of
``data.sources`` (the ``mix`` source) against its type's defaults in :data:`SOURCE_DEFAULTS`.
For a single source (``data.source`` other than ``mix``), its keys are read from ``data``
itself (``data.root``, ``data.exclude``, ...).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from s2dloc.datasets.augment import PRESETS
from s2dloc.datasets.homography_pairs import HomographyConfig
from s2dloc.datasets.image_sets import IMAGE_PATTERNS
from s2dloc.datasets.synthetic import SCENES
from s2dloc.datasets.synthetic.conditions import CONDITIONS
from s2dloc.features.disk_backbone import DISKBackboneConfig
from s2dloc.features.gnnet import GNNetConfig
from s2dloc.utils.config import (
    ConfigError,
    from_settings,
    in_range,
    merge,
    one_of,
    parse_overrides,
    settings_of,
)
from s2dloc.utils.device import check_device

MODEL_CONFIGS: dict[str, type] = {"gnnet": GNNetConfig, "disk": DISKBackboneConfig}
SOURCES = ("synthetic", "cscd", "rgbd", "colmap", "homography")

_HOMOGRAPHY = settings_of(HomographyConfig())
# The settings of each pair source ("" roots must be set; exclude: held-out image patterns).
SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"worlds": None, "world_views": 40, "num_ref": 2},
    "cscd": {"root": "", "files": "**/*.mat", "image_root": ""},
    "rgbd": {"root": "", "max_gap": 1},
    "colmap": {"root": "", "image_root": "", "exclude": [""], "min_shared": 20},
    "homography": {"root": "", "patterns": list(IMAGE_PATTERNS), "exclude": [""], **_HOMOGRAPHY},
}
# Keys of every entry of data.sources (appearance "": data.appearance).
ENTRY_DEFAULTS: dict[str, Any] = {"type": "", "weight": 1.0, "appearance": ""}

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "out_dir": "outputs/train",
    "device": "auto",  # auto: cuda when available, else cpu; or cpu, cuda, cuda:N
    # plus the model's config keys; init: a checkpoint (path or shipped name) to start from
    "model": {"name": "gnnet", "freeze_trunk": False, "init": ""},
    "data": {
        "source": "synthetic",  # synthetic | cscd | rgbd | colmap | homography | mix
        "sources": [],  # for mix: [{type: ..., weight: ..., <the type's keys>}, ...]
        "image_size": [320, 240],
        "crop": False,  # real pairs: keep the aspect ratio (cover-resize + crop), else stretch
        "max_points": 256,
        "batch_size": 4,
        "num_workers": 0,
        "augment": True,
        "appearance": "conditions",  # augmentation preset of image b (see datasets.augment)
        "val_conditions": ["night", "snow"],  # held out from training
        # single-source settings (see SOURCE_DEFAULTS)
        "worlds": None,  # synthetic [scene, seed] pairs; None: street 1, street 2, room 1
        "world_views": 40,  # database and query views per synthetic world
        "root": "",
        "image_root": "",
        "files": "**/*.mat",
        "exclude": [""],
    },
    "loss": {
        "gn_weight": 1.0,
        "e1_weight": 1.0,
        "e2_weight": 1.0,
        "vicinity": [1.0, 1.0, 1.0, 1.0],  # start offset (pixels of each level), finest first
        "both_directions": True,
        "contrastive_weight": 1.0,
        "margin_pos": 0.1,
        "margin_neg": 1.0,
        "mining": "hard",  # hard | random
        "negatives": 16,
        "negative_pool": 0,  # candidate pixels per level for mining; 0: the whole level
        "exclusion_radius": 4.0,  # pixels of each level around the true match
    },
    # train.objective distill: learn the features distill.teacher gives on clean crops from the
    # crops under appearance change (data.batch_size sets the batch; other data.*, loss.* unused)
    "distill": {
        "teacher": "",  # checkpoint path or shipped extractor name
        "root": "",  # photo folder ("": synthetic views only)
        "patterns": list(IMAGE_PATTERNS),
        "exclude": [""],  # held-out image patterns, relative to root
        "synthetic_views": 0,  # database views per synthetic training world (0: none)
        "crops": 1500,
        "crop_size": 192,
        "long_sides": [768, 512],  # each photo resized to these long sides before cropping
        "appearance": "strong",
        "clean_fraction": 0.15,  # share of student inputs without appearance change
        "val_crops": 64,
    },
    "optim": {"lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine", "grad_clip": 10.0},
    "train": {
        "objective": "pairs",  # pairs: GN-Net's losses on data.*; distill: see distill.*
        "steps": 2000,
        "log_every": 10,
        "val_every": 250,
        "ckpt_every": 250,
    },
}


def _length(n: int):
    return lambda v: None if len(v) == n else f"must have {n} entries"


def _each_of(*choices: str):
    """A check that every entry of a list is one of ``choices``."""
    return lambda v: None if set(v) <= set(choices) else f"entries must be in {list(choices)}"


CHECKS = {
    "device": check_device,
    "data.source": one_of(*SOURCES, "mix"),
    "data.image_size": _length(2),
    "data.val_conditions": _each_of(*CONDITIONS[1:]),
    "data.max_points": in_range(1),
    "data.batch_size": in_range(1),
    "data.appearance": one_of(*PRESETS, "none"),
    "loss.vicinity": lambda v: _length(4)(v) or in_range(0)(v),
    "loss.mining": one_of("hard", "random"),
    "loss.negatives": in_range(1),
    "loss.negative_pool": in_range(0),
    "optim.scheduler": one_of("cosine", "constant"),
    "train.objective": one_of("pairs", "distill"),
    "distill.appearance": one_of(*PRESETS, "none"),
    "distill.crops": in_range(1),
    "distill.crop_size": in_range(8),
    "distill.long_sides": in_range(8),
    "distill.clean_fraction": in_range(0, 1),
    "distill.val_crops": in_range(1),
    "distill.synthetic_views": in_range(0),
    "optim.lr": in_range(0, lo_open=True),
    "optim.weight_decay": in_range(0),
    "optim.grad_clip": in_range(0),  # 0: no clipping
    "loss.gn_weight": in_range(0),
    "loss.e1_weight": in_range(0),
    "loss.e2_weight": in_range(0),
    "loss.contrastive_weight": in_range(0),
    "loss.margin_pos": in_range(0),
    "loss.margin_neg": in_range(0, lo_open=True),
    "loss.exclusion_radius": in_range(0),
    "data.num_workers": in_range(0),
    "data.world_views": in_range(1),
    "train.val_every": in_range(0),  # 0: no validation
    "train.steps": in_range(1),
    "train.log_every": in_range(1),
    "train.ckpt_every": in_range(1),
}
MODEL_KEYS = ("name", "freeze_trunk", "init")
# Sizes in the models' configs (a check of a field the model lacks is skipped).
MODEL_CHECKS = {"channels": in_range(1), "widths": in_range(1), "groups": in_range(1)}


def model_settings(model: dict[str, Any]) -> dict[str, Any]:
    """``model.*`` checked against the model's config dataclass: the full, resolved section."""
    model = dict(model)
    name = model.pop("name", "gnnet")
    if name not in MODEL_CONFIGS:
        raise ConfigError(
            f"setting 'model.name' must be one of {sorted(MODEL_CONFIGS)}, got {name!r}"
        )
    freeze = model.pop("freeze_trunk", False)
    if not isinstance(freeze, bool):
        raise ConfigError(f"setting 'model.freeze_trunk' must be a boolean, got {freeze!r}")
    init = model.pop("init", "")
    if not isinstance(init, str):
        raise ConfigError(f"setting 'model.init' must be a path or extractor name, got {init!r}")
    cls = MODEL_CONFIGS[name]
    try:
        # unknown keys, wrong types, sizes out of range
        conf = from_settings(cls, model, prefix="model.", checks=MODEL_CHECKS)
    except ConfigError as err:
        valid = [*MODEL_KEYS, *(f.name for f in dataclasses.fields(cls))]
        raise ConfigError(f"{err} (model.name {name!r}: valid keys {valid})") from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model settings of {name!r}: {err}") from err
    return {"name": name, "freeze_trunk": freeze, "init": init, **settings_of(conf)}


def source_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The pair sources of ``data``, each a full dict: ``type``, ``weight``, ``appearance`` and
    its type's settings (checked; roots required)."""
    if data["source"] == "mix":
        raw = data["sources"]
        if not raw:
            raise ConfigError("data.source is 'mix' but data.sources is empty")
    else:
        if data["sources"]:
            raise ConfigError(
                f"data.sources is only used with data.source: mix, not {data['source']!r}"
            )
        own = SOURCE_DEFAULTS[data["source"]]
        raw = [{"type": data["source"], **{k: data[k] for k in own if k in data}}]
    return [_entry(e, i if data["source"] == "mix" else None) for i, e in enumerate(raw)]


def _entry(entry: Any, index: int | None) -> dict[str, Any]:
    where = "data." if index is None else f"data.sources[{index}]."
    if not isinstance(entry, dict) or entry.get("type") not in SOURCE_DEFAULTS:
        raise ConfigError(
            f"setting {where}type must be one of {list(SOURCE_DEFAULTS)}; got {entry!r}"
        )
    defaults = {**ENTRY_DEFAULTS, **SOURCE_DEFAULTS[entry["type"]]}
    out = merge(defaults, entry, prefix=where)
    if out["weight"] <= 0:
        raise ConfigError(f"setting {where}weight must be > 0, got {out['weight']}")
    if "root" in out and not out["root"]:
        raise ConfigError(f"setting {where}root is required for a {out['type']!r} source")
    if out["appearance"] not in ("", "none", *PRESETS):
        raise ConfigError(f"setting {where}appearance must be one of {list(PRESETS)} or 'none'")
    if "exclude" in out:
        out["exclude"] = _patterns(out["exclude"])
    if out.get("worlds") is not None:
        _check_worlds(out["worlds"], where)
    return out


def _check_worlds(worlds: Any, where: str) -> None:
    """``worlds``: a non-empty list of ``[scene, seed]`` pairs (scene a key of ``SCENES``)."""
    ok = isinstance(worlds, list) and bool(worlds)
    for w in worlds if ok else []:
        pair = isinstance(w, list | tuple) and len(w) == 2
        ok = ok and pair and w[0] in SCENES and isinstance(w[1], int) and not isinstance(w[1], bool)
    if not ok:
        raise ConfigError(
            f"setting {where}worlds must be null or a list of [scene, seed] pairs with scene one"
            f" of {sorted(SCENES)} and an integer seed, e.g. [[street, 1]]; got {worlds!r}"
        )


def _patterns(patterns: list[str]) -> list[str]:
    """Image patterns without the empty ones (``[""]``, the default, types the list)."""
    return [p for p in patterns if p]


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged strictly with ``raw`` (a nested dict), model and sources resolved."""
    raw = copy.deepcopy(raw)
    model = raw.pop("model", {}) or {}
    if not isinstance(model, dict):
        raise ConfigError(f"setting 'model' must be a section, got {model!r}")
    conf = merge({k: v for k, v in DEFAULTS.items() if k != "model"}, raw, checks=CHECKS)
    conf["model"] = model_settings({**DEFAULTS["model"], **model})
    entries = source_entries(conf["data"])  # checks the single source's keys too
    conf["data"]["sources"] = entries if conf["data"]["source"] == "mix" else []
    conf["data"]["exclude"] = _patterns(conf["data"]["exclude"])
    dc = conf["distill"]
    dc["exclude"] = _patterns(dc["exclude"])
    if conf["train"]["objective"] == "distill":
        if not dc["teacher"]:
            raise ConfigError("train.objective distill needs distill.teacher (a checkpoint)")
        if not dc["root"] and not dc["synthetic_views"]:
            raise ConfigError("distill needs images: distill.root or distill.synthetic_views")
        if not dc["long_sides"] or min(dc["long_sides"]) < dc["crop_size"]:
            raise ConfigError(
                f"distill.long_sides {dc['long_sides']} must be at least distill.crop_size "
                f"({dc['crop_size']})"
            )
    return conf


def _deep_update(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults, the YAML file at ``path`` (if any), then ``section.key=value`` overrides;
    raises :class:`ConfigError` (a ``ValueError``) naming the offending key."""
    loaded: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded)}")
    try:
        return resolve(_deep_update(loaded, parse_overrides(overrides)))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from err
