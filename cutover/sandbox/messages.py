"""DNS messages as both sandbox servers handle them: parsing a query, refusing one,
and fitting a reply to its transport.

The authoritative server and the caching resolver must treat a malformed or unusual
query the same way real servers do (FORMERR, NOTIMP, silence for a response), and a
UDP reply that does not fit must come back truncated so that the client retries over
TCP. Written once here, the two servers cannot drift apart on any of it.
"""

from __future__ import annotations

import struct

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode


def parse_query(wire: bytes) -> tuple[dns.message.Message | None, list[bytes]]:
    """The query, or the FORMERR to send back when it does not parse (nothing if hopeless)."""
    try:
        return dns.message.from_wire(wire), []
    except dns.exception.DNSException:
        if len(wire) < 12:
            return None, []
        (qid, flags) = struct.unpack("!HH", wire[:4])
        if flags & dns.flags.QR:
            return None, []  # never answer a response
        error = dns.message.Message(id=qid)
        error.flags = dns.flags.QR | (flags & dns.flags.RD)
        error.set_rcode(dns.rcode.FORMERR)
        return None, [error.to_wire()]


def error_reply(query: dns.message.Message, rcode: dns.rcode.Rcode, ra: bool = False) -> dns.message.Message:
    """An empty reply to ``query`` with ``rcode``; ``ra`` says whether the server recurses."""
    response = dns.message.make_response(query, recursion_available=ra)
    response.set_rcode(rcode)
    return response


def to_wire(query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
    """The reply on the wire; over UDP a reply that does not fit is truncated (TC)."""
    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = dns.message.make_response(query, recursion_available=bool(response.flags & dns.flags.RA))
        short.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
        short.set_rcode(response.rcode())
        return short.to_wire(max_size=limit)


def query_problem(query: dns.message.Message) -> dns.rcode.Rcode | None:
    """An error rcode when this is not one ordinary question, else None."""
    if query.flags & dns.flags.QR:
        return dns.rcode.FORMERR
    if query.opcode() != dns.opcode.QUERY:
        return dns.rcode.NOTIMP
    if len(query.question) != 1:
        return dns.rcode.FORMERR
    return None
