"""The Globalping client against a local Globalping-compatible API whose probes ask real
Unbound resolvers in front of a real BIND: the answers follow real caches."""

from __future__ import annotations

import pytest

from cutover.observe.probes.globalping import MIN_POLL_INTERVAL, GlobalpingClient, GlobalpingLimited, GlobalpingSettings, answers_from
from providers.httpclient import ApiError, RetryPolicy
from tests.integration.probes_world import NEW, OLD, WWW, record_pauses, two_caches
from tests.integration.servers import free_port
from tests.integration.servers.bind import bind_server  # noqa: F401 (fixture)
from tests.integration.servers.globalping_fake import FakeGlobalping, FakeProbe, globalping_api  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

EVERYWHERE = ({"magic": "world", "limit": 10},)


def world(bind_server, unbound_server, api: FakeGlobalping):
    """The two caches (``probes_world.two_caches``), a probe's each: Tokyo's kept the old
    answer, Berlin's sees the new one."""
    bind, tokyo, berlin = two_caches(bind_server, unbound_server)
    api.add_probe(FakeProbe("JP", "Tokyo", 2516, "KDDI Corporation", ("127.0.0.1", tokyo.port), continent="AS"))
    api.add_probe(FakeProbe("DE", "Berlin", 3320, "Deutsche Telekom AG", ("127.0.0.1", berlin.port)))
    return bind


def client(api: FakeGlobalping, **settings) -> tuple[GlobalpingClient, list[float]]:
    """A client whose pauses are real but recorded."""
    c = GlobalpingClient(GlobalpingSettings(url=api.url, **{"locations": EVERYWHERE, **settings}), RetryPolicy(max_wait=5))
    return c, record_pauses(c)


def test_probe_answers_follow_their_resolvers_caches(bind_server, unbound_server, globalping_api):
    world(bind_server, unbound_server, globalping_api)
    c, pauses = client(globalping_api)
    answers = c.measure(WWW, timeout=20)
    by_city = {a.resolver.name: a for a in answers}
    assert set(by_city) == {"globalping JP Tokyo AS2516", "globalping DE Berlin AS3320"}
    tokyo, berlin = by_city["globalping JP Tokyo AS2516"], by_city["globalping DE Berlin AS3320"]
    assert (tokyo.state, tokyo.values) == ("old", (OLD,)) and tokyo.ttl is not None and tokyo.ttl <= 300
    assert (berlin.state, berlin.values) == ("new", (NEW,))
    assert tokyo.resolver.group == "probe" and tokyo.resolver.operator == "KDDI Corporation" and tokyo.resolver.country == "JP"
    body = globalping_api.bodies[0]
    assert body["measurementOptions"] == {"query": {"type": "A"}, "protocol": "UDP", "port": 53}
    assert "Authorization" not in c._session.headers and c.rate.limit == 250 and c.rate.remaining == 248
    # it saw in-progress first and waited at least the 500 ms the API asks between reads
    reads = globalping_api.read_times(next(iter(globalping_api.measurements)))
    assert len(reads) == 2 and reads[1] - reads[0] >= MIN_POLL_INTERVAL - 0.01
    assert len(pauses) == 1 and MIN_POLL_INTERVAL - 0.1 < pauses[0] <= MIN_POLL_INTERVAL


def test_partial_results_are_read_while_in_progress_and_stuck_probes_time_out(bind_server, unbound_server, globalping_api):
    world(bind_server, unbound_server, globalping_api)
    globalping_api.probes[0].quick = True
    globalping_api.add_probe(FakeProbe("US", "Ashburn", 14618, "Amazon.com, Inc.", ("127.0.0.1", 9), state="stuck"))
    globalping_api.in_progress_polls = 100
    c, _ = client(globalping_api)
    measurement_id = c.create(WWW)
    state = c.poll(measurement_id)
    assert state is not None and state["status"] == "in-progress"
    assert c.ready_at(measurement_id) > c.clock()  # the next read is held back 500 ms
    assert [r["result"]["status"] for r in state["results"]] == ["finished", "in-progress", "in-progress"]
    final = c.wait(measurement_id, timeout=1.2)  # gives up while still in progress: the last state counts
    assert [a.state for a in answers_from(final, WWW)] == ["old", "timeout", "timeout"]


def test_a_probe_whose_resolver_does_not_answer_and_an_offline_probe(bind_server, unbound_server, globalping_api):
    world(bind_server, unbound_server, globalping_api)
    globalping_api.add_probe(FakeProbe("BR", "Sao Paulo", 28573, "Claro NXT", ("127.0.0.1", free_port())))  # nothing listens
    globalping_api.add_probe(FakeProbe("AU", "Sydney", 1221, "Telstra", ("127.0.0.1", 9), state="offline"))
    c, _ = client(globalping_api)
    states = {a.resolver.name: (a.state, a.detail) for a in c.measure(WWW, timeout=20)}
    assert states["globalping BR Sao Paulo AS28573"][0] == "timeout"
    assert "failed (resolver)" in states["globalping BR Sao Paulo AS28573"][1]
    assert states["globalping AU Sydney AS1221"] == ("error", "probe offline")
    assert states["globalping JP Tokyo AS2516"][0] == "old" and states["globalping DE Berlin AS3320"][0] == "new"


def test_a_resolver_given_in_the_plan_is_asked_by_every_probe(bind_server, unbound_server, globalping_api):
    world(bind_server, unbound_server, globalping_api)
    tokyo_port = globalping_api.probes[0].resolver[1]
    c, _ = client(globalping_api, resolver="127.0.0.1", port=tokyo_port)
    assert [a.state for a in c.measure(WWW, timeout=20)] == ["old", "old"]


def test_429_with_retry_after_is_waited_out_on_create_and_on_poll(bind_server, unbound_server, globalping_api):
    world(bind_server, unbound_server, globalping_api)
    c, pauses = client(globalping_api)
    globalping_api.rate_limit_next(1, retry_after=1, method="POST")
    measurement_id = c.create(WWW)
    assert pauses == [1.0]
    globalping_api.rate_limit_next(1, retry_after=2, method="GET")
    answers = answers_from_wait(c, measurement_id)
    assert [a.state for a in answers] == ["old", "new"]
    assert 1.9 < max(pauses[1:]) <= 2.0  # the Retry-After of the rate-limited read, not the usual 500 ms
    reads = globalping_api.read_times(measurement_id)
    assert all(b - a >= MIN_POLL_INTERVAL - 0.01 for a, b in zip(reads, reads[1:]))


def answers_from_wait(c: GlobalpingClient, measurement_id: str):
    return answers_from(c.wait(measurement_id, timeout=20), WWW)


def test_an_exhausted_hourly_budget_is_not_slept_and_holds_further_measurements(bind_server, unbound_server):
    api = FakeGlobalping(hourly_anonymous=3).start()
    try:
        world(bind_server, unbound_server, api)
        c, pauses = client(api, locations=({"magic": "world", "limit": 3},))
        c.measure(WWW, timeout=20)  # 2 of 3 tests used: 3 asked for, 2 probes there
        with pytest.raises(GlobalpingLimited) as exc:
            c.create(WWW)
        assert exc.value.wait == 3600 and len(pauses) == 1  # the one 500 ms pause between reads
        assert "rate_limit" not in str(exc.value) and "exceeds the remaining hourly rate limit" in str(exc.value)
        assert "(1 of 3 tests left this hour)" in str(exc.value)
        posts = len(api.bodies)
        with pytest.raises(GlobalpingLimited, match="next measurement allowed in"):
            c.create(WWW)
        assert len(api.bodies) == posts  # not even asked
    finally:
        api.stop()


def test_bad_requests_and_tokens_are_reported_with_the_apis_words(globalping_api):
    globalping_api.add_probe(FakeProbe("JP", "Tokyo", 2516, "KDDI", ("127.0.0.1", 9)))
    c, _ = client(globalping_api, locations=({"country": "JP"},), limit=60)
    with pytest.raises(ApiError, match=r"HTTP 400: Parameter validation failed. \(limit: .*less than or equal to 50"):
        c.create(WWW)
    c, _ = client(globalping_api, locations=({"country": "FR"},))
    with pytest.raises(ApiError, match="HTTP 422: No matching IPv4 probes available"):
        c.create(WWW)
    c, _ = client(globalping_api, token="wrong-token-value")
    with pytest.raises(ApiError) as exc:
        c.create(WWW)
    assert exc.value.status == 401 and "wrong-token-value" not in str(exc.value)
    c, _ = client(globalping_api, token=globalping_api.token, limit=60, locations=({"country": "JP"},))
    assert c.create(WWW)  # a token allows more than 50 probes
