"""Watch rounds against real resolvers on loopback.

(a) Real Unbound caches in front of an authoritative server: old until the TTL runs
out, then new; a TTL-flooring Unbound is caught as stale. (b) Scripted broken and
hostile servers: each is classified, forged replies are never accepted, and the round
ends on time. (c) Many resolvers times many names cost about one resolver's delay.
"""

from __future__ import annotations

import asyncio
import resource
import time
from datetime import datetime, timezone

import pytest

from cutover.resolvers import Resolver
from cutover.observe.authoritative import all_new, views
from cutover.observe.engine import query_round, round_deadline, run_round
from cutover.observe.types import Round, Target, summarise
from cutover.verdict import stale_resolvers
from tests.observations import judge_round
from tests.integration.servers.dnsfake import DECOY, fakenet, fleet  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ZONE = "example.com."
TTL = 2
UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("192.0.2.10",), TTL)
CREATE = Target(("fresh.example.com.", "A"), ("203.0.113.20",), (), TTL)
DELETE = Target(("legacy.example.com.", "A"), (), ("192.0.2.30",), TTL)
MAIL = Target(("example.com.", "MX"), ("10 mail.example.com.",), ("10 mail.old-host.net.",), TTL)
TARGETS = [UPDATE, CREATE, DELETE, MAIL]


def run(targets, resolvers, **kw):
    kw.setdefault("timeout", 1.0)
    started = time.monotonic()
    answers = asyncio.run(query_round(targets, resolvers, **kw))
    return answers, time.monotonic() - started


def states(answers, resolver):
    return {a.key: a.state for a in answers if a.resolver == resolver}


def utcnow():
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- (a) real Unbound


def test_unbound_moves_from_old_to_new_when_the_ttl_runs_out_and_a_floored_cache_is_stale(fakenet, unbound_server):
    auth = fakenet.add(
        authoritative=True,
        negative_ttl=TTL,
        records={("www", "A"): (TTL, ["192.0.2.10"]), ("legacy", "A"): (TTL, ["192.0.2.30"]),
                 ("@", "MX"): (TTL, ["10 mail.old-host.net."])},
    )
    honest = Resolver("127.0.0.1", unbound_server(ZONE, auth.port).port, name="unbound", group="custom")
    floored = Resolver("127.0.0.1", unbound_server(ZONE, auth.port, cache_min_ttl=3600).port, name="floored", group="custom")
    nameserver = Resolver("127.0.0.1", auth.port, name="ns", group="authoritative")
    everyone = [honest, floored, nameserver]

    before, _ = run(TARGETS, everyone)
    for r in everyone:
        assert set(states(before, r).values()) == {"old"}, states(before, r)
    floored_ttl = next(a.ttl for a in before if a.resolver == floored and a.key == UPDATE.key)
    assert floored_ttl > 3000  # cache-min-ttl rewrote the TTL the floored cache hands out

    auth.set("www", "A", TTL, ["203.0.113.10"])
    auth.set("fresh", "A", TTL, ["203.0.113.20"])
    auth.delete("legacy", "A")
    auth.set("@", "MX", TTL, ["10 mail.example.com."])
    change = utcnow()

    cached, _ = run(TARGETS, everyone)
    assert set(states(cached, honest).values()) == {"old"}, "a cache must keep the old answer within its TTL"
    assert set(states(cached, nameserver).values()) == {"new"}
    assert all_new(views(Round(2, utcnow(), tuple(cached)), TARGETS))

    # Unbound counts TTLs in whole seconds: allow one extra second past the TTL.
    deadline = time.monotonic() + TTL + 4
    while True:
        after, _ = run(TARGETS, everyone)
        if set(states(after, honest).values()) == {"new"} or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert set(states(after, honest).values()) == {"new"}, states(after, honest)
    assert (utcnow() - change).total_seconds() >= TTL - 1
    assert states(after, floored)[UPDATE.key] == "old"

    rnd = Round(3, utcnow(), tuple(after))
    stale = stale_resolvers(rnd, TARGETS, change, rnd.time)
    assert stale and {a.resolver for a in stale} == {floored}
    assert UPDATE.key in {a.key for a in stale}
    assert all(a.ttl is not None and a.ttl > TTL for a in stale if a.key == UPDATE.key)

    verdict = judge_round(rnd, TARGETS, change=change, ttl=TTL, period=0, now=rnd.time, servers=views(rnd, TARGETS))
    assert verdict.missing == ("propagation",), verdict.conditions
    only_honest = Round(3, rnd.time, tuple(a for a in after if a.resolver != floored))
    assert judge_round(only_honest, TARGETS, change=change, ttl=TTL, period=0, now=rnd.time,
                       servers=views(only_honest, TARGETS)).retire


def test_a_stopped_resolver_is_reported_unreachable_and_left_out_of_the_share(fakenet, unbound_server):
    auth = fakenet.add(authoritative=True, records={("www", "A"): (TTL, ["203.0.113.10"])})
    alive = unbound_server(ZONE, auth.port)
    stopped = unbound_server(ZONE, auth.port)
    stopped.stop()
    resolvers = [Resolver("127.0.0.1", alive.port, name="alive"), Resolver("127.0.0.1", stopped.port, name="stopped")]
    answers, _ = run([UPDATE], resolvers, timeout=0.5)
    assert states(answers, resolvers[0]) == {UPDATE.key: "new"}
    assert states(answers, resolvers[1])[UPDATE.key] in ("timeout", "refused", "error")
    [summary] = summarise(Round(1, utcnow(), tuple(answers)), [UPDATE])
    assert summary.error == 1 and summary.answering == 1 and summary.share == 1.0


# --------------------------------------------------------------------------- (b) broken and hostile servers


RECORDS = {("www", "A"): (300, ["203.0.113.10"])}


def test_hostile_and_broken_servers_are_classified_and_the_round_ends_on_time(fakenet):
    scripts = {
        "honest": dict(),
        "slow": dict(delay=1.5),
        "silent": dict(behaviour="drop"),
        "wrong-id": dict(behaviour="wrong_id", delay=0.2),
        "wrong-source": dict(behaviour="wrong_source", delay=0.2),
        "wrong-question": dict(behaviour="wrong_question", delay=0.2),
        "forger-only": dict(behaviour="wrong_id", honest=False),
        "truncating": dict(behaviour="truncate"),
        "garbage": dict(behaviour="garbage"),
        "servfail": dict(behaviour="servfail"),
        "refused": dict(behaviour="refused"),
        "blocklist": dict(behaviour="sinkhole"),
    }
    servers = {name: fakenet.add(records=RECORDS, **kw) for name, kw in scripts.items()}
    resolvers = [Resolver("127.0.0.1", s.port, name=name, filtering=name == "blocklist") for name, s in servers.items()]

    answers, elapsed = run([UPDATE], resolvers, timeout=1.0, retries=1)

    assert elapsed < round_deadline(1.0, 1) + 0.3
    got = {a.resolver.name: a for a in answers}
    expected = {
        "honest": "new", "slow": "new", "silent": "timeout", "wrong-id": "new", "wrong-source": "new",
        "wrong-question": "new", "forger-only": "timeout", "truncating": "new", "garbage": "malformed",
        "servfail": "servfail", "refused": "refused", "blocklist": "filtered",
    }
    assert {name: a.state for name, a in got.items()} == expected
    assert all(DECOY not in a.values for a in answers), "a forged reply was accepted"
    assert got["slow"].elapsed >= 1.4  # the first transmission's late answer, taken during the retry
    assert "TCP" in got["truncating"].detail and got["truncating"].values == ("203.0.113.10",)
    assert "oversized" in got["garbage"].detail or "unparseable" in got["garbage"].detail
    assert "stray" in got["forger-only"].detail
    assert servers["silent"].queries == 2, "one retry after a timeout"
    assert servers["honest"].queries == 1


def test_a_slow_server_beyond_every_retry_is_a_timeout(fakenet):
    slow = fakenet.add(records=RECORDS, delay=1.5)
    answers, elapsed = run([UPDATE], [Resolver("127.0.0.1", slow.port)], timeout=0.5, retries=1)
    assert [a.state for a in answers] == ["timeout"]
    assert elapsed < round_deadline(0.5, 1) + 0.3


def test_silent_resolvers_cannot_stretch_the_round_past_its_deadline(fakenet):
    # One query at a time and six silent servers: without the round's hard deadline
    # this would take 6 x 2 x 0.5 = 6 s.
    silent = [fakenet.add(records=RECORDS, behaviour="drop") for _ in range(6)]
    resolvers = [Resolver("127.0.0.1", s.port, name=f"silent{i}") for i, s in enumerate(silent)]
    answers, elapsed = run([UPDATE], resolvers, timeout=0.5, retries=1, concurrency=1)
    assert elapsed < round_deadline(0.5, 1) + 0.3
    assert [a.state for a in answers] == ["timeout"] * 6
    assert any("deadline" in a.detail for a in answers)


def test_nothing_listening_is_a_timeout_not_a_crash():
    from tests.integration.servers import free_port

    answers, elapsed = run([UPDATE], [Resolver("127.0.0.1", free_port())], timeout=0.3, retries=0)
    assert [a.state for a in answers] == ["timeout"] and elapsed < 1.0


def test_authoritative_group_is_asked_without_recursion(fakenet):
    auth = fakenet.add(records=RECORDS, authoritative=True)
    recursive_only = fakenet.add(records=RECORDS)  # answers, but without AA
    answers, _ = run([UPDATE], [Resolver("127.0.0.1", auth.port, group="authoritative"),
                                Resolver("127.0.0.1", recursive_only.port, group="authoritative")])
    assert [a.state for a in answers] == ["new", "error"]
    assert "AA" in answers[1].detail
    assert auth.recursion_desired == [False] and recursive_only.recursion_desired == [False]
    run([UPDATE], [Resolver("127.0.0.1", recursive_only.port, group="public")])
    assert recursive_only.recursion_desired == [False, True]


def test_cname_chains_are_followed_over_the_wire(fakenet):
    server = fakenet.add(records={("www", "CNAME"): (300, ["edge.example.com."]),
                                  ("edge", "CNAME"): (300, ["pop.example.com."]),
                                  ("pop", "A"): (60, ["203.0.113.10"])})
    cname = Target(("www.example.com.", "CNAME"), ("edge.example.com.",), ("old-edge.example.com.",), 300)
    answers, _ = run([UPDATE, cname], [Resolver("127.0.0.1", server.port)])
    assert [(a.state, a.ttl) for a in answers] == [("new", 60), ("new", 300)]


# --------------------------------------------------------------------------- (c) scale


def _allow_open_files(wanted: int) -> None:
    """Raise the soft open-files limit (CI images often default to 1024) as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def test_fifty_resolvers_times_twenty_names_cost_about_one_delay():
    # The servers run in a child process so that the client alone is being timed.
    delay = 0.5
    _allow_open_files(1200)
    names = [f"host{i}" for i in range(20)]
    records = {(n, "A"): (300, [f"203.0.113.{i + 1}"]) for i, n in enumerate(names)}
    targets = [Target((f"{n}.example.com.", "A"), (f"203.0.113.{i + 1}",), ("192.0.2.1",), 300) for i, n in enumerate(names)]
    with fleet(50, records, delay=delay) as servers:
        resolvers = [Resolver("127.0.0.1", port, name=f"fake{i}") for i, port in enumerate(servers.ports)]

        answers, elapsed = run(targets, resolvers, timeout=3.0, concurrency=1024)

        assert len(answers) == 1000 and {a.state for a in answers} == {"new"}
        assert sum(servers.queries()) == 1000, "no query needed a retry"
    assert elapsed < 5 * delay, f"round took {elapsed:.2f}s for a {delay}s resolver delay"


def test_a_round_split_over_processes_gives_the_same_answers_in_the_same_order():
    names = [f"host{i}" for i in range(6)]
    records = {(n, "A"): (300, [f"203.0.113.{i + 1}"]) for i, n in enumerate(names)}
    records[("host5", "A")] = (300, ["198.51.100.99"])  # one record the resolvers disagree on
    targets = [Target((f"{n}.example.com.", "A"), (f"203.0.113.{i + 1}",), ("192.0.2.1",), 300) for i, n in enumerate(names)]
    with fleet(5, records, delay=0.05) as servers:
        resolvers = [Resolver("127.0.0.1", port, name=f"fake{i}") for i, port in enumerate(servers.ports)]
        together = asyncio.run(query_round(targets, resolvers, timeout=2.0))
        split = run_round(targets, resolvers, timeout=2.0, processes=2)
    assert [(a.resolver, a.key, a.state) for a in split] == [(a.resolver, a.key, a.state) for a in together]
    assert {a.state for a in split} == {"new", "other"}
