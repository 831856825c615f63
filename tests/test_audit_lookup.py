"""The audit's lanes: per-server concurrency, the token bucket, the total bound, and the
per-domain steps, against a scripted engine (the real one is in tests/integration/test_audit.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from cutover.audit import lookup
from cutover.audit.lookup import Auditor, Budget, Dispatcher, Limits, TokenBucket, target
from cutover.observe.types import AUTHORITATIVE, PARENT, Answer
from cutover.resolvers import Resolver

RESOLVER = Resolver("127.0.0.1", 5353)


class ScriptedEngine:
    """Stands in for ``engine.query_round``: answers from ``zone`` (by group, name, type)
    after ``delay``, and records how many questions each server had in flight."""

    def __init__(self, zone: dict, delay: float = 0.01, slow: frozenset = frozenset()) -> None:
        self.zone, self.delay, self.slow = zone, delay, slow
        self.inflight: Counter = Counter()
        self.peak: Counter = Counter()
        self.asked: list[tuple[str, str, str]] = []
        self.sent_at: list[float] = []

    async def query_round(self, targets, resolvers, *, timeout, retries, concurrency):
        assert len(resolvers) == 1
        server = resolvers[0]
        self.inflight[server] += len(targets)
        self.peak[server] = max(self.peak[server], self.inflight[server])
        self.sent_at.append(time.monotonic())
        try:
            out = []
            for t in targets:
                self.asked.append((server.address, t.name, t.type))
                await asyncio.sleep(0.5 if (server.address, t.name) in self.slow else self.delay)
                group = "auth" if server.group == AUTHORITATIVE else "parent" if server.group == PARENT else "resolver"
                found = self.zone.get((group, server.address, t.name, t.type), self.zone.get((group, t.name, t.type)))
                if found is None:
                    out.append(Answer(server, t.key, "nxdomain", None, ()))
                elif isinstance(found, str):
                    out.append(Answer(server, t.key, found, None, (), "rcode " + found.upper()))
                else:
                    out.append(Answer(server, t.key, "other" if found else "nodata", 300, tuple(found)))
            return out
        finally:
            self.inflight[server] -= len(targets)


@pytest.fixture
def engine(monkeypatch):
    def install(zone, **kw):
        scripted = ScriptedEngine(zone, **kw)
        monkeypatch.setattr(lookup.engine, "query_round", scripted.query_round)
        return scripted
    return install


def test_budget_and_bucket():
    async def scenario():
        budget = Budget(3)
        assert await budget.take(5) == 3
        waiter = asyncio.ensure_future(budget.take(2))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        budget.give(1)
        assert await waiter == 1
        now = [0.0]
        bucket = TokenBucket(100, clock=lambda: now[0])
        assert bucket.capacity == 10 and await bucket.take(50) == 10
        now[0] = 0.05
        assert await bucket.take(50) == 5
        bucket.refund(100)
        assert bucket.tokens == 10
    asyncio.run(scenario())


def test_a_lane_keeps_its_server_within_concurrency_and_rate(engine):
    scripted = engine({})
    server = Resolver("192.0.2.53", group=AUTHORITATIVE)

    async def scenario():
        dispatcher = Dispatcher(Limits(timeout=1, retries=0, concurrency=4, rate=200))
        start = time.monotonic()
        answers = await asyncio.gather(*(dispatcher.ask(target(f"n{i}.example.", "A"), server) for i in range(60)))
        return answers, time.monotonic() - start, dispatcher.sent

    answers, elapsed, sent = asyncio.run(scenario())
    assert len(answers) == sent == 60 and all(a.state == "nxdomain" for a in answers)
    assert scripted.peak[server] <= 4
    assert elapsed >= (60 - 20) / 200 * 0.9  # the bucket: 20 at once (a tenth of a second's worth), then 200/s


def test_a_slow_question_holds_only_its_own_slot(engine):
    scripted = engine({}, slow=frozenset({("192.0.2.53", "n0.example.")}))
    server = Resolver("192.0.2.53", group=AUTHORITATIVE)

    async def scenario():
        dispatcher = Dispatcher(Limits(timeout=1, retries=0, concurrency=2, rate=0))
        slow = asyncio.ensure_future(dispatcher.ask(target("n0.example.", "A"), server))
        start = time.monotonic()
        await asyncio.gather(*(dispatcher.ask(target(f"n{i}.example.", "A"), server) for i in range(1, 21)))
        fast = time.monotonic() - start
        await slow
        return fast

    assert asyncio.run(scenario()) < 0.4  # 20 questions through the one free slot while n0 waits
    assert scripted.peak[server] <= 2


D = "example.com."
ZONE = {
    ("resolver", D, "NS"): ["ns1.dns.example.", "ns2.dns.example."],
    ("resolver", "ns1.dns.example.", "A"): ["192.0.2.53"], ("resolver", "ns1.dns.example.", "AAAA"): [],
    ("resolver", "ns2.dns.example.", "A"): ["192.0.2.54"], ("resolver", "ns2.dns.example.", "AAAA"): [],
    ("auth", "192.0.2.53", D, "SOA"): ["ns1.dns.example. h.example. 7 1 1 1 1"],
    ("auth", "192.0.2.54", D, "SOA"): ["ns1.dns.example. h.example. 7 1 1 1 1"],
    ("auth", D, "A"): ["203.0.113.10"], ("auth", D, "AAAA"): [],
    ("auth", f"www.{D}", "A"): [], ("auth", f"www.{D}", "AAAA"): [], ("auth", f"www.{D}", "CNAME"): ["web.host.example."],
    ("resolver", "web.host.example.", "A"): ["198.51.100.10"], ("resolver", "web.host.example.", "AAAA"): [],
    ("auth", D, "MX"): ["0 .", "10 mail.example.com.", "20 mx.hosted.example."],  # the engine sorts values
    ("auth", f"mail.{D}", "A"): ["203.0.113.10"], ("auth", f"mail.{D}", "AAAA"): [],
    ("resolver", "mx.hosted.example.", "A"): ["192.0.2.25"], ("resolver", "mx.hosted.example.", "AAAA"): [],
    ("auth", f"shop.{D}", "A"): ["203.0.113.10"], ("auth", f"shop.{D}", "AAAA"): [],
}


def observe(domain: str, names=(), resolvers=(RESOLVER,)):
    async def scenario():
        dispatcher = Dispatcher(Limits(timeout=1, retries=0, rate=0))
        return await Auditor(resolvers, names, dispatcher).observe(domain)
    return asyncio.run(scenario())


def test_the_steps_of_one_domain(engine):
    scripted = engine(ZONE)
    obs = observe(D, names=("shop",))
    assert obs.nameservers == ("ns1.dns.example.", "ns2.dns.example.") and obs.problem == ""
    assert [(c.server.address, c.state, c.serial) for c in obs.servers] == [("192.0.2.53", "ok", 7), ("192.0.2.54", "ok", 7)]
    found = {(lk.name, lk.type, lk.role, lk.values, lk.via) for lk in obs.lookups if lk.state == "other"}
    assert found == {
        (D, "A", "apex", ("203.0.113.10",), ""),
        (D, "MX", "apex", ("0 .", "10 mail.example.com.", "20 mx.hosted.example."), ""),
        (f"shop.{D}", "A", "name", ("203.0.113.10",), ""),
        (f"mail.{D}", "A", "mx", ("203.0.113.10",), "MX 10 mail.example.com."),
        ("mx.hosted.example.", "A", "mx", ("192.0.2.25",), "MX 20 mx.hosted.example."),
        ("web.host.example.", "A", "cname", ("198.51.100.10",), f"CNAME www.{D} -> web.host.example."),
    }
    # one server per serial is asked the questions; the other only the SOA
    assert {server for server, _, rtype in scripted.asked if rtype == "MX"} == {"192.0.2.53"}


def test_a_server_that_fails_a_question_is_replaced_by_one_with_the_same_serial(engine):
    zone = dict(ZONE)
    zone[("auth", "192.0.2.53", D, "A")] = "timeout"
    engine(zone)
    obs = observe(D)
    apex = [lk for lk in obs.lookups if lk.name == D and lk.type == "A"]
    assert apex[0].values == ("203.0.113.10",) and apex[0].source == "ns2.dns.example. (192.0.2.54)"


def test_lame_delegation_found_through_the_parent(engine):
    zone = {
        ("resolver", D, "NS"): "servfail",
        ("resolver", "com.", "NS"): ["a.gtld.example."],
        ("resolver", "a.gtld.example.", "A"): ["192.0.2.1"], ("resolver", "a.gtld.example.", "AAAA"): [],
        ("parent", D, "NS"): ["ns1.lame.example."],
        ("resolver", "ns1.lame.example.", "A"): ["192.0.2.99"], ("resolver", "ns1.lame.example.", "AAAA"): [],
        ("auth", D, "SOA"): "refused",
    }
    engine(zone)
    obs = observe(D)
    assert obs.nameservers == ("ns1.lame.example.",)
    assert [(c.server.label, c.state) for c in obs.servers] == [("ns1.lame.example. (192.0.2.99)", "refused")]
    assert obs.notes == ("resolver 127.0.0.1:5353: SERVFAIL for the NS records; the servers named by the parent zone "
                         "were asked",)


def test_no_such_domain_and_a_name_inside_another_zone(engine):
    engine({("resolver", "www.example.org.", "NS"): [], ("resolver", "org.", "NS"): ["a.org.example."],
            ("resolver", "a.org.example.", "A"): ["192.0.2.2"], ("resolver", "a.org.example.", "AAAA"): [],
            ("parent", "www.example.org.", "NS"): []})
    assert observe("gone.example.net.").problem == "the domain does not exist (NXDOMAIN from resolver 127.0.0.1:5353)"
    assert observe("www.example.org.").problem.startswith("no NS records: the name is inside another zone")


def test_a_second_resolver_is_asked_what_the_first_failed(engine):
    other = Resolver("127.0.0.2", 5353)
    zone = dict(ZONE)
    zone[("resolver", D, "NS")] = "servfail"
    scripted = engine(zone)

    async def scenario():
        dispatcher = Dispatcher(Limits(timeout=1, retries=0, rate=0))
        auditor = Auditor((RESOLVER, other), (), dispatcher)
        first = await auditor.resolve(D, "NS", shared=False)
        shared = await asyncio.gather(*(auditor.resolve("ns1.dns.example.", "A") for _ in range(5)))
        return first, shared

    first, shared = asyncio.run(scenario())
    assert first.state == "servfail" and [a for a in scripted.asked if a[1] == D][:2] == [
        ("127.0.0.1", D, "NS"), ("127.0.0.2", D, "NS")]
    assert sum(1 for a in scripted.asked if a[1] == "ns1.dns.example.") == 1 and len(shared) == 5


def test_audit_many_emits_every_domain_even_a_failing_one(engine, monkeypatch):
    engine(ZONE)
    seen = []

    async def broken(self, domain):
        raise RuntimeError("boom")

    async def scenario():
        return await lookup.audit_many([D, "example.net."], [RESOLVER], (), Limits(rate=0), seen.append, window=1)

    asyncio.run(scenario())
    assert {o.domain for o in seen} == {D, "example.net."}
    monkeypatch.setattr(Auditor, "observe", broken)
    seen.clear()
    asyncio.run(scenario())
    assert [o.problem for o in seen] == ["unexpected failure: RuntimeError: boom"] * 2
