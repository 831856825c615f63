"""The engine's synchronous rounds (``query_pairs``, ``run_round``) against scripted servers.

tests/integration/test_watch.py runs the hostile and broken servers through
``query_round`` (the asyncio driver); here the same scripts go through the epoll driver
and through helper processes, plus what only shared sockets can get wrong: a server's
garbage or a forger's packets that match no query in flight, late duplicates, the
per-server bound, and the order of answers when a round is split.
"""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from cutover.observe import flight
from cutover.observe.engine import query_pairs, query_round, round_deadline, run_round
from cutover.observe.types import Target
from cutover.resolvers import Resolver
from tests.integration.servers.dnsfake import DECOY, FakeServer, fakenet, fleet  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("192.0.2.10",), 300)
RECORDS = {("www", "A"): (300, ["203.0.113.10"])}

SCRIPTS = {
    "honest": (dict(), "new"),
    "slow": (dict(delay=1.5), "new"),
    "silent": (dict(behaviour="drop"), "timeout"),
    "wrong-id": (dict(behaviour="wrong_id", delay=0.2), "new"),
    "wrong-source": (dict(behaviour="wrong_source", delay=0.2), "new"),
    "wrong-question": (dict(behaviour="wrong_question", delay=0.2), "new"),
    "forger-only": (dict(behaviour="wrong_id", honest=False), "timeout"),
    "truncating": (dict(behaviour="truncate"), "new"),
    "garbage": (dict(behaviour="garbage"), "malformed"),
    "servfail": (dict(behaviour="servfail"), "servfail"),
    "refused": (dict(behaviour="refused"), "refused"),
    "blocklist": (dict(behaviour="sinkhole"), "filtered"),
}


def test_hostile_and_broken_servers_through_the_synchronous_driver(fakenet):
    servers = {name: fakenet.add(records=RECORDS, **kw) for name, (kw, _) in SCRIPTS.items()}
    resolvers = [Resolver("127.0.0.1", s.port, name=name, filtering=name == "blocklist") for name, s in servers.items()]
    started = time.monotonic()
    answers = query_pairs([(UPDATE, r) for r in resolvers], timeout=1.0, retries=1)
    elapsed = time.monotonic() - started
    assert elapsed < round_deadline(1.0, 1) + 0.3
    got = {a.resolver.name: a for a in answers}
    assert {name: a.state for name, a in got.items()} == {name: state for name, (_, state) in SCRIPTS.items()}
    assert all(DECOY not in a.values for a in answers), "a forged reply was accepted"
    assert got["slow"].elapsed >= 1.4
    assert "TCP" in got["truncating"].detail and got["truncating"].values == ("203.0.113.10",)
    assert "stray" in got["forger-only"].detail
    assert servers["silent"].queries == 2 and servers["honest"].queries == 1


class GarbageFirst(FakeServer):
    """Sends bytes that do not parse, with an id no query has, then nothing: what a
    query of its gets is its garbage (not a plain timeout), as when it had its own socket."""

    def replies(self, query, tcp):  # noqa: ANN001, ANN201
        junk = struct.pack("!HHHHHH", (query.id + 1) % 65536, 0x8180, 1, 1, 0, 0) + b"\xc0\xff"
        return [(0.0, junk, "same")]


class Twice(FakeServer):
    """Answers every query twice: the second copy arrives when nobody waits for it."""

    def replies(self, query, tcp):  # noqa: ANN001, ANN201
        wire = self.answer(query, tcp).to_wire()
        return [(0.0, wire, "same"), (0.05, wire, "same")]


def test_garbage_with_another_id_is_still_that_servers_garbage(fakenet):
    server = fakenet.start(GarbageFirst(records=RECORDS))
    [answer] = query_pairs([(UPDATE, Resolver("127.0.0.1", server.port))], timeout=0.3, retries=1)
    assert answer.state == "malformed" and "unparseable" in answer.detail
    assert server.queries == 1, "garbage ends the waiting after the attempt, as before"


def test_late_duplicates_are_ignored_and_later_queries_are_unaffected(fakenet):
    server = fakenet.start(Twice(records=RECORDS))
    names = [Target((f"n{i}.example.com.", "A"), (), ("192.0.2.1",), 60) for i in range(40)]
    resolver = Resolver("127.0.0.1", server.port)
    answers = query_pairs([(UPDATE, resolver)] + [(t, resolver) for t in names], timeout=1.0, concurrency=4)
    assert [a.state for a in answers] == ["new"] + ["new"] * 40  # NXDOMAIN for a deleted record is new
    assert server.queries == 41


def test_at_most_per_server_queries_are_in_flight_to_one_server(fakenet):
    slow = fakenet.add(records=RECORDS, delay=0.2)
    resolver = Resolver("127.0.0.1", slow.port)
    pairs = [(UPDATE, resolver)] * 12
    started = time.monotonic()
    answers = query_pairs(pairs, timeout=2.0, per_server=4)
    bounded = time.monotonic() - started
    started = time.monotonic()
    query_pairs(pairs, timeout=2.0, per_server=12)
    free = time.monotonic() - started
    assert {a.state for a in answers} == {"new"}
    assert bounded >= 3 * 0.2 - 0.05, "12 queries, 4 at a time, 0.2 s each: three waves"
    assert free < bounded - 0.2


def test_split_rounds_give_the_same_answers_in_the_same_order():
    names = [f"host{i}" for i in range(30)]
    records = {(n, "A"): (300, [f"203.0.113.{i + 1}"]) for i, n in enumerate(names)}
    records[("host7", "A")] = (300, ["198.51.100.99"])
    targets = [Target((f"{n}.example.com.", "A"), (f"203.0.113.{i + 1}",), ("192.0.2.1",), 300) for i, n in enumerate(names)]
    with fleet(3, records, delay=0.02) as servers:
        resolvers = [Resolver("127.0.0.1", port, name=f"fake{i}") for i, port in enumerate(servers.ports)]
        together = asyncio.run(query_round(targets, resolvers, timeout=2.0))
        by_resolver = run_round(targets, resolvers, timeout=2.0, processes=2)  # 3 resolvers: sliced by resolver
        by_target = run_round(targets, resolvers[:1], timeout=2.0, processes=2)  # 1 resolver: sliced by target
        pairs = [(t, r) for t in targets for r in reversed(resolvers)]
        split_pairs = query_pairs(pairs, timeout=2.0, processes=2)

    def essence(answers):
        return [(a.resolver, a.key, a.state, a.values) for a in answers]

    assert essence(by_resolver) == essence(together)
    assert essence(by_target) == essence(together[:len(targets)])
    assert essence(split_pairs) == [(r, t.key, s, v) for (t, r) in pairs
                                    for (rr, k, s, v) in essence(together) if rr == r and k == t.key]
    assert {a.state for a in together} == {"new", "other"}
    assert all(a.resolver is r for a, (_, r) in zip(split_pairs, pairs)), "answers carry the caller's objects"


def test_a_public_resolver_is_paced_and_the_operators_own_is_not(fakenet, monkeypatch):
    monkeypatch.setattr(flight, "PUBLIC_RATE", 200.0)  # the catalogue's pace, made quick to see
    server = fakenet.add(records=RECORDS)
    targets = [Target((f"n{i}.example.com.", "A"), (), ("192.0.2.1",), 60) for i in range(300)]
    public = Resolver("127.0.0.1", server.port, name="catalogue", group="public")
    started = time.monotonic()
    answers = run_round(targets, [public], timeout=1.0, retries=0, processes=2)  # one process: pacing is not split
    paced = time.monotonic() - started
    assert [a.state for a in answers] == ["new"] * 300 and server.queries == 300
    # a burst of 0.5 s worth (100), then 200 a second: the other 200 take at least a second
    assert paced >= (300 - 200 * flight.PUBLIC_BURST) / 200 - 0.05, paced
    own = Resolver("127.0.0.1", server.port, name="own")
    started = time.monotonic()
    assert {a.state for a in run_round(targets, [own], timeout=1.0, retries=0)} == {"new"}
    assert time.monotonic() - started < paced / 2
    # a silent public resolver still ends within its (paced) deadline
    silent = fakenet.add(records=RECORDS, behaviour="drop")
    quiet = Resolver("127.0.0.1", silent.port, name="quiet", group="public")
    started = time.monotonic()
    assert {a.state for a in query_pairs([(t, quiet) for t in targets], timeout=0.3, retries=0)} == {"timeout"}
    assert time.monotonic() - started < round_deadline(0.3, 0, 300) + 300 / 200 + 0.5
