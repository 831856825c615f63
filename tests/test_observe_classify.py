"""cutover.observe.classify: one DNS response reduced to a state.

Pure tests: responses are built with dnspython as a resolver (or an authoritative or
parent server) would send them, so the matching, CNAME, negative-TTL, block-page,
authoritative-flag and referral rules are checked without a network.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from cutover.observe.classify import MAX_CNAME_CHAIN, SINKHOLES, classify, read_response
from cutover.observe.types import OLD_HOST, PARENT, Target
from cutover.records import normalise_values
from cutover.resolvers import Resolver

NOERROR, NXDOMAIN, SERVFAIL, REFUSED = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED

UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
CREATE = Target(("new.example.com.", "A"), ("203.0.113.20",), (), 60)
DELETE = Target(("legacy.example.com.", "A"), (), ("198.51.100.30",), 300)
MX = Target(
    ("example.com.", "MX"),
    normalise_values("MX", ["10 mail.example.com.", "20 mail2.example.com."]),
    normalise_values("MX", ["10 mail.old-host.net."]),
    3600,
)
CNAME = Target(("shop.example.com.", "CNAME"), ("new-shop.example.net.",), ("old-shop.example.net.",), 300)

PLAIN = Resolver("192.0.2.1", name="plain", group="public")
FILTER = Resolver("192.0.2.2", name="filter", filtering=True, group="public")
AUTH = Resolver("192.0.2.53", name="ns1", group="authoritative")


# --------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    "target, rcode, values, filtering, state",
    [
        (UPDATE, NOERROR, ["203.0.113.10"], False, "new"),
        (UPDATE, NOERROR, ["198.51.100.10"], False, "old"),
        (UPDATE, NOERROR, ["192.0.2.99"], False, "other"),
        (UPDATE, NOERROR, ["203.0.113.10", "198.51.100.10"], False, "other"),  # half-way mix is neither
        (UPDATE, NOERROR, ["203.0.113.10", "203.0.113.10"], False, "new"),  # duplicates collapse
        (UPDATE, NOERROR, [], False, "nodata"),
        (UPDATE, NXDOMAIN, [], False, "nxdomain"),
        (UPDATE, SERVFAIL, [], False, "servfail"),
        (UPDATE, REFUSED, [], False, "refused"),
        (UPDATE, dns.rcode.FORMERR, [], False, "error"),
        (UPDATE, dns.rcode.NOTIMP, [], False, "error"),
        # created record: empty is the old state, whatever the negative form
        (CREATE, NXDOMAIN, [], False, "old"),
        (CREATE, NOERROR, [], False, "old"),
        (CREATE, NOERROR, ["203.0.113.20"], False, "new"),
        (CREATE, NOERROR, ["203.0.113.21"], False, "other"),
        (CREATE, SERVFAIL, [], False, "servfail"),
        # deleted record: empty is the new state
        (DELETE, NXDOMAIN, [], False, "new"),
        (DELETE, NOERROR, [], False, "new"),
        (DELETE, NOERROR, ["198.51.100.30"], False, "old"),
        (DELETE, NOERROR, ["192.0.2.7"], False, "other"),
        (DELETE, REFUSED, [], False, "refused"),
        # filtering resolvers: a block answer is "filtered", real data still counts
        (UPDATE, NOERROR, ["0.0.0.0"], True, "filtered"),
        (UPDATE, NOERROR, ["146.112.61.106"], True, "filtered"),
        (UPDATE, NXDOMAIN, [], True, "filtered"),
        (UPDATE, NOERROR, [], True, "filtered"),
        (UPDATE, NOERROR, ["203.0.113.10"], True, "new"),
        (UPDATE, NOERROR, ["198.51.100.10"], True, "old"),
        (UPDATE, NOERROR, ["0.0.0.0"], False, "other"),  # only a filtering resolver's 0.0.0.0 is a block
        (UPDATE, NOERROR, ["0.0.0.0", "192.0.2.5"], True, "other"),
        (CREATE, NXDOMAIN, [], True, "old"),  # matching comes before filtering
        (DELETE, NXDOMAIN, [], True, "new"),
        (UPDATE, SERVFAIL, [], True, "servfail"),
        (MX, NOERROR, list(MX.new), False, "new"),
        (MX, NOERROR, list(reversed(MX.new)), False, "new"),  # order does not matter
        (MX, NOERROR, list(MX.old), False, "old"),
        (MX, NOERROR, [MX.new[0]], False, "other"),
        (CNAME, NOERROR, ["new-shop.example.net."], False, "new"),
    ],
)
def test_classify(target, rcode, values, filtering, state):
    assert classify(target, rcode, values, filtering) == state


def test_classify_sinkhole_for_a_record_whose_new_value_is_the_sinkhole():
    odd = Target(("lo.example.com.", "A"), ("127.0.0.1",), ("192.0.2.1",), 60)
    assert classify(odd, NOERROR, ["127.0.0.1"], True) == "new"


# --------------------------------------------------------------------------- reading responses


def response(target: Target, rcode=NOERROR, answer=(), authority=(), aa=False) -> dns.message.Message:
    query = dns.message.make_query(target.name, target.type)
    r = dns.message.make_response(query)
    r.set_rcode(rcode)
    if aa:
        r.flags |= dns.flags.AA
    for name, ttl, rdtype, values in answer:
        r.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, values))
    for name, ttl, rdtype, values in authority:
        r.authority.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, values))
    return r


SOA = ("example.com.", 900, "SOA", ["ns1.example.com. hostmaster.example.com. 1 3600 600 86400 60"])


def test_read_plain_answer_reports_values_and_ttl():
    a = read_response(UPDATE, PLAIN, response(UPDATE, answer=[("www.example.com.", 123, "A", ["203.0.113.10"])]))
    assert (a.state, a.ttl, a.values, a.resolver) == ("new", 123, ("203.0.113.10",), PLAIN)


def test_read_follows_cname_chain_to_the_asked_type():
    r = response(UPDATE, answer=[
        ("www.example.com.", 300, "CNAME", ["edge.cdn.example.net."]),
        ("edge.cdn.example.net.", 60, "CNAME", ["pop1.cdn.example.net."]),
        ("pop1.cdn.example.net.", 20, "A", ["198.51.100.10"]),
    ])
    a = read_response(UPDATE, PLAIN, r)
    assert (a.state, a.values, a.ttl) == ("old", ("198.51.100.10",), 20)


def test_read_ignores_unrelated_rrsets_in_the_answer():
    r = response(UPDATE, answer=[
        ("other.example.com.", 300, "A", ["203.0.113.10"]),
        ("www.example.com.", 300, "A", ["192.0.2.1"]),
    ])
    assert read_response(UPDATE, PLAIN, r).state == "other"


def test_read_cname_target_compares_the_cname_itself():
    r = response(CNAME, answer=[
        ("shop.example.com.", 300, "CNAME", ["New-Shop.Example.NET."]),
        ("new-shop.example.net.", 300, "A", ["203.0.113.5"]),
    ])
    a = read_response(CNAME, PLAIN, r)
    assert (a.state, a.values) == ("new", ("new-shop.example.net.",))


def test_read_cname_chain_ending_in_nothing_is_nodata():
    r = response(UPDATE, answer=[("www.example.com.", 300, "CNAME", ["gone.example.net."])])
    assert read_response(UPDATE, PLAIN, r).state == "nodata"


def test_read_cname_loop_is_malformed():
    r = response(UPDATE, answer=[
        ("www.example.com.", 300, "CNAME", ["a.example.net."]),
        ("a.example.net.", 300, "CNAME", ["www.example.com."]),
    ])
    a = read_response(UPDATE, PLAIN, r)
    assert a.state == "malformed" and "loop" in a.detail


def test_read_negative_answer_ttl_is_min_of_soa_ttl_and_minimum():
    a = read_response(CREATE, PLAIN, response(CREATE, NXDOMAIN, authority=[SOA]))
    assert (a.state, a.ttl, a.values) == ("old", 60, ())
    soa_short = ("example.com.", 5, "SOA", ["ns1.example.com. hostmaster.example.com. 1 3600 600 86400 60"])
    assert read_response(DELETE, PLAIN, response(DELETE, NOERROR, authority=[soa_short])).ttl == 5


def test_read_negative_without_soa_has_no_ttl():
    a = read_response(DELETE, PLAIN, response(DELETE, NXDOMAIN))
    assert (a.state, a.ttl) == ("new", None)


def test_read_servfail_drops_any_data():
    r = response(UPDATE, SERVFAIL, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])])
    a = read_response(UPDATE, PLAIN, r)
    assert (a.state, a.values, a.ttl) == ("servfail", (), None)
    assert "SERVFAIL" in a.detail


def test_read_filtering_resolver_block_page():
    r = response(UPDATE, answer=[("www.example.com.", 10, "A", ["0.0.0.0"])])
    assert read_response(UPDATE, FILTER, r).state == "filtered"
    assert read_response(UPDATE, PLAIN, r).state == "other"


def test_read_authoritative_needs_the_aa_flag():
    r = response(UPDATE, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])])
    assert read_response(UPDATE, AUTH, r).state == "error"
    r.flags |= dns.flags.AA
    assert read_response(UPDATE, AUTH, r).state == "new"


def test_read_values_are_canonicalised():
    r = response(MX, answer=[("example.com.", 300, "MX", ["20 MAIL2.example.com.", "10 Mail.Example.Com."])])
    assert read_response(MX, PLAIN, r).state == "new"


def test_read_tcp_is_noted():
    r = response(UPDATE, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])])
    assert "TCP" in read_response(UPDATE, PLAIN, r, via="tcp").detail


def test_read_authoritative_negative_answer_also_needs_aa():
    r = response(DELETE, NXDOMAIN, authority=[SOA])
    assert read_response(DELETE, AUTH, r).state == "error"
    assert read_response(DELETE, AUTH, response(DELETE, NXDOMAIN, authority=[SOA], aa=True)).state == "new"
    assert read_response(DELETE, AUTH, response(DELETE, REFUSED)).state == "refused"


# --------------------------------------------------------------------------- more limits


def test_the_block_page_addresses_are_the_null_routes_and_opendns_pages():
    assert {"0.0.0.0", "::", "127.0.0.1", "::1", "146.112.61.104", "146.112.61.110", "::ffff:146.112.61.106"} <= SINKHOLES
    assert "146.112.61.103" not in SINKHOLES and "146.112.61.111" not in SINKHOLES


def test_an_ipv6_block_page_from_a_filtering_resolver_is_filtered():
    aaaa = Target(("www.example.com.", "AAAA"), ("2001:db8::10",), ("2001:db8::1",), 300)
    assert classify(aaaa, NOERROR, ["::"], True) == "filtered"
    assert classify(aaaa, NOERROR, ["::ffff:146.112.61.110"], True) == "filtered"


def test_a_cname_chain_at_the_limit_is_followed_and_one_longer_is_malformed():
    def chain(links: int) -> dns.message.Message:
        names = ["www.example.com."] + [f"hop{i}.example.net." for i in range(links)]
        rrsets = [(names[i], 300, "CNAME", [names[i + 1]]) for i in range(links)]
        return response(UPDATE, answer=[*rrsets, (names[-1], 60, "A", ["203.0.113.10"])])

    assert read_response(UPDATE, PLAIN, chain(MAX_CNAME_CHAIN - 1)).state == "new"
    a = read_response(UPDATE, PLAIN, chain(MAX_CNAME_CHAIN))
    assert a.state == "malformed" and a.detail == f"CNAME chain longer than {MAX_CNAME_CHAIN}"


def test_an_error_answer_names_its_rcode_and_a_timing_is_kept():
    a = read_response(UPDATE, PLAIN, response(UPDATE, REFUSED), elapsed=0.25)
    assert (a.state, a.detail, a.elapsed) == ("refused", "rcode REFUSED", 0.25)
    tcp = read_response(UPDATE, PLAIN, response(UPDATE, SERVFAIL), via="tcp")
    assert tcp.detail == "rcode SERVFAIL; via TCP after a truncated UDP answer"


PARENT_NS = Resolver("192.0.2.100", name="a.gtld", group=PARENT)
OLD_NS = Resolver("192.0.2.200", name="ns1.old-host", group=OLD_HOST)
DELEGATION = Target(("example.com.", "NS"), ("ns1.new-host.net.", "ns2.new-host.net."), ("ns1.old-host.net.",), 172800,
                    recursive=False)


def test_a_parent_server_hands_out_the_delegation_in_its_referral():
    """A referral carries no AA flag and no answer: the NS set is in the authority section."""
    r = response(DELEGATION, authority=[("example.com.", 172800, "NS", ["ns1.new-host.net.", "NS2.new-host.NET."])])
    a = read_response(DELEGATION, PARENT_NS, r)
    assert (a.state, a.ttl, a.values) == ("new", 172800, ("ns1.new-host.net.", "ns2.new-host.net."))
    old = response(DELEGATION, authority=[("example.com.", 172800, "NS", ["ns1.old-host.net."])])
    assert read_response(DELEGATION, PARENT_NS, old).state == "old"


def test_a_parent_that_also_serves_the_child_answers_the_delegation_itself():
    r = response(DELEGATION, answer=[("example.com.", 3600, "NS", ["ns1.new-host.net.", "ns2.new-host.net."])], aa=True)
    assert read_response(DELEGATION, PARENT_NS, r).state == "new"


def test_a_parent_asked_for_other_data_needs_the_aa_flag():
    r = response(UPDATE, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])])
    assert read_response(UPDATE, PARENT_NS, r).state == "error"


def test_the_old_host_must_answer_with_authority_even_for_the_ns_set():
    r = response(DELEGATION, answer=[("example.com.", 3600, "NS", ["ns1.old-host.net."])])
    a = read_response(DELEGATION, OLD_NS, r)
    assert a.state == "error" and "not authoritative" in a.detail
    r.flags |= dns.flags.AA
    assert read_response(DELEGATION, OLD_NS, r).state == "old"


def test_a_failing_authoritative_server_is_servfail_not_unauthoritative():
    assert read_response(UPDATE, AUTH, response(UPDATE, SERVFAIL)).state == "servfail"
