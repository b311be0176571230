"""Helpers shared by the CLI tests."""

from __future__ import annotations

import logging

from s2dloc.cli import main


def fails(argv: list[str], caplog) -> str:
    """Run the CLI; it must exit with 2 and log exactly one one-line error, returned."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="s2dloc"):
        assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return errors[0]
