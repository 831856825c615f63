"""The retire verdict and the stale-resolver report: pure functions of evidence and clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cutover.observe.types import Answer, RecordSummary, Round, Target
from cutover.resolvers import Resolver
from cutover.verdict import Verdict, stale_resolvers
from tests import observations

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
DAY = 86400.0
WWW = ("www.example.com.", "A")
MX = ("example.com.", "MX")


def summary(key=WWW, new=0, old=0, other=0, error=0, filtered=0) -> RecordSummary:
    return RecordSummary(key, new, old, other, error, filtered)


CONDITIONS = ["propagation", "quorum", "authoritative", "left_behind", "ttl", "parallel_period"]


def judge(summaries, *, threshold=1.0, change=T0, ttl=300, period=7 * DAY, now=None, **kwargs) -> Verdict:
    return observations.judge(summaries, threshold=threshold, change=change, ttl=ttl, period=period,
                              now=now or T0 + timedelta(days=8), **kwargs)


# --------------------------------------------------------------------------- all conditions


def test_retire_when_all_hold():
    now = T0 + timedelta(days=8)
    v = judge([summary(new=40), summary(MX, new=38, filtered=2)], now=now)
    assert v.retire and v.missing == ()
    assert [c.name for c in v.conditions] == CONDITIONS
    assert all(c.met for c in v.conditions)
    assert v.condition("propagation").at == now
    assert v.condition("ttl").at == T0 + timedelta(seconds=300)
    assert v.condition("parallel_period").at == T0 + timedelta(days=7)
    assert v.earliest == now  # the latest of the three times


def test_probe_measurements_on_their_way_hold_propagation_and_are_named():
    waiting = [f"globalping: r{i}.example.com. A" for i in range(5)]
    v = judge([summary(new=40)], awaiting=waiting)
    assert not v.retire and v.missing == ("propagation",) and v.earliest is None
    assert v.condition("propagation").reason == ("waiting for the first probe results (globalping: r0.example.com. A, "
                                                 "globalping: r1.example.com. A, globalping: r2.example.com. A, +2 more)")
    behind = judge([summary(new=30, old=10)], awaiting=waiting[:1]).condition("propagation").reason
    assert behind.startswith("below 100% new: ") and behind.endswith("; waiting for the first probe results "
                                                                      "(globalping: r0.example.com. A)")


def test_propagated_but_parallel_period_running():
    now = T0 + timedelta(days=1)
    v = judge([summary(new=40)], now=now)
    assert not v.retire and v.missing == ("parallel_period",)
    assert v.earliest == T0 + timedelta(days=7)
    assert "6d" in v.condition("parallel_period").reason


def test_not_propagated_means_earliest_unknown_but_other_times_known():
    v = judge([summary(new=30, old=10)], now=T0 + timedelta(hours=1))
    assert not v.retire and v.missing == ("propagation", "parallel_period")
    assert v.earliest is None
    assert v.condition("ttl").met and v.condition("parallel_period").at == T0 + timedelta(days=7)
    assert "30 of 40" in v.condition("propagation").reason and "75%" in v.condition("propagation").reason
    assert v.unpropagated == ("www.example.com. A",)


def test_ttl_is_the_last_condition_to_hold():
    v = judge([summary(new=40)], ttl=2 * 86400, period=3600, now=T0 + timedelta(hours=2))
    assert v.missing == ("ttl",)
    assert v.earliest == T0 + timedelta(days=2)


# --------------------------------------------------------------------------- propagation edges


@pytest.mark.parametrize(
    "threshold, new, answering, met",
    [
        (1.0, 40, 40, True),
        (1.0, 39, 40, False),
        (0.95, 19, 20, True),   # exactly at the threshold
        (0.95, 18, 20, False),
        (0.9, 9, 10, True),
        (0.7, 7, 10, True),
        (0.29, 29, 100, True),
        (2 / 3, 2, 3, True),
        (0.0, 0, 5, True),
        (0.5, 1, 3, False),
    ],
)
def test_threshold_edges(threshold, new, answering, met):
    v = judge([summary(new=new, old=answering - new)], threshold=threshold)
    assert v.condition("propagation").met is met
    assert v.retire is met


def test_share_over_answering_resolvers_only():
    # 10 new, 0 old, 30 timeouts, 5 filtered: everyone who answered has the new data.
    v = judge([summary(new=10, error=30, filtered=5)], min_answering=0.2)
    assert v.retire and v.condition("propagation").met


def test_record_with_nobody_answering_is_not_propagated():
    v = judge([summary(new=40), summary(MX, error=40)], threshold=0.0)
    assert not v.retire and v.missing == ("propagation", "quorum")
    assert "example.com. MX: no resolver answered (40 failed or filtered)" in v.condition("propagation").reason
    assert v.unpropagated == ("example.com. MX",)


def test_record_with_only_filtered_answers_is_not_propagated():
    assert not judge([summary(filtered=3)], threshold=0.5).condition("propagation").met


def test_other_answers_count_against_propagation():
    v = judge([summary(new=9, other=1)], threshold=1.0)
    assert not v.condition("propagation").met and "1 other" in v.condition("propagation").reason


def test_every_record_must_reach_the_threshold():
    v = judge([summary(new=40), summary(MX, new=20, old=20)], threshold=0.9)
    assert v.missing == ("propagation",)
    assert "example.com. MX" in v.condition("propagation").reason
    assert "www.example.com." not in v.condition("propagation").reason


def test_no_records_asked_of_resolvers_leaves_the_verdict_to_the_servers():
    v = judge([])
    assert v.retire and v.condition("propagation").met
    assert "authoritative servers" in v.condition("propagation").reason


# --------------------------------------------------------------------------- clock edges


def test_ttl_passes_exactly_at_change_plus_ttl():
    at = T0 + timedelta(seconds=300)
    assert judge([summary(new=1)], period=0, now=at).condition("ttl").met
    assert not judge([summary(new=1)], period=0, now=at - timedelta(microseconds=1)).condition("ttl").met


def test_parallel_period_passes_exactly_at_its_end():
    at = T0 + timedelta(days=7)
    assert judge([summary(new=1)], now=at).retire
    v = judge([summary(new=1)], now=at - timedelta(seconds=1))
    assert not v.retire and v.missing == ("parallel_period",) and v.earliest == at


def test_zero_ttl_and_zero_period_hold_at_the_change():
    assert judge([summary(new=1)], ttl=0, period=0, now=T0).retire


def test_no_change_observed_meets_nothing_and_says_why():
    v = judge([summary(new=40)], change=None, now=T0)
    assert not v.retire
    assert v.missing == ("authoritative", "ttl", "parallel_period")
    assert v.earliest is None
    assert v.condition("ttl").at is None and "has not happened yet" in v.condition("ttl").reason
    assert v.condition("parallel_period").at is None and "no change observed" in v.condition("parallel_period").reason


def test_naive_times_are_taken_as_utc():
    naive_change = T0.replace(tzinfo=None)
    v = judge([summary(new=1)], change=naive_change, now=T0 + timedelta(days=7))
    assert v.retire and v.earliest == T0 + timedelta(days=7)


def test_other_timezones_compare_by_instant():
    cest = timezone(timedelta(hours=2))
    v = judge([summary(new=1)], change=T0.astimezone(cest), now=(T0 + timedelta(days=7)).astimezone(cest))
    assert v.retire and v.earliest.tzinfo == timezone.utc


def test_verdict_document():
    doc = judge([summary(new=1, old=1)], threshold=0.95, now=T0 + timedelta(days=1)).as_dict()
    assert doc["retire"] is False and doc["earliest"] is None and doc["threshold"] == 0.95
    assert doc["missing"] == ["propagation", "parallel_period"]
    assert doc["notes"] == []
    ttl = next(c for c in doc["conditions"] if c["name"] == "ttl")
    assert ttl == {"name": "ttl", "met": True, "at": "2024-05-01T12:05:00Z", "reason": ttl["reason"]}


# --------------------------------------------------------------------------- stale resolvers


UPDATE = Target(WWW, ("203.0.113.10",), ("198.51.100.10",), 300)
CREATE = Target(("new.example.com.", "A"), ("203.0.113.20",), (), 60)
PUBLIC = [Resolver(f"192.0.2.{i}", name=f"r{i}", group="public") for i in range(1, 5)]
AUTH = Resolver("192.0.2.53", group="authoritative")


def test_stale_after_old_ttl_with_the_ttl_they_gave():
    answers = (
        Answer(PUBLIC[0], WWW, "old", 3600, UPDATE.old),  # TTL floored: stale
        Answer(PUBLIC[1], WWW, "new", 300, UPDATE.new),
        Answer(PUBLIC[2], WWW, "timeout", None, ()),
        Answer(PUBLIC[3], CREATE.key, "old", 0, ()),  # serve-stale of the negative answer
        Answer(AUTH, WWW, "old", 300, UPDATE.old),  # authoritative lag is not cache staleness
    )
    rnd = Round(3, T0 + timedelta(seconds=301), answers)
    stale = stale_resolvers(rnd, [UPDATE, CREATE], T0, rnd.time)
    assert [(a.resolver.name, a.key, a.ttl) for a in stale] == [("r1", WWW, 3600), ("r4", CREATE.key, 0)]
    assert stale_resolvers(rnd, [UPDATE, CREATE], None, rnd.time) == [], "no clock before the servers agree"


def test_not_stale_while_old_ttl_may_still_run():
    answers = (Answer(PUBLIC[0], WWW, "old", 299, UPDATE.old),)
    at_expiry = Round(2, T0 + timedelta(seconds=300), answers)
    assert stale_resolvers(at_expiry, [UPDATE], T0, at_expiry.time) == []
    later = Round(2, T0 + timedelta(seconds=300, milliseconds=1), answers)
    assert len(stale_resolvers(later, [UPDATE], T0, later.time)) == 1


def test_each_record_uses_its_own_old_ttl():
    answers = (Answer(PUBLIC[0], WWW, "old", 100, UPDATE.old), Answer(PUBLIC[0], CREATE.key, "old", 30, ()))
    rnd = Round(2, T0 + timedelta(seconds=120), answers)
    assert [a.key for a in stale_resolvers(rnd, [UPDATE, CREATE], T0, rnd.time)] == [CREATE.key]


def test_no_stale_without_a_change():
    rnd = Round(1, T0 + timedelta(days=1), (Answer(PUBLIC[0], WWW, "old", 3600, UPDATE.old),))
    assert stale_resolvers(rnd, [UPDATE], None, rnd.time) == []


def test_stale_judged_at_the_round_time_not_later():
    # Reading an old round later (``status``) must not turn its answers stale after the fact.
    rnd = Round(1, T0 + timedelta(seconds=10), (Answer(PUBLIC[0], WWW, "old", 290, UPDATE.old),))
    assert stale_resolvers(rnd, [UPDATE], T0, T0 + timedelta(days=3)) == []


def test_answers_for_unwatched_records_are_ignored():
    rnd = Round(1, T0 + timedelta(days=1), (Answer(PUBLIC[0], ("x.example.com.", "A"), "old", 1, ()),))
    assert stale_resolvers(rnd, [UPDATE], T0, rnd.time) == []
