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


def test_run_plots_write_pngs(tmp_path):
    import numpy as np
    import torch

    from s2dloc.viz.run_plots import pca_rgb, plot_feature_pca, plot_recall_bars, plot_top_down

    centres = np.stack([np.linspace(-5, 5, 10), np.zeros(10), np.ones(10)], 1)
    paths = [
        plot_top_down(centres, {"q": centres[3]}, {"q": 0.2}, tmp_path / "t.png"),
        plot_recall_bars(
            {"a": {"all": {"k": 50.0}}, "b": {"all": {"k": 75.0}}}, "k", tmp_path / "r.png"
        ),
        plot_feature_pca(np.zeros((8, 8, 3)), [torch.randn(4, 8, 8)], tmp_path / "f.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG"
    rgb = pca_rgb(torch.randn(5, 6, 7))
    assert rgb.shape == (6, 7, 3) and rgb.min() >= 0 and rgb.max() <= 1
