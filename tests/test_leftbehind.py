"""Records left behind on the old server: which record sets, and why (issue 13)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from cutover import leftbehind
from cutover.leftbehind import LeftBehind, find, old_addresses, parse_ignore, spf_pass_networks
from cutover.records import Change, RecordSet, index

OLD4, NEW4 = "198.51.100.10", "203.0.113.10"
OLD6, NEW6 = "2001:db8::10", "2001:db8:ffff::10"
Z = "example.com."


def rs(name: str, type_: str, *values: str, ttl: int = 3600) -> RecordSet:
    return RecordSet.build(name if name.endswith(".") else f"{name}.{Z}", type_, ttl, values)


def move(before: RecordSet | None, *to: str) -> Change:
    """The change from ``before`` to ``to`` (no values: a deletion)."""
    after = RecordSet.build(before.name, before.type, 300, to) if to else None
    return Change(before=before, after=after)


def by_key(found: list[LeftBehind]) -> dict[tuple[str, str], LeftBehind]:
    return {lb.key: lb for lb in found}


def key(name: str, type_: str) -> tuple[str, str]:
    return (name if name.endswith(".") else f"{name}.{Z}", type_)


def realistic_zone() -> dict:
    """A small business zone: web and mail on one old server, some things elsewhere."""
    return index([
        rs(Z, "SOA", "ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300"),
        rs(Z, "NS", "ns1.example.com.", "ns2.dns-host.net."),
        rs("ns1", "A", "192.0.2.53"),
        rs(Z, "A", OLD4),                                      # apex: same server as www
        rs("www", "A", OLD4),                                  # the plan moves this one
        rs("www", "AAAA", OLD6),                               # ...and forgets this one
        rs("api", "AAAA", OLD6),                               # another name on the old IPv6
        rs("mail", "A", OLD4),
        rs(Z, "MX", "10 mail.example.com.", "20 mx.backup-provider.net."),
        rs("_submission._tcp", "SRV", "0 1 587 mail.example.com."),
        rs("shop", "CNAME", "www.example.com."),               # www's AAAA is left behind
        rs("legacy-ftp", "A", OLD4),
        rs("ftp", "CNAME", "legacy-ftp.example.com."),
        rs("blog", "A", NEW4),                                 # already on the new server
        rs("status", "A", "192.0.2.80"),                       # elsewhere
        rs("docs", "CNAME", "docs.saas-host.net."),
        rs(Z, "TXT", "v=spf1 mx ip4:198.51.100.0/24 -all", "google-site-verification=abc123"),
        rs("_spf", "TXT", "v=spf1 ip4:198.51.100.10/32 ip4:203.0.113.10 -all"),
        rs("bulk", "TXT", f"v=spf1 ip6:2001:db8::/64 -ip4:{OLD4} -all"),
        rs("deny", "TXT", f"v=spf1 -ip4:{OLD4} ~ip4:198.51.100.0/24 ?ip4:{OLD4} ip4:192.0.2.0/24 -all"),
    ])


PLAN_KEYS = [key("www", "A")]


# --------------------------------------------------------------------------- old addresses


def test_old_addresses_are_removed_values_not_moved_to_by_any_change():
    a = ipaddress.ip_address
    changes = [
        move(rs("www", "A", OLD4, "198.51.100.11"), "198.51.100.11", NEW4),  # .10 leaves, .11 stays
        move(rs("gone", "AAAA", OLD6)),                                      # a deletion leaves all
        move(rs("swap1", "A", "192.0.2.1"), "192.0.2.2"),                    # a swap leaves nothing
        move(rs("swap2", "A", "192.0.2.2"), "192.0.2.1"),
        Change(before=None, after=rs("new", "A", "192.0.2.9")),              # a create leaves nothing
        Change(before=rs("ttl", "A", "192.0.2.7"), after=rs("ttl", "A", "192.0.2.7", ttl=60)),
        move(rs("www", "MX", "10 mail.example.com."), "10 mx.example.net."),  # not an address
    ]
    assert old_addresses(changes) == frozenset({a(OLD4), a(OLD6)})
    assert old_addresses([]) == frozenset()


# --------------------------------------------------------------------------- the realistic zone


def test_realistic_zone_names_everything_left_on_the_old_server():
    zone = realistic_zone()
    found = find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS)
    kinds = {lb.key: lb.kind for lb in found}
    assert kinds == {
        key(Z, "A"): "address",
        key(Z, "MX"): "target",
        key(Z, "TXT"): "spf",
        key("_submission._tcp", "SRV"): "target",
        key("api", "AAAA"): "address",
        key("bulk", "TXT"): "spf",
        key("ftp", "CNAME"): "target",
        key("legacy-ftp", "A"): "address",
        key("mail", "A"): "address",
        key("shop", "CNAME"): "target",
        key("www", "AAAA"): "same-name",
    }
    assert [lb.key for lb in found] == sorted(kinds)  # deterministic order: by key
    got = by_key(found)
    assert got[key(Z, "MX")].values == ("10 mail.example.com.",)  # not the backup MX
    assert got[key(Z, "TXT")].values == ('"v=spf1 mx ip4:198.51.100.0/24 -all"',)  # not the site verification


def test_same_name_aaaa_reason_says_what_moves_and_what_it_means():
    zone = realistic_zone()
    got = by_key(find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS))
    aaaa = got[key("www", "AAAA")]
    assert aaaa.values == (OLD6,)
    assert aaaa.reason.startswith(
        f"www.example.com. AAAA {OLD6}: the same name's A moves from {OLD4} to {NEW4}; "
        "this AAAA still sends IPv6 clients to the old server")
    assert "retire.ignore" in aaaa.reason
    # its address is the old server's too: another name holding it is found, and says why
    api = got[key("api", "AAAA")].reason
    assert api.startswith(f"api.example.com. AAAA {OLD6}: the address of www.example.com. AAAA, left on the old server")
    assert api.endswith("this AAAA still sends clients to the old server")
    assert got[key("bulk", "TXT")].reason.count("the plan names no address in its place") == 1


def test_address_reasons_name_the_change_and_spf_reasons_name_the_term_and_the_fix():
    zone = realistic_zone()
    got = by_key(find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS))
    assert got[key("mail", "A")].reason == (
        f"mail.example.com. A {OLD4}: www.example.com. A moves from {OLD4} to {NEW4}; "
        "this A still sends clients to the old server")
    spf = got[key(Z, "TXT")].reason
    assert f"ip4:198.51.100.0/24 authorises {OLD4}" in spf
    assert f"but not {NEW4}; add ip4:{NEW4} so mail from the new server passes SPF" in spf
    assert got[key(Z, "MX")].reason == (
        f"example.com. MX 10 mail.example.com.: its target mail.example.com. still points at the old server "
        f"(mail.example.com. A {OLD4})")
    assert "www.example.com. AAAA" in got[key("shop", "CNAME")].reason


def test_unrelated_new_and_denying_records_are_not_reported():
    zone = realistic_zone()
    keys = {lb.key for lb in find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS)}
    for quiet in [("blog", "A"), ("status", "A"), ("docs", "CNAME"), ("ns1", "A"), (Z, "NS"),
                  ("_spf", "TXT"), ("deny", "TXT"), ("www", "A"), (Z, "SOA")]:
        assert key(*quiet) not in keys


def test_a_plan_that_moves_every_old_record_leaves_nothing_behind():
    zone = realistic_zone()
    moves = {key("www", "A"): NEW4, key("www", "AAAA"): NEW6, key("api", "AAAA"): NEW6,
             key(Z, "A"): NEW4, key("mail", "A"): NEW4, key("legacy-ftp", "A"): NEW4}
    changes = [move(zone[k], v) for k, v in moves.items()]
    changes.append(move(zone[key(Z, "TXT")], f"v=spf1 mx ip4:198.51.100.0/24 ip4:{NEW4} -all",
                        "google-site-verification=abc123"))
    changes.append(move(zone[key("bulk", "TXT")], "v=spf1 ip6:2001:db8::/32 -all"))  # covers NEW6
    assert find(changes, zone, managed=[c.key for c in changes]) == []


def test_moving_both_a_and_aaaa_of_www_leaves_nothing_in_a_small_zone():
    zone = index([rs("www", "A", OLD4), rs("www", "AAAA", OLD6), rs(Z, "MX", "10 www.example.com."),
                  rs(Z, "TXT", f"v=spf1 ip4:{OLD4} ip4:{NEW4} ip6:{OLD6} ip6:{NEW6} -all")])
    changes = [move(zone[key("www", "A")], NEW4), move(zone[key("www", "AAAA")], NEW6)]
    assert find(changes, zone, managed=[c.key for c in changes]) == []


# --------------------------------------------------------------------------- the same-name rule


def test_moving_the_aaaa_leaves_the_a_behind_and_other_names_on_its_ipv4():
    zone = index([rs("www", "A", OLD4), rs("www", "AAAA", OLD6), rs("old", "A", OLD4)])
    got = by_key(find([move(zone[key("www", "AAAA")], NEW6)], zone, managed=[key("www", "AAAA")]))
    assert got[key("www", "A")].kind == "same-name"
    assert "this A still sends IPv4 clients to the old server" in got[key("www", "A")].reason
    assert got[key("old", "A")].kind == "address"


def test_deleting_the_a_also_leaves_the_aaaa_behind():
    zone = index([rs("www", "A", OLD4), rs("www", "AAAA", OLD6)])
    got = find([move(zone[key("www", "A")])], zone, managed=[key("www", "A")])
    assert [lb.kind for lb in got] == ["same-name"]
    assert f"the same name's A ({OLD4}) is deleted" in got[0].reason


def test_same_name_rule_needs_a_move_away_from_an_address():
    zone = index([rs("www", "AAAA", OLD6), rs("ttl", "A", OLD4), rs("ttl", "AAAA", OLD6)])
    create = Change(before=None, after=rs("www", "A", NEW4))
    ttl_only = Change(before=zone[key("ttl", "A")], after=rs("ttl", "A", OLD4, ttl=60))
    assert find([create, ttl_only], zone, managed=[key("www", "A"), key("ttl", "A")]) == []


def test_same_name_aaaa_already_on_an_address_the_plan_uses_is_not_reported():
    zone = index([rs("www", "A", OLD4), rs("www", "AAAA", NEW6), rs("new6", "AAAA", "2001:db8::99")])
    changes = [move(zone[key("www", "A")], NEW4), move(zone[key("new6", "AAAA")], NEW6)]
    assert find(changes, zone, managed=[c.key for c in changes]) == []


def test_same_name_aaaa_in_the_plan_unchanged_is_not_reported():
    zone = index([rs("www", "A", OLD4), rs("www", "AAAA", OLD6)])
    managed = [key("www", "A"), key("www", "AAAA")]
    assert find([move(zone[key("www", "A")], NEW4)], zone, managed=managed) == []


# --------------------------------------------------------------------------- deletions, swaps, kept addresses


def test_a_deletion_moves_away_from_all_its_values():
    zone = index([rs("old", "A", OLD4, "198.51.100.11"), rs("other", "A", "198.51.100.11", "192.0.2.1"),
                  rs(Z, "TXT", "v=spf1 ip4:198.51.100.11 ip4:192.0.2.1 -all")])
    got = by_key(find([move(zone[key("old", "A")])], zone, managed=[key("old", "A")]))
    assert got[key("other", "A")].values == ("198.51.100.11",)  # only the offending value
    assert "old.example.com. A (198.51.100.10, 198.51.100.11) is deleted" in got[key("other", "A")].reason
    spf = got[key(Z, "TXT")].reason
    assert "ip4:198.51.100.11 authorises 198.51.100.11" in spf and "the plan names no address in its place" in spf


def test_addresses_the_plan_keeps_using_are_not_the_old_servers():
    zone = index([rs("www", "A", OLD4), rs("mail", "A", OLD4), rs("ftp", "A", OLD4),
                  rs("a", "A", "192.0.2.1"), rs("b", "A", "192.0.2.2"), rs("c", "A", "192.0.2.2")])
    # the plan keeps mail on the old server (listed, unchanged): that server is not going away
    assert find([move(zone[key("www", "A")], NEW4)], zone, managed=[key("www", "A"), key("mail", "A")]) == []
    # a swap moves away from nothing
    swap = [move(zone[key("a", "A")], "192.0.2.2"), move(zone[key("b", "A")], "192.0.2.1")]
    assert find(swap, zone, managed=[c.key for c in swap]) == []


def test_a_partial_zone_is_fine():
    """A DNS-query provider may read only some names; keys it did not read are simply absent."""
    zone = index([rs("www", "A", OLD4)])
    changes = [move(zone[key("www", "A")], NEW4)]
    assert find(changes, zone, managed=[key("www", "A"), key("mail", "A"), key("www", "AAAA")]) == []


# --------------------------------------------------------------------------- names pointing at names


def test_cname_chains_are_followed_and_loops_end():
    zone = index([
        rs("www", "A", OLD4), rs("legacy", "A", OLD4),
        rs("a", "CNAME", "legacy.example.com."), rs("b", "CNAME", "a.example.com."),
        rs(Z, "MX", "10 b.example.com."),                                 # MX to a CNAME: still found
        rs("loop1", "CNAME", "loop2.example.com."), rs("loop2", "CNAME", "loop1.example.com."),
        rs("into", "CNAME", "loop1.example.com."),
        rs("sub", "NS", "legacy.example.com.", "ns.elsewhere.net."),
    ])
    got = by_key(find([move(zone[key("www", "A")], NEW4)], zone, managed=[key("www", "A")]))
    assert set(got) == {key("legacy", "A"), key("a", "CNAME"), key("b", "CNAME"), key(Z, "MX"), key("sub", "NS")}
    assert "a.example.com. CNAME legacy.example.com." in got[key("b", "CNAME")].reason
    assert got[key("sub", "NS")].values == ("legacy.example.com.",)


def test_managed_referrers_are_not_reported_and_do_not_lead_further():
    zone = index([rs("www", "A", OLD4), rs("legacy", "A", OLD4),
                  rs("a", "CNAME", "legacy.example.com."), rs("b", "CNAME", "a.example.com.")])
    managed = [key("www", "A"), key("a", "CNAME")]
    got = find([move(zone[key("www", "A")], NEW4)], zone, managed=managed)
    assert [lb.key for lb in got] == [key("legacy", "A")]


# --------------------------------------------------------------------------- retire.ignore


def test_ignored_record_sets_are_not_reported_but_still_count():
    zone = realistic_zone()
    ignore = [key("legacy-ftp", "A"), key("www", "AAAA")]
    got = by_key(find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS, ignore=ignore))
    assert not set(ignore) & set(got)
    # names pointing at an acknowledged record set are still on the old server, and the reason says so
    assert "acknowledged in retire.ignore" in got[key("ftp", "CNAME")].reason
    assert "acknowledged in retire.ignore" in got[key("shop", "CNAME")].reason
    # an acknowledged same-name AAAA still makes its address the old server's
    assert key("api", "AAAA") in got and key("bulk", "TXT") in got
    everything = ignore + list(got)
    assert find([move(zone[key("www", "A")], NEW4)], zone, managed=PLAN_KEYS, ignore=everything) == []


@pytest.mark.parametrize("text, expected", [
    ("legacy-ftp A", ("legacy-ftp.example.com.", "A")),
    ("@ MX", ("example.com.", "MX")),
    ("mail.example.com. a", ("mail.example.com.", "A")),
    ("  _dmarc   txt ", ("_dmarc.example.com.", "TXT")),
    ("WWW.Example.COM. AAAA", ("www.example.com.", "AAAA")),
    ("example.com. NS", ("example.com.", "NS")),
])
def test_parse_ignore(text, expected):
    assert parse_ignore(text, "example.com") == expected
    assert parse_ignore(text, "Example.com.") == expected


@pytest.mark.parametrize("text, message", [
    ("legacy-ftp", "is not a record set (expected 'NAME TYPE'"),
    ("legacy-ftp A extra", "is not a record set"),
    ("", "is not a record set"),
    ("legacy-ftp AX", "'AX' is not a DNS record type"),
    ("legacy-ftp ANY", "is a query type"),
    ("mail.example.com A", "relative, so it means mail.example.com.example.com.; write mail.example.com. "),
    ("mail.other.org. A", "mail.other.org. is outside the zone example.com."),
    ("a..b A", "is not a domain name"),
])
def test_parse_ignore_refuses_with_a_clear_message(text, message):
    with pytest.raises(ValueError) as exc:
        parse_ignore(text, "example.com")
    assert message in str(exc.value)


def test_parse_ignore_refuses_a_non_string():
    with pytest.raises(ValueError, match="is not a record set"):
        parse_ignore(42, "example.com")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SPF terms


def test_spf_pass_networks_reads_ip_terms_with_qualifiers_and_prefixes():
    nets = spf_pass_networks(
        "v=spf1 ip4:198.51.100.0/24 +ip4:203.0.113.10 IP6:2001:DB8::/32 -ip4:192.0.2.1 ~ip4:192.0.2.2 "
        "?ip6:2001:db8::1 ip4:10.0.0.1/33 ip4:2001:db8::1 ip6:192.0.2.3 ip4:bogus mx a:x.example.com -all")
    assert [(term, str(net)) for term, net in nets] == [
        ("ip4:198.51.100.0/24", "198.51.100.0/24"),
        ("+ip4:203.0.113.10", "203.0.113.10/32"),
        ("IP6:2001:DB8::/32", "2001:db8::/32"),
    ]
    assert spf_pass_networks("v=spf10 ip4:192.0.2.1") == []
    assert spf_pass_networks("google-site-verification=ip4:192.0.2.1") == []
    assert spf_pass_networks("") == []
    assert [str(n) for _, n in spf_pass_networks("V=SPF1 ip4:192.0.2.1/32")] == ["192.0.2.1/32"]
    # a host address with a prefix is accepted as the network it lies in
    assert [str(n) for _, n in spf_pass_networks("v=spf1 ip4:198.51.100.10/24")] == ["198.51.100.0/24"]


def test_spf_strings_are_joined_without_spaces_and_multiple_spf_values_are_checked():
    zone = index([
        rs("www", "A", OLD4),
        RecordSet.build(Z, "TXT", 300, ['"v=spf1 ip4:198.51." "100.0/24 -all"']),  # one term split in two
        RecordSet.build("two.example.com.", "TXT", 300, [f"v=spf1 ip4:{OLD4} -all", f"v=spf1 ip4:{OLD4}/32 ~all"]),
        RecordSet.build("old.example.com.", "SPF", 300, [f"v=spf1 ip4:{OLD4} -all"]),
    ])
    got = by_key(find([move(zone[key("www", "A")], NEW4)], zone, managed=[key("www", "A")]))
    assert set(got) == {key(Z, "TXT"), key("two", "TXT"), key("old", "SPF")}
    assert len(got[key("two", "TXT")].values) == 2
    assert "ip4:198.51.100.0/24 authorises" in got[key(Z, "TXT")].reason


def test_spf_already_authorising_every_new_address_is_not_reported():
    zone = index([rs("www", "A", OLD4, "198.51.100.11"),
                  rs(Z, "TXT", f"v=spf1 ip4:198.51.100.0/24 ip4:{NEW4} -all"),
                  rs("half", "TXT", f"v=spf1 ip4:198.51.100.0/24 ip4:{NEW4} -all")])
    # the new set has two addresses; "half" is checked against both
    change = move(zone[key("www", "A")], NEW4, "203.0.113.11")
    got = by_key(find([change], zone, managed=[key("www", "A")]))
    assert set(got) == {key(Z, "TXT"), key("half", "TXT")}
    assert "but not 203.0.113.11; add ip4:203.0.113.11" in got[key("half", "TXT")].reason
    # moving within the authorised /24 needs nothing
    assert find([move(zone[key("www", "A")], "198.51.100.20")], zone, managed=[key("www", "A")]) == []


def test_spf_must_authorise_every_address_that_replaces_an_old_one():
    zone = index([rs("www", "A", OLD4), rs("mail", "A", OLD4),
                  rs(Z, "TXT", f"v=spf1 ip4:{OLD4} ip4:{NEW4} -all")])
    changes = [move(zone[key("www", "A")], NEW4), move(zone[key("mail", "A")], "203.0.113.25")]
    (lb,) = find(changes, zone, managed=[c.key for c in changes])
    assert lb.key == key(Z, "TXT") and "but not 203.0.113.25; add ip4:203.0.113.25" in lb.reason
    assert "mail.example.com. A moves" in lb.reason  # the first change by key explains the address


def test_spf_ip6_terms_cover_moved_ipv6_addresses():
    zone = index([rs("www", "AAAA", OLD6), rs(Z, "TXT", "v=spf1 ip6:2001:db8::/48 -all")])
    got = find([move(zone[key("www", "AAAA")], NEW6)], zone, managed=[key("www", "AAAA")])
    assert [lb.kind for lb in got] == ["spf"]
    assert f"add ip6:{NEW6}" in got[0].reason


# --------------------------------------------------------------------------- values and order


def test_as_dict_is_the_round_document_shape():
    zone = index([rs("www", "A", OLD4), rs("ftp", "A", OLD4, "192.0.2.1")])
    (lb,) = find([move(zone[key("www", "A")], NEW4)], zone, managed=[key("www", "A")])
    assert lb.as_dict() == {"name": "ftp.example.com.", "type": "A", "values": [OLD4], "reason": lb.reason, "kind": "address"}


def test_result_does_not_depend_on_input_order():
    zone = realistic_zone()
    changes = [move(zone[key("www", "A")], NEW4), move(zone[key("mail", "A")], NEW4)]
    managed = [key("www", "A"), key("mail", "A")]
    first = find(changes, zone, managed=managed)
    again = find(changes[::-1], dict(reversed(list(zone.items()))), managed=managed[::-1])
    assert first == again and first


def test_a_big_zone_with_a_long_cname_chain_is_quick():
    records = [rs("www", "A", OLD4), rs("legacy", "A", OLD4), rs("c0", "CNAME", "legacy.example.com.")]
    records += [rs(f"c{i}", "CNAME", f"c{i - 1}.example.com.") for i in range(1, 3000)]
    records += [rs(f"h{i}", "A", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(20000)]
    zone = index(records)
    start = time.monotonic()
    found = find([move(zone[key("www", "A")], NEW4)], zone, managed=[key("www", "A")])
    assert len(found) == 3001
    assert time.monotonic() - start < 10


def test_module_is_pure():
    """No I/O: the module imports nothing that reads files, sockets or the clock."""
    source = open(leftbehind.__file__, encoding="utf-8").read()
    for word in ("import socket", "dns.resolver", "dns.query", "open(", "import time", "import os"):
        assert word not in source
