"""The common reply read without dnspython, to the same ``Answer`` dnspython would give.

A watch round is hundreds of thousands of small, plain replies: one question (ours, byte
for byte), an A or AAAA RRset, perhaps a CNAME chain, an SOA for a negative answer, an
empty OPT. Parsing each into a ``dns.message.Message`` costs more than everything else
an exchange does, so this module reads exactly that shape straight from the bytes and
builds the ``Answer`` that ``dns.message.from_wire`` followed by
``cutover.observe.classify.read_response`` would have built.

dnspython stays the reference. ``read`` accepts a reply only when it can vouch that
dnspython would parse it without error and to the same data; for anything else (TC
bit, another opcode, EDNS options or an extended rcode, a record type or class outside
the short list below, a CNAME loop, anything malformed) it returns ``None`` and the
engine hands the bytes to dnspython, which then decides, including on what is wrong.
So the fast path may refuse, but it must never disagree:
``tests/test_observe_fastpath.py`` checks that on synthetic replies of every shape and on
hostile bytes, and ``tests/integration/test_engine_fastpath.py`` on real BIND, Knot and
Unbound replies.

What "dnspython would parse it the same" means here, rule by rule (dnspython 2.x):

* names: labels of at most 63 bytes, at most 255 bytes in all; a compression pointer
  must point before the start of the name and before every earlier pointer target, at
  most 16 hops, and a pointed-to part must end before the part that pointed to it;
* records are merged into RRsets by (owner, type) in order of first appearance; an
  RRset's TTL is the lowest of its records' TTLs, after a TTL above 2^31 - 1 became 0;
  duplicates collapse; a CNAME or SOA RRset keeps only its last record;
* OPT only in the additional section, once, owned by the root; a record must use
  exactly its rdata length; nothing may follow the last record.
"""

from __future__ import annotations

import struct

import dns.ipv6
import dns.rcode

from cutover.observe.classify import MAX_CNAME_CHAIN, classify
from cutover.observe.types import ERRORS, FILTERED, NON_RECURSIVE, Answer, Target
from cutover.resolvers import Resolver

A, NS, CNAME, SOA, AAAA, OPT = 1, 2, 5, 6, 28, 41
IN = 1
#: Target types read here; every other type goes to dnspython.
FAST_TYPES = {"A": A, "AAAA": AAAA}
#: Record types a fast reply may carry anywhere (the OPT only in the additional section).
KNOWN = frozenset({A, NS, CNAME, SOA, AAAA})
MAX_HOPS = 16  # dns.name.MAX_COMPRESSION_POINTER_CHAIN
MAX_TTL = 0x7FFFFFFF

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_U32 = struct.Struct("!I")
_AAAA_TEXT: dict[bytes, str] = {}


class _Refuse(Exception):
    """Not a reply this module vouches for: dnspython decides."""


class Question:
    """What a reply to one query must repeat, prepared once per (target, recursion).

    ``section`` is the question section as sent (name, type, class), compared byte for
    byte; ``qkey`` is the asked name in the form names are compared here (its wire
    labels, lower-cased, without the root label); ``rdtype`` is 0 when the target's type
    is not read by this module (every reply then goes to dnspython); ``suffixes`` maps
    each label boundary of the asked name (its offset in the message) to the name from
    there on: the targets of nearly every compression pointer in a reply.
    """

    __slots__ = ("section", "qkey", "rdtype", "suffixes")

    def __init__(self, section: bytes, qkey: bytes, rdtype: int, suffixes: dict[int, bytes]) -> None:
        self.section, self.qkey, self.rdtype, self.suffixes = section, qkey, rdtype, suffixes

    @classmethod
    def of(cls, target: Target, tail: bytes) -> "Question":
        """From the query's wire form after its id (the question starts at offset 10)."""
        end, offsets = 10, []
        while tail[end]:
            offsets.append(end + 2)
            end += tail[end] + 1
        qkey = tail[10:end].lower()
        suffixes = {offset: qkey[offset - 12:] for offset in offsets}
        suffixes[end + 2] = b""
        return cls(tail[10:end + 5], qkey, FAST_TYPES.get(target.type, 0), suffixes)


def read(wire: bytes, question: Question, target: Target, resolver: Resolver, elapsed: float | None) -> Answer | None:
    """The ``Answer`` for a reply that matched our query's id and source, or ``None`` when
    this module does not vouch for the reply (the caller then asks dnspython)."""
    if not question.rdtype or len(wire) < 12:
        return None
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    # a response (QR), opcode QUERY, not truncated, one question equal to ours
    if flags & 0xFA00 != 0x8000 or qdcount != 1:
        return None
    section = question.section
    if not wire.startswith(section, 12):
        return None
    try:
        parsed = _records(wire, 12 + len(section), ancount, nscount, arcount, question.suffixes)
    except (_Refuse, IndexError, struct.error):
        return None
    answer, negative_ttl, ext_rcode = parsed
    if ext_rcode:
        return None
    rcode = flags & 0x000F
    positive_or_negative = rcode == 0 or rcode == 3
    if resolver.group in NON_RECURSIVE and positive_or_negative and not flags & 0x0400:
        return Answer(resolver, target.key, "error", None, (),
                      "answer without the AA flag: the server is not authoritative for this name", elapsed)
    rdtype = question.rdtype
    found: list | bool | None = answer.get((question.qkey, rdtype)) if answer else None
    if found is None and answer:
        found = _final(answer, question.qkey, rdtype)
    if found is False:
        return None  # a CNAME loop or an over-long chain: dnspython says what it is
    if isinstance(found, list):
        ttl: int | None = found[0]
        rdatas = found[1]
        if len(rdatas) == 1:
            values: tuple[str, ...] = (_text(rdtype, next(iter(rdatas))),)
        else:
            values = tuple(sorted({_text(rdtype, rdata) for rdata in rdatas}))
    else:
        ttl, values = negative_ttl, ()
    if not positive_or_negative:
        values, ttl = (), None
    state = classify(target, rcode, values, resolver.filtering)
    detail = f"rcode {dns.rcode.to_text(rcode)}" if state in ERRORS or state == FILTERED else ""
    return Answer(resolver, target.key, state, ttl, values, detail, elapsed)


# An answer-section RRset: [ttl, rdatas] where rdatas is a dict used as an ordered set of
# raw rdata (A, AAAA) or the one remaining target name key (CNAME).
_Groups = dict[tuple[bytes, int], list]


def _records(wire: bytes, pos: int, ancount: int, nscount: int, arcount: int,
             suffixes: dict[int, bytes]) -> tuple[_Groups, int | None, int]:
    """Walk every record as dnspython would, refusing what it would not parse (or what this
    module does not model); returns the answer RRsets, the negative TTL from the first SOA
    RRset of the authority section, and the OPT's extended rcode bits.

    Only the answer section's owners and CNAME targets, and the authority section's SOA
    owners, are needed as names; every other name is only checked (``_skip``)."""
    end = len(wire)
    qend = pos - 4  # just after the question's name
    unpack = _RR.unpack_from
    answer: _Groups = {}
    soa_key: bytes | None = None
    soa_ttl = soa_minimum = 0
    opt_seen = False
    ext_rcode = 0
    for section, count in ((1, ancount), (2, nscount), (3, arcount)):
        for _ in range(count):
            start = pos
            first = wire[pos]
            if first >= 0xC0 and (((first & 0x3F) << 8) | wire[pos + 1]) in suffixes:
                pos += 2  # the usual owner: a pointer to (the end of) the question's name
            else:
                pos = _skip(wire, pos, end, suffixes, qend)
            rtype, rclass, ttl, rdlen = unpack(wire, pos)
            pos += 10
            rend = pos + rdlen
            if rend > end:
                raise _Refuse
            if rtype == OPT:
                if section != 3 or opt_seen or rdlen or _name(wire, start, end, suffixes, qend)[0]:
                    raise _Refuse  # misplaced, repeated or not the root's (BadEDNS), or with options
                opt_seen = True
                ext_rcode = ttl >> 24
                pos = rend
                continue
            if rclass != IN:
                raise _Refuse
            if ttl > MAX_TTL:
                ttl = 0
            if rtype == A or rtype == AAAA:
                if rdlen != (4 if rtype == A else 16):
                    raise _Refuse
                if section == 1:
                    rdata = wire[pos:rend]
                    key = (_owner(wire, start, end, suffixes, qend), rtype)
                    group = answer.get(key)
                    if group is None:
                        answer[key] = [ttl, {rdata: None}]
                    else:
                        if ttl < group[0]:
                            group[0] = ttl
                        group[1][rdata] = None
            elif rtype == CNAME or rtype == NS:  # one name filling the rdata
                if section == 1 and rtype == CNAME:
                    cname, at = _name(wire, pos, rend, suffixes, qend)
                    owner = _owner(wire, start, end, suffixes, qend)
                    group = answer.get((owner, CNAME))
                    if group is None:
                        answer[(owner, CNAME)] = [ttl, cname]
                    else:
                        group[0] = min(ttl, group[0])
                        group[1] = cname  # a singleton: the last record wins
                else:
                    at = _skip(wire, pos, rend, suffixes, qend)
                if at != rend:
                    raise _Refuse
            elif rtype == SOA:
                at = _skip(wire, _skip(wire, pos, rend, suffixes, qend), rend, suffixes, qend)
                if at + 20 != rend:
                    raise _Refuse
                if section == 2:
                    owner = _owner(wire, start, end, suffixes, qend)
                    if soa_key is None:
                        soa_key, soa_ttl = owner, ttl
                    elif owner == soa_key and ttl < soa_ttl:
                        soa_ttl = ttl
                    if owner == soa_key:
                        soa_minimum = _U32.unpack_from(wire, at + 16)[0]  # MINIMUM; the last SOA record wins
            else:
                raise _Refuse
            pos = rend
    if pos != end:
        raise _Refuse  # trailing bytes (dnspython: TrailingJunk)
    return answer, (min(soa_ttl, soa_minimum) if soa_key is not None else None), ext_rcode


def _owner(wire: bytes, pos: int, end: int, suffixes: dict[int, bytes], qend: int) -> bytes:
    """The comparison key of an owner name already checked by ``_skip``."""
    first = wire[pos]
    if first >= 0xC0:
        key = suffixes.get(((first & 0x3F) << 8) | wire[pos + 1])
        if key is not None:
            return key
    return _name(wire, pos, end, suffixes, qend)[0]


def _skip(wire: bytes, pos: int, limit: int, suffixes: dict[int, bytes], qend: int) -> int:
    """Where the name at ``pos`` ends, after the checks of ``_name`` (without its key)."""
    first = wire[pos]
    if first >= 0xC0 and pos + 2 <= limit and (((first & 0x3F) << 8) | wire[pos + 1]) in suffixes:
        return pos + 2  # a pointer to the question's name: before pos, and a valid name
    return _walk(wire, pos, limit, suffixes, qend, None)


def _name(wire: bytes, pos: int, limit: int, suffixes: dict[int, bytes], qend: int) -> tuple[bytes, int]:
    """A (possibly compressed) name at ``pos``: its comparison key and where the record goes on."""
    parts: list[bytes] = []
    pos = _walk(wire, pos, limit, suffixes, qend, parts)
    key = parts[0] if len(parts) == 1 else b"".join(parts)
    return key.lower(), pos


def _walk(wire: bytes, pos: int, limit: int, suffixes: dict[int, bytes], qend: int, parts: list[bytes] | None) -> int:
    """Walk the name at ``pos`` and say where the record goes on; with ``parts``, collect
    the name's pieces too. Follows dns.name.from_wire_parser's rules exactly and refuses
    what it refuses.

    A pointer to a label boundary of the question's name ends the walk with that
    suffix: the question lies wholly before any name after it, has no pointers and is
    a valid name, so dnspython's checks on that part pass, and only the length remains."""
    biggest = start = pos
    after = -1
    hops = 0
    total = 1
    while True:
        if pos >= limit:
            raise _Refuse
        count = wire[pos]
        if count == 0:
            if parts is not None:
                parts.append(wire[start:pos])
            pos = after if after >= 0 else pos + 1
            break
        if count < 64:
            pos += 1 + count
            if pos > limit:
                raise _Refuse
            total += count + 1
        elif count >= 192:
            if pos + 2 > limit:
                raise _Refuse
            target = ((count & 0x3F) << 8) | wire[pos + 1]
            hops += 1
            if target >= biggest or hops > MAX_HOPS:
                raise _Refuse
            if parts is not None:
                parts.append(wire[start:pos])
            if after < 0:
                after = pos + 2
            suffix = suffixes.get(target)
            if suffix is not None and start >= qend:
                if parts is not None:
                    parts.append(suffix)
                total += len(suffix)
                pos = after
                break
            limit = start  # the pointed-to part must end before this part began
            biggest = start = pos = target
        else:
            raise _Refuse  # label types 0x40 and 0x80
    if total > 255:
        raise _Refuse
    return pos


def _final(answer: _Groups, name: bytes, rdtype: int) -> list | None | bool:
    """classify._final_rrset on the merged RRsets: the asked type at the end of the CNAME
    chain, ``None`` when there is none, ``False`` for a loop or an over-long chain."""
    seen: set[bytes] = set()
    for _ in range(MAX_CNAME_CHAIN):
        found = answer.get((name, rdtype))
        if found is not None:
            return found
        cname = answer.get((name, CNAME))
        if cname is None:
            return None
        seen.add(name)
        name = cname[1]
        if name in seen:
            return False
    return False


def _text(rdtype: int, rdata: bytes) -> str:
    """An address as dnspython writes it (and as ``canonical_rdata`` leaves it)."""
    if rdtype == A:
        return f"{rdata[0]}.{rdata[1]}.{rdata[2]}.{rdata[3]}"
    text = _AAAA_TEXT.get(rdata)
    if text is None:
        if len(_AAAA_TEXT) >= 4096:
            _AAAA_TEXT.clear()
        text = _AAAA_TEXT[rdata] = dns.ipv6.inet_ntoa(rdata)
    return text
