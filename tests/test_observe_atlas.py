"""RIPE Atlas: settings, the cost check, the request a record becomes, results (abuf) read as
classified answers, and the client's pacing and secrecy against a scripted transport."""

from __future__ import annotations

import base64
import json
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
import requests

from cutover.observe.probes import PROBE, ProbeClient, SettingError
from cutover.observe.probes.atlas import (
    CREDITS_PER_DAY,
    DEFAULT_URL,
    RESULTS_PER_DAY,
    SERVICE,
    AtlasClient,
    AtlasLimited,
    AtlasSettings,
    MeasurementEnded,
    ProbeInfo,
    ProbeSpec,
    answers_from,
    budget_key,
    client,
    cost_problem,
    credits_per_result,
    hourly_limit,
    hourly_use,
    measurement_request,
    measurements_per_day,
    settings_from,
    settings_problem,
)
from cutover.observe.types import Target, Vantage
from providers.httpclient import ApiError, RetryPolicy

OLD, NEW = "198.51.100.10", "203.0.113.10"
WWW = Target(("www.acme.example.com.", "A"), (NEW,), (OLD,), 300)
KEY = "c0ffee00-aaaa-bbbb-cccc-1234567890ab"
WW50 = [{"type": "area", "value": "WW", "requested": 50}]


# -- settings ---------------------------------------------------------------------------------


def test_the_documented_entry_is_read():
    s = settings_from({"service": "ripe-atlas", "key": KEY, "probes": WW50, "every": "1h", "url": "https://atlas.ripe.net",
                       "resolver": "own"})
    assert s == AtlasSettings(probes=(ProbeSpec("area", "WW", 50),), key=KEY, every=3600.0, url=DEFAULT_URL)
    assert s.resolver is None and s.af == 4 and s.protocol == "UDP"
    assert KEY not in repr(s)


def test_probe_specs_are_spelled_as_the_api_wants():
    s = settings_from({"key": KEY, "every": 900, "probes": [
        {"type": "area", "value": "north-east", "requested": 5}, {"type": "country", "value": "nl", "requested": 3},
        {"type": "asn", "value": "AS3333", "requested": 2}, {"type": "prefix", "value": "193.0.0.1/16", "requested": 1},
        {"type": "probes", "value": [6012, 1001]}, {"type": "msm", "value": 2000000, "requested": 4,
                                                     "tags": {"include": ["system-ipv4-works"]}}]})
    assert [p.as_api() for p in s.probes] == [
        {"type": "area", "value": "North-East", "requested": 5}, {"type": "country", "value": "NL", "requested": 3},
        {"type": "asn", "value": "3333", "requested": 2}, {"type": "prefix", "value": "193.0.0.0/16", "requested": 1},
        {"type": "probes", "value": "6012,1001", "requested": 2},
        {"type": "msm", "value": "2000000", "requested": 4, "tags": {"include": ["system-ipv4-works"], "exclude": []}}]
    assert s.every == 900.0


def test_a_resolver_address_is_asked_instead_of_the_probes_own():
    assert settings_from({"key": KEY, "probes": WW50, "resolver": "9.9.9.9"}).resolver == "9.9.9.9"
    v6 = settings_from({"key": KEY, "probes": WW50, "resolver": "2620:fe::fe"})
    assert (v6.resolver, v6.af) == ("2620:fe::fe", 6)
    assert settings_from({"key": KEY, "probes": WW50, "af": 6}).af == 6


@pytest.mark.parametrize("entry, field, words", [
    ({"probes": WW50}, "key", "required: RIPE Atlas creates measurements only with an API key"),
    ({"key": "", "probes": WW50}, "key", "required"),
    ({"key": 1234, "probes": WW50}, "key", "must be a string"),
    ({"key": KEY, "probes": WW50, "token": "x"}, "token", "unknown field for ripe-atlas"),
    ({"key": KEY, "probes": WW50, "service": "globalping"}, "service", "is not ripe-atlas"),
    ({"key": KEY}, "probes", "required: where and how many"),
    ({"key": KEY, "probes": {"type": "area"}}, "probes", "must be a list"),
    ({"key": KEY, "probes": ["WW"]}, "probes[0]", "must be a mapping"),
    ({"key": KEY, "probes": [{"type": "city", "value": "Paris", "requested": 1}]}, "probes[0].type", "is not one of area"),
    ({"key": KEY, "probes": [{"type": "area", "value": "Mars", "requested": 1}]}, "probes[0].value", "is not an area"),
    ({"key": KEY, "probes": [{"type": "country", "value": "NLD", "requested": 1}]}, "probes[0].value", "two-letter"),
    ({"key": KEY, "probes": [{"type": "asn", "value": "ASx", "requested": 1}]}, "probes[0].value", "AS number"),
    ({"key": KEY, "probes": [{"type": "prefix", "value": "10.0.0.0/33", "requested": 1}]}, "probes[0].value", "IP prefix"),
    ({"key": KEY, "probes": [{"type": "probes", "value": "1,x"}]}, "probes[0].value", "probe ids"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW"}]}, "probes[0].requested", "1..1000"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW", "requested": 0}]}, "probes[0].requested", "1..1000"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW", "requested": True}]}, "probes[0].requested", "1..1000"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW", "requested": 1, "limit": 2}]}, "probes[0].limit", "unknown key"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW", "requested": 1, "tags": ["a"]}]}, "probes[0].tags", "include"),
    ({"key": KEY, "probes": [{"type": "area", "value": "WW", "requested": 600}] * 2}, "probes", "at most 1000"),
    ({"key": KEY, "probes": WW50, "every": "soon"}, "every", "not a duration"),
    ({"key": KEY, "probes": WW50, "every": 0}, "every", "at least 1s"),
    ({"key": KEY, "probes": WW50, "url": "ftp://atlas.ripe.net"}, "url", "not an http(s) URL"),
    ({"key": KEY, "probes": WW50, "url": "https://atlas.ripe.net/?key=abc"}, "url", "no credentials, query"),
    ({"key": KEY, "probes": WW50, "resolver": "dns.google"}, "resolver", "neither own nor an IP address"),
    ({"key": KEY, "probes": WW50, "resolver": "9.9.9.9", "af": 6}, "af", "does not fit the IPv4 resolver"),
    ({"key": KEY, "probes": WW50, "af": 5}, "af", "is not 4 or 6"),
    ({"key": KEY, "probes": WW50, "protocol": "DoH"}, "protocol", "is not UDP or TCP"),
    ({"key": KEY, "probes": WW50, "credits_per_day": -5}, "credits_per_day", "positive whole number"),
])
def test_unusable_fields_are_named(entry, field, words):
    with pytest.raises(SettingError) as exc:
        settings_from(entry)
    assert exc.value.field == field
    assert words in exc.value.message


@pytest.mark.parametrize("key", ["secret key with spaces", "line\nbreak-secret", "tab\tsecret"])
def test_a_broken_key_is_refused_without_being_quoted(key):
    with pytest.raises(SettingError) as exc:
        settings_from({"key": key, "probes": WW50})
    assert exc.value.field == "key" and "secret" not in str(exc.value) and "break" not in str(exc.value)


# -- cost -------------------------------------------------------------------------------------


def test_units_and_counts():
    assert credits_per_result("UDP") == 20 and credits_per_result("TCP") == 40  # one-offs cost double
    assert measurements_per_day(3600, 4) == 96
    assert measurements_per_day(7 * 3600, 1) == 4  # 3.4 starts fit in a day: 4 can begin in one


def test_the_documented_plan_fits():
    assert cost_problem(3600, 50, 4) is None  # 96 measurements, 4800 results, 96000 credits a day


def test_over_the_limits_it_says_what_it_costs_and_what_fits():
    problem = cost_problem(60, 50, 2)
    assert problem is not None
    assert "2880 one-off measurements, 144000 results and 2880000 credits a day (20 credits a result)" in problem
    assert f"the {RESULTS_PER_DAY} results/day RIPE Atlas allows" in problem
    assert f"the {CREDITS_PER_DAY} credits/day RIPE Atlas allows" in problem
    assert "what fits: at most 17 probes or every: 173s or longer" in problem
    assert cost_problem(60, 17, 2) is None and cost_problem(173, 50, 2) is None  # what it suggests does fit
    assert cost_problem(60, 18, 2) is not None and cost_problem(172, 50, 2) is not None  # and is the limit


def test_only_the_exceeded_limit_is_named():
    problem = cost_problem(60, 25, 2) or ""  # 72000 results (fine), 1440000 credits (not)
    assert "credits/day" in problem and "results/day" not in problem


def test_tcp_costs_twice_udp():
    assert cost_problem(600, 50, 4) is None  # 576 measurements x 50 results x 20 = 576000 credits a day
    problem = cost_problem(600, 50, 4, protocol="TCP") or ""  # x 40 = 1152000
    assert "1152000 credits a day (40 credits a result)" in problem
    assert cost_problem(600, 50, 3, protocol="TCP") is None  # 864000


def test_the_plans_own_budget():
    problem = cost_problem(3600, 50, 4, budget=20000) or ""
    assert "96000 credits a day" in problem and "over credits_per_day: 20000" in problem
    assert "at most 10 probes or every: 17280s or longer" in problem
    assert "nothing: raise credits_per_day" in (cost_problem(3600, 1, 1, budget=10) or "")


def test_per_measurement_and_simultaneous_limits():
    assert "1001 probes per measurement exceed the 1000" in (cost_problem(86400, 1001, 1) or "")
    assert "101 records measured together exceed the 100 simultaneous" in (cost_problem(86400, 1, 101) or "")


def test_settings_problem_reads_the_entry():
    entry = {"key": KEY, "probes": [{"type": "country", "value": "NL", "requested": 30}, {"type": "area", "value": "WW",
                                                                                            "requested": 20}]}
    assert settings_problem(settings_from({**entry, "every": "1h"}), 4) is None
    assert "with 50 probes" in (settings_problem(settings_from({**entry, "every": "1m"}), 4) or "")
    assert settings_problem(settings_from({**entry, "every": "1h", "credits_per_day": 50000}), 4) is not None


def test_entries_sharing_a_key_share_one_budget_counted_without_the_key():
    one = settings_from({"key": KEY, "probes": WW50, "every": "1h"})
    other = settings_from({"key": KEY, "probes": WW50, "every": "10m", "credits_per_day": 240000})
    assert budget_key(one) == budget_key(other) != budget_key(settings_from({"key": "another-key", "probes": WW50}))
    assert KEY not in budget_key(one) and budget_key(AtlasSettings()) == "no key"
    assert hourly_use(one, 4) == 4000.0  # 96000 credits a day
    assert hourly_use(other, 1) == 6000.0  # 144 x 50 x 20 = 144000 a day
    assert hourly_limit(one) == round(CREDITS_PER_DAY / 24, 1) and hourly_limit(other) == 10000.0


# -- the request ------------------------------------------------------------------------------


def test_the_request_for_one_record():
    s = AtlasSettings(probes=(ProbeSpec("area", "WW", 50), ProbeSpec("country", "NL", 5, ("home",), ("datacentre",))), key=KEY)
    assert measurement_request(s, WWW) == {
        "definitions": [{"type": "dns", "af": 4, "description": "cutover: www.acme.example.com A", "query_class": "IN",
                         "query_type": "A", "query_argument": "www.acme.example.com", "protocol": "UDP",
                         "use_probe_resolver": True, "set_rd_bit": True}],
        "probes": [{"type": "area", "value": "WW", "requested": 50},
                   {"type": "country", "value": "NL", "requested": 5, "tags": {"include": ["home"], "exclude": ["datacentre"]}}],
        "is_oneoff": True}
    named = measurement_request(AtlasSettings(probes=s.probes, resolver="2620:fe::fe", af=6, protocol="TCP"), WWW)
    d = named["definitions"][0]
    assert (d["use_probe_resolver"], d["target"], d["af"], d["protocol"]) == (False, "2620:fe::fe", 6, "TCP")


def test_requests_the_api_would_refuse_are_refused_here():
    with pytest.raises(ValueError, match="cannot query CAA"):
        measurement_request(AtlasSettings(probes=(ProbeSpec("area", "WW", 1),)), Target(("acme.example.com.", "CAA"), (), (), 300))
    with pytest.raises(ValueError, match="no probes"):
        measurement_request(AtlasSettings(), WWW)


# -- results ----------------------------------------------------------------------------------


def response(*rrsets: str, rcode: int = 0, name: str = "www.acme.example.com.", rtype: str = "A") -> dict:
    """A resolver's answer as Atlas reports it: the wire format in ``abuf``."""
    query = dns.message.make_query(name, rtype)
    msg = dns.message.make_response(query)
    msg.set_rcode(dns.rcode.Rcode.make(rcode))
    for text in rrsets:
        owner, ttl, rdtype, *values = text.split()
        msg.answer.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, *values))
    return {"result": {"rt": 23.5, "size": 60, "abuf": base64.b64encode(msg.to_wire()).decode(), "ANCOUNT": len(rrsets)}}


def a(*values: str, ttl: int = 120) -> dict:
    return response(*(f"www.acme.example.com. {ttl} A {v}" for v in values))


def probe_result(prb_id: int, *entries: dict, resolvers: tuple[str, ...] = ()) -> dict:
    """One probe's result with its own resolvers (``use_probe_resolver``)."""
    addresses = resolvers or tuple(f"192.168.{prb_id % 250}.{i}" for i in range(1, len(entries) + 1))
    return {"fw": 5080, "prb_id": prb_id, "msm_id": 1, "type": "dns", "from": "203.0.113.9", "timestamp": 1,
            "resultset": [{"subid": i, "submax": len(entries), "dst_addr": addr, "af": 4, "proto": "UDP", **e}
                          for i, (addr, e) in enumerate(zip(addresses, entries), start=1)]}


INFO = {1001: ProbeInfo("JP", 2516, "106.128.0.0/12"), 1002: ProbeInfo("DE", 3320, "91.0.0.0/10"),
        1003: ProbeInfo("BR", 28573, "177.0.0.0/8")}


def test_answers_are_classified_like_a_resolvers():
    got = answers_from([probe_result(1001, a(OLD)), probe_result(1002, a(NEW)), probe_result(1003, a("192.0.2.1"))], WWW, INFO)
    assert [a.state for a in got] == ["old", "new", "other"]
    tokyo = got[0]
    assert tokyo.values == (OLD,) and tokyo.ttl == 120 and tokyo.elapsed == pytest.approx(0.0235)
    assert tokyo.resolver.group == PROBE and tokyo.resolver.name == "ripe-atlas JP AS2516 #1001"
    assert tokyo.resolver.address == "192.168.1.1" and tokyo.resolver.country == "JP"
    assert tokyo.resolver.operator == "106.128.0.0/12"
    assert tokyo.vantage == Vantage(SERVICE, continent="AS", country="JP", asn=2516, network="106.128.0.0/12", probe="1001")
    assert tokyo.as_dict()["vantage"]["probe"] == "1001" and tokyo.as_dict()["group"] == "probe"


def test_each_resolver_of_a_probe_is_an_answer_with_its_own_label():
    got = answers_from([probe_result(1001, a(OLD), a(NEW), resolvers=("10.0.0.1", "10.0.0.2"))], WWW, INFO)
    assert [(x.resolver.label, x.resolver.address, x.state) for x in got] == [
        ("ripe-atlas JP AS2516 #1001", "10.0.0.1", "old"), ("ripe-atlas JP AS2516 #1001 resolver 2", "10.0.0.2", "new")]


def test_without_probe_metadata_the_probe_id_labels_the_answer():
    got = answers_from([probe_result(1001, a(NEW))], WWW)
    assert got[0].resolver.name == "ripe-atlas #1001" and got[0].state == "new"
    assert got[0].vantage == Vantage(SERVICE, probe="1001")


def test_a_cname_chain_is_followed_to_the_asked_type():
    chain = response("www.acme.example.com. 60 CNAME edge.acme.example.com.", f"edge.acme.example.com. 60 A {NEW}")
    assert answers_from([probe_result(1001, chain)], WWW, INFO)[0].state == "new"
    looped = response("www.acme.example.com. 60 CNAME x.acme.example.com.", "x.acme.example.com. 60 CNAME www.acme.example.com.")
    got = answers_from([probe_result(1001, looped)], WWW, INFO)[0]
    assert got.state == "malformed" and "CNAME loop" in got.detail


def test_several_records_of_one_set_are_one_answer_whatever_their_order():
    target = Target(WWW.key, (NEW, "203.0.113.11"), (OLD,), 300)
    assert answers_from([probe_result(1001, a("203.0.113.11", NEW))], target)[0].state == "new"


def test_negative_and_failing_rcodes_become_error_classes():
    results = [probe_result(1001, response(rcode=3), response(rcode=0), response(rcode=2), response(rcode=5))]
    assert [x.state for x in answers_from(results, WWW)] == ["nxdomain", "nodata", "servfail", "refused"]
    gone = Target(("www.acme.example.com.", "A"), (), (OLD,), 300)
    assert answers_from([probe_result(1001, response(rcode=3))], gone)[0].state == "new"


def test_probe_errors_timeouts_and_offline_probes():
    results = [probe_result(1001, {"error": {"timeout": 5000}}, {"error": {"socket": "connect failed Network unreachable"}}),
               {"prb_id": 1002, "dst_addr": "9.9.9.9", "error": {"getaddrinfo": "Name or service not known"}},
               probe_result(1003)]
    got = answers_from(results, WWW, INFO, expected=[1001, 1002, 1003, 1004], final=True)
    assert [(x.state, x.detail) for x in got] == [
        ("timeout", "no answer from the resolver in 5000 ms"),
        ("error", "probe error (socket: connect failed Network unreachable)"),
        ("error", "probe error (getaddrinfo: Name or service not known)"),
        ("error", "the probe reported no resolvers"),
        ("error", "probe offline: no result")]
    assert got[-1].resolver.name == "ripe-atlas #1004" and not any(x.answered for x in got)
    unfinished = answers_from([], WWW, INFO, expected=[1001], final=False)
    assert [(x.state, x.resolver.name) for x in unfinished] == [("timeout", "ripe-atlas JP AS2516 #1001")]


def test_unreadable_results_are_malformed_not_a_crash():
    wire = base64.b64decode(a(NEW)["result"]["abuf"])
    results = [probe_result(1001, {"result": {"abuf": "%%% not base64"}}, {"result": {"abuf": base64.b64encode(wire[:20]).decode()}},
                            {"result": {"rt": 3}}, {"result": "nonsense"}, {}, response(f"other.example. 60 A {NEW}",
                                                                                          name="other.example."))]
    results.append({"prb_id": "x"})  # type: ignore[dict-item]
    results.append("nonsense")  # type: ignore[arg-type]
    got = answers_from(results, WWW, INFO)
    assert [x.state for x in got] == ["malformed"] * 8
    assert "unreadable abuf" in got[0].detail and "unreadable abuf" in got[1].detail
    assert got[2].detail == "the result has no abuf" and got[3].detail == "neither a result nor an error"
    assert got[5].detail == "the answer is for other.example. A, not www.acme.example.com. A"
    assert got[6].detail == got[7].detail == "a result without a probe id"
    assert len({x.resolver.label for x in got}) == 8  # every answer keeps a label of its own


def test_a_named_resolver_answers_without_a_resultset():
    item = {"prb_id": 1002, "dst_addr": "9.9.9.9", "from": "203.0.113.9", **a(NEW)}
    got = answers_from([item], WWW, INFO, resolver="9.9.9.9")[0]
    assert (got.state, got.resolver.address, got.resolver.name) == ("new", "9.9.9.9", "ripe-atlas DE AS3320 #1002")


# -- the client, against a scripted transport -------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r.headers.update(headers or {})
    r.reason = "scripted"
    return r


class Transport:
    """Stands in for the session: answers by (method, path) from scripted queues, records calls."""

    def __init__(self, script: dict[tuple[str, str], list[requests.Response]]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, Any, Any]] = []

    def request(self, method: str, url: str, json: Any = None, params: Any = None, timeout: Any = None) -> requests.Response:
        path = "/" + url.split("/", 3)[3]
        self.calls.append((method, url, params, json))
        queue = self.script[(method, path)]
        r = queue.pop(0) if len(queue) > 1 else queue[0]
        r.request = requests.Request(method, url, params=params).prepare()
        return r

    def close(self) -> None:
        pass


def scripted(script: dict[tuple[str, str], list[requests.Response]], **settings: Any) -> tuple[AtlasClient, Transport, Clock]:
    clock = Clock()
    c = AtlasClient(AtlasSettings(**{"probes": (ProbeSpec("area", "WW", 2),), "key": KEY, **settings}), RetryPolicy(max_wait=30),
                    clock=clock, poll_interval=5.0)
    c.sleep = clock.sleep
    transport = Transport(script)
    c._session = transport  # type: ignore[assignment]
    return c, transport, clock


M = "/api/v2/measurements/"
CREATED = reply(201, {"measurements": [42]})


def meta(status: str = "Ongoing", probes: tuple[int, ...] = (1001, 1002)) -> requests.Response:
    return reply(200, {"id": 42, "type": "dns", "status": {"id": 2, "name": status}, "probes_scheduled": len(probes),
                       "probes": [{"id": p} for p in probes]})


def results(*items: dict) -> requests.Response:
    return reply(200, list(items))


PROBES_OK = reply(200, {"results": [{"id": 1001, "country_code": "JP", "asn_v4": 2516, "prefix_v4": "106.128.0.0/12"},
                                    {"id": 1002, "country_code": "DE", "asn_v4": 3320, "prefix_v4": "91.0.0.0/10"}]})


def test_the_client_is_a_probe_client():
    c: ProbeClient = client(AtlasSettings(key=KEY))
    assert isinstance(c, AtlasClient) and repr(c) == f"AtlasClient({DEFAULT_URL!r})" and KEY not in repr(c)
    assert c._session.headers["Authorization"] == f"Key {KEY}"  # type: ignore[attr-defined]
    c.close()


def test_a_measurement_read_to_the_end_at_the_set_pace():
    c, t, clock = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta(), meta("Stopped")],
                            ("GET", M + "42/results/"): [results(probe_result(1001, a(OLD))),
                                                         results(probe_result(1001, a(OLD)), probe_result(1002, a(NEW)))],
                            ("GET", "/api/v2/probes/"): [PROBES_OK]})
    assert c.create(WWW) == "42" and c.ready_at("42") == clock.now + 5.0
    first = c.progress("42", WWW)
    assert clock.pauses == [5.0]  # came early: waited out the poll interval
    assert first is not None and not first.final
    assert [(x.resolver.name, x.state) for x in first.answers] == [("ripe-atlas JP AS2516 #1001", "old"),
                                                                    ("ripe-atlas DE AS3320 #1002", "timeout")]
    second = c.progress("42", WWW)
    assert second is not None and second.final and [x.state for x in second.answers] == ["old", "new"]
    assert clock.pauses == [5.0, 5.0] and c.ready_at("42") == 0.0  # final: nothing more to pace
    lookups = [call for call in t.calls if call[1].endswith("/api/v2/probes/")]
    assert len(lookups) == 1 and lookups[0][2]["id__in"] == "1001,1002"  # asked once, for both
    post = t.calls[0]
    assert post[3]["definitions"][0]["query_argument"] == "www.acme.example.com"
    assert all(KEY not in call[1] and KEY not in str(call[2]) for call in t.calls)  # never in a URL


def test_a_stopped_measurement_missing_results_is_read_once_more():
    c, _, _ = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta("Stopped")],
                        ("GET", M + "42/results/"): [results(probe_result(1001, a(OLD)))], ("GET", "/api/v2/probes/"): [PROBES_OK]})
    c.create(WWW)
    first = c.progress("42", WWW)
    assert first is not None and not first.final  # the results endpoint may lag its status
    second = c.progress("42", WWW)
    assert second is not None and second.final
    assert [(x.state, x.detail) for x in second.answers][1] == ("error", "probe offline: no result")


def test_429_on_create_is_waited_out_or_holds_further_measurements():
    c, t, clock = scripted({("POST", M): [reply(429, {}, {"Retry-After": "2"}), CREATED]})
    assert c.create(WWW) == "42" and clock.pauses == [2.0]
    c, t, clock = scripted({("POST", M): [reply(429, {"error": {"detail": "Request was throttled."}}, {"Retry-After": "120"})]})
    with pytest.raises(AtlasLimited) as exc:
        c.create(WWW)
    assert exc.value.wait == 120 and exc.value.status == 429 and clock.pauses == []
    assert "HTTP 429: Request was throttled.; allowed again in 120s" in str(exc.value)
    with pytest.raises(AtlasLimited, match="next measurement allowed in 120s"):
        c.create(WWW)
    assert len(t.calls) == 1  # not even asked
    c, _, clock = scripted({("POST", M): [reply(429, {})]})  # no Retry-After: held back a minute
    with pytest.raises(AtlasLimited):
        c.create(WWW)
    assert c.not_before == clock.now + 60


def test_429_on_a_read_moves_the_next_read():
    c, t, clock = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [reply(429, {}, {"Retry-After": "12"}), meta("Stopped")],
                            ("GET", M + "42/results/"): [results(probe_result(1001, a(OLD)), probe_result(1002, a(NEW)))],
                            ("GET", "/api/v2/probes/"): [PROBES_OK]})
    c.create(WWW)
    clock.now += 5
    assert c.progress("42", WWW) is None and c.ready_at("42") == clock.now + 12
    done = c.progress("42", WWW)
    assert clock.pauses == [12.0] and done is not None and done.final
    c2, _, clock2 = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta()],
                              ("GET", M + "42/results/"): [reply(429, {})]})
    c2.create(WWW)
    clock2.now += 5
    assert c2.progress("42", WWW) is None and c2.ready_at("42") == clock2.now + 10  # twice the interval when unsaid


def test_failures_of_the_service_are_api_errors():
    for broken, words in [(reply(502, b"<h1>Bad Gateway</h1>"), "HTTP 502: <h1>Bad Gateway</h1>"),
                          (reply(200, b"<html>maintenance</html>"), "the answer is not JSON"),
                          (reply(200, {"results": []}), "the answer is not a list of results")]:
        c, _, clock = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta()], ("GET", M + "42/results/"): [broken]})
        c.create(WWW)
        with pytest.raises(ApiError, match=words):
            c.progress("42", WWW)
        assert c.ready_at("42") == clock.now + 5.0  # a failing service is not hammered either
    c, _, _ = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [reply(200, [1, 2])]})
    c.create(WWW)
    with pytest.raises(ApiError, match="the answer is not a measurement"):
        c.progress("42", WWW)
    c, _, _ = scripted({("POST", M): [reply(201, {"measurements": []})]})
    with pytest.raises(ApiError, match="no measurement id"):
        c.create(WWW)


def test_a_measurement_that_ends_without_results_says_why():
    c, t, _ = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta("No suitable probes", probes=())],
                        ("GET", M + "42/results/"): [results()]})
    c.create(WWW)
    with pytest.raises(MeasurementEnded, match=r"measurement 42 ended \(No suitable probes\) without any result") as exc:
        c.progress("42", WWW)
    assert exc.value.final
    calls = len(t.calls)
    with pytest.raises(MeasurementEnded):
        c.progress("42", WWW)  # over: said again without asking again
    assert len(t.calls) == calls


def test_failing_probe_metadata_leaves_the_answers_with_probe_ids():
    c, t, _ = scripted({("POST", M): [CREATED], ("GET", M + "42/"): [meta(), meta("Stopped")],
                        ("GET", M + "42/results/"): [results(probe_result(1001, a(OLD))),
                                                     results(probe_result(1001, a(OLD)), probe_result(1002, a(NEW)))],
                        ("GET", "/api/v2/probes/"): [reply(503, b"unavailable")]})
    c.create(WWW)
    got = c.progress("42", WWW)
    assert got is not None and [x.resolver.name for x in got.answers] == ["ripe-atlas #1001", "ripe-atlas #1002"]
    assert c.probe_lookup_error is not None and "HTTP 503" in c.probe_lookup_error
    done = c.progress("42", WWW)
    assert done is not None and done.final and [x.state for x in done.answers] == ["old", "new"]
    assert len([call for call in t.calls if "/probes/" in call[1]]) == 1  # not asked again for this measurement


def test_the_key_never_appears_in_messages():
    echo = {"error": {"status": 403, "title": "Forbidden", "detail": f"The provided API key {KEY} does not exist", "code": 104}}
    c, t, _ = scripted({("POST", M): [reply(403, echo)]})
    with pytest.raises(ApiError) as exc:
        c.create(WWW)
    text = str(exc.value)
    assert exc.value.status == 403 and KEY not in text and "The provided API key *** does not exist" in text
    assert "check the key and its permission to create measurements" in text
    invalid = {"error": {"status": 400, "title": "Bad Request", "detail": "There was a problem with your request",
                         "errors": [{"source": {"pointer": "/definitions/0/query_type"}, "detail": '"HTTPS" is not a valid choice.'}]}}
    c, _, _ = scripted({("POST", M): [reply(400, invalid)]})
    with pytest.raises(ApiError, match=r'HTTP 400: There was a problem with your request \(/definitions/0/query_type: "HTTPS"'):
        c.create(WWW)


def test_without_a_key_nothing_is_sent():
    c, t, _ = scripted({}, key="")
    with pytest.raises(ApiError, match="needs an API key"):
        c.create(WWW)
    assert t.calls == [] and "Authorization" not in AtlasClient(AtlasSettings())._session.headers


def test_connection_failures_name_no_url_with_secrets():
    c = AtlasClient(AtlasSettings(probes=(ProbeSpec("area", "WW", 1),), key=KEY, url="http://127.0.0.1:9"),
                    RetryPolicy(connect_timeout=1, read_timeout=1))
    with pytest.raises(ApiError) as exc:
        c.create(WWW)
    assert str(exc.value) == "ripe-atlas: POST /api/v2/measurements/ failed: ConnectionError"
