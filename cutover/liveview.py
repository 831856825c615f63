"""How a watch round looks to a person: one line per round, or a live panel on a terminal.

Both read the round's JSON document (``watch.round_document``), not the internal
objects, so what a person sees is exactly what ``--format json`` would have said.
Anywhere but a terminal each round is one line, so logs stay greppable.

On a terminal the panel is redrawn in place with plain ANSI escapes. Redrawing in place
only works if the program knows how many screen rows the last frame took, so the panel is
laid out for the terminal's size, read at every draw: no line is wider than the terminal
less one column (a line never wraps, so a line is a row), and the frame is never taller
than the screen less one row (its first row can always be reached again). Columns that do
not fit are narrowed or dropped, long names and reasons end in an ellipsis, and tall
tables say how many rows they hide. A terminal made narrower may have rewrapped the old
frame, so its start is unknowable: the screen is cleared instead.

Measuring and fitting text in terminal cells is ``cutover.terminal``'s. Plain ANSI
rather than a terminal library: the layout (which column gives way first,
which reason is folded) is this module's own decision anyway, and cursor-up, carriage
return and erase-in-line/-display are the only escapes needed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence, TextIO

from cutover import geography as geo
from cutover.terminal import Block, Column, cells, clip, ellipsis_for, fit_height, fold, redraw, table, terminal_size
from cutover.observe.types import RecordSummary
from cutover.times import duration, iso, parse_iso, percent

BAR_WIDTH = 24
COMPACT_BELOW = 100  # usable columns under which the panel uses short headers and labels
TICK = 1.0  # seconds between countdown redraws
SLICE = 0.25  # how often a pause looks for a resize
STOP_HINT = "Ctrl-C stops; the journal keeps every round"
STATE_MARK = {
    "new": "N", "old": "O", "other": "?", "filtered": "f", "timeout": "t", "servfail": "S",
    "refused": "R", "nxdomain": "X", "nodata": "D", "malformed": "M", "error": "E",
}
LEGEND = ("N new  O old  ? other  f filtered  t timeout  S servfail  R refused  X nxdomain  D nodata  "
          "M malformed  E error  ! stale")
CONDITION_LABEL = {"propagation": "propagation", "quorum": "quorum", "authoritative": "authoritative servers",
                   "left_behind": "left behind", "ttl": "old data", "parallel_period": "parallel period"}
COMPACT_LABEL = dict(CONDITION_LABEL, authoritative="authoritative")
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
    probes = geo.brief(doc)
    if probes:
        parts.append(probes)
    old_mail = doc.get("old_mail") or {}
    if old_mail.get("accepting") is False:
        parts.append(f"OLD MX REFUSES MAIL: {old_mail.get('message')}")
    v = doc["verdict"]
    if v["retire"]:
        parts.append("retire: yes")
    else:
        earliest = v.get("earliest") or "unknown"
        parts.append(f"retire: not yet (missing {', '.join(v['missing'])}; earliest {earliest})")
    return " | ".join(parts)


# --------------------------------------------------------------------------- zones and names


def zones_ready(docs: Sequence[Mapping[str, Any]]) -> str:
    """Several zones watched together (a fleet): how many the verdict lets retire."""
    ready = sum(1 for d in docs if d["verdict"]["retire"])
    return f"{ready:,} of {len(docs):,} zones ready to retire"


def relative(name: str, zone: str) -> str:
    """``www.example.com.`` in zone ``example.com.`` is ``www``, the apex ``@``, as a plan writes them."""
    zone = zone.rstrip(".").lower()
    bare = name.rstrip(".")
    if not zone:
        return name
    if bare.lower() == zone:
        return "@"
    return bare[: -len(zone) - 1] if bare.lower().endswith("." + zone) else name


# --------------------------------------------------------------------------- the panel


@dataclass(frozen=True)
class Panel:
    """One zone's round laid out for ``width`` columns."""

    width: int
    color: bool = False
    grid: bool = False
    ellipsis: str = "…"

    @property
    def compact(self) -> bool:
        return self.width < COMPACT_BELOW

    def blocks(self, doc: Mapping[str, Any], now: datetime, earlier: Mapping[str, Any] | None = None) -> list[Block]:
        """The panel; ``earlier`` is the last round that had probe answers, shown (with
        their age) while this one has none: probe results join only some rounds."""
        zone = str(doc.get("zone", ""))
        out = [Block([self._header(doc, zone)]), *self._records(doc, zone), *self._probes(doc, zone, now, earlier),
               Block(self._old_mail(doc)), Block([""]), Block(self._conditions(doc["verdict"], now)),
               Block(self._verdict(doc, now))]
        if self.grid:
            out += [Block([""]), *self._grid(doc, zone)]
        return out

    def _header(self, doc: Mapping[str, Any], zone: str) -> str:
        when = iso(parse_iso(doc["time"])) if doc.get("time") else "?"
        text = f"cutover watch - round {doc['round']} at {when}" + (f" - {zone.rstrip('.')}" if zone else "")
        return clip(self._paint(text, _BOLD), self.width, self.ellipsis)

    def _records(self, doc: Mapping[str, Any], zone: str) -> list[Block]:
        """The counts table; its bar gets what the other columns leave, up to ``BAR_WIDTH``."""
        threshold = doc["verdict"].get("threshold") or 1.0
        records = doc["records"]
        columns = self._count_columns(records, zone)
        room = self.width - 2 - sum(c.natural + 2 for c in columns)
        bar_header = f"toward {percent(threshold)}"
        inner = min(BAR_WIDTH, room - 2)
        if inner >= 6 and room >= cells(bar_header):
            columns.insert(-1, Column(bar_header, [self._bar(r, threshold, inner) for r in records]))
        order = ("filtered", "filt", "other", "oth")  # what gives way when even short names do not fit
        drop = sorted((i for i, c in enumerate(columns) if c.header in order), key=lambda i: order.index(columns[i].header))
        lines, _ = table(columns, self.width, drop=drop, ellipsis=self.ellipsis)
        out = [Block(lines[:1]), Block(lines[1:], elastic="records")]
        if not all(r.get("resolvers_asked", True) for r in records):
            note = "- : asked only of the authoritative servers, never of resolvers"
            out.append(Block([self._paint(clip("  " + note, self.width, self.ellipsis), _DIM)]))
        return out

    def _count_columns(self, records: Sequence[Mapping[str, Any]], zone: str) -> list[Column]:
        short = self.compact

        def count(key: str, code: str = "") -> list[str]:
            return [self._paint(str(r["counts"].get(key, 0)), code if r["counts"].get(key, 0) else "")
                    if r.get("resolvers_asked", True) else "-" for r in records]

        shares = [percent(r["share"]) if r.get("resolvers_asked", True) and r.get("answering", 1) else "-" for r in records]
        return [
            Column("record", [relative(r["name"], zone) for r in records], flex=True, min_width=16),
            Column("type", [r["type"] for r in records]),
            Column("new", count("new", _GREEN), right=True),
            Column("old", count("old", _RED), right=True),
            Column("oth" if short else "other", count("other"), right=True),
            Column("err" if short else "error", count("error"), right=True),
            Column("filt" if short else "filtered", count("filtered"), right=True),
            Column("share", shares, right=True),
            Column("auth" if short else "authoritative", [self._authoritative(r) for r in records]),
        ]

    def _probes(self, doc: Mapping[str, Any], zone: str, now: datetime, earlier: Mapping[str, Any] | None) -> list[Block]:
        """Probe answers by country, where the old data still is first, aged to ``now``
        (one line, or one per record), and the probe services' problems as warnings."""
        source = doc if earlier is None or geo.probe_answers(doc) else earlier
        answers, services = geo.aged(source, now), geo.services(doc)
        found, in_flight = geo.geography(answers), sum(s.in_flight for s in services)
        if found.empty and not services:
            return []
        t, one = found.tally, len(found.records) <= 1
        ages = geo.age_words(t.youngest, t.oldest)
        earlier_round = f"from round {source.get('round')}" if source is not doc else ""
        tail = [", ".join(x for x in (f"{ages} old" if ages else "", earlier_round) if x), f"{in_flight} in flight" if in_flight else ""]
        head = (f"{t.new}/{t.answering} new" + (f" err {t.error}" if t.error else "")) if t.asked else "no answers yet"
        lines = [self._line("  probes ", [head, *(self._places(found) if one else [])], [x for x in tail if x])]
        per_record = [] if one else [self._line(f"    {relative(r.rsplit(' ', 1)[0], zone)} {r.rsplit(' ', 1)[-1]}  ",
                                                [geo.tally_words(g.tally), *self._places(g)], [])
                                     for r, g in ((r, geo.geography(answers, r)) for r in found.records)]
        problems = [p for s in services for p in s.problems]
        warn = [f"  ! {p}" for p in problems[:2]] + ([f"  ! {len(problems) - 2} more probe service problems "
                                                      "(cutover status lists them)"] if len(problems) > 2 else [])
        warn = [self._paint(clip(w, self.width, self.ellipsis), _YELLOW) for w in warn]
        return [Block(lines), Block(per_record, elastic="probe records"), Block(warn)]

    def _old_mail(self, doc: Mapping[str, Any]) -> list[str]:
        """The parallel period's check of the old MX: a quiet line while it accepts mail,
        a loud one when it stopped (mail caches still send there would bounce)."""
        old = doc.get("old_mail")
        if not isinstance(old, Mapping) or old.get("accepting") is None:
            return []
        if old["accepting"]:
            return [self._paint(clip(f"  old MX {', '.join(old.get('hosts') or [])} still accepts mail "
                                     f"(checked {old.get('checked')})", self.width, self.ellipsis), _DIM)]
        return [self._paint(clip(f"  !! {old.get('message')}", self.width, self.ellipsis), _BOLD + _RED)]

    @staticmethod
    def _places(found: geo.Geography) -> list[str]:
        return [f"{c.code} {geo.tally_words(c.tally)}" for c in geo.behind_first(found.countries)]

    def _line(self, first: str, parts: Sequence[str], tail: Sequence[str]) -> str:
        """``first`` and the parts as far as they fit with ``tail[0]`` (then how many did
        not), then ``tail[0]`` and the rest of the tail as far as it fits. The first place
        still answering old data is always named: on a narrow terminal it is what matters."""
        sep = " · " if self.ellipsis == "…" else " | "
        keep = 2 if len(parts) > 1 and re.search(r" (old|other) ", parts[1] + " ") else 1
        end, line = sep + tail[0] if tail else "", first + sep.join(parts[:keep])
        for i, part in enumerate(parts[keep:], keep):
            more = f"{sep}+{len(parts) - i} more"
            if cells(line + sep + part + end) + (cells(more) if i < len(parts) - 1 else 0) > self.width:
                line += more if cells(line + more) <= self.width else sep + self.ellipsis
                break
            line += sep + part
        line += end
        for extra in tail[1:]:
            line += sep + extra if cells(line + sep + extra) <= self.width else ""
        return clip(line, self.width, self.ellipsis)

    def _bar(self, rec: Mapping[str, Any], threshold: float, inner: int) -> str:
        if not rec.get("resolvers_asked", True):  # asked only of the authoritative servers
            return self._paint(clip("authoritative only" if inner >= 18 else "auth only", inner + 2, ""), _DIM)
        progress = 1.0 if threshold <= 0 else min(1.0, (rec["share"] or 0.0) / threshold)
        filled = round(progress * inner)
        return "[" + self._paint("#" * filled + "." * (inner - filled), _GREEN if progress >= 1.0 else _YELLOW) + "]"

    def _authoritative(self, rec: Mapping[str, Any]) -> str:
        own = rec.get("authoritative", {})
        answers = own.get("answers", [])
        if own.get("all_new"):
            return self._paint("all new", _GREEN)
        if not answers:
            return "-"
        new = sum(1 for a in answers if a.get("state") == "new")
        return self._paint(f"{new}/{len(answers)} new", _YELLOW)

    def _conditions(self, verdict: Mapping[str, Any], now: datetime) -> list[str]:
        labels = COMPACT_LABEL if self.compact else CONDITION_LABEL
        conds = verdict.get("conditions", [])
        pad = max([cells(labels.get(c["name"], c["name"])) for c in conds] or [0])
        lines: list[str] = []
        for cond in conds:
            label = labels.get(cond["name"], cond["name"]).ljust(pad)
            mark = self._paint("ok  ", _GREEN) if cond["met"] else self._paint("wait", _YELLOW)
            first, rest = f"  {mark} {label} ", " " * (8 + pad)
            lines += fold(self._reason(cond, now), self.width, first, rest, 1 if cond["met"] else 2, self.ellipsis)
        for note in verdict.get("notes", []):
            lines += fold(str(note), self.width, "  note: ", " " * 8, 2, self.ellipsis)
        return lines

    def _reason(self, cond: Mapping[str, Any], now: datetime) -> str:
        """A dated condition counts down live rather than repeat the round's "in ..." wording."""
        if cond["met"] or not cond.get("at"):
            return str(cond["reason"])
        left = (parse_iso(cond["at"]) - now).total_seconds()
        return f"holds at {cond['at']} ({duration(left)} left)" if left > 0 else f"holds at {cond['at']} (due now)"

    def _verdict(self, doc: Mapping[str, Any], now: datetime) -> list[str]:
        """The line an operator acts on, naming what is switched off (``verdict.retiring``)."""
        verdict = doc["verdict"]
        what = ", ".join(verdict.get("retiring") or []) or "the old server"
        if verdict["retire"]:
            text, code = f"{what} can be switched off", _BOLD + _GREEN
        else:
            labels = COMPACT_LABEL if self.compact else CONDITION_LABEL
            missing = ", ".join(labels.get(m, m) for m in verdict["missing"])
            earliest = verdict.get("earliest")
            when = f"{earliest} ({duration((parse_iso(earliest) - now).total_seconds())} left)" if earliest else "not known yet"
            text, code = f"keep {what} running - waiting for {missing}; earliest {when}", _BOLD
        return [self._paint(line, code) for line in fold(text, self.width, "  verdict: ", " " * 11, 2, self.ellipsis)]

    def _grid(self, doc: Mapping[str, Any], zone: str) -> list[Block]:
        """Resolvers down, records across, one letter per answer (see ``STATE_MARK``)."""
        records = [r for r in doc["records"] if r.get("resolvers_asked", True)]
        marks: dict[tuple[str, str, int], dict[int, str]] = {}
        for i, rec in enumerate(records):
            seen: dict[tuple[str, str], int] = {}  # probes without an id may share a label: the n-th is a row
            for a in rec["answers"]:
                n = seen[geo.row_key(a)] = seen.get(geo.row_key(a), 0) + 1
                marks.setdefault((*geo.row_key(a), n), {})[i] = STATE_MARK.get(a["state"], "E") + ("!" if a.get("stale") else "")
        keys = list(marks)
        columns = [Column("resolver", geo.numbered([k[0] for k in keys]), flex=True, min_width=16)]
        columns += [Column(clip(f"{relative(r['name'], zone)} {r['type']}", 12, self.ellipsis),
                           [marks[k].get(i, "") for k in keys]) for i, r in enumerate(records)]
        lines, dropped = table(columns, self.width, drop=range(len(columns) - 1, 0, -1), ellipsis=self.ellipsis)
        legend = fold(LEGEND, self.width, "  ", "  ", 3, self.ellipsis)
        if dropped:
            legend.append(clip(f"  {dropped} more record(s) not shown (a wider terminal shows them)", self.width, self.ellipsis))
        return [Block(lines[:1]), Block(lines[1:], elastic="resolvers"), Block([self._paint(x, _DIM) for x in legend])]

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and code else text


class LiveView:
    """The live panel. ``update(doc)`` per round, ``sleep`` between rounds (it keeps the
    countdown going), ``close()`` at the end.

    On a non-terminal stream it degrades to ``render_round_line``, so callers need not
    check ``isatty`` themselves. ``interval`` (seconds between rounds) drives the
    countdown; ``None`` when no round follows (``--once``).
    """

    def __init__(self, stream: TextIO | None = None, *, grid: bool = False, color: bool | None = None,
                 interval: float | None = None, size: Callable[[], tuple[int, int]] | None = None,
                 pause: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.grid = grid
        self.color = self.tty and not os.environ.get("NO_COLOR") if color is None else color
        self.interval = interval
        self.ellipsis = ellipsis_for(self.stream)
        self._size = size or (lambda: terminal_size(self.stream))
        self._pause, self._clock = pause, clock
        self._latest: dict[str, Mapping[str, Any]] = {}
        self._probed: dict[str, Mapping[str, Any]] = {}  # per zone, the last round with probe answers
        self._widths: list[int] = []  # the frame on screen: one visible width per line
        self._ending = ""
        self._resized = False
        self._watching = False
        self._old_handler: Any = None

    def update(self, doc: Mapping[str, Any], now: datetime | None = None) -> None:
        """Show one round. Several zones watched together each keep their own panel."""
        if not self.tty:
            self.stream.write(render_round_line(doc) + "\n")
            self.stream.flush()
            return
        self._latest[str(doc.get("zone", ""))] = doc
        if geo.probe_answers(doc):
            self._probed[str(doc.get("zone", ""))] = doc
        self._draw(now)

    def tick(self, now: datetime | None = None) -> None:
        """Draw the last rounds again: the countdown moves, the terminal may have a new size."""
        if self.tty and self._widths:
            self._draw(now)

    def sleep(self, seconds: float) -> None:
        """The pause between rounds (``monitor.rounds``' ``sleep``): the countdown is redrawn
        every second, and a resize is redrawn within a quarter of one."""
        if not (self.tty and self._widths):
            self._pause(seconds)
            return
        left, since = seconds, 0.0
        while left > 1e-9:
            step = min(SLICE, left)
            self._pause(step)
            left, since = left - step, since + step
            if self._resized or since >= TICK - 1e-9:
                self.tick()
                since = 0.0

    def close(self, ending: str = "") -> None:
        """Leave the last panel on screen; the next output starts below it. ``ending``
        replaces the countdown when nothing else was written since the last round."""
        if ending and self.tty and self._widths:
            self._ending = ending
            self._draw()
        self._widths = []
        self.stream.flush()
        if self._watching:
            signal.signal(signal.SIGWINCH, signal.SIG_DFL if self._old_handler is None else self._old_handler)
            self._watching = False

    def frame(self, now: datetime, columns: int, rows: int) -> list[str]:
        """Every zone's panel and the footer, for a terminal of this size."""
        width, height = max(1, columns - 1), max(1, rows - 1)
        panel = Panel(width, color=self.color, grid=self.grid, ellipsis=self.ellipsis)
        blocks: list[Block] = []
        for i, (zone, doc) in enumerate(self._latest.items()):
            blocks += ([Block([""])] if i else []) + panel.blocks(doc, now, self._probed.get(zone))
        footer = [self._paint_dim(line) for line in self._footer(now, width)]
        if not footer:
            lines = fit_height(blocks, height, self.ellipsis)
        elif height <= len(footer) + 1:
            lines = footer[:height]
        else:
            lines = fit_height(blocks, height - len(footer) - 1, self.ellipsis) + [""] + footer
        return [clip(line, width, self.ellipsis) for line in lines]  # whatever was missed above

    def _footer(self, now: datetime, width: int) -> list[str]:
        """When the next round starts and how to stop, or why no round follows."""
        docs = list(self._latest.values())
        tally = [zones_ready(docs)] if len(docs) > 1 else []
        if self._ending:
            parts = [*tally, self._ending]
        elif docs and all(d["verdict"]["retire"] for d in docs):
            parts = ["the verdict is reached: no more rounds"]
        elif self.interval is None:  # no round follows (--once)
            return []
        else:
            parts = [*tally, self._countdown(docs, now), STOP_HINT]
        joined = " - ".join(parts)
        if cells(joined) <= width:
            return [joined]
        return [clip(p, width, self.ellipsis) for p in parts]

    def _countdown(self, docs: Sequence[Mapping[str, Any]], now: datetime) -> str:
        started = max(parse_iso(d["time"]) for d in docs)
        left = started.timestamp() + float(self.interval or 0) - now.timestamp()
        if left <= 0:
            return f"round {max(int(d['round']) for d in docs) + 1} under way"
        return f"next round in {duration(math.ceil(left))}"

    def _draw(self, now: datetime | None = None) -> None:
        self._watch_resizes()
        columns, rows = self._size()
        lines = self.frame(now or datetime.fromtimestamp(self._clock(), timezone.utc), columns, rows)
        self._resized = False
        self.stream.write(redraw(self._widths, columns, lines))
        self.stream.flush()
        self._widths = [cells(line) for line in lines]

    def _watch_resizes(self) -> None:
        """Note a resize (SIGWINCH) so a pause redraws at once; only the main thread may."""
        if self._watching or not hasattr(signal, "SIGWINCH") or threading.current_thread() is not threading.main_thread():
            return
        self._old_handler = signal.signal(signal.SIGWINCH, self._on_resize)
        self._watching = True

    def _on_resize(self, signum: int, frame: Any) -> None:
        self._resized = True

    def _paint_dim(self, text: str) -> str:
        return f"{_DIM}{text}{_RESET}" if self.color else text
