"""Answer classification, response reading, round summaries and the round document.

Pure tests: responses are built with dnspython as a resolver would send them, so the
CNAME, negative-TTL and authoritative rules are checked without a network.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from cutover.records import normalise_values
from cutover.resolvers import Resolver
from cutover.observe.authoritative import all_new, views
from cutover.observe.classify import classify, read_response
from cutover.observe.types import Answer, Round, Target, summarise
from tests.observations import round_doc

NOERROR, NXDOMAIN, SERVFAIL, REFUSED = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

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


# --------------------------------------------------------------------------- summaries


def ans(resolver: Resolver, target: Target, state: str, ttl: int | None = 300) -> Answer:
    values = {"new": target.new, "old": target.old}.get(state, ())
    return Answer(resolver, target.key, state, ttl, values)


def resolvers(n: int, **kw) -> list[Resolver]:
    return [Resolver(f"192.0.2.{i + 10}", name=f"r{i}", group=kw.pop("group", "public"), **kw) for i in range(n)]


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


# --------------------------------------------------------------------------- the round document


def sample_round():
    rs = resolvers(4)
    auth = Resolver("192.0.2.53", name="ns1", group="authoritative")
    answers = (ans(rs[0], UPDATE, "new", 250), ans(rs[1], UPDATE, "old", 3600), ans(rs[2], UPDATE, "timeout", None),
               ans(rs[3], UPDATE, "new", 100), ans(auth, UPDATE, "new", 300))
    return Round(7, T0 + timedelta(minutes=30), answers)


def test_round_document_has_the_contract_shape():
    rnd = sample_round()
    doc = json.loads(json.dumps(round_doc(rnd, [UPDATE], change=T0, period=86400)))
    assert doc["round"] == 7 and doc["time"] == "2024-05-01T12:30:00.000Z"
    (rec,) = doc["records"]
    assert (rec["name"], rec["type"]) == ("www.example.com.", "A")
    assert {k: rec["counts"][k] for k in ("new", "old", "other", "error")} == {"new": 2, "old": 1, "other": 0, "error": 1}
    assert rec["share"] == pytest.approx(2 / 3)
    assert [a["state"] for a in rec["answers"]] == ["new", "old", "timeout", "new"]
    assert all({"resolver", "state", "ttl"} <= set(a) for a in rec["answers"])
    assert [a["stale"] for a in rec["answers"]] == [False, True, False, False]
    assert rec["answers"][1]["ttl"] == 3600
    assert rec["authoritative"]["all_new"] and len(rec["authoritative"]["answers"]) == 1
    v = doc["verdict"]
    assert v["retire"] is False and v["missing"] == ["propagation", "parallel_period"] and v["earliest"] is None
    assert [c["name"] for c in v["conditions"]] == ["propagation", "quorum", "authoritative", "left_behind", "ttl", "parallel_period"]
    assert doc["authoritative"]["all_new"] is True
    assert doc["authoritative"]["servers"] == [{"server": "ns1", "address": "192.0.2.53", "group": "authoritative",
                                                "serial": None, "state": "new", "detail": "serves the new data"}]
    assert rec["old_ttl_source"] == "journal" and rec["resolvers_asked"] is True


def test_round_document_share_is_zero_not_null_when_nobody_answered():
    rs = resolvers(2)
    rnd = Round(1, T0, tuple(ans(r, UPDATE, "timeout", None) for r in rs))
    rec = round_doc(rnd, [UPDATE], change=None, threshold=0.0, ttl=0, period=0)["records"][0]
    assert rec["share"] == 0.0 and rec["answering"] == 0


def test_read_authoritative_negative_answer_also_needs_aa():
    r = response(DELETE, NXDOMAIN, authority=[SOA])
    assert read_response(DELETE, AUTH, r).state == "error"
    assert read_response(DELETE, AUTH, response(DELETE, NXDOMAIN, authority=[SOA], aa=True)).state == "new"
    assert read_response(DELETE, AUTH, response(DELETE, REFUSED)).state == "refused"


def test_query_round_edges():
    import asyncio

    from cutover.observe.engine import query_round

    assert asyncio.run(query_round([], [PLAIN], timeout=1.0)) == []
    assert asyncio.run(query_round([UPDATE], [], timeout=1.0)) == []
    with pytest.raises(ValueError):
        asyncio.run(query_round([UPDATE], [PLAIN], timeout=0))
