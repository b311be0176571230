"""Verdict tables: precision of accepted poses and recall with and without the verdict."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from s2dloc.geometry import Pose
from s2dloc.localization import QueryResult
from s2dloc.localization import verify as V
from s2dloc.localization.evidence import Evidence
from s2dloc.viz.verdict import (
    Outcome,
    evaluate_run,
    mistake_rows,
    pooled_row,
    precision_interval,
    reason_rows,
    verdict_row,
    verdict_rows,
    write_run,
)


def _pose(deg: float = 0.0, metres: float = 0.0) -> Pose:
    xi = torch.tensor([metres, 0, 0, math.radians(deg), 0, 0], dtype=torch.float64)
    return Pose.exp(xi)


def _qt(p: Pose) -> list[float]:
    return [*p.quat().tolist(), *p.t.tolist()]


def test_verdict_row_known_answer():
    gt = {f"q/{c}/{i}": _pose() for c in ("day", "night") for i in range(4)}
    outcomes = [
        Outcome("q/day/0", _pose(0.5, 0.1), True),  # right, fine
        Outcome("q/day/1", _pose(3.0, 0.5), True),  # right at (1 m, 5 deg), not fine
        Outcome("q/day/2", _pose(90.0, 20.0), True),  # wrong but accepted
        Outcome("q/day/3", _pose(0.1, 0.01), False, "PnP: 20 inliers < 30"),  # right, rejected
        Outcome("q/night/0", None, False, "error: no image"),
        Outcome("q/night/1", _pose(60.0), False, "PnP: 12 inliers < 30"),
    ]
    row = verdict_row("all", outcomes, gt)
    # 6 queries, 5 with a pose, 3 accepted of which 2 right at (1 m, 5 deg); recall at
    # (0.25 m, 2 deg): 2 of 6 counting every pose (day/0, day/3), 1 of 6 with the verdict.
    assert row == ["all", 6, 5, 3, "66.7", precision_interval(2, 3), "33.3", "16.7"]
    rows = verdict_rows(outcomes, gt, lambda n: n.split("/")[1])
    assert [r[0] for r in rows] == ["day", "night", "all"] and rows[1][3] == 0
    assert rows[1][4] == "nan" and rows[0][4] == "66.7"
    assert reason_rows(outcomes) == [["PnP: N inliers < N", 2], ["error: no image", 1]]


def test_precision_interval_known_answers():
    """Wilson's bounds in closed form: all n right gives [n / (n + z^2), 1], none right
    [0, z^2 / (n + z^2)] (z = 1.96 at 95%); the interval narrows with more poses."""
    z2 = 1.959964**2
    assert precision_interval(26, 26) == f"{100 * 26 / (26 + z2):.1f}-100.0" == "87.1-100.0"
    assert precision_interval(0, 10) == f"0.0-{100 * z2 / (10 + z2):.1f}"
    assert precision_interval(0, 0) == "nan"
    lo, hi = (float(v) for v in precision_interval(2236, 2258).split("-"))
    assert lo < 100 * 2236 / 2258 < hi and hi - lo < 1.0
    lo_small, hi_small = (float(v) for v in precision_interval(22, 23).split("-"))
    assert lo_small < lo and hi_small - lo_small > 10


def test_translation_unit_scales_the_thresholds():
    gt = {"a": _pose()}
    o = [Outcome("a", _pose(0.0, 2.0), True)]
    assert verdict_row("x", o, gt)[4] == "0.0" and verdict_row("x", o, gt, unit=4.0)[4] == "100.0"


def _results() -> list[QueryResult]:
    """Query ``a``: right, with evidence that passes; ``b``: 40 deg off, evidence that fails
    on the grid coverage (1 cell of 16) and passes without that check."""
    grid = np.stack(np.meshgrid(np.linspace(5, 635, 8), np.linspace(5, 475, 8)), -1)
    good = V.pnp_stats(grid.reshape(-1, 2), np.full(64, 1.0), 200, (640, 480), 10.0, 6.0)
    wrong = dataclasses.replace(good, grid_coverage=1 / 16)
    return [
        QueryResult(
            "a",
            pose=_pose(0.5, 0.1),
            pnp_pose=_pose(0.5, 0.1),
            pnp_success=True,
            success=True,
            verify=Evidence(pnp=good),
        ),
        QueryResult(
            "b",
            pose=_pose(40.0, 9.0),
            pnp_pose=_pose(40.0, 9.0),
            pnp_success=True,
            success=False,
            reason="PnP: ...",
            verify=Evidence(pnp=wrong),
        ),
    ]


def test_run_folder_round_trip_and_rejudging(tmp_path):
    """Records written by write_run are judged again from their statistics."""
    gt = {"a": _pose(), "b": _pose()}
    run = write_run(tmp_path / "run", _results(), gt)
    assert not (run / "config.json").exists()
    conf = {"verify": {"min_inliers": 20}, "fpnp": {"solver": {"loss_scale": math.nan}}}
    assert write_run(tmp_path / "run", _results(), gt, conf=conf) == run
    assert json.loads((run / "config.json").read_text()) == {
        "verify": {"min_inliers": 20},
        "fpnp": {"solver": {"loss_scale": None}},
    }
    assert math.isnan(_results()[0].verify.pnp.second_support)
    for line in (run / "log.jsonl").read_text().splitlines():  # strict JSON: NaN -> null
        record = json.loads(line, parse_constant=lambda token: pytest.fail(f"{token} in log"))
        assert record["verify"]["pnp"]["second_support"] is None
    th = V.VerifyThresholds()
    one = precision_interval(1, 1)
    assert evaluate_run(run, th) == [f"{tmp_path.name}/run", 2, 2, 1, "100.0", one, "50.0", "50.0"]
    loose = dataclasses.replace(th, min_grid_coverage=0.0)
    assert evaluate_run(run, loose)[3:5] == [2, "50.0"]
    assert mistake_rows(run, th) == []  # b is wrong and rejected: no mistake
    assert mistake_rows(run, loose) == [["b", "accepted, wrong", "9.00", "40.0", ""]]
    (run / "gt.txt").write_text(
        "a 1 0 0 0 0 0 0\nb " + " ".join(f"{v:.10g}" for v in _qt(_pose(40.0, 9.0))) + "\n"
    )
    assert mistake_rows(run, th) == [
        ["b", "rejected, right", "0.00", "0.0", "PnP: inliers cover 0.06 of the image < 0.25"]
    ]
    (run / "log.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="log.jsonl:1"):
        evaluate_run(run, th)


def test_runs_pooled_into_one_row(tmp_path):
    """Two runs with the same query names count as 4 queries; pooling runs with different
    translation units is refused."""
    gt = {"a": _pose(), "b": _pose()}
    runs = [write_run(tmp_path / f"run{i}", _results(), gt) for i in range(2)]
    th = V.VerifyThresholds()
    row = ["both", 4, 4, 2, "100.0", precision_interval(2, 2), "50.0", "50.0"]
    assert pooled_row("both", runs, th) == row
    loose = dataclasses.replace(th, min_grid_coverage=0.0)
    assert pooled_row("both", runs, loose)[3:5] == [4, "50.0"]
    (runs[1] / "unit.txt").write_text("2.0")
    with pytest.raises(ValueError, match="units"):
        pooled_row("both", runs, th)
