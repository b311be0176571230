"""Tables of the localization verdict: how many queries are accepted (``success``), how often an
accepted pose is right (precision) and what the verdict costs in recall."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import binomtest

from s2dloc.datasets.colmap_io import read_poses, write_poses
from s2dloc.geometry import Pose
from s2dloc.localization import verify as V
from s2dloc.localization.evidence import Evidence, FPnPRecord
from s2dloc.localization.io import record_line
from s2dloc.utils.io import strict_json, write_text_atomic

PRECISION_AT = (1.0, 5.0)  # translation units, degrees
RECALL_AT = (0.25, 2.0)
HEADERS = [
    "run",
    "queries",
    "with pose",
    "accepted",
    "prec@1m,5deg %",
    "prec 95% CI",
    "recall@.25m,2deg all %",
    "recall accepted %",
]


@dataclass
class Outcome:
    """One query: its final pose (None without one), the verdict and why it failed."""

    name: str
    pose: Pose | None
    success: bool
    reason: str = ""


def within(gt: Pose, pose: Pose, at: tuple[float, float], unit: float = 1.0) -> bool:
    """Camera-centre error / ``unit`` <= ``at[0]`` and rotation error (deg) <= ``at[1]``."""
    return float(gt.center_distance_to(pose)) / unit <= at[0] and float(gt.angle_to(pose)) <= at[1]


def precision_interval(good: int, accepted: int, confidence: float = 0.95) -> str:
    """Wilson score interval of a precision of ``good`` right out of ``accepted`` poses, in
    percent as ``"lo-hi"`` (``"nan"`` when none is accepted): 26 of 26 right is 87.1-100.0,
    so a small evaluation cannot show a precision of 99%."""
    if accepted == 0:
        return "nan"
    ci = binomtest(good, accepted).proportion_ci(confidence_level=confidence, method="wilson")
    return f"{100 * ci.low:.1f}-{100 * ci.high:.1f}"


def verdict_row(label: str, outcomes: list[Outcome], gt: dict[str, Pose], unit: float = 1.0):
    """``[label, queries, with pose, accepted, precision %, its 95% interval, recall all %,
    recall accepted %]`` over the queries with ground truth (precision ``nan`` when none is
    accepted)."""
    judged = [o for o in outcomes if o.name in gt]
    posed = [o for o in judged if o.pose is not None]
    acc = [o for o in posed if o.success]
    n = max(len(judged), 1)
    good = sum(within(gt[o.name], o.pose, PRECISION_AT, unit) for o in acc)
    prec = 100 * good / len(acc) if acc else math.nan
    rec_all = 100 * sum(within(gt[o.name], o.pose, RECALL_AT, unit) for o in posed) / n
    rec_acc = 100 * sum(within(gt[o.name], o.pose, RECALL_AT, unit) for o in acc) / n
    return [
        label,
        len(judged),
        len(posed),
        len(acc),
        f"{prec:.1f}",
        precision_interval(good, len(acc)),
        f"{rec_all:.1f}",
        f"{rec_acc:.1f}",
    ]


def verdict_rows(
    outcomes: list[Outcome], gt: dict[str, Pose], group: Callable[[str], str], unit: float = 1.0
) -> list[list]:
    """One :func:`verdict_row` per group of query names (``group(name)``), then ``all``."""
    groups = sorted({group(o.name) for o in outcomes})
    rows = [verdict_row(g, [o for o in outcomes if group(o.name) == g], gt, unit) for g in groups]
    return rows + ([verdict_row("all", outcomes, gt, unit)] if len(groups) > 1 else [])


def reason_rows(outcomes: list[Outcome]) -> list[list]:
    """``[reason, count]`` of the failed queries, most frequent first (numbers shown as N)."""
    counts: dict[str, int] = {}
    for o in outcomes:
        if not o.success:
            label = re.sub(r"\d+(\.\d+)?", "N", o.reason.split(" (")[0]) or "no reason"
            counts[label] = counts.get(label, 0) + 1
    return sorted(([k, v] for k, v in counts.items()), key=lambda r: -r[1])


def write_run(
    folder: Path, results: list, gt: dict[str, Pose], unit: float = 1.0, conf: dict | None = None
) -> Path:
    """Write ``log.jsonl``, ``gt.txt``, ``unit.txt`` (and ``config.json``: the resolved
    localization settings ``conf``) for ``results`` (QueryResult)."""
    folder.mkdir(parents=True, exist_ok=True)
    if conf is not None:
        write_text_atomic(folder / "config.json", json.dumps(strict_json(conf), indent=2) + "\n")
    write_text_atomic(folder / "log.jsonl", "".join(record_line(r.to_json()) for r in results))
    write_poses(folder / "gt.txt", gt)
    write_text_atomic(folder / "unit.txt", f"{unit:.10g}\n")
    return folder


def _pose(v) -> Pose | None:
    return None if v is None else Pose.from_quat_t(v[:4], v[4:])


def judge(rec: dict, th: V.VerifyThresholds) -> Outcome:
    """Verdict and final pose of a log record under thresholds ``th``."""
    name, pose = rec["name"], _pose(rec.get("pose"))
    if rec.get("error") or pose is None:
        return Outcome(name, pose, False, rec.get("reason") or rec.get("error") or "no pose")
    ev = Evidence.from_json(rec.get("verify"), f"{name}: verify")
    if ev.pnp is None:
        return Outcome(name, pose, False, rec.get("reason") or "no PnP pose")
    record = FPnPRecord.from_json(rec.get("fpnp"), f"{name}: fpnp")
    reason, use_fpnp = V.judge_record(ev, record, th)
    if ev.fpnp is not None:
        fpnp_pose = _pose(record.pose if record else None)
        use_fpnp = use_fpnp and fpnp_pose is not None
        pose = fpnp_pose if use_fpnp else _pose(rec["pnp_pose"])
    return Outcome(name, pose, not reason, reason)


def read_run(folder: Path) -> tuple[list[dict], dict[str, Pose], float]:
    """The log records, ground-truth poses and translation unit of a run folder."""
    for name in ("log.jsonl", "gt.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder}: no {name} (a run folder holds log.jsonl and gt.txt)"
            )
    records = []
    with open(folder / "log.jsonl") as f:
        for i, line in enumerate(f, start=1):
            try:
                records.append(json.loads(line)) if line.strip() else None
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{folder / 'log.jsonl'}:{i}: expected one JSON record per line ({err})"
                ) from None
    gt = {n: Pose.from_quat_t(*v) for n, v in read_poses(folder / "gt.txt").items()}
    unit_file = folder / "unit.txt"
    unit = float(unit_file.read_text()) if unit_file.exists() else 1.0
    return records, gt, unit


def evaluate_run(folder: Path, th: V.VerifyThresholds) -> list:
    """The table row of one run folder."""
    return pooled_row(f"{folder.parent.name}/{folder.name}", [folder], th)


def pooled_row(label: str, folders: list[Path], th: V.VerifyThresholds) -> list:
    """One table row over the queries of all run ``folders`` (e.g. one extractor on several
    worlds), which must share their translation unit."""
    outcomes, gt, units = [], {}, set()
    for i, folder in enumerate(folders):
        records, run_gt, unit = read_run(folder)
        units.add(unit)
        for r in records:
            o = judge(r, th)
            outcomes.append(Outcome(f"{i}/{o.name}", o.pose, o.success, o.reason))
        gt.update({f"{i}/{n}": pose for n, pose in run_gt.items()})
    if len(units) > 1:
        raise ValueError(f"cannot pool runs with different units.txt values {sorted(units)}")
    return verdict_row(label, outcomes, gt, units.pop() if units else 1.0)


def mistake_rows(folder: Path, th: V.VerifyThresholds) -> list[list]:
    """``[name, verdict, error (units), error (deg), reason]`` of the queries the verdict gets
    wrong: accepted but outside :data:`PRECISION_AT`, or rejected but within :data:`RECALL_AT`."""
    records, gt, unit = read_run(folder)
    rows = []
    for o in (judge(r, th) for r in records):
        if o.pose is None or o.name not in gt:
            continue
        wrong = o.success and not within(gt[o.name], o.pose, PRECISION_AT, unit)
        missed = not o.success and within(gt[o.name], o.pose, RECALL_AT, unit)
        if wrong or missed:
            err = float(gt[o.name].center_distance_to(o.pose)) / unit
            verdict = "accepted, wrong" if wrong else "rejected, right"
            rows.append([o.name, verdict, f"{err:.2f}", f"{gt[o.name].angle_to(o.pose):.1f}"])
            rows[-1].append(o.reason)
    return rows
