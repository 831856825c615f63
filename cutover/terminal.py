"""Text on a terminal: how wide it is, cutting it to fit, tables and frames that fit the screen.

A terminal counts cells, not characters: a wide character (CJK, most emoji) takes two,
a combining mark none, a colour escape none. Everything here measures in cells, so that
a line never wraps and the program always knows how many rows its last frame took, which
is what redrawing in place depends on (``redraw``). The live view (``cutover.liveview``)
decides what to show; this module only makes it fit.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import textwrap
import unicodedata
from dataclasses import dataclass
from typing import Sequence, TextIO

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CLEAR_SCREEN = "\x1b[H\x1b[2J"
_RESET = "\x1b[0m"


def visible(text: str) -> str:
    """The text without its colour escapes: what takes room on the screen."""
    return _ESCAPE.sub("", text)


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    """Screen columns the text takes (escapes take none, East Asian wide characters two)."""
    return sum(_char_cells(ch) for ch in visible(text))


def clip(text: str, width: int, ellipsis: str = "…") -> str:
    """The text cut to ``width`` columns, ending in the ellipsis when something was cut.
    Escapes are kept (not counted), and a cut coloured text is reset so colour cannot leak."""
    if cells(text) <= width:
        return text
    room = max(0, width - cells(ellipsis))
    out, used, pos = [], 0, 0
    while pos < len(text):
        escape = _ESCAPE.match(text, pos)
        if escape:
            out.append(escape.group())
            pos = escape.end()
            continue
        w = _char_cells(text[pos])
        if used + w > room:
            break
        out.append(text[pos])
        used += w
        pos += 1
    kept = "".join(out).rstrip(" ")
    tail = ellipsis[: max(0, width - cells(kept))]
    return kept + tail + (_RESET if "\x1b[" in text else "")


def clip_middle(text: str, width: int, ellipsis: str = "…") -> str:
    """A plain name cut in the middle: both ends of ``resolver-7-frankfurt`` or
    ``shop.eu-west-1.internal`` tell names apart better than either end alone."""
    if cells(text) <= width:
        return text
    room = max(0, width - cells(ellipsis))
    head = clip(text, (room + 1) // 2 + cells(ellipsis), ellipsis)
    tail, used = "", 0
    for ch in reversed(text):
        if used + _char_cells(ch) > room // 2:
            break
        tail, used = ch + tail, used + _char_cells(ch)
    return clip(head + tail, width, ellipsis)


def fold(text: str, width: int, first: str, rest: str, max_lines: int, ellipsis: str = "…") -> list[str]:
    """Plain text folded at spaces into at most ``max_lines`` lines of ``width`` columns,
    the first after ``first``, the others after ``rest``; the last kept line ends in the
    ellipsis when there was more."""
    room = max(1, width - cells(first))
    lines = textwrap.wrap(text, room, break_long_words=True, break_on_hyphens=False) or [""]
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [" ".join(lines[max_lines - 1:])]
    out = [(first if i == 0 else rest) + line for i, line in enumerate(lines)]
    return [clip(line, width, ellipsis) for line in out]



# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Column:
    """One column: cells may carry colour; ``flex`` columns are clipped to what is left."""

    header: str
    cells: Sequence[str]
    right: bool = False
    flex: bool = False  # a name: narrowed (cut in the middle) before any column is dropped
    min_width: int = 6

    @property
    def natural(self) -> int:
        return max([cells(self.header)] + [cells(c) for c in self.cells])


def table(columns: Sequence[Column], width: int, *, drop: Sequence[int] = (), indent: str = "  ",
          ellipsis: str = "…") -> tuple[list[str], int]:
    """Rows of the columns fitted into ``width``: a flex column first narrows down to its
    ``min_width``, then the columns named in ``drop`` go (in that order) until the rest
    fits. Returns the lines (header first) and how many columns were dropped."""
    keep = list(range(len(columns)))
    widths = _fit_widths(columns, keep, width - cells(indent))
    for i in drop:
        if cells(indent) + sum(widths.values()) + 2 * (len(keep) - 1) <= width:
            break
        keep.remove(i)
        widths = _fit_widths(columns, keep, width - cells(indent))
    rows = [[c.header for c in columns]] + [[c.cells[r] for c in columns] for r in range(len(columns[0].cells))]
    lines = []
    for row in rows:
        parts = []
        for i in keep:
            cut = clip_middle if columns[i].flex and "\x1b[" not in row[i] else clip
            cell = cut(row[i], widths[i], ellipsis)
            pad = " " * (widths[i] - cells(cell))
            parts.append(pad + cell if columns[i].right else cell + pad)
        lines.append(clip((indent + "  ".join(parts)).rstrip(" "), width, ellipsis))
    return lines, len(columns) - len(keep)


def _fit_widths(columns: Sequence[Column], keep: Sequence[int], room: int) -> dict[int, int]:
    """Natural widths, the flex columns given what the others leave (between their
    ``min_width`` and their natural width)."""
    widths = {i: columns[i].natural for i in keep}
    fixed = sum(w for i, w in widths.items() if not columns[i].flex) + 2 * (len(keep) - 1)
    for i in keep:
        if columns[i].flex:
            floor = min(columns[i].min_width, widths[i])
            widths[i] = max(floor, min(widths[i], room - fixed))
            fixed += widths[i]
    return widths


# --------------------------------------------------------------------------- fitting the height


@dataclass(frozen=True)
class Block:
    """Lines of a panel; an ``elastic`` block (named for what its lines are) may be cut short."""

    lines: list[str]
    elastic: str = ""


def fit_height(blocks: Sequence[Block], height: int, ellipsis: str = "…") -> list[str]:
    """At most ``height`` lines: elastic blocks give way from the last (the grid before the
    records), each keeping one line and saying how many it hides; then the bottom is cut."""
    over = sum(len(b.lines) for b in blocks) - height
    fitted = list(blocks)
    for i in reversed(range(len(fitted))):
        b = fitted[i]
        if over <= 0:
            break
        if not b.elastic or len(b.lines) < 3:
            continue
        keep = max(1, len(b.lines) - over - 1)
        hidden = len(b.lines) - keep
        fitted[i] = Block(b.lines[:keep] + [f"  {ellipsis} {hidden} more {b.elastic} (a taller terminal shows them)"])
        over -= hidden - 1
    lines = [line for b in fitted for line in b.lines]
    if len(lines) > height > 0:
        lines = lines[: height - 1] + [f"  {ellipsis} {len(lines) - height + 1} more lines (a taller terminal shows them)"]
    return lines[: max(0, height)]



# --------------------------------------------------------------------------- redrawing


def rows_of(widths: Sequence[int], columns: int) -> int:
    """Screen rows that lines of these widths take on a terminal ``columns`` wide: a line
    that fills the width exactly does not wrap; an empty one still takes a row."""
    return sum(max(1, math.ceil(w / max(1, columns))) for w in widths)


def erase(widths: Sequence[int], columns: int) -> str:
    """How to get back to the first row of the frame on screen (whose lines had these
    widths) on a terminal now ``columns`` wide. When a line no longer fits, a narrower
    terminal has rewrapped or cut the frame and where it starts is unknowable: clear the
    screen."""
    if not widths:
        return ""
    rows = rows_of(widths, columns)
    return _CLEAR_SCREEN if rows != len(widths) else f"\x1b[{rows}A\r"


def redraw(previous: Sequence[int], columns: int, lines: Sequence[str]) -> str:
    """One write that replaces the previous frame: each line overwrites a row and clears
    the rest of it, and whatever is left of a taller old frame is cleared below."""
    return erase(previous, columns) + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J"


def terminal_size(stream: TextIO) -> tuple[int, int]:
    """Columns and rows of the terminal behind ``stream`` now (a resize changes them)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        size = shutil.get_terminal_size((80, 24))
    return (size.columns or 80, size.lines or 24)


def ellipsis_for(stream: TextIO) -> str:
    """``…`` where the stream can encode it, else ``...``."""
    try:
        "…".encode(getattr(stream, "encoding", None) or "ascii")
        return "…"
    except (UnicodeEncodeError, LookupError):
        return "..."
