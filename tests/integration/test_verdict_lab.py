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

import json
import re
import time

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
from tests.integration.servers.hidden import hidden_cache  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)

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
