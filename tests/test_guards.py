"""cutover.guards: each guard's refusals, their exact messages, and when they clear by themselves.

The TTL guard's ``until`` is what ``apply --wait`` sleeps for, so it is checked to the
second on both sides of its limit; the safety share only applies from ``SAFETY_MIN``
replaced or deleted sets on and never exceeds 100%.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cutover import diff as diffmod, guards, plan as planmod
from cutover.diff import ZoneDiff
from cutover.guards import GUARDS, SAFETY_MIN, Refusal
from cutover.journal import JournalChange, Run
from cutover.records import Change, RecordSet, index
from cutover.times import iso
from tests.fakes import PLAN, ZONE

P = 1_800_000_000.0  # when the prepare lowered the TTLs
WWW_OLD = RecordSet.build("www.example.com.", "A", 3600, ["198.51.100.10"])


def plan_of(text: str = PLAN, **changes) -> planmod.Plan:
    return replace(planmod.build(yaml.safe_load(text), Path("plan.yaml"), {}), **changes)


def zone(*replaced: RecordSet) -> dict:
    live = index(ZONE)
    live.update(index(replaced))
    return live


def prepare_run(changed: float | None, *changes: Change, status: str = "verified", change_status: str = "landed",
                run_id: int = 1) -> Run:
    journalled = tuple(JournalChange(i, c, change_status) for i, c in enumerate(changes))
    return Run(run_id, "prepare", "example.com.", "plan.yaml", "digest", status, P, changed, changed, None, None, None,
               None, journalled)


def lowered(rs: RecordSet, ttl: int) -> Change:
    return Change(rs, replace(rs, ttl=ttl))


# --------------------------------------------------------------------------- the refusal itself


def test_guards_are_reported_in_a_fixed_order():
    assert GUARDS == ("drift", "ttl", "safety", "left-behind", "integrity", "conflict", "readiness")


def test_a_refusal_reads_with_its_relative_time_and_journals_the_absolute_one():
    r = Refusal("ttl", "www A: caches may hold the old TTL until X", "in 5m", P)
    assert str(r) == "www A: caches may hold the old TTL until X (in 5m)"
    assert r.as_dict() == {"guard": "ttl", "message": "www A: caches may hold the old TTL until X", "until": iso(P)}
    assert str(Refusal("safety", "too much")) == "too much"
    assert Refusal("safety", "too much").as_dict()["until"] is None


# --------------------------------------------------------------------------- drift


def test_drift_names_the_live_and_the_planned_values():
    live = zone(RecordSet.build("www.example.com.", "A", 3600, ["192.0.2.77", "192.0.2.78"]))
    assert [r.message for r in guards.drift(plan_of(), live)] == [
        "www.example.com. A changed since the plan was written: live [192.0.2.77, 192.0.2.78], "
        "plan says from [198.51.100.10] (records[0].from)"
    ]


def test_no_drift_when_live_is_the_from_or_already_the_to():
    assert guards.drift(plan_of(), zone()) == []
    done = zone(RecordSet.build("www.example.com.", "A", 300, ["203.0.113.10"]),
                RecordSet.build("example.com.", "MX", 300, ["10 mail.example.com."]))
    assert guards.drift(plan_of(), done) == []


def test_drift_of_a_record_that_vanished_says_nothing_is_live():
    live = zone()
    del live[("www.example.com.", "A")]
    (refusal,) = guards.drift(plan_of(), live)
    assert refusal.message.startswith("www.example.com. A changed since the plan was written: live (nothing), plan says")


def test_a_record_the_plan_creates_drifts_when_it_appeared_meanwhile():
    text = PLAN.replace("from: [198.51.100.10]", "from: []")
    (refusal,) = guards.drift(plan_of(text), zone())
    assert refusal.message == ("www.example.com. A changed since the plan was written: live [198.51.100.10], "
                               "plan says from (nothing) (records[0].from)")


def test_a_record_without_from_is_never_drift():
    text = PLAN.replace(" from: [198.51.100.10],", "")
    live = zone(RecordSet.build("www.example.com.", "A", 3600, ["192.0.2.77"]))
    assert guards.drift(plan_of(text), live) == []


def test_reverse_drift_accepts_what_apply_left_or_what_rollback_restores():
    new = RecordSet.build("www.example.com.", "A", 300, ["203.0.113.10"])
    key = new.key
    expected, target = {key: new}, {key: WWW_OLD}
    assert guards.reverse_drift(expected, {key: new}, target) == []
    assert guards.reverse_drift(expected, {key: WWW_OLD}, target) == []
    other = RecordSet.build("www.example.com.", "A", 300, ["192.0.2.9"])
    assert [r.message for r in guards.reverse_drift(expected, {key: other}, target)] == [
        "www.example.com. A changed since the apply: live [192.0.2.9], the apply left [203.0.113.10]"]
    created = {key: None}
    assert [r.message for r in guards.reverse_drift(created, {key: other}, {key: None})] == [
        "www.example.com. A changed since the apply: live [192.0.2.9], the apply left (nothing)"]


# --------------------------------------------------------------------------- TTL readiness


def prepared_www(ttl: int = 300) -> tuple[ZoneDiff, list[Run]]:
    """www lowered from 3600 to ``ttl`` by a prepare at P; MX already short."""
    live = zone(replace(WWW_OLD, ttl=ttl), RecordSet.build("example.com.", "MX", 300, ["10 mail.old-host.net."]))
    return diffmod.compute(plan_of(), live), [prepare_run(P, lowered(WWW_OLD, 300))]


def test_after_a_prepare_the_guard_holds_until_prepare_time_plus_the_old_ttl():
    zdiff, prepares = prepared_www()
    (r,) = guards.ttl_readiness(zdiff, prepares, P + 60)
    assert r.guard == "ttl" and r.until == P + 3600
    assert r.message == ("www.example.com. A: prepare lowered the TTL from 3600s at 2027-01-15T08:00:00Z; "
                         "caches may hold the old TTL until 2027-01-15T09:00:00Z")
    assert r.relative == "in 59m"
    (last,) = guards.ttl_readiness(zdiff, prepares, P + 3599)
    assert last.relative == "in 1s" and last.until == P + 3600
    assert guards.ttl_readiness(zdiff, prepares, P + 3600) == []


def test_without_a_prepare_a_long_live_ttl_is_refused_and_never_clears_by_waiting():
    zdiff = diffmod.compute(plan_of(), zone())
    www, mx = guards.ttl_readiness(zdiff, [], P)
    assert www.message == ("www.example.com. A: live TTL is 3600s and no prepare was run; after the change caches may "
                           "hold the old answer until 2027-01-15T09:00:00Z. Run `cutover prepare` and wait "
                           "(apply --wait), or use --force ttl")
    assert www.relative == "in 60m" and www.until is None  # apply --wait cannot wait this one out
    assert mx.message.startswith("example.com. MX: live TTL is 3600s and no prepare was run")


def test_a_live_ttl_at_the_short_ttl_is_ready():
    live = zone(replace(WWW_OLD, ttl=300), RecordSet.build("example.com.", "MX", 300, ["10 mail.old-host.net."]))
    assert guards.ttl_readiness(diffmod.compute(plan_of(), live), [], P) == []
    live[WWW_OLD.key] = replace(WWW_OLD, ttl=301)
    assert [r.message.split(":")[0] for r in guards.ttl_readiness(diffmod.compute(plan_of(), live), [], P)] == [
        "www.example.com. A"]


def test_a_long_ttl_put_back_after_an_old_prepare_is_refused():
    """A prepare lowered www from 3600 to 300 at P; later the TTL went back to a day (a
    provider's default, a colleague). An apply long after P must still be refused for the
    live day-long TTL, as it is without a prepare. Today the prepare branch in
    ``ttl_readiness`` skips the record (its live TTL is not below the old one) and never
    falls back to the long-TTL rule, so nothing is refused."""
    zdiff, prepares = prepared_www(ttl=86400)
    found = guards.ttl_readiness(zdiff, prepares, P + 5000)
    assert [r.message.split(":")[0] for r in found] == ["www.example.com. A"]
    assert "live TTL is 86400s" in found[0].message


def test_a_ttl_only_change_and_a_created_record_are_never_refused():
    text = PLAN.replace("to: [203.0.113.10]", "to: [198.51.100.10]").replace(
        'to: ["10 mail.example.com."]', 'to: ["10 mail.old-host.net."]')
    text = text.replace("prepare:", "  - {name: new, type: A, to: [203.0.113.50]}\nprepare:")
    zdiff = diffmod.compute(plan_of(text), zone())
    assert sorted((c.action, c.ttl_only) for c in zdiff.changes) == [("create", False), ("update", True), ("update", True)]
    assert guards.ttl_readiness(zdiff, [], P) == []


def test_two_prepares_keep_the_longest_wait():
    """86400 -> 3600, then 3600 -> 300 a minute later: the first one's day is the wait."""
    day = replace(WWW_OLD, ttl=86400)
    first = prepare_run(P, lowered(day, 3600), run_id=1)
    second = prepare_run(P + 60, lowered(replace(day, ttl=3600), 300), run_id=2)
    assert guards.prepared_until([first, second]) == {WWW_OLD.key: P + 86400}
    assert guards.prepared_until([second, first]) == {WWW_OLD.key: P + 86400}
    zdiff, _ = prepared_www()
    (r,) = guards.ttl_readiness(zdiff, [first, second], P + 7200)
    assert r.until == P + 86400 and "from 86400s" in r.message


@pytest.mark.parametrize(("status", "change_status", "changed"), [
    ("failed", "landed", P), ("pending", "landed", P), ("verified", "failed", P), ("verified", "landed", None),
])
def test_a_prepare_that_did_not_land_sets_no_wait(status, change_status, changed):
    run = prepare_run(changed, lowered(WWW_OLD, 300), status=status, change_status=change_status)
    assert guards.prepared_until([run]) == {}


# --------------------------------------------------------------------------- safety


def sets(n: int, *, action: str = "update") -> list[Change]:
    out = []
    for i in range(n):
        before = RecordSet.build(f"h{i}.example.com.", "A", 300, ["198.51.100.1"])
        after = replace(before, values=("203.0.113.1",))
        out.append({"update": Change(before, after), "delete": Change(before, None), "create": Change(None, after),
                    "ttl": Change(before, replace(before, ttl=60))}[action])
    return out


def safety(changes: list[Change], zone_size: int | None, share: float = 0.5) -> list[Refusal]:
    return guards.safety(ZoneDiff(plan_of(max_change_share=share), {}, tuple(changes)), zone_size)


def test_safety_applies_only_from_five_replaced_or_deleted_sets():
    assert SAFETY_MIN == 5
    assert safety(sets(4), 4) == []  # four of four: an ordinary cutover of a small zone
    (r,) = safety(sets(5), 5)
    assert r.guard == "safety" and r.message == (
        "the plan would replace or delete 5 of the zone's 5 record sets (100%), more than safety.max_change_share (50%)")


def test_safety_share_at_the_limit_passes_and_one_more_is_refused():
    assert safety(sets(5), 10) == []
    (r,) = safety(sets(6), 10)
    assert "6 of the zone's 10 record sets (60%)" in r.message


def test_creates_and_ttl_only_changes_do_not_count():
    assert safety(sets(50, action="create") + sets(4), 10) == []
    assert safety(sets(50, action="ttl") + sets(4), 10) == []
    (r,) = safety(sets(3) + sets(2, action="delete"), 6)
    assert "5 of the zone's 6 record sets (83%)" in r.message


def test_safety_share_never_exceeds_100_percent():
    """A provider that lists only part of the zone can count fewer sets than the plan touches."""
    (r,) = safety(sets(8), 3)
    assert "(100%)" in r.message and "8 of the zone's 3 record sets" in r.message


def test_a_100_percent_limit_never_refuses_and_an_unknown_zone_size_is_not_judged():
    assert safety(sets(40), 40, share=1.0) == []
    assert safety(sets(40), None) == []


# --------------------------------------------------------------------------- left behind, integrity, conflicts


def test_left_behind_refuses_address_records_only():
    live = zone(RecordSet.build("www.example.com.", "AAAA", 3600, ["2001:db8::10"]),
                RecordSet.build("example.com.", "TXT", 3600, ["v=spf1 ip4:198.51.100.10 -all"]))
    zdiff = diffmod.compute(plan_of(), live)
    assert {item.kind for item in zdiff.left_behind} >= {"same-name", "spf"}
    refused = guards.left_behind(zdiff)
    assert [r.guard for r in refused] == ["left-behind"]
    assert refused[0].message.startswith("www.example.com. AAAA 2001:db8::10: ")


def test_integrity_and_conflict_refuse_with_the_finding_as_message():
    text = PLAN.replace('to: ["10 mail.example.com."]', 'to: ["10 mx.example.com."]')
    live = zone(RecordSet.build("mx.example.com.", "CNAME", 300, ["mail.example.net."]))
    zdiff = diffmod.compute(plan_of(text), live)
    assert [r.guard for r in guards.conflict(zdiff)] == ["conflict"]
    assert guards.conflict(zdiff)[0].message == zdiff.conflicts[0].message
    broken = diffmod.compute(plan_of(text.replace("mx.example.com.", "nowhere.example.com.")), zone())
    assert [(r.guard, r.message) for r in guards.integrity(broken)] == [("integrity", p.message) for p in broken.broken_targets]
    assert guards.integrity(broken) != []
