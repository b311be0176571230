"""``s2dloc demo`` end to end on the tiny world: recall table, figures and an HTML report."""

from __future__ import annotations

import json
import re

from s2dloc.cli import main


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
    cache = tmp_path / "cache-default.h5"
    assert cache.exists()
    # A world of other settings (as an older version wrote it) is written anew, and the feature
    # cache of its images (same names and observations) is rebuilt, not read back.
    meta = tmp_path / "world" / "world.json"
    world = json.loads(meta.read_text())
    world["config"]["texture_jitter"] = 0.0
    meta.write_text(json.dumps(world))
    old = cache.stat().st_mtime_ns
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--figures", "1"]) == 0
    assert json.loads(meta.read_text())["config"]["texture_jitter"] == 0.3
    assert cache.stat().st_mtime_ns != old
