"""``s2dloc synth``'s library call: options, then ``KEY=VAL`` settings, override the preset;
an option out of range is refused naming the option, before anything is written."""

from __future__ import annotations

import json

import pytest

from s2dloc.datasets.synthetic.command import SynthRequest, synth_command
from s2dloc.utils.config import ConfigError


def test_options_override_the_preset_and_conf_overrides_both(tmp_path):
    request = SynthRequest(
        tmp_path / "w",
        preset="tiny",
        seed=3,
        num_db=2,
        num_query=1,
        width=40,
        height=30,
        conf=["width=48", "query_conditions=[snow]"],
    )
    made = synth_command(request, progress=False)
    config = json.loads((tmp_path / "w" / "settings.json").read_text())["config"]
    assert (config["seed"], config["num_db"], config["num_query"]) == (3, 2, 1)
    assert (config["width"], config["height"]) == (48, 30)  # --conf wins over --width
    assert config["query_conditions"] == ["snow"]
    assert made.root == tmp_path / "w" and made.preview is None
    assert sorted(p.name for p in (made.root / "images" / "query" / "snow").iterdir()) == [
        "0000.png"
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 100000, "s2dloc synth --width must be within 16-4096 pixels, got 100000"),
        ("num_query", 0, "s2dloc synth --num-query must be"),
        ("fov", 180.0, "s2dloc synth --fov must be within 10-170 degrees, got 180"),
    ],
)
def test_an_option_out_of_range_is_refused_by_name(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        synth_command(SynthRequest(tmp_path / "w", preset="tiny", **{field: value}))
    assert not (tmp_path / "w").exists()


def test_from_args_takes_the_options_of_the_same_names():
    from argparse import Namespace

    args = Namespace(out="o", preset="tiny", fov=60.0, conf=["seed=1"], command="synth")
    request = SynthRequest.from_args(args)
    assert (request.out, request.fov, request.conf, request.width) == ("o", 60.0, ["seed=1"], None)
