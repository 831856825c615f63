"""What watch looks for, decided from the journal: partial applies, several applies,
rollbacks, a forced apply right after prepare, and status after a newer change."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cutover import apply as applymod, monitor, plan as planmod
from cutover.errors import PartialApplyError
from cutover.observe.types import Answer, Target
from cutover.records import RecordSet, index
from cutover.resolvers import Resolver
from tests.fakes import PLAN

WWW, MX = ("www.example.com.", "A"), ("example.com.", "MX")


def targets(ctx, provider):
    setup = monitor.setup(ctx.plan, ctx.journal, index(provider.records()), [], "127.0.0.1:9")
    return setup, {t.key: t for t in setup.targets}


def test_a_change_that_did_not_land_is_still_watched(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    provider.land_only_first = True
    with pytest.raises(PartialApplyError):
        applymod.apply(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert set(found) == {WWW, MX}
    assert found[MX].new == ("10 mail.example.com.",) and found[MX].old == ("10 mail.old-host.net.",)
    assert setup.change_time == clock.t


def test_records_from_several_applies_are_all_watched(env, write_plan):
    ctx, provider, _, clock = env
    only_www = planmod.load(write_plan(PLAN.replace('  - {name: "@", type: MX, ttl: 300, from: ["10 mail.old-host.net."], to: ["10 mail.example.com."]}\n', ""), "www.yaml"))
    full = ctx.plan
    applymod.prepare(ctx)
    clock.t += 4000
    ctx.plan = only_www
    applymod.apply(ctx, verify_after=False)
    first = clock.t
    clock.t += 60
    ctx.plan = full
    applymod.apply(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert set(found) == {WWW, MX}
    assert setup.change_time == first + 60 and setup.change_source == "apply runs 2, 3"


def test_after_a_rollback_the_restored_answers_are_new(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    applymod.rollback(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert found[WWW].new == ("198.51.100.10",) and found[WWW].old == ("203.0.113.10",)
    assert setup.change_source.startswith("rollback run")


def test_forced_apply_right_after_prepare_keeps_the_long_ttl(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)  # 3600 -> 300
    clock.t += 600
    applymod.apply(ctx, verify_after=False, force=True)
    _, found = targets(ctx, provider)
    assert found[WWW].old_ttl == 3000  # caches filled just before prepare keep the old answer that long


def test_status_has_no_verdict_from_a_round_older_than_the_last_change(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False, force=True)
    setup, _ = targets(ctx, provider)
    _, doc = monitor.record_round(setup, journal, [], clock.t + 10)
    assert monitor.status(ctx.plan, journal)["verdict"] is not None
    clock.t += 100
    applymod.rollback(ctx, verify_after=False)
    assert monitor.status(ctx.plan, journal)["verdict"] is None


# --------------------------------------------------------------------------- the evidence a round adds

NS_A = Resolver("192.0.2.53", name="ns1.example.com", group="authoritative")
NS_B = Resolver("192.0.2.54", name="ns2.example.com", group="authoritative")
PUBLIC = [Resolver(f"192.0.2.{i}", name=f"r{i}") for i in range(1, 5)]


def answer(resolver, target, state, ttl=300):
    values = {"new": target.new, "old": target.old}.get(state, ())
    return Answer(resolver, target.key, state, ttl if state in ("new", "old") else None, values)


def soa(resolver, serial):
    return Answer(resolver, ("example.com.", "SOA"), "other", 3600,
                  (f"ns1.example.com. host.example.com. {serial} 7200 900 1209600 600",))


def applied(env) -> monitor.Setup:
    """The plan prepared, applied once the long TTL ran out, and what watch would look for."""
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    return targets(ctx, provider)[0]


def test_the_old_ttl_clock_starts_when_the_last_authoritative_server_has_the_change(env):
    ctx, provider, journal, clock = env
    s = applied(env)
    s = monitor.replace(s, servers=(NS_A, NS_B), agreed_since=None)
    t = s.targets
    lagging = [answer(NS_A, x, "new") for x in t] + [answer(NS_B, x, "old") for x in t] + [soa(NS_A, 8), soa(NS_B, 7)]
    lagging += [answer(r, x, "new") for r in PUBLIC for x in t]
    s, doc = monitor.record_round(s, journal, lagging, clock.t + 10)
    assert "authoritative" in doc["verdict"]["missing"] and doc["authoritative"]["all_new"] is False
    servers = {v["server"]: v for v in doc["authoritative"]["servers"]}
    assert servers["ns2.example.com"]["state"] == "lagging" and servers["ns2.example.com"]["serial"] == 7
    reason = next(c["reason"] for c in doc["verdict"]["conditions"] if c["name"] == "authoritative")
    assert "ns2.example.com (192.0.2.54) serial 7 still serves" in reason
    ttl = next(c for c in doc["verdict"]["conditions"] if c["name"] == "ttl")
    assert ttl["at"] is None and not ttl["met"]

    caught_up = [answer(n, x, "new") for n in (NS_A, NS_B) for x in t] + [soa(NS_A, 8), soa(NS_B, 8)]
    caught_up += [answer(r, x, "new") for r in PUBLIC for x in t]
    s, doc = monitor.record_round(s, journal, caught_up, clock.t + 40)
    assert doc["authoritative"]["all_new"] is True and s.agreed_since == clock.t + 40
    ttl = next(c for c in doc["verdict"]["conditions"] if c["name"] == "ttl")
    assert ttl["at"].startswith(iso_of(clock.t + 40 + 300 + 1)), "counted from the round that saw the secondary catch up"
    status = monitor.verdict_now(ctx.plan, journal, now=clock.t + 40 + 302)
    assert status is not None and next(c for c in status["conditions"] if c["name"] == "ttl")["met"] is True


def iso_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_later_watch_resumes_the_agreement_from_the_journalled_rounds(env):
    ctx, provider, journal, clock = env
    s = applied(env)
    s = monitor.replace(s, servers=(NS_A,))
    monitor.record_round(s, journal, [answer(NS_A, x, "old") for x in s.targets], clock.t + 5)
    monitor.record_round(s, journal, [answer(NS_A, x, "new") for x in s.targets], clock.t + 20)
    monitor.record_round(s, journal, [answer(NS_A, x, "new") for x in s.targets], clock.t + 50)
    again, _ = targets(ctx, provider)
    assert again.agreed_since == clock.t + 20


def test_an_outside_change_that_lowered_the_ttl_never_takes_the_new_ttl(env):
    ctx, provider, journal, clock = env
    provider.zone_data[("www.example.com.", "A")] = RecordSet.build("www.example.com.", "A", 5, ["203.0.113.10"])
    s, found = targets(ctx, provider)
    www = found[("www.example.com.", "A")]
    assert www.old_ttl == int(ctx.plan.retire.max_old_ttl) and www.old_ttl_source == "max_old_ttl"
    mx = found[("example.com.", "MX")]  # still old: its live TTL is the pre-change fact
    assert (mx.old_ttl, mx.old_ttl_source) == (3600, "live before the change")


def test_an_authoritative_server_seen_serving_old_data_replaces_the_guess(env):
    ctx, provider, journal, clock = env
    provider.zone_data[("www.example.com.", "A")] = RecordSet.build("www.example.com.", "A", 5, ["203.0.113.10"])
    s, _ = targets(ctx, provider)
    s = monitor.replace(s, servers=(NS_A, NS_B))
    www = next(t for t in s.targets if t.name == "www.example.com.")
    s, doc = monitor.record_round(s, journal, [answer(NS_A, www, "new", 5), answer(NS_B, www, "old", 60)], clock.t)
    rec = next(r for r in doc["records"] if r["name"] == "www.example.com.")
    assert (rec["old_ttl"], rec["old_ttl_source"]) == (60, "authoritative")
    again, found = targets(ctx, provider)
    assert found[www.key].old_ttl == 60 and found[www.key].old_ttl_source == "rounds"


def test_quorum_names_the_silent_resolvers(env):
    ctx, provider, journal, clock = env
    s = applied(env)
    silent = [Resolver("192.0.2.100", port=1000 + i, name=f"silent{i}") for i in range(19)]
    s = monitor.replace(s, servers=(NS_A,), resolvers=(PUBLIC[0], *silent))
    found = [answer(NS_A, x, "new") for x in s.targets] + [answer(PUBLIC[0], x, "new") for x in s.targets]
    found += [answer(r, x, "timeout") for r in silent for x in s.targets]
    _, doc = monitor.record_round(s, journal, found, clock.t + 4000)
    assert "quorum" in doc["verdict"]["missing"] and doc["verdict"]["retire"] is False
    reason = next(c["reason"] for c in doc["verdict"]["conditions"] if c["name"] == "quorum")
    assert "20 asked, 1 answered, 19 silent, need 10" in reason


def test_records_left_behind_hold_the_verdict_back(env, write_plan):
    ctx, provider, journal, clock = env
    provider.zone_data[("www.example.com.", "AAAA")] = RecordSet.build("www.example.com.", "AAAA", 3600, ["2001:db8::10"])
    applymod.prepare(ctx)
    clock.t += 4000
    with pytest.raises(Exception, match="left-behind: www.example.com. AAAA 2001:db8::10"):
        applymod.apply(ctx, verify_after=False)
    applymod.apply(ctx, verify_after=False, force=True)
    s, _ = targets(ctx, provider)
    assert [item.key for item in s.left_behind] == [("www.example.com.", "AAAA")]
    s = monitor.replace(s, servers=(NS_A,))
    found = [answer(NS_A, x, "new") for x in s.targets] + [answer(r, x, "new") for r in PUBLIC for x in s.targets]
    s, _ = monitor.record_round(s, journal, found, clock.t + 10)
    _, doc = monitor.record_round(s, journal, found, clock.t + 30 * 86400)
    assert doc["verdict"]["missing"] == ["left_behind"] and doc["left_behind"][0]["type"] == "AAAA"
    ignoring = planmod.load(write_plan(PLAN.replace("retire: {", "retire: {ignore: [www AAAA], "), "ignore.yaml"))
    ctx.plan = ignoring
    s, _ = targets(ctx, provider)
    assert s.left_behind == ()


def test_resolvers_are_never_asked_for_an_ns_set(env):
    ctx, provider, journal, clock = env
    s, _ = targets(ctx, provider)
    ns = Target(("example.com.", "NS"), ("ns1.new.example.",), ("ns1.example.com.",), 3600, "journal", recursive=False)
    s = monitor.replace(s, targets=(*s.targets, ns), servers=(NS_A,))
    (to_resolvers, _), (to_servers, _) = s.jobs()
    assert ns not in to_resolvers and ns in to_servers


def test_an_outside_change_dated_by_a_round_keeps_that_round_as_the_start_of_agreement(env):
    ctx, provider, journal, clock = env
    for key in list(provider.zone_data):
        if key in (("www.example.com.", "A"), ("example.com.", "MX")):
            record = next(r for r in ctx.plan.records if r.key == key)
            provider.zone_data[key] = RecordSet.build(key[0], key[1], 60, record.to)
    s, _ = targets(ctx, provider)
    s = monitor.replace(s, servers=(NS_A,))
    seen = clock.t + 0.4567  # written to the millisecond, read back a hair later
    s, doc = monitor.record_round(s, journal, [answer(NS_A, x, "new") for x in s.targets], seen)
    assert doc["change"]["source"] == "observed at the authoritative servers in round 1"
    again, _ = targets(ctx, provider)
    assert again.change_time == pytest.approx(seen, abs=0.001) and again.agreed_since == pytest.approx(seen, abs=0.001)
