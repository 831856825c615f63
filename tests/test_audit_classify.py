"""The audit's classification: a frozen observation in, a status and its reasons out."""

from __future__ import annotations

import pytest

from cutover.audit.classify import DomainResult, Lookup, Observation, Server, ServerCheck, classify

D = "example.com."
OLD = frozenset({"198.51.100.10", "2001:db8::10"})
NEW = frozenset({"203.0.113.10"})
NS1 = Server("ns1.dns.example.", "192.0.2.53")
NS2 = Server("ns2.dns.example.", "192.0.2.54", 5353)


def ok(server: Server = NS1, serial: int = 7) -> ServerCheck:
    return ServerCheck(server, "ok", "", serial)


def a(name: str, *values: str, rtype: str = "A", role: str = "apex", source: str = NS1.label, via: str = "") -> Lookup:
    return Lookup(name, rtype, role, "other" if values else "nodata", tuple(values), source, via)


def observe(*lookups: Lookup, servers=None, **kw) -> DomainResult:
    checks = (ok(),) if servers is None else tuple(servers)
    return classify(Observation(D, ("ns1.dns.example.",), "", checks, tuple(lookups), **kw), OLD, NEW)


def test_moved_when_every_address_that_matters_is_new():
    result = observe(a(D, "203.0.113.10"), a(f"www.{D}", "203.0.113.10", role="www"), a(f"www.{D}", rtype="AAAA"))
    assert result.status == "moved"
    assert result.detail == "on the new address: @ A 203.0.113.10, www A 203.0.113.10"
    assert [r.state for r in result.records] == ["new", "new"]


def test_old_lists_the_records_still_pointing_there():
    result = observe(a(D, "198.51.100.10"), a(f"mail.{D}", "2001:0db8::10", rtype="AAAA", role="mx", via="MX 10 mail.example.com."))
    assert result.status == "old"
    assert result.detail == "still on the old address: @ A 198.51.100.10, mail AAAA 2001:db8::10 (MX host)"


def test_mixed_says_which_is_which_and_other_addresses_do_not_count():
    result = observe(a(D, "203.0.113.10"), a(f"www.{D}", "198.51.100.10", role="www"),
                     a("mx.mailhost.example.", "192.0.2.25", role="mx", source="resolver 127.0.0.1"))
    assert result.status == "mixed"
    assert result.detail == ("old: www A 198.51.100.10; new: @ A 203.0.113.10; "
                             "neither old nor new: mx.mailhost.example. A 192.0.2.25 (MX host)")


def test_one_record_set_holding_both():
    result = observe(a(D, "203.0.113.10", "198.51.100.10"))
    assert result.status == "mixed" and result.records[0].state == "mixed"


def test_elsewhere_says_where_and_a_cname_is_shown_from_its_alias():
    result = observe(a(D, "192.0.2.80"), a("web.host.example.", "192.0.2.81", role="cname",
                                           via=f"CNAME www.{D} -> web.host.example.", source="resolver 127.0.0.1"))
    assert result.status == "elsewhere"
    assert result.detail == "points elsewhere: @ A 192.0.2.80, www CNAME web.host.example. A 192.0.2.81"


def test_no_address_at_all_is_elsewhere_with_the_reason():
    result = observe(a(D), a(f"www.{D}", role="www"))
    assert result.status == "elsewhere"
    assert result.detail.startswith("no address records at the apex, www")


def test_unreachable_without_nameservers():
    result = classify(Observation(D, problem="the domain does not exist (NXDOMAIN from resolver 127.0.0.1)"), OLD, NEW)
    assert (result.status, result.detail) == ("unreachable", "the domain does not exist (NXDOMAIN from resolver 127.0.0.1)")


def test_unreachable_names_every_server_and_why():
    servers = (ServerCheck(NS1, "refused", "rcode REFUSED"), ServerCheck(NS2, "lame"),
               ServerCheck(Server("ns3.dns.example.", "192.0.2.55"), "timeout", "no answer after 3 tries of 2s"),
               ServerCheck(Server("ns4.gone.example.", ""), "no-address", "A: NXDOMAIN, AAAA: NXDOMAIN"))
    result = observe(servers=servers)
    assert result.status == "unreachable"
    assert result.detail == (
        "no authoritative server answers; "
        "ns1.dns.example. (192.0.2.53): REFUSED (lame delegation, or the server refuses queries for the domain); "
        "ns2.dns.example. (192.0.2.54:5353): not authoritative for the domain (lame delegation); "
        "ns3.dns.example. (192.0.2.55): no answer after 3 tries of 2s; "
        "ns4.gone.example.: no address for the server's name: A: NXDOMAIN, AAAA: NXDOMAIN")


def test_a_failing_server_beside_an_answering_one_is_a_note():
    result = observe(a(D, "203.0.113.10"), servers=(ok(), ServerCheck(NS2, "timeout", "no answer after 3 tries of 2s")))
    assert result.status == "moved"
    assert result.detail.endswith("; ns2.dns.example. (192.0.2.54:5353): no answer after 3 tries of 2s")


def test_servers_answering_soa_but_nothing_else_are_unreachable():
    result = observe(Lookup(D, "A", "apex", "timeout", (), NS1.label, "", "no answer"))
    assert result.status == "unreachable"
    assert result.detail.startswith("the servers answer the SOA but no other question; @ A: timeout at ns1.dns.example.")


def test_servers_that_disagree_are_said_and_both_answers_count():
    ns2 = Server("ns2.dns.example.", "192.0.2.54")
    result = observe(a(D, "198.51.100.10"), a(D, "203.0.113.10", source=ns2.label),
                     servers=(ok(NS1, 1), ok(ns2, 2)))
    assert result.status == "mixed"
    assert "the servers disagree: serial 1 at ns1.dns.example. (192.0.2.53), serial 2 at ns2.dns.example. (192.0.2.54)" \
        in result.detail


def test_agreeing_servers_make_one_record_naming_both():
    ns2 = Server("ns2.dns.example.", "192.0.2.54")
    result = observe(a(D, "203.0.113.10"), a(D, "203.0.113.10", source=ns2.label), servers=(ok(NS1), ok(ns2)))
    assert len(result.records) == 1 and result.records[0].sources == (NS1.label, ns2.label)


def test_long_lists_are_shortened():
    lookups = [a(f"h{i}.{D}", "198.51.100.10", role="name") for i in range(9)]
    result = observe(*lookups)
    assert result.detail.endswith("h5 A 198.51.100.10, and 3 more")


@pytest.mark.parametrize("status_lookups", [
    (a(D, "203.0.113.10"),),
    (a(D, "198.51.100.10"), a(f"www.{D}", "192.0.2.1", role="www")),
])
def test_a_result_reads_back_as_it_was_written(status_lookups):
    result = observe(*status_lookups, servers=(ok(), ServerCheck(NS2, "refused", "rcode REFUSED")))
    assert DomainResult.from_dict(result.as_dict()) == result
