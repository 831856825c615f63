"""cutover.delegation against fake DNS servers on loopback: finding the old DNS host's servers.

After a move between DNS hosts the old NS names' addresses are asked at the parent first
(its own host records, or the glue of a referral), one parent server after another,
and only then of the system resolver, which here is pointed at a fake resolver on
loopback too: nothing leaves 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from cutover import delegation
from cutover.observe.types import OLD_HOST, PARENT
from cutover.resolvers import Resolver
from tests.integration.servers.dnsfake import FakeNet, FakeServer, fakenet  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

OLD_NS1, OLD_NS2 = "ns1.old-host.test.", "ns2.old-host.test."


@dataclass
class Referring(FakeServer):
    """A parent server that delegates ``child``: a question below it gets a referral (NS in
    the authority section, glue in the additional section, no AA), as a TLD server answers."""

    child: str = "old-host.test."
    child_ns: tuple[str, ...] = (OLD_NS1, OLD_NS2)
    glue: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def answer(self, query: dns.message.Message, tcp: bool) -> dns.message.Message:
        question = query.question[0]
        if not question.name.is_subdomain(dns.name.from_text(self.child)):
            return super().answer(query, tcp)
        response = dns.message.make_response(query)
        response.authority.append(dns.rrset.from_text_list(self.child, 86400, "IN", "NS", list(self.child_ns)))
        for (name, rtype), values in self.glue.items():
            response.additional.append(dns.rrset.from_text_list(name, 86400, dns.rdataclass.IN, rtype, values))
        return response


def parent(server: FakeServer) -> Resolver:
    return Resolver("127.0.0.1", server.port, f"parent:{server.port}", group=PARENT)


def found(servers: list[Resolver]) -> list[tuple[str, int, str, str]]:
    return [(s.address, s.port, s.name, s.group) for s in servers]


@pytest.fixture
def system_resolver(fakenet, monkeypatch) -> FakeServer:
    """A recursive resolver on loopback standing in for the system's (dnspython's default)."""
    server = fakenet.add(origin="test.")
    stub = dns.resolver.Resolver(configure=False)
    stub.nameservers = ["127.0.0.1"]
    stub.port = server.port
    monkeypatch.setattr(dns.resolver, "default_resolver", stub)
    return server


@pytest.fixture(autouse=True)
def quick(monkeypatch) -> None:
    monkeypatch.setattr(delegation, "LOOKUP_TIMEOUT", 0.3)


# --------------------------------------------------------------------------- servers by address


def test_address_entries_become_servers_of_the_group_asked_for():
    assert found(delegation.servers(["127.0.0.1:5300", "192.0.2.1", "[2001:db8::1]:53"], OLD_HOST)) == [
        ("127.0.0.1", 5300, "127.0.0.1:5300", OLD_HOST),
        ("192.0.2.1", 53, "192.0.2.1", OLD_HOST),
        ("2001:db8::1", 53, "[2001:db8::1]:53", OLD_HOST),
    ]
    assert [s.group for s in delegation.parent_servers(["127.0.0.1:5300"])] == [PARENT]


# --------------------------------------------------------------------------- the old host, at the parent


def test_the_old_host_is_found_by_the_parents_host_records(fakenet, system_resolver):
    tld = fakenet.add(origin="test.", authoritative=True, records={
        (OLD_NS1, "A"): (86400, ["192.0.2.11"]),
        (OLD_NS1, "AAAA"): (86400, ["2001:db8::11"]),
        (OLD_NS2, "A"): (86400, ["192.0.2.12", "192.0.2.10"]),
    })
    servers = delegation.old_host([OLD_NS1, OLD_NS2], [parent(tld)])
    assert found(servers) == [
        ("192.0.2.11", 53, "ns1.old-host.test", OLD_HOST),
        ("2001:db8::11", 53, "ns1.old-host.test", OLD_HOST),
        ("192.0.2.10", 53, "ns2.old-host.test", OLD_HOST),
        ("192.0.2.12", 53, "ns2.old-host.test", OLD_HOST),
    ]
    assert tld.recursion_desired and not any(tld.recursion_desired)
    assert system_resolver.queries == 0


def test_the_glue_of_a_referral_is_used(fakenet, system_resolver):
    tld = fakenet.start(Referring(origin="test.", glue={(OLD_NS1, "A"): ["192.0.2.21"], (OLD_NS2, "A"): ["192.0.2.22"]}))
    assert found(delegation.old_host([OLD_NS1, OLD_NS2], [parent(tld)])) == [
        ("192.0.2.21", 53, "ns1.old-host.test", OLD_HOST),
        ("192.0.2.22", 53, "ns2.old-host.test", OLD_HOST),
    ]
    assert system_resolver.queries == 0


def test_glue_for_other_names_is_not_taken_for_the_name_asked(fakenet, system_resolver):
    tld = fakenet.start(Referring(origin="test.", glue={(OLD_NS2, "A"): ["192.0.2.22"]}))
    system_resolver.set(OLD_NS1, "A", 60, ["192.0.2.31"])
    assert found(delegation.old_host([OLD_NS1], [parent(tld)])) == [("192.0.2.31", 53, "ns1.old-host.test", OLD_HOST)]


def test_a_silent_parent_server_is_passed_over_for_the_next(fakenet, system_resolver):
    dead = fakenet.add(origin="test.", behaviour="drop")
    refusing = fakenet.add(origin="test.", behaviour="refused")
    tld = fakenet.add(origin="test.", authoritative=True, records={(OLD_NS1, "A"): (86400, ["192.0.2.11"])})
    servers = delegation.old_host([OLD_NS1], [parent(dead), parent(refusing), parent(tld)])
    assert found(servers) == [("192.0.2.11", 53, "ns1.old-host.test", OLD_HOST)]
    assert dead.queries == 2 and refusing.queries == 2 and tld.queries == 2  # A and AAAA at each
    assert system_resolver.queries == 0


def test_a_name_no_parent_knows_is_asked_of_the_system_resolver(fakenet, system_resolver):
    tld = fakenet.add(origin="test.", authoritative=True, records={(OLD_NS1, "A"): (86400, ["192.0.2.11"])})
    system_resolver.set(OLD_NS2, "AAAA", 60, ["2001:db8::22"])
    servers = delegation.old_host([OLD_NS1, OLD_NS2], [parent(tld)])
    assert found(servers) == [
        ("192.0.2.11", 53, "ns1.old-host.test", OLD_HOST),
        ("2001:db8::22", 53, "ns2.old-host.test", OLD_HOST),
    ]
    assert system_resolver.queries == 2  # A and AAAA of ns2 only


def test_without_any_parent_every_name_is_asked_of_the_system_resolver(system_resolver):
    system_resolver.set(OLD_NS1, "A", 60, ["192.0.2.41"])
    assert found(delegation.old_host([OLD_NS1], [])) == [("192.0.2.41", 53, "ns1.old-host.test", OLD_HOST)]


def test_a_name_nobody_knows_gives_no_server(fakenet, system_resolver):
    tld = fakenet.add(origin="test.", authoritative=True)
    assert delegation.old_host([OLD_NS1], [parent(tld)]) == []


def test_a_parent_on_another_port_is_asked_there(fakenet, system_resolver):
    """The lab's parent listens on a high port; the old host's addresses are still port 53."""
    tld = fakenet.add(origin="test.", authoritative=True, records={(OLD_NS1, "A"): (86400, ["127.0.0.1"])})
    (server,) = delegation.old_host([OLD_NS1.rstrip(".")], delegation.parent_servers([tld.address]))
    assert (server.address, server.port, server.name) == ("127.0.0.1", 53, "ns1.old-host.test")
    assert tld.queries == 2
