"""Static HTML report: escaped tables, figures that must exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from s2dloc.viz.report import table_html, write_report


def test_report_links_existing_figures_and_escapes_text(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    index = write_report(
        tmp_path, "r<1>", [("T & S", [table_html([["<x>", 1]], ["h"]), Path("a.png")])]
    )
    text = index.read_text()
    assert "<img src='a.png'" in text and "&lt;x&gt;" in text and "T &amp; S" in text


def test_missing_figure_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report(tmp_path, "r", [("s", [Path("missing.png")])])
    assert not (tmp_path / "index.html").exists()
