"""The bound on old data, one rule per kind of change: pure functions of targets and times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cutover.bounds import Delegation, OldHost, delegation_change, record_change
from cutover.observe.types import Target

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
ZONE = "shop.example.net."
NS = Target((ZONE, "NS"), ("ns-new.example.net.",), ("ns-old.example.net.",), 3, "journal", recursive=False)
MX = Target((ZONE, "MX"), ("10 mail.new-host.example.org.",), ("10 mail.old-host.example.org.",), 2, "old host")
WWW = Target((f"www.{ZONE}", "A"), ("203.0.113.10",), ("198.51.100.10",), 300, "journal")
NEW = Target((f"new.{ZONE}", "A"), ("203.0.113.20",), (), 60, "negative TTL")


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_record_change_counts_from_the_last_authoritative_server():
    bound = record_change([WWW, NEW], agreed_since=later(40))
    assert bound.at == later(40 + 300 + 1)  # a second for caches counting whole seconds
    assert "the longest old TTL (5m, www.shop.example.net. A, from journal)" in bound.reason
    assert "when the last authoritative server served the new data" in bound.reason


def test_record_change_has_no_bound_while_a_server_lags():
    bound = record_change([WWW], agreed_since=None)
    assert bound.at is None and "has not happened yet" in bound.reason


def test_record_change_names_where_a_guessed_ttl_came_from():
    guessed = Target(WWW.key, WWW.new, WWW.old, 86400, "max_old_ttl")
    assert "from max_old_ttl" in record_change([guessed], later(0)).reason


def host(**kwargs) -> OldHost:
    base = dict(servers=("ns-old.example.net",), ns_ttl=3, ns_ttl_source="old host", teaches_old_ns=True,
                serving_old=(MX.key,))
    return OldHost(**{**base, **kwargs})


def test_delegation_parent_ttl_plus_old_host_ns_ttl_plus_record_ttl():
    bound = delegation_change([NS, MX], later(10), Delegation(parent_ns_ttl=3, old_host=host()))
    assert bound.at == later(10 + 3 + 3 + 2 + 3)  # plus a second per cache step
    assert "parent's NS TTL (3s)" in bound.reason and "old host's own NS TTL (3s, from old host)" in bound.reason
    assert "the old host still serves the old shop.example.net. MX" in bound.reason
    (advice,) = bound.notes
    assert "any resolver that holds the old delegation can keep receiving it" in advice
    assert "update the old host's zone to the new data" in advice and "lower the old host's NS TTL" in advice


def test_delegation_without_relearning_when_the_old_host_hands_out_the_new_ns():
    bound = delegation_change([NS, MX], later(10), Delegation(3, host(teaches_old_ns=False)))
    assert bound.at == later(10 + 3 + 2 + 2)
    assert "re-learn" not in bound.reason


def test_delegation_old_host_updated_ends_the_fetches_of_old_data_early():
    updated = host(serving_old=(), new_since={MX.key: later(11)})
    bound = delegation_change([NS, MX], later(10), Delegation(30, updated))
    # the old delegation is held until 10 + 30 + 3 (+2), but from 11 on the old host hands out the new MX
    assert bound.at == later(45)
    assert bound.notes == ()
    only_mx = delegation_change([MX], later(10), Delegation(30, updated))
    assert only_mx.at == later(45), "the delegation itself is held that long, whatever the records"


def test_delegation_old_host_updated_after_the_delegation_ended_changes_nothing():
    late = host(serving_old=(), new_since={MX.key: later(100)})
    assert delegation_change([NS, MX], later(10), Delegation(3, late)).at == later(10 + 3 + 3 + 2 + 3)


def test_delegation_has_no_bound_before_the_parent_agrees():
    bound = delegation_change([NS, MX], None, Delegation(3, host()))
    assert bound.at is None and "parent's servers hand out the new delegation" in bound.reason
    assert bound.notes and "for as long as they hold it" in bound.notes[0]


def test_a_forced_apply_after_prepare_says_what_is_left_of_the_long_ttl():
    left = Target(WWW.key, WWW.new, WWW.old, 3549, "prepare")
    reason = record_change([left], later(0)).reason
    assert "what is left of the TTL from before prepare (59m9s" in reason and "longest old TTL" not in reason
