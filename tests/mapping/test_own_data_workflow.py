"""The README's own-data sequence end to end: ``s2dloc map`` on images without poses, then
``s2dloc localize`` of new images (a folder, intrinsics from the map's camera)."""

from __future__ import annotations

import numpy as np

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose
from s2dloc.localization.map import Map

from .conftest import align_to_gt, render_sequence


def test_map_then_localize_new_images(sequence, tmp_path):
    images, gt = sequence
    assert (
        main(
            [
                "map",
                "--images",
                str(images),
                "--out",
                str(tmp_path / "map"),
                "--single-camera",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    # New images between the mapping cameras (half a step along the street), at dusk.
    queries = tmp_path / "queries"
    rendered = render_sequence(queries, num=3, step=0.5, start=4.375, condition="dusk")
    q_gt = {f"q{k}": p for k, p in enumerate(rendered.values())}
    for k, old in enumerate(sorted(queries.iterdir())):
        old.rename(queries / f"q{k}.png")
    assert (
        main(
            [
                "localize",
                "--map",
                str(tmp_path / "map"),
                "--queries",
                str(queries),
                "--out",
                str(tmp_path / "loc"),
                "--extractor",
                "gnnet",
            ]
        )
        == 0
    )
    results = read_poses(tmp_path / "loc" / "results.txt")
    assert len(results) >= 2
    map_ = Map.load(tmp_path / "map")
    est = {n: map_[n].cam_from_world.numpy() for n in map_.names if n in gt}
    R_sT, scale, m_est, m_gt = align_to_gt(est, {n: gt[n].numpy() for n in est})
    for name, (q, t) in results.items():
        pose = Pose.from_quat_t(np.asarray(q), np.asarray(t))
        R, tt = pose.numpy()
        c = scale * ((-R.T @ tt) @ R_sT - m_est) + m_gt
        R_true, t_true = q_gt[name.split(".")[0]].numpy()
        assert np.linalg.norm(c - (-R_true.T @ t_true)) < 0.25, name  # metres
        cos = (np.trace(R_true.T @ R @ R_sT) - 1) / 2
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 2.0, name
