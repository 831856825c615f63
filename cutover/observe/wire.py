"""The query bytes: built once per round for each question, as dnspython would build them.

Rendering a ``dns.message.Message`` costs more than a whole exchange of the engine, and
a round asks the same question of many servers, so each question is written once (only
the 16-bit id differs between pairs), and written here directly for the usual name;
dnspython still renders every other name, and stays the reference for the bytes:
``tests/test_observe_fastpath.py`` compares the two.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype

from cutover.observe import fastpath
from cutover.observe.types import Target

#: EDNS buffer we advertise (the DNS Flag Day 2020 value); a larger UDP reply is a broken server.
PAYLOAD = 1232


class Template:
    """A query built once per round for each (target, recursion): every pair gets these
    bytes with only the 16-bit id changed.

    The bytes are written here (``query_tail``) for the usual name (plain ASCII, absolute, no escapes),
    as dnspython's ``make_query(name, type, use_edns=0, payload=PAYLOAD)`` renders them
    (tests/test_observe_fastpath.py compares the two); any other name, and the
    dnspython message itself (needed only for an unusual reply or TCP), come from
    dnspython.
    """

    __slots__ = ("target", "recursive", "tail", "question", "_message")

    def __init__(self, target: Target, recursive: bool) -> None:
        self.target, self.recursive = target, recursive
        self._message: dns.message.Message | None = None
        tail = query_tail(target.name, target.type, recursive)
        if tail is None:
            tail = self.message.to_wire()[2:]
        self.tail = tail
        self.question = fastpath.Question.of(target, tail)

    @property
    def message(self) -> dns.message.Message:
        if self._message is None:
            message = dns.message.make_query(self.target.name, self.target.type, use_edns=0, payload=PAYLOAD)
            if not self.recursive:
                message.flags &= ~dns.flags.RD  # ask the server what it holds, not what it can find
            self._message = message
        return self._message


#: The OPT record of every query: root owner, type OPT, our payload size, no flags, no options.
_OPT = b"\x00\x00\x29" + PAYLOAD.to_bytes(2, "big") + b"\x00" * 6
_HEADERS = {True: b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01", False: b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01"}
_RDTYPES: dict[str, bytes] = {}


def query_tail(name: str, rdtype: str, recursive: bool) -> bytes | None:
    """A query's wire form after the id, for a plain ASCII absolute name without
    escapes; ``None`` for any other name (dnspython then renders it, or says what is wrong)."""
    if not name.endswith(".") or not name.isascii() or "\\" in name:
        return None
    code = _RDTYPES.get(rdtype)
    if code is None:
        code = _RDTYPES[rdtype] = int(dns.rdatatype.from_text(rdtype)).to_bytes(2, "big") + b"\x00\x01"
    qname = bytearray()
    if name != ".":
        for label in name[:-1].encode("ascii").split(b"."):
            if not 0 < len(label) < 64:
                return None
            qname.append(len(label))
            qname += label
    qname.append(0)
    if len(qname) > 255:
        return None
    return _HEADERS[recursive] + qname + code + _OPT
