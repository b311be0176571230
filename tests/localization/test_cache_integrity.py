"""Feature cache integrity: a checksum per entry over its data and the settings (altered or
truncated entries are named, recomputed, and give the poses of a clean cache), and a cache that
still opens whenever the process building it is killed."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from s2dloc.cli import main
from s2dloc.datasets.synthetic.write import write_png
from s2dloc.localization import Map, build_cache, load_cache, resolve
from s2dloc.localization import descriptors as D
from s2dloc.localization.cache import signature, warn_broken
from s2dloc.localization.cache_store import checksum, scan_cache

from .conftest import CONF
from .extractors import PatchProjection


def _flip_bytes(path, dataset: str, count: int = 8) -> None:
    """Invert ``count`` bytes in the middle of ``dataset``'s data, on disk (not through HDF5)."""
    with h5py.File(path, "r") as f:
        d = f[dataset]
        offset, nbytes = d.id.get_offset(), d.id.get_storage_size()
    assert offset is not None and nbytes > count
    with open(path, "r+b") as fh:
        fh.seek(offset + nbytes // 2)
        data = fh.read(count)
        fh.seek(offset + nbytes // 2)
        fh.write(bytes(b ^ 0xFF for b in data))


def _truncate_entry(path, dataset: str) -> None:
    """Replace ``dataset`` by its first half (the entry keeps its old checksum)."""
    with h5py.File(path, "a") as f:
        data = f[dataset][()]
        del f[dataset]
        f.create_dataset(dataset, data=data[: len(data) // 2])


def test_altered_entries_are_named_and_recomputed(world_map, tmp_path, caplog):
    conf = resolve(CONF)
    ext = PatchProjection()
    path = tmp_path / "cache.h5"
    assert build_cache(world_map, ext, path, conf, progress=False) == 12
    clean = load_cache(world_map, path, conf, ext)
    a, b = world_map.names[2], world_map.names[5]
    _flip_bytes(path, f"{a}/features/1")
    _truncate_entry(path, f"{b}/descriptors")
    with pytest.raises(ValueError, match=f"entry {a!r} is altered or truncated"):
        load_cache(world_map, path, conf, ext)
    good, bad = scan_cache(path, world_map, signature(conf, ext))
    assert sorted(bad) == sorted([a, b]) and len(good) == 10
    with caplog.at_level(logging.WARNING):
        assert build_cache(world_map, ext, path, conf, progress=False) == 2
    first = sorted([a, b], key=world_map.names.index)
    assert (
        f"2 entries are altered or truncated (checksum mismatch) ({first[0]!r}, {first[1]!r}); "
        "recomputing them" in caplog.text
    )
    again = load_cache(world_map, path, conf, ext)
    for name in (a, b):
        assert torch.equal(again[name].descriptors, clean[name].descriptors)
        for x, y in zip(again[name].features, clean[name].features):
            assert torch.equal(x, y)
    # The checksum covers the settings too: an entry copied under another signature is refused.
    assert scan_cache(path, world_map, signature(conf, ext))[1] == {}
    other = signature(resolve({"s2d": {"match_stride": 2}}))
    with h5py.File(path, "a") as f:
        f.attrs["signature"] = other
    assert len(scan_cache(path, world_map, other)[1]) == 12


def test_entry_of_an_image_replaced_under_its_name_is_recomputed(world_dir, tmp_path, caplog):
    """Same name and observations, other pixels: the entry's image digest no longer matches."""
    shutil.copytree(world_dir, tmp_path / "world")
    map_ = Map.load(tmp_path / "world")
    conf, ext, path = resolve(CONF), PatchProjection(), tmp_path / "cache.h5"
    assert build_cache(map_, ext, path, conf, progress=False) == 12
    a = map_.names[3]
    image = map_.load_image(a)
    write_png(map_.image_root / a, (255 - image).astype(np.float32) / 255)
    map_ = Map.load(tmp_path / "world")  # the next run (digests are computed once per map)
    with pytest.raises(ValueError, match=f"entry {a!r} is stale \\(its image changed"):
        load_cache(map_, path, conf, ext)
    with caplog.at_level(logging.WARNING):
        assert build_cache(map_, ext, path, conf, progress=False) == 1
    assert f"entry {a!r} is stale (its image changed" in caplog.text
    assert load_cache(map_, path, conf, ext)[a].features[0].shape[0] == len(map_[a].point3D_ids)
    # A sound entry cached without a digest (by an older version) is recomputed too.
    sig = signature(conf, ext)
    with h5py.File(path, "a") as f:
        del f[f"{a}/image_digest"]
        arrays = {}
        f[a].visititems(
            lambda k, d: arrays.update({k: d[()]}) if isinstance(d, h5py.Dataset) else None
        )
        f[a].attrs["checksum"] = checksum(sig, a, arrays)
    assert scan_cache(path, map_, sig)[1] == {
        a: "stale (its image changed, or was cached without a digest)"
    }


def test_entry_of_moved_observations_is_stale(world_dir, tmp_path):
    """Same image and point ids, keypoints moved by a pixel (a re-run bundle adjustment): the
    cached features were sampled at the old pixels, so the entry is stale."""
    shutil.copytree(world_dir, tmp_path / "world")
    map_ = Map.load(tmp_path / "world")
    conf, ext, path = resolve(CONF), PatchProjection(), tmp_path / "cache.h5"
    assert build_cache(map_, ext, path, conf, progress=False) == 12
    sig = signature(conf, ext)
    assert scan_cache(path, map_, sig)[1] == {}
    a = map_.names[5]
    map_[a].keypoints = np.asarray(map_[a].keypoints) + 1.0
    assert scan_cache(path, map_, sig)[1] == {a: "stale (its observations differ from the map's)"}


def test_broken_entries_are_reported_once_per_kind(caplog):
    bad = {f"db/{i:04d}.png": "stale (its image changed)" for i in range(8)}
    bad["db/0100.png"] = "altered or truncated (checksum mismatch)"
    with caplog.at_level(logging.WARNING):
        warn_broken(Path("c.h5"), bad)
    assert len(caplog.records) == 2
    assert (
        "8 entries are stale (its image changed) ('db/0000.png', 'db/0001.png', 'db/0002.png', "
        "'db/0003.png', 'db/0004.png' and 3 more); recomputing them" in caplog.text
    )
    assert "entry 'db/0100.png' is altered or truncated (checksum mismatch)" in caplog.text


def _poses(out) -> dict[str, list]:
    recs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {r["name"]: r["pose"] for r in recs}


def test_corrupted_cache_gives_the_poses_of_a_clean_one(world_dir, tmp_path, caplog):
    cache = tmp_path / "cache.h5"
    args = [
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(world_dir / "queries_with_intrinsics.txt"),
        "--num-queries",
        "3",
        "--cache",
        str(cache),
        "--conf",
        "s2d.match_stride=4",
        "retrieval.num_refs=3",
    ]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    name = json.loads((tmp_path / "clean" / "log.jsonl").read_text().splitlines()[0])["best_ref"]
    _flip_bytes(cache, f"{name}/descriptors", 256)  # the matches of query 0 would change
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--out", str(tmp_path / "again")]) == 0
    assert f"entry {name!r} is altered or truncated" in caplog.text
    clean, again = _poses(tmp_path / "clean"), _poses(tmp_path / "again")
    assert list(clean) == list(again) and all(p is not None for p in clean.values())
    for n in clean:
        np.testing.assert_allclose(again[n], clean[n], atol=1e-9)


class _SteadyPatchProjection(PatchProjection):
    """Takes at least 40 ms per image, so a build lasts about as long under any machine load."""

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        t = time.monotonic()
        out = super().forward(images)
        time.sleep(max(0.0, 0.04 * len(images) - (time.monotonic() - t)))
        return out


def _build_in_child(world_map, path, conf, started) -> None:
    started.send(True)
    ext = _SteadyPatchProjection()
    build_cache(world_map, ext, path, conf, progress=False, commit_seconds=0.0)
    os._exit(0)


def _start_build(ctx, world_map, path, conf):
    """Start a process building the cache; return it once the build has begun.

    Children fork from a fresh single-threaded server, not from this process: a fork of a
    process whose other threads may hold locks (torch's pool, pytest-xdist's channel) can leave
    the child waiting on them forever.
    """
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_build_in_child, args=(world_map, path, conf, sender))
    child.start()
    sender.close()
    assert receiver.poll(120) and receiver.recv(), "the child did not start"
    receiver.close()
    return child


def test_cache_opens_after_a_kill_at_any_moment(world_map, tmp_path):
    conf = resolve(CONF)
    ext = _SteadyPatchProjection()  # the children's extractor
    path = tmp_path / "cache.h5"
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "h5py", "s2dloc.localization", __name__])  # once
    child = _start_build(ctx, world_map, tmp_path / "ref.h5", conf)
    t = time.monotonic()
    child.join(120)
    duration = time.monotonic() - t
    assert child.exitcode == 0
    fractions, kills, runs = np.linspace(0.03, 0.9, 17), 0, 0
    while kills < len(fractions) and runs < 2 * len(fractions):
        delay = fractions[kills] * duration
        path.unlink(missing_ok=True)  # every kill point starts from an empty cache
        child = _start_build(ctx, world_map, path, conf)
        runs += 1
        time.sleep(delay)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        else:  # finished early (the load changed): kill the next runs sooner
            duration *= 0.8
        child.join(30)
        if path.exists():
            with h5py.File(path, "r") as f:  # always opens
                assert f.attrs["signature"] == signature(conf, ext)
            good, bad = scan_cache(path, world_map, signature(conf, ext))
            assert not bad, bad  # entries are complete or absent, never half-written
    assert kills == len(fractions), f"only {kills} of {runs} runs were killed before finishing"
    left = build_cache(world_map, ext, path, conf, progress=False)
    assert left < 12  # the killed run kept its committed entries
    assert not list(tmp_path.glob(".cache.h5.*.tmp"))  # temporaries of dead processes removed
    refs = load_cache(world_map, path, conf, ext)
    ref = load_cache(world_map, tmp_path / "ref.h5", conf, ext)
    for name in world_map.names:
        assert torch.equal(refs[name].descriptors, ref[name].descriptors)


def test_cache_of_other_weights_under_the_same_name_is_refused(world_map, tmp_path):
    conf = resolve(CONF)
    path = tmp_path / "cache.h5"
    build_cache(world_map, PatchProjection(seed=0), path, conf, progress=False)
    assert len(load_cache(world_map, path, conf, PatchProjection(seed=0))) == 12
    retrained = PatchProjection(seed=1)  # same name in the settings, other weights
    assert signature(conf, retrained) != signature(conf, PatchProjection(seed=0))
    with pytest.raises(ValueError, match=r"built with other settings \(changed: weights\)"):
        load_cache(world_map, path, conf, retrained)
    with pytest.raises(ValueError, match=r"built with other settings \(changed: weights\)"):
        build_cache(world_map, retrained, path, conf, progress=False)
    other = resolve({**CONF, "retrieval": {"gem_p": 2.0}})
    with pytest.raises(ValueError, match=r"\(changed: retrieval.gem_p, weights\); rebuild"):
        load_cache(world_map, path, other, retrained)
    assert build_cache(world_map, retrained, path, conf, overwrite=True, progress=False) == 12


def test_fingerprint_follows_weights_and_settings():
    from s2dloc.features.base import PhotometricExtractor
    from s2dloc.features.coarse import CoarseLevels
    from s2dloc.features.common import fingerprint

    a, b = PatchProjection(seed=0), PatchProjection(seed=0)
    assert fingerprint(a) == fingerprint(b)
    a(torch.rand(1, 3, 16, 16))  # using it changes nothing
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        b.proj[0, 0] += 1e-6
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(PhotometricExtractor()) != fingerprint(PhotometricExtractor(blur=2.0))
    assert fingerprint(CoarseLevels(a, (2,))) != fingerprint(CoarseLevels(a, (2, 4)))


def test_pooled_levels_are_cached_and_part_of_the_signature(world_map, tmp_path):
    """``fpnp.coarse_levels`` adds the pooled levels to every entry and to the signature, so a
    cache built without them is refused as stale; without them the signature is unchanged."""
    plain, pooled = resolve(CONF), resolve({**CONF, "fpnp": {"coarse_levels": [2, 4]}})
    assert "coarse_levels" not in json.loads(signature(plain))
    assert json.loads(signature(pooled))["coarse_levels"] == [2, 4]
    ext = PatchProjection()
    path = tmp_path / "cache.h5"
    build_cache(world_map, ext, path, plain, progress=False)
    with pytest.raises(ValueError, match="stale|signature|settings"):
        load_cache(world_map, path, pooled, ext)
    other = tmp_path / "pooled.h5"
    build_cache(world_map, ext, other, pooled, progress=False)
    refs = load_cache(world_map, other, pooled, ext)
    name = world_map.names[0]
    feats = refs[name].features
    assert len(feats) == 6
    base = load_cache(world_map, path, plain, ext)[name].features
    for a, b in zip(feats[:4], base, strict=True):
        torch.testing.assert_close(a, b)
    # The 2x-pooled level of the stride-8 map at the keypoints, as F-PnP samples it.
    maps = ext.extract(world_map.load_image(name))
    size = (world_map[name].camera.size[0].item(), world_map[name].camera.size[1].item())
    pts = torch.from_numpy(np.asarray(world_map[name].keypoints, np.float64)).float()
    pooled_map = torch.nn.functional.avg_pool2d(maps[-1][None], 2, 2, ceil_mode=True)[0]
    expected = D.sample_levels([pooled_map], pts, size)[0]
    torch.testing.assert_close(feats[4], expected)
