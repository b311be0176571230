"""``s2dloc demo`` end to end on the tiny world: recall table, figures and an HTML report."""

from __future__ import annotations

import dataclasses
import json
import re

from s2dloc.cli import main
from s2dloc.datasets.synthetic.world import generate_world, world_config
from s2dloc.datasets.synthetic.write import write_world


def test_demo_writes_a_report_with_valid_images(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--figures", "1"]) == 0
    out = capsys.readouterr().out
    assert "recall [%]" in out and "report:" in out
    # The "all" row: PnP and PnP + F-PnP recall at the three thresholds, over the 6 queries.
    row = re.search(r"^all\s+6\s+(\d+) / (\d+) / (\d+)\s+(\d+) / (\d+) / (\d+)", out, re.M)
    assert row, out
    pnp, final = [int(v) for v in row.groups()[:3]], [int(v) for v in row.groups()[3:]]
    assert final[2] >= 33 and pnp[2] >= 33  # at least 2 of the 6 within (5 m, 10 deg)
    assert pnp == sorted(pnp) and final == sorted(final)  # recall grows with the threshold
    index = tmp_path / "report" / "index.html"
    text = index.read_text()
    images = re.findall(r"<img src='([^']+)'", text)
    assert len(images) >= 3  # cumulative errors, one query, toy convergence
    for rel in images:
        assert (tmp_path / "report" / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<table>" in text and "all" in text
    assert "Verdict:" in out and "prec@1m,5deg %" in text
    records = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(records) == 6 and all('"success": ' in r and '"reason": ' in r for r in records)
    # A second run reuses the world and the feature cache.
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--figures", "1"]) == 0
    assert (tmp_path / "cache-default.h5").exists()
    # A world of other settings (as an older version wrote it, with exact texture repeats) is
    # written anew (the cache then recomputes the entries whose image digest changed).
    older = dataclasses.replace(world_config("tiny"), texture_jitter=0.0)
    write_world(generate_world(older, progress=False), tmp_path / "world", overwrite=True)
    meta = tmp_path / "world" / "world.json"
    assert json.loads(meta.read_text())["config"]["texture_jitter"] == 0.0
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--figures", "1"]) == 0
    assert json.loads(meta.read_text())["config"]["texture_jitter"] == 0.3
