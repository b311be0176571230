"""Plain-text tables for terminal reports."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header."""
    bad = [i for i, row in enumerate(rows) if len(row) != len(headers)]
    if bad:
        raise ValueError(f"rows {bad} do not have {len(headers)} cells like the headers")
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
