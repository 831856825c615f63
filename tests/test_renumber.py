"""Renumbering a zone: the records that move when addresses move (pure)."""

from __future__ import annotations

import pytest

from cutover.records import RecordSet, index
from cutover.renumber import Move, records

MOVES = [Move.parse("198.51.100.10", "203.0.113.10"), Move.parse("2001:db8::10", "2001:db8:1::10")]


def zone(*sets: RecordSet) -> dict:
    return index(sets)


def rs(name: str, rtype: str, *values: str) -> RecordSet:
    return RecordSet.build(name, rtype, 300, values)


def test_addresses_move_and_other_values_stay():
    live = zone(rs("www.example.com.", "A", "198.51.100.10", "198.51.100.11"), rs("www.example.com.", "AAAA", "2001:db8::10"),
                rs("ftp.example.com.", "A", "198.51.100.12"), rs("example.com.", "MX", "10 mail.example.com."))
    assert records(live, MOVES) == [
        {"name": "www.example.com.", "type": "A", "from": ["198.51.100.10", "198.51.100.11"], "to": ["203.0.113.10", "198.51.100.11"]},
        {"name": "www.example.com.", "type": "AAAA", "from": ["2001:db8::10"], "to": ["2001:db8:1::10"]},
    ]


def test_a_value_already_there_is_not_doubled():
    live = zone(rs("www.example.com.", "A", "198.51.100.10", "203.0.113.10"))
    assert records(live, MOVES)[0]["to"] == ["203.0.113.10"]


def test_spf_exact_terms_move_and_covering_networks_gain_the_new_address():
    live = zone(
        rs("example.com.", "TXT", '"v=spf1 ip4:198.51.100.10 include:_spf.example.net -all"', '"google-site-verification=x"'),
        rs("shop.example.com.", "TXT", '"v=spf1 ip4:198.51.100.0/24 ~all"'),
        rs("other.example.com.", "TXT", '"v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.0/24 -all"'),
        rs("plain.example.com.", "TXT", '"hello 198.51.100.10"'),
    )
    found = {r["name"]: r for r in records(live, MOVES)}
    assert sorted(found["example.com."]["to"]) == ['"google-site-verification=x"',
                                                   '"v=spf1 ip4:203.0.113.10 include:_spf.example.net -all"']
    assert found["shop.example.com."]["to"] == ['"v=spf1 ip4:198.51.100.0/24 ip4:203.0.113.10 ~all"']
    assert set(found) == {"example.com.", "shop.example.com."}  # already covered; not SPF


def test_a_long_spf_record_stays_valid_txt():
    long = "v=spf1 ip4:198.51.100.10 " + " ".join(f"include:s{i}.example.net" for i in range(20)) + " -all"
    value = '"' + long[:255] + '" "' + long[255:] + '"'
    (rec,) = records(zone(rs("example.com.", "TXT", value)), MOVES)
    assert all(len(part) <= 257 for part in rec["to"][0].split('" "'))
    assert RecordSet.build("example.com.", "TXT", 300, rec["to"]).values == tuple(rec["to"])


@pytest.mark.parametrize("old, new, words", [
    ("198.51.100.10", "2001:db8::1", "keeps the address family"),
    ("198.51.100.10", "198.51.100.10", "moves to itself"),
    ("mail", "198.51.100.10", "does not appear to be an IPv4 or IPv6 address"),
])
def test_a_bad_move_says_why(old, new, words):
    with pytest.raises(ValueError, match=words):
        Move.parse(old, new)
