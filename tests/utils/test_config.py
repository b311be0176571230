"""The strict, typed configuration merge, override parsing and stale-settings guard."""

import dataclasses
import json

import pytest

from s2dloc.utils.config import (
    ConfigError,
    changed_keys,
    check_fields,
    check_settings,
    from_settings,
    in_range,
    merge,
    one_of,
    parse_overrides,
    settings_of,
)

DEFAULTS = {
    "enabled": True,
    "ratio": 0.9,
    "steps": 10,
    "name": "a",
    "sizes": [1.0, 2.0],
    "opt": None,
    "sub": {"k": 1, "mode": "hard"},
}
CHECKS = {"ratio": in_range(0, 1), "sub.mode": one_of("hard", "random")}


def test_merge_keeps_defaults_and_overrides_typed_values():
    out = merge(DEFAULTS, {"ratio": 1, "sizes": [3, 4], "sub": {"k": 5}, "opt": [1]}, checks=CHECKS)
    assert out["ratio"] == 1.0 and isinstance(out["ratio"], float)
    assert out["sizes"] == [3.0, 4.0] and out["sub"] == {"k": 5, "mode": "hard"}
    assert out["opt"] == [1] and out["enabled"] is True
    assert DEFAULTS["sub"]["k"] == 1  # defaults untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"enabld": True}, "unknown setting 'enabld'; valid keys: ['enabled'"),
        ({"sub": {"kk": 1}}, "unknown setting 'sub.kk'; valid keys: ['k', 'mode']"),
        ({"enabled": "ture"}, "'enabled' must be of type bool"),
        ({"ratio": "abc"}, "'ratio' must be of type float"),
        ({"steps": 1.5}, "'steps' must be of type int"),
        ({"steps": True}, "'steps' must be of type int"),
        ({"sizes": [1, "x"]}, "'sizes[1]' must be of type float"),
        ({"sub": 3}, "'sub' is a section with keys ['k', 'mode']"),
        ({"ratio": 1.5}, "'ratio' = 1.5 must be <= 1"),
        ({"sub": {"mode": "soft"}}, "must be one of ['hard', 'random']"),
    ],
)
def test_merge_rejects_bad_settings_with_a_clear_message(override, message):
    with pytest.raises(ConfigError) as err:
        merge(DEFAULTS, override, checks=CHECKS)
    assert message in str(err.value)


def test_parse_overrides_uses_yaml_values():
    out = parse_overrides(["a.b=0.5", "a.c=true", "d=[1, 2]", "e=null", "f=abc", "g="])
    assert out == {"a": {"b": 0.5, "c": True}, "d": [1, 2], "e": None, "f": "abc", "g": ""}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="set twice"):
        parse_overrides(["a=1", "a.b=2"])


def test_changed_keys_lists_dotted_differences():
    a = {"x": 1, "s": {"y": [1, 2], "z": "q"}}
    b = {"x": 1, "s": {"y": [1, 3], "w": 0}}
    assert changed_keys(a, b) == ["s.w", "s.y", "s.z"]
    assert changed_keys(a, json.loads(json.dumps(a))) == []


def test_check_settings_writes_then_refuses_changed_settings(tmp_path):
    path = tmp_path / "settings.json"
    check_settings(path, {"a": 1, "b": {"c": 2}})
    assert json.loads(path.read_text()) == {"a": 1, "b": {"c": 2}}
    check_settings(path, {"a": 1, "b": {"c": 2}})  # same settings: fine
    with pytest.raises(ConfigError, match=r"changed: b\.c"):
        check_settings(path, {"a": 1, "b": {"c": 3}})
    check_settings(path, {"a": 1, "b": {"c": 3}}, force=True)
    assert json.loads(path.read_text())["b"]["c"] == 3
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable settings file"):
        check_settings(path, {"a": 1})


def test_check_settings_lets_free_keys_change(tmp_path):
    path = tmp_path / "settings.json"
    check_settings(path, {"a": 1, "b": {"c": 2, "d": "x"}})
    check_settings(path, {"a": 1, "b": {"c": 2, "d": "y"}}, free={"b.d"})  # free: accepted
    with pytest.raises(ConfigError, match=r"\(changed: b\.c\)"):  # b.d is not named
        check_settings(path, {"a": 1, "b": {"c": 3, "d": "y"}}, free={"b.d"})
    assert json.loads(path.read_text())["b"] == {"c": 2, "d": "x"}  # the saved ones stay


@dataclasses.dataclass(frozen=True)
class Conf:
    name: str = "a"
    size: int = 3
    ratio: float = 0.5
    tags: tuple[str, ...] = ("x", "y")
    extra: list = dataclasses.field(default_factory=list)
    camera: str | None = None

    def __post_init__(self):
        check_fields(self, CONF_CHECKS)


CONF_CHECKS = {"size": in_range(1), "name": one_of("a", "b")}


@dataclasses.dataclass
class Required:
    path: str
    level: int = 1


def test_from_settings_builds_checked_dataclasses_and_round_trips():
    conf = from_settings(Conf, {"size": 5, "ratio": 1, "tags": ["z"]}, checks=CONF_CHECKS)
    assert conf == Conf(size=5, ratio=1.0, tags=("z",))
    assert isinstance(conf.ratio, float) and isinstance(conf.tags, tuple)
    settings = settings_of(conf)
    assert settings == {
        "name": "a",
        "size": 5,
        "ratio": 1.0,
        "tags": ["z"],
        "extra": [],
        "camera": None,
    }
    assert from_settings(Conf, json.loads(json.dumps(settings))) == conf  # saved, read back
    based = from_settings(Conf, {"name": "b"}, base=conf, checks=CONF_CHECKS)
    assert based == Conf(name="b", size=5, ratio=1.0, tags=("z",))
    assert from_settings(Conf) == Conf()
    assert from_settings(Required, {"path": "p"}) == Required("p")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"sise": 2}, "unknown setting 'sise'; valid keys: ['camera', 'extra', 'name', 'ratio'"),
        ({"size": "abc"}, "setting 'size' must be of type int (like its default 3)"),
        ({"tags": "x"}, "setting 'tags' must be of type list"),
        ({"size": 0}, "setting 'size' = 0 must be >= 1"),
        ({"name": "c"}, "setting 'name' = 'c' must be one of ['a', 'b']"),
    ],
)
def test_from_settings_rejects_bad_settings(override, message):
    with pytest.raises(ConfigError) as err:
        from_settings(Conf, override, checks=CONF_CHECKS)
    assert message in str(err.value)


def test_dataclasses_check_their_fields_and_required_settings():
    with pytest.raises(ConfigError, match="'size' = 0 must be >= 1"):
        dataclasses.replace(Conf(), size=0)
    with pytest.raises(ConfigError, match="'ratio' must be of type float"):
        Conf(ratio="high")
    with pytest.raises(ConfigError, match=r"settings \['path'\] are required"):
        from_settings(Required, {"level": 2})
    with pytest.raises(TypeError, match="dataclass instance"):
        settings_of(Conf)


def test_overrides_read_exponent_numbers_as_floats():
    """YAML 1.1 reads ``1e9`` (no dot) as a string; overrides take it as the number it is."""
    assert parse_overrides(["a.b=1e9", "c=-2.5E-3", "d=1e9x", "e=3"]) == {
        "a": {"b": 1e9},
        "c": -2.5e-3,
        "d": "1e9x",
        "e": 3,
    }
