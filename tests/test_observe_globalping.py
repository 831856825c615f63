"""Globalping results read as answers, the request a record becomes, and the cost check."""

from __future__ import annotations

import pytest

from cutover.observe.probes import PROBE
from cutover.observe.probes.globalping import (
    ANONYMOUS_TESTS_PER_HOUR,
    GlobalpingSettings,
    RateLimit,
    answers_from,
    cost_problem,
    measurement_request,
    measurements_per_hour,
    probes_requested,
    settings_problem,
)
from cutover.observe.types import Target

OLD, NEW = "198.51.100.10", "203.0.113.10"
WWW = Target(("www.acme.example.com.", "A"), (NEW,), (OLD,), 300)


def probe(country: str = "JP", city: str = "Tokyo", asn: int = 2516, network: str = "KDDI Corporation") -> dict:
    return {"continent": "AS", "region": "Eastern Asia", "country": country, "state": None, "city": city, "asn": asn,
            "network": network, "latitude": 35.7, "longitude": 139.7, "tags": [], "resolvers": ["private"]}


def finished(*values: str, rcode: int = 0, rtype: str = "A", name: str = "www.acme.example.com.", extra: tuple = ()) -> dict:
    answers = [*extra, *({"name": name, "type": rtype, "ttl": 120, "class": "IN", "value": v} for v in values)]
    return {"status": "finished", "statusCode": rcode, "statusCodeName": "", "resolver": "192.0.2.53",
            "answers": answers, "timings": {"total": 23.5}, "rawOutput": ""}


def measurement(*items: tuple[dict, dict]) -> dict:
    return {"id": "m1", "type": "dns", "status": "finished", "results": [{"probe": p, "result": r} for p, r in items]}


def test_finished_answers_are_classified_like_a_resolvers():
    got = answers_from(measurement((probe(), finished(NEW)), (probe("DE", "Berlin", 3320, "Deutsche Telekom AG"), finished(OLD)),
                                   (probe("BR", "Sao Paulo", 28573, "Claro"), finished("192.0.2.1"))), WWW)
    assert [a.state for a in got] == ["new", "old", "other"]
    first = got[0]
    assert first.values == (NEW,) and first.ttl == 120 and first.elapsed == pytest.approx(0.0235)
    assert first.resolver.group == PROBE
    assert first.resolver.name == "globalping JP Tokyo AS2516"
    assert first.resolver.operator == "KDDI Corporation" and first.resolver.country == "JP"
    assert first.resolver.address == "192.0.2.53"  # the resolver that answered, from the result
    assert first.as_dict()["group"] == "probe"


def test_a_cname_chain_is_followed_to_the_asked_type():
    chain = ({"name": "www.acme.example.com.", "type": "CNAME", "ttl": 60, "class": "IN", "value": "edge.acme.example.com."},)
    got = answers_from(measurement((probe(), finished(NEW, name="edge.acme.example.com.", extra=chain))), WWW)
    assert got[0].state == "new"


def test_several_records_of_one_set_are_one_answer_whatever_their_order():
    target = Target(("www.acme.example.com.", "A"), (NEW, "203.0.113.11"), (OLD,), 300)
    assert answers_from(measurement((probe(), finished("203.0.113.11", NEW))), target)[0].state == "new"


def test_negative_and_failing_rcodes_become_error_classes():
    got = answers_from(measurement((probe(), finished(rcode=3)), (probe(), finished(rcode=0)), (probe(), finished(rcode=2)),
                                   (probe(), finished(rcode=5))), WWW)
    assert [a.state for a in got] == ["nxdomain", "nodata", "servfail", "refused"]


def test_an_empty_answer_is_new_for_a_deleted_record():
    gone = Target(("old.acme.example.com.", "A"), (), (OLD,), 300)
    assert answers_from(measurement((probe(), finished(rcode=3))), gone)[0].state == "new"


def test_failed_offline_and_unfinished_probes_are_errors_with_a_reason():
    timed_out = {"status": "failed", "failureSource": "resolver", "rawOutput": ";; connection timed out; no servers could be reached"}
    broken = {"status": "failed", "rawOutput": "something else"}
    got = answers_from(measurement((probe(), timed_out), (probe(), broken), (probe(), {"status": "offline", "rawOutput": ""}),
                                   (probe(), {"status": "in-progress", "rawOutput": ""}), (probe(), {"status": "weird"})), WWW)
    assert [a.state for a in got] == ["timeout", "error", "error", "timeout", "malformed"]
    assert "resolver" in got[0].detail and "timed out" in got[0].detail
    assert got[2].detail == "probe offline"
    assert not any(a.answered for a in got)


def test_unreadable_values_are_malformed_not_a_crash():
    got = answers_from(measurement((probe(), finished("not-an-address")), (probe(), {"status": "finished", "answers": [{}]}),
                                   (probe(), "nonsense")), WWW)  # type: ignore[arg-type]
    assert [a.state for a in got] == ["malformed", "malformed", "malformed"]


def test_probes_sharing_a_vantage_get_distinct_labels():
    got = answers_from(measurement((probe(), finished(NEW)), (probe(), finished(NEW)), (probe(), finished(OLD))), WWW)
    assert [a.resolver.label for a in got] == ["globalping JP Tokyo AS2516", "globalping JP Tokyo AS2516 #2",
                                               "globalping JP Tokyo AS2516 #3"]


def test_the_request_for_one_record():
    settings = GlobalpingSettings(locations=({"country": "JP", "limit": 10}, {"magic": "Europe", "limit": 10}))
    body = measurement_request(settings, WWW)
    assert body == {"type": "dns", "target": "www.acme.example.com",
                    "locations": [{"country": "JP", "limit": 10}, {"magic": "Europe", "limit": 10}],
                    "measurementOptions": {"query": {"type": "A"}, "protocol": "UDP", "port": 53}}
    own = measurement_request(GlobalpingSettings(resolver="8.8.8.8", limit=5), WWW)
    assert own["measurementOptions"]["resolver"] == "8.8.8.8" and own["limit"] == 5 and "locations" not in own


def test_requests_the_api_would_refuse_are_refused_here():
    with pytest.raises(ValueError, match="cannot query CAA"):
        measurement_request(GlobalpingSettings(), Target(("acme.example.com.", "CAA"), (), (), 300))
    with pytest.raises(ValueError, match="unknown key"):
        measurement_request(GlobalpingSettings(locations=({"contry": "JP"},)), WWW)
    with pytest.raises(ValueError, match="1..200"):
        measurement_request(GlobalpingSettings(locations=({"country": "JP", "limit": 201},)), WWW)


def test_probes_requested_counts_as_the_api_does():
    assert probes_requested([{"country": "JP", "limit": 10}, {"magic": "Europe"}]) == 11
    assert probes_requested([{"country": "JP"}], limit=7) == 7
    assert probes_requested([]) == 1


def test_measurements_per_hour():
    assert measurements_per_hour(600, 2) == 12
    assert measurements_per_hour(7 * 60, 1) == 9  # 8.57 starts fit in an hour: 9 can begin in one


def test_cost_within_the_anonymous_limit_is_fine():
    assert cost_problem(600, 20, 2, token=False) is None  # 12 x 20 = 240 <= 250
    assert cost_problem(600, 40, 2, token=True) is None  # 480 <= 500


def test_cost_over_the_limit_says_what_it_costs_and_what_fits():
    problem = cost_problem(600, 20, 3, token=False)
    assert problem is not None
    assert "18 measurements and 360 tests an hour" in problem
    assert f"{ANONYMOUS_TESTS_PER_HOUR} free tests/hour allowed anonymously" in problem
    assert "at most 13 probes" in problem and "every: 900s or longer" in problem and "a token" in problem


def test_too_many_probes_for_one_measurement():
    assert "exceed the 50 allowed anonymously" in (cost_problem(3600, 60, 1, token=False) or "")
    assert cost_problem(3600, 60, 1, token=True) is None
    assert "exceed the 500" in (cost_problem(3600, 501, 1, token=True) or "")


def test_settings_problem_uses_the_token_and_the_locations():
    locs = ({"country": "JP", "limit": 10}, {"magic": "Europe", "limit": 10})
    assert settings_problem(GlobalpingSettings(locations=locs, every=60), 1) is not None  # 60 x 20 = 1200
    assert settings_problem(GlobalpingSettings(locations=locs, every=600), 2) is None  # 12 x 20 = 240
    assert settings_problem(GlobalpingSettings(locations=locs, every=600, token="t"), 4) is None  # 480


def test_rate_limit_headers():
    rate = RateLimit.from_headers({"X-RateLimit-Limit": "250", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800"})
    assert rate == RateLimit(250, None, 0, 1800.0)
    assert RateLimit.from_headers({}) == RateLimit()
