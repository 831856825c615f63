"""The DNS sandbox: zone store, authoritative server and caching resolvers.

Every DNS test sends real queries over loopback with dnspython; the timing tests use
TTLs of one or two seconds so the whole module stays quick.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from cutover.records import Change, RecordSet
from cutover.sandbox import (
    AuthoritativeServer,
    CachingResolver,
    ChangeRejected,
    Sandbox,
    ResolverSpec,
    SandboxError,
    ZoneMissing,
    ZoneStore,
)
from tests.integration.servers import free_port

ZONE = "sbx.test."

pytestmark = pytest.mark.timeout(60)


def rs(name: str, rtype: str, ttl: int, *values: str) -> RecordSet:
    fqdn = ZONE if name == "@" else f"{name}.{ZONE}"
    return RecordSet.build(fqdn, rtype, ttl, values)


def ask(endpoint, name: str, rtype: str = "A", *, tcp: bool = False, timeout: float = 2.0, **make) -> dns.message.Message:
    host, port = endpoint
    fqdn = name if name.endswith(".") else (ZONE if name == "@" else f"{name}.{ZONE}")
    query = dns.message.make_query(fqdn, rtype, **make)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, host, port=port, timeout=timeout)


def values(response: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def last_ttl(response: dns.message.Message) -> int:
    return response.answer[-1].ttl


@pytest.fixture
def store(tmp_path: Path) -> ZoneStore:
    s = ZoneStore(tmp_path / "zones")
    s.create_zone(
        ZONE,
        [
            rs("www", "A", 1, "192.0.2.10"),
            rs("@", "MX", 300, "10 mail.sbx.test."),
            rs("mail", "A", 300, "192.0.2.25"),
            rs("alias", "CNAME", 300, "www.sbx.test."),
            rs("outside", "CNAME", 300, "www.example.net."),
            rs("loop1", "CNAME", 300, "loop2.sbx.test."),
            rs("loop2", "CNAME", 300, "loop1.sbx.test."),
            rs("a.b.deep", "A", 300, "192.0.2.30"),
            rs("*.wild", "A", 300, "192.0.2.40"),
            rs("sub", "NS", 300, "ns.sub.sbx.test."),
            rs("ns.sub", "A", 300, "192.0.2.53"),
        ],
        negative_ttl=1,
    )
    return s


@pytest.fixture
def server(store: ZoneStore):
    with AuthoritativeServer(store) as srv:
        yield srv
    assert srv.last_error is None  # a bug turned into SERVFAIL must still fail the test


# --------------------------------------------------------------------------- store


class TestZoneStore:
    def test_new_zone_has_soa_ns_and_records(self, store: ZoneStore) -> None:
        assert store.zones() == [ZONE]
        types = {(r.name, r.type) for r in store.records(ZONE)}
        assert {(ZONE, "SOA"), (ZONE, "NS"), ("www.sbx.test.", "A")} <= types
        assert store.serial(ZONE) == 1
        # the file is a plain zone file that any tool can read
        parsed = dns.zone.from_file(str(store.path_of(ZONE)), origin=ZONE, relativize=False)
        assert parsed.find_rdataset("www.sbx.test.", "A")[0].to_text() == "192.0.2.10"

    def test_create_refuses_to_overwrite_unless_asked(self, store: ZoneStore) -> None:
        with pytest.raises(SandboxError, match="already exists"):
            store.create_zone(ZONE)
        store.create_zone(ZONE, [rs("only", "A", 60, "192.0.2.1")], replace=True)
        assert ("www.sbx.test.", "A") not in {r.key for r in store.records(ZONE)}

    def test_each_change_bumps_the_serial_once(self, store: ZoneStore) -> None:
        www = rs("www", "A", 1, "192.0.2.10")
        assert store.apply(ZONE, [Change(www, rs("www", "A", 60, "203.0.113.10"))]) == 2
        assert store.put(ZONE, rs("new", "TXT", 60, '"x"'), rs("new2", "TXT", 60, '"y"')) == 3
        assert store.remove(ZONE, ("new.sbx.test.", "TXT")) == 4
        assert store.serial(ZONE) == 4

    def test_write_replaces_the_file_atomically(self, store: ZoneStore) -> None:
        path = store.path_of(ZONE)
        inode = path.stat().st_ino
        store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        assert path.stat().st_ino != inode  # a new file renamed into place, not rewritten
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    def test_failed_write_leaves_old_file_and_no_debris(self, store: ZoneStore, monkeypatch) -> None:
        path = store.path_of(ZONE)
        before = path.read_bytes()

        def half_write(self, f, **kwargs):
            f.write("$ORIGIN sbx.test.\n@ 300 IN SOA")
            raise OSError("disk full")

        monkeypatch.setattr(dns.zone.Zone, "to_file", half_write)
        with pytest.raises(OSError, match="disk full"):
            store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
        assert store.serial(ZONE) == 1

    def test_other_store_sees_changes_when_the_file_changes(self, store: ZoneStore) -> None:
        other = ZoneStore(store.directory)
        assert other.serial(ZONE) == 1
        store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        assert other.serial(ZONE) == 2
        assert rs("www", "A", 60, "203.0.113.10") in other.records(ZONE)

    def test_hand_edited_file_is_reread(self, store: ZoneStore) -> None:
        store.records(ZONE)  # cached
        path = store.path_of(ZONE)
        text = path.read_text().replace("192.0.2.25", "192.0.2.99")
        path.write_text(text)  # same inode, new mtime/size
        assert rs("mail", "A", 300, "192.0.2.99") in store.records(ZONE)

    def test_stale_before_is_rejected_and_nothing_written(self, store: ZoneStore) -> None:
        path = store.path_of(ZONE)
        before = path.read_bytes()
        good = Change(rs("www", "A", 1, "192.0.2.10"), rs("www", "A", 60, "203.0.113.10"))
        stale = Change(rs("mail", "A", 300, "198.51.100.99"), rs("mail", "A", 60, "203.0.113.25"))
        with pytest.raises(ChangeRejected, match=r"mail\.sbx\.test\. A changed since it was read.*found TTL 300 192\.0\.2\.25"):
            store.apply(ZONE, [good, stale])
        assert path.read_bytes() == before

    def test_ttl_drift_counts_as_a_change(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="changed since it was read"):
            store.apply(ZONE, [Change(rs("www", "A", 3600, "192.0.2.10"), None)])

    def test_create_over_existing_is_rejected(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="expected absent"):
            store.apply(ZONE, [Change(None, rs("www", "A", 60, "203.0.113.10"))])

    def test_cname_beside_other_data_is_rejected(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="CNAME together with other records"):
            store.apply(ZONE, [Change(None, rs("alias", "A", 60, "192.0.2.1"))])
        with pytest.raises(ChangeRejected, match="CNAME together with other records"):
            store.apply(ZONE, [Change(None, rs("www", "CNAME", 60, "mail.sbx.test."))])
        # replacing the A by a CNAME in one apply is fine
        www = rs("www", "A", 1, "192.0.2.10")
        store.apply(ZONE, [Change(www, None), Change(None, rs("www", "CNAME", 60, "mail.sbx.test."))])

    def test_soa_outside_names_and_apex_ns_are_protected(self, store: ZoneStore) -> None:
        soa = next(r for r in store.records(ZONE) if r.type == "SOA")
        ns = next(r for r in store.records(ZONE) if r.type == "NS" and r.name == ZONE)
        with pytest.raises(ChangeRejected, match="SOA is kept by the sandbox"):
            store.apply(ZONE, [Change(soa, None)])
        with pytest.raises(ChangeRejected, match="not in zone"):
            store.apply(ZONE, [Change(None, RecordSet.build("www.example.net.", "A", 60, ["192.0.2.1"]))])
        with pytest.raises(ChangeRejected, match="needs NS records"):
            store.apply(ZONE, [Change(ns, None)])

    def test_missing_zone(self, tmp_path: Path) -> None:
        with pytest.raises(ZoneMissing, match="no zone file for nowhere.test."):
            ZoneStore(tmp_path).records("nowhere.test.")

    def test_concurrent_writers_in_threads_and_processes_lose_nothing(self, store: ZoneStore) -> None:
        code = (
            "import sys; from cutover.sandbox import ZoneStore; from cutover.records import RecordSet\n"
            "s = ZoneStore(sys.argv[1])\n"
            "for i in range(8): s.put('sbx.test.', RecordSet.build(f'p{sys.argv[2]}-{i}.sbx.test.', 'A', 60, ['192.0.2.1']))\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(store.directory), str(n)], cwd=Path(__file__).parents[1])
            for n in range(2)
        ]

        def writer(n: int) -> None:
            for i in range(8):
                store.put(ZONE, rs(f"t{n}-{i}", "A", 60, "192.0.2.2"))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
        names = {r.name for r in ZoneStore(store.directory).records(ZONE)}
        expected = {f"{p}{n}-{i}.sbx.test." for p in "tp" for n in range(2) for i in range(8)}
        assert expected <= names
        assert store.serial(ZONE) == 1 + 32


# --------------------------------------------------------------------------- authoritative


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

        monkeypatch.setattr("cutover.sandbox.authoritative_answer", broken)
        assert ask(server.endpoint, "www").rcode() == dns.rcode.SERVFAIL
        assert isinstance(server.last_error, RuntimeError)
        server.last_error = None


# --------------------------------------------------------------------------- caching resolver


@pytest.fixture
def make_cache(server):
    made: list[CachingResolver] = []

    def make(**quirks) -> CachingResolver:
        quirks.setdefault("upstream_timeout", 0.3)
        cache = CachingResolver(server.endpoint, name=f"c{len(made)}", **quirks)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.stop()
        assert cache.last_error is None


def change_www(store: ZoneStore, ip: str = "203.0.113.10", ttl: int = 1) -> None:
    store.put(ZONE, rs("www", "A", ttl, ip))


class TestCachingResolver:
    def test_ttl_counts_down_and_expiry_brings_new_answer(self, make_cache, store) -> None:
        store.put(ZONE, rs("www", "A", 2, "192.0.2.10"))
        cache = make_cache()
        first = ask(cache.endpoint, "www")
        assert values(first) == ["192.0.2.10"] and last_ttl(first) == 2
        assert first.flags & dns.flags.RA and not first.flags & dns.flags.AA
        change_www(store, ttl=2)
        time.sleep(1.1)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 1
        time.sleep(1.0)
        fresh = ask(cache.endpoint, "www")
        assert values(fresh) == ["203.0.113.10"] and last_ttl(fresh) == 2

    def test_negative_answers_last_the_soa_minimum(self, make_cache, store) -> None:
        cache = make_cache()
        miss = ask(cache.endpoint, "later")
        assert miss.rcode() == dns.rcode.NXDOMAIN and miss.authority[0].ttl == 1
        store.put(ZONE, rs("later", "A", 60, "192.0.2.77"))
        assert ask(cache.endpoint, "later").rcode() == dns.rcode.NXDOMAIN  # still cached
        time.sleep(1.1)
        assert values(ask(cache.endpoint, "later")) == ["192.0.2.77"]

    def test_nodata_is_cached_too(self, make_cache, store) -> None:
        cache = make_cache()
        assert ask(cache.endpoint, "www", "AAAA").answer == []
        store.put(ZONE, rs("www", "AAAA", 60, "2001:db8::10"))
        again = ask(cache.endpoint, "www", "AAAA")
        assert again.answer == [] and again.rcode() == dns.rcode.NOERROR
        assert cache.remaining(f"www.{ZONE}", "AAAA") is not None

    def test_ttl_floor_holds_short_ttls_longer(self, make_cache, store) -> None:
        cache = make_cache(ttl_floor=3)
        assert last_ttl(ask(cache.endpoint, "www")) == 3
        change_www(store)
        time.sleep(1.2)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 2

    def test_serve_stale_only_when_upstream_fails(self, make_cache, store) -> None:
        store.put(ZONE, rs("mail", "A", 1, "192.0.2.25"))
        stale, plain = make_cache(serve_stale=True), make_cache()
        for cache in (stale, plain):
            ask(cache.endpoint, "www")
            ask(cache.endpoint, "mail")
        change_www(store)
        store.put(ZONE, rs("mail", "A", 1, "203.0.113.25"))
        time.sleep(1.1)
        # upstream answers: an RFC 8767 cache behaves like any other
        assert values(ask(stale.endpoint, "www")) == ["203.0.113.10"]
        # upstream gone: the expired answer is served with a 30 s TTL instead of SERVFAIL
        stale.upstream = plain.upstream = ("127.0.0.1", free_port())
        served = ask(stale.endpoint, "mail")
        assert values(served) == ["192.0.2.25"] and last_ttl(served) == 30
        assert ask(plain.endpoint, "mail").rcode() == dns.rcode.SERVFAIL

    def test_stale_for_keeps_serving_the_expired_answer(self, make_cache, store) -> None:
        cache = make_cache(stale_for=1.0)
        ask(cache.endpoint, "www")
        change_www(store)
        time.sleep(1.2)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 0
        time.sleep(1.0)
        assert values(ask(cache.endpoint, "www")) == ["203.0.113.10"]

    @pytest.mark.parametrize("mode, rcode", [("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)])
    def test_fail_modes_answer_with_an_error(self, make_cache, mode, rcode) -> None:
        r = ask(make_cache(fail=mode).endpoint, "www")
        assert r.rcode() == rcode and r.answer == []

    def test_fail_drop_never_answers_and_can_be_switched_off(self, make_cache) -> None:
        cache = make_cache(fail="drop")
        with pytest.raises(dns.exception.Timeout):
            ask(cache.endpoint, "www", timeout=0.3)
        cache.fail = None
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]

    def test_unknown_fail_mode_is_refused(self, server) -> None:
        with pytest.raises(ValueError, match="servfail, drop, refused"):
            CachingResolver(server.endpoint, fail="sometimes")

    def test_delay_slows_every_reply(self, make_cache) -> None:
        cache = make_cache(delay=0.2)
        start = time.monotonic()
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]
        assert time.monotonic() - start >= 0.2

    def test_preload_flush_and_warm(self, make_cache, store) -> None:
        cache = make_cache(preload=[rs("www", "A", 30, "198.51.100.1")])
        held = ask(cache.endpoint, "www")
        assert values(held) == ["198.51.100.1"] and last_ttl(held) == 30
        cache.flush()
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]
        change_www(store)
        cache.flush()
        warmed = cache.warm(f"www.{ZONE}", "A")
        assert values(warmed) == ["203.0.113.10"] and 0 < cache.remaining(f"www.{ZONE}") <= 1

    def test_upstream_refusal_is_passed_on_uncached(self, make_cache) -> None:
        cache = make_cache()
        assert ask(cache.endpoint, "www.example.com.").rcode() == dns.rcode.REFUSED
        assert cache.remaining("www.example.com.") is None

    def test_tcp_queries(self, make_cache) -> None:
        assert values(ask(make_cache().endpoint, "alias", tcp=True)) == ["192.0.2.10", "www.sbx.test."]


# --------------------------------------------------------------------------- façade


class TestSandbox:
    def test_default_sandbox_serves_and_describes_itself(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path) as sb:
            assert len(sb.resolvers) == 8 and len({r.port for r in sb.resolvers}) == 8
            assert all(r.group == "custom" and r.address == "127.0.0.1" for r in sb.resolvers)
            assert [r.name for r in sb.resolvers] == [f"sandbox-{i}" for i in range(1, 9)]
            assert sb.provider_settings() == {"path": str(tmp_path), "server": f"127.0.0.1:{sb.authoritative[1]}"}
            assert values(ask(sb.authoritative, "www.demo.example.")) == ["198.51.100.10"]
            rcodes = {r.name: ask((r.address, r.port), "www.demo.example.").rcode() for r in sb.resolvers}
            assert rcodes.pop("sandbox-8") == dns.rcode.SERVFAIL
            assert set(rcodes.values()) == {dns.rcode.NOERROR}
            assert "SERVFAIL" in sb.cache("sandbox-8").quirk.upper()
            description = sb.describe()
            assert description["provider"]["type"] == "sandbox" and len(description["resolvers"]) == 8
        # stopped: the ports are free again
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sb.authoritative)

    def test_existing_zone_is_kept_unless_records_are_given(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path, zone="keep.test", resolvers=()) as sb:
            sb.store.put(sb.zone, RecordSet.build("www.keep.test.", "A", 60, ["203.0.113.5"]))
        with Sandbox(tmp_path, zone="keep.test", resolvers=()) as sb:
            assert values(ask(sb.authoritative, "www.keep.test.")) == ["203.0.113.5"]
        records = [RecordSet.build("web.keep.test.", "A", 60, ["192.0.2.9"])]
        with Sandbox(tmp_path, zone="keep.test", records=records, resolvers=()) as sb:
            assert ask(sb.authoritative, "www.keep.test.").rcode() == dns.rcode.NXDOMAIN
            assert values(ask(sb.authoritative, "web.keep.test.")) == ["192.0.2.9"]

    def test_warm_fills_every_answering_cache(self, tmp_path: Path) -> None:
        specs = (ResolverSpec("a"), ResolverSpec("b", ttl_floor=10), ResolverSpec("down", fail="drop"))
        with Sandbox(tmp_path, resolvers=specs) as sb:
            sb.warm("www")
            assert sb.cache("a").remaining("www.demo.example.") is not None
            assert sb.cache("b").remaining("www.demo.example.") > 9
            assert sb.cache("down").remaining("www.demo.example.") is None
            sb.flush()
            assert sb.cache("a").remaining("www.demo.example.") is None

    def test_fixed_port_in_use_is_a_clear_error(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path, resolvers=()) as sb:
            with pytest.raises(OSError):
                Sandbox(tmp_path, resolvers=(), port=sb.authoritative[1])

    def test_serve_as_a_process(self, tmp_path: Path) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cutover.sandbox", "serve", str(tmp_path), "--zone", "proc.test"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        try:
            info = json.loads(proc.stdout.readline())
            host, port = info["authoritative"].rsplit(":", 1)
            assert info["zone"] == "proc.test." and info["provider"]["path"] == str(tmp_path)
            assert len(info["resolvers"]) == 8
            assert values(ask((host, int(port)), "www.proc.test.")) == ["198.51.100.10"]
            # a second process (this one) changes the zone; the server process serves it
            ZoneStore(tmp_path).put("proc.test.", RecordSet.build("www.proc.test.", "A", 60, ["203.0.113.7"]))
            assert values(ask((host, int(port)), "www.proc.test.")) == ["203.0.113.7"]
            first = info["resolvers"][0]
            assert values(ask((first["address"], first["port"]), "www.proc.test.")) == ["203.0.113.7"]
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
