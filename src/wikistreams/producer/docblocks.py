"""Generated blocks inside hand-written documents.

Some tables are generated from code (the settings model, the event contract) but live in files
whose prose is written by hand. Each such block starts and ends with a marker line. `block_in`
reads what a document holds, so that a test can fail when it drifts from the code; `write_block`
puts a freshly generated block in its place and leaves the prose around it alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def block_in(text: str, begin: str, end: str) -> str:
    """The block from the `begin` marker to the `end` marker, both included."""
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if stop < 0:
        raise ValueError(f"markers {begin!r} ... {end!r} not found")
    return text[start : stop + len(end)]


def write_block(path: Path, block: str) -> bool:
    """Replace the block in `path` that has `block`'s first and last lines as markers.

    True if the file changed."""
    lines = block.splitlines()
    text = path.read_text(encoding="utf-8")
    current = block_in(text, lines[0], lines[-1])
    if current == block:
        return False
    path.write_text(text.replace(current, block, 1), encoding="utf-8")
    return True


def table_block(begin: str, end: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table between two marker lines, one row per line, as `block_in` finds it."""
    lines = [begin, _row(header), "|" + "---|" * len(header)]
    lines += [_row(cells) for cells in rows]
    lines.append(end)
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
