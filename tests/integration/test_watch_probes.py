"""``cutover watch`` with ``watch.probes``: probe answers from local probe-service APIs
whose probes ask real Unbound caches in front of a real BIND, end to end.

One probe's cache was primed with the old address just before the change, as a real
ISP's would be: the watch must see it old, count it, and hold the verdict.
"""

from __future__ import annotations

import json

import dns.message
import dns.query
import pytest

from tests.integration.servers.atlas_fake import FakeProbe as AtlasProbe, atlas_api  # noqa: F401 (fixture)
from tests.integration.servers.bind import BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.globalping_fake import FakeProbe, globalping_api  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)
from tests.integration.test_scenarios import NEW, OLD, ZONE, Operator

pytestmark = pytest.mark.integration

WWW = [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}]


def world(tmp_path, bind_server, unbound_server, api, probes, atlas=None):
    """BIND with www on the old address (TTL 60); the watch asks one Unbound; the probes
    ask two more: Tokyo's cached the old answer before the change, Berlin's did not (RIPE
    Atlas probes in Australia and Brazil share those two caches). The change is applied."""
    bind = bind_server(BindZone(ZONE, records=(f"www 60 IN A {OLD}",)))
    asked, tokyo, berlin = (unbound_server(ZONE, bind.port) for _ in range(3))
    dns.query.udp(dns.message.make_query("www." + ZONE, "A"), "127.0.0.1", port=tokyo.port, timeout=3)
    api.add_probe(FakeProbe("JP", "Tokyo", 2516, "KDDI Corporation", ("127.0.0.1", tokyo.port), continent="AS"))
    api.add_probe(FakeProbe("DE", "Berlin", 3320, "Deutsche Telekom AG", ("127.0.0.1", berlin.port)))
    if atlas is not None:
        atlas.add_probe(AtlasProbe(6001, "AU", 1221, "1.128.0.0/11", [("127.0.0.1", tokyo.port)]))
        atlas.add_probe(AtlasProbe(6002, "BR", 28573, "177.0.0.0/8", [("127.0.0.1", berlin.port)]))
    op = Operator(tmp_path, bind, [asked], WWW, watch={"resolvers": [asked.endpoint], "interval": "1s", "timeout": "1s",
                                                        "probes": probes})
    op("apply", "--yes", "--force", "ttl")
    return op


def anywhere(api, limit: int = 2) -> dict:
    """A ``watch.probes`` entry: ``limit`` Globalping probes anywhere, every 10 minutes."""
    return {"service": "globalping", "url": api.url, "locations": [{"magic": "world", "limit": limit}], "every": "10m"}


def probe_answers(doc):
    return {a["vantage"]["city"]: a for a in doc["records"][0]["answers"] if a["group"] == "probe"}


def test_probe_answers_join_the_round_with_their_vantage_counted_and_holding_the_verdict(
        tmp_path, bind_server, unbound_server, globalping_api):
    op = world(tmp_path, bind_server, unbound_server, globalping_api, [anywhere(globalping_api)])
    (doc,) = op.rounds("--once", expect=1)
    probes = probe_answers(doc)
    assert set(probes) == {"Tokyo", "Berlin"}
    tokyo, berlin = probes["Tokyo"], probes["Berlin"]
    assert (tokyo["state"], tokyo["values"]) == ("old", [OLD]) and 0 < tokyo["ttl"] <= 60
    assert (berlin["state"], berlin["values"]) == ("new", [NEW])
    assert tokyo["vantage"] == {"service": "globalping", "continent": "AS", "country": "JP", "city": "Tokyo",
                                "asn": 2516, "network": "KDDI Corporation", "probe": ""}
    assert tokyo["resolver"] == "globalping JP Tokyo AS2516" and tokyo["operator"] == "KDDI Corporation"
    assert tokyo["measured"] and tokyo["age"] is not None and 0 <= tokyo["age"] < 60
    record = doc["records"][0]
    assert record["counts"]["new"] == 2 and record["counts"]["old"] == 1  # the resolver, Berlin; Tokyo
    assert record["share"] == pytest.approx(2 / 3)
    assert doc["verdict"]["retire"] is False
    propagation = next(c for c in doc["verdict"]["conditions"] if c["name"] == "propagation")
    assert propagation["met"] is False
    (service,) = doc["probes"]
    assert service["service"] == "globalping" and service["answers"] == 2 and service["problems"] == []
    assert service["records"][0]["state"] == "finished" and service["records"][0]["id"] in globalping_api.measurements
    # the round is stored: status shows the same probe answers, and a second --once run within
    # `every` reuses them instead of spending the hourly budget again
    assert probe_answers(op.status()["last_round"])["Tokyo"]["state"] == "old"
    (again,) = op.rounds("--once", expect=1)
    assert len(globalping_api.measurements) == 1 and set(probe_answers(again)) == {"Tokyo", "Berlin"}
    assert probe_answers(again)["Tokyo"]["age"] >= tokyo["age"]


def test_a_schedule_over_the_services_limit_is_refused_before_anything_is_sent(
        tmp_path, bind_server, unbound_server, globalping_api):
    op = world(tmp_path, bind_server, unbound_server, globalping_api, [anywhere(globalping_api, limit=50)])
    result = op("watch", "--once", expect=2)
    assert "watch.probes[0]: globalping: 1 record(s) every 600s with 50 probes" in result.stderr
    assert "over the 250 free tests/hour allowed anonymously" in result.stderr and "Traceback" not in result.stderr
    assert globalping_api.log == []


def test_a_failing_service_is_reported_in_the_round_and_never_fails_the_watch(
        tmp_path, bind_server, unbound_server, globalping_api):
    op = world(tmp_path, bind_server, unbound_server, globalping_api, [anywhere(globalping_api)])
    globalping_api.fail_next(1, 500, "POST")
    result = op("watch", "--once", "--format", "json", expect=1)  # not yet: the resolver alone cannot say more
    doc = json.loads(result.stdout)
    (service,) = doc["probes"]
    (problem,) = service["problems"]
    assert problem.startswith("globalping: starting a measurement of www.acme.example.com. A: ") and "HTTP 500" in problem
    assert probe_answers(doc) == {} and doc["records"][0]["counts"]["new"] == 1


def test_the_probes_option_replaces_the_plans_entries(tmp_path, bind_server, unbound_server, globalping_api):
    op = world(tmp_path, bind_server, unbound_server, globalping_api, [])
    probes = tmp_path / "probes.yaml"
    probes.write_text(f"- {{service: globalping, url: '{globalping_api.url}', locations: [{{country: DE, limit: 1}}]}}\n")
    (doc,) = op.rounds("--once", "--probes", str(probes), expect=1)
    assert set(probe_answers(doc)) == {"Berlin"}
    (doc,) = op.rounds("--once", "--probes", "none", expect=1)
    assert probe_answers(doc) == {} and "probes" not in doc


def test_globalping_and_ripe_atlas_answers_join_one_round(tmp_path, monkeypatch, bind_server, unbound_server,
                                                          globalping_api, atlas_api):
    """The issue's "done when": one --once round holds both services' answers, each with its
    vantage, classified, counted in counts and share, and holding the verdict."""
    monkeypatch.setenv("ATLAS_KEY", atlas_api.key)
    op = world(tmp_path, bind_server, unbound_server, globalping_api, [
        anywhere(globalping_api),
        {"service": "ripe-atlas", "url": atlas_api.url, "key": "${ATLAS_KEY}", "every": "1h",
         "probes": [{"type": "area", "value": "WW", "requested": 2}]},
    ], atlas=atlas_api)
    result = op("watch", "--once", "--format", "json", expect=1)
    (doc,) = [json.loads(line) for line in result.stdout.splitlines()]
    answers = [a for a in doc["records"][0]["answers"] if a["group"] == "probe"]
    by_where = {(a["vantage"]["service"], a["vantage"]["country"]): a for a in answers}
    assert {k: a["state"] for k, a in by_where.items()} == {
        ("globalping", "JP"): "old", ("globalping", "DE"): "new", ("ripe-atlas", "AU"): "old", ("ripe-atlas", "BR"): "new"}
    au = by_where[("ripe-atlas", "AU")]
    assert au["vantage"] == {"service": "ripe-atlas", "continent": "OC", "country": "AU", "city": "", "asn": 1221,
                             "network": "1.128.0.0/11", "probe": "6001"}
    assert au["values"] == [OLD] and au["resolver"].startswith("ripe-atlas AU AS1221")
    counts = doc["records"][0]["counts"]
    assert (counts["new"], counts["old"]) == (3, 2) and doc["records"][0]["share"] == pytest.approx(3 / 5)
    assert doc["verdict"]["retire"] is False
    assert [(p["service"], p["answers"], p["problems"]) for p in doc["probes"]] == [("globalping", 2, []), ("ripe-atlas", 2, [])]
    assert atlas_api.auth and all(a == f"Key {atlas_api.key}" for a in atlas_api.auth)  # the key went only there
    stored = "".join(f.read_text(errors="replace") for f in (tmp_path / ".cutover").rglob("*") if f.is_file())
    assert atlas_api.key not in result.stdout + result.stderr and atlas_api.key not in stored
