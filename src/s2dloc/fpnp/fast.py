"""Compiled (numba) CPU path of the F-PnP solver, for inference without gradients.

It runs the same Levenberg-Marquardt algorithm as :mod:`s2dloc.fpnp.solver` (same residuals,
central-difference feature gradients, robust IRLS weights, damping, acceptance and stopping
rules) in one pass over the points per iteration, with no tensor temporaries. The torch path
remains the reference: it is differentiable and runs on any device; tests check both agree.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

LOSS_IDS = {"squared": 0, "cauchy": 1, "huber": 2, "barron": 3}
# Indices into the float64 ``conf`` vector passed to the kernels.
(C_MARGIN, C_MIN_DEPTH, C_LAMBDA_INIT, C_LAMBDA_UP, C_LAMBDA_DOWN, C_LAMBDA_MIN, C_LAMBDA_MAX,
 C_ROT_TOL, C_TRANS_TOL, C_GRAD_TOL, C_COST_TOL, C_MAX_REJ, C_MAX_ITERS, C_MIN_POINTS,
 C_LOSS, C_ALPHA, C_SCALE) = range(17)  # fmt: skip


@njit(cache=True, inline="always")
def _loss(s, c2, loss_id, alpha):
    """``rho(s)`` and ``rho'(s)`` as in :class:`~s2dloc.fpnp.losses.RobustLoss`."""
    if loss_id == 0:
        return s, 1.0
    u = s / c2
    if loss_id == 1:
        return c2 * math.log1p(u), 1.0 / (1.0 + u)
    if loss_id == 2:
        if s <= c2:
            return s, 1.0
        root = math.sqrt(max(s, 1e-30))
        c = math.sqrt(c2)
        return 2.0 * c * root - c2, c / root
    if alpha == 2.0:
        return s, 1.0
    if alpha == 0.0:
        return 2.0 * c2 * math.log1p(u / 2.0), 1.0 / (1.0 + u / 2.0)
    if math.isinf(alpha) and alpha < 0:
        w = math.exp(-u / 2.0)
        return 2.0 * c2 * (1.0 - w), w
    b = abs(alpha - 2.0)
    base = u / b + 1.0
    return 2.0 * c2 * (b / alpha) * (base ** (alpha / 2.0) - 1.0), base ** (alpha / 2.0 - 1.0)


@njit(cache=True, inline="always")
def _clamp(i, size):
    return min(max(i, 0), size - 1)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def evaluate(points, M, fmap, ref, weights, cam, has_dist, conf, scale, H, g, sq_out):
    """Cost and IRLS normal equations at pose ``M (4, 4)`` for one query and level.

    ``points (N, 3)``, ``fmap (H, W, C)``, ``ref (N, C)``, ``weights (N,)``,
    ``cam = (fx, fy, cx, cy, k1, k2, p1, p2, width, height)``. Fills ``H (6, 6)``, ``g (6,)``
    and per-point squared residual norms ``sq_out (N,)`` (-1 where invalid). Returns
    ``(cost, wsum, num_valid, mean depth, weighted residual sum, channels x num_valid)``.
    """
    N, C = ref.shape
    Hm, Wm = fmap.shape[0], fmap.shape[1]
    fx, fy, cx, cy, k1, k2, p1, p2, width, height = cam
    margin, min_depth = conf[C_MARGIN], conf[C_MIN_DEPTH]
    loss_id, alpha, c2 = int(conf[C_LOSS]), conf[C_ALPHA], scale * scale
    H[:] = 0.0
    g[:] = 0.0
    cost = wsum = depth = res_var = 0.0
    nvalid = 0
    J = np.empty((2, 6))
    for i in range(N):
        sq_out[i] = -1.0
        w = weights[i]
        if not w > 0:
            continue
        X = M[0, 0] * points[i, 0] + M[0, 1] * points[i, 1] + M[0, 2] * points[i, 2] + M[0, 3]
        Y = M[1, 0] * points[i, 0] + M[1, 1] * points[i, 1] + M[1, 2] * points[i, 2] + M[1, 3]
        Z = M[2, 0] * points[i, 0] + M[2, 1] * points[i, 1] + M[2, 2] * points[i, 2] + M[2, 3]
        if not Z > min_depth:
            continue
        iz = 1.0 / Z
        x, y = X * iz, Y * iz
        # d(x, y)/ddelta for the left perturbation (see jacobians.py).
        J[0, 0], J[0, 1], J[0, 2] = iz, 0.0, -x * iz
        J[0, 3], J[0, 4], J[0, 5] = -x * y, 1.0 + x * x, -y
        J[1, 0], J[1, 1], J[1, 2] = 0.0, iz, -y * iz
        J[1, 3], J[1, 4], J[1, 5] = -1.0 - y * y, x * y, x
        if has_dist:
            r2 = x * x + y * y
            if not 1.0 + r2 * (3.0 * k1 + 5.0 * k2 * r2) > 0:
                continue
            radial = 1.0 + r2 * (k1 + k2 * r2)
            dr = 2.0 * (k1 + 2.0 * k2 * r2)
            a00 = radial + x * x * dr + 2.0 * p1 * y + 6.0 * p2 * x
            a01 = x * y * dr + 2.0 * p1 * x + 2.0 * p2 * y
            a11 = radial + y * y * dr + 6.0 * p1 * y + 2.0 * p2 * x
            xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
            yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
            for k in range(6):
                j0, j1 = J[0, k], J[1, k]
                J[0, k] = a00 * j0 + a01 * j1
                J[1, k] = a01 * j0 + a11 * j1
            x, y = xd, yd
        u, v = fx * x + cx, fy * y + cy
        if not (u >= margin and u <= width - margin and v >= margin and v <= height - margin):
            continue
        for k in range(6):
            J[0, k] *= fx
            J[1, k] *= fy
        # The five bilinear samples at p, p +- e_u, p +- e_v share their fractional weights,
        # so they read 12 pixels; clamping indices reproduces grid_sample's border padding.
        fu, fv = u - 0.5, v - 0.5
        x0, y0 = int(math.floor(fu)), int(math.floor(fv))
        wx, wy = fu - x0, fv - y0
        xm, xa, xb, xp = _clamp(x0 - 1, Wm), _clamp(x0, Wm), _clamp(x0 + 1, Wm), _clamp(x0 + 2, Wm)
        ym, ya, yb, yp = _clamp(y0 - 1, Hm), _clamp(y0, Hm), _clamp(y0 + 1, Hm), _clamp(y0 + 2, Hm)
        a, b = (1 - wx) * (1 - wy), wx * (1 - wy)
        c_, d = (1 - wx) * wy, wx * wy
        sq = guu = guv = gvv = gur = gvr = 0.0
        for c in range(C):
            p_am, p_aa, p_ab, p_ap = (
                fmap[ya, xm, c],
                fmap[ya, xa, c],
                fmap[ya, xb, c],
                fmap[ya, xp, c],
            )
            p_bm, p_ba, p_bb, p_bp = (
                fmap[yb, xm, c],
                fmap[yb, xa, c],
                fmap[yb, xb, c],
                fmap[yb, xp, c],
            )
            p_ma, p_mb, p_pa, p_pb = (
                fmap[ym, xa, c],
                fmap[ym, xb, c],
                fmap[yp, xa, c],
                fmap[yp, xb, c],
            )
            val = a * p_aa + b * p_ab + c_ * p_ba + d * p_bb
            gu = 0.5 * (
                a * (p_ab - p_am) + b * (p_ap - p_aa) + c_ * (p_bb - p_bm) + d * (p_bp - p_ba)
            )
            gv = 0.5 * (
                a * (p_ba - p_ma) + b * (p_bb - p_mb) + c_ * (p_pa - p_aa) + d * (p_pb - p_ab)
            )
            r = val - ref[i, c]
            sq += r * r
            guu += gu * gu
            guv += gu * gv
            gvv += gv * gv
            gur += gu * r
            gvr += gv * r
        if not (math.isfinite(sq) and math.isfinite(guu + guv + gvv + gur + gvr)):
            continue
        sq_out[i] = sq
        rho, irls = _loss(sq, c2, loss_id, alpha)
        cost += w * rho
        wsum += w
        depth += w * Z
        nvalid += 1
        ww = w * irls
        res_var += ww * sq
        for a in range(6):
            A0 = guu * J[0, a] + guv * J[1, a]
            A1 = guv * J[0, a] + gvv * J[1, a]
            g[a] += ww * (J[0, a] * gur + J[1, a] * gvr)
            for b in range(a, 6):
                H[a, b] += ww * (A0 * J[0, b] + A1 * J[1, b])
    for a in range(6):
        for b in range(a):
            H[a, b] = H[b, a]
    denom = max(wsum, 1e-12)
    return cost / denom, wsum, nvalid, depth / denom, res_var, C * nvalid


@njit(cache=True)
def _damped_step(H, g, lam, out):
    """Solve ``(H + lam D) d = -g`` by Cholesky, raising damping on failure; zero if impossible."""
    dmax = 0.0
    for a in range(6):
        dmax = max(dmax, abs(H[a, a]))
    floor = 1e-9 * dmax + 1e-30
    damping = lam
    L = np.empty((6, 6))
    for _ in range(5):
        ok = True
        for a in range(6):
            for b in range(a + 1):
                s = H[a, b] + (damping * (max(H[a, a], 0.0) + floor) if a == b else 0.0)
                for k in range(b):
                    s -= L[a, k] * L[b, k]
                if a == b:
                    if not s > 0:
                        ok = False
                        break
                    L[a, a] = math.sqrt(s)
                else:
                    L[a, b] = s / L[b, b]
            if not ok:
                break
        if ok:
            y = np.empty(6)
            for a in range(6):
                s = -g[a]
                for k in range(a):
                    s -= L[a, k] * y[k]
                y[a] = s / L[a, a]
            for a in range(5, -1, -1):
                s = y[a]
                for k in range(a + 1, 6):
                    s -= L[k, a] * out[k]
                out[a] = s / L[a, a]
            for a in range(6):
                if not math.isfinite(out[a]):
                    out[:] = 0.0
            return
        damping *= 10.0
    out[:] = 0.0


@njit(cache=True)
def _exp_left(delta, M):
    """``exp(delta) @ M`` for ``delta = (rho, phi)`` (Rodrigues, with the SO(3) left Jacobian)."""
    wx, wy, wz = delta[3], delta[4], delta[5]
    th2 = wx * wx + wy * wy + wz * wz
    if th2 < 1e-8:
        A, B, Cc = 1 - th2 / 6, 0.5 - th2 / 24, 1.0 / 6 - th2 / 120
    else:
        th = math.sqrt(th2)
        A, B, Cc = math.sin(th) / th, (1 - math.cos(th)) / th2, (th - math.sin(th)) / (th2 * th)
    K = np.array([[0.0, -wz, wy], [wz, 0.0, -wx], [-wy, wx, 0.0]])
    K2 = K @ K
    E = np.eye(4)
    E[:3, :3] += A * K + B * K2
    V = np.eye(3) + B * K + Cc * K2
    E[:3, 3] = V @ delta[:3]
    return E @ M


@njit(cache=True)
def _lower_median(values):
    """Median as torch defines it: the lower of the two middle values."""
    s = np.sort(values)
    return s[(s.size - 1) // 2]


@njit(cache=True, nogil=True)
def solve_level(points, M, fmap, ref, weights, cam, has_dist, conf, H, g):
    """LM at one level for one query; updates ``M (4, 4)``, ``H``, ``g`` in place.

    Returns ``(iterations, ok, scale, cost, wsum, num_valid, res_var, num_res)``.
    """
    N = points.shape[0]
    sq = np.empty(N)
    scale = conf[C_SCALE]
    if scale <= 0:  # automatic: 1.4826 x median residual norm at the level's start
        evaluate(points, M, fmap, ref, weights, cam, has_dist, conf, 1.0, H, g, sq)
        valid = sq[sq >= 0]
        med = math.sqrt(_lower_median(valid)) if valid.size > 0 else 1.0
        scale = max(1.4826 * med, 1e-6)
    cost, wsum, nvalid, depth, res_var, nres = evaluate(
        points, M, fmap, ref, weights, cam, has_dist, conf, scale, H, g, sq
    )
    min_points = conf[C_MIN_POINTS]
    active = nvalid >= min_points
    ok = active
    lam = conf[C_LAMBDA_INIT]
    depth0 = max(depth, 1e-9)
    iters = 0
    rejections = 0
    delta = np.zeros(6)
    Hn, gn = np.empty((6, 6)), np.empty(6)
    for _ in range(int(conf[C_MAX_ITERS])):
        if not active:
            break
        _damped_step(H, g, lam, delta)
        Mn = _exp_left(delta, M)
        cn, wn, nn, dn, rn, nrn = evaluate(
            points, Mn, fmap, ref, weights, cam, has_dist, conf, scale, Hn, gn, sq
        )
        accept = cn < cost and nn >= min_points
        predicted = -((2.0 * g + H @ delta) * delta).sum() / wsum
        gain = cost - cn if accept else predicted
        stalled = gain <= conf[C_COST_TOL] * cost
        if accept:
            M[:] = Mn
            H[:], g[:] = Hn, gn
            cost, wsum, nvalid, res_var, nres = cn, wn, nn, rn, nrn
            lam *= conf[C_LAMBDA_DOWN]
            rejections = 0
        else:
            lam *= conf[C_LAMBDA_UP]
            rejections += 1
        lam = min(max(lam, conf[C_LAMBDA_MIN]), conf[C_LAMBDA_MAX])
        iters += 1
        rot = math.sqrt(delta[3] ** 2 + delta[4] ** 2 + delta[5] ** 2)
        tra = math.sqrt(delta[0] ** 2 + delta[1] ** 2 + delta[2] ** 2)
        small_step = rot < conf[C_ROT_TOL] and tra < conf[C_TRANS_TOL] * depth0
        small_grad = np.abs(g).max() <= conf[C_GRAD_TOL] * max(cost, 1e-30)
        stuck = rejections >= conf[C_MAX_REJ]
        if small_step or small_grad or stalled or stuck or not lam < conf[C_LAMBDA_MAX]:
            active = False
    return iters, ok, scale, cost, wsum, nvalid, res_var, nres


def conf_vector(conf, scale: float | None) -> np.ndarray:
    """Pack an :class:`~s2dloc.fpnp.solver.FPnPConfig` into the kernels' float64 vector."""
    v = np.zeros(17)
    v[C_MARGIN], v[C_MIN_DEPTH] = conf.margin, conf.min_depth
    v[C_LAMBDA_INIT], v[C_LAMBDA_UP], v[C_LAMBDA_DOWN] = (
        conf.lambda_init, conf.lambda_up, conf.lambda_down)  # fmt: skip
    v[C_LAMBDA_MIN], v[C_LAMBDA_MAX] = conf.lambda_min, conf.lambda_max
    v[C_ROT_TOL], v[C_TRANS_TOL], v[C_GRAD_TOL] = (
        conf.rotation_tol, conf.translation_tol, conf.gradient_tol)  # fmt: skip
    v[C_COST_TOL], v[C_MAX_REJ] = conf.cost_tol, conf.max_rejections
    v[C_MAX_ITERS], v[C_MIN_POINTS] = conf.max_iterations, conf.min_points
    v[C_LOSS], v[C_ALPHA] = LOSS_IDS[conf.loss], conf.barron_alpha
    v[C_SCALE] = -1.0 if scale is None else scale  # <= 0 selects the automatic scale
    return v


def _solve_query(b: int, levels: list, pts, w, M, conf_v: np.ndarray, has_dist: bool) -> dict:
    """Coarse-to-fine LM for query ``b``; ``levels`` hold numpy ``(fmap, ref, cam)`` batches."""
    H, g = np.zeros((6, 6)), np.zeros(6)
    M0 = M[b].copy()
    iters, ok = [], True
    for fmap, ref, cam in levels:
        it, ok_l, scale, cost, _, nvalid, res_var, nres = solve_level(
            pts[b], M[b], fmap[b], ref[b], w[b], cam[b], has_dist, conf_v, H, g
        )
        iters.append(it)
        ok = ok and ok_l
    fmap, ref, cam = levels[-1]
    sq = np.empty(pts.shape[1])
    cost0 = evaluate(pts[b], M0, fmap[b], ref[b], w[b], cam[b], has_dist, conf_v, scale,
                     np.empty((6, 6)), np.empty(6), sq)[0]  # fmt: skip
    return {"iterations": iters, "ok": ok, "cost_init": cost0, "cost": cost, "H": H,
            "num_valid": nvalid, "res_var": res_var, "num_res": nres}  # fmt: skip


def solve(levels, points, weights, M0, conf, scale: float | None) -> dict:
    """Refine a batch on prepared torch levels (coarse to fine, CPU); numpy outputs.

    Queries run in parallel threads (the kernels release the GIL).
    """
    arrays = []
    for lv in levels:
        fmap = lv.maps.detach().permute(0, 2, 3, 1).numpy()  # channels-last storage: a view
        ref = lv.ref.detach().numpy().astype(fmap.dtype, copy=False)
        cam = lv.camera
        c = torch_cat_numpy([cam.f, cam.c, cam.dist, cam.size])
        arrays.append((np.ascontiguousarray(fmap), np.ascontiguousarray(ref), c))
    pts = np.ascontiguousarray(points.detach().double().numpy())
    w = np.ascontiguousarray(weights.detach().double().numpy())
    M = np.array(M0.detach().double().numpy())
    args = (arrays, pts, w, M, conf_vector(conf, scale), bool(levels[0].camera.has_distortion))
    B = pts.shape[0]
    workers = min(B, max(1, torch.get_num_threads()))
    if workers == 1:
        results = [_solve_query(b, *args) for b in range(B)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda b: _solve_query(b, *args), range(B)))
    out = {k: np.array([r[k] for r in results]) for k in results[0]}
    out["M"] = M
    return out


def torch_cat_numpy(tensors: list) -> np.ndarray:
    """Concatenate ``(B, k_i)`` tensors along the last axis into a float64 array."""
    return np.ascontiguousarray(np.concatenate([t.detach().double().numpy() for t in tensors], -1))
