"""Reading one DNS response: the data it carries for a watched record, reduced to a state.

Matching comes before error classes, because an empty answer *is* the expected data for
a record being created (old) or deleted (new). A filtering resolver's block page is set
apart, so that a blocklist does not look like a resolver that missed the change. The
zone's own servers must answer with the AA flag (anything else is not their data), and a
parent server's delegation is read from its referral.
"""

from __future__ import annotations

from typing import Sequence

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from cutover.observe.types import ERRORS, FILTERED, NON_RECURSIVE, PARENT, Answer, Target
from cutover.records import canonical_rdata
from cutover.resolvers import Resolver

MAX_CNAME_CHAIN = 16

#: Answers by which filtering services say "blocked" instead of the real data:
#: the null routes, and Cisco OpenDNS's documented block-page addresses.
SINKHOLES = frozenset(
    {"0.0.0.0", "127.0.0.1", "::", "::1"}
    | {f"146.112.61.{n}" for n in range(104, 111)}
    | {f"::ffff:146.112.61.{n}" for n in range(104, 111)}
)


def classify(target: Target, rcode: int, values: Sequence[str], filtering: bool) -> str:
    """The state of one answer, from its rcode and the canonical values it carried."""
    got = tuple(sorted(set(values)))
    rcode = int(rcode)
    if rcode == dns.rcode.NOERROR and got:
        if got == target.new:
            return "new"
        if got == target.old:
            return "old"
        if filtering and set(got) <= SINKHOLES:
            return FILTERED
        return "other"
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        if target.new == ():
            return "new"
        if target.old == ():
            return "old"
        if filtering:
            return FILTERED
        return "nxdomain" if rcode == dns.rcode.NXDOMAIN else "nodata"
    if rcode == dns.rcode.SERVFAIL:
        return "servfail"
    if rcode == dns.rcode.REFUSED:
        return "refused"
    return "error"


def read_response(
    target: Target, resolver: Resolver, response: dns.message.Message, *, via: str = "udp", elapsed: float | None = None
) -> Answer:
    """Reduce a response that matched our query to an ``Answer``.

    The compared data is the RRset of the asked type at the end of any CNAME chain
    (for a CNAME target, the CNAME itself); a negative answer's TTL is its SOA's.
    """
    rcode = response.rcode()
    notes = ["via TCP after a truncated UDP answer"] if via == "tcp" else []
    positive_or_negative = rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    delegation = resolver.group == PARENT and target.type == "NS"
    if resolver.group in NON_RECURSIVE and not delegation and positive_or_negative and not response.flags & dns.flags.AA:
        return Answer(resolver, target.key, "error", None, (),
                      "answer without the AA flag: the server is not authoritative for this name", elapsed)
    try:
        rrset = _delegation_rrset(response, target) if delegation else _final_rrset(response, target)
    except ValueError as exc:
        return Answer(resolver, target.key, "malformed", None, (), str(exc), elapsed)
    values = tuple(sorted({canonical_rdata(rd) for rd in rrset})) if rrset is not None else ()
    ttl = rrset.ttl if rrset is not None else _negative_ttl(response)
    if not positive_or_negative:
        values, ttl = (), None
    state = classify(target, rcode, values, resolver.filtering)
    if state in ERRORS or state == FILTERED:
        notes.insert(0, f"rcode {dns.rcode.to_text(rcode)}")
    return Answer(resolver, target.key, state, ttl, values, "; ".join(notes), elapsed)


def _final_rrset(response: dns.message.Message, target: Target) -> dns.rrset.RRset | None:
    """The RRset of the asked type at the end of the CNAME chain (or the CNAME itself)."""
    rdtype = dns.rdatatype.from_text(target.type)
    name = dns.name.from_text(target.name)
    seen: set[dns.name.Name] = set()
    for _ in range(MAX_CNAME_CHAIN):
        rrset = _find(response, name, rdtype)
        if rrset is not None or rdtype == dns.rdatatype.CNAME:
            return rrset
        cname = _find(response, name, dns.rdatatype.CNAME)
        if cname is None:
            return None
        seen.add(name)
        name = cname[0].target
        if name in seen:
            raise ValueError(f"CNAME loop at {name}")
    raise ValueError(f"CNAME chain longer than {MAX_CNAME_CHAIN}")


def _delegation_rrset(response: dns.message.Message, target: Target) -> dns.rrset.RRset | None:
    """The NS set a parent server hands out for the child: in the referral's authority
    section (or in the answer, when the same server also serves the child)."""
    name = dns.name.from_text(target.name)
    for section in (response.answer, response.authority):
        for rrset in section:
            if rrset.name == name and rrset.rdtype == dns.rdatatype.NS and len(rrset):
                return rrset
    return None


def _find(response: dns.message.Message, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    """A plain scan: the message's own index only covers RRsets it parsed or created itself."""
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and len(rrset):
            return rrset
    return None


def _negative_ttl(response: dns.message.Message) -> int | None:
    """How long a negative answer may be cached (RFC 2308: min of SOA TTL and MINIMUM)."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, rrset[0].minimum)
    return None
