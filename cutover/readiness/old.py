"""The parallel period's question, asked in the background of ``watch``: does the old MX
still accept mail for the zone?

After an MX change, caches keep sending mail to the old server for up to the old TTL,
and senders that looked up the MX before the change retry there for days. If the old
server stops accepting mail for the domain during the parallel period (its mailbox
deleted, the domain removed, the machine switched off early), that mail bounces. So
``watch`` asks it, every ``ready.old.every``, the same RCPT question as ``cutover
check`` asks the new one (never ``DATA``), and each round carries the last answer.

A restarted watch (or ``watch --once`` from cron) takes the last answer from the
journal's last round while it is younger than ``every``, so the old server is not asked
more often than the plan says.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Sequence

from cutover.readiness import Check
from cutover.readiness.config import ReadyConfig
from cutover.readiness.run import check_old_mail
from cutover.readiness.targets import Targets
from cutover.times import iso_precise, parse_iso


class OldMailWatch:
    """Asks the old MX hosts in a thread of its own; ``snapshot`` is what a round shows."""

    def __init__(self, targets: Targets, config: ReadyConfig, until: float | None, *,
                 previous: Mapping[str, Any] | None = None,
                 check: Callable[[Targets, ReadyConfig], Sequence[Check]] = check_old_mail,
                 clock: Callable[[], float] = time.time) -> None:
        self.targets = targets
        self.config = config
        self.until = until  # the end of the parallel period: no questions after it
        self.check = check
        self.clock = clock
        self._checks: tuple[Check, ...] = ()
        self._checked: float | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()  # set after each check
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="old-mx", daemon=True)
        if previous:
            self._restore(previous)

    def start(self) -> "OldMailWatch":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.config.timeout + 5)

    def wait_first(self, timeout: float) -> bool:
        """``watch --once``: let the single round carry an answer."""
        return self._checked is not None or self._done.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            checks, checked = self._checks, self._checked
        refusing = [c for c in checks if not c.ok]
        return {
            "hosts": [s.name for s in self.targets.old_mail],
            "every": self.config.old_every,
            "until": iso_precise(self.until),
            "checked": iso_precise(checked),
            "accepting": None if checked is None else not refusing,
            "checks": [c.as_dict() for c in checks],
            "message": _message(refusing, checked),
        }

    # -- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            if self.until is not None and now > self.until:
                return  # the parallel period is over: the old server may be gone, as planned
            due = self._checked is None or now - self._checked >= self.config.old_every
            if due:
                checks = tuple(self.check(self.targets, self.config))
                with self._lock:
                    self._checks, self._checked = checks, self.clock()
                self._done.set()
            self._stop.wait(1.0)

    def _restore(self, doc: Mapping[str, Any]) -> None:
        stored = doc.get("old_mail")
        if not isinstance(stored, Mapping) or not stored.get("checked"):
            return
        checked = parse_iso(str(stored["checked"])).timestamp()
        if self.clock() - checked >= self.config.old_every:
            return
        self._checks = tuple(Check(str(c.get("check", "old-mx")), str(c.get("target", "")), str(c.get("name", "")),
                                   str(c.get("state", "failed")), str(c.get("detail", "")))
                             for c in stored.get("checks") or () if isinstance(c, Mapping))
        self._checked = checked


def _message(refusing: Sequence[Check], checked: float | None) -> str:
    """The loud line: the old server no longer takes the mail caches still send it."""
    if checked is None or not refusing:
        return ""
    hosts = ", ".join(dict.fromkeys(f"{c.name} ({c.target})" for c in refusing))
    return (f"the old mail server {hosts} no longer accepts mail for the domain: mail still sent there bounces "
            f"({refusing[0].detail})")
