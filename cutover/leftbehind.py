"""Records left behind: record sets that still send clients to the server the plan leaves.

"The old server" is its addresses: the A/AAAA values changes remove. The verdict must not say
"retire" while anything else in the zone points there. Pure functions; reading is the provider's.

Decisions, and why:

- An address the plan still points at afterwards (a change's ``after``, or an unchanged record
  set it manages) is not the old server's: after a swap, or with mail kept there, it stays.
- Same name: when a change moves a name's A away from an address (or deletes it) and the
  name's AAAA is outside the plan (or the other way round), IPv6 clients still reach the old
  server; that AAAA is left behind and its addresses count as the old server's too.
- Record sets in the plan are never reported and lead nowhere: the plan states their data.
  ``retire.ignore`` only silences that exact record set: it is still on the old server, so its
  addresses count and names pointing at it are reported (list those too), which keeps the
  verdict from coming early.
- SPF (TXT or type SPF): reported when a pass term (``ip4:``/``ip6:``, qualifier none or ``+``)
  covers an old address and some address replacing it is not covered by a pass term of that
  record, or nothing replaces it (a deletion, an address found by the same-name rule).
  ``a``/``mx``/``include``/``redirect`` need lookups and are not evaluated; adding the ip term
  the reason suggests is harmless. The two terms are parsed here because no maintained library
  parses offline: checkdmarc 6.0.4 resolves a/mx/include while parsing (and pulls in httpx,
  requests, cryptography); pyspf 2.0.14 (2020) only evaluates a record for one sender by DNS.
- MX, SRV, NS and CNAME record sets outside the plan whose target is a left-behind name (one
  with an A/AAAA left behind, or a CNAME found so) are reported; CNAME chains are followed
  breadth-first, each name once, so the work is bounded by the zone's size.
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from dataclasses import dataclass
from typing import Collection, Iterable, Literal, Mapping, Sequence

import dns.exception
import dns.rdatatype
import dns.rdtypes.txtbase

from cutover.records import (HOSTNAME_TARGET_FIELD, Change, RecordKey, RecordSet, absolute_name, in_zone,
                             parse_rdata, rdtype_of, relative_name, shorten)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Kind = Literal["address", "same-name", "spf", "target"]
Zone = Mapping[RecordKey, RecordSet]
ADDRESS_TYPES = ("A", "AAAA")
SPF_TYPES = ("TXT", "SPF")
REFERRING_TYPES = ("CNAME", "MX", "NS", "SRV")
_SPF_TERM = re.compile(r"^([+?~-]?)(ip4|ip6):([^/\s]+)(?:/(\d{1,3}))?$", re.IGNORECASE)
_ACK = ", acknowledged in retire.ignore: list this record set there too if it stays as well"


@dataclass(frozen=True)
class LeftBehind:
    """One record set still pointing at the old server: the offending values, and why.

    ``kind`` names the rule that found it (``address``, ``same-name``, ``spf``, ``target``),
    so a guard can single out the ones that send traffic to the old server."""

    key: RecordKey
    values: tuple[str, ...]
    reason: str
    kind: Kind

    def as_dict(self) -> dict[str, object]:
        return {"name": self.key[0], "type": self.key[1], "values": list(self.values), "reason": self.reason,
                "kind": self.kind}


@dataclass(frozen=True)
class _Old:
    """Why an address is the old server's, and the addresses replacing it (maybe none)."""

    why: str
    new: tuple[Address, ...]


def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ips(rs: RecordSet | None) -> list[Address]:
    if rs is None or rs.type not in ADDRESS_TYPES:
        return []
    return [ip for ip in map(_ip, rs.values) if ip is not None]


def _move_text(change: Change, subject: str = "") -> str:
    """A change in words: "www.example.com. A moves from X to Y", "... (X) is deleted"."""
    subject = subject or f"{change.name} {change.type}"
    before = ", ".join(change.before.values) if change.before else ""
    if change.after is None:
        return f"{subject} ({before}) is deleted"
    return f"{subject} moves from {before} to {', '.join(change.after.values)}"


def _moved(changes: Sequence[Change]) -> dict[Address, _Old]:
    """Every address a change removes: why (the first change by key), and every replacement."""
    out: dict[Address, _Old] = {}
    for change in sorted(changes, key=lambda c: c.key):
        after = _ips(change.after)
        for ip in (ip for ip in _ips(change.before) if ip not in after):
            first = out.get(ip, _Old(_move_text(change), ()))
            out[ip] = _Old(first.why, tuple(dict.fromkeys(first.new + tuple(after))))
    return out


def old_addresses(changes: Sequence[Change]) -> frozenset[Address]:
    """The addresses the plan moves away from: removed by a change and the target of none.

    ``find`` needs the zone to refine this: it also counts the addresses of same-name record
    sets left behind, and drops those an unchanged record set of the plan still holds."""
    kept = {ip for c in changes for ip in _ips(c.after)}
    return frozenset(ip for ip in _moved(changes) if ip not in kept)


def _kept(changes: Sequence[Change], zone: Zone, planned: Collection[RecordKey]) -> set[Address]:
    """Addresses the plan points at afterwards (changed: ``after``; unchanged: as in the zone)."""
    changed = {c.key: c.after for c in changes}
    return {ip for k in planned for ip in _ips(changed[k] if k in changed else zone.get(k))}


def _same_name(changes: Sequence[Change], zone: Zone, planned: Collection[RecordKey]) -> dict[RecordKey, str]:
    """Unplanned A/AAAA beside a planned A/AAAA that moves away from an address, with the move."""
    out: dict[RecordKey, str] = {}
    for change in sorted(changes, key=lambda c: c.key):
        if change.type in ADDRESS_TYPES and set(_ips(change.before)) - set(_ips(change.after)):
            other = (change.name, "AAAA" if change.type == "A" else "A")
            if other in zone and other not in planned:
                out.setdefault(other, _move_text(change, f"the same name's {change.type}"))
    return out


def find(changes: Sequence[Change], zone: Zone, *,
         managed: Collection[RecordKey], ignore: Collection[RecordKey] = ()) -> list[LeftBehind]:
    """Every record set in ``zone`` still pointing at the old server, sorted by key.

    ``zone``: what the provider could read (a DNS-query provider may see only part of it);
    ``managed``: the plan's keys; ``ignore``: the keys acknowledged in ``retire.ignore``."""
    planned = set(managed) | {c.key for c in changes}
    kept = _kept(changes, zone, planned)
    old = {ip: why for ip, why in _moved(changes).items() if ip not in kept}
    same = _same_name(changes, zone, planned)
    for key, move in same.items():
        for ip in set(_ips(zone[key])) - kept:
            old.setdefault(ip, _Old(f"the address of {key[0]} {key[1]}, left on the old server: {move}", ()))
    records = [zone[k] for k in sorted(zone) if k not in planned]
    found = _address_sets(records, old, same) + _spf_sets(records, old)
    found += _referrers(records, found, set(ignore))
    return sorted((lb for lb in found if lb.key not in ignore), key=lambda lb: lb.key)


def _address_sets(records: Iterable[RecordSet], old: Mapping[Address, _Old],
                  same: Mapping[RecordKey, str]) -> list[LeftBehind]:
    out = []
    for rs in (rs for rs in records if rs.type in ADDRESS_TYPES):
        hits = {v: old[ip] for v in rs.values if (ip := _ip(v)) is not None and ip in old}
        if not hits:
            continue
        head = f"{rs.name} {rs.type} {', '.join(hits)}"
        if rs.key in same:
            family = "IPv6" if rs.type == "AAAA" else "IPv4"
            reason = (f"{head}: {same[rs.key]}; this {rs.type} still sends {family} clients to the old server "
                      "(add it to the plan with the new server's address, or to retire.ignore)")
            out.append(LeftBehind(rs.key, tuple(hits), reason, "same-name"))
        else:
            whys = "; ".join(dict.fromkeys(o.why for o in hits.values()))
            reason = f"{head}: {whys}; this {rs.type} still sends clients to the old server"
            out.append(LeftBehind(rs.key, tuple(hits), reason, "address"))
    return out


# --------------------------------------------------------------------------- SPF


def spf_pass_networks(text: str) -> list[tuple[str, Network]]:
    """The ``ip4:``/``ip6:`` terms of an SPF record (its TXT strings joined) that authorise.

    ``-``, ``~`` and ``?`` terms authorise no sender; malformed terms are skipped (judging SPF
    syntax is not this module's job)."""
    words = text.split()
    if not words or words[0].lower() != "v=spf1":
        return []
    out = []
    for term in words[1:]:
        m = _SPF_TERM.match(term)
        if not m or m.group(1) not in ("", "+"):
            continue
        try:
            net = ipaddress.ip_network(m.group(3) + (f"/{m.group(4)}" if m.group(4) else ""), strict=False)
        except ValueError:
            continue
        if net.version == int(m.group(2)[-1]):
            out.append((term, net))
    return out


def _txt_text(value: str) -> str:
    """A TXT value's strings joined as RFC 7208 3.3 says: with nothing in between."""
    try:
        rdata = parse_rdata("TXT", value)
        assert isinstance(rdata, dns.rdtypes.txtbase.TXTBase)  # TXT and SPF share it
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    except (dns.exception.DNSException, ValueError):
        return ""


def _spf_problems(text: str, old: Mapping[Address, _Old]) -> list[str]:
    terms = spf_pass_networks(text)
    problems = []
    for ip in sorted(old, key=lambda a: (a.version, a)):
        covering = [t for t, net in terms if ip in net]
        missing = [n for n in old[ip].new if not any(n in net for _, net in terms)]
        if not covering or (old[ip].new and not missing):
            continue
        said = f"{covering[0]} authorises {ip} ({old[ip].why})"
        if missing:
            add = " ".join(f"ip{n.version}:{n}" for n in missing)
            problems.append(f"{said} but not {', '.join(map(str, missing))}; "
                            f"add {add} so mail from the new server passes SPF")
        else:
            problems.append(f"{said} and the plan names no address in its place; authorise the new server's "
                            f"address and remove {covering[0]} when the old server is switched off")
    return problems


def _spf_sets(records: Iterable[RecordSet], old: Mapping[Address, _Old]) -> list[LeftBehind]:
    out = []
    for rs in (rs for rs in records if rs.type in SPF_TYPES):
        found = {v: p for v in rs.values if (p := _spf_problems(_txt_text(v), old))}
        if found:
            why = "; ".join(p for ps in found.values() for p in ps)
            head = f"{rs.name} {rs.type} {shorten(', '.join(found))}"
            out.append(LeftBehind(rs.key, tuple(found), f"{head}: {why}", "spf"))
    return out


# --------------------------------------------------------------------------- names pointing at names


def _target(rs: RecordSet, value: str) -> str | None:
    try:
        return str(getattr(parse_rdata(rs.type, value), HOSTNAME_TARGET_FIELD[rs.type])).lower()
    except (dns.exception.DNSException, ValueError):
        return None


def _referrers(records: Iterable[RecordSet], found: list[LeftBehind], ignore: set[RecordKey]) -> list[LeftBehind]:
    """MX, SRV, NS and CNAME record sets whose target is a left-behind name, through CNAME chains."""
    pointing: dict[str, list[tuple[RecordSet, str]]] = {}
    for rs in (rs for rs in records if rs.type in REFERRING_TYPES):
        for v in rs.values:
            if (t := _target(rs, v)) is not None:
                pointing.setdefault(t, []).append((rs, v))
    what: dict[str, str] = {}  # left-behind name -> the record set that makes it so, in words
    for lb in (lb for lb in found if lb.key[1] in ADDRESS_TYPES):
        what.setdefault(lb.key[0], f"{lb.key[0]} {lb.key[1]} {', '.join(lb.values)}{_ACK if lb.key in ignore else ''}")
    hits: dict[RecordKey, tuple[RecordSet, dict[str, str]]] = {}
    queue = deque(sorted(what))
    while queue:
        name = queue.popleft()
        for rs, value in pointing.get(name, ()):
            hits.setdefault(rs.key, (rs, {}))[1].setdefault(value, name)
            if rs.type == "CNAME" and rs.name not in what:
                what[rs.name] = f"{rs.name} CNAME {name}{_ACK if rs.key in ignore else ''}"
                queue.append(rs.name)
    return [_referrer(rs, targets, what) for rs, targets in hits.values()]


def _referrer(rs: RecordSet, targets: Mapping[str, str], what: Mapping[str, str]) -> LeftBehind:
    values = tuple(v for v in rs.values if v in targets)
    whys = "; ".join(dict.fromkeys(f"{targets[v]} still points at the old server ({what[targets[v]]})" for v in values))
    return LeftBehind(rs.key, values, f"{rs.name} {rs.type} {', '.join(values)}: its target {whys}", "target")


# --------------------------------------------------------------------------- retire.ignore


def parse_ignore(text: str, zone: str) -> RecordKey:
    """The key of one ``retire.ignore`` entry: "legacy-ftp A", "@ MX", "mail.example.com. A".

    ``ValueError`` with a message for the operator otherwise (the plan adds the field path)."""
    parts = text.split() if isinstance(text, str) else []
    if len(parts) != 2:
        raise ValueError(f"{shorten(repr(text))} is not a record set "
                         "(expected 'NAME TYPE', e.g. 'legacy-ftp A', '@ MX' or 'mail.example.com. A')")
    name_text, type_text = parts
    try:
        rdtype = rdtype_of(type_text)
    except ValueError:
        raise ValueError(f"{text!r}: {type_text!r} is not a DNS record type (expected e.g. A, AAAA, MX, TXT)") from None
    if dns.rdatatype.is_metatype(rdtype) or rdtype == dns.rdatatype.ANY:
        raise ValueError(f"{text!r}: {type_text} is a query type, not a record set type")
    try:
        name = absolute_name(name_text, zone)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{text!r}: {name_text!r} is not a domain name ({exc})") from None
    lowered, bare = name_text.lower(), zone.rstrip(".").lower()
    if not lowered.endswith(".") and (lowered == bare or lowered.endswith("." + bare)):
        raise ValueError(f"{text!r}: {name_text} is relative, so it means {name}; write {lowered}. "
                         f"(with the final dot) or {relative_name(lowered + '.', zone)!r}")
    if not in_zone(name, zone):
        raise ValueError(f"{text!r}: {name} is outside the zone {absolute_name('@', zone)}")
    return (name, dns.rdatatype.to_text(rdtype))
