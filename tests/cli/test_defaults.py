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
