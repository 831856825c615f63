"""The engine's fast path against real servers: BIND, Knot and an Unbound cache in front of BIND.

(a) The replies themselves: the exact bytes each server sends to the engine's queries
(positive answers, several values, AAAA, in-zone and out-of-zone CNAME chains, a
wildcard, NXDOMAIN, NODATA, a delegation, an MX) are read by ``fastpath.read`` and by
dnspython + ``read_response``: the two must agree, and the common shapes must not be
left to dnspython. (b) Whole rounds: ``query_round`` and ``query_pairs`` give the same
answers with the fast path as with it switched off.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from cutover.observe import engine, fastpath
from cutover.observe.wire import query_tail
from cutover.observe.types import Target
from cutover.resolvers import Resolver
from tests.integration.servers.bind import BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.knot import KnotZone, knot_server  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)
from tests.test_observe_fastpath import agree

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ZONE = "fast.test."
RECORDS = (
    "www 300 IN A 203.0.113.10",
    "www 300 IN AAAA 2001:db8::10",
    "multi 120 IN A 203.0.113.1",
    "multi 120 IN A 203.0.113.2",
    "multi 120 IN A 203.0.113.3",
    "v6 300 IN AAAA 2001:db8:0:0:1::1",
    "v6 300 IN AAAA ::ffff:192.0.2.1",
    "alias 300 IN CNAME www",
    "chain 300 IN CNAME alias",
    "outside 300 IN CNAME target.elsewhere.example.",
    "*.wild 60 IN A 198.51.100.7",
    "txt-only 300 IN TXT \"hello\"",
    "@ 300 IN MX 10 mail.fast.test.",
    "mail 300 IN A 203.0.113.25",
    "sub 300 IN NS ns.sub",
    "ns.sub 300 IN A 127.0.0.1",
    "a.b.ent 300 IN A 203.0.113.99",
)


def target(name: str, rtype: str = "A") -> Target:
    return Target((f"{name}.{ZONE}" if name != "@" else ZONE, rtype), ("203.0.113.10",), ("192.0.2.1",), 300)


#: (name, type, read by the fast path?) for an authoritative server and for the cache.
QUESTIONS = [
    ("www", "A", True), ("www", "AAAA", True), ("multi", "A", True), ("v6", "AAAA", True),
    ("alias", "A", True), ("chain", "A", True), ("chain", "AAAA", True), ("x.wild", "A", True),
    ("missing", "A", True), ("txt-only", "A", True), ("ent", "A", True), ("b.ent", "AAAA", True),
    ("@", "A", True), ("@", "MX", False), ("www", "MX", False), ("mail", "A", True), ("outside", "A", True),
]


def raw_reply(address: str, port: int, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, (address, port))
        while True:
            data, source = s.recvfrom(65535)
            if source == (address, port) and data[:2] == wire[:2]:
                return data


@pytest.fixture
def servers(bind_server, knot_server, unbound_server):
    bind = bind_server(BindZone(ZONE, records=RECORDS))
    knot = knot_server(KnotZone(ZONE, records=RECORDS))
    cache = unbound_server(ZONE, bind.port, closed=True)
    return {
        "bind": Resolver("127.0.0.1", bind.port, name="bind", group="authoritative"),
        "knot": Resolver("127.0.0.1", knot.port, name="knot", group="authoritative"),
        "unbound": Resolver("127.0.0.1", cache.port, name="unbound", group="public"),
        "bind-asked-as-a-resolver": Resolver("127.0.0.1", bind.port, name="bind-rd", group="public"),
    }


def test_real_replies_are_read_the_same_with_and_without_the_fast_path(servers):
    declined = []
    for label, resolver in servers.items():
        for name, rtype, common in QUESTIONS:
            t = target(name, rtype)
            tail = query_tail(t.name, t.type, resolver.group != "authoritative")
            assert tail is not None
            wire = raw_reply(resolver.address, resolver.port, b"\x12\x34" + tail)
            for filtering in (False, True):
                r = Resolver(resolver.address, resolver.port, name=resolver.name, group=resolver.group, filtering=filtering)
                got = agree(wire, t, r)  # asserts agreement whenever the fast path reads it
                if common and got is None:
                    declined.append((label, name, rtype, wire.hex()))
                if not common:
                    assert got is None
    assert not declined, f"common replies left to dnspython: {declined}"


def test_rounds_give_the_same_answers_without_the_fast_path(servers, monkeypatch):
    resolvers = list(servers.values())
    targets = [target(name, rtype) for name, rtype, _ in QUESTIONS]
    targets.append(Target((f"www.{ZONE}", "A"), ("203.0.113.10",), ("192.0.2.1",), 300))  # a duplicate question

    def essence(answers):
        # an answer's TTL counts down in the cache between the two rounds: compare it
        # for the authoritative servers only
        return [(a.resolver, a.key, a.state, a.values, a.detail, a.ttl if a.resolver.group == "authoritative" else None)
                for a in answers]

    fast_round = asyncio.run(engine.query_round(targets, resolvers, timeout=2.0))
    fast_pairs = engine.query_pairs([(t, r) for r in resolvers for t in targets], timeout=2.0, processes=1)
    calls = []
    monkeypatch.setattr(fastpath, "read", lambda *a: calls.append(a) and None)
    slow_round = asyncio.run(engine.query_round(targets, resolvers, timeout=2.0))
    assert len(calls) == len(targets) * len(resolvers)
    assert essence(fast_round) == essence(slow_round)
    assert essence(fast_pairs) == essence(slow_round)
    states = {a.state for a in fast_round}
    assert {"other", "nodata", "nxdomain", "new"} <= states and "timeout" not in states, states
