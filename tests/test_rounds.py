"""cutover.rounds: one round's document, written by ``watch`` and read back by ``status``.

``status`` re-judges the last stored round with ``rounds.evidence``; at the moment the
round was judged that must give the verdict the round carries, and later the verdict
the same facts give then. The documents go through JSON, as the journal stores them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from cutover import rounds
from cutover.bounds import Bound
from cutover.observe.authoritative import ServerView, views
from cutover.observe.types import Answer, Round, Target, summarise
from cutover.resolvers import Resolver
from cutover.times import iso_precise, parse_iso
from cutover.verdict import Evidence, Rules, decide, stale_resolvers
from tests.observations import answer as ans, evidence, resolvers, round_doc

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
MX = Target(("example.com.", "MX"), ("10 mail.example.com.",), ("10 mail.old-host.net.",), 3600, "live before the change")
NS = Target(("example.com.", "NS"), ("ns1.new-host.net.",), ("ns1.old-host.net.",), 86400, "journal", recursive=False)
NS1 = Resolver("192.0.2.53", name="ns1.example.com", group="authoritative")
NS2 = Resolver("192.0.2.54", port=5301, name="ns2.example.com", group="authoritative")


# --------------------------------------------------------------------------- the document


def sample_round():
    rs = resolvers(4)
    auth = Resolver("192.0.2.53", name="ns1", group="authoritative")
    answers = (ans(rs[0], UPDATE, "new", 250), ans(rs[1], UPDATE, "old", 3600), ans(rs[2], UPDATE, "timeout", None),
               ans(rs[3], UPDATE, "new", 100), ans(auth, UPDATE, "new", 300))
    return Round(7, T0 + timedelta(minutes=30), answers)


def test_round_document_has_the_contract_shape():
    rnd = sample_round()
    doc = json.loads(json.dumps(round_doc(rnd, [UPDATE], change=T0, period=86400)))
    assert doc["round"] == 7 and doc["time"] == "2024-05-01T12:30:00.000Z"
    (rec,) = doc["records"]
    assert (rec["name"], rec["type"]) == ("www.example.com.", "A")
    assert {k: rec["counts"][k] for k in ("new", "old", "other", "error")} == {"new": 2, "old": 1, "other": 0, "error": 1}
    assert rec["share"] == pytest.approx(2 / 3)
    assert [a["state"] for a in rec["answers"]] == ["new", "old", "timeout", "new"]
    assert all({"resolver", "state", "ttl"} <= set(a) for a in rec["answers"])
    assert [a["stale"] for a in rec["answers"]] == [False, True, False, False]
    assert rec["answers"][1]["ttl"] == 3600
    assert rec["authoritative"]["all_new"] and len(rec["authoritative"]["answers"]) == 1
    v = doc["verdict"]
    assert v["retire"] is False and v["missing"] == ["propagation", "parallel_period"] and v["earliest"] is None
    assert [c["name"] for c in v["conditions"]] == ["propagation", "quorum", "authoritative", "left_behind", "ttl", "parallel_period"]
    assert doc["authoritative"]["all_new"] is True
    assert doc["authoritative"]["servers"] == [{"server": "ns1", "address": "192.0.2.53", "group": "authoritative",
                                                "serial": None, "state": "new", "detail": "serves the new data"}]
    assert rec["old_ttl_source"] == "journal" and rec["resolvers_asked"] is True


def test_round_document_share_is_zero_not_null_when_nobody_answered():
    rs = resolvers(2)
    rnd = Round(1, T0, tuple(ans(r, UPDATE, "timeout", None) for r in rs))
    rec = round_doc(rnd, [UPDATE], change=None, threshold=0.0, ttl=0, period=0)["records"][0]
    assert rec["share"] == 0.0 and rec["answering"] == 0


def test_a_round_document_carries_the_evidence_it_was_judged_on():
    rnd = Round(3, T0 + timedelta(seconds=90.5), (ans(NS1, UPDATE, "new"), ans(NS2, UPDATE, "old")))
    servers = views(rnd, [UPDATE])
    ev = evidence(summarise(rnd, [UPDATE]), change=T0, servers=servers, agreed=None, left=("ftp A 198.51.100.10",))
    doc = rounds.round_document(rnd, [UPDATE], decide(ev, Rules(), rnd.time), ev,
                                left_behind=[{"name": "ftp.example.com.", "reason": "ftp A 198.51.100.10"}],
                                delegation={"parent": ["192.0.2.100"]})
    assert doc["time"] == "2024-05-01T12:01:30.500Z" and doc["round"] == 3
    assert doc["authoritative"]["all_new"] is False and doc["authoritative_all_new"] is False
    assert doc["authoritative"]["since"] is None
    assert [s["state"] for s in doc["authoritative"]["servers"]] == ["new", "lagging"]
    assert doc["bound"] == {"at": None, "reason": ev.bound.reason, "notes": []}
    assert doc["left_behind"] == [{"name": "ftp.example.com.", "reason": "ftp A 198.51.100.10"}]
    assert doc["delegation"] == {"parent": ["192.0.2.100"]}
    assert doc["stale"] == 0


def test_the_old_host_answers_are_kept_apart_from_the_zone_servers():
    old = Resolver("192.0.2.200", name="ns1.old-host.net", group="old-host")
    parent = Resolver("192.0.2.100", name="a.gtld", group="parent")
    rnd = Round(1, T0, (ans(NS1, UPDATE, "new"), ans(parent, NS, "new"), ans(old, UPDATE, "old")))
    ev = evidence(summarise(rnd, [UPDATE, NS]), change=T0)
    doc = rounds.round_document(rnd, [UPDATE, NS], decide(ev, Rules(), T0), ev)
    www, ns = doc["records"]
    assert [a["resolver"] for a in www["authoritative"]["answers"]] == ["ns1.example.com"]
    assert [a["resolver"] for a in www["old_host"]["answers"]] == ["ns1.old-host.net"]
    assert ns["resolvers_asked"] is False and ns["authoritative"]["all_new"] is True and "old_host" not in ns
    assert ns["counts"] == {"new": 0, "old": 0, "other": 0, "error": 0, "filtered": 0}


def test_a_record_no_server_answered_is_not_all_new_at_the_servers():
    rnd = Round(1, T0, (ans(resolvers(1)[0], UPDATE, "new"),))
    ev = evidence(summarise(rnd, [UPDATE]), change=T0)
    rec = rounds.round_document(rnd, [UPDATE], decide(ev, Rules(), T0), ev)["records"][0]
    assert rec["authoritative"] == {"all_new": False, "answers": []}


def test_stored_targets_read_back_with_where_their_ttl_came_from():
    rnd = Round(1, T0, ())
    ev = evidence((), change=T0)
    doc = json.loads(json.dumps(rounds.round_document(rnd, [UPDATE, MX, NS], decide(ev, Rules(), T0), ev)))
    back = rounds.targets(doc)
    assert back == (UPDATE, MX, NS)
    assert [(t.old_ttl_source, t.recursive) for t in back] == [("journal", True), ("live before the change", True),
                                                               ("journal", False)]


# --------------------------------------------------------------------------- read back and judged again


RULES = Rules(threshold=0.8, parallel_period=3600.0, min_answering=3, min_answering_is_count=True)


def written(rnd: Round, targets, ev: Evidence, **kwargs) -> tuple[dict, datetime | None]:
    """The document as the journal keeps it, and the change time as ``status`` reads it."""
    verdict = decide(ev, RULES, rnd.time)
    stale = stale_resolvers(rnd, targets, ev.agreed_since, rnd.time)
    doc = json.loads(json.dumps(rounds.round_document(rnd, targets, verdict, ev, stale=stale, **kwargs)))
    change = iso_precise(ev.change_time)
    return doc, parse_iso(change) if change else None


def scenario(*, agreed_after: float | None, left: tuple[str, ...] = (), lagging: bool = False) -> tuple[Round, Evidence]:
    """A round 1h 23m 0.123456s after the change at T0 + 0.654321s, times as watch has them."""
    change = T0 + timedelta(seconds=0.654321)
    at = change + timedelta(hours=1, minutes=23, seconds=0.123456)
    public = resolvers(6)
    answers = [ans(r, UPDATE, "new", 250) for r in public[:4]] + [ans(public[4], UPDATE, "old", 3600),
                                                                  Answer(public[5], UPDATE.key, "timeout", None, ())]
    answers += [ans(public[0], MX, "new"), ans(public[1], MX, "new"), ans(public[2], MX, "new")]
    answers += [ans(NS1, t, "new") for t in (UPDATE, MX, NS)]
    answers += [ans(NS2, t, "old" if lagging else "new") for t in (UPDATE, MX, NS)]
    answers += [Answer(s, ("example.com.", "SOA"), "other", 3600, (f"ns1.example.com. h.example.com. {n} 1 1 1 1",))
                for s, n in ((NS1, 8), (NS2, 7 if lagging else 8))]
    rnd = Round(12, at, tuple(answers))
    agreed = None if agreed_after is None else change + timedelta(seconds=agreed_after)
    ttl = 3600
    bound = (Bound(agreed + timedelta(seconds=ttl + 1), f"the longest old TTL ({ttl}s) counted from ...", ("a note",))
             if agreed is not None else Bound(None, "not yet"))
    ev = Evidence(tuple(summarise(rnd, [UPDATE, MX, NS])), tuple(views(rnd, [UPDATE, MX, NS])), agreed, bound, change,
                  left, ("198.51.100.10", "mail.old-host.net"))
    return rnd, ev


@pytest.mark.parametrize(("what", "agreed_after", "left", "lagging"), [
    ("waiting for the ttl", 2000.5, (), False),
    ("ready to retire", 0.25, (), False),
    ("a secondary lags", None, (), True),
    ("a record left behind", 10.0, ("ftp.example.com. A 198.51.100.10: left on the old server",), False),
])
def test_status_gives_the_verdict_the_round_carries_at_the_round_time(what, agreed_after, left, lagging):
    rnd, ev = scenario(agreed_after=agreed_after, left=left, lagging=lagging)
    doc, change = written(rnd, [UPDATE, MX, NS], ev, left_behind=[{"reason": r} for r in left])
    again = decide(rounds.evidence(doc, change), RULES, rnd.time).as_dict()
    assert again == doc["verdict"], what


def test_the_scenarios_reach_the_verdicts_they_are_named_for():
    def judged(**kw):
        rnd, ev = scenario(**kw)
        return decide(ev, RULES, rnd.time)

    assert judged(agreed_after=0.25).retire
    assert judged(agreed_after=2000.5).missing == ("ttl",)
    assert set(judged(agreed_after=None, lagging=True).missing) == {"authoritative", "ttl"}
    assert judged(agreed_after=10.0, left=("x",)).missing == ("left_behind",)


@pytest.mark.parametrize("later", [0.0, 1.0, 621.376, 621.376544, 621.377, 3600.0, 86400.0])  # the bound is 621.376544 s on
def test_status_judges_the_stored_facts_again_as_time_moves_on(later):
    rnd, ev = scenario(agreed_after=2000.5)
    doc, change = written(rnd, [UPDATE, MX, NS], ev)
    now = rnd.time + timedelta(seconds=later)
    assert decide(rounds.evidence(doc, change), RULES, now).as_dict() == decide(ev, RULES, now).as_dict()


def test_the_stored_facts_read_back_as_they_were():
    rnd, ev = scenario(agreed_after=2000.5, lagging=False)
    doc, change = written(rnd, [UPDATE, MX, NS], ev, left_behind=[{"reason": "ftp A"}, {"name": "bare"}])
    back = rounds.evidence(doc, change)
    assert [(s.key, s.counts) for s in back.summaries] == [(s.key, s.counts) for s in ev.summaries]
    assert back.servers == ev.servers
    assert abs((back.agreed_since - ev.agreed_since).total_seconds()) <= 0.0005
    assert abs((back.bound.at - ev.bound.at).total_seconds()) <= 0.0005
    assert (back.bound.reason, back.bound.notes) == (ev.bound.reason, ev.bound.notes)
    assert back.change_time == change and back.left_behind == ("ftp A", "{'name': 'bare'}")
    assert back.retiring == ("198.51.100.10", "mail.old-host.net")


def test_an_agreement_in_the_last_half_millisecond_of_a_second_reads_back_in_that_second():
    """The round was judged with the agreement time to the microsecond; the document keeps
    it rounded to the nearest millisecond, which for ``...:00.9996`` is the next second,
    so the re-judged "authoritative" condition says it held a second later than it did."""
    rnd, ev = scenario(agreed_after=0.0)
    ev = replace(ev, agreed_since=T0 + timedelta(seconds=0.9996),
                 bound=Bound(T0 + timedelta(seconds=3601.9996), "the longest old TTL (3600s)"))
    doc, change = written(rnd, [UPDATE, MX, NS], ev)
    assert decide(rounds.evidence(doc, change), RULES, rnd.time).as_dict() == doc["verdict"]


def test_a_round_stored_before_the_evidence_was_kept_is_judged_without_it():
    old = {"round": 1, "time": "2024-05-01T12:00:00Z", "authoritative_all_new": True,
           "records": [{"name": "www.example.com.", "type": "A", "counts": {"new": 5}, "new": [], "old": []}]}
    back = rounds.evidence(old, None)
    assert back.servers == () and back.agreed_since is None and back.left_behind == () and back.retiring == ()
    assert back.bound == Bound(None, "the old-data bound was not recorded")
    assert [s.new for s in back.summaries] == [5]
    assert decide(back, Rules(), T0).missing == ("authoritative", "ttl", "parallel_period")


def test_a_lagging_server_reads_back_with_its_serial():
    view = ServerView("ns2.example.com", "192.0.2.54:5301", "authoritative", 7, "lagging", "www A: old")
    doc = {"authoritative": {"all_new": False, "since": None, "servers": [view.as_dict()]}, "records": []}
    assert rounds.evidence(doc, None).servers == (view,)


def test_a_round_is_stored_without_its_probe_answers_and_reads_back_with_them(tmp_path):
    from cutover.journal import Journal
    from cutover.rounds import stored_form, with_probe_answers

    probe = {"resolver": "globalping JP Tokyo AS2516", "group": "probe", "state": "old", "ttl": 40,
             "vantage": {"service": "globalping", "country": "JP"}, "measured": "2026-11-28T12:00:00.000Z", "age": 5.0}
    resolver = {"resolver": "isp", "group": "custom", "state": "new", "vantage": None, "measured": None}
    doc = {"round": 2, "time": "2026-11-28T12:00:05.000Z",
           "records": [{"name": "www.example.com.", "type": "A", "counts": {"new": 1, "old": 1}, "answers": [resolver, probe]}]}
    stored, groups = stored_form(doc)
    assert stored["records"][0]["answers"] == [resolver] and stored["records"][0]["probe_answers"] == 1
    assert stored["records"][0]["counts"] == {"new": 1, "old": 1}  # the counts still include the probe
    assert groups == [("globalping", "www.example.com.", "A", "2026-11-28T12:00:00.000Z", [probe])]
    journal = Journal(tmp_path / "state")
    try:
        journal.add_probe_results("example.com.", 2, groups)
        journal.add_probe_results("example.com.", 3, groups)  # the same measurement in the next round: stored once
        later = {**probe, "state": "new", "measured": "2026-11-28T12:10:00.000Z"}
        journal.add_probe_results("example.com.", 30, [("globalping", "www.example.com.", "A", later["measured"], [later])])
        assert journal.db.execute("SELECT COUNT(*) FROM probe_results").fetchone()[0] == 2
        back = with_probe_answers(stored, journal.probe_results("example.com.", doc["time"]))
        assert back["records"][0]["answers"] == [resolver, probe]  # the measurement the round showed, not the later one
        at_ten = with_probe_answers({**stored, "time": "2026-11-28T12:10:30.000Z"},
                                    journal.probe_results("example.com.", "2026-11-28T12:10:30.000Z"))
        assert [(a["state"], a.get("age")) for a in at_ten["records"][0]["answers"]] == [("new", None), ("new", 30.0)]
    finally:
        journal.close()
