"""cutover.conflicts: planned changes that clash with live records outside the plan.

A CNAME beside other data (RFC 1034 3.6.2) and an MX or SRV whose target is a CNAME
(RFC 2181 10.3) are found against the zone as it will be after the change: what the
plan deletes no longer clashes, what it creates does.
"""

from __future__ import annotations

from cutover.conflicts import COMMON_TYPES, find, keys_to_read
from cutover.records import Change, RecordSet, index

ZONE = "example.com."
MAIL_A = RecordSet.build("mail.example.com.", "A", 300, ["192.0.2.25"])
MAIL_MX = RecordSet.build("mail.example.com.", "MX", 300, ["10 mx.example.net."])
MX_ALIAS = RecordSet.build("mx.example.com.", "CNAME", 300, ["mail.example.net."])
MAIL_CNAME = RecordSet.build("mail.example.com.", "CNAME", 300, ["mail.example.net."])
RRSIG = RecordSet.build("mail.example.com.", "RRSIG", 300, ["CNAME 8 3 300 20300101000000 20200101000000 12345 example.com. AAAA"])


def create(rs: RecordSet) -> Change:
    return Change(None, rs)


def delete(rs: RecordSet) -> Change:
    return Change(rs, None)


def messages(changes, live) -> list[tuple[tuple[str, str], str]]:
    return [(c.key, c.message) for c in find(changes, index(live), ZONE)]


# --------------------------------------------------------------------------- a CNAME beside other data


def test_a_cname_created_beside_live_data_names_every_other_type():
    assert messages([create(MAIL_CNAME)], [MAIL_A, MAIL_MX]) == [(
        ("mail.example.com.", "CNAME"),
        "mail CNAME: the zone also holds A, MX at this name, which the plan does not delete; a CNAME cannot share "
        "its name with other data (RFC 1034 3.6.2): add those record sets to the plan with `to: []`",
    )]


def test_a_cname_beside_data_the_plan_deletes_is_no_conflict():
    assert messages([delete(MAIL_A), create(MAIL_CNAME)], [MAIL_A]) == []
    assert messages([create(MAIL_CNAME), delete(MAIL_A)], [MAIL_A]) == []  # order in the plan does not matter


def test_dnssec_records_may_stand_beside_a_cname():
    assert messages([create(MAIL_CNAME)], [RRSIG]) == []


def test_a_cname_replacing_a_cname_is_no_conflict():
    old = RecordSet.build("mail.example.com.", "CNAME", 300, ["old.example.net."])
    assert messages([Change(old, MAIL_CNAME)], [old]) == []


def test_data_created_at_a_live_cname_is_a_conflict():
    a = RecordSet.build("mx.example.com.", "A", 300, ["192.0.2.9"])
    assert messages([create(a)], [MX_ALIAS]) == [(
        ("mx.example.com.", "A"),
        "mx A: the name is a CNAME in the zone (mail.example.net.); a CNAME cannot share its name with other data "
        "(RFC 1034 3.6.2): delete the CNAME in the plan, or choose another name",
    )]
    assert messages([delete(MX_ALIAS), create(a)], [MX_ALIAS]) == []


def test_a_deleted_record_set_clashes_with_nothing():
    assert messages([delete(MAIL_A)], [MAIL_A, MAIL_CNAME]) == []


# --------------------------------------------------------------------------- an MX or SRV at a CNAME


def test_an_mx_at_a_live_cname_is_a_conflict_at_the_apex():
    mx = RecordSet.build("example.com.", "MX", 300, ["10 MX.Example.COM.", "20 mx2.example.net."])
    assert messages([create(mx)], [MX_ALIAS]) == [(
        ("example.com.", "MX"),
        "@ MX: the target mx.example.com. is a CNAME (to mail.example.net.); MX must point at a name with address "
        "records (RFC 2181 10.3): point it at the CNAME's target instead",
    )]


def test_an_srv_at_a_cname_is_a_conflict():
    srv = RecordSet.build("_sip._tcp.example.com.", "SRV", 300, ["10 5 5060 mx.example.com."])
    found = messages([create(srv)], [MX_ALIAS])
    assert [key for key, _ in found] == [("_sip._tcp.example.com.", "SRV")]
    assert found[0][1].startswith("_sip._tcp SRV: the target mx.example.com. is a CNAME (to mail.example.net.); SRV must")


def test_an_mx_at_a_cname_the_same_plan_creates_is_a_conflict():
    mx = RecordSet.build("example.com.", "MX", 300, ["10 mail.example.com."])
    assert [key for key, _ in messages([create(mx), create(MAIL_CNAME)], [])] == [("example.com.", "MX")]


def test_each_target_at_a_cname_is_named():
    other = RecordSet.build("mx2.example.com.", "CNAME", 300, ["mail2.example.net."])
    mx = RecordSet.build("example.com.", "MX", 300, ["10 mx.example.com.", "20 mx2.example.com."])
    assert len(messages([create(mx)], [MX_ALIAS, other])) == 2


def test_an_mx_whose_cname_target_the_plan_deletes_is_no_conflict():
    mx = RecordSet.build("example.com.", "MX", 300, ["10 mx.example.com."])
    assert messages([create(mx), delete(MX_ALIAS)], [MX_ALIAS]) == []


def test_a_null_mx_points_nowhere():
    null = RecordSet.build("example.com.", "MX", 300, ["0 ."])
    assert messages([create(null)], [MX_ALIAS]) == []


# --------------------------------------------------------------------------- what a provider must read


def test_keys_to_read_cover_every_clash_find_can_see():
    mx = RecordSet.build("example.com.", "MX", 300, ["10 mx.example.com.", "20 mx.example.com.", "0 ."])
    a = RecordSet.build("www.example.com.", "A", 300, ["192.0.2.1"])
    keys = keys_to_read([create(MAIL_CNAME), create(mx), create(a), delete(MAIL_A)])
    assert keys == [
        *[("mail.example.com.", t) for t in COMMON_TYPES],
        ("example.com.", "CNAME"), ("mx.example.com.", "CNAME"),
        ("www.example.com.", "CNAME"),
    ]
    assert len(keys) == len(set(keys))


def test_keys_to_read_ignores_deletions():
    assert keys_to_read([delete(MAIL_A), delete(MAIL_CNAME)]) == []
