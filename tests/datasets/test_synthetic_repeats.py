"""Surfaces that do not repeat exactly: :func:`break_repeats` and the world's texture jitter."""

import dataclasses

import numpy as np
import pytest

from s2dloc.datasets.synthetic.render import render
from s2dloc.datasets.synthetic.scenes import break_repeats, look_at, street_canyon
from s2dloc.datasets.synthetic.world import PRESETS, make_camera, world_config
from s2dloc.geometry import Pose


def _area(prims, material: str) -> float:
    return sum(np.linalg.norm(np.cross(p.u, p.v)) for p in prims if p.material == material)


def test_no_jitter_keeps_the_scene():
    scene = street_canyon(0)
    assert break_repeats(scene, 0.0) is scene


def test_long_surfaces_are_cut_and_repeats_scaled_within_the_jitter():
    scene = street_canyon(0)
    out = break_repeats(scene, 0.3, seed=0, max_edge=12.0)
    assert len(out.primitives) > len(scene.primitives)
    for p in out.primitives:  # cut across the longer edge (the 16 x 14 m end walls: once)
        assert min(np.linalg.norm(p.u), np.linalg.norm(p.v)) <= 12.0 + 1e-9, p
    for material in {p.material for p in scene.primitives}:
        assert _area(out.primitives, material) == pytest.approx(_area(scene.primitives, material))
    road = [p for p in out.primitives if p.material == "road"]
    scale = np.array([p.tex_size[0] / 3.0 for p in road])  # the road repeats every 3 m
    assert len(road) >= 6 and np.all((scale >= 0.7) & (scale <= 1.3)) and scale.std() > 0.05
    # The pieces of the road tile it: consecutive along +y, from its start to its end.
    ys = sorted((p.origin[1], p.origin[1] + p.v[1]) for p in road)
    assert ys[0][0] == pytest.approx(-10.0) and ys[-1][1] == pytest.approx(70.0)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(ys[:-1], ys[1:]))
    posters = [p for p in out.primitives if p.material == "poster"]
    before = [p for p in scene.primitives if p.material == "poster"]
    assert [p.tex_size for p in posters] == [p.tex_size for p in before]
    again = break_repeats(street_canyon(0), 0.3, seed=0)
    assert [p.tex_size for p in again.primitives] == [p.tex_size for p in out.primitives]


def test_a_view_one_repeat_further_differs_only_with_jitter():
    """Looking down at the road: moved by its 3 m repeat, the view is the same with exact
    repeats and different once the repeats are broken."""
    camera = make_camera("PINHOLE", 64, 48, 40.0)

    def view(scene, y: float) -> np.ndarray:
        R, t = look_at([0.0, y, 1.6], [0.0, y + 0.3, 0.0])
        return render(scene, camera, Pose.from_Rt(R, t)).rgb

    exact = street_canyon(0)
    assert np.abs(view(exact, 21.0) - view(exact, 24.0)).max() < 1e-3
    jittered = break_repeats(exact, 0.3, seed=0)
    assert np.abs(view(jittered, 21.0) - view(jittered, 24.0)).mean() > 0.02


def test_world_texture_jitter_setting():
    assert PRESETS["demo"].texture_jitter == 0.3
    assert world_config("small", {"texture_jitter": 0.0}).texture_jitter == 0.0
    with pytest.raises(ValueError, match="texture_jitter"):
        world_config("small", {"texture_jitter": 1.5})
    with pytest.raises(ValueError, match="texture_jitter"):
        dataclasses.replace(PRESETS["tiny"], texture_jitter=-0.1)
