"""Validation during training on held-out synthetic conditions: F-PnP success rate and the
relative-pose accuracy of nearest-neighbour feature matches."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from s2dloc.evaluation.convergence import BasinProblem, convergence_sweep, fpnp_solver
from s2dloc.evaluation.problems import synthetic_problems
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.training.data import synthetic_world

logger = logging.getLogger(__name__)


def relative_pose_error(problem: BasinProblem) -> float:
    """Rotation error (deg) of the essential matrix from matching each reference point's finest
    feature to its nearest neighbour in the query's finest map (intrinsics of both cameras);
    180 when no essential matrix is found."""
    ref, fmap = problem.ref_features[0], problem.query_features[0]
    C, H, W = fmap.shape
    scores = ref @ fmap.reshape(C, -1)  # (N, H W): correlation
    dist = (fmap.reshape(C, -1) ** 2).sum(0)[None] - 2 * scores  # ||f_q||^2 - 2 <f_r, f_q>
    best = dist.argmin(-1)
    s = problem.camera.width / W
    q_pix = torch.stack([(best % W).double() + 0.5, (best // W).double() + 0.5], -1) * s
    x_r = problem.ref_camera.unproject(problem.ref_pixels[None])[0].numpy()
    x_q = problem.camera.unproject(q_pix[None])[0].numpy()
    f = float(problem.camera.f.mean())
    try:  # degenerate matches (e.g. of untrained features) raise in some OpenCV versions
        E, inl = cv2.findEssentialMat(x_r, x_q, np.eye(3), cv2.RANSAC, 0.999, 1.0 / f)
        if E is None or E.shape != (3, 3):
            return 180.0
        _, R, _, _ = cv2.recoverPose(E, x_r, x_q, np.eye(3), mask=inl)
    except cv2.error:
        return 180.0
    R_gt = (problem.true_pose.R @ problem.ref_pose.R.T).numpy()
    cos = (np.trace(R.T @ R_gt) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


class Validator:
    """F-PnP success (0.5 deg, 1% depth) at a few start errors, and match-based relative pose,
    on queries of an evaluation world (street, seed 0) under ``data.val_conditions``."""

    def __init__(self, conf: dict, angles=(5.0, 15.0), max_problems: int = 6, trials: int = 4):
        self.conditions = tuple(conf["data"]["val_conditions"])
        self.size = tuple(conf["data"]["image_size"])
        self.angles, self.max_problems, self.trials = angles, max_problems, trials
        self._world = None

    @property
    def world(self):
        if self._world is None:
            self._world = synthetic_world("street", 0, self.conditions, self.size, num=24)
        return self._world

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        problems = synthetic_problems(self.world, model, self.conditions, 256, self.max_problems)
        model.train(was_training)
        rows = convergence_sweep(
            problems,
            fpnp_solver(FeatureMetricPnP()),
            self.angles,
            trials=self.trials,
            progress=False,
        )
        out = {f"fpnp_success@{a:g}": r.success_rate for a, r in zip(self.angles, rows)}
        out["relpose_err_deg"] = float(np.median([relative_pose_error(p) for p in problems]))
        return out
