"""``s2dloc synth`` refuses a folder of other settings before rendering (also one left by an
interrupted run) and resumes one of the same settings; ``s2dloc map`` refuses options that its
mode would ignore. Each refusal is one line with exit code 2."""

from __future__ import annotations

import pytest

from s2dloc.cli import main
from s2dloc.datasets.synthetic import make

from ._cli import fails

SYNTH = ["synth", "--preset", "tiny", "--num-db", "2", "--num-query", "1", "--width", "48"]
SYNTH += ["--height", "36", "--conf", "query_conditions=[night]"]


def _no_rendering(monkeypatch) -> None:
    def generate_world(*args, **kwargs):
        raise AssertionError("rendered a world that is refused")

    monkeypatch.setattr(make, "generate_world", generate_world)


def test_synth_refuses_other_settings_before_rendering(
    tmp_path, caplog, monkeypatch, interrupt_after
):
    out = tmp_path / "w"
    with monkeypatch.context() as m:
        interrupt_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            main([*SYNTH, "--out", str(out), "--seed", "1"])
    partial = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert partial == ["images/db/0000.png", "settings.json"]
    first = (out / "images/db/0000.png").stat()
    first_bytes = (out / "images/db/0000.png").read_bytes()
    with monkeypatch.context() as m:
        _no_rendering(m)
        message = fails([*SYNTH, "--out", str(out), "--seed", "2"], caplog)
        assert "settings.json was written with other settings (changed: config.seed)" in message
        message = fails([*SYNTH, "--out", str(out), "--seed", "1", "--width", "64"], caplog)
        assert "(changed: config.width)" in message  # --seed 1 is the same
    now = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert now == partial  # nothing written by the refused runs
    assert main([*SYNTH, "--out", str(out), "--seed", "1", "--preview"]) == 0  # resumes
    assert (out / "images/db/0000.png").stat().st_ino == first.st_ino  # kept
    assert (out / "world.json").exists() and (out / "preview.png").exists()
    assert (out / "images/query/night/0000.png").exists()
    with monkeypatch.context() as m:  # a complete world is refused the same way
        _no_rendering(m)
        assert "(changed: config.seed)" in fails([*SYNTH, "--out", str(out)], caplog)
    assert main([*SYNTH, "--out", str(out), "--overwrite"]) == 0  # starts again with seed 0
    assert (out / "images/db/0000.png").read_bytes() != first_bytes  # the seed-0 world
    assert not (out / "preview.png").exists()


MODEL = ["--known-poses", "MODEL"]
IMPORT = ["--import-model", "MODEL"]
FROM_MODEL = "has no use with --known-poses: the cameras come from the model"
NO_SFM = "has no use with --import-model: the model is imported as it is"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([*MODEL, "--camera-model", "PINHOLE"], f"--camera-model {FROM_MODEL}"),
        ([*MODEL, "--camera", "PINHOLE 64 48 50 50 32 24"], f"--camera {FROM_MODEL}"),
        ([*MODEL, "--single-camera"], f"--single-camera {FROM_MODEL}"),
        ([*MODEL, "--overlap", "5"], "--overlap has no use with --known-poses: it sets the seq"),
        ([*MODEL, "--matcher", "sequential"], "with --known-poses use --matcher exhaustive or"),
        ([*IMPORT, "--camera-model", "PINHOLE"], f"--camera-model {NO_SFM}"),
        ([*IMPORT, "--camera", "PINHOLE 64 48 50 50 32 24"], f"--camera {NO_SFM}"),
        ([*IMPORT, "--single-camera"], f"--single-camera {NO_SFM}"),
        ([*IMPORT, "--max-size", "640"], f"--max-size {NO_SFM}"),
        ([*IMPORT, "--max-features", "100"], f"--max-features {NO_SFM}"),
        ([*IMPORT, "--matcher", "exhaustive"], f"--matcher {NO_SFM}"),
        ([*IMPORT, "--overlap", "5"], f"--overlap {NO_SFM}"),
        ([*IMPORT, "--threads", "1"], f"--threads {NO_SFM}"),
        ([*IMPORT, *MODEL], "use either --import-model or --known-poses, not both"),
        (["--overlap", "5"], "--overlap has no use with --matcher exhaustive: it sets the seq"),
        (["--matcher", "poses"], "--matcher poses needs --known-poses"),
        (
            ["--camera", "PINHOLE 64 48 50 50 32 24", "--camera-model", "OPENCV"],
            "--camera-model has no use with --camera: its MODEL is used",
        ),
    ],
)
def test_map_refuses_options_its_mode_ignores(tmp_path, caplog, extra, expected):
    argv = ["map", "--images", str(tmp_path), "--out", str(tmp_path / "map"), *extra]
    assert expected in fails(argv, caplog)
    assert not (tmp_path / "map").exists()
