"""The query engine: ask many servers about many names at once, over UDP, suspiciously.

A round is one question per (record, server) pair, all in flight together up to a
window, so a round costs about the slowest server's time rather than the sum. Watch
rounds (``query_round``, ``run_round``), ``verify`` and audits (``query_pairs``: any
list of pairs, such as each domain's own servers) share this one engine.

The engine is deliberately suspicious: UDP replies from another address, with another
id or for another question are ignored (a spoofed or late stray packet must not decide
a verdict), unparseable or oversized replies make the answer ``malformed``, and the
round has a hard deadline that no silent server can stretch. How queries are sent and
matched is ``cutover.observe.flight``; the usual reply is read by
``cutover.observe.fastpath`` and every other one by dnspython and
``cutover.observe.classify``, to the same answer; this module knows nothing of what the
answers mean. It runs a round's ``Flight`` either in its own epoll loop (the
synchronous API) or in the caller's asyncio loop (``query_round``), and spreads a big
round over processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import multiprocessing
import os
import select
import selectors
import threading
import time
from array import array
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

from cutover.observe.flight import PACED_GROUPS, PER_SERVER, Flight
from cutover.observe.wire import PAYLOAD
from cutover.observe.types import Answer, Target
from cutover.resolvers import Resolver

__all__ = ["PAYLOAD", "PER_SERVER", "CONCURRENCY", "PARALLEL_FROM", "query_round", "query_pairs", "run_round", "round_deadline"]

#: Extra time a round may take beyond its queries' own timeouts (start-up, TCP fallback).
ROUND_SLACK = 0.5
#: Rounds with at least this many queries use every core (``run_round``, ``query_pairs``).
#: One process asks about 60,000 queries a second of a local server here (15-20 us of CPU
#: each); a helper process costs 0.05-0.5 s to start (forkserver, warm or cold) and
#: about 3 us per answer to send back and rebuild, so below this one process is done
#: before a second would pay off. (Against a server on the same two cores a second
#: process gains nothing at any size: the server needs the other core; against remote
#: servers it does. benchmarks/README.md, "5. The query engine".)
PARALLEL_FROM = 100_000
#: Queries in flight at once (and at most ``PER_SERVER`` to one server). They share a few
#: sockets (``flight.MAX_SOCKETS`` at most), so this is not bound by the open-files limit.
#: Pairs are issued target by target, so one resolver sees about this / len(resolvers)
#: at once. Against distant resolvers this window, not the CPU, bounds a round's rate
#: (1,024 in flight / 0.2 s of latency = about 5,000 answers a second).
CONCURRENCY = 1024
#: Deadline allowance per query in a round: room for a busy machine or a slower one, and
#: for the window (an exchange costs about 0.02 ms of CPU here, benchmarks/README.md).
CPU_PER_QUERY = 0.002
#: How late a retransmission or a timeout may be handled: timers are checked in steps
#: this long rather than once per query.
GRAIN = 0.005
#: While TCP retries are running, the synchronous loop looks at them this often.
TCP_POLL = 0.01


def round_deadline(timeout: float, retries: int, queries: int = 0) -> float:
    """Seconds a whole round may take: every attempt's timeout, a little slack, and a CPU
    allowance per query, so that a big round (thousands of names times fifty resolvers)
    is not cut off while healthy queries still wait for a slot. The bound depends only on
    the round's size, never on how resolvers behave: a silent one still cannot stretch it."""
    return timeout * (retries + 1) + ROUND_SLACK + queries * CPU_PER_QUERY


class _Grid(Sequence[tuple[Target, Resolver]]):
    """Every resolver times every target, in (resolver, target) order, without a list of
    half a million tuples."""

    def __init__(self, targets: Sequence[Target], resolvers: Sequence[Resolver]) -> None:
        self.targets, self.resolvers, self.height = targets, resolvers, len(targets)

    def __len__(self) -> int:
        return self.height * len(self.resolvers)

    def __getitem__(self, i):  # Sequence's two overloads; only ints here
        return self.targets[i % self.height], self.resolvers[i // self.height]

    def order(self) -> Iterator[int]:
        """Target by target: each resolver sees about window / len(resolvers) at once."""
        count, width = self.height, len(self.resolvers)
        return (r * count + t for t in range(count) for r in range(width))


# --------------------------------------------------------------------------- the public API


async def query_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    concurrency: int = CONCURRENCY,
) -> list[Answer]:
    """Ask every resolver about every target, concurrently; one answer per pair.

    Runs in the caller's event loop, so several rounds (one per watched zone, an audit's
    lanes) share it. Answers come back in (resolver, target) order. Pairs still
    unanswered at the round's hard deadline are reported as ``timeout``.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    grid = _Grid(targets, resolvers)
    if not len(grid):
        return []
    return await _run_async(grid, grid.order(), resolvers, timeout=timeout, retries=retries, window=concurrency)


def query_pairs(
    pairs: Sequence[tuple[Target, Resolver]],
    *,
    timeout: float,
    retries: int = 1,
    concurrency: int = CONCURRENCY,
    per_server: int = PER_SERVER,
    processes: int | None = None,
) -> list[Answer]:
    """Ask each pair's resolver about its target (any pairs, not a cross product: an audit
    asks each domain's own servers); one answer per pair, in the pairs' order.

    Synchronous. At most ``concurrency`` queries are in flight, at most ``per_server`` to
    one server. From ``PARALLEL_FROM`` pairs on (or with ``processes``) the pairs are
    split into one contiguous share per process, this process taking the first; the
    per-server bound is then shared between them.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    pairs = list(pairs)
    if not pairs:
        return []
    count = 1 if _paced(r for _, r in pairs) else _processes(processes, len(pairs), len(pairs))
    if count == 1:
        return _run_sync(pairs, iter(range(len(pairs))), [r for _, r in pairs], timeout=timeout, retries=retries,
                         window=concurrency, per_server=per_server)
    step = -(-len(pairs) // count)
    chunks = [pairs[i:i + step] for i in range(0, len(pairs), step)]
    share = max(1, per_server // len(chunks))
    first = chunks[0]
    mine, parts = _spread(
        lambda: _run_sync(first, iter(range(len(first))), [r for _, r in first], timeout=timeout, retries=retries,
                          window=concurrency, per_server=share),
        [partial(_pairs_job, chunk, timeout, retries, concurrency, share) for chunk in chunks[1:]])
    return mine + [Answer(r, t.key, *row) for chunk, rows in zip(chunks[1:], parts) for (t, r), row in zip(chunk, rows)]


def run_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    processes: int | None = None,
) -> list[Answer]:
    """A whole round from synchronous code, on every CPU core when it is big.

    From ``PARALLEL_FROM`` queries on (or with ``processes``) the round is split into one
    rectangle per process: contiguous slices of the resolvers when there are enough of
    them, else of the targets. This process asks the first, helper processes the rest.
    Answers come back in the same (resolver, target) order as from ``query_round``; each
    share keeps its own hard deadline.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    total = len(targets) * len(resolvers)
    if not total:
        return []
    count = _processes(processes, total, max(len(resolvers), len(targets)))
    if count > len(resolvers) and _paced(resolvers):
        count = 1  # sliced by target, each process would pace the same server at the full rate
    if count == 1:
        return _grid_round(list(targets), list(resolvers), timeout, retries, CONCURRENCY, PER_SERVER)
    by_resolver = len(resolvers) >= count
    cut = resolvers if by_resolver else targets
    step = -(-len(cut) // count)
    slices = [range(i, min(i + step, len(cut))) for i in range(0, len(cut), step)]
    rects = [((range(len(targets)), s) if by_resolver else (s, range(len(resolvers)))) for s in slices]
    share = PER_SERVER if by_resolver else max(1, PER_SERVER // len(rects))  # a server asked from every process
    def job(ts: range, rs: range) -> tuple[Any, ...]:
        return ("grid", _pack([targets[t] for t in ts]), [resolvers[r] for r in rs], timeout, retries, CONCURRENCY, share)

    ts0, rs0 = rects[0]
    mine, parts = _spread(
        lambda: _grid_round([targets[t] for t in ts0], [resolvers[r] for r in rs0], timeout, retries, CONCURRENCY, share),
        [partial(job, ts, rs) for ts, rs in rects[1:]])
    out: list[Answer | None] = [None] * total
    count_t = len(targets)
    shares: list[list[Any]] = [mine, *parts]
    for (ts, rs), rows in zip(rects, shares):
        it = iter(rows)
        for r in rs:
            for t in ts:
                row = next(it)
                out[r * count_t + t] = row if isinstance(row, Answer) else Answer(resolvers[r], targets[t].key, *row)
    return out  # type: ignore[return-value]  # every rectangle filled its cells


# --------------------------------------------------------------------------- drivers


def _grid_round(targets: list[Target], resolvers: list[Resolver], timeout: float, retries: int,
                window: int, per_server: int) -> list[Answer]:
    grid = _Grid(targets, resolvers)
    return _run_sync(grid, grid.order(), resolvers, timeout=timeout, retries=retries, window=window,
                     per_server=per_server)


def _run_sync(pairs: Sequence[tuple[Target, Resolver]], order: Iterator[int], resolvers: Iterable[Resolver], *,
              timeout: float, retries: int, window: int, per_server: int = PER_SERVER) -> list[Answer]:
    """One flight in this thread, waiting in epoll (or the platform's selector), with the
    cyclic garbage collector paused (``_collector_paused``)."""
    with _collector_paused():
        return _fly(pairs, order, resolvers, timeout=timeout, retries=retries, window=window, per_server=per_server)


def _fly(pairs: Sequence[tuple[Target, Resolver]], order: Iterator[int], resolvers: Iterable[Resolver], *,
         timeout: float, retries: int, window: int, per_server: int) -> list[Answer]:
    now = time.monotonic()
    flight = Flight(pairs, order, resolvers, timeout=timeout, retries=retries,
                    deadline=now + round_deadline(timeout, retries, len(pairs)), window=window, now=now,
                    per_server=per_server)
    poller = _Poller(flight.by_fd)
    try:
        while not flight.finished:
            now = time.monotonic()
            wake = flight.next_wake()
            if now >= wake:
                flight.expire(now)
                continue
            wait = wake - now + GRAIN
            if flight.tcp:
                wait = min(wait, TCP_POLL)
            ready = poller.poll(wait)
            now = time.monotonic()
            for fd in ready:
                flight.readable(fd, now)
            if flight.tcp:
                flight.tcp_done(now)
    finally:
        poller.close()
    return flight.close()


async def _run_async(pairs: Sequence[tuple[Target, Resolver]], order: Iterator[int], resolvers: Iterable[Resolver], *,
                     timeout: float, retries: int, window: int) -> list[Answer]:
    """One flight in the running event loop: readers on its sockets, one timer."""
    loop = asyncio.get_running_loop()
    now = time.monotonic()
    flight = Flight(pairs, order, resolvers, timeout=timeout, retries=retries,
                    deadline=now + round_deadline(timeout, retries, len(pairs)), window=window, now=now)
    done: asyncio.Future[None] = loop.create_future()
    timer: list[Any] = [None, math.inf]  # the handle, and the monotonic time it is set for

    def settle() -> None:
        if flight.finished:
            if not done.done():
                done.set_result(None)
            return
        wake = flight.next_wake() + GRAIN
        if wake < timer[1]:
            if timer[0] is not None:
                timer[0].cancel()
            timer[0] = loop.call_later(max(0.0, wake - time.monotonic()), on_timer)
            timer[1] = wake

    def on_timer() -> None:
        timer[0], timer[1] = None, math.inf
        flight.expire(time.monotonic())
        settle()

    def on_readable(fd: int) -> None:
        flight.readable(fd, time.monotonic())
        settle()

    def on_tcp() -> None:
        flight.tcp_done(time.monotonic())
        settle()

    def wake() -> None:  # from a TCP thread
        if not loop.is_closed():
            loop.call_soon_threadsafe(on_tcp)

    flight.wake = wake
    fds = list(flight.by_fd)
    try:
        for fd in fds:
            loop.add_reader(fd, on_readable, fd)
        settle()
        await done
    finally:
        flight.wake = None
        for fd in fds:
            loop.remove_reader(fd)
        if timer[0] is not None:
            timer[0].cancel()
    return flight.close()


_paused = 0
_paused_lock = threading.Lock()
_was_enabled = False


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection while a synchronous round runs.

    A round allocates about ten tracked objects per query and frees nearly all of them by
    reference counting, so the collector would run every hundred queries or so and, in
    its older generations, walk every answer (and every target) kept so far: a fifth to
    a third of a big round's CPU (benchmarks/README.md, "The engine"). Nothing a round
    allocates forms a cycle; other threads' cycles wait for the end of the round. Rounds
    in several threads at once share the pause; the last one to end restores the
    collector as it found it.
    """
    global _paused, _was_enabled
    with _paused_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()


class _Poller:
    """epoll where there is one (Linux), the platform's selector elsewhere."""

    def __init__(self, fds: Iterable[int]) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()
        for fd in fds:
            if self._epoll is not None:
                self._epoll.register(fd, select.EPOLLIN)
            else:
                assert self._selector is not None
                self._selector.register(fd, selectors.EVENT_READ)

    def poll(self, timeout: float) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(timeout)]
        assert self._selector is not None
        return [key.fd for key, _ in self._selector.select(timeout)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()


# --------------------------------------------------------------------------- processes


def _paced(resolvers: Iterable[Resolver]) -> bool:
    """Does one of these servers have a rate (``flight.PUBLIC_RATE``)? Its pace is kept by
    the one flight that asks it, so its queries must not be split between processes."""
    return any(r.group in PACED_GROUPS for r in resolvers)


def _processes(asked: int | None, queries: int, divisible: int) -> int:
    if asked is None:
        asked = (os.cpu_count() or 1) if queries >= PARALLEL_FROM else 1
    return max(1, min(asked, divisible))


Rows = list[tuple[Any, ...]]


def _spread(mine: Callable[[], list[Answer]], jobs: list[Callable[[], tuple[Any, ...]]]) -> tuple[list[Answer], list[Rows]]:
    """``mine()`` here while helper processes run the ``jobs`` (each a function that builds
    one share's job); this share's answers, and each job's as rows (state, ttl, values,
    detail, elapsed) in its own order.

    Rows, not ``Answer`` objects, cross the process boundary: the caller rebuilds the
    answers around its own resolver and target objects, which costs less than pickling
    them and keeps them identical to the ones it passed in. The helpers are started,
    and their jobs built and sent, from a thread, so this share starts at once.
    """
    # forkserver: a clean, single-threaded server process forks the helpers (the caller
    # may run threads, so no plain fork), with this module already imported in it
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
        futures: list[Future[list[tuple[Any, ...]]]] = []
        failed: list[BaseException] = []

        def submit() -> None:
            try:
                futures.extend(pool.submit(_job, job()) for job in jobs)
            except BaseException as exc:  # noqa: BLE001 - raised again below, in the caller's thread
                failed.append(exc)

        starter = threading.Thread(target=submit, name="cutover-engine-start", daemon=True)
        starter.start()
        try:
            answers = mine()
        finally:
            starter.join()
        if failed:
            raise failed[0]
        return answers, [f.result() for f in futures]


def _pack(targets: Sequence[Target]) -> list[tuple[Any, ...]]:
    """Targets as plain tuples (a third of the pickling cost of the dataclasses)."""
    return [(t.key, t.new, t.old, t.old_ttl, t.old_ttl_source, t.recursive) for t in targets]


def _pairs_job(pairs: Sequence[tuple[Target, Resolver]], timeout: float, retries: int, window: int,
               per_server: int) -> tuple[Any, ...]:
    """A share of ``query_pairs``: its distinct targets and resolvers, and each pair's two indices."""
    targets: dict[int, int] = {}
    resolvers: dict[int, int] = {}
    unique_t: list[Target] = []
    unique_r: list[Resolver] = []
    index_t, index_r = array("I"), array("I")
    for t, r in pairs:
        if id(t) not in targets:
            targets[id(t)] = len(unique_t)
            unique_t.append(t)
        if id(r) not in resolvers:
            resolvers[id(r)] = len(unique_r)
            unique_r.append(r)
        index_t.append(targets[id(t)])
        index_r.append(resolvers[id(r)])
    return ("pairs", _pack(unique_t), unique_r, index_t, index_r, timeout, retries, window, per_server)


def _job(job: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """One share of a round (in a helper process, or here for the first)."""
    if job[0] == "grid":
        _, packed, resolvers, timeout, retries, window, per_server = job
        answers = _grid_round([Target(*t) for t in packed], resolvers, timeout, retries, window, per_server)
    else:
        _, packed, resolvers, index_t, index_r, timeout, retries, window, per_server = job
        targets = [Target(*t) for t in packed]
        pairs = [(targets[t], resolvers[r]) for t, r in zip(index_t, index_r)]
        answers = _run_sync(pairs, iter(range(len(pairs))), resolvers, timeout=timeout, retries=retries,
                            window=window, per_server=per_server)
    return [(a.state, a.ttl, a.values, a.detail, a.elapsed) for a in answers]


def _socket_budget() -> int:
    """How many sockets this process may hold open: the open-files limit, less a reserve.
    (A round holds at most one socket per query in flight, usually far fewer.)"""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return 256
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(8, soft - 128)
