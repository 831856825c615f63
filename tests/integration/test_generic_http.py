"""The generic ``http`` provider, driven by the descriptions shipped in plans/, against the
same local servers as the dedicated providers: a real pdns_server and the fake Cloudflare API."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cutover import plan as plan_mod
from cutover.errors import PartialApplyError, ProviderError
from cutover.records import Change
from providers.restapi import HttpProvider
from providers.httpclient import RetryPolicy
from tests.integration.conformance import ProviderConformance, live, rs
from tests.integration.servers.cloudflare_fake import FakeCloudflare, Invalid, cloudflare_api  # noqa: F401
from tests.integration.servers.pdns import PdnsServer, pdns_server, pdns_zone  # noqa: F401

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CF_ZONE = "example.test."


def shipped_plan(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> plan_mod.Plan:
    """The plan in plans/ as an operator would load it, from any directory (its description
    path is taken from the plan's folder)."""
    monkeypatch.chdir("/")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return plan_mod.load(ROOT / "plans" / name)


def fast(p: HttpProvider) -> HttpProvider:
    p.client.policy = RetryPolicy(retries=2, backoff=0.01, max_wait=2)
    return p


# -- PowerDNS ------------------------------------------------------------------------------


@pytest.fixture
def pdns_provider(pdns_server: PdnsServer, pdns_zone: str, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    plan = shipped_plan("http-powerdns.yaml", monkeypatch, PDNS_URL=pdns_server.api_url, PDNS_API_KEY=pdns_server.api_key)
    assert plan.provider.type == "http"
    p = fast(HttpProvider(pdns_zone, plan.provider.settings))
    yield p
    p.close()


class TestHttpPowerDNS(ProviderConformance):
    @pytest.fixture
    def provider(self, pdns_provider):
        return pdns_provider


def test_powerdns_apply_is_one_atomic_patch(pdns_provider: HttpProvider, pdns_server: PdnsServer) -> None:  # noqa: F811
    www, mx, mail = ProviderConformance().seed(pdns_provider)
    good = Change(www, rs(pdns_provider, "www", "A", 300, "203.0.113.10"))
    clash = Change(None, rs(pdns_provider, "mail", "CNAME", 300, "elsewhere.example.net."))  # beside mail A
    with pytest.raises(ProviderError, match="refused the whole request; nothing was applied"):
        pdns_provider.apply([good, clash])
    assert live(pdns_provider, www.key)[www.key] == www
    receipt = pdns_provider.apply([good])
    assert receipt.atomic


def test_powerdns_nameservers_are_the_apex_ns(pdns_provider: HttpProvider) -> None:
    assert pdns_provider.nameservers() == [f"ns1.{pdns_provider.zone}"]


def test_wrong_api_key_is_a_clear_error_without_the_key(pdns_server: PdnsServer, pdns_zone: str, monkeypatch) -> None:  # noqa: F811
    plan = shipped_plan("http-powerdns.yaml", monkeypatch, PDNS_URL=pdns_server.api_url, PDNS_API_KEY="wrong-key-123456")
    p = fast(HttpProvider(pdns_zone, plan.provider.settings))
    with pytest.raises(ProviderError, match="PowerDNS: GET .*HTTP 401") as err:
        p.records()
    assert "wrong-key-123456" not in str(err.value) and "wrong-key-123456" not in repr(p)


def test_description_that_does_not_fit_the_reply(pdns_server: PdnsServer, pdns_zone: str, monkeypatch) -> None:  # noqa: F811
    plan = shipped_plan("http-powerdns.yaml", monkeypatch, PDNS_URL=pdns_server.api_url, PDNS_API_KEY=pdns_server.api_key)
    settings = dict(plan.provider.settings)
    desc = yaml.safe_load((ROOT / "plans/http/powerdns.yaml").read_text())
    settings["list"] = {**desc["list"], "records": "result"}
    p = HttpProvider(pdns_zone, settings)
    with pytest.raises(ProviderError, match=r"list.records: path 'result' not found \(keys: .*rrsets.*\) in the reply"):
        p.records()
    settings["list"] = {**desc["list"], "values": "records[].data"}
    with pytest.raises(ProviderError, match=r"list.values: path 'records\[\].data' not found: no 'data' in records\[0\] \(keys: content, disabled\) in record 0 of the listing"):
        HttpProvider(pdns_zone, settings).records()


# -- Cloudflare (batch: atomic) ------------------------------------------------------------------


def cf_settings(api: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    plan = shipped_plan("http-cloudflare.yaml", monkeypatch, CLOUDFLARE_API_TOKEN=api.token)
    return {**plan.provider.settings, "base_url": api.base_url}


@pytest.fixture
def cf_zone(cloudflare_api: FakeCloudflare) -> str:  # noqa: F811
    return cloudflare_api.add_zone(CF_ZONE)


@pytest.fixture
def cf_provider(cloudflare_api: FakeCloudflare, cf_zone: str, monkeypatch):  # noqa: F811
    p = fast(HttpProvider(CF_ZONE, cf_settings(cloudflare_api, monkeypatch)))
    yield p
    p.close()


class TestHttpCloudflare(ProviderConformance):
    @pytest.fixture
    def provider(self, cf_provider):
        return cf_provider


def test_cloudflare_listing_follows_pages_and_lookup_finds_zone(cloudflare_api: FakeCloudflare, cf_zone: str, cf_provider) -> None:  # noqa: F811
    for i in range(12):
        cloudflare_api.add_record(cf_zone, name=f"host{i}", type="A", content=f"192.0.2.{i + 1}", ttl=600)
    assert {r.name for r in cf_provider.records() if r.type == "A"} == {f"host{i}.{CF_ZONE}" for i in range(12)}
    assert cloudflare_api.requests_to("GET", "/dns_records?page=3") == 1  # the fake serves 5 per page
    assert cf_provider.zone_id() == cf_zone
    assert cf_provider.nameservers() == ["ada.ns.fake-cloudflare.test.", "bob.ns.fake-cloudflare.test."]


def test_cloudflare_batch_is_atomic_and_reuses_records(cloudflare_api: FakeCloudflare, cf_zone: str, cf_provider) -> None:  # noqa: F811
    rid = cloudflare_api.add_record(cf_zone, name="www", type="A", content="192.0.2.10", ttl=600, comment="origin")
    www = live(cf_provider, (f"www.{CF_ZONE}", "A"))[(f"www.{CF_ZONE}", "A")]
    snapshot = copy.deepcopy(cloudflare_api.zones[cf_zone].records)
    clash = Change(None, rs(cf_provider, "www", "CNAME", 300, "elsewhere.example.net."))
    with pytest.raises(ProviderError, match="HTTP 400.*nothing was applied"):
        cf_provider.apply([Change(www, rs(cf_provider, "www", "A", 300, "203.0.113.10")), clash])
    assert cloudflare_api.zones[cf_zone].records == snapshot
    receipt = cf_provider.apply([Change(www, rs(cf_provider, "www", "A", 300, "203.0.113.10"))])
    assert receipt.atomic
    kept = cloudflare_api.zones[cf_zone].records[rid]
    assert (kept["content"], kept["ttl"], kept["comment"]) == ("203.0.113.10", 300, "origin")  # patched, not re-created


def test_cloudflare_drift_is_refused_without_sending(cloudflare_api: FakeCloudflare, cf_zone: str, cf_provider) -> None:  # noqa: F811
    www, *_ = ProviderConformance().seed(cf_provider)
    [rec] = [r for r in cloudflare_api.zones[cf_zone].records.values() if r["type"] == "A" and r["name"].startswith("www.")]
    rec["content"] = "198.51.100.7"
    batches = cloudflare_api.requests_to("POST", "/batch")
    with pytest.raises(ProviderError, match=r"changed since it was read, nothing was sent.*198\.51\.100\.7"):
        cf_provider.apply([Change(www, rs(cf_provider, "www", "A", 300, "203.0.113.10"))])
    assert cloudflare_api.requests_to("POST", "/batch") == batches


def test_cloudflare_token_never_shown(cloudflare_api: FakeCloudflare, cf_zone: str, monkeypatch) -> None:  # noqa: F811
    settings = cf_settings(cloudflare_api, monkeypatch)
    settings["auth"] = {"type": "bearer", "token": "wrong-" + cloudflare_api.token}
    p = fast(HttpProvider(CF_ZONE, settings))
    with pytest.raises(ProviderError, match="HTTP 401.*Authentication error") as err:
        p.records()
    assert cloudflare_api.token not in str(err.value) and cloudflare_api.token not in repr(p)
    assert cloudflare_api.token not in repr(p.desc)


def test_cloudflare_missing_zone(cloudflare_api: FakeCloudflare, monkeypatch) -> None:  # noqa: F811
    p = fast(HttpProvider("absent.test.", cf_settings(cloudflare_api, monkeypatch)))
    with pytest.raises(ProviderError, match="zone_lookup found 0 zones for absent.test"):
        p.records()


# -- Cloudflare one request per value (not atomic) --------------------------------------------------


class PerRecordCloudflare(FakeCloudflare):
    """The fake with Cloudflare's documented per-record endpoints added:
    POST /dns_records, PATCH and DELETE /dns_records/{id}. ``fail_on`` makes the
    n-th write refused, to stop an apply half-way."""

    fail_on: int | None = None
    writes = 0

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, dict]:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "zones" and parts[2] == "dns_records" and method in ("POST", "PATCH", "DELETE") and parts[3:] != ["batch"]:
            zone = self.zones[parts[1]]
            self.writes += 1
            if self.fail_on is not None and self.writes == self.fail_on:
                raise Invalid(10000, "injected failure", 400)
            rid = parts[3] if len(parts) > 3 else None
            if method == "DELETE":
                if zone.records.pop(str(rid), None) is None:
                    raise Invalid(81044, "Record does not exist.", 404)
                return 200, self._envelope(True, {"id": rid})
            if method == "POST":
                new = self._make(zone, body or {})
            else:
                old = zone.records.get(str(rid))
                if old is None:
                    raise Invalid(81044, "Record does not exist.", 404)
                base = {k: old[k] for k in ("name", "type", "proxied", "ttl", "comment", "tags") if k in old}
                new = self._make(zone, {**base, **(body or {})}, rid=rid, created=old["created_on"])
            self._conflicts(zone.records, new)
            zone.records[new["id"]] = new
            return 200, self._envelope(True, self._render(new))
        return super()._route(method, path, query, body)


@pytest.fixture
def per_record_api():
    api = PerRecordCloudflare().start()
    yield api
    api.stop()


def per_record_settings(api: FakeCloudflare, monkeypatch) -> dict[str, Any]:
    """The shipped Cloudflare description with its batch replaced by the per-record
    requests its comment shows."""
    settings = cf_settings(api, monkeypatch)
    desc = yaml.safe_load((ROOT / "plans/http/cloudflare.yaml").read_text())
    settings = {**desc, **{k: v for k, v in settings.items() if k != "description"}}
    del settings["apply"]
    settings["create"] = {"method": "POST", "path": "/zones/{zone_id}/dns_records", "body": {"name": "{host}", "type": "{type}", "ttl": "{ttl}"}}
    settings["update"] = {"method": "PATCH", "path": "/zones/{zone_id}/dns_records/{id}", "body": {"type": "{type}", "ttl": "{ttl}"}}
    settings["delete"] = {"method": "DELETE", "path": "/zones/{zone_id}/dns_records/{id}"}
    return settings


@pytest.fixture
def per_record_provider(per_record_api: PerRecordCloudflare, monkeypatch):
    per_record_api.add_zone(CF_ZONE)
    p = fast(HttpProvider(CF_ZONE, per_record_settings(per_record_api, monkeypatch)))
    yield p
    p.close()


class TestHttpPerRecord(ProviderConformance):
    @pytest.fixture
    def provider(self, per_record_provider):
        return per_record_provider


def test_per_record_apply_is_not_atomic(per_record_provider: HttpProvider) -> None:
    receipt = per_record_provider.apply([Change(None, rs(per_record_provider, "www", "A", 300, "192.0.2.1"))])
    assert receipt.atomic is False


def test_failure_half_way_names_what_landed(per_record_api: PerRecordCloudflare, per_record_provider: HttpProvider) -> None:
    p = per_record_provider
    www, mx, mail = ProviderConformance().seed(p)
    first = Change(www, rs(p, "www", "A", 300, "203.0.113.10"))  # one PATCH
    second = Change(None, rs(p, "ftp", "A", 300, "203.0.113.20", "203.0.113.21"))  # two POSTs
    third = Change(mail, rs(p, "mail", "A", 300, "203.0.113.25"))  # never sent
    per_record_api.writes = 0
    per_record_api.fail_on = 3  # the second POST of the second change
    with pytest.raises(PartialApplyError, match=r"injected failure.*landed www\.example\.test\. A; ftp\.example\.test\. A is half done \(1 of 2") as err:
        p.apply([first, second, third])
    assert err.value.landed == [first.key]
    now = live(p, www.key, mail.key, second.key)
    assert now[www.key] == first.after and now[mail.key] == mail
    assert now[second.key].values == ("203.0.113.20",)  # exactly the half that landed


def test_first_request_refused_is_not_partial(per_record_api: PerRecordCloudflare, per_record_provider: HttpProvider) -> None:
    p = per_record_provider
    per_record_api.writes = 0
    per_record_api.fail_on = 1
    with pytest.raises(ProviderError, match="nothing was changed") as err:
        p.apply([Change(None, rs(p, "www", "A", 300, "192.0.2.1"))])
    assert not isinstance(err.value, PartialApplyError)


def test_cloudflare_ambiguous_zone_name_needs_zone_id(cloudflare_api: FakeCloudflare, monkeypatch) -> None:  # noqa: F811
    first = cloudflare_api.add_zone("twice.test")
    cloudflare_api.add_zone("twice.test")
    settings = cf_settings(cloudflare_api, monkeypatch)
    with pytest.raises(ProviderError, match="zone_lookup found 2 zones for twice.test; set zone_id in the plan"):
        fast(HttpProvider("twice.test.", settings)).records()
    p = fast(HttpProvider("twice.test.", {**settings, "zone_id": first}))
    assert p.zone_id() == first and p.nameservers()
