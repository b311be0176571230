"""The verdict's evidence and F-PnP's record: JSON round trips and strict reading."""

from __future__ import annotations

import json
import math

import pytest

from s2dloc.localization.evidence import (
    Evidence,
    FPnPRecord,
    FPnPStats,
    PnPStats,
    RerankRecord,
)
from s2dloc.localization.io import record_line


def _pnp(**kw) -> PnPStats:
    base = dict(
        num_matches=200,
        num_inliers=80,
        inlier_ratio=0.4,
        grid_coverage=0.5,
        hull_fraction=0.3,
        residual_median=1.2,
        max_error=6.0,
        residual_p90=3.5,
        depth=12.0,
    )
    return PnPStats(**{**base, **kw})


def _fpnp(**kw) -> FPnPStats:
    base = dict(
        solver_success=True,
        solver_message="",
        num_points=900,
        num_valid=850,
        cost_ratio=0.7,
        rotation_std=0.01,
        translation_std=0.001,
        rotation_change=0.2,
        translation_change=0.003,
        move_sigma=math.nan,
    )
    return FPnPStats(**{**base, **kw})


def _through_log(data: dict) -> dict:
    return json.loads(record_line(data), parse_constant=lambda t: pytest.fail(f"{t} in log"))


def test_evidence_round_trips_through_strict_json_with_nan_kept():
    ev = Evidence(
        pnp=_pnp(second_support=0.5),
        fpnp=_fpnp(),
        final=_pnp(num_inliers=90),
        rerank=RerankRecord(["a", "b"], [0.2, math.nan], 3.0, 0.1, False),
    )
    data = _through_log(ev.to_json())
    assert set(data) == {"pnp", "fpnp", "final", "rerank"}  # fpnp_visible unset: left out
    assert data["pnp"]["second_rotation"] is None and data["rerank"]["residual_median"][1] is None
    back = Evidence.from_json(data)
    assert math.isnan(back.pnp.second_rotation) and math.isnan(back.fpnp.move_sigma)
    assert back.pnp.second_support == 0.5 and back.final.num_inliers == 90
    assert back.fpnp_visible is None and back.rerank.references == ["a", "b"]
    assert back.rerank.residual_median[0] == 0.2 and math.isnan(back.rerank.residual_median[1])
    assert Evidence.from_json(None) == Evidence() == Evidence.from_json({})


def test_fpnp_record_round_trips_and_empty_means_not_run():
    rec = FPnPRecord(
        num_points=12,
        iterations=[3, 4],
        cost_init=2.0,
        cost_final=math.inf,
        pose=[1.0, 0, 0, 0, 0, 0, 1],
        cost_history=[[2.0, 1.5], [1.0]],
        points="visible",
        channels=32,
    )
    data = _through_log(rec.to_json())
    assert data["cost_final"] is None
    back = FPnPRecord.from_json(data)
    assert math.isnan(back.cost_final) and back.cost_history == [[2.0, 1.5], [1.0]]
    assert FPnPRecord.from_json({"pose": None}).pose is None  # optional: not NaN
    assert (back.points, back.channels, back.iterations) == ("visible", 32, [3, 4])
    assert FPnPRecord.from_json({}) is None and FPnPRecord.from_json(None) is None
    assert FPnPRecord.from_json({"message": "no points"}) == FPnPRecord(message="no points")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pnp": {}, "bogus": {}}, r"verify: unknown keys \['bogus'\] \(valid: \['final'"),
        ({"pnp": {"num_matches": 3}}, r"verify.pnp: missing keys \['num_inliers'"),
        ({"fpnp": {"solver_success": True, "typo": 1}}, r"verify.fpnp: unknown keys \['typo'\]"),
        ({"pnp": [1, 2]}, "verify.pnp: expected an object, got list"),
        ([1], "verify: expected an object, got list"),
    ],
)
def test_malformed_evidence_is_refused_naming_the_key(data, message):
    with pytest.raises(ValueError, match=message):
        Evidence.from_json(data)


def test_malformed_fpnp_record_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"q1: fpnp: unknown keys \['iters'\]"):
        FPnPRecord.from_json({"iters": [1]}, "q1: fpnp")
