"""``s2dloc demo`` end to end on the tiny world: recall table, figures and an HTML report."""

from __future__ import annotations

import re

from s2dloc.cli import main


def test_demo_writes_a_report_with_valid_images(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--preset", "tiny", "--figures", "1"]) == 0
    out = capsys.readouterr().out
    assert "recall [%]" in out and "report:" in out
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
