"""In-zone targets of MX, SRV and NS records must have an address: checked before sending.

Why before sending: BIND checks part of this on every dynamic update (its
``check-integrity`` option, on by default) and answers a bare REFUSED, which an
operator cannot tell from a key without permission. Every other provider accepts the
same change, and mail or the service then silently fails. So the plan's changes are
checked here, against the zone as it will be, and each problem names the record.

The rules, as BIND 9.18 applies them to dynamic updates (observed against ``named``;
``tests/integration/test_rfc2136.py`` checks that this module agrees with it):

- an MX record set the update adds or replaces: every target inside the zone must,
  after the update, own an A or AAAA record and must not be a CNAME; else REFUSED;
- the zone's apex NS set, after any update: every target inside the zone must own an
  address and must not be a CNAME ("post update name server sanity check"); else
  REFUSED, also when the update only deletes the target's address;
- SRV targets and the targets of delegations below the apex are not checked on
  update (``named-checkzone`` warns about them), but they are just as broken, so they
  are reported too, without the word "BIND refuses".

Not checked, because their addresses live elsewhere: targets outside the zone, the
root name (the "no service here" target of a null MX or SRV), and names at or below
a delegation inside the zone. A wildcard that gives the target an address counts, as
it does for BIND and for resolvers.

Only problems the change set touches are reported: a record set it creates or
replaces, or a target whose data it changes. Old breakage elsewhere in the zone is
not this plan's business and must not block it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

import dns.name

from cutover.records import Change, RecordKey, RecordSet, relative_name

#: Types whose values name a host that must own an address.
TARGET_TYPES = ("MX", "SRV", "NS")

#: What a target is read for: its addresses, and whether it is an alias instead.
TARGET_READ_TYPES = ("A", "AAAA", "CNAME")

State = Literal["address", "cname", "empty", "none"]

_CONSEQUENCE = {
    "MX": "mail could not be delivered",
    "SRV": "clients could not reach the service",
    "NS": "resolvers could not reach that name server",
}


@dataclass(frozen=True, order=True)
class Problem:
    """One record value whose target will have no usable address after the change."""

    key: RecordKey
    value: str
    target: str
    message: str
    #: True where BIND refuses the whole update for it (check-integrity).
    refused_by_bind: bool

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, object]:
        return {"name": self.key[0], "type": self.key[1], "value": self.value, "target": self.target,
                "refused_by_bind": self.refused_by_bind, "message": self.message}


def problems(changes: Sequence[Change], live: Mapping[RecordKey, RecordSet], zone: str) -> list[Problem]:
    """Every MX, SRV and NS value the change set leaves pointing at an in-zone name
    without an address.

    ``live`` must hold the whole zone, or at least the sets ``target_keys`` lists:
    a target that was never read looks like one without an address."""
    zone = _absolute(zone)
    after = _apply(live, changes)
    before_view, after_view = _View(live, zone), _View(after, zone)
    changed = {c.key for c in changes}
    found = []
    for rs in after.values():
        if rs.type not in TARGET_TYPES:
            continue
        for value in rs.values:
            target = _target(rs.type, value)
            if target is None or not after_view.checked(target):
                continue
            state = after_view.state(target)
            if state == "address":
                continue
            was = before_view.state(target)
            if rs.key in changed or was != state:
                found.append(_problem(rs, value, target, state, was, zone, rs.key in changed))
    return sorted(found)


def target_keys(changes: Sequence[Change], zone: str) -> list[RecordKey]:
    """The record sets ``problems`` needs beyond the plan's own, for a provider that
    reads only the names it is asked for (DNS queries, the ``manual`` provider).

    For each in-zone target of an MX, SRV or NS set the change set writes: its A, AAAA
    and CNAME. For each name whose A, AAAA or CNAME the change set touches: the same
    three, plus the apex MX set that may point at it.

    The apex NS set is not listed: the ``manual`` provider reads it at the parent zone,
    which fails where the parent's servers are unknown (a lab zone), and a change to a
    name server's own address is rare in a web/mail move. Providers that list the whole
    zone (``rfc2136`` by transfer, the BIND case) still get that check; add
    ``(zone, "NS")`` where reading it is known to be safe."""
    zone = _absolute(zone)
    names: set[str] = set()
    for change in changes:
        if change.after is not None and change.type in TARGET_TYPES:
            names.update(_targets_inside(change.after, zone))
        if change.type in TARGET_READ_TYPES:
            names.add(change.name)
    keys = {(name, rtype) for name in names for rtype in TARGET_READ_TYPES}
    if any(c.type in TARGET_READ_TYPES for c in changes):
        keys.add((zone, "MX"))
    return sorted(keys)


# --------------------------------------------------------------------------- the zone after


class _View:
    """The record sets of one zone state, with the lookups a target check needs."""

    def __init__(self, sets: Mapping[RecordKey, RecordSet], zone: str) -> None:
        self.sets, self.zone = sets, zone
        self.owners = {name for name, _ in sets}
        self.delegations = {name for name, rtype in sets if rtype == "NS" and name != zone}
        self.existing = _with_ancestors(self.owners, zone)

    def checked(self, target: str) -> bool:
        """Inside the zone and not at or below a delegation (that data is the child's)."""
        return _inside(target, self.zone) and not any(_inside(target, d) for d in self.delegations)

    def state(self, target: str) -> State:
        """What a lookup of ``target`` finds: an address, an alias, an empty name, nothing."""
        owner = target if target in self.existing else self._wildcard(target)
        if owner is None:
            return "none"
        if (owner, "A") in self.sets or (owner, "AAAA") in self.sets:
            return "address"
        if (owner, "CNAME") in self.sets:
            return "cname"
        return "empty" if owner not in self.owners else "none"

    def _wildcard(self, target: str) -> str | None:
        """The wildcard that would answer for ``target`` (RFC 4592: ``*`` at the closest encloser)."""
        name = dns.name.from_text(target).parent()
        while name.to_text() not in self.existing and name != dns.name.root:
            name = name.parent()
        wildcard = f"*.{name.to_text()}" if name != dns.name.root else "*."
        return wildcard if wildcard in self.owners else None


def _apply(live: Mapping[RecordKey, RecordSet], changes: Sequence[Change]) -> dict[RecordKey, RecordSet]:
    after = dict(live)
    for change in changes:
        if change.after is None:
            after.pop(change.key, None)
        else:
            after[change.key] = change.after
    return after


def _with_ancestors(owners: Iterable[str], zone: str) -> set[str]:
    """Owner names plus every name between them and the apex (empty non-terminals exist)."""
    origin = dns.name.from_text(zone)
    out = set()
    for owner in owners:
        name = dns.name.from_text(owner)
        while name.is_subdomain(origin) and name.to_text() not in out:
            out.add(name.to_text())
            if name == origin:
                break
            name = name.parent()
    return out


# --------------------------------------------------------------------------- wording


def _problem(rs: RecordSet, value: str, target: str, state: State, was: State, zone: str, set_changed: bool) -> Problem:
    refused = _bind_refuses(rs, state, zone, set_changed)
    consequence = _CONSEQUENCE[rs.type]
    if rs.type == "NS" and rs.name != zone:
        consequence += f" for {rs.name}"
    why = f"BIND refuses such an update (check-integrity) and {consequence}" if refused else consequence
    message = f"{relative_name(rs.name, zone)} {rs.type} {value}: {_what(target, state, was, rs.type)}; {why}"
    return Problem(rs.key, value, target, message, refused)


def _what(target: str, state: State, was: State, rtype: str) -> str:
    if state == "cname":
        return (f"{target} is an alias (CNAME) in the zone; an {rtype} target must be the name that "
                "holds the A or AAAA record")
    removed = " (the change removes its address)" if was == "address" else ""
    return f"{target} is in the zone but will have no A or AAAA record after the change{removed}"


def _bind_refuses(rs: RecordSet, state: State, zone: str, set_changed: bool) -> bool:
    """Which problems make BIND answer REFUSED (it skips an empty non-terminal MX target)."""
    if rs.type == "NS":
        return rs.name == zone
    return rs.type == "MX" and set_changed and state != "empty"


# --------------------------------------------------------------------------- names


def _target(rtype: str, value: str) -> str | None:
    """The host name an MX, SRV or NS value points at (its last field, in canonical
    form); None for the root, the target of a null MX or an SRV "no service here"."""
    target = value.split()[-1].lower()
    return None if target == "." else target


def _targets_inside(rs: RecordSet, zone: str) -> set[str]:
    targets = (_target(rs.type, value) for value in rs.values)
    return {t for t in targets if t is not None and _inside(t, zone)}


def _inside(name: str, zone: str) -> bool:
    return dns.name.from_text(name).is_subdomain(dns.name.from_text(zone))


def _absolute(zone: str) -> str:
    return dns.name.from_text(zone).to_text().lower()
