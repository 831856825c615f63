"""The cloudflare provider against a local server that follows the v4 API's documented shapes."""

from __future__ import annotations

import time

import pytest

from cutover.errors import ProviderError
from cutover.records import Change, normalise_value
from providers.cloudflare import CloudflareProvider, presentation, write_fields
from providers.httpclient import RetryPolicy
from tests.integration.conformance import ProviderConformance, apply, live, rs
from tests.integration.servers.cloudflare_fake import FakeCloudflare, cloudflare_api  # noqa: F401

pytestmark = pytest.mark.integration

ZONE = "example.test."


def make_provider(api: FakeCloudflare, zone: str = ZONE, **settings) -> CloudflareProvider:
    p = CloudflareProvider(zone, {"api_token": api.token, "base_url": api.base_url, **settings})
    p.client.policy = RetryPolicy(retries=3, backoff=0.01, max_wait=5)
    return p


@pytest.fixture
def zone_id(cloudflare_api: FakeCloudflare) -> str:  # noqa: F811
    return cloudflare_api.add_zone(ZONE)


@pytest.fixture
def provider(cloudflare_api: FakeCloudflare, zone_id: str):  # noqa: F811
    p = make_provider(cloudflare_api)
    yield p
    p.close()


class TestCloudflareConformance(ProviderConformance):
    pass


def records_in(api: FakeCloudflare, zone_id: str, name: str, rtype: str) -> list[dict]:
    return [r for r in api.zones[zone_id].records.values() if r["name"] == name and r["type"] == rtype]


# -- reading ---------------------------------------------------------------------


def test_listing_follows_every_page(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    for i in range(12):
        cloudflare_api.add_record(zone_id, name=f"host{i}", type="A", content=f"192.0.2.{i + 1}", ttl=600)
    names = {r.name for r in provider.records() if r.type == "A"}
    assert names == {f"host{i}.{ZONE}" for i in range(12)}
    assert cloudflare_api.requests_to("GET", "/dns_records?page=3") == 1  # 5 per page: 3 pages


def test_zone_name_servers_are_the_apex_ns(provider) -> None:
    assert provider.nameservers() == ["ada.ns.fake-cloudflare.test.", "bob.ns.fake-cloudflare.test."]
    apex_ns = live(provider, (ZONE, "NS"))[(ZONE, "NS")]
    assert apex_ns.values == ("ada.ns.fake-cloudflare.test.", "bob.ns.fake-cloudflare.test.")
    with pytest.raises(ProviderError, match="own name servers"):
        provider.apply([Change(apex_ns, rs(provider, "@", "NS", 300, "ns1.elsewhere.test."))])


def test_both_content_forms_are_read(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    """SRV/CAA with ``data`` or only ``content``, TXT quoted or bare, MX priority apart."""
    cloudflare_api.add_record(zone_id, name="_sip._tcp", type="SRV", ttl=600,
                              data={"priority": 10, "weight": 5, "port": 5060, "target": "sip.example.test"})
    cloudflare_api.add_record(zone_id, name="@", type="CAA", ttl=600, content="0 issue letsencrypt.org")
    cloudflare_api.add_record(zone_id, name="@", type="TXT", ttl=600, content='v=spf1 "quoted" -all')
    cloudflare_api.add_record(zone_id, name="@", type="TXT", ttl=600, content='"already" "split"')
    cloudflare_api.add_record(zone_id, name="long", type="TXT", ttl=600, content="x" * 300)
    cloudflare_api.add_record(zone_id, name="@", type="MX", ttl=600, content="mx.example.test", priority=5)
    expected = {
        rs(provider, "_sip._tcp", "SRV", 600, "10 5 5060 sip.example.test."),
        rs(provider, "@", "CAA", 600, '0 issue "letsencrypt.org"'),
        rs(provider, "@", "TXT", 600, '"v=spf1 \\"quoted\\" -all"', '"already" "split"'),
        rs(provider, "long", "TXT", 600, '"' + "x" * 255 + '" "' + "x" * 45 + '"'),
        rs(provider, "@", "MX", 600, "5 mx.example.test."),
    }
    for content_only in (False, True):
        cloudflare_api.content_only = content_only
        now = live(provider, *(s.key for s in expected))
        assert {now[s.key] for s in expected} == expected


def test_presentation_of_srv_content_forms() -> None:
    three = {"type": "SRV", "content": "5 5060 sip.example.test", "priority": 10}
    four = {"type": "SRV", "content": "10 5 5060 sip.example.test."}
    assert presentation(three) == presentation(four) == "10 5 5060 sip.example.test."
    with pytest.raises(ValueError, match="SRV content"):
        presentation({"type": "SRV", "content": "5060 sip.example.test"})


# -- TTL 1 and proxied records ---------------------------------------------------------


def test_automatic_ttl_reads_as_300_and_stays_automatic(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    cloudflare_api.add_record(zone_id, name="www", type="A", content="192.0.2.10", ttl=1)
    www = live(provider, (f"www.{ZONE}", "A"))[(f"www.{ZONE}", "A")]
    assert www == rs(provider, "www", "A", 300, "192.0.2.10")
    assert www.key in provider.auto_ttl

    apply(provider, Change(www, rs(provider, "www", "A", 300, "203.0.113.10")))
    [rec] = records_in(cloudflare_api, zone_id, f"www.{ZONE[:-1]}", "A")
    assert (rec["content"], rec["ttl"]) == ("203.0.113.10", 1)

    moved = rs(provider, "www", "A", 300, "203.0.113.10")
    apply(provider, Change(moved, rs(provider, "www", "A", 600, "203.0.113.10")))
    [rec] = records_in(cloudflare_api, zone_id, f"www.{ZONE[:-1]}", "A")
    assert rec["ttl"] == 600


def test_proxied_records_are_reported_and_keep_proxied(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    rid = cloudflare_api.add_record(zone_id, name="www", type="A", content="192.0.2.10", proxied=True, comment="origin")
    cloudflare_api.add_record(zone_id, name="shop", type="CNAME", content="shops.example.net", proxied=True)
    before = {k: dict(v) for k, v in cloudflare_api.zones[zone_id].records.items()}
    www_key, shop_key = (f"www.{ZONE}", "A"), (f"shop.{ZONE}", "CNAME")
    now = live(provider, www_key, shop_key)
    assert provider.proxied == {www_key, shop_key}
    assert now[www_key] == rs(provider, "www", "A", 300, "192.0.2.10")  # the origin, not Cloudflare's edge

    new = rs(provider, "www", "A", 300, "203.0.113.10", "203.0.113.11")
    apply(provider, Change(now[www_key], new))
    recs = records_in(cloudflare_api, zone_id, f"www.{ZONE[:-1]}", "A")
    assert sorted(r["content"] for r in recs) == ["203.0.113.10", "203.0.113.11"]
    assert all(r["proxied"] and r["ttl"] == 1 for r in recs)
    kept = cloudflare_api.zones[zone_id].records[rid]
    assert kept["comment"] == "origin"  # the record was patched, not re-created
    shop = [r for r in cloudflare_api.zones[zone_id].records.values() if r["type"] == "CNAME"]
    assert shop == [v for v in before.values() if v["type"] == "CNAME"]


# -- atomic batches and drift ------------------------------------------------------------


def test_invalid_batch_changes_nothing(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    www, mx, mail = ProviderConformance().seed(provider)
    snapshot = {k: dict(v) for k, v in cloudflare_api.zones[zone_id].records.items()}
    good = Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))
    clash = Change(None, rs(provider, "mail", "CNAME", 300, "elsewhere.example.net."))  # beside mail A
    with pytest.raises(ProviderError, match=r"HTTP 400.*record with that host already exists.*nothing was applied"):
        provider.apply([good, clash])
    assert cloudflare_api.zones[zone_id].records == snapshot


def test_drift_is_refused_without_sending(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    www, *_ = ProviderConformance().seed(provider)
    [rec] = records_in(cloudflare_api, zone_id, f"www.{ZONE[:-1]}", "A")
    rec["content"] = "198.51.100.7"  # changed by someone else in the dashboard
    batches = cloudflare_api.requests_to("POST", "/batch")
    with pytest.raises(ProviderError, match=r"changed since it was read.*\['198\.51\.100\.7'\]"):
        provider.apply([Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))])
    assert cloudflare_api.requests_to("POST", "/batch") == batches


# -- retries ------------------------------------------------------------------------------


def test_rate_limited_read_honours_retry_after(cloudflare_api: FakeCloudflare, provider) -> None:  # noqa: F811
    provider.zone_id()
    pauses: list[float] = []
    provider.client.sleep = lambda s: (pauses.append(s), time.sleep(s))
    cloudflare_api.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()
    assert provider.records()
    assert pauses == [1.0] and time.monotonic() - started >= 1.0


def test_rate_limited_batch_is_sent_again_once(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    provider.records()
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    real_request = provider.client.request

    def rate_limit_the_batch(method, path, **kw):
        if method == "POST":
            cloudflare_api.fail_next(1, status=429, retry_after=0)
        return real_request(method, path, **kw)

    provider.client.request = rate_limit_the_batch
    apply(provider, Change(None, www))
    assert cloudflare_api.requests_to("POST", "/batch") == 2
    assert len(cloudflare_api.batches) == 1
    assert len(records_in(cloudflare_api, zone_id, f"www.{ZONE[:-1]}", "A")) == 1


def test_server_error_on_batch_is_not_retried(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    provider.records()
    real_request = provider.client.request

    def fail_the_batch(method, path, **kw):
        if method == "POST":
            cloudflare_api.fail_next(1, status=500)
        return real_request(method, path, **kw)

    provider.client.request = fail_the_batch
    with pytest.raises(ProviderError, match="HTTP 500.*unknown"):
        provider.apply([Change(None, rs(provider, "www", "A", 300, "192.0.2.10"))])
    assert cloudflare_api.requests_to("POST", "/batch") == 1


def test_reads_survive_dropped_connections_and_5xx(cloudflare_api: FakeCloudflare, provider) -> None:  # noqa: F811
    provider.zone_id()
    cloudflare_api.drop_next(1)
    cloudflare_api.fail_next(1, status=502)
    assert provider.nameservers()
    assert provider.records()


def test_reads_give_up_after_the_retries(cloudflare_api: FakeCloudflare, provider) -> None:  # noqa: F811
    cloudflare_api.fail_next(10, status=503)
    with pytest.raises(ProviderError, match="HTTP 503"):
        provider.records()
    assert len(cloudflare_api.log) == 4  # the first try and three retries


# -- credentials and zone lookup -------------------------------------------------------------


def test_bad_token_is_401_and_never_shown(cloudflare_api: FakeCloudflare, zone_id: str) -> None:  # noqa: F811
    wrong = "wrong-" + cloudflare_api.token
    p = CloudflareProvider(ZONE, {"api_token": wrong, "base_url": cloudflare_api.base_url})
    with pytest.raises(ProviderError, match="HTTP 401.*Authentication error") as err:
        p.records()
    assert wrong not in str(err.value) and wrong not in repr(p) and wrong not in repr(p.client)
    assert cloudflare_api.token not in str(err.value)


def test_token_echoed_by_the_server_is_scrubbed(cloudflare_api: FakeCloudflare, provider) -> None:  # noqa: F811
    cloudflare_api.add_zone(cloudflare_api.token + ".test")  # a zone id lookup that echoes it
    p = make_provider(cloudflare_api, zone=cloudflare_api.token + ".test.", zone_id=cloudflare_api.token)
    with pytest.raises(ProviderError) as err:
        p.records()
    assert cloudflare_api.token not in str(err.value) and "***" in str(err.value)


def test_missing_zone_is_a_clear_error(cloudflare_api: FakeCloudflare) -> None:  # noqa: F811
    p = make_provider(cloudflare_api, zone="absent.test.")
    with pytest.raises(ProviderError, match="no zone named absent.test is visible"):
        p.records()


def test_ambiguous_zone_name_needs_zone_id(cloudflare_api: FakeCloudflare) -> None:  # noqa: F811
    first = cloudflare_api.add_zone("twice.test")
    cloudflare_api.add_zone("twice.test")
    p = make_provider(cloudflare_api, zone="twice.test.")
    with pytest.raises(ProviderError, match="2 zones are named twice.test.*set zone_id"):
        p.records()
    p = make_provider(cloudflare_api, zone="twice.test.", zone_id=first)
    assert p.zone_id() == first and p.nameservers()


def test_zone_id_of_another_zone_is_refused(cloudflare_api: FakeCloudflare, zone_id: str) -> None:  # noqa: F811
    p = make_provider(cloudflare_api, zone="other.test.", zone_id=zone_id)
    with pytest.raises(ProviderError, match="is the zone 'example.test', not 'other.test'"):
        p.records()


def test_settings_are_checked() -> None:
    assert CloudflareProvider.check_settings({"api_token": "", "base_url": "ftp://x"}) == [
        ("api_token", "is empty"),
        ("base_url", "'ftp://x' is not an http(s) URL (expected e.g. https://api.cloudflare.com/client/v4)"),
    ]
    assert CloudflareProvider.check_settings({"api_token": "t"}) == []


def test_unknown_values_of_unmanaged_types_are_skipped(cloudflare_api: FakeCloudflare, zone_id: str, provider) -> None:  # noqa: F811
    cloudflare_api.add_record(zone_id, name="bad", type="SRV", ttl=600, data={"priority": 1, "weight": 1, "port": 1, "target": "ok.test"})
    cloudflare_api.zones[zone_id].records[next(iter(cloudflare_api.zones[zone_id].records))]["data"]["port"] = "not-a-port"
    key = (f"bad.{ZONE}", "SRV")
    assert key not in {r.key for r in provider.records()}
    with pytest.raises(ProviderError, match=f"cannot read bad.{ZONE} SRV"):
        provider.records([key])


@pytest.mark.parametrize(
    "rtype, value, fields",
    [
        ("A", "192.0.2.1", {"content": "192.0.2.1"}),
        ("CNAME", "target.example.net.", {"content": "target.example.net"}),
        ("MX", "10 mail.example.net.", {"content": "mail.example.net", "priority": 10}),
        ("SRV", "0 5 443 sip.example.net.", {"data": {"priority": 0, "weight": 5, "port": 443, "target": "sip.example.net"}}),
        ("CAA", '128 issue "ca.example.net; account=1"', {"data": {"flags": 128, "tag": "issue", "value": "ca.example.net; account=1"}}),
        ("TXT", '"a \\"b\\"" "c"', {"content": '"a \\"b\\"" "c"'}),
    ],
)
def test_write_fields_read_back_as_the_same_value(rtype: str, value: str, fields: dict) -> None:
    canonical = normalise_value(rtype, value)
    assert write_fields(rtype, canonical) == fields
    assert normalise_value(rtype, presentation({"type": rtype, **fields})) == canonical
