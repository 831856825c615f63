"""cutover.history: what the journal says one zone's change was, since when, with which old TTL.

The journal is written directly (runs, verifications, rounds), so each rule is seen on
its own: which run the targets follow, where each old TTL comes from, when every
authoritative server was last seen agreeing, and what "the old server" is, including
after a rollback. tests/test_monitor.py drives the same rules through ``monitor.setup``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cutover import history, plan as planmod
from cutover.errors import UsageError
from cutover.journal import Journal
from cutover.observe.types import Target
from cutover.records import Change, RecordSet, index
from cutover.times import iso_precise
from tests.fakes import PLAN, ZONE

T = 1_800_000_000.0
NEG_TTL = 600
WWW, MX = ("www.example.com.", "A"), ("example.com.", "MX")
WWW_OLD = RecordSet.build("www.example.com.", "A", 3600, ["198.51.100.10"])
WWW_NEW = RecordSet.build("www.example.com.", "A", 300, ["203.0.113.10"])
MX_OLD = RecordSet.build("example.com.", "MX", 3600, ["10 mail.old-host.net."])
MX_NEW = RecordSet.build("example.com.", "MX", 300, ["10 mail.example.com."])


@pytest.fixture
def journal(tmp_path: Path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


def plan_of(text: str = PLAN) -> planmod.Plan:
    return planmod.build(yaml.safe_load(text), Path("plan.yaml"), {})


def live(*sets: RecordSet) -> dict:
    zone = index(ZONE)
    zone.update(index(sets))
    return zone


def run(journal: Journal, kind: str, changes: list[Change], changed: float, status: str = "applied",
        verified: float | None = None, undoes: int | None = None) -> int:
    run_id = journal.begin(kind, "example.com.", "plan.yaml", "digest", changes, undoes=undoes, now=changed - 1)
    journal.mark(run_id, "applied", changed=changed)
    if status != "applied":
        journal.mark(run_id, status)
    if verified is not None:
        journal.add_verification(run_id, "ns1.example.com", "new", "serves the new data", now=verified)
    return run_id


def round_doc(number: int, when: float, targets, all_new: bool, legacy: bool = False) -> dict:
    records = [{"name": t.name, "type": t.type, "new": list(t.new), "old": list(t.old), "old_ttl": t.old_ttl,
                "old_ttl_source": t.old_ttl_source} for t in targets]
    doc = {"round": number, "time": iso_precise(when), "records": records}
    if legacy:
        doc["authoritative_all_new"] = all_new
    else:
        doc["authoritative"] = {"all_new": all_new}
    return doc


def add_round(journal: Journal, number: int, when: float, targets, all_new: bool, **kw) -> None:
    journal.add_round("example.com.", number, when, round_doc(number, when, targets, all_new, **kw))


def by_key(h: history.History) -> dict:
    return {t.key: t for t in h.targets}


# --------------------------------------------------------------------------- retiring: "the old server"


def target(key, new, old) -> Target:
    return Target(key, tuple(new), tuple(old), 300)


def test_retiring_names_the_addresses_no_new_answer_keeps():
    targets = [
        target(WWW, ["203.0.113.10", "203.0.113.11"], ["198.51.100.10", "203.0.113.11"]),
        target(("www.example.com.", "AAAA"), ["2001:db8::2"], ["2001:db8::1"]),
        target(("ftp.example.com.", "A"), ["203.0.113.10"], ["198.51.100.10"]),  # the same old address twice
    ]
    assert history.retiring(targets) == ("198.51.100.10", "2001:db8::1")


def test_retiring_names_hosts_for_mx_srv_and_cname_and_ignores_text():
    targets = [
        target(MX, ["10 mail.example.com."], ["10 mail.old-host.net.", "20 mail.example.com."]),
        target(("_imaps._tcp.example.com.", "SRV"), ["0 1 993 mail.example.com."], ["0 1 993 imap.old-host.net."]),
        target(("shop.example.com.", "CNAME"), ["shops.new.example."], ["shops.old.example."]),
        target(("example.com.", "TXT"), ['"v=spf1 ip4:203.0.113.10 -all"'], ['"v=spf1 ip4:198.51.100.10 -all"']),
        target(("new.example.com.", "A"), ["203.0.113.20"], []),  # created: nothing retires
    ]
    assert history.retiring(targets) == ("mail.old-host.net", "imap.old-host.net", "shops.old.example")


def test_after_a_rollback_retiring_names_what_was_rolled_away_from(journal):
    """The rollback puts the old server back in use: what retires is the new one it left."""
    plan = plan_of()
    applied = run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T)
    run(journal, "rollback", [Change(WWW_NEW, WWW_OLD), Change(MX_NEW, MX_OLD)], T + 600, undoes=applied)
    h = history.read(plan, journal, live(), NEG_TTL)
    assert h.change_source == "rollback run 2" and h.change_time == T + 600
    assert by_key(h)[WWW].new == ("198.51.100.10",) and by_key(h)[WWW].old == ("203.0.113.10",)
    assert history.retiring(h.targets) == ("203.0.113.10", "mail.example.com")


def test_an_apply_after_a_rollback_is_followed_again(journal):
    plan = plan_of()
    first = run(journal, "apply", [Change(WWW_OLD, WWW_NEW)], T)
    run(journal, "rollback", [Change(WWW_NEW, WWW_OLD)], T + 600, undoes=first)
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T + 1200)
    h = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL)
    assert h.change_source == "apply run 3" and h.change_time == T + 1200
    assert history.retiring(h.targets) == ("198.51.100.10", "mail.old-host.net")


# --------------------------------------------------------------------------- from applies


def test_apply_targets_take_the_journalled_old_ttl(journal):
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T)
    h = history.read(plan_of(), journal, live(WWW_NEW, MX_NEW), NEG_TTL)
    www = by_key(h)[WWW]
    assert (www.new, www.old, www.old_ttl, www.old_ttl_source) == (("203.0.113.10",), ("198.51.100.10",), 3600, "journal")
    assert h.change_source == "apply run 1" and h.agreed_since is None


def test_records_moved_by_several_applies_are_dated_by_the_last(journal):
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW)], T)
    run(journal, "apply", [Change(MX_OLD, MX_NEW)], T + 90)
    h = history.read(plan_of(), journal, live(WWW_NEW, MX_NEW), NEG_TTL)
    assert h.change_source == "apply runs 1, 2" and h.change_time == T + 90


def test_a_created_record_waits_the_negative_ttl(journal):
    created = RecordSet.build("www.example.com.", "A", 300, ["203.0.113.10"])
    run(journal, "apply", [Change(None, created)], T)
    text = PLAN.replace("from: [198.51.100.10]", "from: []")
    www = by_key(history.read(plan_of(text), journal, live(created), NEG_TTL))[WWW]
    assert (www.old, www.old_ttl, www.old_ttl_source) == ((), NEG_TTL, "negative TTL")


def test_a_change_that_did_not_land_is_watched_from_its_journalled_before(journal):
    run_id = journal.begin("apply", "example.com.", "plan.yaml", "digest", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], now=T)
    journal.mark_changes(run_id, [WWW], "landed")
    journal.mark(run_id, "partial", changed=T)
    h = history.read(plan_of(), journal, live(WWW_NEW), NEG_TTL)
    mx = by_key(h)[MX]
    assert (mx.new, mx.old, mx.old_ttl, mx.old_ttl_source) == (("10 mail.example.com.",), ("10 mail.old-host.net.",), 3600, "journal")


def test_what_is_left_of_a_cut_short_prepare_wait_is_rounded_up(journal):
    """A forced apply 600.5 s into a prepare's 3600 s wait: caches may hold the old answer
    2999.5 s more, so the old TTL is 3000, never 2999."""
    run(journal, "prepare", [Change(WWW_OLD, replace(WWW_OLD, ttl=300))], T)
    change = Change(replace(WWW_OLD, ttl=300), WWW_NEW)
    found = history.target_for(change, T + 600.5, journal, "example.com.", NEG_TTL)
    assert (found.old_ttl, found.old_ttl_source) == (3000, "prepare")
    after_the_wait = history.target_for(change, T + 3700, journal, "example.com.", NEG_TTL)
    assert (after_the_wait.old_ttl, after_the_wait.old_ttl_source) == (300, "journal")


# --------------------------------------------------------------------------- from the plan (no apply journalled)


def test_without_an_apply_the_live_old_ttl_is_the_fact(journal):
    h = history.read(plan_of(), journal, live(), NEG_TTL)
    www = by_key(h)[WWW]
    assert (www.old_ttl, www.old_ttl_source) == (3600, "live before the change")
    assert h.change_time is None and h.change_source == "not seen yet at the authoritative servers" and h.run is None


def test_a_change_made_elsewhere_falls_back_to_max_old_ttl(journal):
    text = PLAN.replace("retire: {parallel_period: 1h}", "retire: {parallel_period: 1h, max_old_ttl: 2h}")
    www = by_key(history.read(plan_of(text), journal, live(WWW_NEW), NEG_TTL))[WWW]
    assert (www.old_ttl, www.old_ttl_source) == (7200, "max_old_ttl")


def test_a_ttl_recorded_by_earlier_rounds_outlasts_a_guess_but_a_guess_is_not_carried(journal):
    seen = replace(Target(WWW, ("203.0.113.10",), ("198.51.100.10",), 5400), old_ttl_source="authoritative")
    guessed = replace(Target(MX, ("10 mail.example.com.",), ("10 mail.old-host.net.",), 99999), old_ttl_source="max_old_ttl")
    add_round(journal, 1, T, [seen, guessed], all_new=False)
    found = by_key(history.read(plan_of(), journal, live(WWW_NEW, MX_NEW), NEG_TTL))
    assert (found[WWW].old_ttl, found[WWW].old_ttl_source) == (5400, "rounds")
    assert (found[MX].old_ttl, found[MX].old_ttl_source) == (86400, "max_old_ttl")


def test_a_longer_recorded_ttl_beats_the_live_one(journal):
    run(journal, "prepare", [Change(replace(WWW_OLD, ttl=7200), WWW_OLD)], T, status="verified")
    www = by_key(history.read(plan_of(), journal, live(), NEG_TTL))[WWW]
    assert (www.old_ttl, www.old_ttl_source) == (7200, "prepare")


def test_an_ns_set_is_watched_at_the_servers_only(journal):
    text = PLAN.replace("prepare:", '  - {name: "@", type: NS, from: [ns1.example.com.], to: [ns1.new-host.net.]}\nprepare:')
    found = by_key(history.read(plan_of(text), journal, live(), NEG_TTL))
    assert found[("example.com.", "NS")].recursive is False and found[WWW].recursive is True


def test_nothing_to_watch_is_a_usage_error_naming_the_fix(journal):
    text = PLAN.replace(" from: [198.51.100.10],", "").replace(' from: ["10 mail.old-host.net."],', "")
    with pytest.raises(UsageError) as info:
        history.read(plan_of(text), journal, live(), NEG_TTL)
    assert str(info.value) == ("plan.yaml: nothing to watch: no apply is journalled for example.com. and no record has "
                               "`from` (add `from:` to say what the old answer is)")


def test_an_outside_change_is_dated_by_the_first_round_where_every_server_had_it(journal):
    plan = plan_of()
    targets = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).targets
    add_round(journal, 1, T, targets, all_new=False)
    add_round(journal, 2, T + 30.25, targets, all_new=True, legacy=True)  # rounds written before "authoritative"
    add_round(journal, 3, T + 60, targets, all_new=True)
    h = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL)
    assert h.change_time == pytest.approx(T + 30.25, abs=0.001)
    assert h.change_source == "observed at the authoritative servers in round 2"
    assert h.agreed_since == pytest.approx(T + 60, abs=0.001)  # the legacy round carries no agreement of its own


def test_rounds_of_another_cutover_of_the_zone_do_not_date_this_one(journal):
    plan = plan_of()
    other = [Target(("ftp.example.com.", "A"), ("203.0.113.9",), ("198.51.100.9",), 300)]
    add_round(journal, 1, T, other, all_new=True)
    h = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL)
    assert h.change_time is None and h.agreed_since is None


# --------------------------------------------------------------------------- agreement


def test_a_verified_apply_agrees_from_its_verification(journal):
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T, status="verified", verified=T + 12.5)
    assert history.read(plan_of(), journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since == T + 12.5


def test_a_lagging_round_restarts_the_agreement_clock(journal):
    plan = plan_of()
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T, status="verified", verified=T + 5)
    targets = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).targets
    add_round(journal, 1, T + 30, targets, all_new=True)
    assert history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since == T + 5
    add_round(journal, 2, T + 60, targets, all_new=False)
    assert history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since is None
    add_round(journal, 3, T + 90.125, targets, all_new=True)
    add_round(journal, 4, T + 120, targets, all_new=True)
    assert history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since == pytest.approx(T + 90.125, abs=0.001)


def test_rounds_from_before_the_change_or_of_other_targets_do_not_count(journal):
    plan = plan_of()
    run(journal, "apply", [Change(WWW_OLD, WWW_NEW), Change(MX_OLD, MX_NEW)], T)
    targets = history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).targets
    add_round(journal, 1, T - 60, targets, all_new=True)
    other = [Target(("ftp.example.com.", "A"), ("203.0.113.9",), ("198.51.100.9",), 300)]
    add_round(journal, 2, T + 30, other, all_new=True)
    assert history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since is None
    add_round(journal, 3, T + 40, targets[:1], all_new=True)  # a round that watched part of these targets counts
    assert history.read(plan, journal, live(WWW_NEW, MX_NEW), NEG_TTL).agreed_since == T + 40
