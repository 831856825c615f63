"""The RIPE Atlas client against a local Atlas-compatible API whose probes ask real Unbound
resolvers in front of a real BIND: the answers (abuf) follow real caches."""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from cutover.observe.probes.atlas import AtlasClient, AtlasLimited, AtlasSettings, ProbeSpec, settings_from
from providers.httpclient import ApiError, RetryPolicy
from tests.integration.probes_world import NEW, OLD, WWW, record_pauses, two_caches
from tests.integration.servers import free_port
from tests.integration.servers.atlas_fake import FakeAtlas, FakeProbe, atlas_api  # noqa: F401 (fixture)
from tests.integration.servers.bind import bind_server  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

POLL = 0.2  # the tests' poll interval (the real API's is MIN_POLL_INTERVAL)
TOKYO, BERLIN = "ripe-atlas JP AS2516 #1001", "ripe-atlas DE AS3320 #1002"


def world(bind_server, unbound_server, api: FakeAtlas):
    """The two caches (``probes_world.two_caches``), a probe's each: Tokyo's kept the old
    answer, Berlin's sees the new one."""
    _, tokyo, berlin = two_caches(bind_server, unbound_server)
    api.add_probe(FakeProbe(1001, "JP", 2516, "106.128.0.0/12", [("127.0.0.1", tokyo.port)]))
    api.add_probe(FakeProbe(1002, "DE", 3320, "91.0.0.0/10", [("127.0.0.1", berlin.port)]))
    return tokyo, berlin


def client(api: FakeAtlas, **entry) -> tuple[AtlasClient, list[float]]:
    """A client for a plan entry pointed at the fake, whose pauses are real but recorded."""
    settings = settings_from({"service": "ripe-atlas", "key": api.key, "url": api.url,
                              "probes": [{"type": "area", "value": "WW", "requested": 10}], **entry})
    c = AtlasClient(settings, RetryPolicy(max_wait=5), poll_interval=POLL)
    return c, record_pauses(c)


@pytest.fixture
def silent_resolver() -> Iterator[int]:
    """A UDP port that takes queries and never answers: a resolver that times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_probe_answers_follow_their_resolvers_caches(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    c, pauses = client(atlas_api)
    answers = c.measure(WWW, timeout=20)
    by_probe = {a.resolver.name: a for a in answers}
    assert set(by_probe) == {TOKYO, BERLIN}
    tokyo, berlin = by_probe[TOKYO], by_probe[BERLIN]
    assert (tokyo.state, tokyo.values) == ("old", (OLD,)) and tokyo.ttl is not None and tokyo.ttl <= 300
    assert (berlin.state, berlin.values) == ("new", (NEW,))
    assert tokyo.resolver.group == "probe" and tokyo.resolver.address == "127.0.0.1" and tokyo.elapsed is not None
    assert tokyo.vantage is not None and (tokyo.vantage.country, tokyo.vantage.asn, tokyo.vantage.network,
                                          tokyo.vantage.probe) == ("JP", 2516, "106.128.0.0/12", "1001")
    definition = atlas_api.bodies[0]["definitions"][0]
    assert (definition["query_type"], definition["query_argument"], definition["use_probe_resolver"]) == (
        "A", "www.acme.example.com", True)
    assert atlas_api.bodies[0]["probes"] == [{"type": "area", "value": "WW", "requested": 10}]
    # the key went in the header of every request and in no URL
    assert set(atlas_api.auth) == {f"Key {atlas_api.key}"} and not any(atlas_api.key in p for _, p, _ in atlas_api.log)
    # it saw Ongoing first, then Stopped, reading no faster than its poll interval
    measurement_id = next(iter(atlas_api.measurements))
    reads = atlas_api.reads(measurement_id)
    assert len(reads) == 2 and reads[1] - reads[0] >= POLL - 0.01
    assert len(pauses) == 2 and all(0 < p <= POLL for p in pauses)  # after creating, and between reads
    assert len([p for m, p, _ in atlas_api.log if p.startswith("/api/v2/probes/")]) == 1  # probes described once


def test_partial_results_while_ongoing_and_probes_that_never_report(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    atlas_api.probes[0].quick = True
    atlas_api.add_probe(FakeProbe(1003, "US", 14618, "3.0.0.0/9", [("127.0.0.1", 9)], state="offline"))
    atlas_api.in_progress_polls = 2
    c, _ = client(atlas_api)
    measurement_id = c.create(WWW)
    first = c.progress(measurement_id, WWW)
    assert first is not None and not first.final
    assert [(a.resolver.name, a.state) for a in first.answers] == [
        (TOKYO, "old"), (BERLIN, "timeout"), ("ripe-atlas US AS14618 #1003", "timeout")]  # not reported yet
    assert c.ready_at(measurement_id) > c.clock()  # the next read is held back
    final = c.wait(measurement_id, WWW, timeout=20)
    assert final.final
    assert [(a.resolver.name, a.state, a.detail) for a in final.answers] == [
        (TOKYO, "old", ""), (BERLIN, "new", ""), ("ripe-atlas US AS14618 #1003", "error", "probe offline: no result")]


def test_results_lagging_the_stopped_status_are_waited_for(bind_server, unbound_server):
    api = FakeAtlas(results_lag_reads=1).start()
    try:
        world(bind_server, unbound_server, api)
        c, _ = client(api)
        measurement_id = c.create(WWW)
        states = []
        while True:
            state = c.progress(measurement_id, WWW)
            assert state is not None
            states.append((state.final, [a.state for a in state.answers]))
            if state.final:
                break
        assert states == [(False, ["timeout", "timeout"]), (False, ["timeout", "timeout"]), (True, ["old", "new"])]
    finally:
        api.stop()


def test_resolvers_that_time_out_or_refuse_and_a_garbled_answer(bind_server, unbound_server, atlas_api, silent_resolver):
    tokyo, _ = world(bind_server, unbound_server, atlas_api)
    atlas_api.dns_timeout = 0.5
    atlas_api.add_probe(FakeProbe(1004, "BR", 28573, "177.0.0.0/8", [("127.0.0.1", silent_resolver), ("127.0.0.1", free_port()),
                                                                     ("127.0.0.1", tokyo.port)]))
    atlas_api.add_probe(FakeProbe(1005, "AU", 1221, "1.128.0.0/11", [("127.0.0.1", tokyo.port)], state="garbled"))
    c, _ = client(atlas_api)
    got = {a.resolver.name: (a.state, a.detail) for a in c.measure(WWW, timeout=20)}
    assert got["ripe-atlas BR AS28573 #1004"] == ("timeout", "no answer from the resolver in 500 ms")
    state, detail = got["ripe-atlas BR AS28573 #1004 resolver 2"]
    assert state == "error" and detail.startswith("probe error (socket: connect failed")
    assert got["ripe-atlas BR AS28573 #1004 resolver 3"] == ("old", "")  # the same probe's third resolver answered
    assert got["ripe-atlas AU AS1221 #1005"][0] == "malformed" and "unreadable abuf" in got["ripe-atlas AU AS1221 #1005"][1]
    assert got[TOKYO][0] == "old" and got[BERLIN][0] == "new"


def test_a_resolver_given_in_the_plan_is_asked_by_every_probe(bind_server, unbound_server, atlas_api):
    tokyo, _ = world(bind_server, unbound_server, atlas_api)
    atlas_api.target_port = tokyo.port
    c, _ = client(atlas_api, resolver="127.0.0.1")
    answers = c.measure(WWW, timeout=20)
    assert [(a.state, a.resolver.address) for a in answers] == [("old", "127.0.0.1"), ("old", "127.0.0.1")]
    definition = atlas_api.bodies[0]["definitions"][0]
    assert (definition["use_probe_resolver"], definition["target"]) == (False, "127.0.0.1")


def test_429_with_retry_after_is_waited_out_on_create_and_on_reads(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    c, pauses = client(atlas_api)
    atlas_api.rate_limit_next(1, retry_after=1, method="POST")
    measurement_id = c.create(WWW)
    assert pauses == [1.0]
    atlas_api.rate_limit_next(1, retry_after=2, path="/results/")
    final = c.wait(measurement_id, WWW, timeout=20)
    assert [a.state for a in final.answers] == ["old", "new"]
    assert any(1.9 < p <= 2.0 for p in pauses[1:])  # the Retry-After of the limited read, not the poll interval
    reads = atlas_api.reads(measurement_id, "results/")
    assert all(b - a >= POLL - 0.01 for a, b in zip(reads, reads[1:]))
    atlas_api.rate_limit_next(1, retry_after=3600, method="POST")
    with pytest.raises(AtlasLimited) as exc:
        c.create(WWW)
    assert exc.value.wait == 3600 and "Request was throttled." in str(exc.value)
    posts = len(atlas_api.bodies)
    with pytest.raises(AtlasLimited, match="next measurement allowed in"):
        c.create(WWW)
    assert len(atlas_api.bodies) == posts  # not even asked


def test_a_failing_service_is_reported_and_the_next_read_carries_on(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    c, _ = client(atlas_api)
    measurement_id = c.create(WWW)
    atlas_api.fail_next(1, 503, "<h1>Service Unavailable</h1>", path="/results/")
    with pytest.raises(ApiError, match="HTTP 503: <h1>Service Unavailable</h1>") as exc:
        c.progress(measurement_id, WWW)
    assert exc.value.status == 503
    atlas_api.fail_next(1, 200, "<html>maintenance</html>", path=f"/measurements/{measurement_id}/?")
    with pytest.raises(ApiError, match="the answer is not JSON"):
        c.progress(measurement_id, WWW)
    assert [a.state for a in c.wait(measurement_id, WWW, timeout=20).answers] == ["old", "new"]


def test_failing_probe_metadata_leaves_probe_ids_until_the_next_measurement(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    c, _ = client(atlas_api)
    atlas_api.fail_next(1, 500, path="/api/v2/probes/")
    answers = c.measure(WWW, timeout=20)
    assert [(a.resolver.name, a.state) for a in answers] == [("ripe-atlas #1001", "old"), ("ripe-atlas #1002", "new")]
    assert c.probe_lookup_error is not None and "HTTP 500" in c.probe_lookup_error
    assert [a.resolver.name for a in c.measure(WWW, timeout=20)] == [TOKYO, BERLIN]
    assert c.probe_lookup_error is None


def test_refusals_are_reported_with_the_apis_words_and_never_the_key(bind_server, unbound_server, atlas_api):
    world(bind_server, unbound_server, atlas_api)
    wrong, _ = client(atlas_api, key="wrong-key-value-1234")
    with pytest.raises(ApiError) as exc:
        wrong.create(WWW)
    assert exc.value.status == 403 and "wrong-key-value-1234" not in str(exc.value)
    assert "The provided API key does not exist" in str(exc.value)
    too_many = AtlasClient(AtlasSettings(probes=(ProbeSpec("area", "WW", 600), ProbeSpec("country", "DE", 600)),
                                         key=atlas_api.key, url=atlas_api.url), poll_interval=POLL)
    with pytest.raises(ApiError, match=r"HTTP 400: There was a problem with your request \(/probes: You may not request more"):
        too_many.create(WWW)
    nowhere, _ = client(atlas_api, probes=[{"type": "country", "value": "FR", "requested": 5}])
    measurement_id = nowhere.create(WWW)
    with pytest.raises(ApiError, match=r"ended \(No suitable probes\) without any result"):
        nowhere.wait(measurement_id, WWW, timeout=20)
    assert atlas_api.key not in " ".join(str(b) for b in atlas_api.bodies)
