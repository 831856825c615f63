"""Checking at the authoritative servers that a change is really served.

A provider saying "done" (Route 53's INSYNC, a NOERROR to an UPDATE) is not the same
as every authoritative server answering with the new data; secondaries lag, anycast
nodes lag. This module asks each server directly, recursion off, until all agree or
the time is up, and never waits on an unreachable server forever.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import dns.exception
import dns.resolver

from cutover.records import Change, RecordKey, RecordSet
from cutover.resolvers import Resolver, parse_address
from cutover.observe.engine import run_round
from cutover.observe.types import Answer, Target

DEFAULT_NEGATIVE_TTL = 3600


@dataclass(frozen=True)
class ServerResult:
    """What one authoritative server served at the end of verification."""

    server: str
    state: str  # new | stale | unreachable
    detail: str


def negative_ttl(live: Mapping[RecordKey, RecordSet], zone: str) -> int:
    """How long a resolver may cache "no such record" (RFC 2308: min of SOA TTL and MINIMUM)."""
    soa = live.get((zone, "SOA"))
    if soa is None or not soa.values:
        return DEFAULT_NEGATIVE_TTL
    minimum = int(soa.values[0].split()[-1])
    return min(soa.ttl, minimum)


def targets(changes: Iterable[Change], neg_ttl: int) -> list[Target]:
    """What watchers look for after ``changes``: the new values, and the old ones with their TTL."""
    return [
        Target(
            key=c.key,
            new=c.after.values if c.after else (),
            old=c.before.values if c.before else (),
            old_ttl=c.before.ttl if c.before else neg_ttl,
        )
        for c in changes
    ]


def endpoints(names: Sequence[str]) -> tuple[list[Resolver], list[ServerResult]]:
    """Authoritative servers as query endpoints; names that do not resolve are reported."""
    servers: list[Resolver] = []
    problems: list[ServerResult] = []
    for name in names:
        try:
            address, port = parse_address(name)
            servers.append(Resolver(address=address, port=port, name=name, group="authoritative"))
            continue
        except ValueError:
            pass
        addresses = _addresses(name.rstrip("."))
        if not addresses:
            problems.append(ServerResult(name, "unreachable", "the name has no address"))
        servers.extend(Resolver(address=a, name=name, group="authoritative") for a in addresses)
    return servers, problems


def _addresses(host: str) -> list[str]:
    out: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            out.extend(r.to_text() for r in dns.resolver.resolve(host, rdtype, lifetime=5))
        except dns.exception.DNSException:
            continue
    return out


def poll(
    wanted: Sequence[Target],
    servers: Sequence[Resolver],
    *,
    timeout: float,
    interval: float = 2.0,
    query_timeout: float = 2.0,
    progress: Callable[[str], None] = lambda _m: None,
) -> list[ServerResult]:
    """Ask every server until each serves every target's new data, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        answers = run_round(wanted, servers, timeout=query_timeout, retries=1)
        results = _per_server(answers, servers)
        pending = [r for r in results if r.state != "new"]
        if not pending or time.monotonic() + interval > deadline:
            return results
        progress(f"waiting for {len(pending)} of {len(results)} authoritative servers: "
                 + ", ".join(f"{r.server} ({r.state})" for r in pending))
        time.sleep(interval)


def _per_server(answers: Sequence[Answer], servers: Sequence[Resolver]) -> list[ServerResult]:
    results = []
    for server in servers:
        mine = [a for a in answers if a.resolver == server]
        lagging = [a for a in mine if a.state != "new"]
        label = server.name if server.name == server.endpoint else f"{server.name} ({server.endpoint})"
        if not lagging:
            results.append(ServerResult(label, "new", "serves the new data"))
        elif all(a.state in ("timeout", "error", "refused") for a in lagging) and len(lagging) == len(mine):
            results.append(ServerResult(label, "unreachable", lagging[0].state))
        else:
            detail = "; ".join(f"{a.key[0]} {a.key[1]}: {a.state}" for a in lagging)
            results.append(ServerResult(label, "stale", detail))
    return results
