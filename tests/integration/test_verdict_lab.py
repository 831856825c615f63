"""The retire verdict measured against a cache the watch does not observe (issue 13).

Each case builds a small world of real servers (``lab.py``), makes one kind of change,
runs ``cutover watch`` until it says retire, and checks the first retire round against
the hidden cache: never before the hidden cache switched to the new data, and within one
interval (plus slack) of the true bound for that kind of change. TTLs are seconds, so a
case takes 5-20 s. The ``test_lab_*`` tests check the lab itself, and each case checks
its own premise (the secondary lagged, the cache held the old data, Unbound followed the
delegation), so that a failing case is the verdict's fault, not the lab's.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import dns.message
import dns.rdatatype
import pytest

from cutover.observe.probes import atlas, schedule
from tests.integration import lab
from tests.integration.lab import NEW, NEW_MX, NS_NEW, NS_OLD, OLD, OLD_MX, ZONE, Operator
from tests.integration.servers.bind import (  # noqa: F401 (fixture)
    BindZone,
    bind_server,
    notify,
    serial,
    start_primary_and_secondary,
    wait_for_serial,
)
from tests.integration.servers.atlas_fake import FakeAtlas, FakeProbe as AtlasProbe
from tests.integration.servers.hidden import hidden_cache  # noqa: F401 (fixture)
from tests.integration.servers.unbound import UnboundServer, unbound_server  # noqa: F401 (fixture)

WWW = f"www.{ZONE}"


def www_a(ttl: int) -> dict:
    return {"name": "www", "type": "A", "ttl": ttl, "from": [OLD], "to": [NEW]}


def operator(tmp_path, world: lab.World, records: list[dict], **sections) -> Operator:
    return Operator(tmp_path, lab.rfc2136_plan(world, records, **sections), world.primary.key_secret, world.lookup)


# --------------------------------------------------------------------------- the lab itself


def test_lab_secondary_lags_until_notified(bind_server):
    primary, secondary = start_primary_and_secondary(bind_server, BindZone(ZONE, records=(f"www 2 IN A {OLD}",)))
    before = serial(primary)
    lab.dynamic_update(primary, ZONE, "www", "A", 2, NEW)
    assert serial(primary) > before and primary.values(WWW, "A") == {NEW}
    time.sleep(1.5)
    assert serial(secondary) == before and secondary.values(WWW, "A") == {OLD}  # no NOTIFY, no refresh: it lags
    sent = time.time()
    notify(secondary)
    caught = wait_for_serial(secondary, serial(primary), timeout=3)
    assert caught - sent < 2 and secondary.values(WWW, "A") == {NEW}


def test_lab_unbound_follows_the_delegation_to_port_53(tmp_path, bind_server, unbound_server, hidden_cache):
    world = lab.delegation_world(bind_server, unbound_server, hidden_cache)
    old_host, new_host = world.extra["old_host"], world.extra["new_host"]
    assert old_host.port == new_host.port == 53 and old_host.address != new_host.address
    assert lab.ask(world.lookup.endpoint, lab.CHILD, "MX") == {OLD_MX}  # via the parent's referral to ns-old:53
    lab.dynamic_update(world.extra["parent"], lab.PARENT, "shop", "NS", 3, NS_NEW)
    time.sleep(world.extra["ttls"].parent_ns + 1.2)  # nobody asked this resolver for the NS set
    assert lab.ask(world.lookup.endpoint, lab.CHILD, "MX") == {NEW_MX}
    assert lab.ask(world.lookup.endpoint, "www.google.com.", "A") == set()  # closed: refused, never sent out
    # cutover's process resolves host names through the lab resolver, never /etc/resolv.conf
    op = Operator(tmp_path, {}, lookup=world.lookup)
    found = op.python("print(socket.getaddrinfo('ns-new.example.net', 53)[0][4][0])\n"
                      "try:\n    socket.getaddrinfo('www.google.com', 53)\nexcept socket.gaierror:\n    print('refused')")
    assert found.stdout.split() == [new_host.address, "refused"], found.stderr


# --------------------------------------------------------------------------- a. plain change


def test_a_plain_change_on_one_primary(tmp_path, bind_server, unbound_server, hidden_cache):
    """True bound: the change + the old TTL (+ the second a cache serves TTL 0)."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www 2 IN A {OLD}",))
    op = operator(tmp_path, world, [www_a(2)])
    started = lab.prime_hidden(world, WWW, "A", {OLD})
    op("apply", "--yes")
    applied = time.time()
    run = op.watch_until_retire(30)
    switched = world.hidden.stop_when_switched({NEW})
    lab.assert_verdict_window(run, switched, applied + 2 + lab.EXPIRY, since=started, hidden=world.hidden)


# --------------------------------------------------------------------------- b. lagging secondary


def test_b_lagging_secondary_holds_the_verdict_until_it_catches_up(tmp_path, bind_server, unbound_server, hidden_cache):
    """The watch's resolver and the hidden cache both ask the secondary, which lags ~4 s
    after apply. True bound: the secondary catches up + the old TTL."""
    world = lab.secondary_world(bind_server, unbound_server, hidden_cache, (f"www 2 IN A {OLD}",))
    primary, secondary = world.primary, world.extra["secondary"]
    old_serial = serial(secondary)
    op = operator(tmp_path, world, [www_a(2)], verify={"timeout": "2s"})
    started = lab.prime_hidden(world, WWW, "A", {OLD})
    unverified = op("apply", "--yes", expect=3)  # the secondary still serves the old data
    assert str(secondary.port) in unverified.stdout + unverified.stderr
    applied = time.time()
    with op.watch(40) as watch:
        time.sleep(max(0.0, applied + 4 - time.time()))
        assert serial(secondary) == old_serial and secondary.values(WWW, "A") == {OLD}, "the lab's secondary did not lag"
        notified = time.time()
        notify(secondary)
        caught = wait_for_serial(secondary, serial(primary), timeout=3)
        run = watch.wait()
    switched = world.hidden.stop_when_switched({NEW})
    assert (world.hidden.last_seen({OLD}) or 0) >= notified - 0.5, "the hidden cache did not get the old data while it lagged"
    lab.assert_verdict_window(run, switched, caught + 2 + lab.EXPIRY, since=started, hidden=world.hidden)
    lagging = [doc for doc, arrived in zip(run.rounds, run.arrivals) if arrived < notified]
    assert lagging, f"no round while the secondary lagged\n{run.describe(started)}"
    for doc in lagging:
        assert "authoritative" in doc["verdict"]["missing"], json.dumps(doc["verdict"], indent=1)
        assert doc["authoritative"]["all_new"] is False, doc["authoritative"]
        named = [s for s in doc["authoritative"]["servers"] if lab.names_server(s, secondary)]
        assert named and all(s["serial"] == old_serial and s["state"] != "new" for s in named), doc["authoritative"]


# --------------------------------------------------------------------------- c. delegation change at the registrar


def test_c_delegation_change_at_the_registrar(tmp_path, bind_server, unbound_server, hidden_cache):
    """The worst case for a cache that holds the old delegation: someone asks it for the
    NS set just before the parent's NS TTL runs out, so it learns ``NS ns-old`` again from
    the old host, with that host's TTL, and keeps fetching the old MX from the old host.
    True bound: the change + parent NS TTL + old host's NS TTL + MX TTL."""
    ttls = lab.DelegationTTLs()
    world = lab.delegation_world(bind_server, unbound_server, hidden_cache, ttls)
    assert lab.ask(world.lookup.endpoint, lab.CHILD, "MX") == {OLD_MX}, "the lab's Unbound did not follow the referral"
    op = Operator(tmp_path, lab.manual_plan(world, [
        {"name": "@", "type": "NS", "ttl": ttls.parent_ns, "from": [NS_OLD], "to": [NS_NEW]},  # as the parent has it
        {"name": "@", "type": "MX", "ttl": ttls.mx, "from": [OLD_MX], "to": [NEW_MX]},
    ]), lookup=world.lookup)
    started = lab.prime_hidden(world, lab.CHILD, "MX", {OLD_MX})
    relearn = world.hidden.ask_at(started + ttls.parent_ns - 0.5, lab.CHILD, "NS")
    person, done = lab.person_later(world.extra["parent"], lab.PARENT, "shop", "NS", ttls.parent_ns, NS_NEW, delay=0.8)
    op("apply", "--yes")
    person.join()
    relearn.join()
    changed = done[0]
    run = op.watch_until_retire(60)
    switched = world.hidden.stop_when_switched({NEW_MX}, timeout=30)
    ns_seen = [o for o in world.hidden.observations if o.question == (lab.CHILD, "NS")]
    assert ns_seen[0].wall > changed and ns_seen[0].values == {NS_OLD}, \
        f"the lab's cache did not re-learn the old delegation after the change:\n{world.hidden.timeline(started)}"
    assert (world.hidden.last_seen({OLD_MX}) or 0) > ns_seen[0].wall + ttls.host_ns - 1, \
        f"the old delegation did not live in the hidden cache:\n{world.hidden.timeline(started)}"
    bound = changed + ttls.parent_ns + ttls.host_ns + ttls.mx + 3 * lab.EXPIRY  # each cached step may run a second over
    lab.assert_verdict_window(run, switched, bound, since=started, hidden=world.hidden)
    reasons = {c["reason"] for doc in run.rounds for c in doc["verdict"]["conditions"]}
    assert any(re.search(r"old (dns )?host", r, re.IGNORECASE) and "MX" in r for r in reasons), \
        "no reason says the old host still serves the old MX:\n" + "\n".join(sorted(reasons))


# --------------------------------------------------------------------------- d. no quorum


def test_d_nineteen_silent_resolvers_of_twenty_are_no_quorum(tmp_path, bind_server, unbound_server, hidden_cache):
    """1 of 20 resolvers answers (default min_answering 50%): never retire, and say why."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www 2 IN A {OLD}",))
    with lab.silent_resolvers(19) as silent:
        world.resolvers = silent + world.resolvers
        op = operator(tmp_path, world, [www_a(2)])
        started = lab.prime_hidden(world, WWW, "A", {OLD})
        op("apply", "--yes")
        run = op.watch_until_retire(12)  # well past the old TTL and the parallel period; a round takes ~3 s
    switched = world.hidden.stop_when_switched({NEW})
    assert switched is not None and switched - started < 5, "the lab's change did not reach the hidden cache"
    story = run.describe(started)
    assert run.retire_index() is None, f"retire with 1 of 20 resolvers answering:\n{story}"
    assert run.killed and len(run.rounds) >= 3, f"the watch did not keep going:\n{story}"
    last = run.rounds[-1]
    assert "quorum" in last["verdict"]["missing"], story
    reason = lab.condition(last, "quorum")["reason"]
    assert {"20", "1", "19"} <= set(re.findall(r"\d+", reason)), reason


# --------------------------------------------------------------------------- e. outside change that lowered the TTL


def test_e_change_outside_cutover_that_also_lowered_the_ttl(tmp_path, bind_server, unbound_server, hidden_cache):
    """www A 6 s -> 1 s and a new address in one dynamic update, no journal, no earlier
    round: the new record's TTL says nothing about the old one. True bound: change + 6 s
    (= retire.max_old_ttl, the fallback)."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www 6 IN A {OLD}",))
    op = operator(tmp_path, world, [www_a(1)], retire={"max_old_ttl": "6s"})
    started = lab.prime_hidden(world, WWW, "A", {OLD})
    changed = lab.dynamic_update(world.primary, ZONE, "www", "A", 1, NEW)
    run = op.watch_until_retire(30)
    switched = world.hidden.stop_when_switched({NEW})
    assert (world.hidden.last_seen({OLD}) or 0) >= changed + 4, "the hidden cache did not hold the old TTL"
    index = lab.assert_verdict_window(run, switched, changed + 6 + lab.EXPIRY, since=started, hidden=world.hidden)
    www = next(r for r in run.rounds[index]["records"] if r["name"] == WWW and r["type"] == "A")
    assert www["old_ttl"] >= 6 and www.get("old_ttl_source") in lab.OLD_TTL_SOURCES, www


# --------------------------------------------------------------------------- f. AAAA left on the old server


def test_f_aaaa_left_on_the_old_server(tmp_path, bind_server, unbound_server, hidden_cache):
    """The plan moves www A and forgets www AAAA: diff names it, apply refuses without
    --force, the verdict holds back until retire.ignore acknowledges it."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www 2 IN A {OLD}", "www 2 IN AAAA 2001:db8::10"))
    op = operator(tmp_path, world, [www_a(2)])
    diff = op("diff", expect=1)
    shown = diff.stdout + diff.stderr
    assert re.search(r"www\S*\s.*AAAA", shown) and re.search(r"left", shown, re.IGNORECASE), shown
    refused = op("apply", "--yes", expect=2)
    assert re.search(r"left.behind", refused.stderr, re.IGNORECASE) and "--force" in refused.stderr, refused.stderr
    assert world.primary.values(WWW, "A") == {OLD}
    started = lab.prime_hidden(world, WWW, "A", {OLD})
    op("apply", "--yes", "--force")
    applied = time.time()
    once = op.rounds("--once", expect=1)[0]
    assert "left_behind" in once["verdict"]["missing"], once["verdict"]
    assert any(e["name"] in ("www", WWW) and e["type"] == "AAAA" for e in once["left_behind"]), once["left_behind"]
    op.amend(retire={"ignore": ["www AAAA"]})
    resumed = time.time()
    run = op.watch_until_retire(30)
    switched = world.hidden.stop_when_switched({NEW})
    lab.assert_verdict_window(run, switched, max(applied + 2 + lab.EXPIRY, resumed), since=started, hidden=world.hidden)


# --------------------------------------------------------------------------- g. probes: a probe whose own cache held the old answer
#
# A probe network's answer is a measurement made a little while ago: it joins the first
# round after it arrives and stays in every round (its age growing) until a newer one
# replaces it, or until it is EXPIRY_ROUNDS x every + the service's MEASUREMENT_TIMEOUT
# old (``ProbeRunner.snapshot``). Like any resolver's, an old probe answer keeps the
# ``propagation`` condition from holding (threshold 100%).
#
# Globalping refuses ``every`` under 60 s (``globalping.settings_from``), which would make a
# case last over a minute; RIPE Atlas allows ``every: 3s``, so these cases use the local
# RIPE Atlas fake, whose probe asks its own Unbound, primed with the old answer just before
# the change, as the hidden cache is.

G_TTL = 6  # www A; long enough that the probe's first lookup, as the watch starts, finds the old answer
EVERY = 3.0  # watch.probes[0].every
#: A one-off is created, its probe asks at once, the client reads the result one poll
#: interval later, and the next one-off is created when that read ends (``every`` is shorter).
PROBE_CYCLE = max(EVERY, atlas.MIN_POLL_INTERVAL)
#: From the probe's cache serving the new data to a round that has it: the next lookup
#: comes within one cycle, and its result arrives one poll interval after it.
PROBE_SCHEDULE = PROBE_CYCLE + atlas.MIN_POLL_INTERVAL
#: How long a result that no newer one replaced stays in the rounds.
PROBE_EXPIRY = schedule.EXPIRY_ROUNDS * EVERY + atlas.MEASUREMENT_TIMEOUT
KEY_ENV = "LAB_ATLAS_KEY"
DOWN = json.dumps({"error": {"status": 503, "code": 500, "title": "Service Unavailable",
                             "detail": "The service is down for maintenance."}}).encode()


@dataclass(frozen=True)
class Lookup:
    """One lookup a probe made in its own cache: when, for which one-off, what it found."""

    wall: float
    measurement: int
    values: frozenset[str] | None  # None: the cache gave no answer


class ProbeService(FakeAtlas):
    """The RIPE Atlas fake, with probes that ask their own resolver the moment a one-off is
    created, as real probes do within seconds; cutover reads the result a poll interval
    (5 s) later, so an answer is a few seconds old when it arrives, as from the real
    service. Every lookup is kept (``lookups``: what the probe really saw, and when). From
    the ``down_from``-th creation on, every request is answered 503: the service is down."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[Lookup] = []
        self.down_from: int | None = None
        self.down_since: float | None = None
        self.refused = 0
        self._creations = 0

    def _create(self, h, raw):
        with self._lock:
            self._creations += 1
            if self.down_from is not None and self._creations >= self.down_from and self.down_since is None:
                self.down_since = time.time()
        if self._down(h):
            return
        before = set(self.measurements)
        super()._create(h, raw)
        for made in sorted(set(self.measurements) - before):
            m = self.measurements[made]
            for probe in m.probes:
                asked = time.time()
                result = self._result(m, probe)
                with self._lock:
                    m.results.setdefault(probe.id, result)
                    self.lookups.append(Lookup(asked, m.id, _found(result)))

    def _read(self, h, measurement_id, resource, query):
        if not self._down(h):
            super()._read(h, measurement_id, resource, query)

    def _describe(self, h, query):
        if not self._down(h):
            super()._describe(h, query)

    def _down(self, h) -> bool:
        if self.down_since is None:
            return False
        with self._lock:
            self.refused += 1
        self._send(h, 503, DOWN)
        return True

    def timeline(self, since: float) -> str:
        return "\n".join(f"  {seen.wall - since:+7.2f}s one-off {seen.measurement}: "
                         f"{sorted(seen.values) if seen.values is not None else 'no answer'}" for seen in self.lookups)

    def story(self, run: lab.WatchRun, since: float, bound: float | None = None) -> str:
        """For assertion messages: the true bound (if given), the probe's lookups, the rounds."""
        told = f"true bound {bound - since:+.2f}s; " if bound is not None else ""
        return f"{told}probe lookups:\n{self.timeline(since)}\nrounds:\n{run.describe(since)}"


def _found(result: dict) -> frozenset[str] | None:
    """The A values in one probe's result (its first resolver's), None when it got no answer."""
    item = (result.get("resultset") or [result])[0]
    abuf = (item.get("result") or {}).get("abuf")
    if not abuf:
        return None
    response = dns.message.from_wire(base64.b64decode(abuf))
    return frozenset(rd.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset)


@pytest.fixture
def probe_service() -> Iterator[ProbeService]:
    service = ProbeService()
    service.start()
    yield service
    service.stop()


def with_probe(world: lab.World, unbound_server, service: ProbeService) -> UnboundServer:
    """A probe in Tokyo whose own resolver is one more Unbound in front of the zone (neither
    the watch's resolver nor the hidden cache); its cache."""
    cache = lab.closed_unbound(unbound_server, ZONE, world.primary.port)
    service.add_probe(AtlasProbe(6001, "JP", 2516, "1.0.16.0/20", [(cache.address, cache.port)]))
    return cache


def probe_case(tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, service: ProbeService, ttl: int = G_TTL,
               **sections) -> tuple[lab.World, UnboundServer, Operator]:
    """www A (``ttl``) on the old address, a probe with its own cache (``with_probe``), and the
    operator whose watch asks the probe service: (the world, the probe's cache, the operator)."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www {ttl} IN A {OLD}",))
    cache = with_probe(world, unbound_server, service)
    op = operator(tmp_path, world, [www_a(ttl)], watch={"probes": [probe_entry(service, monkeypatch)]}, **sections)
    return world, cache, op


def probe_entry(service: ProbeService, monkeypatch) -> dict:
    """The plan's ``watch.probes`` entry for the service, its key only in the environment."""
    monkeypatch.setenv(KEY_ENV, service.key)
    return {"service": "ripe-atlas", "url": service.url, "key": "${" + KEY_ENV + "}", "every": f"{EVERY:g}s",
            "probes": [{"type": "area", "value": "WW", "requested": 1}]}


def probe_answers(doc: dict) -> list[dict]:
    return [a for rec in doc["records"] if rec["name"] == WWW and rec["type"] == "A" for a in rec["answers"]
            if a["group"] == "probe"]


def resolver_answers(doc: dict) -> list[dict]:
    return [a for rec in doc["records"] if rec["name"] == WWW and rec["type"] == "A" for a in rec["answers"]
            if a["group"] != "probe"]


def problems(run: lab.WatchRun) -> list[str]:
    return [p for doc in run.rounds for entry in doc.get("probes") or () for p in entry["problems"]]


def round_time(doc: dict) -> float:
    return lab.parse_time(doc["time"])[0]


def prime_probe(cache: UnboundServer) -> float:
    """Prime the probe's cache with the old answer, just before the change; when."""
    primed = time.time()
    assert lab.ask(cache.endpoint, WWW, "A") == {OLD}, "the probe's cache was not primed with the old answer"
    return primed


def apply_after_priming(world: lab.World, cache: UnboundServer, op: Operator) -> tuple[float, float]:
    """Prime the probe's cache and the hidden cache with the old answer, then apply the
    change: (when the hidden cache was primed, when the change was applied)."""
    prime_probe(cache)
    started = lab.prime_hidden(world, WWW, "A", {OLD})
    op("apply", "--yes")
    return started, time.time()


def watch_until(op: Operator, seconds: float, enough: Callable[[dict], bool]) -> lab.WatchRun:
    """Watch until a round is ``enough``, the watch exits, or ``seconds`` have passed."""
    with op.watch(seconds + 5) as watch:
        deadline = time.time() + seconds
        while time.time() < deadline and watch.process.poll() is None and not any(enough(d) for d in list(watch.rounds)):
            time.sleep(0.2)
        watch.process.terminate()
        return watch.wait()


def test_g_probes_carried_over_old_answer_holds_the_verdict_until_a_newer_measurement(
        tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service):
    """The watch's resolver sees the new data from its first round; the probe's cache, like
    the hidden cache, was primed with the old answer just before the change, and the probe's
    first measurement says so. That answer stays in every round until a newer measurement
    replaces it, and holds the verdict even once the TTL bound has passed. True bound (both
    caches): the change + the old TTL; the verdict may come one probe schedule after it."""
    world, cache, op = probe_case(tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service)
    started, applied = apply_after_priming(world, cache, op)
    run = op.watch_until_retire(40)
    switched = world.hidden.stop_when_switched({NEW})
    bound = applied + G_TTL + lab.EXPIRY
    story = probe_service.story(run, started, bound)
    print(story)
    lookups = probe_service.lookups
    assert lookups and lookups[0].values == {OLD}, f"the probe's first lookup did not find the old answer\n{story}"
    assert lookups[-1].values == {NEW}, f"the probe never found the new answer\n{story}"
    index = lab.assert_verdict_window(run, switched, bound + PROBE_SCHEDULE, since=started, hidden=world.hidden)
    for doc in run.rounds:
        assert not any(a["state"] == "old" for a in resolver_answers(doc)), \
            f"the watch's resolver did not see the new data from the start\n{story}"
        if any(a["state"] != "new" for a in probe_answers(doc)):  # the latest measurement says old
            assert not doc["verdict"]["retire"] and "propagation" in doc["verdict"]["missing"], \
                f"round {doc['round']} retired on an old probe answer\n{story}"
    held = [doc for doc in run.rounds[:index] if doc["verdict"]["missing"] == ["propagation"]
            and [a["state"] for a in probe_answers(doc)] == ["old"]]
    assert held, f"no round in which the probe's carried-over old answer alone held the verdict\n{story}"
    assert max(probe_answers(doc)[0]["age"] for doc in held) >= lab.INTERVAL, f"the old answer was not carried over\n{story}"
    decisive = probe_answers(run.rounds[index])
    assert [a["state"] for a in decisive] == ["new"], f"retire without the probe's newer answer: {decisive}\n{story}"
    replaced = lab.parse_time(probe_answers(held[-1])[0]["measured"])[0]
    assert lab.parse_time(decisive[0]["measured"])[0] > replaced, story  # a newer measurement replaced the old one


def test_g_probe_service_that_stops_answering_keeps_its_last_old_answer_in_the_rounds(
        tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service):
    """After its first measurement (the old answer) the service answers 503 to everything.
    What is right (``ProbeRunner.snapshot``, ``verdict.decide``): the last result stays in
    every round, its age growing, until it is PROBE_EXPIRY old (186 s here, beyond a lab
    case; ``tests/test_probe_schedule.py`` checks the drop with a clock); until then it holds
    the verdict (a silent service is no evidence that its probe's cache moved on), the
    round after the failure says so, and the TTL bound holds whatever the probes say."""
    probe_service.down_from = 2
    world, cache, op = probe_case(tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service)
    started, applied = apply_after_priming(world, cache, op)
    bound = applied + G_TTL + lab.EXPIRY
    two_schedules = schedule.EXPIRY_ROUNDS * EVERY

    def long_enough(doc: dict) -> bool:  # past the bound, and the old answer older than two schedules
        carried = probe_answers(doc)
        return round_time(doc) > bound + lab.INTERVAL and bool(carried) and carried[0]["age"] > two_schedules + 1

    run = watch_until(op, 35, long_enough)
    switched = world.hidden.stop_when_switched({NEW})
    story = probe_service.story(run, started, bound)
    print(story)
    assert [seen.values for seen in probe_service.lookups] == [{OLD}], f"not one measurement of the old answer\n{story}"
    assert probe_service.down_since is not None and probe_service.refused >= 1, f"the service never went down\n{story}"
    assert run.retire_index() is None, f"retire while the probe's last answer was old\n{story}"
    assert any(long_enough(doc) for doc in run.rounds), f"the watch did not go on long enough\n{story}"
    assert switched is not None and switched < round_time(run.rounds[-1]), f"the hidden cache did not switch\n{story}"
    first = next(i for i, doc in enumerate(run.rounds) if probe_answers(doc))
    measured = probe_answers(run.rounds[first])[0]["measured"]
    for doc in run.rounds[first:]:
        carried = probe_answers(doc)
        assert [(a["state"], a["measured"]) for a in carried] == [("old", measured)], f"round {doc['round']}: {carried}\n{story}"
        assert abs(carried[0]["age"] - (round_time(doc) - lab.parse_time(measured)[0])) < 0.2, carried
        assert carried[0]["age"] < PROBE_EXPIRY and not doc["verdict"]["retire"]
    said = problems(run)
    assert any("starting a measurement" in p and "HTTP 503" in p for p in said), f"no round said the service failed: {said}"
    assert not any("too old" in p for p in said), said
    held = [doc for doc in run.rounds[first:] if round_time(doc) > switched and doc["verdict"]["missing"] == ["propagation"]]
    assert held, f"no round past the bound held by the carried-over answer alone\n{story}"
    assert probe_answers(run.rounds[-1])[0]["age"] > two_schedules, "dropped at two schedules, before the measurement timeout"


def test_g_restarted_watch_keeps_a_carried_over_probe_answer_as_long_as_a_running_watch(
        tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service):
    """``watch --once`` from cron: the first run's round holds the probe's old answer; the
    service then goes down. A second run, when that answer is older than two schedules
    but far younger than PROBE_EXPIRY, judges it as a running watch would: a restored
    result is carried over exactly as long as a running watch keeps one."""
    probe_service.down_from = 2
    _, cache, op = probe_case(tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service)
    prime_probe(cache)
    op("apply", "--yes")
    (first,) = op.rounds("--once", expect=1)
    (answer,) = probe_answers(first)
    assert answer["state"] == "old" and [seen.values for seen in probe_service.lookups] == [{OLD}], first
    arrived = lab.parse_time(answer["measured"])[0]
    time.sleep(max(0.0, arrived + schedule.EXPIRY_ROUNDS * EVERY + 1.5 - time.time()))
    (again,) = op.rounds("--once", expect=None)
    said = [p for entry in again.get("probes") or () for p in entry["problems"]]
    assert any("HTTP 503" in p for p in said), f"the service was not down for the second run: {said}"
    age = round_time(again) - arrived
    assert schedule.EXPIRY_ROUNDS * EVERY < age < PROBE_EXPIRY, age
    carried = probe_answers(again)
    assert carried, (f"the restarted watch dropped the probe's old answer, {age:.1f}s old (a running watch keeps it "
                     f"{PROBE_EXPIRY:g}s), and said only {said}; its verdict: retire={again['verdict']['retire']}")
    assert [(a["state"], a["measured"]) for a in carried] == [("old", answer["measured"])], carried
    assert not again["verdict"]["retire"], again["verdict"]


def test_g_honest_probe_cache_is_not_called_stale_for_an_answer_that_arrived_late(
        tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service):
    """www A TTL 5 s: the probe's first lookup, as the watch starts, finds the old answer
    with its TTL still running; the result is read 5 s later, after the TTL bound. The
    probe's cache did nothing wrong: the answer is old, and not stale (``measured`` is
    when the measurement began, not when its result was read)."""
    ttl = int(atlas.MIN_POLL_INTERVAL)  # the lookup comes after the change, its result a poll interval later: past the bound
    _, cache, op = probe_case(tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service, ttl,
                              retire={"parallel_period": "1m"})  # no retire (and exit) before the probe's answer arrives
    started = prime_probe(cache)
    op("apply", "--yes")
    run = watch_until(op, 25, lambda doc: bool(probe_answers(doc)))
    story = probe_service.story(run, started)
    doc = next((d for d in run.rounds if probe_answers(d)), None)
    assert doc is not None, f"no round with the probe's answer\n{story}"
    (answer,) = probe_answers(doc)
    honest_until = lab.parse_time(doc["authoritative"]["since"])[0] + ttl  # where stale_resolvers starts calling old answers stale
    asked = probe_service.lookups[0]
    assert asked.values == {OLD} and answer["state"] == "old", f"the probe's first lookup did not find the old answer\n{story}"
    assert asked.wall < honest_until - 0.5 and answer["ttl"] > 0, f"the probe asked too late for this case\n{story}"
    assert round_time(doc) > honest_until, f"the answer arrived before the bound\n{story}"
    assert lab.parse_time(answer["measured"])[0] <= asked.wall + 0.5, f"measured is not when the probe asked\n{story}"
    assert not (answer["stale"] or doc["stale"]), (
        f"round {doc['round']} calls the probe stale: its lookup was {honest_until - asked.wall:.1f}s before "
        f"the bound (TTL {answer['ttl']} left), measured {answer['measured']}")


def test_g_watch_started_after_the_bound_hears_its_probes_before_retiring(
        tmp_path, monkeypatch, bind_server, unbound_server, hidden_cache, probe_service):
    """The probe's resolver floors TTLs at an hour (``cache-min-ttl``) and was primed with
    the old answer: it will hand it out for an hour, and the probe measures exactly that.
    The watch starts after the TTL bound; it must not retire on the watch's own resolver
    alone while the probe's first measurement is on its way (the verdict waits for it)."""
    world = lab.plain_world(bind_server, unbound_server, hidden_cache, (f"www 2 IN A {OLD}",))
    cache = unbound_server(ZONE, world.primary.port, cache_min_ttl=3600, closed=True)
    probe_service.add_probe(AtlasProbe(6001, "JP", 2516, "1.0.16.0/20", [(cache.address, cache.port)]))
    op = operator(tmp_path, world, [www_a(2)], watch={"probes": [probe_entry(probe_service, monkeypatch)]})
    started = prime_probe(cache)
    op("apply", "--yes")
    applied = time.time()
    time.sleep(max(0.0, applied + 2 + lab.EXPIRY + 0.5 - time.time()))  # the TTL bound has passed
    run = op.watch_until_retire(12)  # the probe's first result arrives within ~6 s, and says old
    story = probe_service.story(run, started)
    assert lab.ask(cache.endpoint, WWW, "A") == {OLD}, f"the probe's cache did not keep the old answer\n{story}"
    assert all(seen.values == {OLD} for seen in probe_service.lookups), story
    index = run.retire_index()
    assert index is None, f"retire although the probe's cache serves the old answer\n{story}"
    waiting = [d for d in run.rounds if not probe_answers(d)]
    assert waiting and all("waiting for the first probe results" in cond["reason"] for d in waiting
                           for cond in d["verdict"]["conditions"] if cond["name"] == "propagation"), story
