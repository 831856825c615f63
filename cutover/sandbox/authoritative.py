"""The sandbox's authoritative server: the answers of a zone's own name server.

``cutover`` verifies a change at the authoritative servers and dates changes made
outside it by their answers, and the caching resolvers forward here; so the answers
must be the ones a real authoritative-only server gives: AA set, NXDOMAIN and NODATA
with the SOA that tells caches how long to keep them, CNAME chains, wildcards,
referrals for delegated children, AXFR over TCP, and REFUSED for other zones.
``authoritative_answer`` and ``zone_transfer`` are pure functions of zone data.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.node
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from cutover.sandbox.errors import SandboxError
from cutover.sandbox.listener import LOOPBACK, Listener
from cutover.sandbox.messages import error_reply
from cutover.sandbox.store import ZoneStore, origin_of

IN = dns.rdataclass.IN

#: Longest CNAME chain the authoritative server follows inside its zone.
MAX_CHAIN = 8

def _negative_soa(data: dns.zone.Zone) -> dns.rrset.RRset:
    """The SOA for the authority section of a negative answer; its TTL is
    min(SOA TTL, SOA minimum), how long a cache may keep the negative answer (RFC 2308)."""
    origin = origin_of(data)
    soa_rds = data.find_rdataset(origin, dns.rdatatype.SOA)
    return dns.rrset.from_rdata_list(origin, min(soa_rds.ttl, soa_rds[0].minimum), list(soa_rds))


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rds.ttl, list(rds))


def _delegation(data: dns.zone.Zone, qname: dns.name.Name) -> dns.name.Name | None:
    """The highest zone cut between the apex (exclusive) and ``qname`` (inclusive)."""
    origin = origin_of(data)
    for depth in range(len(origin) + 1, len(qname) + 1):
        _, cut = qname.split(depth)
        node = data.get_node(cut)
        if node is not None and node.get_rdataset(IN, dns.rdatatype.NS) is not None:
            return cut
    return None


def _exists(data: dns.zone.Zone, name: dns.name.Name) -> bool:
    """True for names with data and for empty non-terminals (names with descendants)."""
    return data.get_node(name) is not None or any(n.is_subdomain(name) for n in data)


def _wildcard(data: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
    """The wildcard node that synthesises ``name`` (RFC 4592), if any."""
    encloser = name.parent()
    while not _exists(data, encloser):
        encloser = encloser.parent()
    return data.get_node(dns.name.from_text("*", encloser))


def authoritative_answer(data: dns.zone.Zone, query: dns.message.Message) -> dns.message.Message:
    """The reply of a server authoritative for ``data`` to one question inside the zone."""
    response = dns.message.make_response(query)
    question = query.question[0]
    qname, rdtype = question.name, question.rdtype
    cut = _delegation(data, qname)
    if cut is not None and not (cut == qname and rdtype == dns.rdatatype.DS):
        return _referral(data, response, cut)
    response.flags |= dns.flags.AA
    name = qname
    for _ in range(MAX_CHAIN):
        node = data.get_node(name)
        if node is None:
            if _exists(data, name):
                break  # empty non-terminal: NODATA
            node = _wildcard(data, name)
            if node is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                break
        if rdtype == dns.rdatatype.ANY:
            response.answer.extend(_rrset(name, rds) for rds in node)
            return response
        rds = node.get_rdataset(IN, rdtype)
        if rds is not None:
            response.answer.append(_rrset(name, rds))
            return response
        cname = node.get_rdataset(IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        response.answer.append(_rrset(name, cname))
        target = cname[0].target
        if not target.is_subdomain(origin_of(data)):
            return response  # the resolver follows it elsewhere
        name = target
    else:
        response.set_rcode(dns.rcode.SERVFAIL)  # a CNAME loop
        return response
    response.authority.append(_negative_soa(data))
    return response


def _referral(data: dns.zone.Zone, response: dns.message.Message, cut: dns.name.Name) -> dns.message.Message:
    ns = data.find_rdataset(cut, dns.rdatatype.NS)
    response.authority.append(_rrset(cut, ns))
    for rd in ns:
        if rd.target.is_subdomain(cut):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = data.get_rdataset(rd.target, rdtype)
                if glue is not None:
                    response.additional.append(_rrset(rd.target, glue))
    return response


def zone_transfer(data: dns.zone.Zone, query: dns.message.Message, per_message: int = 64) -> list[dns.message.Message]:
    """AXFR (RFC 5936): the SOA, every other record set, the SOA again, in a few messages."""
    origin = origin_of(data)
    soa = _rrset(origin, data.find_rdataset(origin, dns.rdatatype.SOA))
    body = [
        _rrset(name, rds)
        for name in sorted(data)
        for rds in data[name]
        if not (name == origin and rds.rdtype == dns.rdatatype.SOA)
    ]
    rrsets = [soa, *body, soa]
    messages = []
    for start in range(0, len(rrsets), per_message):
        message = dns.message.make_response(query)
        message.flags |= dns.flags.AA
        if start:
            message.question = []
        message.answer.extend(rrsets[start : start + per_message])
        messages.append(message)
    return messages


class AuthoritativeServer(Listener):
    """Answers for the zones of a ``ZoneStore`` over UDP and TCP, and for nothing else.

    Like a real authoritative-only server it never recurses: questions outside its
    zones get REFUSED, and it does not set RA. Each answer reads the store, so a
    change by any process sharing the directory shows at once.
    """

    kind = "authoritative"

    def __init__(self, store: ZoneStore, address: str = LOOPBACK, port: int = 0) -> None:
        self.store = store
        super().__init__(address, port)

    def __repr__(self) -> str:
        return f"AuthoritativeServer({self.address}:{self.port}, {self.store!r})"

    def answer(self, query: dns.message.Message, tcp: bool = False) -> list[dns.message.Message]:
        """The reply to one ordinary question, read from the store as it is now."""
        question = query.question[0]
        if question.rdclass != IN:
            return [error_reply(query, dns.rcode.REFUSED)]
        try:
            data = self.store.find_zone(question.name)
        except SandboxError:
            return [error_reply(query, dns.rcode.SERVFAIL)]  # an unreadable zone file
        if data is None:
            return [error_reply(query, dns.rcode.REFUSED)]
        if question.rdtype == dns.rdatatype.AXFR:
            if not tcp or question.name != data.origin:
                return [error_reply(query, dns.rcode.FORMERR if not tcp else dns.rcode.NOTAUTH)]
            return zone_transfer(data, query)
        if question.rdtype in (dns.rdatatype.IXFR, dns.rdatatype.MAILA, dns.rdatatype.MAILB):
            return [error_reply(query, dns.rcode.NOTIMP)]
        return [authoritative_answer(data, query)]

