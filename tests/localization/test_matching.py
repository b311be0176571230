import numpy as np
import torch

from s2dloc.geometry import Pose
from s2dloc.localization import Query, resolve
from s2dloc.localization.cache import DescriptorSpec, compute_features
from s2dloc.localization.descriptors import dense_descriptors
from s2dloc.localization.pnp import estimate_pose
from s2dloc.localization.s2d import match_batch

from .extractors import PositionalEncoding


def _match(world_map, shift):
    conf = resolve({"s2d": {"match_stride": 8}})
    im = world_map.images[2]
    image = world_map.load_image(im.name)
    ref = compute_features(PositionalEncoding(), image, im, conf)
    desc, feats = ref.descriptors, ref.features
    ext = PositionalEncoding(shift=shift)
    maps = ext.extract(image)
    spec = DescriptorSpec.from_maps(maps, ext.strides, conf)
    dense = dense_descriptors(maps, spec.levels, spec.match, spec.context)
    m = match_batch([desc], dense, maps, [feats], (160, 120), conf["s2d"])[0]
    return m, im.keypoints[m.idx] + np.array(shift)


def test_s2d_oracle_exact(world_map):
    m, expected = _match(world_map, (0.0, 0.0))
    assert len(m) > 0.8 * len(world_map.images[2].keypoints)
    err = np.linalg.norm(m.p2d - expected, axis=1)
    assert np.mean(err < 1.0) > 0.95, np.median(err)


def test_s2d_oracle_subpixel_shift(world_map):
    m, expected = _match(world_map, (2.3, -1.6))
    inside = (expected > 2).all(1) & (expected < [158, 118]).all(1)
    err = np.linalg.norm(m.p2d - expected, axis=1)[inside]
    assert len(err) > 100 and np.mean(err < 1.0) > 0.9, np.median(err)


def test_pnp_exact_matches(world_map):
    im = world_map.images[5]
    X = world_map.xyz(im.point3D_ids)
    res = estimate_pose(im.keypoints, X, im.camera, resolve()["pnp"])
    assert res.success and res.num_inliers == len(X)
    assert float(res.pose.angle_to(im.cam_from_world)) < 0.01
    assert float(res.pose.center_distance_to(im.cam_from_world)) < 1e-3
    few = estimate_pose(im.keypoints[:5], X[:5], im.camera, resolve()["pnp"])
    assert not few.success and few.pose is None


def test_pnp_with_distortion(world_map):
    from s2dloc.geometry import Camera

    im = world_map.images[5]
    cam = Camera.from_colmap("OPENCV", 160, 120, [130, 131, 80, 60, -0.05, 0.01, 1e-3, -1e-3])
    X = torch.from_numpy(world_map.xyz(im.point3D_ids))
    p, valid = cam.project(im.cam_from_world.transform(X))
    res = estimate_pose(p[valid].numpy(), X[valid].numpy(), cam, resolve()["pnp"])
    assert res.success and float(res.pose.angle_to(im.cam_from_world)) < 0.01
    assert isinstance(res.pose, Pose)
    _ = Query  # the query type is exercised in the pipeline tests


def test_pnp_refinement_is_pycolmaps_estimate_and_refine(world_map):
    import pycolmap

    im = world_map.images[5]
    X = world_map.xyz(im.point3D_ids)
    rng = np.random.default_rng(0)
    p2d = im.keypoints + rng.normal(0, 0.7, im.keypoints.shape)
    bad = rng.random(len(p2d)) < 0.3
    p2d[bad] = rng.uniform([0, 0], [160, 120], (int(bad.sum()), 2))
    conf = resolve()["pnp"]
    refined = estimate_pose(p2d, X, im.camera, conf)
    ransac = estimate_pose(p2d, X, im.camera, conf, refine=False)
    opts = pycolmap.AbsolutePoseEstimationOptions()
    opts.ransac.max_error, opts.ransac.random_seed = conf["max_error"], conf["seed"]
    opts.ransac.max_num_trials = conf["max_trials"]
    ref = pycolmap.estimate_and_refine_absolute_pose(p2d, X, im.camera.to_colmap(), opts)
    expected = Pose.from_colmap(ref["cam_from_world"])
    assert np.array_equal(refined.inliers, np.asarray(ref["inlier_mask"], bool))
    assert np.array_equal(ransac.inliers, refined.inliers)
    assert float(refined.pose.angle_to(expected)) < 1e-6
    assert float(refined.pose.center_distance_to(expected)) < 1e-6
    assert float(ransac.pose.center_distance_to(expected)) > 1e-6  # refinement moved it
