"""Running an audit: the request, the processes, the progress line, the stored results.

The questions are CPU-bound on this side (every reply is parsed by dnspython), so a
large audit is split over the machine's cores: each process gets every N-th pending
domain and its share of each server's limits (``rate`` and ``concurrency`` divided by
the number of processes, so that a server sees the limits it was promised, whatever
the machine), classifies each domain as it completes and hands the result back. Only
this process writes the state, in batches, so an interruption loses at most the last
fraction of a second of results; the next run asks only the domains without one.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence, TextIO

import dns.exception
import dns.resolver

from cutover.audit.classify import STATUSES, DomainResult, Observation, classify
from cutover.audit.domains import Domain, DomainList
from cutover.audit.lookup import Limits, audit_many, target
from cutover.audit.store import AuditStore, Row
from cutover.errors import ProviderError, UsageError
from cutover.observe import engine
from cutover.resolvers import Resolver, resolve_spec

#: From this many pending domains on, the audit uses every core.
PARALLEL_FROM = 2_000
#: Domains observed at once by one process (each holds a few questions in flight).
WINDOW = 400
#: Results are written at least this often (seconds), and in batches of at most BATCH.
FLUSH_EVERY = 0.5
BATCH = 500
#: Without a terminal, a progress line this often (seconds).
PROGRESS_EVERY = 15.0


@dataclass(frozen=True)
class AuditRequest:
    """Everything one audit needs, checked before anything is asked."""

    domains: DomainList
    old: frozenset[str]
    new: frozenset[str]
    names: tuple[str, ...]
    resolvers: tuple[Resolver, ...]
    limits: Limits = Limits()
    fresh: bool = False
    recheck: frozenset[str] = frozenset()
    processes: int | None = None

    @property
    def params(self) -> dict[str, Any]:
        """What decides a status: the run's key in the state."""
        return {"old": sorted(self.old), "new": sorted(self.new), "names": list(self.names)}


@dataclass(frozen=True)
class AuditReport:
    """The audit's outcome: every domain of the input in file order, with its result."""

    request: AuditRequest
    results: tuple[tuple[Domain, DomainResult, float], ...]  # (domain, result, when it was found)
    from_state: int
    audited: int
    questions: int
    elapsed: float
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def all_moved(self) -> bool:
        return all(r.status == "moved" for _, r, _ in self.results)


def resolvers_from(spec: str | None) -> tuple[Resolver, ...]:
    """``--resolvers``: a list, a file, ``public``; without it the system's own resolvers
    (``/etc/resolv.conf``), since customers' domains are looked up as anyone would."""
    if spec:
        try:
            return tuple(resolve_spec(spec))
        except ValueError as exc:
            raise UsageError(f"--resolvers: {exc}") from None
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException as exc:
        raise UsageError(f"no --resolvers given and the system's resolvers cannot be read ({exc})") from None
    found = tuple(Resolver(str(a), int(system.port), name=f"system {a}") for a in system.nameservers)
    if not found:
        raise UsageError("no --resolvers given and the system names no resolver (/etc/resolv.conf)")
    return found


def run(request: AuditRequest, store: AuditStore, meter: "Meter | None" = None) -> AuditReport:
    """Audit the domains without a stored result, then report on all of them."""
    started = time.monotonic()
    if request.fresh:
        store.forget()
    elif request.recheck:
        store.forget(request.recheck)
    done = store.done()
    pending = [d.name for d in request.domains.domains if d.name not in done]
    meter = meter or Meter(None)
    meter.start(len(request.domains.domains), len(request.domains.domains) - len(pending))
    questions = 0
    if pending:
        resolvers = preflight(request.resolvers, request.limits, meter.warn)
        request = replace(request, resolvers=resolvers)
        processes = request.processes or ((os.cpu_count() or 1) if len(pending) >= PARALLEL_FROM else 1)
        processes = max(1, min(processes, math.ceil(len(pending) / 50)))
        if processes == 1:
            questions = _in_process(request, pending, store, meter)
        else:
            questions = _in_processes(request, pending, store, meter, processes)
    meter.finish()
    stored = store.results()
    results = []
    counts = dict.fromkeys(STATUSES, 0)
    for domain in request.domains.domains:
        doc = stored.get(domain.name)
        if doc is None:  # pragma: no cover - every pending domain was stored above
            continue
        result = DomainResult.from_dict(doc)
        counts[result.status] = counts.get(result.status, 0) + 1
        results.append((domain, result, float(doc.get("audited", 0.0))))
    return AuditReport(request, tuple(results), len(request.domains.domains) - len(pending), len(pending), questions,
                       time.monotonic() - started, counts)


def preflight(resolvers: Sequence[Resolver], limits: Limits, warn: Callable[[str], None]) -> tuple[Resolver, ...]:
    """The resolvers that answer at all (any answer, even REFUSED for the root); exit 3
    when none does, rather than calling every domain unreachable."""
    answers = asyncio.run(engine.query_round([target(".", "NS")], list(resolvers), timeout=limits.timeout,
                                             retries=limits.retries))
    alive = tuple(a.resolver for a in answers if a.state not in ("timeout", "error"))
    for a in answers:
        if a.resolver not in alive:
            warn(f"resolver {a.resolver.endpoint} does not answer ({a.detail or a.state}); not used")
    if not alive:
        raise ProviderError("no resolver answers (" + ", ".join(r.endpoint for r in resolvers) + "): nothing was "
                            "audited; check --resolvers and the network")
    return alive


@dataclass(frozen=True)
class Job:
    """What a worker process needs (not the whole input: every process gets its share)."""

    resolvers: tuple[Resolver, ...]
    names: tuple[str, ...]
    old: frozenset[str]
    new: frozenset[str]
    limits: Limits


def _result_row(observation: Observation, old: frozenset[str], new: frozenset[str]) -> Row:
    result = classify(observation, old, new)
    return result.domain, result.status, json.dumps(result.as_dict(), separators=(",", ":"))


def _in_process(request: AuditRequest, pending: Sequence[str], store: AuditStore, meter: "Meter") -> int:
    buffer: list[Row] = []
    last = time.monotonic()

    def flush() -> None:
        nonlocal last
        store.save(buffer)
        meter.update(buffer)
        buffer.clear()
        last = time.monotonic()

    def emit(observation: Observation) -> None:
        buffer.append(_result_row(observation, request.old, request.new))
        if len(buffer) >= BATCH or time.monotonic() - last >= FLUSH_EVERY:
            flush()

    try:
        return asyncio.run(audit_many(pending, request.resolvers, request.names, request.limits, emit, WINDOW))
    finally:
        flush()  # what was found before an interruption is kept


def _shared_limits(limits: Limits, processes: int) -> Limits:
    """Each process's share: together they keep every server's limits."""
    return replace(limits, rate=limits.rate / processes if limits.rate > 0 else 0,
                   concurrency=max(1, limits.concurrency // processes), total=max(8, limits.total // processes))


def _worker(index: int, domains: list[str], job: Job, out: Any) -> None:
    """One process's share of the audit; results go back in batches through ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    buffer: list[Row] = []
    last = time.monotonic()

    def emit(observation: Observation) -> None:
        nonlocal last
        buffer.append(_result_row(observation, job.old, job.new))
        if len(buffer) >= BATCH or time.monotonic() - last >= FLUSH_EVERY:
            out.put(("results", index, list(buffer)))
            buffer.clear()
            last = time.monotonic()

    try:
        sent = asyncio.run(audit_many(domains, job.resolvers, job.names, job.limits, emit, WINDOW))
        if buffer:
            out.put(("results", index, list(buffer)))
        out.put(("done", index, sent))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which explains it
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))


def _in_processes(request: AuditRequest, pending: Sequence[str], store: AuditStore, meter: "Meter",
                  processes: int) -> int:
    context = multiprocessing.get_context("spawn")  # the caller may run threads
    out = context.Queue()
    job = Job(request.resolvers, request.names, request.old, request.new, _shared_limits(request.limits, processes))
    workers = [context.Process(target=_worker, args=(i, list(pending[i::processes]), job, out), daemon=True)
               for i in range(processes)]
    for w in workers:
        w.start()
    finished: set[int] = set()
    sent = 0
    try:
        while len(finished) < len(workers):
            try:
                kind, index, payload = out.get(timeout=0.5)
            except queue.Empty:
                for i, w in enumerate(workers):
                    if i not in finished and not w.is_alive() and w.exitcode:
                        raise ProviderError(f"an audit process ended unexpectedly (exit code {w.exitcode}); "
                                            "the results so far are kept: run the audit again to go on") from None
                continue
            if kind == "results":
                store.save(payload)
                meter.update(payload)
            elif kind == "done":
                finished.add(index)
                sent += int(payload)
            else:
                raise ProviderError(f"an audit process failed: {payload}; the results so far are kept")
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(5)
        out.close()
    return sent


class Meter:
    """Progress on stderr: one line redrawn on a terminal, a line every PROGRESS_EVERY
    seconds otherwise (a log), nothing when ``stream`` is None."""

    def __init__(self, stream: TextIO | None, warn: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.terminal = bool(stream is not None and stream.isatty())
        self.clock = clock
        self._warn = warn
        self.total = self.done = self.skipped = 0
        self.counts = dict.fromkeys(STATUSES, 0)
        self.started = self.shown = clock()

    def warn(self, message: str) -> None:
        if self._warn is not None:
            self._warn(message)

    def start(self, total: int, skipped: int) -> None:
        self.total, self.skipped, self.done = total, skipped, 0
        self.started = self.shown = self.clock()
        if self.stream is not None and skipped:
            self._write(f"audit: {skipped:,} of {total:,} domains have a result from an earlier run "
                        "(--fresh asks them again)", final=True)

    def update(self, rows: Sequence[Row]) -> None:
        for _, status, _ in rows:
            self.counts[status] = self.counts.get(status, 0) + 1
        self.done += len(rows)
        now = self.clock()
        if self.stream is not None and (self.terminal or now - self.shown >= PROGRESS_EVERY):
            self.shown = now
            self._write(self.line(now), final=not self.terminal)

    def line(self, now: float) -> str:
        pending = self.total - self.skipped
        elapsed = max(1e-6, now - self.started)
        rate = self.done / elapsed
        left = f", about {_duration((pending - self.done) / rate)} left" if rate > 0 and self.done < pending else ""
        share = f"{self.done * 100 / pending:.0f}%" if pending else "100%"
        counts = ", ".join(f"{s} {n:,}" for s, n in self.counts.items() if n)
        return f"audit: {self.done:,}/{pending:,} domains ({share}), {rate:,.0f}/s{left}" + (f"; {counts}" if counts else "")

    def finish(self) -> None:
        if self.stream is not None and self.terminal and self.done:
            self._write(self.line(self.clock()), final=True)

    def _write(self, text: str, final: bool) -> None:
        assert self.stream is not None
        if self.terminal:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
