"""How a watch round looks to a person: one line per round, or a live panel on a terminal.

Both read the round's JSON document (``watch.round_document``), not the internal
objects, so what a person sees is exactly what ``--format json`` would have said.
On a terminal the panel is redrawn in place with plain ANSI escapes (cursor up, clear
to end of screen); anywhere else each round is one line, so logs stay greppable.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import Any, Mapping, TextIO

from tabulate import tabulate

from cutover.observe.types import RecordSummary
from cutover.times import duration, parse_iso, percent

BAR_WIDTH = 24
STATE_MARK = {
    "new": "N", "old": "O", "other": "?", "filtered": "f", "timeout": "t", "servfail": "S",
    "refused": "R", "nxdomain": "X", "nodata": "D", "malformed": "M", "error": "E",
}
CONDITION_LABEL = {"propagation": "propagation", "quorum": "quorum", "authoritative": "authoritative servers",
                   "left_behind": "left behind", "ttl": "old data", "parallel_period": "parallel period"}
_GREEN, _RED, _YELLOW, _DIM, _BOLD, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"


def render_round_line(doc: Mapping[str, Any]) -> str:
    """One round as one line: counts and share per record, then the verdict."""
    parts = [f"round {doc['round']} {doc['time']}"]
    for rec in doc["records"]:
        if not rec.get("resolvers_asked", True):
            continue
        c = rec["counts"]
        answering = RecordSummary.from_record(rec).answering
        parts.append(
            f"{rec['name']} {rec['type']} {c['new']}/{answering} new ({percent(rec['share'])})"
            f" old {c['old']} other {c['other']} error {c['error']}"
        )
    v = doc["verdict"]
    if v["retire"]:
        parts.append("retire: yes")
    else:
        earliest = v.get("earliest") or "unknown"
        parts.append(f"retire: not yet (missing {', '.join(v['missing'])}; earliest {earliest})")
    return " | ".join(parts)


class LiveView:
    """The live panel. ``update(doc)`` per round; ``close()`` at the end.

    On a non-terminal stream it degrades to ``render_round_line``, so callers need not
    check ``isatty`` themselves.
    """

    def __init__(self, stream: TextIO | None = None, *, grid: bool = False, color: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.grid = grid
        self.color = self.tty and not os.environ.get("NO_COLOR") if color is None else color
        self._drawn = 0
        self._latest: dict[str, Mapping[str, Any]] = {}

    def update(self, doc: Mapping[str, Any], now: datetime | None = None) -> None:
        """Show one round. Several zones watched together each keep their own panel."""
        if not self.tty:
            self.stream.write(render_round_line(doc) + "\n")
            self.stream.flush()
            return
        self._latest[str(doc.get("zone", ""))] = doc
        text = "\n\n".join(self.render(d, now) for d in self._latest.values())
        erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self.stream.write(erase + text + "\n")
        self.stream.flush()
        self._drawn = text.count("\n") + 1

    def close(self) -> None:
        """Leave the last panel on screen; the next output starts below it."""
        self._drawn = 0
        self.stream.flush()

    # ------------------------------------------------------------------ the panel

    def render(self, doc: Mapping[str, Any], now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        verdict = doc["verdict"]
        threshold = verdict.get("threshold") or 1.0
        lines = [self._paint(f"cutover watch - round {doc['round']} at {doc['time']}", _BOLD)]
        rows = []
        for rec in doc["records"]:
            c = rec["counts"]
            rows.append([
                f"{rec['name']} {rec['type']}",
                self._paint(str(c["new"]), _GREEN), self._paint(str(c["old"]), _RED if c["old"] else ""),
                c["other"], c["error"], c.get("filtered", 0),
                percent(rec["share"]) if rec.get("answering", 1) else "-",
                self._bar(rec["share"], threshold),
                "all new" if rec.get("authoritative", {}).get("all_new") else "-",
            ])
        headers = ["record", "new", "old", "other", "error", "filtered", "share", f"toward {percent(threshold)}", "authoritative"]
        table = tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)
        lines += ["  " + line for line in table.splitlines()]
        lines.append("")
        for cond in verdict.get("conditions", []):
            lines.append(self._condition(cond, now))
        lines += [f"  note: {note}" for note in verdict.get("notes", [])]
        lines.append(self._verdict(verdict))
        if self.grid:
            lines += ["", self._grid(doc)]
        return "\n".join(lines)

    def _bar(self, share: float | None, threshold: float) -> str:
        progress = 1.0 if threshold <= 0 else min(1.0, (share or 0.0) / threshold)
        filled = int(round(progress * BAR_WIDTH))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return "[" + self._paint(bar, _GREEN if progress >= 1.0 else _YELLOW) + "]"

    def _condition(self, cond: Mapping[str, Any], now: datetime) -> str:
        label = CONDITION_LABEL.get(cond["name"], cond["name"])
        if cond["met"]:
            return f"  {self._paint('ok  ', _GREEN)} {label:<16} {cond['reason']}"
        if cond.get("at"):  # count down live rather than repeat the round's "in ..." wording
            left = (parse_iso(cond["at"]) - now).total_seconds()
            text = f"holds at {cond['at']} ({duration(left)} left)" if left > 0 else f"holds at {cond['at']} (due now)"
        else:
            text = cond["reason"]
        return f"  {self._paint('wait', _YELLOW)} {label:<16} {text}"

    def _verdict(self, verdict: Mapping[str, Any]) -> str:
        if verdict["retire"]:
            return self._paint("  verdict: the old server can be retired", _BOLD + _GREEN)
        earliest = verdict.get("earliest") or "unknown until propagation is complete"
        return self._paint(f"  verdict: not yet - missing {', '.join(verdict['missing'])}; earliest {earliest}", _BOLD)

    def _grid(self, doc: Mapping[str, Any]) -> str:
        """Resolvers down, records across, one letter per answer (see STATE_MARK)."""
        columns = [f"{r['name']} {r['type']}" for r in doc["records"]]
        table: dict[str, dict[int, str]] = {}
        for i, rec in enumerate(doc["records"]):
            for a in rec["answers"]:
                mark = STATE_MARK.get(a["state"], "E") + ("!" if a.get("stale") else "")
                table.setdefault(a["resolver"], {})[i] = mark
        rows = [[name] + [marks.get(i, "") for i in range(len(columns))] for name, marks in table.items()]
        legend = "N new  O old  ? other  f filtered  t timeout  S servfail  R refused  X nxdomain  D nodata  M malformed  E error  ! stale"
        return tabulate(rows, headers=["resolver"] + columns, tablefmt="plain") + "\n" + self._paint(legend, _DIM)

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and code else text
