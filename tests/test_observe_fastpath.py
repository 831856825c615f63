"""cutover.observe.fastpath: the common reply read without dnspython, never differently.

The reference is what the engine did before the fast path, and still does whenever the
fast path declines: ``dns.message.from_wire``, the query's ``is_response``, the TC bit,
then ``classify.read_response``. For every reply here, synthetic or hostile, the fast
path must either decline (``None``) or give exactly the reference's ``Answer``; for the
common shapes it must not decline. Real servers' replies are in
tests/integration/test_engine_fastpath.py.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from cutover.observe import fastpath
from cutover.observe.classify import read_response
from cutover.observe.wire import PAYLOAD, query_tail
from cutover.observe.types import Target
from cutover.resolvers import Resolver

UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
CREATE = Target(("new.example.com.", "A"), ("203.0.113.20",), (), 60)
DELETE = Target(("legacy.example.com.", "A"), (), ("198.51.100.30",), 300)
SIX = Target(("www.example.com.", "AAAA"), ("2001:db8::10",), ("2001:db8::1",), 300)
MX = Target(("example.com.", "MX"), ("10 mail.example.com.",), (), 300)
TARGETS = [UPDATE, CREATE, DELETE, SIX]

PLAIN = Resolver("192.0.2.1", name="plain", group="public")
FILTER = Resolver("192.0.2.2", name="filter", filtering=True, group="public")
AUTH = Resolver("192.0.2.53", name="ns1", group="authoritative")
RESOLVERS = [PLAIN, FILTER, AUTH]

SOA_TEXT = "ns1.example.com. hostmaster.example.com. 1 3600 600 86400 60"


def query_for(target: Target, resolver: Resolver, qid: int = 0x1234) -> dns.message.Message:
    recursive = resolver.group != "authoritative"
    message = dns.message.make_query(target.name, target.type, use_edns=0, payload=PAYLOAD)
    if not recursive:
        message.flags &= ~dns.flags.RD
    message.id = qid
    return message


def reference(wire: bytes, target: Target, resolver: Resolver) -> object:
    """What the engine makes of a reply from the right source with the right id, by dnspython."""
    query = query_for(target, resolver)
    try:
        response = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        return f"unparseable ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - the engine reports these as unexpected failures
        return f"crash ({type(exc).__name__})"
    if not query.is_response(response):
        return "stray"
    if response.flags & dns.flags.TC:
        return "tcp"
    return read_response(target, resolver, response, via="udp", elapsed=None)


def fast(wire: bytes, target: Target, resolver: Resolver) -> fastpath.Answer | None:
    tail = query_tail(target.name, target.type, resolver.group != "authoritative")
    assert tail is not None
    question = fastpath.Question.of(target, tail)
    return fastpath.read(wire, question, target, resolver, None)


def agree(wire: bytes, target: Target, resolver: Resolver) -> fastpath.Answer | None:
    """The property: the fast path declines or gives the reference's answer."""
    got = fast(wire, target, resolver)
    if got is not None:
        assert got == reference(wire, target, resolver), wire.hex()
    return got


def reply(target: Target, resolver: Resolver, *, rcode=dns.rcode.NOERROR, answer=(), authority=(), additional=(),
          aa=None, edns=True, options=(), tc=False) -> dns.message.Message:
    query = query_for(target, resolver)
    r = dns.message.make_response(query)
    if not edns:
        r.use_edns(False)
    elif options:
        r.use_edns(0, payload=1232, options=list(options))
    r.set_rcode(rcode)
    if aa if aa is not None else resolver.group == "authoritative":
        r.flags |= dns.flags.AA
    if tc:
        r.flags |= dns.flags.TC
    for section, rrsets in ((r.answer, answer), (r.authority, authority), (r.additional, additional)):
        for name, ttl, rdtype, values in rrsets:
            section.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, values))
    return r


SOA = ("example.com.", 900, "SOA", [SOA_TEXT])
NS = ("example.com.", 3600, "NS", ["ns1.example.com.", "ns2.example.net."])
GLUE = ("ns1.example.com.", 3600, "A", ["192.0.2.53"])
CNAMES = [("www.example.com.", 300, "CNAME", ["edge.cdn.example.net."]),
          ("edge.cdn.example.net.", 60, "CNAME", ["pop1.cdn.example.net."])]

COMMON = {
    "new": dict(answer=[("www.example.com.", 123, "A", ["203.0.113.10"])]),
    "old": dict(answer=[("www.example.com.", 123, "A", ["198.51.100.10"])]),
    "two values": dict(answer=[("www.example.com.", 5, "A", ["198.51.100.10", "203.0.113.10"])]),
    "sinkhole": dict(answer=[("www.example.com.", 60, "A", ["0.0.0.0"])]),
    "with authority and glue": dict(answer=[("www.example.com.", 300, "A", ["203.0.113.10"])],
                                    authority=[NS], additional=[GLUE]),
    "cname chain": dict(answer=[*CNAMES, ("pop1.cdn.example.net.", 20, "A", ["203.0.113.10"])]),
    "cname to nothing": dict(answer=CNAMES[:1], authority=[SOA]),
    "nxdomain": dict(rcode=dns.rcode.NXDOMAIN, authority=[SOA]),
    "nodata": dict(authority=[SOA]),
    "nodata without soa": dict(),
    "servfail": dict(rcode=dns.rcode.SERVFAIL),
    "refused": dict(rcode=dns.rcode.REFUSED),
    "refused with data": dict(rcode=dns.rcode.REFUSED, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])]),
    "formerr": dict(rcode=dns.rcode.FORMERR),
    "no edns": dict(edns=False, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])]),
    "other name only": dict(answer=[("other.example.com.", 300, "A", ["203.0.113.10"])]),
    "without aa": dict(aa=False, answer=[("www.example.com.", 300, "A", ["203.0.113.10"])]),
    "aaaa": dict(answer=[("www.example.com.", 300, "AAAA", ["2001:db8::10", "::ffff:192.0.2.1", "2001:db8:0:0:1::1"])]),
}


@pytest.mark.parametrize("shape", sorted(COMMON))
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t.name}/{t.type}")
@pytest.mark.parametrize("resolver", RESOLVERS, ids=lambda r: r.name)
def test_common_replies_are_read_here_and_read_the_same(shape, target, resolver):
    kw = dict(COMMON[shape])
    rename = {"www.example.com.": target.name}
    for section in ("answer", "authority", "additional"):
        rrsets = [(rename.get(n, n), ttl, t, v) for n, ttl, t, v in kw.get(section, ())]
        if target.type == "AAAA":
            rrsets = [(n, ttl, "AAAA", ["2001:db8::10"]) if t == "A" and n == target.name else (n, ttl, t, v)
                      for n, ttl, t, v in rrsets]
        kw[section] = rrsets
    wire = reply(target, resolver, **kw).to_wire()
    got = agree(wire, target, resolver)
    assert got is not None, f"the fast path declined a common reply ({shape})"


@pytest.mark.parametrize("how", ["tc", "ext rcode", "ede option", "cookie option", "mx target", "rrsig", "txt in additional",
                                 "class ch", "cname loop"])
def test_unusual_replies_go_to_dnspython(how):
    target, resolver = UPDATE, PLAIN
    kw: dict = dict(answer=[("www.example.com.", 300, "A", ["203.0.113.10"])])
    if how == "tc":
        kw["tc"] = True
    elif how == "ede option":
        kw["options"] = [dns.edns.EDEOption(dns.edns.EDECode.STALE_ANSWER, "stale")]
    elif how == "cookie option":
        kw["options"] = [dns.edns.CookieOption(b"12345678", b"")]
    elif how == "mx target":
        target, kw = MX, dict(answer=[("example.com.", 300, "MX", ["10 mail.example.com."])])
    elif how == "rrsig":
        kw["answer"].append(("www.example.com.", 300, "RRSIG",
                             ["A 13 3 300 20300101000000 20200101000000 12345 example.com. AAAA"]))
    elif how == "txt in additional":
        kw["additional"] = [("example.com.", 300, "TXT", ['"hello"'])]
    elif how == "cname loop":
        kw["answer"] = [("www.example.com.", 300, "CNAME", ["a.example.net."]),
                        ("a.example.net.", 300, "CNAME", ["www.example.com."])]
    r = reply(target, resolver, **kw)
    if how == "ext rcode":
        r.set_rcode(dns.rcode.BADVERS)
    wire = r.to_wire()
    if how == "class ch":
        wire = wire.replace(b"\x00\x01\x00\x01\x00\x00\x01\x2c", b"\x00\x01\x00\x03\x00\x00\x01\x2c")
    assert fast(wire, target, resolver) is None
    if how == "cname loop":
        assert reference(wire, target, resolver).state == "malformed"


# --------------------------------------------------------------------------- hand-made wire


def name(text: str) -> bytes:
    if text == ".":
        return b"\x00"
    return b"".join(bytes((len(label),)) + label.encode() for label in text.rstrip(".").split(".")) + b"\x00"


def rr(owner: bytes, rdtype: int, ttl: int, rdata: bytes, rdclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata)) + rdata


def message(target: Target, resolver: Resolver, answer=(), authority=(), additional=(), *, flags=0x8180,
            opt=True, qid=0x1234, trailing=b"") -> bytes:
    tail = query_tail(target.name, target.type, resolver.group != "authoritative")
    assert tail is not None
    question = tail[10:-11]
    extra = list(additional) + ([b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)] if opt else [])
    header = struct.pack("!HHHHHH", qid, flags, 1, len(answer), len(authority), len(extra))
    return header + question + b"".join(answer) + b"".join(authority) + b"".join(extra) + trailing


A_NEW = bytes([203, 0, 113, 10])
A_OLD = bytes([198, 51, 100, 10])
QNAME_PTR = b"\xc0\x0c"


def soa(owner: bytes, minimum: int = 60, ttl: int = 900) -> bytes:
    return rr(owner, 6, ttl, name("ns1.example.com.") + name("hostmaster.example.com.") + struct.pack("!IIIII", 1, 2, 3, 4, minimum))


HANDMADE = {
    "uncompressed": [rr(name("www.example.com."), 1, 300, A_NEW)],
    "pointer to the name": [rr(QNAME_PTR, 1, 300, A_NEW)],
    "upper-case owner": [rr(name("WWW.Example.COM."), 1, 300, A_NEW)],
    "merged with min ttl": [rr(QNAME_PTR, 1, 300, A_NEW), rr(name("www.example.com."), 1, 7, A_OLD)],
    "merged, not adjacent": [rr(QNAME_PTR, 1, 300, A_NEW), rr(name("x.example.com."), 1, 1, A_OLD), rr(QNAME_PTR, 1, 9, A_OLD)],
    "duplicates": [rr(QNAME_PTR, 1, 300, A_NEW), rr(QNAME_PTR, 1, 30, A_NEW)],
    "huge ttl": [rr(QNAME_PTR, 1, 0x80000000, A_NEW)],
    "max ttl": [rr(QNAME_PTR, 1, 0x7FFFFFFF, A_NEW)],
    "huge ttl among others": [rr(QNAME_PTR, 1, 300, A_NEW), rr(QNAME_PTR, 1, 0xFFFFFFFF, A_OLD)],
    "cname twice, last wins": [rr(QNAME_PTR, 5, 300, name("a.example.net.")), rr(QNAME_PTR, 5, 200, name("b.example.net.")),
                               rr(name("a.example.net."), 1, 60, A_OLD), rr(name("b.example.net."), 1, 60, A_NEW)],
    "cname with compressed target": [rr(QNAME_PTR, 5, 300, b"\x04edge\xc0\x10"), rr(name("edge.example.com."), 1, 60, A_NEW)],
    "pointer to a suffix": [rr(b"\x03www\xc0\x10", 1, 300, A_NEW)],
    "pointer chain": [rr(QNAME_PTR, 5, 300, name("a.example.net.")),
                      rr(b"\x01b\xc0\x2d", 1, 60, A_NEW)],  # "b." + a pointer into the CNAME's target
}


@pytest.mark.parametrize("shape", sorted(HANDMADE))
def test_hand_made_replies_agree(shape):
    wire = message(UPDATE, PLAIN, HANDMADE[shape], [soa(b"\xc0\x10")])
    agree(wire, UPDATE, PLAIN)
    if shape in ("uncompressed", "pointer to the name", "upper-case owner", "merged with min ttl", "duplicates", "huge ttl"):
        assert fast(wire, UPDATE, PLAIN) is not None, shape


def test_negative_ttl_comes_from_the_first_soa_rrset_and_its_last_record():
    soas = [soa(b"\xc0\x13", minimum=50, ttl=900), soa(name("other.example."), minimum=5, ttl=1),
            soa(name("EXAMPLE.com."), minimum=70, ttl=400)]
    wire = message(DELETE, PLAIN, [], soas, flags=0x8183)
    got = agree(wire, DELETE, PLAIN)
    assert got is not None and got.ttl == 70  # min(400, 900) vs the last record's minimum 70


HOSTILE = {
    "pointer loop": [rr(QNAME_PTR, 5, 300, b"\xc0\x2d")],  # a CNAME whose target points at itself
    "pointer to itself": [rr(b"\xc0\x21", 1, 300, A_NEW)],
    "pointer forward": [rr(b"\xc0\x40", 1, 300, A_NEW)],
    "pointer into the header": [rr(b"\xc0\x02", 1, 300, A_NEW)],
    "label type 0x40": [rr(b"\x41www\x00", 1, 300, A_NEW)],
    "short a": [rr(QNAME_PTR, 1, 300, A_NEW[:3])],
    "long a": [rr(QNAME_PTR, 1, 300, A_NEW + b"\x00")],
    "rdlength past the end": [QNAME_PTR + struct.pack("!HHIH", 1, 1, 300, 40) + A_NEW],
    "cname not filling its rdata": [rr(QNAME_PTR, 5, 300, name("a.example.net.") + b"\x00")],
    "name too long": [rr(b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00", 1, 300, A_NEW)],
    "opt in the answer": [b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)],
    "opt not at the root": [],
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_hostile_replies_agree(shape):
    wire = message(UPDATE, PLAIN, HOSTILE[shape])
    if shape == "opt not at the root":
        wire = message(UPDATE, PLAIN, opt=False, additional=[QNAME_PTR + struct.pack("!HHIH", 41, 1232, 0, 0)])
    agree(wire, UPDATE, PLAIN)
    assert fast(wire, UPDATE, PLAIN) is None, shape


@pytest.mark.parametrize("how", ["trailing garbage", "count too high", "count too low", "two opts", "wrong question",
                                 "question case", "not a response", "opcode notify", "two questions"])
def test_wrong_framing_agrees(how):
    answer = [rr(QNAME_PTR, 1, 300, A_NEW)]
    if how == "trailing garbage":
        wire = message(UPDATE, PLAIN, answer, trailing=b"\x00")
    elif how == "count too high":
        wire = bytearray(message(UPDATE, PLAIN, answer))
        wire[7] = 2
    elif how == "count too low":
        wire = bytearray(message(UPDATE, PLAIN, answer * 2))
        wire[7] = 1
    elif how == "two opts":
        wire = message(UPDATE, PLAIN, answer, additional=[b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)])
    elif how == "wrong question":
        wire = message(CREATE, PLAIN, answer)
    elif how == "question case":
        wire = message(UPDATE, PLAIN, answer).replace(b"\x03www", b"\x03WWW", 1)
    elif how == "not a response":
        wire = message(UPDATE, PLAIN, answer, flags=0x0100)
    elif how == "opcode notify":
        wire = message(UPDATE, PLAIN, answer, flags=0x8180 | (4 << 11))
    else:
        one = message(UPDATE, PLAIN, answer)
        q = one[12:12 + len(name(UPDATE.name)) + 4]
        wire = one[:4] + b"\x00\x02" + one[6:12] + q + one[12:]
    wire = bytes(wire)
    agree(wire, UPDATE, PLAIN)
    assert fast(wire, UPDATE, PLAIN) is None
    if how == "question case":  # a server may echo another case: dnspython still takes it
        assert reference(wire, UPDATE, PLAIN).state == "new"


# --------------------------------------------------------------------------- fuzzing


def _seeds() -> list[bytes]:
    seeds = [message(UPDATE, PLAIN, HANDMADE[k], [soa(b"\xc0\x10")]) for k in sorted(HANDMADE)]
    seeds += [reply(UPDATE, PLAIN, **{k: v for k, v in COMMON[s].items()}).to_wire()
              for s in ("with authority and glue", "cname chain", "nxdomain", "two values")]
    return seeds


SEEDS = _seeds()


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
@example(seed=SEEDS[0], data=None)
def test_mutated_replies_never_disagree(seed, data):
    """Truncations, byte flips, insertions and deletions of valid replies: the fast path
    may decline, and when it reads one it reads it as dnspython does."""
    wire = bytearray(seed)
    if data is not None:
        for _ in range(data.draw(st.integers(1, 4))):
            kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "pointer"]))
            at = data.draw(st.integers(0, max(0, len(wire) - 1)))
            if kind == "flip" and wire:
                wire[at] ^= 1 << data.draw(st.integers(0, 7))
            elif kind == "set" and wire:
                wire[at] = data.draw(st.integers(0, 255))
            elif kind == "cut":
                del wire[at:]
            elif kind == "insert":
                wire[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            elif kind == "delete" and wire:
                del wire[at:at + data.draw(st.integers(1, 4))]
            elif kind == "pointer" and len(wire) > 13:
                wire[at:at + 2] = bytes((0xC0 | data.draw(st.integers(0, 3)), data.draw(st.integers(0, 255))))
    wire[:2] = seed[:2]  # the engine hands over only packets with the query's id
    for target in (UPDATE, SIX):
        for resolver in RESOLVERS:
            agree(bytes(wire), target, resolver)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_our_header_never_disagree(junk):
    wire = message(UPDATE, PLAIN, []) [:12 + len(name(UPDATE.name)) + 4] + junk
    for counts in (b"\x00\x01\x00\x00\x00\x00", b"\x00\x01\x00\x01\x00\x01", b"\x00\x01\x00\x02\x00\x00"):
        candidate = wire[:6] + counts + wire[12:]
        agree(candidate, UPDATE, PLAIN)
        agree(candidate, UPDATE, AUTH)


# --------------------------------------------------------------------------- the query bytes


LABEL = st.text(alphabet=st.sampled_from("abcXYZ019-_*"), min_size=1, max_size=63)


@settings(max_examples=300, deadline=None)
@given(labels=st.lists(LABEL, min_size=0, max_size=6), rdtype=st.sampled_from(["A", "AAAA", "MX", "NS", "CNAME", "TXT", "SOA"]),
       recursive=st.booleans())
def test_query_bytes_equal_dnspythons(labels, rdtype, recursive):
    text = ".".join(labels) + "."
    try:
        expected = dns.message.make_query(text, rdtype, use_edns=0, payload=PAYLOAD)
    except dns.exception.DNSException:
        assert query_tail(text, rdtype, recursive) is None
        return
    if not recursive:
        expected.flags &= ~dns.flags.RD
    assert query_tail(text, rdtype, recursive) == expected.to_wire()[2:]


@pytest.mark.parametrize("text", ["www.example.com", "b\\.c.example.", "bücher.example.", "a..b.", "@"])
def test_unusual_names_are_left_to_dnspython(text):
    assert query_tail(text, "A", True) is None
