"""Command-line defaults that repeat a library default (the CLI modules import nothing heavy
when the parser is built) are the library's value."""

from __future__ import annotations

from s2dloc.cli import build_parser
from s2dloc.localization.commands import RunRequest
from s2dloc.mapping.intrinsics import DEFAULT_FOCAL_FACTOR


def test_default_focal_factor_is_the_library_default():
    args = build_parser().parse_args(["localize", "--map", "m", "--queries", "q", "--out", "o"])
    assert args.default_focal_factor == DEFAULT_FOCAL_FACTOR
    assert RunRequest.from_args(args).default_focal_factor == DEFAULT_FOCAL_FACTOR
    assert RunRequest.__dataclass_fields__["default_focal_factor"].default == DEFAULT_FOCAL_FACTOR


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return " ".join(sub.format_help().split())  # one line: wrapping does not matter


def test_map_help_states_the_library_defaults():
    from s2dloc.mapping.known_poses import KnownPosesConfig
    from s2dloc.mapping.sfm import SfMConfig

    text = _help("map")
    sfm, known = SfMConfig(), KnownPosesConfig()
    assert f"(default: {sfm.camera_model})" in text
    assert f"(default: {sfm.max_size} for SfM, {known.max_size} with --known-poses)" in text
    assert sfm.max_features == known.max_features
    assert f"SIFT features per image (default: {sfm.max_features})" in text
    assert sfm.matcher == "exhaustive" and "image pairs to match: all (default)" in text
    assert f"matched to each image ({sfm.overlap})" in text
    assert sfm.num_threads == known.num_threads
    assert f"CPU threads (default: {sfm.num_threads}, all)" in text
