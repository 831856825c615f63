"""The live view in a real pseudo-terminal, read back through a VT100 emulator.

``cutover`` runs on the slave side of a pty whose size is set with TIOCSWINSZ; what it
writes is fed to ``pyte``, which keeps the screen a person would see. Whenever the
program has been quiet for a moment (so no frame is half written), the screen must hold
exactly one panel, none of whose rows reaches the last column (a row that does has
wrapped, or was about to). Only Python and ``pyte`` are needed: no tmux, no terminal.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Iterator

import pyte
import pytest
import yaml

from cutover import demo
from cutover.liveview import STOP_HINT
from cutover.sandbox import Sandbox
from cutover.sandbox.web import DemoWebServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HEADER = re.compile(r"cutover watch - round \d+")
FOOTER = re.compile(re.escape(STOP_HINT) + r"|the verdict is reached|^stopped")


class Terminal:
    """A pseudo-terminal of a given size with an emulated screen on the other end."""

    def __init__(self, columns: int, rows: int) -> None:
        self.master, slave = os.openpty()
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self._slave: int | None = slave
        self.proc: subprocess.Popen[bytes] | None = None
        self.resize(columns, rows)

    def resize(self, columns: int, rows: int) -> None:
        """As a terminal window does: the kernel's size first, then the screen itself."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen.resize(rows, columns)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGWINCH)  # no controlling terminal: say it as the kernel would

    def start(self, *args: str, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        assert self._slave is not None
        self.proc = subprocess.Popen([sys.executable, "-m", "cutover", *args], stdin=self._slave, stdout=self._slave,
                                     stderr=self._slave, env=env, cwd=cwd, start_new_session=True)
        os.close(self._slave)
        self._slave = None

    def quiet_screens(self, deadline: float, quiet: float = 0.2) -> Iterator[list[str]]:
        """The screen each time the program has said nothing for ``quiet`` seconds, until it
        ends or the deadline passes."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], quiet)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    data = b""
                if data:
                    self.stream.feed(data)
                    continue
                return
            yield list(self.screen.display)
            if self.proc.poll() is not None and not select.select([self.master], [], [], quiet)[0]:
                return

    def await_output(self, seconds: float) -> None:
        """Block until the program writes something (a redraw after a resize, say)."""
        ready, _, _ = select.select([self.master], [], [], seconds)
        assert ready, "nothing was drawn"
        self.stream.feed(os.read(self.master, 65536))

    def close(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(timeout=30) if self.proc is not None else None
        os.close(self.master)
        return code


def one_panel(screen: list[str], columns: int) -> list[str]:
    """The panel's rows; fails unless there is exactly one, complete, and nothing wrapped."""
    headers = [i for i, row in enumerate(screen) if HEADER.search(row)]
    assert len(headers) == 1, "\n".join(screen)
    end = next((i for i in range(headers[0], len(screen)) if FOOTER.search(screen[i])), None)
    assert end is not None, "\n".join(screen)
    rows = screen[headers[0]: end + 1]
    for row in rows:
        assert row[columns - 1:].strip() == "", f"a row reaches the last column:\n{row}"
    return [row.rstrip() for row in rows]


def panels_seen(term: Terminal, seconds: float) -> Iterator[list[str]]:
    for screen in term.quiet_screens(time.monotonic() + seconds):
        if any(HEADER.search(row) for row in screen):
            yield one_panel(screen, term.screen.columns)


@pytest.mark.parametrize("columns", [80, 160])
def test_demo_keeps_one_panel_that_fits_the_terminal(tmp_path, columns):
    term = Terminal(columns, 40)
    try:
        term.start("demo", "--fast", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
        panels = list(panels_seen(term, 120))
        final = [row.rstrip() for row in term.screen.display]
    finally:
        code = term.close()
    assert code == 0
    assert len(panels) >= 2  # several rounds, each checked on the screen
    assert any(STOP_HINT in row and ("next round in" in row or "under way" in row) for p in panels for row in p)
    last = one_panel(final, columns)  # the earlier rounds left nothing behind
    assert "the verdict is reached: no more rounds" in last[-1]
    assert any(row.startswith("Retire verdict after") for row in final)
    table_header = next(row for row in last if row.startswith("  record"))
    assert ("oth" if columns == 80 else "other") in table_header.split()


@pytest.fixture()
def watched(tmp_path: Path) -> Iterator[Path]:
    """A plan against the demo's sandbox, before its apply: the watch runs until stopped."""
    with Sandbox(tmp_path / "zone", demo.ZONE, demo.zone_records(demo.NORMAL),
                 resolvers=demo.resolver_specs(demo.NORMAL)) as sandbox, DemoWebServer(demo.NEW_IP) as web:
        plan = demo.plan_document(sandbox, demo.NORMAL, web)
        plan["watch"]["interval"] = "4s"
        path = tmp_path / "plan.yaml"
        path.write_text(yaml.safe_dump(plan, sort_keys=False), encoding="utf-8")
        yield path


def test_watch_counts_down_follows_a_resize_and_says_why_it_stopped(tmp_path, watched):
    term = Terminal(160, 40)
    try:
        term.start("watch", str(watched), cwd=tmp_path)
        countdowns: set[str] = set()
        for panel in panels_seen(term, 60):
            countdowns |= {m.group() for row in panel for m in [re.search(r"next round in \d+s", row)] if m}
            if len(countdowns) >= 3:
                break
        assert len(countdowns) >= 3, countdowns  # it ticks between rounds
        assert any("authoritative" in row.split() for row in panel)  # the wide layout

        term.resize(80, 30)
        term.await_output(5)  # until then the screen holds the wide panel, cut by the narrower window
        seen = list(panels_seen(term, 3))
        panel = seen[-1] if seen else panel
        assert "oth" in next(row for row in panel if row.startswith("  record")).split()  # redrawn compact
        assert sum(bool(HEADER.search(row)) for row in term.screen.display) == 1

        assert term.proc is not None
        term.proc.send_signal(signal.SIGINT)
        for _ in term.quiet_screens(time.monotonic() + 30):
            pass
        final = [row.rstrip() for row in term.screen.display]
    finally:
        code = term.close()
    assert code == 130
    panel = one_panel(final, 80)
    assert panel[-1].startswith("stopped; the journal keeps every round")
    assert any("interrupted" in row for row in final)
