"""Record sets and changes: the plain values that flow between plan, providers and diff.

Every value is held in one canonical presentation form (absolute names, lower-case
where DNS compares case-insensitively, TXT quoted, the set sorted), produced by
dnspython's own parser, so that records read from Route 53, from a zone transfer or
from a plan compare equal exactly when the DNS would consider them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Literal

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

#: Types whose first value is a host name that must not be an address (RFC 2181 10.3).
HOSTNAME_TARGET_FIELD = {"MX": "exchange", "NS": "target", "SRV": "target", "CNAME": "target"}

MAX_TTL = 2**31 - 1


def absolute_name(name: str, zone: str) -> str:
    """The fully qualified, lower-case form of a plan name ("@", relative, or absolute)."""
    origin = dns.name.from_text(zone)
    if name in ("@", ""):
        return origin.to_text().lower()
    return dns.name.from_text(name, origin=origin).to_text().lower()


def relative_name(name: str, zone: str) -> str:
    """The plan-style name of ``name`` in ``zone``: "@" for the apex, else relative."""
    n = dns.name.from_text(name)
    origin = dns.name.from_text(zone)
    if n == origin:
        return "@"
    if n.is_subdomain(origin):
        return n.relativize(origin).to_text().lower()
    return n.to_text().lower()


def in_zone(name: str, zone: str) -> bool:
    return dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))


def rdtype_of(type_name: str) -> dns.rdatatype.RdataType:
    """The dnspython type for a mnemonic; raises ``ValueError`` for unknown ones."""
    try:
        return dns.rdatatype.from_text(type_name.upper())
    except dns.rdatatype.UnknownRdatatype as exc:
        raise ValueError(f"unknown record type {type_name!r}") from exc


def parse_rdata(rdtype: str, text: str, origin: str | None = None) -> dns.rdata.Rdata:
    """Parse one value in presentation format. Relative names are made absolute in ``origin``.

    A TXT value written without any quotes is taken as one string, spaces included:
    that is what people mean by ``v=spf1 mx -all``, although the zone-file syntax
    would make it three strings.
    """
    if rdtype.upper() in ("TXT", "SPF") and '"' not in text:
        text = f"\"{text}\""
    origin_name = dns.name.from_text(origin) if origin else dns.name.root
    return dns.rdata.from_text(
        dns.rdataclass.IN, rdtype_of(rdtype), text, origin=origin_name, relativize=False
    )


def canonical_rdata(rd: dns.rdata.Rdata) -> str:
    """The canonical text of one value.

    Going through the DNSSEC canonical wire form (RFC 4034 6.2) lower-cases the embedded
    names of exactly the types where case does not matter, and nothing else: a TXT
    string keeps its case, an MX exchange does not.
    """
    wire = rd.to_digestable()
    canon = dns.rdata.from_wire(rd.rdclass, rd.rdtype, wire, 0, len(wire))
    return canon.to_text()


@lru_cache(maxsize=65536)
def normalise_value(rdtype: str, text: str, origin: str | None = None) -> str:
    """Canonical text of a presentation-format value; raises ``ValueError`` with the reason."""
    try:
        return canonical_rdata(parse_rdata(rdtype, text, origin))
    except dns.exception.SyntaxError as exc:
        raise ValueError(_explain(rdtype, text, exc)) from exc
    except (dns.exception.DNSException, ValueError, TypeError) as exc:
        raise ValueError(_explain(rdtype, text, exc)) from exc


def _explain(rdtype: str, text: str, exc: Exception) -> str:
    expected = {
        "A": "a valid IPv4 address",
        "AAAA": "a valid IPv6 address",
        "MX": "a valid MX value ('PRIORITY HOST')",
        "SRV": "a valid SRV value ('PRIORITY WEIGHT PORT TARGET')",
        "CAA": "a valid CAA value ('FLAGS TAG \"VALUE\"')",
        "TXT": "a valid TXT value (quoted strings of at most 255 characters each)",
    }.get(rdtype.upper(), f"a valid {rdtype.upper()} value")
    detail = str(exc).strip()
    noise = ("", "None", text, "Text input is malformed.")
    suffix = f" ({detail})" if detail not in noise else ""
    return f"{shorten(text)!r} is not {expected}{suffix}"


def shorten(text: str, limit: int = 60) -> str:
    """Long values (a 2 KB TXT record) are cut in messages so the message stays readable."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def normalise_values(rdtype: str, values: Iterable[str], origin: str | None = None) -> tuple[str, ...]:
    """A canonical, sorted, de-duplicated tuple: the identity of a record set's data."""
    return tuple(sorted({normalise_value(rdtype, v, origin) for v in values}))


RecordKey = tuple[str, str]
"""(absolute lower-case name, type mnemonic): how record sets are matched up."""


@dataclass(frozen=True, order=True)
class RecordSet:
    """One RRset as it is or should be: name, type, TTL and canonical values."""

    name: str
    type: str
    ttl: int
    values: tuple[str, ...]

    @property
    def key(self) -> RecordKey:
        return (self.name, self.type)

    @classmethod
    def build(cls, name: str, type_: str, ttl: int, values: Iterable[str]) -> "RecordSet":
        """Make a record set from provider data, normalising name and values."""
        t = type_.upper()
        return cls(dns.name.from_text(name).to_text().lower(), t, int(ttl), normalise_values(t, values))

    def as_dict(self) -> dict:
        return {"ttl": self.ttl, "values": list(self.values)}


Action = Literal["create", "update", "delete"]


class Keyed:
    """A value identified by a ``RecordKey`` (a change, a watched record): its name and type."""

    if TYPE_CHECKING:  # a dataclass field in one subclass, a property in another

        @property
        def key(self) -> RecordKey: ...

    @property
    def name(self) -> str:
        return self.key[0]

    @property
    def type(self) -> str:
        return self.key[1]


@dataclass(frozen=True)
class Change(Keyed):
    """The move of one record set from ``before`` to ``after`` (either may be absent)."""

    before: RecordSet | None
    after: RecordSet | None

    def __post_init__(self) -> None:
        if self.before is None and self.after is None:
            raise ValueError("a change needs a before or an after")

    @property
    def action(self) -> Action:
        if self.before is None:
            return "create"
        if self.after is None:
            return "delete"
        return "update"

    @property
    def key(self) -> RecordKey:
        rs = self.after or self.before
        assert rs is not None
        return rs.key

    @property
    def ttl_only(self) -> bool:
        """True when only the TTL moves, as in ``prepare``."""
        return (
            self.before is not None
            and self.after is not None
            and self.before.values == self.after.values
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "action": self.action,
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
        }


def index(record_sets: Iterable[RecordSet]) -> dict[RecordKey, RecordSet]:
    return {rs.key: rs for rs in record_sets}
