"""One strict, typed configuration mechanism for every component.

A component declares its defaults once as a nested dict (``DEFAULTS``), optionally with
``checks`` (dotted key -> validator) for ranges and choices. :func:`merge` overlays the user's
settings on the defaults and rejects unknown keys and values of the wrong type, naming the key,
the expected type and the valid keys. The type of a setting is the type of its default:

- ``bool`` accepts only booleans (``fpnp.enabled=ture`` is an error);
- ``int`` accepts integers, ``float`` accepts integers and floats (stored as float);
- ``str`` accepts strings; ``list`` / ``tuple`` accept lists whose items match the type of the
  default's first item; a ``dict`` is merged recursively;
- a ``None`` default accepts anything (an optional setting).

Command lines use one override syntax everywhere: ``section.key=value`` with the value parsed
as YAML (numbers, booleans, lists, ``null``), see :func:`parse_overrides`.
A component whose settings are a dataclass is built with :func:`from_settings` (the fields'
defaults, or a preset instance, are the defaults of :func:`merge`) and saved with
:func:`settings_of`; its ``__post_init__`` can call :func:`check_fields`.
:func:`check_settings` is the single stale-settings guard of resumable outputs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from s2dloc.utils.io import write_text_atomic

logger = logging.getLogger(__name__)

T = TypeVar("T")
Check = Callable[[Any], "str | None"]  # returns an error text, or None when the value is valid


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type or out of range."""


def in_range(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Check:
    """A check that a number lies in ``[lo, hi]`` (open ends with ``lo_open`` / ``hi_open``)."""

    def check(value: Any) -> str | None:
        nums = value if isinstance(value, list | tuple) else [value]
        for v in nums:
            if lo is not None and (v < lo or (lo_open and v == lo)):
                return f"must be {'>' if lo_open else '>='} {lo}"
            if hi is not None and (v > hi or (hi_open and v == hi)):
                return f"must be {'<' if hi_open else '<='} {hi}"
        return None

    return check


def one_of(*choices: Any) -> Check:
    """A check that the value is one of ``choices``."""

    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {list(choices)}"

    return check


def _type_name(value: Any) -> str:
    return "list" if isinstance(value, tuple) else type(value).__name__


def _coerce(default: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type of ``default`` (ints widened to float)."""
    if default is None:
        return copy.deepcopy(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, list | tuple):
        if isinstance(value, list | tuple):
            if not default:
                return list(copy.deepcopy(value))
            return [_coerce(default[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    else:
        return copy.deepcopy(value)
    raise ConfigError(
        f"setting {where!r} must be of type {_type_name(default)} (like its default "
        f"{default!r}), got {value!r} ({_type_name(value)})"
    )


def merge(
    defaults: Mapping[str, Any],
    override: Mapping[str, Any] | None,
    *,
    checks: Mapping[str, Check] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """A deep copy of ``defaults`` updated with ``override``, strictly typed and checked.

    Raises :class:`ConfigError` for an unknown key (listing the valid ones), a wrong type or a
    value that fails its check in ``checks`` (dotted keys, e.g. ``"s2d.ratio"``).
    """
    if override is not None and not isinstance(override, Mapping):
        raise ConfigError(
            f"settings {prefix.rstrip('.') or '(top level)'!r} must be a mapping, got {override!r}"
        )
    out = copy.deepcopy(dict(defaults))
    for key, value in (override or {}).items():
        where = f"{prefix}{key}"
        if key not in out:
            raise ConfigError(f"unknown setting {where!r}; valid keys: {sorted(out)}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"setting {where!r} is a section with keys {sorted(out[key])}; got {value!r}"
                )
            out[key] = merge(out[key], value, checks=None, prefix=f"{where}.")
        else:
            out[key] = _coerce(out[key], value, where)
    validate(out, checks or {}, prefix)
    return out


def get(conf: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``"section.key"`` of a nested dict."""
    node: Any = conf
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(conf: Mapping[str, Any], checks: Mapping[str, Check], prefix: str = "") -> None:
    """Run ``checks`` (dotted key -> validator) on ``conf``; the first failure raises, naming
    the key with ``prefix`` (the section ``conf`` is, e.g. ``"model."``)."""
    for key, check in checks.items():
        try:
            value = get(conf, key)
        except (KeyError, TypeError):
            continue
        if value is None:
            continue
        error = check(value)
        if error:
            raise ConfigError(f"setting {prefix + key!r} = {value!r} {error}")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["s2d.ratio=0.8", "fpnp.enabled=false"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(
                f"setting {item!r} must look like section.key=value (e.g. s2d.ratio=0.8)"
            )
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e9 (no dot) as a string
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"setting {item!r}: {p!r} is set twice, as a value and a section")
        node[parts[-1]] = value
    return out


def _plain(value: Any) -> Any:
    """A copy of ``value`` with tuples as lists (as saved to JSON/YAML and merged)."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


_REQUIRED = object()


def _raw_defaults(cls: type) -> dict[str, Any]:
    """The defaults of the fields of dataclass ``cls`` (``_REQUIRED`` for a required one)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = _REQUIRED
    return out


def _field_defaults(cls: type) -> dict[str, Any]:
    """Plain defaults of the fields of ``cls`` (None, i.e. any type, for a required field)."""
    return {k: None if v is _REQUIRED else _plain(v) for k, v in _raw_defaults(cls).items()}


def settings_of(instance: Any) -> dict[str, Any]:
    """The fields of a dataclass instance as plain settings (tuples as lists), e.g. to save."""
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise TypeError(f"expected a dataclass instance, got {instance!r}")
    return {f.name: _plain(getattr(instance, f.name)) for f in dataclasses.fields(instance)}


def check_fields(instance: Any, checks: Mapping[str, Check] | None = None) -> None:
    """Check a dataclass instance as :func:`merge` checks settings: each field of the type of
    its default, and ``checks``; for ``__post_init__``. Raises :class:`ConfigError`."""
    merge(_field_defaults(type(instance)), settings_of(instance), checks=checks)


def from_settings(
    cls: type[T],
    overrides: Mapping[str, Any] | None = None,
    *,
    base: T | None = None,
    checks: Mapping[str, Check] | None = None,
    prefix: str = "",
) -> T:
    """An instance of dataclass ``cls``: its fields' defaults (or the fields of ``base``, e.g. a
    preset) updated with ``overrides`` by :func:`merge` (unknown keys, wrong types and failed
    ``checks`` raise :class:`ConfigError`; keys are named with ``prefix``, e.g. ``"model."``).
    Lists become tuples where the default is a tuple.
    """
    if base is None:
        raw = _raw_defaults(cls)
    else:
        raw = {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    missing = [k for k, v in raw.items() if v is _REQUIRED and k not in (overrides or {})]
    if missing:
        raise ConfigError(f"settings {missing} are required (they have no default)")
    defaults = _field_defaults(cls) if base is None else settings_of(base)
    merged = merge(defaults, overrides, checks=checks, prefix=prefix)
    kwargs = {
        f.name: tuple(merged[f.name]) if isinstance(raw[f.name], tuple) else merged[f.name]
        for f in dataclasses.fields(cls)
        if f.init
    }
    return cls(**kwargs)


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (lists compare as values)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}{key}"
            if key not in old or key not in new:
                out.append(where)
            else:
                out += changed_keys(old[key], new[key], f"{where}.")
        return out
    norm = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    return [] if norm[0] == norm[1] else [prefix.rstrip(".")]


def compare_settings(
    where: str | Path,
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    force: bool = False,
    hint: str = "use --overwrite or another output folder",
    free: Collection[str] = (),
) -> list[str]:
    """The stale-settings guard: the dotted keys whose values differ between the ``saved``
    settings of ``where`` and the ``current`` ones, outside ``free``. Refuses
    (:class:`ConfigError`, naming them, then ``hint``) unless ``force``, which logs them."""
    diff = [k for k in changed_keys(saved, current) if k not in free]
    if diff and not force:
        raise ConfigError(
            f"{where} was written with other settings (changed: {', '.join(diff[:8])}); {hint}"
        )
    if diff:
        logger.warning("%s: going on with changed settings (forced): %s", where, ", ".join(diff))
    return diff


def check_settings(
    path: str | Path,
    settings: Mapping[str, Any],
    *,
    force: bool = False,
    hint: str = "use --overwrite or another output folder",
    free: Collection[str] = (),
) -> Path:
    """:func:`compare_settings` for a resumable output folder: write ``settings`` to ``path``
    (JSON) the first time; later, refuse (naming the changed keys outside ``free``) when they
    differ, unless ``force`` (then ``path`` is rewritten with the new ones)."""
    path = Path(path)
    current = json.loads(json.dumps(settings))
    if path.exists() and not force:
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path}: unreadable settings file ({err}); {hint}") from err
        compare_settings(path, saved, current, hint=hint, free=free)
        return path
    write_text_atomic(path, json.dumps(current, indent=2, sort_keys=True) + "\n")
    return path


def from_namespace(cls: type[T], args: Any) -> T:
    """Dataclass ``cls`` from the attributes of ``args`` (an ``argparse.Namespace``) that
    name its fields; the others are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})
