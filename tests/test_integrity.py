"""In-zone MX, SRV and NS targets must keep an address: the check made before sending."""

from __future__ import annotations

import pytest

from cutover.integrity import Problem, problems, target_keys
from cutover.records import Change, RecordSet, index

ZONE = "example.com."


def rs(name: str, rtype: str, *values: str, ttl: int = 300) -> RecordSet:
    owner = ZONE if name == "@" else f"{name}.{ZONE}"
    return RecordSet.build(owner, rtype, ttl, values)


def zone(*extra: RecordSet) -> dict:
    """A small live zone: apex NS with its address, a mail host, a web host."""
    return index([
        rs("@", "NS", "ns1.example.com."),
        rs("ns1", "A", "192.0.2.53"),
        rs("mx1", "A", "192.0.2.25"),
        rs("www", "A", "192.0.2.80"),
        *extra,
    ])


def create(record: RecordSet) -> Change:
    return Change(None, record)


def check(changes: list[Change], live: dict) -> list[Problem]:
    return problems(changes, live, ZONE)


# --------------------------------------------------------------------------- MX


def test_new_mx_to_an_in_zone_name_without_address_is_refused_with_its_reason():
    live = zone(rs("@", "MX", "10 mx1.example.com."))
    change = Change(live[(ZONE, "MX")], rs("@", "MX", "10 mx1.example.com.", "20 mx3.example.com."))
    [problem] = check([change], live)
    assert problem.key == (ZONE, "MX") and problem.target == "mx3.example.com." and problem.refused_by_bind
    assert str(problem) == (
        "@ MX 20 mx3.example.com.: mx3.example.com. is in the zone but will have no A or AAAA record "
        "after the change; BIND refuses such an update (check-integrity) and mail could not be delivered")


def test_a_target_the_same_change_set_creates_counts():
    changes = [create(rs("@", "MX", "10 mx3.example.com.")), create(rs("mx3", "AAAA", "2001:db8::25"))]
    assert check(changes, zone()) == []


def test_a_target_the_change_set_deletes_does_not_count():
    live = zone(rs("@", "MX", "10 mx1.example.com."))
    [problem] = check([Change(live[(f"mx1.{ZONE}", "A")], None)], live)
    assert "mx1.example.com. is in the zone but will have no A or AAAA record after the change " \
           "(the change removes its address); mail could not be delivered" in problem.message
    assert not problem.refused_by_bind  # BIND checks only the MX sets an update adds


def test_moving_the_address_from_a_to_aaaa_keeps_the_target_valid():
    live = zone(rs("@", "MX", "10 mx1.example.com."))
    changes = [Change(live[(f"mx1.{ZONE}", "A")], None), create(rs("mx1", "AAAA", "2001:db8::25"))]
    assert check(changes, live) == []


def test_mx_to_an_alias_is_named_as_such():
    live = zone(rs("mail", "CNAME", "mx1.example.com."))
    [problem] = check([create(rs("@", "MX", "10 mail.example.com."))], live)
    assert "mail.example.com. is an alias (CNAME) in the zone; an MX target must be the name that holds" in problem.message
    assert problem.refused_by_bind


@pytest.mark.parametrize("value", ["10 mail.other.net.", "0 .", "10 example.net."])
def test_targets_outside_the_zone_and_null_mx_are_not_checked(value):
    assert check([create(rs("@", "MX", value))], zone()) == []


def test_targets_in_a_delegated_subzone_are_the_child_zones_business():
    live = zone(rs("eu", "NS", "ns.other.net."))
    assert check([create(rs("@", "MX", "10 mx.eu.example.com.", "20 eu.example.com."))], live) == []


def test_a_wildcard_gives_an_address_but_not_below_an_existing_name():
    live = zone(rs("*", "A", "192.0.2.99"), rs("x.b", "TXT", '"here"'))
    assert check([create(rs("@", "MX", "10 anything.example.com."))], live) == []
    [problem] = check([create(rs("@", "MX", "10 y.b.example.com."))], live)  # the closest encloser is b
    assert problem.target == "y.b.example.com." and problem.refused_by_bind


def test_an_empty_non_terminal_target_is_a_problem_bind_lets_through():
    live = zone(rs("x.b", "TXT", '"here"'))
    [problem] = check([create(rs("@", "MX", "10 b.example.com."))], live)
    assert not problem.refused_by_bind and "mail could not be delivered" in problem.message


def test_old_breakage_the_change_does_not_touch_is_not_reported():
    live = zone(rs("@", "MX", "10 gone.example.com."), rs("_sip._tcp", "SRV", "0 0 5060 gone.example.com."))
    assert check([Change(live[(f"www.{ZONE}", "A")], rs("www", "A", "203.0.113.80"))], live) == []


def test_a_ttl_only_change_of_a_broken_mx_is_reported_because_bind_re_checks_it():
    live = zone(rs("@", "MX", "10 gone.example.com.", ttl=3600))
    [problem] = check([Change(live[(ZONE, "MX")], rs("@", "MX", "10 gone.example.com.", ttl=300))], live)
    assert problem.refused_by_bind


# --------------------------------------------------------------------------- SRV and NS


def test_srv_target_without_address_is_reported_without_blaming_bind():
    [problem] = check([create(rs("_imaps._tcp", "SRV", "0 1 993 imap.example.com."))], zone())
    assert problem.message == (
        "_imaps._tcp SRV 0 1 993 imap.example.com.: imap.example.com. is in the zone but will have no "
        "A or AAAA record after the change; clients could not reach the service")
    assert not problem.refused_by_bind


def test_srv_no_service_target_is_not_checked():
    assert check([create(rs("_imap._tcp", "SRV", "0 0 0 ."))], zone()) == []


def test_apex_ns_target_without_address_is_refused():
    live = zone()
    change = Change(live[(ZONE, "NS")], rs("@", "NS", "ns1.example.com.", "ns2.example.com."))
    [problem] = check([change], live)
    assert problem.target == "ns2.example.com." and problem.refused_by_bind
    assert problem.message.endswith("BIND refuses such an update (check-integrity) and resolvers could not "
                                    "reach that name server")


def test_deleting_the_address_of_an_apex_ns_target_is_refused():
    live = zone()
    [problem] = check([Change(live[(f"ns1.{ZONE}", "A")], None)], live)
    assert problem.key == (ZONE, "NS") and problem.refused_by_bind and "removes its address" in problem.message


def test_delegation_to_an_in_zone_name_without_address_is_reported():
    [problem] = check([create(rs("shop", "NS", "ns-shop.example.com."))], zone())
    assert not problem.refused_by_bind
    assert problem.message.endswith("resolvers could not reach that name server for shop.example.com.")


def test_glue_below_the_delegation_is_not_checked():
    assert check([create(rs("shop", "NS", "ns.shop.example.com."))], zone()) == []


# --------------------------------------------------------------------------- what to read


def test_target_keys_lists_in_zone_targets_and_touched_address_names():
    changes = [
        create(rs("@", "MX", "10 mx3.example.com.", "20 mail.other.net.")),
        Change(rs("www", "A", "192.0.2.80"), None),
        create(rs("_sip._tcp", "SRV", "0 0 0 .")),
    ]
    assert target_keys(changes, ZONE) == sorted([
        ("mx3.example.com.", "A"), ("mx3.example.com.", "AAAA"), ("mx3.example.com.", "CNAME"),
        ("www.example.com.", "A"), ("www.example.com.", "AAAA"), ("www.example.com.", "CNAME"),
        (ZONE, "MX"),
    ])


def test_target_keys_leaves_the_apex_ns_to_the_caller():
    """The manual provider reads the apex NS at the parent: not a read to force on it."""
    assert (ZONE, "NS") not in target_keys([Change(rs("ns1", "A", "192.0.2.53"), None)], ZONE)


def test_target_keys_is_empty_when_nothing_points_anywhere():
    assert target_keys([create(rs("@", "TXT", '"v=spf1 -all"'))], ZONE) == []


@pytest.mark.parametrize("changes", [
    [create(rs("@", "MX", "10 mx3.example.com."))],
    [Change(rs("mx1", "A", "192.0.2.25"), None)],
    [Change(rs("ns1", "A", "192.0.2.53"), rs("ns1", "A", "192.0.2.54"))],
    [Change(rs("mx1", "A", "192.0.2.25"), rs("mx1", "CNAME", "www.example.com."))],
    [Change(rs("ns1", "A", "192.0.2.53"), None)],
    [create(rs("@", "NS", "ns1.example.com.", "ns2.example.com."))],
])
def test_reading_only_the_listed_keys_finds_what_the_whole_zone_finds(changes):
    """A provider that reads by query sees the plan's sets plus ``target_keys`` (and the
    apex NS where that is safe to read): enough."""
    whole = zone(rs("@", "MX", "10 mx1.example.com."), rs("mx3", "TXT", '"no address"'))
    wanted = {c.key for c in changes} | set(target_keys(changes, ZONE)) | {(ZONE, "NS")}
    partial = {k: v for k, v in whole.items() if k in wanted}
    assert check(changes, partial) == check(changes, whole)
