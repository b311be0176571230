"""``s2dloc localize``: localize queries against a map (retrieval, S2D matching, PnP, F-PnP)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

NAME = "localize"
HELP = "localize query images against a map; writes results.txt, log.jsonl, config.json"

logger = logging.getLogger(__name__)


def add_common(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``localize`` and ``refine``."""
    parser.add_argument("--map", required=True, help="map folder (sfm/ + images/) or COLMAP model")
    parser.add_argument("--images", help="reference image folder (default: MAP/images)")
    parser.add_argument("--queries", required=True,
                        help="hloc query list (name MODEL W H params) or a folder of images")  # fmt: skip
    parser.add_argument("--query-images", help="root of the query names (default: map images)")
    parser.add_argument("--camera",
                        help="'MODEL W H params...' shared by a folder of query images (default: "
                        "each image's camera from the map, its EXIF focal or a default focal)")  # fmt: skip
    parser.add_argument("--default-focal-factor", type=float, default=1.2,
                        help="folder queries without --camera, map camera or EXIF focal: "
                        "focal = FACTOR * max(W, H)")  # fmt: skip
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--extractor", help="dense features (photometric, disk, gnnet, ...)")
    parser.add_argument("--preset", default="default", help="named settings preset")
    parser.add_argument("--conf", nargs="*", default=[], metavar="KEY=VAL",
                        help="setting overrides, e.g. s2d.ratio=0.8 fpnp.enabled=false")  # fmt: skip
    parser.add_argument("--cache", help="reference feature cache (default: OUT/cache-NAME.h5)")
    parser.add_argument("--overwrite", action="store_true", help="recompute cache and results")
    parser.add_argument("--num-queries", type=int, help="only the first N queries")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--pairs", help="hloc retrieval pairs file 'query ref' (skip retrieval)")


def setup(args, mode: str):
    """Resolve settings, check stale outputs, load map and queries; returns what runs need."""
    conf, out, map_, queries, todo, log_path, cache = prepare(args, mode)
    return conf, out, map_, todo, log_path, cache


def prepare(args, mode: str):
    """:func:`setup` that also returns every query (``todo`` are those not logged yet)."""
    from s2dloc.localization.config import parse_overrides, resolve
    from s2dloc.localization.io import read_queries
    from s2dloc.localization.validate import load_map, pending_queries

    user = parse_overrides(args.conf)
    if args.extractor:
        user["extractor"] = args.extractor
    conf = resolve(user, args.preset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"mode": mode, "map": str(args.map), "queries": str(args.queries), "conf": conf}
    conf_path, log_path = out / "config.json", out / "log.jsonl"
    if args.overwrite and log_path.exists():
        log_path.unlink()
    if conf_path.exists() and log_path.exists():
        old = json.loads(conf_path.read_text())
        if old != json.loads(json.dumps(meta)):
            raise ValueError(f"{out} holds results of other settings ({conf_path}); "
                             "use --overwrite or another --out")  # fmt: skip
    from s2dloc.utils.io import write_text_atomic

    write_text_atomic(conf_path, json.dumps(meta, indent=1) + "\n")
    map_ = load_map(args.map, args.images)  # errors name the model; it must have 3D points
    skipped: dict[str, str] = {}
    queries = read_queries(args.queries, args.query_images or map_.image_root, args.camera,
                           model=map_, skipped=skipped,
                           default_focal_factor=getattr(args, "default_focal_factor", 1.2))  # fmt: skip
    if args.num_queries:
        queries = queries[: args.num_queries]
    # Bad or unreadable images: logged as failed, never localized.
    queries, todo = pending_queries(queries, conf, log_path, skipped)
    logger.info("%d queries, %d already done", len(queries), len(queries) - len(todo))
    cache = Path(args.cache) if args.cache else out / f"cache-{conf['extractor']}.h5"
    return conf, out, map_, queries, todo, log_path, cache


def finish(out: Path, log_path: Path, keys: dict[str, str]) -> dict:
    """Write result files from the log and print a one-line summary."""
    from s2dloc.localization.io import read_log, write_results

    records = read_log(log_path)
    for key, name in keys.items():
        write_results(out / name, records, key)
    ok = sum(bool(r.get("pnp_success")) for r in records.values())
    fp = sum(bool(r.get("fpnp_success")) for r in records.values())
    err = sum(bool(r.get("error")) for r in records.values())
    print(f"{len(records)} queries: {ok} PnP successes, {fp} F-PnP successes, {err} errors; "
          f"results in {out}")  # fmt: skip
    return records


def run(args: argparse.Namespace) -> int:
    """Localize the queries; under ``torchrun`` each process takes a shard (see distributed.py)."""
    from s2dloc.localization import distributed

    ctx = distributed.init()
    try:
        return _run(args, ctx)
    finally:
        distributed.shutdown()


def _run(args: argparse.Namespace, ctx) -> int:
    from tqdm import tqdm

    from s2dloc.localization import distributed
    from s2dloc.localization.io import append_log
    from s2dloc.localization.pipeline import Localizer
    from s2dloc.localization.retrieval import pairs_from_file

    # Rank 0 checks and resets the outputs first; the others then only read them.
    err: Exception | None = None
    if ctx.is_main:
        try:
            conf, out, map_, queries, todo, log_path, cache = prepare(args, "localize")
        except (FileNotFoundError, ValueError) as e:
            err = e
    if not ctx.agree(err is None):
        raise err or ValueError("rank 0 failed to set up the run (see its log)")
    if not ctx.is_main:
        conf, out, map_, queries, todo, log_path, cache = prepare(
            argparse.Namespace(**{**vars(args), "overwrite": False}), "localize"
        )
    pairs = pairs_from_file(args.pairs, set(map_.names)) if args.pairs else None
    mine = ctx.shard(todo)
    loc = None
    if todo and ctx.is_main:  # the reference cache is built once, by rank 0
        loc = Localizer(map_, conf, cache=cache, pairs=pairs, overwrite=args.overwrite)
    ctx.barrier()
    if mine and loc is None:
        loc = Localizer(map_, conf, cache=cache, pairs=pairs, build=False, progress=False)
    desc = f"localize [{ctx.rank}/{ctx.world}]" if ctx.active else "localize"
    records = []
    for q in tqdm(mine, desc=desc, disable=not ctx.is_main):
        res = loc.localize(q)
        if ctx.active:
            records.append(res.to_json())
        else:
            append_log(log_path, res)
    if ctx.active:
        distributed.write_part(log_path, ctx, records)
        ctx.barrier()
        if not ctx.is_main:
            return 0
        distributed.merge_parts(log_path, ctx.world, [q.name for q in queries])
    finish(out, log_path, {"pose": "results.txt", "pnp_pose": "results_pnp.txt"})
    return 0
