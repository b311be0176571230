"""A static HTML report: tables and figures next to an ``index.html`` that opens offline."""

from __future__ import annotations

import html
from pathlib import Path

from s2dloc.utils.io import write_text_atomic

_STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:right}th{background:#f0f0f0}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
.caption{color:#555;font-size:90%}"""


def table_html(rows: list[list], headers: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(folder: str | Path, title: str, sections: list[tuple[str, list]]) -> Path:
    """Write ``folder/index.html``; ``sections`` are ``(heading, items)`` with items being
    HTML strings (e.g. from :func:`table_html`) or image paths relative to ``folder``
    (``Path`` objects, shown with their file name as caption)."""
    folder = Path(folder)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for heading, items in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for item in items:
            if isinstance(item, Path):
                rel = item.relative_to(folder) if item.is_absolute() else item
                if not (folder / rel).is_file():
                    raise FileNotFoundError(f"report figure {folder / rel} does not exist")
                parts.append(
                    f"<div><img src='{html.escape(rel.as_posix())}' alt=''>"
                    f"<div class='caption'>{html.escape(rel.name)}</div></div>"
                )
            else:
                parts.append(item)
    parts.append("</body></html>")
    return write_text_atomic(folder / "index.html", "\n".join(parts))
