"""The powerdns provider against a real pdns_server (sqlite3 backend) on loopback."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import requests

from cutover.errors import ProviderError
from cutover.records import Change, RecordSet
from providers.httpclient import RetryPolicy
from providers.powerdns import PowerDNSProvider, zone_id
from tests.integration.conformance import ProviderConformance, apply, live, rs
from tests.integration.servers import free_port
from tests.integration.servers.pdns import PdnsServer, pdns_server, pdns_zone  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def provider(pdns_server: PdnsServer, pdns_zone: str):  # noqa: F811
    p = PowerDNSProvider(pdns_zone, pdns_server.settings())
    yield p
    p.close()


class TestPowerDNSConformance(ProviderConformance):
    pass


def test_server_version_is_supported(pdns_server: PdnsServer) -> None:  # noqa: F811
    major, minor = (int(x) for x in pdns_server.version.split(".")[:2])
    assert (major, minor) >= (4, 7)


def test_zone_id_escapes_unsafe_characters() -> None:
    assert zone_id("example.com") == "example.com."
    assert zone_id("0/25.2.0.192.in-addr.arpa.") == "0=2F25.2.0.192.in-addr.arpa."


def _ask(server: PdnsServer, name: str, rtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rtype)
    return dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)


def test_dns_answers_show_the_applied_data(provider: PowerDNSProvider, pdns_server: PdnsServer) -> None:  # noqa: F811
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    apply(provider, Change(None, www))
    assert _ask(pdns_server, www.name, "A").answer[0].to_text().endswith("192.0.2.10")

    moved = rs(provider, "www", "A", 120, "203.0.113.10", "203.0.113.11")
    apply(provider, Change(www, moved))
    answer = _ask(pdns_server, www.name, "A").answer[0]
    assert answer.ttl == 120
    assert sorted(r.to_text() for r in answer) == ["203.0.113.10", "203.0.113.11"]

    apply(provider, Change(moved, None))
    assert _ask(pdns_server, www.name, "A").rcode() == dns.rcode.NXDOMAIN


def test_nameservers_are_the_zone_ns_rrset(provider: PowerDNSProvider) -> None:
    assert provider.nameservers() == [f"ns1.{provider.zone}"]


def test_disabled_records_are_not_reported(provider: PowerDNSProvider, pdns_server: PdnsServer) -> None:  # noqa: F811
    body = {"rrsets": [{
        "name": f"mixed.{provider.zone}", "type": "A", "ttl": 300, "changetype": "REPLACE",
        "records": [{"content": "192.0.2.1", "disabled": False}, {"content": "192.0.2.2", "disabled": True}],
    }]}
    r = requests.patch(f"{pdns_server.zones_url}/{provider.zone}", json=body,
                       headers={"X-API-Key": pdns_server.api_key}, timeout=10)
    assert r.status_code == 204
    key = (f"mixed.{provider.zone}", "A")
    assert live(provider, key)[key].values == ("192.0.2.1",)


def test_bad_api_key_is_a_provider_error_without_the_key(pdns_server: PdnsServer, pdns_zone: str) -> None:  # noqa: F811
    secret = "not-the-key-" + "s3cr3t" * 4
    p = PowerDNSProvider(pdns_zone, {"url": pdns_server.api_url, "api_key": secret})
    with pytest.raises(ProviderError) as err:
        p.records()
    assert "401" in str(err.value)
    assert secret not in str(err.value) and secret not in repr(p)
    assert err.value.exit_code == 3


def test_unknown_zone_is_named_in_the_error(pdns_server: PdnsServer) -> None:  # noqa: F811
    p = PowerDNSProvider("no-such-zone.test.", pdns_server.settings())
    with pytest.raises(ProviderError, match=r"zone no-such-zone\.test\. does not exist"):
        p.records()


def test_server_down_is_a_provider_error() -> None:
    port = free_port()  # nothing listens there
    p = PowerDNSProvider("example.test.", {"url": f"http://127.0.0.1:{port}", "api_key": "k" * 20})
    p.client.policy = RetryPolicy(retries=2, backoff=0.01)
    with pytest.raises(ProviderError, match="connection refused") as err:
        p.records()
    assert "k" * 20 not in str(err.value)
    with pytest.raises(ProviderError):
        p.apply([Change(None, RecordSet.build("www.example.test.", "A", 300, ["192.0.2.1"]))])


def test_rejected_patch_leaves_the_zone_unchanged(provider: PowerDNSProvider) -> None:
    """PowerDNS refuses a CNAME beside other data with 422, and then applies nothing."""
    www, mx, mail = ProviderConformance().seed(provider)
    good = Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))
    conflicting = Change(None, rs(provider, "mail", "CNAME", 300, "elsewhere.example.net."))
    with pytest.raises(ProviderError, match="422.*Conflicts with pre-existing RRset.*nothing was applied"):
        provider.apply([good, conflicting])
    now = live(provider, www.key, mx.key, mail.key, conflicting.key)
    assert now[www.key] == www and now[mail.key] == mail and now[mx.key] == mx
    assert conflicting.key not in now


def test_drift_is_refused_before_anything_is_sent(provider: PowerDNSProvider) -> None:
    www, *_ = ProviderConformance().seed(provider)
    apply(provider, Change(www, rs(provider, "www", "A", 3600, "198.51.100.1")))  # someone else
    with pytest.raises(ProviderError, match=r"changed since it was read.*www\..* is now ttl 3600 \['198\.51\.100\.1'\]"):
        provider.apply([Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))])
    assert live(provider, www.key)[www.key].values == ("198.51.100.1",)


def test_settings_are_checked() -> None:
    assert PowerDNSProvider.check_settings({"url": "127.0.0.1:8081", "api_key": "x"}) == [
        ("url", "'127.0.0.1:8081' is not an http(s) URL (expected e.g. http://127.0.0.1:8081)")
    ]
    assert PowerDNSProvider.check_settings({"url": "http://127.0.0.1:8081", "api_key": "x"}) == []


def test_zones_lists_every_zone_the_server_holds(provider: PowerDNSProvider, pdns_server: PdnsServer) -> None:  # noqa: F811
    other = pdns_server.create_zone("listed-too.conformance.test.")
    try:
        zones = provider.zones()
        assert provider.zone in zones and other in zones and zones == sorted(zones)
    finally:
        pdns_server.delete_zone(other)
