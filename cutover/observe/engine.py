"""The query engine: ask many servers about many names at once, over UDP, suspiciously.

A round is one question per (record, server) pair, all in flight together under a
worker pool, so a round costs about the slowest server's time rather than the sum.

The engine is deliberately suspicious: UDP replies from another address, with another
id or for another question are ignored (a spoofed or late stray packet must not decide
a verdict), unparseable or oversized replies make the answer ``malformed``, and the
round has a hard deadline that no silent server can stretch. Each reply is handed to
``cutover.observe.classify``; this module knows nothing of what the answers mean.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import multiprocessing
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

import dns.asyncbackend
import dns.asyncquery
import dns.entropy
import dns.exception
import dns.flags
import dns.inet
import dns.message

from cutover.observe.classify import read_response
from cutover.observe.types import NON_RECURSIVE, Answer, Target
from cutover.resolvers import Resolver

#: EDNS buffer we advertise (the DNS Flag Day 2020 value); a larger UDP reply is a broken server.
PAYLOAD = 1232
#: Extra time a round may take beyond its queries' own timeouts (task start-up, TCP fallback).
ROUND_SLACK = 0.5
#: Rounds with at least this many queries use every core (``run_round``); below it a
#: process's start-up (about 0.3 s) costs more than the second core saves.
PARALLEL_FROM = 20_000
#: Queries in flight at once (each holds a UDP socket; capped by the open-files limit).
#: Pairs are issued target by target, so one resolver sees about this / len(resolvers).
CONCURRENCY = 1024
#: Deadline allowance per query in a round: one exchange costs 0.4-0.6 ms of CPU on a
#: 2-core machine (benchmarks/README.md), which leaves room for a busy or slower one.
CPU_PER_QUERY = 0.002


def round_deadline(timeout: float, retries: int, queries: int = 0) -> float:
    """Seconds a whole round may take: every attempt's timeout, a little slack, and a CPU
    allowance per query, so that a big round (thousands of names times fifty resolvers)
    is not cut off while healthy queries still wait for a slot. The bound depends only on
    the round's size, never on how resolvers behave: a silent one still cannot stretch it."""
    return timeout * (retries + 1) + ROUND_SLACK + queries * CPU_PER_QUERY


async def query_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    concurrency: int = CONCURRENCY,
) -> list[Answer]:
    """Ask every resolver about every target, concurrently; one answer per pair.

    A fixed pool of workers takes the pairs in turn, so a round of half a million pairs
    holds ``concurrency`` tasks, not half a million (cancelling that many tasks queued on
    a semaphore is quadratic in asyncio). Pairs are taken target by target, so each
    resolver sees about ``concurrency / len(resolvers)`` queries at once rather than
    the whole window. Answers come back in (resolver, target) order. Pairs still
    unanswered at the round's hard deadline are reported as ``timeout``.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    loop = asyncio.get_running_loop()
    pairs = [(t, r) for r in resolvers for t in targets]
    deadline = loop.time() + round_deadline(timeout, retries, len(pairs))
    answers: list[Answer | None] = [None] * len(pairs)
    started = bytearray(len(pairs))
    count = len(targets)
    order = (r * count + t for t in range(count) for r in range(len(resolvers)))
    templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]] = {}

    async def worker() -> None:
        for i in order:  # one shared iterator: each worker takes the next pair
            target, resolver = pairs[i]
            started[i] = 1
            try:
                answers[i] = await _ask(target, resolver, timeout=timeout, retries=retries, deadline=deadline, templates=templates)
            except Exception as exc:  # a bug or an OS surprise: report it on this pair, keep the round
                answers[i] = Answer(resolver, target.key, "error", None, (), f"unexpected failure: {type(exc).__name__}: {exc}")

    size = min(len(pairs), max(1, min(concurrency, _socket_budget())))
    workers = [asyncio.ensure_future(worker()) for _ in range(size)]
    if workers:
        _, pending = await asyncio.wait(workers, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return [a if a is not None else _late(t, r, bool(s)) for a, (t, r), s in zip(answers, pairs, started)]


def run_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    processes: int | None = None,
) -> list[Answer]:
    """A whole round from synchronous code, on every CPU core when it is big.

    A large round is CPU-bound (each reply is parsed by dnspython), not network-bound, so
    from ``PARALLEL_FROM`` queries on the resolvers are split into one contiguous slice per
    core, each asked by its own process. Answers come back in the same (resolver, target)
    order as from ``query_round``; each slice keeps its own hard deadline.
    """
    pairs = len(targets) * len(resolvers)
    if processes is None:
        processes = (os.cpu_count() or 1) if pairs >= PARALLEL_FROM else 1
    processes = max(1, min(processes, len(resolvers)))
    if processes == 1:
        return asyncio.run(query_round(targets, resolvers, timeout=timeout, retries=retries))
    step = -(-len(resolvers) // processes)
    slices = [list(resolvers[i:i + step]) for i in range(0, len(resolvers), step)]
    # spawn, not fork: the caller may run threads (webhook senders, the sandbox's servers)
    with ProcessPoolExecutor(len(slices), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = pool.map(_slice_round, [(list(targets), chunk, timeout, retries) for chunk in slices])
        return [answer for part in parts for answer in part]


def _slice_round(job: tuple[list[Target], list[Resolver], float, int]) -> list[Answer]:
    targets, resolvers, timeout, retries = job
    return asyncio.run(query_round(targets, resolvers, timeout=timeout, retries=retries))


def _socket_budget() -> int:
    """Queries in flight each hold a socket: stay well inside the open-files limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return 256
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(8, soft - 128)


def _late(target: Target, resolver: Resolver, started: bool) -> Answer:
    if started:
        return Answer(resolver, target.key, "timeout", None, (), "no answer before the round's deadline")
    return Answer(resolver, target.key, "timeout", None, (), "the round's deadline passed before this query could be sent")


class _Failed(Exception):
    """The exchange ended without a usable response; carries the state and why."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


async def _ask(
    target: Target, resolver: Resolver, *, timeout: float, retries: int, deadline: float,
    templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]] | None = None,
) -> Answer:
    loop = asyncio.get_running_loop()
    start = loop.time()
    if start >= deadline:
        return Answer(resolver, target.key, "timeout", None, (), "the round's deadline passed before this query could be sent")
    query, wire = _make_query(target, resolver, {} if templates is None else templates)
    try:
        response, via = await _exchange(query, wire, resolver, timeout=timeout, retries=retries, deadline=deadline)
    except _Failed as failed:
        return Answer(resolver, target.key, failed.state, None, (), failed.detail, loop.time() - start)
    return read_response(target, resolver, response, via=via, elapsed=loop.time() - start)


def _make_query(
    target: Target, resolver: Resolver, templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]]
) -> tuple[dns.message.Message, bytes]:
    """The query and its wire form, with a fresh random id.

    Building and rendering a message costs more than the rest of an exchange; the same
    question goes to every resolver, so it is built once per round and only the id is
    new for each pair (a shallow copy: the question section is shared, never changed).
    """
    recursive = resolver.group not in NON_RECURSIVE
    template = templates.get((target, recursive))
    if template is None:
        built = dns.message.make_query(target.name, target.type, use_edns=0, payload=PAYLOAD)
        if not recursive:
            built.flags &= ~dns.flags.RD  # ask the server what it holds, not what it can find
        template = templates[(target, recursive)] = (built, built.to_wire())
    query = copy.copy(template[0])
    query.id = dns.entropy.random_16()
    return query, query.id.to_bytes(2, "big") + template[1][2:]


async def _exchange(
    query: dns.message.Message, wire: bytes, resolver: Resolver, *, timeout: float, retries: int, deadline: float
) -> tuple[dns.message.Message, str]:
    """UDP with retransmission; TCP when the UDP answer is truncated."""
    response = await _udp(query, wire, resolver, timeout=timeout, retries=retries, deadline=deadline)
    if not response.flags & dns.flags.TC:
        return response, "udp"
    remaining = min(timeout, deadline - asyncio.get_running_loop().time())
    if remaining <= 0:
        raise _Failed("timeout", "truncated UDP answer and no time left for TCP")
    try:
        response = await dns.asyncquery.tcp(query, resolver.address, timeout=remaining, port=resolver.port)
    except dns.exception.Timeout:
        raise _Failed("timeout", "truncated UDP answer; TCP timed out") from None
    except dns.exception.DNSException as exc:  # unparseable, or not a response to our query
        raise _Failed("malformed", f"truncated UDP answer; bad TCP answer ({type(exc).__name__})") from None
    except (OSError, EOFError) as exc:
        raise _Failed("error", f"truncated UDP answer; TCP failed ({_os_reason(exc)})") from None
    return response, "tcp"


async def _udp(
    query: dns.message.Message, wire: bytes, resolver: Resolver, *, timeout: float, retries: int, deadline: float
) -> dns.message.Message:
    """Send the query, retransmit the same bytes on the same socket after each timeout.

    Keeping one socket and one id means a late answer to the first transmission is still
    accepted during the retry window: a slow resolver is slow, not dead. Stray packets
    (other source, other id, other question) are ignored and listening goes on, so a
    spoofer cannot decide the answer; garbage from the right source is remembered and
    reported as ``malformed`` if nothing valid follows.
    """
    loop = asyncio.get_running_loop()
    af = dns.inet.af_for_address(resolver.address)
    destination = dns.inet.low_level_address_tuple((resolver.address, resolver.port), af)
    backend = dns.asyncbackend.get_default_backend()
    malformed: list[str] = []
    strays = 0
    try:
        sock = await backend.make_socket(af, socket.SOCK_DGRAM, 0, None, None)
    except OSError as exc:
        raise _Failed("error", f"cannot open a socket ({_os_reason(exc)})") from None
    async with sock:
        for _attempt in range(retries + 1):
            try:
                await sock.sendto(wire, destination, None)
            except OSError as exc:
                raise _Failed("error", f"cannot send ({_os_reason(exc)})") from None
            until = min(loop.time() + timeout, deadline)
            while (remaining := until - loop.time()) > 0:
                try:
                    data, source = await sock.recvfrom(65535, remaining)
                except dns.exception.Timeout:
                    break
                except OSError as exc:
                    raise _Failed("error", f"receive failed ({_os_reason(exc)})") from None
                if not _same_endpoint(source, resolver):
                    strays += 1
                    continue
                if len(data) > PAYLOAD:
                    malformed.append(f"oversized UDP reply ({len(data)} bytes > {PAYLOAD} advertised)")
                    continue
                try:
                    response = dns.message.from_wire(data)
                except dns.exception.DNSException as exc:
                    malformed.append(f"unparseable reply ({type(exc).__name__})")
                    continue
                if not query.is_response(response):
                    strays += 1
                    continue
                return response
            if malformed:
                break
    if malformed:
        raise _Failed("malformed", malformed[0])
    waited = "no answer" + (f" (ignored {strays} stray replies)" if strays else "")
    tries = f"{retries + 1} tries" if retries else "1 try"
    raise _Failed("timeout", f"{waited} after {tries} of {timeout:g}s")


def _same_endpoint(source: Any, resolver: Resolver) -> bool:
    try:
        if source[0] == resolver.address and source[1] == resolver.port:
            return True  # the usual case, without parsing two addresses per packet
        return ipaddress.ip_address(source[0]) == ipaddress.ip_address(resolver.address) and int(source[1]) == resolver.port
    except (ValueError, TypeError, IndexError):
        return False


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
