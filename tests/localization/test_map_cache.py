import h5py
import numpy as np
import pytest
import torch

from s2dloc.features.base import PhotometricExtractor
from s2dloc.geometry import Pose
from s2dloc.localization import Map, build_cache, load_cache, resolve
from s2dloc.localization.map import RefImage

from .conftest import CONF
from .extractors import PatchProjection


def test_map_from_world(world_map):
    assert len(world_map) == 12 and len(world_map.points3D) > 100
    im = world_map.images[0]
    assert im.keypoints.shape == (len(im.point3D_ids), 2)
    assert world_map.load_image(im.name).shape == (120, 160, 3)


def test_map_colmap_round_trip(world_map):
    back = Map.from_colmap(world_map.to_colmap(), world_map.image_root)
    assert back.names == world_map.names
    for a, b in zip(world_map.images, back.images):
        np.testing.assert_allclose(a.keypoints, b.keypoints)
        np.testing.assert_allclose(world_map.xyz(a.point3D_ids), back.xyz(b.point3D_ids))
        assert float(a.cam_from_world.angle_to(b.cam_from_world)) < 1e-6


def test_map_validation(world_map, tmp_path):
    im = world_map.images[0]
    T = Pose(im.cam_from_world.R.clone(), im.cam_from_world.t.clone())
    T.t[0] = float("nan")
    bad = RefImage(im.name, im.camera, T, im.point3D_ids, im.keypoints)
    with pytest.raises(ValueError, match="non-finite pose"):
        Map([bad], world_map.point_ids, world_map.points3D, world_map.image_root).validate()
    with pytest.raises(ValueError, match="not found"):
        Map(world_map.images, world_map.point_ids, world_map.points3D, tmp_path).validate()
    with pytest.raises(ValueError, match="no 3D points"):
        Map(world_map.images, [], np.zeros((0, 3)), world_map.image_root).validate()
    with pytest.raises(FileNotFoundError):
        Map.load(tmp_path / "missing")
    ids, xyz = world_map.point_ids, world_map.points3D
    dangling = RefImage(
        im.name, im.camera, im.cam_from_world, im.point3D_ids + ids.max() + 1, im.keypoints
    )
    with pytest.raises(ValueError, match=f"{im.name!r} observes unknown 3D points"):
        Map([dangling], ids, xyz, world_map.image_root).validate()
    twice = np.concatenate([ids, ids[:2]]), np.concatenate([xyz, xyz[:2]])
    with pytest.raises(ValueError, match=f"duplicate 3D point ids \\[{ids[0]}, {ids[1]}\\]"):
        Map(world_map.images, *twice, world_map.image_root).validate()


def test_map_xyz_looks_up_ids_in_any_order(world_map):
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(world_map.point_ids), 50)
    shuffled = Map(world_map.images, world_map.point_ids[::-1], world_map.points3D[::-1])
    for m in (world_map, shuffled):
        np.testing.assert_array_equal(m.xyz(world_map.point_ids[rows]), world_map.points3D[rows])
    assert world_map.xyz(np.zeros(0, np.int64)).shape == (0, 3)
    with pytest.raises(KeyError, match=f"3D point id {world_map.point_ids.max() + 7} "):
        world_map.xyz([world_map.point_ids[0], world_map.point_ids.max() + 7])


def test_cache_resumable_and_overwrite(world_map, tmp_path):
    conf = resolve(CONF)
    ext = PatchProjection()
    path = tmp_path / "cache.h5"
    assert build_cache(world_map, ext, path, conf, progress=False) == 12
    calls = ext.calls
    assert build_cache(world_map, ext, path, conf, progress=False) == 0
    assert ext.calls == calls  # nothing recomputed
    # An interrupted write (group without the completion marker) is recomputed.
    with h5py.File(path, "a") as f:
        del f[world_map.names[3]].attrs["checksum"]
    assert build_cache(world_map, ext, path, conf, progress=False) == 1
    refs = load_cache(world_map, path, conf, ext)
    r = refs[world_map.names[0]]
    assert r.descriptors.shape[0] == len(world_map.images[0].point3D_ids)
    assert torch.allclose(r.descriptors.norm(dim=-1), torch.ones(1), atol=1e-2)
    assert len(r.features) == 4
    assert build_cache(world_map, ext, path, conf, overwrite=True, progress=False) == 12
    other = resolve({"s2d": {"match_stride": 8}})
    with pytest.raises(ValueError, match="other settings"):
        build_cache(world_map, ext, path, other, progress=False)


def test_global_level_pools_maps_of_about_90_pixels(world_map):
    from s2dloc.localization.cache import resolve_global_levels
    from s2dloc.localization.descriptors import global_level

    strides = (1, 2, 4, 8)
    assert [global_level(strides, side) for side in (90, 160, 320, 768, 1536)] == [0, 1, 2, 3, 3]
    assert global_level((1, 2, 4, 8, 16), 1536) == 4
    conf = resolve(CONF)
    assert conf["retrieval"]["levels"] is None  # the default: chosen per map
    ext = PhotometricExtractor(strides)
    fixed = resolve_global_levels(conf, ext, world_map)  # 160x120 images: stride 2
    assert fixed["retrieval"]["levels"] == [-3] and conf["retrieval"]["levels"] is None
    # resized to a long side of 64 for extraction: the finest level is nearest 90 pixels
    small = resolve_global_levels(resolve({**CONF, "resize_max": 64}), ext, world_map)
    assert small["retrieval"]["levels"] == [-4]
    explicit = resolve({**CONF, "retrieval": {"levels": [-1]}})
    assert resolve_global_levels(explicit, ext, world_map) is explicit
    assert resolve({"retrieval": {"levels": "auto"}})["retrieval"]["levels"] == "auto"
    from s2dloc.localization import Localizer

    loc = Localizer(world_map, CONF, extractor=PatchProjection(), progress=False)
    assert loc.conf["retrieval"]["levels"] == [-3]  # what references and queries pool
    for bad in ([], "coarsest", [1.5]):
        with pytest.raises(ValueError, match="retrieval.levels.*null, 'auto' or a non-empty list"):
            resolve({"retrieval": {"levels": bad}})
