"""cutover.verify: which servers to ask after a change, and what each of them serves.

No network: the system resolver, the zone's own servers and the query engine are
replaced by scripted ones at the exact seams ``verify`` calls (``dns.resolver.resolve``,
``dns.query.udp_with_fallback``, ``run_round``), so each test also shows whom ``verify``
asked, and that an in-zone name is never asked of the system resolver when the zone's
own data has the answer.
"""

from __future__ import annotations

from typing import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.resolver
import dns.rrset
import pytest

from cutover import verify
from cutover.observe.types import Answer, Target
from cutover.records import Change, RecordSet, index
from cutover.resolvers import Resolver
from tests.observations import answer

ZONE = "example.test."
NS1_A = RecordSet.build("ns1.example.test.", "A", 3600, ["192.0.2.53"])
NS1_AAAA = RecordSet.build("ns1.example.test.", "AAAA", 3600, ["2001:db8::53"])


class SystemResolver:
    """The system resolver, scripted: ``known[(name, type)]`` holds addresses; every question is logged."""

    def __init__(self) -> None:
        self.known: dict[tuple[str, str], list[str]] = {}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, host: str, rdtype: str, lifetime: float | None = None) -> list:
        self.asked.append((str(host), rdtype))
        if (str(host), rdtype) not in self.known:
            raise dns.resolver.NXDOMAIN()
        return list(dns.rrset.from_text_list(host, 60, "IN", rdtype, self.known[(str(host), rdtype)]))


@pytest.fixture
def system_resolver(monkeypatch) -> SystemResolver:
    fake = SystemResolver()
    monkeypatch.setattr(dns.resolver, "resolve", fake.resolve)
    return fake


@pytest.fixture
def zone_server(monkeypatch) -> Callable:
    """The zone's own servers, scripted: ``script(query, address, port)`` returns a response or raises."""
    asked: list = []
    holder: dict = {}

    def udp_with_fallback(query, where, port=53, timeout=None):
        asked.append((where, port, query.question[0].name.to_text(), dns.rdatatype.to_text(query.question[0].rdtype),
                      bool(query.flags & dns.flags.RD)))
        return holder["script"](query, where, port), False

    monkeypatch.setattr(dns.query, "udp_with_fallback", udp_with_fallback)

    def install(script):
        holder["script"] = script
        return asked

    return install


def reply(query: dns.message.Message, *, aa: bool = True, rcode: int = dns.rcode.NOERROR,
          answer: tuple[str, ...] = (), additional: tuple[str, ...] = ()) -> dns.message.Message:
    """A response to ``query``: ``answer``/``additional`` hold values of the asked name and type."""
    r = dns.message.make_response(query)
    r.set_rcode(rcode)
    if aa:
        r.flags |= dns.flags.AA
    q = query.question[0]
    if answer:
        r.answer.append(dns.rrset.from_text_list(q.name, 300, "IN", q.rdtype, list(answer)))
    if additional:
        r.additional.append(dns.rrset.from_text_list(q.name, 300, "IN", q.rdtype, list(additional)))
    return r


# --------------------------------------------------------------------------- negative TTL and targets


def soa(ttl: int, minimum: int) -> dict:
    return index([RecordSet.build(ZONE, "SOA", ttl, [f"ns1.example.test. host.example.test. 1 7200 900 1209600 {minimum}"])])


def test_negative_ttl_is_the_smaller_of_the_soa_ttl_and_its_minimum():
    assert verify.negative_ttl(soa(3600, 600), ZONE) == 600
    assert verify.negative_ttl(soa(300, 600), ZONE) == 300
    assert verify.negative_ttl(soa(0, 600), ZONE) == 0


def test_negative_ttl_without_an_soa_is_the_default():
    assert verify.negative_ttl({}, ZONE) == verify.DEFAULT_NEGATIVE_TTL == 3600


def test_targets_after_an_update_a_creation_and_a_deletion():
    old = RecordSet.build("www.example.test.", "A", 3600, ["198.51.100.10"])
    new = RecordSet.build("www.example.test.", "A", 300, ["203.0.113.10"])
    created = RecordSet.build("new.example.test.", "A", 300, ["203.0.113.20"])
    update, create, delete = verify.targets([Change(old, new), Change(None, created), Change(old, None)], 600)
    assert (update.new, update.old, update.old_ttl) == (("203.0.113.10",), ("198.51.100.10",), 3600)
    assert (create.new, create.old, create.old_ttl) == (("203.0.113.20",), (), 600)
    assert (delete.new, delete.old, delete.old_ttl) == ((), ("198.51.100.10",), 3600)


# --------------------------------------------------------------------------- endpoints


def test_address_and_port_entries_need_no_lookup(system_resolver):
    servers, problems = verify.endpoints(["127.0.0.1:5300", "[2001:db8::53]:5353", "192.0.2.53", "2001:db8::54"])
    assert [(s.address, s.port, s.name, s.group) for s in servers] == [
        ("127.0.0.1", 5300, "127.0.0.1:5300", "authoritative"),
        ("2001:db8::53", 5353, "[2001:db8::53]:5353", "authoritative"),
        ("192.0.2.53", 53, "192.0.2.53", "authoritative"),
        ("2001:db8::54", 53, "2001:db8::54", "authoritative"),
    ]
    assert problems == [] and system_resolver.asked == []


def test_an_in_zone_name_is_resolved_from_the_live_records(system_resolver, zone_server):
    asked = zone_server(lambda q, a, p: pytest.fail("the zone's servers were asked"))
    live = index([NS1_A, NS1_AAAA])
    servers, problems = verify.endpoints(["NS1.Example.Test.", "127.0.0.1:5300"], zone=ZONE, live=live)
    assert [(s.address, s.port, s.name) for s in servers] == [
        ("192.0.2.53", 53, "NS1.Example.Test."), ("2001:db8::53", 53, "NS1.Example.Test."), ("127.0.0.1", 5300, "127.0.0.1:5300")]
    assert problems == [] and system_resolver.asked == [] and asked == []


def test_an_in_zone_name_not_read_is_asked_of_the_zone_servers_without_recursion(system_resolver, zone_server):
    def script(query, address, port):
        if address == "127.0.0.1":
            raise dns.exception.Timeout()
        rdtype = query.question[0].rdtype
        return reply(query, answer=("192.0.2.53",) if rdtype == dns.rdatatype.A else ("2001:db8::53",))

    asked = zone_server(script)
    servers, problems = verify.endpoints(["ns1.example.test", "127.0.0.1:5300", "127.0.0.2:5301"], zone=ZONE, live={})
    assert [(s.address, s.name) for s in servers if s.name == "ns1.example.test"] == [
        ("192.0.2.53", "ns1.example.test"), ("2001:db8::53", "ns1.example.test")]
    assert problems == [] and system_resolver.asked == []
    assert asked[0] == ("127.0.0.1", 5300, "ns1.example.test.", "A", False)  # the first server is silent ...
    assert [a[:2] for a in asked[1:]] == [("127.0.0.2", 5301)] * 2  # ... the next one is asked A and AAAA


def test_the_glue_of_a_referral_counts_as_the_zone_servers_answer(system_resolver, zone_server):
    zone_server(lambda q, a, p: reply(q, aa=False, additional=("192.0.2.99",) if q.question[0].rdtype == dns.rdatatype.A else ()))
    servers, problems = verify.endpoints(["ns1.sub.example.test.", "127.0.0.1:5300"], zone=ZONE, live={})
    assert [s.address for s in servers if s.name.startswith("ns1")] == ["192.0.2.99"] and problems == []


def test_an_in_zone_name_the_zone_says_has_no_address_is_reported(system_resolver, zone_server):
    zone_server(lambda q, a, p: reply(q))  # authoritative, no data
    servers, problems = verify.endpoints(["ns9.example.test.", "127.0.0.1:5300"], zone=ZONE, live={})
    assert [s.name for s in servers] == ["127.0.0.1:5300"]
    assert problems == [verify.ServerResult("ns9.example.test.", "unreachable",
                                            "example.test. has no A or AAAA record for it (asked 127.0.0.1:5300)")]
    assert system_resolver.asked == []


@pytest.mark.parametrize("script", [
    lambda q, a, p: reply(q, aa=False),                      # not authoritative, no glue
    lambda q, a, p: reply(q, rcode=dns.rcode.REFUSED),
    lambda q, a, p: reply(q, rcode=dns.rcode.SERVFAIL),
])
def test_when_no_zone_server_can_say_the_system_resolver_is_asked(system_resolver, zone_server, script):
    zone_server(script)
    system_resolver.known[("ns1.example.test", "A")] = ["192.0.2.77"]
    servers, problems = verify.endpoints(["ns1.example.test", "127.0.0.1:5300"], zone=ZONE, live={})
    assert [s.address for s in servers if s.name == "ns1.example.test"] == ["192.0.2.77"] and problems == []
    assert system_resolver.asked == [("ns1.example.test", "A"), ("ns1.example.test", "AAAA")]


def test_an_in_zone_name_nobody_knows_gets_the_hint_to_give_addresses(system_resolver):
    servers, problems = verify.endpoints(["ns1.example.test."], zone=ZONE, live={})
    assert servers == []
    assert problems == [verify.ServerResult(
        "ns1.example.test.", "unreachable",
        "the name has no address; it is inside the zone: give verify.nameservers as address[:port] when the zone's "
        "servers are in no public DNS")]


def test_a_name_outside_the_zone_is_asked_of_the_system_resolver_only(system_resolver, zone_server):
    asked = zone_server(lambda q, a, p: pytest.fail("the zone's servers were asked"))
    system_resolver.known[("ns1.dns-host.example", "AAAA")] = ["2001:db8::1", "2001:db8::2"]
    servers, problems = verify.endpoints(["ns1.dns-host.example.", "ns2.dns-host.example", "127.0.0.1:5300"],
                                         zone=ZONE, live=index([NS1_A]))
    assert [(s.address, s.name) for s in servers][:2] == [("2001:db8::1", "ns1.dns-host.example."),
                                                          ("2001:db8::2", "ns1.dns-host.example.")]
    assert problems == [verify.ServerResult("ns2.dns-host.example", "unreachable", "the name has no address")]
    assert asked == []


def test_without_a_zone_every_name_goes_to_the_system_resolver(system_resolver):
    system_resolver.known[("ns1.example.test", "A")] = ["192.0.2.1"]
    servers, _ = verify.endpoints(["ns1.example.test."], live=index([NS1_A]))
    assert [s.address for s in servers] == ["192.0.2.1"]


# --------------------------------------------------------------------------- poll


WWW = Target(("www.example.test.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
MAIL = Target(("mail.example.test.", "A"), ("203.0.113.25",), ("198.51.100.25",), 300)
NS1 = Resolver("192.0.2.53", name="ns1.example.test", group="authoritative")
NS2 = Resolver("127.0.0.1", port=5301, name="127.0.0.1:5301", group="authoritative")


@pytest.fixture
def rounds(monkeypatch) -> Callable:
    """Scripted rounds: each call of ``run_round`` gives the next list of answers; no sleeping."""
    def install(*scripted: list[Answer]):
        queue = list(scripted)
        log = {"rounds": 0, "slept": []}

        def run_round(wanted, servers, *, timeout, retries):
            log["rounds"] += 1
            return queue.pop(0) if len(queue) > 1 else queue[0]

        monkeypatch.setattr(verify, "run_round", run_round)
        monkeypatch.setattr(verify.time, "sleep", lambda s: log["slept"].append(s))
        return log

    return install


def test_poll_waits_until_every_server_serves_the_new_data(rounds):
    lagging = [answer(NS1, WWW, "new"), answer(NS1, MAIL, "new"), answer(NS2, WWW, "old"), answer(NS2, MAIL, "new")]
    caught_up = [answer(s, t, "new") for s in (NS1, NS2) for t in (WWW, MAIL)]
    log = rounds(lagging, caught_up)
    said: list[str] = []
    results = verify.poll([WWW, MAIL], [NS1, NS2], timeout=60, interval=2, progress=said.append)
    assert results == [verify.ServerResult("ns1.example.test (192.0.2.53)", "new", "serves the new data"),
                       verify.ServerResult("127.0.0.1:5301", "new", "serves the new data")]
    assert said == ["waiting for 1 of 2 authoritative servers: 127.0.0.1:5301 (stale)"]
    assert log["rounds"] == 2 and log["slept"] == [2]


def test_poll_gives_up_at_the_timeout_with_each_server_named(rounds):
    stuck = [answer(NS1, WWW, "old"), answer(NS1, MAIL, "new"),
             Answer(NS2, WWW.key, "timeout", None, ()), Answer(NS2, MAIL.key, "refused", None, ())]
    log = rounds(stuck)
    results = verify.poll([WWW, MAIL], [NS1, NS2], timeout=0, interval=2)
    assert results == [verify.ServerResult("ns1.example.test (192.0.2.53)", "stale", "www.example.test. A: old"),
                       verify.ServerResult("127.0.0.1:5301", "unreachable", "timeout")]
    assert log["rounds"] == 1 and log["slept"] == []


def test_a_server_with_one_silent_and_one_wrong_answer_is_stale_not_unreachable(rounds):
    rounds([Answer(NS1, WWW.key, "timeout", None, ()), answer(NS1, MAIL, "other")])
    (result,) = verify.poll([WWW, MAIL], [NS1], timeout=0)
    assert (result.state, result.detail) == ("stale", "www.example.test. A: timeout; mail.example.test. A: other")
