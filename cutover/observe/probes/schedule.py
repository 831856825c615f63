"""Probe measurements in the background of a watch: started on schedule, polled at the
services' pace, their latest answers handed to each round.

A round must never wait for a probe network (a measurement takes seconds to minutes,
and a service may be down), so measurements run in a thread of their own: each entry
starts one measurement per record every ``every``; the measurements in flight are polled
concurrently, each as soon as its service allows (``ProbeClient.ready_at``), so results
arrive within a poll interval of the service finishing them. Each round takes a
``snapshot``: the latest finished measurement of every record, whose answers then
count like any resolver's, each with the time its measurement began (its age is shown).
A newer measurement replaces the older; results older than ``EXPIRY_ROUNDS`` schedules
and the service's measurement timeout are dropped (and said), so a service that went
down stops holding the verdict with evidence from long ago, without ever being taken as
a sign that caches have moved on. Until a record's first result arrives, the round's
verdict waits for it (``awaited``): the probes' caches are unheard until then.

A service failing (down, 4xx, 5xx, a malformed answer, a rate limit) is a *problem* of
its entry in the next snapshot; it never stops the watch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from cutover.observe.probes import PROBE, Progress, ProbeClient, RateLimited
from cutover.observe.probes.services import ProbeEntry
from cutover.observe.types import Answer, Target
from cutover.records import RecordKey, shorten
from cutover.times import iso_precise, parse_iso

#: Polls and creations in flight at once, over every entry (threads, each mostly waiting on HTTP).
WORKERS = 8
#: How often the scheduler looks for work: the granularity of "as soon as allowed".
TICK = 0.05
#: After a failed creation, the next attempt (unless the service said when).
RETRY_FAILED = 60.0
#: After a failed poll, the next one (a GET may be repeated safely).
RETRY_POLL = 2.0
#: Finished results older than this many ``every`` are dropped.
EXPIRY_ROUNDS = 2.0
#: Problems kept per entry between snapshots.
PROBLEMS_KEPT = 5

Slot = tuple[int, RecordKey]  # (entry index, record)


@dataclass
class _Flight:
    """A measurement in flight."""

    target: Target
    id: str
    started: float  # monotonic
    started_at: float  # wall clock
    last: Progress | None = None
    polling: bool = False
    hold_until: float = 0.0  # monotonic: after a failed poll


@dataclass(frozen=True)
class Measured:
    """The latest finished measurement of one record by one entry."""

    answers: tuple[Answer, ...]
    finished: float  # wall clock: when its result arrived
    started: float | None = None
    id: str = ""


@dataclass
class _EntryState:
    entry: ProbeEntry
    client: ProbeClient
    targets: tuple[Target, ...]
    next_start: dict[RecordKey, float] = field(default_factory=dict)  # wall clock
    creating: set[RecordKey] = field(default_factory=set)
    problems: deque[str] = field(default_factory=lambda: deque(maxlen=PROBLEMS_KEPT))
    last_started: float | None = None
    last_finished: float | None = None


class ProbeRunner:
    """Every probe entry of one watched zone, measured in the background.

    ``previous`` (the zone's last stored round) carries the latest results and start
    times over a restart, so that a ``watch --once`` run from cron every few minutes
    spends each service's budget at the plan's ``every``, not at cron's pace.
    """

    def __init__(self, entries: Sequence[ProbeEntry], targets: Sequence[Target], *,
                 previous: Mapping[str, Any] | None = None,
                 clients: Sequence[ProbeClient] | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.monotonic = monotonic
        made = clients if clients is not None else [e.module.client(e.settings) for e in entries]
        self._entries = [_EntryState(e, c, e.measurable(targets)) for e, c in zip(entries, made)]
        self._board: dict[Slot, Measured] = {}
        self._flights: dict[Slot, _Flight] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._run, name="probes", daemon=True)
        if previous:
            self._restore(previous)

    # -- life ---------------------------------------------------------------------------

    def start(self) -> "ProbeRunner":
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop scheduling and polling (measurements already started finish at the service)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for state in self._entries:
            state.client.close()

    def wait_settled(self, timeout: float) -> bool:
        """Block until every record of every entry has a result or its measurement failed
        to start (``watch --once``: one round, which should include the probes)."""
        deadline = self.monotonic() + timeout
        with self._changed:
            while not self._settled():
                left = deadline - self.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def _settled(self) -> bool:
        for i, state in enumerate(self._entries):
            for t in state.targets:
                slot = (i, t.key)
                if slot in self._flights or t.key in state.creating:
                    return False
                if slot not in self._board and t.key not in state.next_start:
                    return False  # not even started yet
        return True

    def awaited(self) -> list[str]:
        """The records whose first result (or the first since the last expired) has not
        arrived while a measurement of them is on its way or due: the round's verdict waits
        for them. A service that refused to start one (down, over its limit) is reported,
        not waited for, so an outage cannot hold the verdict for ever."""
        waiting = []
        with self._lock:
            for i, state in enumerate(self._entries):
                for t in state.targets:
                    slot = (i, t.key)
                    if slot in self._board:
                        continue
                    if slot in self._flights or t.key in state.creating or t.key not in state.next_start:
                        waiting.append(f"{state.entry.service}: {t.name} {t.type}")
        return waiting

    def _expiry(self, state: _EntryState) -> float:
        """How long a result is carried over: two schedules and the service's own
        measurement timeout (a measurement may take that long to replace it)."""
        return EXPIRY_ROUNDS * state.entry.settings.every + state.entry.module.MEASUREMENT_TIMEOUT

    # -- what a round sees ---------------------------------------------------------------

    def snapshot(self) -> tuple[tuple[Answer, ...], list[dict[str, Any]]]:
        """The latest answers of every entry and record, and each entry's state for the
        round's JSON (``probes``); problems are reported once, in the round after them."""
        now = self.clock()
        answers: list[Answer] = []
        report = []
        with self._lock:
            for i, state in enumerate(self._entries):
                expiry = self._expiry(state)
                mine = 0
                records = []
                for t in state.targets:
                    got = self._board.get((i, t.key))
                    if got is not None and now - got.finished > expiry:
                        state.problems.append(f"{state.entry.service}: the results for {t.name} {t.type} from "
                                              f"{iso_precise(got.finished)} are too old and were dropped")
                        del self._board[(i, t.key)]
                        got = None
                    if got is not None:
                        answers.extend(got.answers)
                        mine += len(got.answers)
                    records.append(self._record_state(i, t, got))
                report.append(self._entry_state(state, mine, records))
                state.problems.clear()
        return tuple(answers), report

    def _record_state(self, i: int, t: Target, got: Measured | None) -> dict[str, Any]:
        flight = self._flights.get((i, t.key))
        return {
            "name": t.name, "type": t.type,
            "started": iso_precise(flight.started_at if flight else (got.started if got else None)),
            "finished": None if flight or got is None else iso_precise(got.finished),
            "id": flight.id if flight else (got.id if got else ""),
            "state": "in-progress" if flight else ("finished" if got else "waiting"),
            "answers": 0 if got is None else len(got.answers),
        }

    def _entry_state(self, state: _EntryState, answers: int, records: list[dict[str, Any]]) -> dict[str, Any]:
        settings = state.entry.settings
        return {
            "service": state.entry.service,
            "entry": state.entry.where,
            "url": settings.url,
            "every": settings.every,
            "in_flight": sum(1 for r in records if r["state"] == "in-progress"),
            "answers": answers,
            "last_started": iso_precise(state.last_started),
            "last_finished": iso_precise(state.last_finished),
            "records": records,
            "problems": list(state.problems),
        }

    # -- the background loop ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                work = self._due()
            for job in work:
                self._pool.submit(job)
            self._stop.wait(TICK)

    def _due(self) -> list[Callable[[], None]]:
        """What to do now: measurements to start, and measurements to read."""
        now, mono = self.clock(), self.monotonic()
        work: list[Callable[[], None]] = []
        for i, state in enumerate(self._entries):
            for t in state.targets:
                slot = (i, t.key)
                flight = self._flights.get(slot)
                if flight is None:
                    if t.key not in state.creating and state.next_start.get(t.key, 0.0) <= now:
                        state.creating.add(t.key)
                        work.append(partial(self._create, i, t))
                elif not flight.polling and mono >= max(flight.hold_until, state.client.ready_at(flight.id)):
                    flight.polling = True
                    work.append(partial(self._poll, slot))
        return work

    def _create(self, i: int, target: Target) -> None:
        state = self._entries[i]
        now = self.clock()
        try:
            measurement_id = state.client.create(target)
        except Exception as exc:  # noqa: BLE001 - a service failing is reported, never fatal
            wait = exc.wait if isinstance(exc, RateLimited) else None
            with self._changed:
                state.creating.discard(target.key)
                state.next_start[target.key] = now + (wait if isinstance(wait, (int, float)) else RETRY_FAILED)
                state.problems.append(_problem(state, f"starting a measurement of {target.name} {target.type}", exc))
                self._changed.notify_all()
            return
        with self._changed:
            state.creating.discard(target.key)
            state.next_start[target.key] = now + state.entry.settings.every
            state.last_started = now
            self._flights[(i, target.key)] = _Flight(target, measurement_id, self.monotonic(), now)
            self._changed.notify_all()

    def _poll(self, slot: Slot) -> None:
        state = self._entries[slot[0]]
        flight = self._flights[slot]
        try:
            progress = state.client.progress(flight.id, flight.target)
            failed = None
        except Exception as exc:  # noqa: BLE001 - reported; the poll is tried again
            progress, failed = None, exc
        with self._changed:
            flight.polling = False
            ended = getattr(failed, "final", False)  # the service says the measurement is over, without results
            if failed is not None:
                flight.hold_until = self.monotonic() + RETRY_POLL
                state.problems.append(_problem(state, f"reading measurement {flight.id}", failed))
            elif progress is not None:
                flight.last = progress
            timed_out = self.monotonic() - flight.started > state.entry.module.MEASUREMENT_TIMEOUT
            if ended:
                del self._flights[slot]
            elif (progress is not None and progress.final) or timed_out:
                self._finish(slot, state, flight, timed_out and not (progress and progress.final))
            self._changed.notify_all()

    def _finish(self, slot: Slot, state: _EntryState, flight: _Flight, timed_out: bool) -> None:
        del self._flights[slot]
        if timed_out:
            state.problems.append(f"{state.entry.service}: measurement {flight.id} of {flight.target.name} "
                                  f"{flight.target.type} did not finish within "
                                  f"{state.entry.module.MEASUREMENT_TIMEOUT:g}s"
                                  + ("; its partial results are used" if flight.last else ""))
            if flight.last is None:
                return
        now = self.clock()
        assert flight.last is not None
        # When the probes asked is somewhere between the measurement's start and now: the
        # start, the earliest, so that an honest cache is never called stale for an answer
        # it gave in time (its age is then the most it can be).
        moment = datetime.fromtimestamp(flight.started_at, timezone.utc)
        answers = tuple(replace(a, measured=moment) for a in flight.last.answers)
        self._board[slot] = Measured(answers, now, flight.started_at, flight.id)
        state.last_finished = now

    # -- carried over from the last stored round ---------------------------------------

    def _restore(self, doc: Mapping[str, Any]) -> None:
        """The last round's probe answers and start times, per entry (matched by service,
        where and url): what a restarted watch already knows and must not pay for again."""
        stored = {(p.get("service"), p.get("entry"), p.get("url")): p for p in doc.get("probes") or ()}
        now = self.clock()
        for i, state in enumerate(self._entries):
            settings = state.entry.settings
            found = stored.get((state.entry.service, state.entry.where, settings.url))
            if not found or found.get("every") != settings.every:
                continue
            for rec in found.get("records") or ():
                key = (str(rec.get("name")), str(rec.get("type")))
                started = _ts(rec.get("started"))
                if started is None or not any(t.key == key for t in state.targets):
                    continue
                state.next_start[key] = started + settings.every
                target = next(t for t in state.targets if t.key == key)
                if rec.get("state") == "in-progress" and rec.get("id"):
                    if now - started < state.entry.module.MEASUREMENT_TIMEOUT:  # read on where it was left
                        self._flights[(i, key)] = _Flight(target, str(rec["id"]), self.monotonic() - (now - started), started)
                finished = _ts(rec.get("finished"))
                if finished is None:
                    continue
                if now - finished < self._expiry(state):  # as long as a running watch keeps it
                    answers = _stored_answers(doc, key, state.entry.service)
                    self._board[(i, key)] = Measured(answers, finished, started, str(rec.get("id", "")))
                else:
                    state.problems.append(f"{state.entry.service}: the results for {target.name} {target.type} from "
                                          f"{iso_precise(finished)} are too old and were dropped")


def _stored_answers(doc: Mapping[str, Any], key: RecordKey, service: str) -> tuple[Answer, ...]:
    for rec in doc.get("records") or ():
        if (rec.get("name"), rec.get("type")) == key:
            return tuple(Answer.from_dict(a, key) for a in rec.get("answers") or ()
                         if a.get("group") == PROBE and (a.get("vantage") or {}).get("service") == service)
    return ()


def _ts(text: Any) -> float | None:
    return parse_iso(text).timestamp() if isinstance(text, str) and text else None


def _problem(state: _EntryState, doing: str, exc: BaseException) -> str:
    """A failure as one line, never with the entry's secret in it."""
    text = f"{state.entry.service}: {doing}: {shorten(' '.join(str(exc).split()), 300) or type(exc).__name__}"
    for secret in (getattr(state.entry.settings, "token", ""), getattr(state.entry.settings, "key", "")):
        if secret:
            text = text.replace(secret, "***")
    return text
