"""Planned changes that clash with records outside the plan.

A plan is checked on its own when it is loaded (a CNAME beside other data *in the
plan*), but the live zone holds more than the plan names: a plan creating ``mail CNAME``
beside a live ``mail A`` would make every resolver's answer depend on which RRset it
fetched first (RFC 1034 3.6.2 forbids it, and most servers refuse it), and an MX or SRV
pointing at a name that is a CNAME breaks mail delivery (RFC 2181 10.3). These are
found against what the provider read, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from cutover.records import HOSTNAME_TARGET_FIELD, Change, RecordKey, RecordSet, parse_rdata, relative_name

#: Types that may share a name with a CNAME (DNSSEC's own records).
BESIDE_CNAME = ("RRSIG", "NSEC", "NSEC3")
#: Types whose data we read at a name that the plan makes a CNAME, when the provider can
#: only see the names it is asked for.
COMMON_TYPES = ("A", "AAAA", "MX", "TXT", "SRV", "CAA")


@dataclass(frozen=True)
class Conflict:
    key: RecordKey
    message: str


def find(changes: Sequence[Change], live: Mapping[RecordKey, RecordSet], zone: str) -> list[Conflict]:
    """Every clash between the changes and the live record sets they leave in place."""
    after = _after(changes, live)
    out: list[Conflict] = []
    for c in changes:
        if c.after is None:
            continue
        if c.type == "CNAME":
            out += _beside_cname(c.after, after, zone)
        elif (c.name, "CNAME") in after:
            out.append(Conflict(c.key, f"{relative_name(c.name, zone)} {c.type}: the name is a CNAME in the zone "
                                       f"({after[(c.name, 'CNAME')].values[0]}); a CNAME cannot share its name with "
                                       "other data (RFC 1034 3.6.2): delete the CNAME in the plan, or choose another name"))
        out += _target_is_cname(c.after, after, zone)
    return out


def keys_to_read(changes: Sequence[Change]) -> list[RecordKey]:
    """What a provider that reads by name must also read for ``find`` to see the clashes."""
    keys: list[RecordKey] = []
    for c in changes:
        if c.after is None:
            continue
        if c.type == "CNAME":
            keys += [(c.name, t) for t in COMMON_TYPES]
        else:
            keys.append((c.name, "CNAME"))
        keys += [(target, "CNAME") for target in _targets(c.after)]
    return list(dict.fromkeys(keys))


def _after(changes: Sequence[Change], live: Mapping[RecordKey, RecordSet]) -> dict[RecordKey, RecordSet]:
    zone_after = dict(live)
    for c in changes:
        zone_after.pop(c.key, None)
        if c.after is not None:
            zone_after[c.key] = c.after
    return zone_after


def _beside_cname(cname: RecordSet, after: Mapping[RecordKey, RecordSet], zone: str) -> list[Conflict]:
    others = sorted(t for (name, t) in after if name == cname.name and t not in ("CNAME", *BESIDE_CNAME))
    if not others:
        return []
    return [Conflict(cname.key, f"{relative_name(cname.name, zone)} CNAME: the zone also holds {', '.join(others)} at "
                                "this name, which the plan does not delete; a CNAME cannot share its name with other "
                                "data (RFC 1034 3.6.2): add those record sets to the plan with `to: []`")]


def _target_is_cname(rs: RecordSet, after: Mapping[RecordKey, RecordSet], zone: str) -> list[Conflict]:
    out = []
    for target in _targets(rs):
        alias = after.get((target, "CNAME"))
        if alias is not None:
            out.append(Conflict(rs.key, f"{relative_name(rs.name, zone)} {rs.type}: the target {target} is a CNAME "
                                        f"(to {alias.values[0]}); {rs.type} must point at a name with address records "
                                        "(RFC 2181 10.3): point it at the CNAME's target instead"))
    return out


def _targets(rs: RecordSet) -> list[str]:
    if rs.type not in ("MX", "SRV"):
        return []
    attr = HOSTNAME_TARGET_FIELD[rs.type]
    names = [getattr(parse_rdata(rs.type, v), attr).to_text().lower() for v in rs.values]
    return [n for n in names if n != "."]
