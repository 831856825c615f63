"""cutover.observe.types: the few words every consumer shares.

A state per answer; *answering* means new, old or other; a record's *share* is new over
answering (``None`` when nobody answered); *reached* allows for float rounding so that
19 of 20 meets 95%. Summaries count only the resolvers' answers, per watched record.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from cutover.observe.types import (
    ANSWERED, AUTHORITATIVE, ERRORS, FILTERED, NON_RECURSIVE, OLD_HOST, PARENT, UNREACHABLE, Answer, RecordSummary, Round,
    Target, Vantage, reached, summarise, summary,
)
from cutover.resolvers import Resolver
from tests.observations import answer as ans, resolvers

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
CREATE = Target(("new.example.com.", "A"), ("203.0.113.20",), (), 60)


# --------------------------------------------------------------------------- summaries


def test_summarise_counts_and_share_exclude_errors_and_filtered():
    rs = resolvers(8)
    answers = [ans(rs[0], UPDATE, "new"), ans(rs[1], UPDATE, "new"), ans(rs[2], UPDATE, "new"),
               ans(rs[3], UPDATE, "old"), ans(rs[4], UPDATE, "timeout"), ans(rs[5], UPDATE, "servfail"),
               ans(rs[6], UPDATE, "filtered"), ans(rs[7], UPDATE, "other")]
    (s,) = summarise(Round(1, T0, tuple(answers)), [UPDATE])
    assert s.counts == {"new": 3, "old": 1, "other": 1, "error": 2, "filtered": 1}
    assert s.answering == 5 and s.share == pytest.approx(0.6)


def test_summarise_nobody_answered_share_is_none():
    rs = resolvers(3)
    (s,) = summarise(Round(1, T0, tuple(ans(r, UPDATE, "timeout") for r in rs)), [UPDATE])
    assert s.share is None and s.error == 3


def test_summarise_keeps_records_apart_and_in_target_order():
    rs = resolvers(2)
    answers = (ans(rs[0], UPDATE, "new"), ans(rs[0], CREATE, "old"), ans(rs[1], UPDATE, "new"), ans(rs[1], CREATE, "new"))
    s_create, s_update = summarise(Round(1, T0, answers), [CREATE, UPDATE])
    assert s_create.key == CREATE.key and s_create.share == 0.5
    assert s_update.share == 1.0


def test_summarise_leaves_out_authoritative_answers():
    public = resolvers(2)
    auth = Resolver("192.0.2.53", group="authoritative")
    answers = (ans(public[0], UPDATE, "old"), ans(public[1], UPDATE, "old"), ans(auth, UPDATE, "new"))
    (s,) = summarise(Round(1, T0, answers), [UPDATE])
    assert (s.new, s.old) == (0, 2)


def test_every_unknown_state_counts_as_an_error():
    rs = resolvers(3)
    (s,) = summarise(Round(1, T0, (ans(rs[0], UPDATE, "malformed"), ans(rs[1], UPDATE, "something new"),
                                   ans(rs[2], UPDATE, "nxdomain"))), [UPDATE])
    assert (s.error, s.answering, s.asked, s.silent, s.share) == (3, 0, 3, 3, None)


def test_answers_for_records_not_watched_and_targets_not_asked_of_resolvers_are_left_out():
    rs = resolvers(1)
    ns = Target(("example.com.", "NS"), ("ns1.new.example.",), ("ns1.old.example.",), 3600, recursive=False)
    stray = Answer(rs[0], ("ftp.example.com.", "A"), "old", 300, ())
    found = summarise(Round(1, T0, (ans(rs[0], UPDATE, "new"), ans(rs[0], ns, "old"), stray)), [UPDATE, ns])
    assert [s.key for s in found] == [UPDATE.key]


def test_a_watched_record_nobody_was_asked_about_is_still_summarised():
    (s,) = summarise(Round(1, T0, ()), [UPDATE])
    assert (s.asked, s.share, s.reached(0.0)) == (0, None, False)


def test_summary_keeps_the_answers_in_order():
    rs = resolvers(2)
    answers = [ans(rs[1], UPDATE, "old"), ans(rs[0], UPDATE, "new")]
    assert summary(UPDATE.key, answers).answers == tuple(answers)


# --------------------------------------------------------------------------- shares and the threshold


@pytest.mark.parametrize(("new", "answering", "threshold", "expected"), [
    (19, 20, 0.95, True),        # 19 of 20 meets 95%
    (18, 20, 0.95, False),
    (20, 20, 1.0, True),
    (99, 100, 1.0, False),       # 100% means every answering resolver
    (1, 3, 1 / 3, True),
    (0, 1, 0.0, True),           # a 0% threshold is met by any answer ...
    (0, 0, 0.0, False),          # ... but never by silence
])
def test_reached_at_the_limits(new, answering, threshold, expected):
    share = new / answering if answering else None
    assert reached(answering, share, threshold) is expected
    s = RecordSummary(UPDATE.key, new=new, old=answering - new)
    assert s.reached(threshold) is expected


def test_share_leaves_errors_and_block_pages_out():
    s = RecordSummary(UPDATE.key, new=3, old=1, other=0, error=10, filtered=5)
    assert (s.answering, s.asked, s.silent, s.share) == (4, 19, 10, 0.75)
    assert s.counts == {"new": 3, "old": 1, "other": 0, "error": 10, "filtered": 5}
    assert s.label == "www.example.com. A"


def test_a_summary_from_a_stored_record_entry():
    rec = {"name": "www.example.com.", "type": "A", "counts": {"new": "4", "old": 1, "filtered": 2}}
    s = RecordSummary.from_record(rec)
    assert (s.key, s.new, s.old, s.other, s.error, s.filtered, s.answers) == (UPDATE.key, 4, 1, 0, 0, 2, ())
    assert RecordSummary.from_record({"name": "x.", "type": "A", "counts": None}).asked == 0


# --------------------------------------------------------------------------- the words themselves


def test_the_states_partition_as_documented():
    assert ANSWERED == ("new", "old", "other")
    assert not set(ANSWERED) & set(ERRORS) and FILTERED not in ERRORS + ANSWERED
    assert set(UNREACHABLE) <= set(ERRORS)
    assert NON_RECURSIVE == (AUTHORITATIVE, PARENT, OLD_HOST)
    assert [Answer(Resolver("192.0.2.1"), UPDATE.key, s, None, ()).answered for s in ("new", "other", "timeout", FILTERED)] \
        == [True, True, False, False]


def test_a_target_is_identified_by_its_data_not_by_where_its_ttl_came_from():
    a = Target(UPDATE.key, UPDATE.new, UPDATE.old, 300, "journal")
    b = Target(UPDATE.key, UPDATE.new, UPDATE.old, 300, "rounds", recursive=False)
    assert a == b and hash(a) == hash(b)
    assert a != Target(UPDATE.key, UPDATE.new, UPDATE.old, 301)
    assert (a.name, a.type) == UPDATE.key and CREATE.old == ()


def test_rounds_split_resolvers_from_the_servers_asked_without_recursion():
    public = Resolver("192.0.2.1", group="public")
    servers = [Resolver(f"192.0.2.{50 + i}", group=g) for i, g in enumerate(NON_RECURSIVE)]
    answers = tuple(ans(r, UPDATE, "new") for r in (public, *servers))
    rnd = Round(1, T0, answers)
    assert rnd.from_resolvers() == answers[:1]
    assert rnd.of_group(AUTHORITATIVE, PARENT) == answers[1:3]
    assert rnd.of_group() == ()


def test_an_answer_as_json_names_the_resolver_and_rounds_the_time():
    r = Resolver("2001:db8::53", port=5300, name="", operator="Example", country="NL", filtering=True, group="public")
    a = Answer(r, UPDATE.key, "old", 120, ("198.51.100.10",), "via TCP", elapsed=0.123456)
    assert a.as_dict(stale=True) == {
        "resolver": "[2001:db8::53]:5300", "address": "[2001:db8::53]:5300", "operator": "Example", "country": "NL",
        "group": "public", "filtering": True, "state": "old", "ttl": 120, "values": ["198.51.100.10"],
        "detail": "via TCP", "elapsed": 0.123, "stale": True, "vantage": None, "measured": None, "age": None,
    }
    assert Answer(r, UPDATE.key, "timeout", None, ()).as_dict()["elapsed"] is None
    assert Answer.from_dict(a.as_dict(), UPDATE.key) == replace(a, elapsed=0.123, resolver=replace(r, name="[2001:db8::53]:5300"))


def test_a_probe_answer_carries_its_vantage_and_age_and_reads_back_the_same():
    measured = datetime(2026, 11, 28, 12, 0, 0, 250000, tzinfo=timezone.utc)
    probe = Resolver("own", name="globalping JP Tokyo AS2516", operator="KDDI", country="JP", group="probe")
    a = Answer(probe, UPDATE.key, "old", 42, ("198.51.100.10",), vantage=Vantage("globalping", "AS", "JP", "Tokyo", 2516, "KDDI"),
               measured=measured)
    doc = a.as_dict(now=measured + timedelta(seconds=12.34))
    assert doc["vantage"] == {"service": "globalping", "continent": "AS", "country": "JP", "city": "Tokyo", "asn": 2516,
                              "network": "KDDI", "probe": ""}
    assert (doc["measured"], doc["age"], doc["address"]) == ("2026-11-28T12:00:00.250Z", 12.3, "own")
    assert Answer.from_dict(doc, UPDATE.key) == a
    assert a.as_dict()["age"] is None  # without the round's time there is no age
