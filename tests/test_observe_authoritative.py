"""cutover.observe.authoritative: each zone server reduced to one view per round.

A server is ``new`` when every watched record it was asked about is new, ``lagging``
(named with the SOA serial it serves and what it still serves) or ``unreachable``; the
verdict's "authoritative" condition and its reason are built from these views.
"""

from __future__ import annotations

from datetime import datetime, timezone

from cutover.observe.authoritative import AGREEING, ServerView, all_new, describe_lagging, serial_probe, views
from cutover.observe.types import AUTHORITATIVE, OLD_HOST, PARENT, Answer, Round, Target
from cutover.resolvers import Resolver
from tests.observations import answer as ans

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
DELETE = Target(("legacy.example.com.", "A"), (), ("198.51.100.30",), 300)
MAIL = Target(("mail.example.com.", "A"), ("203.0.113.25",), ("198.51.100.25",), 300)
PROBE = serial_probe("example.com.")

NS1 = Resolver("192.0.2.53", name="ns1.example.com", group=AUTHORITATIVE)
NS2 = Resolver("192.0.2.54", port=5301, name="ns2.example.com", group=AUTHORITATIVE)
NS3 = Resolver("192.0.2.55", name="ns3.example.com", group=AUTHORITATIVE)


def soa(server: Resolver, serial: int | None, state: str = "other") -> Answer:
    values = (f"ns1.example.com. hostmaster.example.com. {serial} 7200 900 1209600 600",) if serial is not None else ()
    return Answer(server, PROBE.key, state, 3600 if values else None, values)


def silent(server: Resolver, target: Target, state: str = "timeout", detail: str = "") -> Answer:
    return Answer(server, target.key, state, None, (), detail)


# --------------------------------------------------------------------------- all servers new


def authoritative_all_new(rnd, targets):
    return all_new(views(rnd, targets))


def test_authoritative_all_new():
    a1, a2 = Resolver("192.0.2.53", group="authoritative"), Resolver("192.0.2.54", group="authoritative")
    p = Resolver("192.0.2.1", group="public")
    both = (ans(a1, UPDATE, "new"), ans(a2, UPDATE, "new"), ans(a1, DELETE, "new"), ans(a2, DELETE, "new"), ans(p, UPDATE, "old"))
    assert authoritative_all_new(Round(1, T0, both), [UPDATE, DELETE])
    lagging = both[:1] + (ans(a2, UPDATE, "old"),) + both[2:]
    assert not authoritative_all_new(Round(1, T0, lagging), [UPDATE, DELETE])
    failing = both[:1] + (ans(a2, UPDATE, "timeout"),) + both[2:]
    assert not authoritative_all_new(Round(1, T0, failing), [UPDATE, DELETE])
    assert authoritative_all_new(Round(1, T0, both[:2]), [UPDATE, DELETE]), "each server is judged on what it was asked"
    assert not authoritative_all_new(Round(1, T0, (ans(p, UPDATE, "new"),)), [UPDATE])
    assert not authoritative_all_new(Round(1, T0, ()), [])


# --------------------------------------------------------------------------- one view per server


def test_a_lagging_server_is_named_with_its_serial_and_an_unreachable_one_with_why():
    rnd = Round(1, T0, (
        ans(NS1, UPDATE, "new"), soa(NS1, 8),
        ans(NS2, UPDATE, "old"), soa(NS2, 7),
        silent(NS3, UPDATE, detail="no answer within 2s"), silent(NS3, PROBE),
    ))
    found = views(rnd, [UPDATE])
    assert found == [
        ServerView("ns1.example.com", "192.0.2.53", AUTHORITATIVE, 8, "new", "serves the new data"),
        ServerView("ns2.example.com", "192.0.2.54:5301", AUTHORITATIVE, 7, "lagging", "www.example.com. A: old ['198.51.100.10']"),
        ServerView("ns3.example.com", "192.0.2.55", AUTHORITATIVE, None, "unreachable", "no answer within 2s"),
    ]
    assert describe_lagging(found) == (
        "ns2.example.com (192.0.2.54:5301) serial 7 still serves www.example.com. A: old ['198.51.100.10']; "
        "ns3.example.com (192.0.2.55) is unreachable (no answer within 2s)")
    assert not all_new(found)


def test_an_unreachable_server_without_detail_is_named_by_its_state_and_keeps_a_serial_it_gave():
    rnd = Round(1, T0, (silent(NS1, UPDATE, "refused"), silent(NS1, MAIL, "error"), soa(NS1, 12)))
    (view,) = views(rnd, [UPDATE, MAIL])
    assert (view.state, view.detail, view.serial) == ("unreachable", "refused", 12)
    assert view.label == "ns1.example.com (192.0.2.53) serial 12"


def test_a_server_that_answers_some_records_and_times_out_on_others_is_lagging():
    rnd = Round(1, T0, (ans(NS1, UPDATE, "new"), silent(NS1, MAIL), silent(NS1, DELETE, "servfail")))
    (view,) = views(rnd, [UPDATE, MAIL, DELETE])
    assert view.state == "lagging"
    assert view.detail == "mail.example.com. A: timeout; legacy.example.com. A: servfail"


def test_a_server_that_errs_on_every_record_but_not_by_silence_is_lagging_not_unreachable():
    rnd = Round(1, T0, (silent(NS1, UPDATE, "servfail"), silent(NS1, MAIL, "nodata")))
    assert views(rnd, [UPDATE, MAIL])[0].state == "lagging"


def test_a_server_asked_only_for_its_serial_is_unreachable_for_the_records():
    (view,) = views(Round(1, T0, (soa(NS1, 3),)), [UPDATE])
    assert (view.state, view.detail, view.serial) == ("unreachable", "no answer", 3)


def test_a_serial_that_cannot_be_read_is_none():
    odd = Answer(NS1, PROBE.key, "other", 3600, ("ns1.example.com. hostmaster.example.com.",))
    assert views(Round(1, T0, (ans(NS1, UPDATE, "new"), odd)), [UPDATE])[0].serial is None
    assert views(Round(1, T0, (ans(NS1, UPDATE, "new"), soa(NS1, None, "timeout"))), [UPDATE])[0].serial is None


def test_the_same_name_at_two_addresses_is_two_servers_in_the_order_first_seen():
    v4 = Resolver("192.0.2.53", name="ns1.example.com", group=AUTHORITATIVE)
    v6 = Resolver("2001:db8::53", name="ns1.example.com", group=AUTHORITATIVE)
    rnd = Round(1, T0, (ans(v6, UPDATE, "old"), ans(v4, UPDATE, "new"), soa(v6, 4), soa(v4, 5)))
    found = views(rnd, [UPDATE])
    assert [(v.address, v.state, v.serial) for v in found] == [("[2001:db8::53]", "lagging", 4), ("192.0.2.53", "new", 5)]


def test_the_parent_agrees_too_but_the_old_host_and_resolvers_are_not_asked_to():
    parent = Resolver("192.0.2.100", name="a.gtld", group=PARENT)
    old = Resolver("192.0.2.200", name="ns1.old-host", group=OLD_HOST)
    public = Resolver("192.0.2.1", group="public")
    rnd = Round(1, T0, (ans(NS1, UPDATE, "new"), ans(parent, UPDATE, "new"), ans(old, UPDATE, "old"), ans(public, UPDATE, "old")))
    assert AGREEING == (AUTHORITATIVE, PARENT)
    assert [(v.server, v.group) for v in views(rnd, [UPDATE])] == [("ns1.example.com", AUTHORITATIVE), ("a.gtld", PARENT)]
    assert [v.server for v in views(rnd, [UPDATE], groups=(OLD_HOST,))] == ["ns1.old-host"]


def test_a_server_named_by_its_address_is_not_named_twice():
    bare = Resolver("192.0.2.53", port=5300, group=AUTHORITATIVE)
    (view,) = views(Round(1, T0, (ans(bare, UPDATE, "old"), soa(bare, 9))), [UPDATE])
    assert view.label == "192.0.2.53:5300 serial 9"
    assert view.as_dict() == {"server": "192.0.2.53:5300", "address": "192.0.2.53:5300", "group": AUTHORITATIVE,
                              "serial": 9, "state": "lagging", "detail": "www.example.com. A: old ['198.51.100.10']"}


def test_the_serial_probe_is_never_asked_of_resolvers():
    assert PROBE.key == ("example.com.", "SOA") and PROBE.recursive is False
    assert (PROBE.new, PROBE.old, PROBE.old_ttl_source) == ((), (), "probe")


def test_describe_lagging_says_nothing_of_servers_on_the_new_data():
    new = ServerView("ns1", "192.0.2.53", AUTHORITATIVE, 1, "new", "serves the new data")
    assert describe_lagging([new]) == ""
    assert all_new([new]) and not all_new([])
