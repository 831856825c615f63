"""The ``sandbox`` provider: conformance, its own error paths, and a cutover seen through caches.

The scenario test is the demo in miniature: caches hold the old answer, the provider
changes the zone, and each cache moves to the new answer when its quirks allow.
"""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from cutover.errors import ProviderError, UsageError
from cutover.records import Change, RecordSet
from cutover.resolvers import Resolver
from cutover.sandbox import AuthoritativeServer, ResolverSpec, Sandbox, ZoneStore
from providers.base import Provider
from providers.registry import provider_class
from providers.sandbox import SandboxProvider
from tests.integration.conformance import ProviderConformance, rs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ZONE = "conformance.test."


@pytest.fixture
def zone_dir(tmp_path: Path) -> Path:
    ZoneStore(tmp_path).create_zone(ZONE)
    return tmp_path


@pytest.fixture
def authoritative(zone_dir: Path):
    with AuthoritativeServer(ZoneStore(zone_dir)) as server:
        yield server


class TestSandboxConformance(ProviderConformance):
    @pytest.fixture
    def provider(self, zone_dir: Path, authoritative: AuthoritativeServer):
        p = SandboxProvider(ZONE, {"path": str(zone_dir), "server": f"127.0.0.1:{authoritative.port}"})
        yield p
        p.close()


def query(endpoint: tuple[str, int] | Resolver, name: str, rtype: str = "A") -> dns.message.Message:
    host, port = (endpoint.address, endpoint.port) if isinstance(endpoint, Resolver) else endpoint
    return dns.query.udp(dns.message.make_query(name, rtype), host, port=port, timeout=2)


def answer(endpoint, name: str, rtype: str = "A") -> tuple[str, ...]:
    r = query(endpoint, name, rtype)
    if r.rcode() != dns.rcode.NOERROR:
        return (dns.rcode.to_text(r.rcode()),)
    return tuple(sorted(rd.to_text() for rrset in r.answer for rd in rrset))


class TestSandboxProvider:
    def test_registered_under_its_entry_point(self) -> None:
        assert provider_class("sandbox") is SandboxProvider

    def test_settings_are_checked(self) -> None:
        assert SandboxProvider.check_settings({"path": "/tmp/x", "server": "127.0.0.1:5353"}) == []
        ((key, message),) = SandboxProvider.check_settings({"path": "/tmp/x", "server": "ns1.example:53"})
        assert key == "server" and "not an IP address" in message
        assert SandboxProvider.check_settings({"path": ""})[0][0] == "path"
        with pytest.raises(UsageError, match="'path'"):
            SandboxProvider(ZONE, {})

    def test_apply_is_visible_to_the_server_at_once(self, zone_dir: Path, authoritative) -> None:
        p = SandboxProvider(ZONE, {"path": str(zone_dir), "server": f"127.0.0.1:{authoritative.port}"})
        receipt = p.apply([Change(None, rs(p, "www", "A", 60, "192.0.2.10"))])
        assert receipt.atomic and receipt.token == "2" and p.wait(receipt, timeout=1)
        assert answer(authoritative.endpoint, f"www.{ZONE}") == ("192.0.2.10",)
        assert p.nameservers() == [f"127.0.0.1:{authoritative.port}"]

    def test_nameservers_without_server_are_the_zone_ns(self, zone_dir: Path) -> None:
        assert SandboxProvider(ZONE, {"path": str(zone_dir)}).nameservers() == [f"ns1.{ZONE}"]

    def test_drift_by_another_writer_is_refused_with_nothing_changed(self, zone_dir: Path) -> None:
        p = SandboxProvider(ZONE, {"path": str(zone_dir)})
        www = rs(p, "www", "A", 300, "192.0.2.10")
        mail = rs(p, "mail", "A", 300, "192.0.2.25")
        p.apply([Change(None, www), Change(None, mail)])
        read = {r.key: r for r in p.records()}
        ZoneStore(zone_dir).put(ZONE, rs(p, "www", "A", 300, "198.51.100.66"))  # someone else, meanwhile
        with pytest.raises(ProviderError, match=r"nothing was changed.*www\.conformance\.test\. A changed since it was read"):
            p.apply([Change(read[mail.key], rs(p, "mail", "A", 60, "203.0.113.25")), Change(read[www.key], None)])
        now = {r.key: r for r in p.records()}
        assert now[mail.key] == mail and now[www.key].values == ("198.51.100.66",)

    def test_missing_zone_or_directory_is_a_provider_error_with_a_hint(self, tmp_path: Path) -> None:
        with pytest.raises(ProviderError, match=r"no zone other\.test\..*python -m cutover\.sandbox serve"):
            SandboxProvider("other.test.", {"path": str(tmp_path)}).records()
        with pytest.raises(ProviderError, match="does not exist"):
            SandboxProvider(ZONE, {"path": str(tmp_path / "nope")}).apply([Change(None, RecordSet.build(f"a.{ZONE}", "A", 1, ["192.0.2.1"]))])
        assert ProviderError.exit_code == 3

    def test_corrupt_zone_file_is_a_provider_error(self, zone_dir: Path) -> None:
        ZoneStore(zone_dir).path_of(ZONE).write_text("$ORIGIN conformance.test.\n@ 300 IN A not-an-address\n")
        with pytest.raises(ProviderError, match="cannot be read"):
            SandboxProvider(ZONE, {"path": str(zone_dir)}).records()


SCENARIO_RESOLVERS = (
    ResolverSpec("normal-1"),
    ResolverSpec("normal-2"),
    ResolverSpec("floor", ttl_floor=4),
    ResolverSpec("rfc8767", serve_stale=True),
    ResolverSpec("stale", stale_for=1.5),
    ResolverSpec("slow", delay=0.2),
    ResolverSpec("broken", fail="servfail"),
)


def test_cutover_spreads_through_caches(tmp_path: Path) -> None:
    """Warm caches with the old A, change it through the provider, and watch each cache move."""
    zone = "demo.example."
    old = RecordSet.build(f"www.{zone}", "A", 1, ["198.51.100.10"])
    new = RecordSet.build(f"www.{zone}", "A", 1, ["203.0.113.10"])
    with Sandbox(tmp_path, zone, records=[old], resolvers=SCENARIO_RESOLVERS) as sb:
        sb.warm("www")
        by_name = {r.name: r for r in sb.resolvers}
        provider: Provider = provider_class("sandbox")(zone, sb.provider_settings())
        (live,) = [r for r in provider.records([old.key]) if r.key == old.key]
        provider.apply([Change(live, new)])
        changed = time.monotonic()

        assert answer(sb.authoritative, old.name) == new.values
        for name in ("normal-1", "normal-2", "floor", "rfc8767", "stale", "slow"):
            assert answer(by_name[name], old.name) == old.values, name
        assert answer(by_name["broken"], old.name) == ("SERVFAIL",)

        time.sleep(max(0.0, changed + 1.1 - time.monotonic()))
        for name in ("normal-1", "normal-2", "rfc8767", "slow"):
            assert answer(by_name[name], old.name) == new.values, name
        assert answer(by_name["stale"], old.name) == old.values  # past its TTL, still old (TTL 0)
        assert query(by_name["stale"], old.name).answer[0].ttl == 0
        assert answer(by_name["floor"], old.name) == old.values  # clamped to 4 s

        time.sleep(max(0.0, changed + 2.7 - time.monotonic()))
        assert answer(by_name["stale"], old.name) == new.values
        assert answer(by_name["floor"], old.name) == old.values
        assert answer(by_name["broken"], old.name) == ("SERVFAIL",)
