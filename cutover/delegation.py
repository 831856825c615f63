"""A delegation change: the apex NS changed at the parent, a move between DNS hosts.

Mail services tell their customers to move this way: set up the new DNS host with the
new records, switch the NS at the registrar, keep the old host for weeks. After the
switch, the records are read from the new host, the old host's answers are "old", and
three kinds of server are watched besides the resolvers: the parent's (which delegation
do they hand out?), the new host's (do they serve the new data?) and the old host's
(what can a resolver that still holds the old delegation receive?).

This module finds those servers (I/O, at the edge); ``cutover.bounds`` turns what they
serve into the bound on old data.
"""

from __future__ import annotations

from typing import Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype

from cutover import verify
from cutover.observe.types import OLD_HOST, PARENT
from cutover.resolvers import Resolver

#: Seconds per question when looking up the old host's addresses at the parent.
LOOKUP_TIMEOUT = 2.0


def servers(names: Sequence[str], group: str) -> list[Resolver]:
    """``address[:port]`` entries or host names as servers of ``group`` (every address)."""
    found, _problems = verify.endpoints(list(names))
    return [Resolver(s.address, s.port, s.name, group=group) for s in found]


def parent_servers(names: Sequence[str]) -> list[Resolver]:
    return servers(names, PARENT)


def old_host(ns_names: Sequence[str], parent: Sequence[Resolver]) -> list[Resolver]:
    """The old DNS host's servers: the old NS names' addresses, asked first at the parent
    (its own data or the glue it still has; the lab and many registries keep host records
    for name servers), then through the system resolver."""
    out: list[Resolver] = []
    for name in ns_names:
        addresses = _at_parent(name, parent)
        if addresses:
            out += [Resolver(a, 53, name.rstrip("."), group=OLD_HOST) for a in addresses]
        else:
            out += servers([name.rstrip(".")], OLD_HOST)
    return out


def _at_parent(name: str, parent: Sequence[Resolver]) -> list[str]:
    qname = dns.name.from_text(name)
    for server in parent:
        found: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            query = dns.message.make_query(qname, rdtype)
            query.flags &= ~dns.flags.RD
            try:
                response = dns.query.udp(query, server.address, port=server.port, timeout=LOOKUP_TIMEOUT)
            except (dns.exception.DNSException, OSError):
                continue
            for rrset in (*response.answer, *response.additional):
                if rrset.name == qname and rrset.rdtype == rdtype:
                    found += [rd.to_text() for rd in rrset]
        if found:
            return sorted(set(found))
    return []

