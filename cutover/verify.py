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
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from cutover.records import Change, RecordKey, RecordSet, in_zone
from cutover.resolvers import Resolver, parse_address
from cutover.observe.engine import run_round
from cutover.observe.types import Answer, Target

DEFAULT_NEGATIVE_TTL = 3600
#: Seconds per question when asking the zone's own servers for a server name's address.
LOOKUP_TIMEOUT = 2.0


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


def endpoints(names: Sequence[str], *, zone: str = "",
              live: Mapping[RecordKey, RecordSet] | None = None) -> tuple[list[Resolver], list[ServerResult]]:
    """Authoritative servers as query endpoints; names that do not resolve are reported.

    With ``zone``, a host name inside it (``ns1.example.test`` for ``example.test``) is
    resolved as glue would resolve it, by the zone's own data: its A/AAAA in ``live``
    when they were read, else asked of the zone's servers given as ``address[:port]``
    in ``names`` (recursion off). The system resolver is asked only for the other
    names, or when no server of the zone could say: an internal or split-horizon
    zone's names are unknown to it, or known with another view's addresses."""
    own = _own_servers(names)
    servers: list[Resolver] = []
    problems: list[ServerResult] = []
    for name in names:
        try:
            address, port = parse_address(name)
            servers.append(Resolver(address=address, port=port, name=name, group="authoritative"))
            continue
        except ValueError:
            pass
        addresses, detail = _host_addresses(name.rstrip("."), zone, live or {}, own)
        if not addresses:
            problems.append(ServerResult(name, "unreachable", detail))
        servers.extend(Resolver(address=a, name=name, group="authoritative") for a in addresses)
    return servers, problems


def _own_servers(names: Sequence[str]) -> list[Resolver]:
    """The ``address[:port]`` entries: servers of the zone that need no name lookup."""
    found = []
    for name in names:
        try:
            address, port = parse_address(name)
        except ValueError:
            continue
        found.append(Resolver(address=address, port=port, name=name))
    return found


def _host_addresses(host: str, zone: str, live: Mapping[RecordKey, RecordSet],
                    own: Sequence[Resolver]) -> tuple[list[str], str]:
    """The addresses of one server name, and why there are none when there are none."""
    if zone and in_zone(host + ".", zone):
        glue = _from_live(host, live)
        if glue:
            return glue, ""
        for server in own:
            found = _at_zone_server(host, server)
            if found is not None:
                return found, f"{zone} has no A or AAAA record for it (asked {server.endpoint})"
        hint = ("; it is inside the zone: give verify.nameservers as address[:port] when the zone's "
                "servers are in no public DNS")
        return _addresses(host), "the name has no address" + hint
    return _addresses(host), "the name has no address"


def _from_live(host: str, live: Mapping[RecordKey, RecordSet]) -> list[str]:
    """The zone's own A/AAAA for ``host`` among the record sets already read."""
    name = dns.name.from_text(host).to_text().lower()
    return [v for rdtype in ("A", "AAAA") if (rs := live.get((name, rdtype))) for v in rs.values]


def _at_zone_server(host: str, server: Resolver) -> list[str] | None:
    """``host``'s addresses as one of the zone's servers gives them: its own data (AA), or
    the glue of a referral when ``host`` is below a delegation. None when the server did
    not answer for the name (no answer, an error, not authoritative)."""
    qname = dns.name.from_text(host)
    found: list[str] = []
    said = False
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        query = dns.message.make_query(qname, rdtype)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, server.address, port=server.port, timeout=LOOKUP_TIMEOUT)
        except (dns.exception.DNSException, OSError):
            return None
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        glue = [rd.to_text() for rrset in (*response.answer, *response.additional)
                if rrset.name == qname and rrset.rdtype == rdtype for rd in rrset]
        said = said or bool(glue) or bool(response.flags & dns.flags.AA)
        found += glue
    return sorted(set(found)) if said else None


def _addresses(host: str) -> list[str]:
    """The system resolver's addresses for ``host``: for names outside the zone."""
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
