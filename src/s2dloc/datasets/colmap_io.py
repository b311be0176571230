"""Text formats shared with hloc / visuallocalization.net.

- Query list with intrinsics: ``name MODEL W H p1 p2 ...`` (COLMAP model names and parameter order).
- Poses: ``name qw qx qy qz tx ty tz``, cam_from_world (world-to-camera), quaternion w first.
- Pairs: ``name0 name1``.
Lines that are empty or start with ``#`` are ignored. Writers are atomic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2dloc.utils.io import read_text, write_text_atomic

MODEL_NUM_PARAMS = {
    "SIMPLE_PINHOLE": 3,
    "PINHOLE": 4,
    "SIMPLE_RADIAL": 4,
    "RADIAL": 5,
    "OPENCV": 8,
    "FULL_OPENCV": 12,
    "SIMPLE_RADIAL_FISHEYE": 4,
    "RADIAL_FISHEYE": 5,
    "OPENCV_FISHEYE": 8,
    "FOV": 5,
    "THIN_PRISM_FISHEYE": 12,
}


def _lines(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield lineno, line.split()


def parse_numbers(where: str, fields: list[str], what: str) -> np.ndarray:
    """Finite float64 values of ``fields`` or a ``ValueError`` naming ``where`` (``file:line``)."""
    try:
        values = np.array([float(x) for x in fields], np.float64)
    except ValueError:
        raise ValueError(f"{where}: {what} must be numbers, got {fields}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{where}: {what} must be finite, got {fields}")
    return values


def parse_camera_fields(f: list[str], where: str) -> tuple[str, str, int, int, np.ndarray]:
    """``name MODEL W H params...`` (COLMAP names and parameter order) -> its parts."""
    if len(f) < 4:
        raise ValueError(f"{where}: expected 'name MODEL W H params...', got {f}")
    name, model = f[0], f[1]
    if model not in MODEL_NUM_PARAMS:
        raise ValueError(f"{where}: unknown camera model {model!r}")
    if len(f) - 4 != MODEL_NUM_PARAMS[model]:
        raise ValueError(
            f"{where}: model {model} takes {MODEL_NUM_PARAMS[model]} params, got {len(f) - 4}"
        )
    size = [int(x) if x.isdecimal() and len(x) < 8 else 0 for x in f[2:4]]
    if not all(0 < v < 10**6 for v in size):
        raise ValueError(f"{where}: width/height must be integers in 1-999999, got {f[2:4]}")
    return name, model, size[0], size[1], parse_numbers(where, f[4:], "camera params")


def _check_name(path: Path, lineno: int, name: str, seen: dict):
    if name in seen:
        raise ValueError(f"{path}:{lineno}: duplicate image name {name!r}")


def read_query_list(path: str | Path) -> dict[str, tuple[str, int, int, np.ndarray]]:
    """``{name: (model, width, height, params (P,) float64)}`` from an hloc query list."""
    path, out = Path(path), {}
    for lineno, f in _lines(path):
        name, model, w, h, params = parse_camera_fields(f, f"{path}:{lineno}")
        _check_name(path, lineno, name, out)
        out[name] = (model, w, h, params)
    return out


def write_query_list(path: str | Path, cameras: dict) -> Path:
    """Write ``{name: (model, width, height, params)}`` (params may be a tensor or array)."""
    lines = []
    for name, (model, w, h, params) in cameras.items():
        if hasattr(params, "detach"):
            params = params.detach().cpu().numpy()
        params = np.asarray(params, np.float64).reshape(-1)
        if model not in MODEL_NUM_PARAMS or len(params) != MODEL_NUM_PARAMS[model]:
            raise ValueError(f"bad camera for {name!r}: {model} with {len(params)} params")
        lines.append(
            " ".join([name, model, str(int(w)), str(int(h))] + [repr(float(p)) for p in params])
        )
    return write_text_atomic(path, "\n".join(lines) + "\n")


def read_poses(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (q_wxyz (4,), t (3,))}`` cam_from_world from ``name qw qx qy qz tx ty tz``.

    Quaternions are normalised; a quaternion far from unit norm is rejected.
    """
    path, out = Path(path), {}
    for lineno, f in _lines(path):
        if len(f) != 8:
            raise ValueError(f"{path}:{lineno}: expected 'name qw qx qy qz tx ty tz', got {f}")
        _check_name(path, lineno, f[0], out)
        v = np.array(parse_numbers(f"{path}:{lineno}", f[1:], "pose values"))
        norm = np.linalg.norm(v[:4])
        if abs(norm - 1) > 1e-3:
            raise ValueError(f"{path}:{lineno}: quaternion norm {norm:.4f} is not 1")
        out[f[0]] = (v[:4] / norm, v[4:])
    return out


def write_poses(path: str | Path, poses: dict) -> Path:
    """Write ``{name: (q_wxyz, t)}`` or ``{name: Pose}`` as ``name qw qx qy qz tx ty tz``."""
    lines = []
    for name, pose in poses.items():
        if hasattr(pose, "quat"):
            q, t = pose.quat().detach().cpu().numpy(), pose.t.detach().cpu().numpy()
        else:
            q, t = (np.asarray(x, np.float64) for x in pose)
        vals = np.concatenate([np.reshape(q, 4), np.reshape(t, 3)])
        lines.append(" ".join([name] + [repr(float(x)) for x in vals]))
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Image pairs ``name0 name1`` per line."""
    path, out = Path(path), []
    for lineno, f in _lines(path):
        if len(f) != 2:
            raise ValueError(f"{path}:{lineno}: expected 'name0 name1', got {f}")
        out.append((f[0], f[1]))
    return out


def write_pairs(path: str | Path, pairs: list[tuple[str, str]]) -> Path:
    return write_text_atomic(path, "".join(f"{a} {b}\n" for a, b in pairs))
