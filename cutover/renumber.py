"""Renumbering: which record sets of a zone change when addresses move, and to what.

A hosting company moving a server (or a platform) finds the old address in hundreds of
zones it hosts. ``renumber:`` in a fleet plan says ``{from: OLD, to: NEW}``; this module
turns one zone's live record sets into the plan records that move it:

* every A/AAAA record set holding a ``from`` address: that value becomes its ``to``
  (the other values stay, in order; a value that would appear twice appears once);
* every SPF record (TXT or SPF, ``v=spf1``) with an ``ip4:``/``ip6:`` term for exactly a
  ``from`` address (``ip4:198.51.100.10`` or ``/32``, ``/128``): the term becomes the
  ``to`` address; a term for a *network* covering a ``from`` address (``ip4:198.51.100.0/24``)
  is kept, since other senders may live in it, and the ``to`` address is added right after
  it unless some pass term already covers it, so mail from the new server passes SPF.

Each produced record names its ``from`` (the live values), so the usual drift guard
refuses a zone that changed between the diff and the apply. Pure: the live record sets
come from the provider, the records go to ``cutover.plan.build``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import dns.exception
import dns.rdtypes.txtbase

from cutover.leftbehind import spf_pass_networks
from cutover.records import RecordKey, RecordSet, parse_rdata

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
#: One TXT character-string holds at most 255 bytes (RFC 1035 3.3.14).
TXT_STRING = 255


@dataclass(frozen=True)
class Move:
    """One ``renumber`` entry: an address and its replacement, of the same family."""

    old: Address
    new: Address

    @classmethod
    def parse(cls, old: Any, new: Any) -> "Move":
        """``ValueError`` naming what is wrong (not an address, families differ, the same)."""
        a, b = ipaddress.ip_address(str(old).strip()), ipaddress.ip_address(str(new).strip())
        if a.version != b.version:
            raise ValueError(f"{a} is IPv{a.version} and {b} IPv{b.version}: a move keeps the address family")
        if a == b:
            raise ValueError(f"{a} moves to itself")
        return cls(a, b)


def records(live: Mapping[RecordKey, RecordSet], moves: Sequence[Move]) -> list[dict[str, Any]]:
    """Plan records (``name``, ``type``, ``from``, ``to``) for every live record set the
    moves change, in name order; none when the zone holds no moved address."""
    out = []
    for key in sorted(live):
        rs = live[key]
        if rs.type in ("A", "AAAA"):
            after = _addresses(rs.values, moves)
        elif rs.type in ("TXT", "SPF"):
            after = tuple(_spf(value, moves) for value in rs.values)
        else:
            continue
        if after != rs.values:
            out.append({"name": rs.name, "type": rs.type, "from": list(rs.values), "to": list(dict.fromkeys(after))})
    return out


def _addresses(values: Iterable[str], moves: Sequence[Move]) -> tuple[str, ...]:
    by_old = {m.old: m.new for m in moves}
    out: list[str] = []
    for value in values:
        try:
            replaced = str(by_old.get(ipaddress.ip_address(value), value))
        except ValueError:
            replaced = value
        if replaced not in out:
            out.append(replaced)
    return tuple(out)


def _spf(value: str, moves: Sequence[Move]) -> str:
    """One TXT value, renumbered if it is an SPF record naming a moved address."""
    text = _txt_text(value)
    words = text.split()
    if not words or words[0].lower() != "v=spf1":
        return value
    terms = dict(spf_pass_networks(text))
    changed = False
    out: list[str] = []
    for word in words:
        net = terms.get(word)
        move = next((m for m in moves if net is not None and m.old in net), None)
        if net is None or move is None:
            out.append(word)
            continue
        changed = True
        exact = net.num_addresses == 1
        covered = any(move.new in other for w, other in terms.items() if w != word)
        if exact:
            out.append(word.split(":", 1)[0] + f":{move.new}" if not covered else "")
        else:
            out.append(word)
            if not covered and move.new not in net:
                out.append(f"ip{move.new.version}:{move.new}")
    return _txt_value(" ".join(w for w in out if w)) if changed else value


def _txt_text(value: str) -> str:
    """A TXT value's strings joined (RFC 7208 3.3)."""
    try:
        rdata = parse_rdata("TXT", value)
        assert isinstance(rdata, dns.rdtypes.txtbase.TXTBase)
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    except (dns.exception.DNSException, ValueError):
        return ""


def _txt_value(text: str) -> str:
    """Text as a TXT value in presentation form: quoted strings of at most 255 bytes."""
    raw = text.encode()
    parts = [raw[i:i + TXT_STRING] for i in range(0, len(raw), TXT_STRING)] or [b""]
    return " ".join('"' + p.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
