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
import math
import multiprocessing
import os
import select
import selectors
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterable, Iterator, Sequence

from cutover.observe.flight import PAYLOAD, Flight
from cutover.observe.types import Answer, Target
from cutover.resolvers import Resolver

__all__ = ["PAYLOAD", "CONCURRENCY", "PARALLEL_FROM", "query_round", "query_pairs", "run_round", "round_deadline"]

#: Extra time a round may take beyond its queries' own timeouts (start-up, TCP fallback).
ROUND_SLACK = 0.5
#: Rounds with at least this many queries use every core (``run_round``, ``query_pairs``):
#: one process answers about 15,000-25,000 queries a second here, and a helper process
#: costs about 0.1 s to start (forkserver) and its answers' transfer, so below this the
#: second core saves less than it costs (benchmarks/README.md, "The engine").
PARALLEL_FROM = 40_000
#: Queries in flight at once. They share a few sockets (``flight.SOCKETS``), so this is
#: no longer bound by the open-files limit. Pairs are issued target by target, so one
#: resolver sees about this / len(resolvers) at once.
CONCURRENCY = 1024
#: Deadline allowance per query in a round: room for a busy machine or a slower one
#: (an exchange costs 0.04-0.06 ms of CPU here, benchmarks/README.md).
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
        self.targets, self.resolvers, self.count = targets, resolvers, len(targets)

    def __len__(self) -> int:
        return self.count * len(self.resolvers)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        return self.targets[i % self.count], self.resolvers[i // self.count]

    def order(self) -> Iterator[int]:
        """Target by target: each resolver sees about window / len(resolvers) at once."""
        count, width = self.count, len(self.resolvers)
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
    processes: int | None = None,
) -> list[Answer]:
    """Ask each pair's resolver about its target (any pairs, not a cross product: an audit
    asks each domain's own servers); one answer per pair, in the pairs' order.

    Synchronous; from ``PARALLEL_FROM`` pairs on (or with ``processes``) the pairs are
    split into one contiguous share per process, this process taking the first.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    pairs = list(pairs)
    if not pairs:
        return []
    count = _processes(processes, len(pairs), len(pairs))
    if count == 1:
        return _run_sync(pairs, iter(range(len(pairs))), [r for _, r in pairs], timeout=timeout, retries=retries,
                         window=concurrency)
    step = -(-len(pairs) // count)
    chunks = [pairs[i:i + step] for i in range(0, len(pairs), step)]
    jobs = [("pairs", chunk, timeout, retries, concurrency) for chunk in chunks]
    parts = _spread(jobs)
    return [Answer(r, t.key, *row) for chunk, rows in zip(chunks, parts) for (t, r), row in zip(chunk, rows)]


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
    if count == 1:
        return _grid_round(list(targets), list(resolvers), timeout, retries, CONCURRENCY)
    by_resolver = len(resolvers) >= count
    cut = resolvers if by_resolver else targets
    step = -(-len(cut) // count)
    slices = [range(i, min(i + step, len(cut))) for i in range(0, len(cut), step)]
    rects = [((range(len(targets)), s) if by_resolver else (s, range(len(resolvers)))) for s in slices]
    jobs = [("grid", [targets[t] for t in ts], [resolvers[r] for r in rs], timeout, retries, CONCURRENCY)
            for ts, rs in rects]
    parts = _spread(jobs)
    out: list[Answer | None] = [None] * total
    count_t = len(targets)
    for (ts, rs), rows in zip(rects, parts):
        it = iter(rows)
        for r in rs:
            for t in ts:
                out[r * count_t + t] = Answer(resolvers[r], targets[t].key, *next(it))
    return out  # type: ignore[return-value]  # every rectangle filled its cells


# --------------------------------------------------------------------------- drivers


def _grid_round(targets: list[Target], resolvers: list[Resolver], timeout: float, retries: int,
                window: int) -> list[Answer]:
    grid = _Grid(targets, resolvers)
    return _run_sync(grid, grid.order(), resolvers, timeout=timeout, retries=retries, window=window)


def _run_sync(pairs: Sequence[tuple[Target, Resolver]], order: Iterator[int], resolvers: Iterable[Resolver], *,
              timeout: float, retries: int, window: int) -> list[Answer]:
    """One flight in this thread, waiting in epoll (or the platform's selector)."""
    now = time.monotonic()
    flight = Flight(pairs, order, resolvers, timeout=timeout, retries=retries,
                    deadline=now + round_deadline(timeout, retries, len(pairs)), window=window, now=now)
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


def _processes(asked: int | None, queries: int, divisible: int) -> int:
    if asked is None:
        asked = (os.cpu_count() or 1) if queries >= PARALLEL_FROM else 1
    return max(1, min(asked, divisible))


def _spread(jobs: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """The first job here, the others in helper processes, at the same time; each job's
    answers as rows (state, ttl, values, detail, elapsed), in its own order.

    Rows, not ``Answer`` objects, cross the process boundary: the caller rebuilds the
    answers around its own resolver and target objects, which costs less than pickling
    them and keeps them identical to the ones it passed in.
    """
    # forkserver: a clean, single-threaded server process forks the helpers (the caller
    # may run threads, so no plain fork), with this module already imported in it
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(len(jobs) - 1, mp_context=context) as pool:
        futures = [pool.submit(_job, job) for job in jobs[1:]]
        first = _job(jobs[0])
        return [first] + [f.result() for f in futures]


def _job(job: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """One share of a round (in a helper process, or here for the first)."""
    if job[0] == "grid":
        _, targets, resolvers, timeout, retries, window = job
        answers = _grid_round(targets, resolvers, timeout, retries, window)
    else:
        _, pairs, timeout, retries, window = job
        answers = _run_sync(pairs, iter(range(len(pairs))), [r for _, r in pairs], timeout=timeout, retries=retries,
                            window=window)
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
