"""Rewrite one part of a markdown file (BENCHMARKS.md, docs) in place: a ``## `` section
(:func:`replace_section`) or the text between two marker comments (:func:`replace_block`)."""

from __future__ import annotations

import os
from pathlib import Path


def replace_section(path: str | Path, heading: str, body: str) -> None:
    """Replace the text between the line ``heading`` and the next ``## `` heading of a
    markdown file with ``body`` (file and heading created if missing); the rest of the file
    stays byte-identical. Written through a temporary file and ``os.replace``."""
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    lines = text.splitlines(keepends=True)
    try:
        start = next(i for i, ln in enumerate(lines) if ln.rstrip("\n") == heading)
    except StopIteration:
        sep = "" if not text or text.endswith("\n") else "\n"
        new = f"{text}{sep}\n{heading}\n\n{body.rstrip()}\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        head = "".join(lines[: start + 1])
        new = head + "\n" + body.rstrip() + "\n" + ("\n" + tail if tail else "")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def replace_block(path: str | Path, start: str, end: str, body: str) -> None:
    """Replace the text between the marker lines ``start`` and ``end`` (markers kept) of a
    markdown file with ``body``; without both markers the block is appended at the end."""
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
