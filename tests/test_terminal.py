"""Text on a terminal: cells, cutting to fit, tables and frames that fit the screen."""

from __future__ import annotations

from cutover.terminal import Block, cells, clip, clip_middle, erase, fit_height, fold, redraw, rows_of


def test_text_helpers():
    assert clip("abcdef", 4) == "abc…" and clip("abc", 3) == "abc" and clip("abcdef", 4, "...") == "a..."
    painted = "\x1b[32m" + "x" * 10 + "\x1b[0m"
    assert cells(clip(painted, 5)) == 5 and clip(painted, 5).endswith("\x1b[0m")  # colour cannot leak
    assert cells("日本") == 4 and cells(clip("日本語です", 5)) <= 5
    assert clip_middle("resolver-7-frankfurt", 11) == "resol…kfurt" and clip_middle("short", 11) == "short"
    assert fold("one two three four five", 12, "> ", "  ", 2) == ["> one two", "  three fou…"]
    assert fit_height([Block(["h"]), Block([f"r{i}" for i in range(10)], "records"), Block(["v"])], 5) == \
        ["h", "r0", "r1", "  … 8 more records (a taller terminal shows them)", "v"]


def test_rows_are_counted_on_the_screen_not_in_the_text():
    assert rows_of([0, 79, 80], 80) == 3  # an empty line takes a row; a full one does not wrap
    assert rows_of([81, 160, 161], 80) == 2 + 2 + 3
    assert erase([], 80) == ""
    assert erase([10, 0, 79], 80) == "\x1b[3A\r"
    assert erase([10, 120], 80) == "\x1b[H\x1b[2J"  # rewrapped by a narrower terminal: start unknown
    assert redraw([5], 80, ["ab", "c"]) == "\x1b[1A\rab\x1b[K\nc\x1b[K\n\x1b[J"
