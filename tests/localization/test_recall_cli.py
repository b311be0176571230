import json
import logging

import h5py
import numpy as np
import pytest

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.datasets.toy import perturb
from s2dloc.evaluation.recall import evaluate
from s2dloc.geometry import Pose
from s2dloc.localization import pipeline


def _write(path, rows):
    path.write_text("".join(" ".join([n] + [str(v) for v in vals]) + "\n" for n, vals in rows))


def test_recall_known_numbers(tmp_path):
    gt = [(f"query/{c}/{i}.png", [1, 0, 0, 0, 0, 0, 0]) for c in ("dusk", "snow") for i in range(2)]
    c10 = np.cos(np.deg2rad(4) / 2)
    s10 = np.sin(np.deg2rad(4) / 2)
    res = [
        ("query/dusk/0.png", [1, 0, 0, 0, 0.1, 0, 0]),  # 0.1 m, 0 deg
        ("query/dusk/1.png", [1, 0, 0, 0, 0, 0, 1.0]),  # 1 m
        ("query/snow/0.png", [c10, s10, 0, 0, 0, 0, 0]),
    ]  # 4 deg; snow/1 missing
    _write(tmp_path / "gt.txt", gt)
    _write(tmp_path / "res.txt", res)
    ev = evaluate(tmp_path / "res.txt", tmp_path / "gt.txt")
    table, errors = ev.table, ev.errors
    assert ev.missing == ["query/snow/1.png"] and ev.submitted["all"]["count"] == 3
    assert ev.submitted["snow"]["0.5m/5.0deg"] == 100 and ev.submitted["all"]["5.0m/10.0deg"] == 100
    assert table["dusk"]["0.25m/2.0deg"] == 50 and table["dusk"]["5.0m/10.0deg"] == 100
    assert table["snow"]["0.25m/2.0deg"] == 0 and table["snow"]["0.5m/5.0deg"] == 50
    assert table["snow"]["median_rot_deg"] == np.inf
    assert table["all"]["count"] == 4 and table["all"]["0.5m/5.0deg"] == 50
    assert np.isinf(errors.trans).sum() == 1
    assert table["dusk"]["median_trans"] == pytest.approx(0.55)


def test_cli_localize_refine_evaluate(world_dir, tmp_path, monkeypatch):
    out, queries = tmp_path / "loc", str(world_dir / "queries_with_intrinsics.txt")
    args = ["localize", "--map", str(world_dir), "--queries", queries, "--out", str(out)]
    args += ["--num-queries", "2", "--conf", "s2d.match_stride=4", "retrieval.num_refs=2"]
    assert main(args) == 0
    for f in ("results.txt", "results_pnp.txt", "log.jsonl", "config.json"):
        assert (out / f).exists(), f
    conf = json.loads((out / "config.json").read_text())
    assert conf["conf"]["s2d"]["match_stride"] == 4
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    assert main(args) == 0  # resumed: nothing new
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    # One query at a time: no background extraction thread, the same poses.
    one, started = tmp_path / "one", []
    monkeypatch.setattr(pipeline, "_yield_to_others", lambda: started.append(1))
    assert main([*args[:6], str(one), *args[7:], "--one-at-a-time"]) == 0
    assert not started
    assert (one / "results.txt").read_text() == (out / "results.txt").read_text()
    # Other settings in the same folder are refused (stale results).
    assert main(args[:-1] + ["retrieval.num_refs=3"]) == 2
    ref = tmp_path / "ref"
    refine = ["refine", "--map", str(world_dir), "--queries", queries, "--out", str(ref)]
    refine += [
        "--poses",
        str(out / "results_pnp.txt"),
        "--cache",
        str(out / "cache-photometric.h5"),
    ]
    refine += ["--conf", "s2d.match_stride=4", "retrieval.num_refs=2"]
    assert main(refine) == 0
    assert (ref / "results.txt").exists()
    plot = tmp_path / "plot.png"
    results = [f"pnp={out / 'results_pnp.txt'}", f"fpnp={out / 'results.txt'}"]
    evaluate_args = ["evaluate", "--results", *results, "--gt", str(world_dir / "poses_query.txt")]
    assert main([*evaluate_args, "--plot", str(plot)]) == 0
    assert plot.stat().st_size > 1000


def test_cli_bad_inputs(world_dir, tmp_path, caplog):
    bad = tmp_path / "queries.txt"
    bad.write_text("query/x.png PINHOLE 160 120 100 100 80\n")
    rc = main(
        ["localize", "--map", str(world_dir), "--queries", str(bad), "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and f"{bad}:1" in caplog.text
    assert (
        main(
            [
                "localize",
                "--map",
                str(tmp_path / "nomap"),
                "--queries",
                str(bad),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert main(["evaluate", "--results", str(tmp_path / "none.txt"), "--gt", str(bad)]) == 2


def test_cli_refine_far_prior_preset(world_dir, tmp_path):
    """``s2dloc refine --preset far-prior``: the preset's settings (with a command-line
    override) are resolved, saved with the results and guard them; every query is refined."""
    priors = tmp_path / "priors.txt"
    rows = []
    for i, (name, vals) in enumerate(read_poses(world_dir / "poses_query.txt").items()):
        p = perturb(Pose.from_quat_t(*vals).double(), 8.0, 0.3, 100 + i)
        rows.append((name, [*p.quat().tolist(), *p.t.tolist()]))
    _write(priors, rows)
    out, queries = tmp_path / "far", str(world_dir / "queries_with_intrinsics.txt")
    args = ["refine", "--map", str(world_dir), "--queries", queries, "--out", str(out)]
    args += ["--poses", str(priors), "--preset", "far-prior"]
    args += ["--conf", "s2d.match_stride=4", "fpnp.coarse_levels=[2]"]
    assert main(args) == 0
    fpnp = json.loads((out / "config.json").read_text())["conf"]["fpnp"]
    assert fpnp["coarse_levels"] == [2] and fpnp["start_search"]["keep"] == 3
    assert fpnp["max_rotation_change"] == 45.0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(records) == len(rows) and all(not r["error"] for r in records)
    (cache,) = out.glob("cache-*.h5")
    with h5py.File(cache, "r") as f:  # every level F-PnP refines on, the pooled one included
        levels = []
        f.visititems(
            lambda name, obj: levels.append(sorted(obj)) if name.endswith("/features") else None
        )
        assert len(levels) == 12 and all(lv == ["0", "1", "2", "3", "4"] for lv in levels)
    assert main(args[:-1] + ["fpnp.coarse_levels=[2,4]"]) == 2  # other settings: refused


def test_cli_results_hold_only_accepted_poses(world_dir, tmp_path, caplog):
    """A run whose verdict rejects every query (no reference can have 10^6 inliers, and F-PnP's
    agreement on every visible point cannot vouch for a pose instead) writes an empty
    results.txt, every PnP pose to results_pnp.txt and each query's reason to log.jsonl;
    ``output.write_failed=true`` puts the best guesses into results.txt too."""
    caplog.set_level(logging.INFO)
    queries = str(world_dir / "queries_with_intrinsics.txt")
    common = ["--map", str(world_dir), "--queries", queries, "--num-queries", "2"]
    conf = ["--conf", "s2d.match_stride=4", "retrieval.num_refs=2", "verify.min_inliers=1000000"]
    conf += ["verify.fpnp_dense_match_ratio=0"]
    out = tmp_path / "strict"
    assert main(["localize", *common, "--out", str(out), *conf]) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["success"] for r in records] == [False, False]
    assert all(r["reason"] and r["pose"] is not None for r in records), records
    assert (out / "results.txt").read_text() == ""
    assert sorted(read_poses(out / "results_pnp.txt")) == sorted(r["name"] for r in records)
    assert "2 queries (2 new, 0 from earlier runs): 0 localized (verified)" in caplog.text
    assert f"0 poses in {out / 'results.txt'}" in caplog.text
    every = tmp_path / "every"
    assert main(["localize", *common, "--out", str(every), *conf, "output.write_failed=true"]) == 0
    assert f"2 poses in {every / 'results.txt'}" in caplog.text
    guesses = read_poses(every / "results.txt")
    assert sorted(guesses) == sorted(r["name"] for r in records)
