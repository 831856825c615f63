"""``cutover.sandbox.authoritative``: the answers of a zone's own server, asked over
loopback with dnspython. The listener's and the message helpers' share of the work
(TCP, truncation, FORMERR, a bug turned into SERVFAIL) is tested through it here."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from cutover.records import RecordSet
from cutover.sandbox import AuthoritativeServer, ZoneStore
from tests.test_sandbox import ZONE, ask, last_ttl, make_store, rs, serving, values

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> ZoneStore:
    return make_store(tmp_path)


@pytest.fixture
def server(store: ZoneStore) -> Iterator[AuthoritativeServer]:
    with serving(store) as srv:
        yield srv


class TestAuthoritativeServer:
    def test_positive_answer_is_authoritative(self, server) -> None:
        r = ask(server.endpoint, "www")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA
        assert values(r) == ["192.0.2.10"] and last_ttl(r) == 1

    def test_nxdomain_carries_soa_with_negative_ttl(self, server) -> None:
        r = ask(server.endpoint, "nothing-here")
        assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
        assert r.answer == []
        (soa,) = r.authority
        assert soa.rdtype == dns.rdatatype.SOA and soa.ttl == 1  # min(SOA TTL 300, minimum 1)

    def test_nodata_and_empty_non_terminal(self, server) -> None:
        for name, rtype in (("www", "AAAA"), ("b.deep", "A"), ("deep", "A")):
            r = ask(server.endpoint, name, rtype)
            assert r.rcode() == dns.rcode.NOERROR and r.answer == [], name
            assert r.authority[0].rdtype == dns.rdatatype.SOA

    def test_cname_chain_is_followed_inside_the_zone(self, server) -> None:
        r = ask(server.endpoint, "alias")
        assert [a.rdtype for a in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        assert values(r) == ["192.0.2.10", "www.sbx.test."]
        out = ask(server.endpoint, "outside")
        assert values(out) == ["www.example.net."] and out.rcode() == dns.rcode.NOERROR
        assert ask(server.endpoint, "alias", "CNAME").answer[0].rdtype == dns.rdatatype.CNAME
        assert ask(server.endpoint, "loop1").rcode() == dns.rcode.SERVFAIL

    def test_wildcard_synthesis(self, server) -> None:
        r = ask(server.endpoint, "anything.wild")
        assert values(r) == ["192.0.2.40"]
        assert r.answer[0].name.to_text() == "anything.wild.sbx.test."
        assert ask(server.endpoint, "anything.wild", "MX").answer == []

    def test_referral_for_a_delegated_child(self, server) -> None:
        r = ask(server.endpoint, "host.sub")
        assert not r.flags & dns.flags.AA and r.answer == []
        assert r.authority[0].rdtype == dns.rdatatype.NS
        assert [a.to_text() for a in r.additional] == ["ns.sub.sbx.test. 300 IN A 192.0.2.53"]

    def test_refuses_names_outside_its_zones(self, server) -> None:
        r = ask(server.endpoint, "www.example.com.")
        assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.AA

    def test_tcp_and_changes_show_immediately(self, server, store: ZoneStore) -> None:
        assert values(ask(server.endpoint, "www", tcp=True)) == ["192.0.2.10"]
        store.put(ZONE, rs("www", "A", 1, "203.0.113.10"))
        assert values(ask(server.endpoint, "www")) == ["203.0.113.10"]
        soa = ask(server.endpoint, "@", "SOA").answer[0][0]
        assert soa.serial == 2

    def test_axfr_over_tcp(self, server, store: ZoneStore) -> None:
        host, port = server.endpoint
        transferred = dns.zone.from_xfr(dns.query.xfr(host, ZONE, port=port, timeout=2, relativize=False), relativize=False)
        got = sorted(
            RecordSet.build(n.to_text(), dns.rdatatype.to_text(r.rdtype), r.ttl, [x.to_text() for x in r])
            for n, node in transferred.items()
            for r in node
        )
        assert got == store.records(ZONE)

    def test_axfr_over_udp_is_refused(self, server) -> None:
        r = ask(server.endpoint, "@", "AXFR")
        assert r.rcode() == dns.rcode.FORMERR

    def test_large_answer_truncates_over_udp_only(self, server, store: ZoneStore) -> None:
        store.put(ZONE, rs("big", "TXT", 60, *(f'"{i:03d}-' + "x" * 60 + '"' for i in range(12))))
        udp = ask(server.endpoint, "big", "TXT", use_edns=False)
        assert udp.flags & dns.flags.TC and udp.answer == []
        assert len(ask(server.endpoint, "big", "TXT", tcp=True).answer[0]) == 12
        assert len(ask(server.endpoint, "big", "TXT", use_edns=0, payload=4096).answer[0]) == 12

    def test_garbage_gets_formerr_or_silence(self, server) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.sendto(b"\x12\x34\x01", server.endpoint)  # not even a header: nothing to answer
            with pytest.raises(TimeoutError):
                sock.recv(512)
            sock.sendto(struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x05ju", server.endpoint)
            reply = dns.message.from_wire(sock.recv(512))
        assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR


    def test_internal_error_becomes_servfail(self, server, monkeypatch) -> None:
        def broken(data, query):
            raise RuntimeError("bug")

        monkeypatch.setattr("cutover.sandbox.authoritative.authoritative_answer", broken)
        assert ask(server.endpoint, "www").rcode() == dns.rcode.SERVFAIL
        assert isinstance(server.last_error, RuntimeError)
        server.last_error = None
