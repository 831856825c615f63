"""The checks before a change. Each returns refusals; the caller decides about ``--force``.

They answer the operator's fears: changing a record someone else changed meanwhile
(drift), cutting over while caches can still hold a long-lived old answer (TTL
readiness), leaving records on the old server (left-behind), a change the DNS itself
would refuse or break (integrity: MX/SRV/NS targets; conflict: a CNAME beside other
data), plus a blunt safety net against a plan that would rewrite most of a zone. Each
guard can be overridden on its own (``--force ttl``), so that getting past one never
switches the others off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from cutover.diff import ZoneDiff
from cutover.journal import LANDED, Run
from cutover.plan import Plan
from cutover.records import RecordKey, RecordSet
from cutover.times import iso, span


#: Every guard ``apply`` runs, in the order they are reported; ``--force GUARD`` takes these.
GUARDS = ("drift", "ttl", "safety", "left-behind", "integrity", "conflict", "readiness")
#: The minimum number of replaced or deleted record sets before the safety share applies:
#: in a zone of five record sets, moving three is an ordinary cutover, not a runaway plan.
SAFETY_MIN = 5


@dataclass(frozen=True)
class Refusal:
    """One guard's objection. ``message`` is absolute (it is journalled when forced);
    ``relative`` is a reading aid for now ("in 59m"); ``until`` is when it clears by
    itself, for the TTL guard (``apply --wait``)."""

    guard: str
    message: str
    relative: str = ""
    until: float | None = None

    def __str__(self) -> str:
        return f"{self.message} ({self.relative})" if self.relative else self.message

    def as_dict(self) -> dict[str, object]:
        return {"guard": self.guard, "message": self.message, "until": iso(self.until)}


def drift(plan: Plan, live: Mapping[RecordKey, RecordSet]) -> list[Refusal]:
    """A record whose live values are neither the plan's ``from`` nor already its ``to``."""
    out = []
    for record in plan.records:
        if record.from_ is None:
            continue
        current = live.get(record.key)
        values = current.values if current else ()
        if values in (record.from_, record.to):
            continue
        out.append(Refusal("drift", (
            f"{record.name} {record.type} changed since the plan was written: live "
            f"{_show(values)}, plan says from {_show(record.from_)} (records[{record.index}].from)"
        )))
    return out


def reverse_drift(expected: Mapping[RecordKey, RecordSet | None], live: Mapping[RecordKey, RecordSet],
                  target: Mapping[RecordKey, RecordSet | None]) -> list[Refusal]:
    """For rollback: a record set that is neither what the apply left nor what rollback restores."""
    out = []
    for key, after in sorted(expected.items()):
        current = live.get(key)
        if current == after or current == target.get(key):
            continue
        out.append(Refusal("drift", (
            f"{key[0]} {key[1]} changed since the apply: live {_show(current.values if current else ())}, "
            f"the apply left {_show(after.values if after else ())}"
        )))
    return out


def ttl_readiness(diff: ZoneDiff, prepares: Sequence[Run], now: float) -> list[Refusal]:
    """Refuse while caches may still hold an answer with the TTL from before ``prepare``.

    After ``prepare`` lowered a TTL at time P from T, a cache may hold the old answer
    with TTL T until P + T; changing the values before then makes the cutover last up
    to T instead of the short TTL. Without a prepare, a long live TTL is the problem.
    """
    plan = diff.plan
    long_ttl = plan.default_ttl
    lowered = _lowered(prepares)
    out = []
    for change in diff.changes:
        if change.before is None or change.ttl_only:
            continue
        key = change.key
        prepared = lowered.get(key)
        if prepared is not None and change.before.ttl < prepared[1]:
            when, old_ttl = prepared
            until = when + old_ttl
            if until > now:
                out.append(Refusal("ttl", (
                    f"{change.name} {change.type}: prepare lowered the TTL from {old_ttl}s at {iso(when)}; "
                    f"caches may hold the old TTL until {iso(until)}"
                ), span(until - now), until))
        elif change.before.ttl > long_ttl:  # no prepare, or a long TTL put back since
            until = now + change.before.ttl
            out.append(Refusal("ttl", (
                f"{change.name} {change.type}: live TTL is {change.before.ttl}s and no prepare was run; "
                f"after the change caches may hold the old answer until {iso(until)}. "
                f"Run `cutover prepare` and wait (apply --wait), or use --force ttl"
            ), span(until - now)))
    return out


def _lowered(prepares: Sequence[Run]) -> dict[RecordKey, tuple[float, int]]:
    """Per record set, the prepare whose long TTL lasts longest: (when, TTL before).

    Two prepares (86400 -> 3600, then 3600 -> 300) must not hide the first one's wait."""
    out: dict[RecordKey, tuple[float, int]] = {}
    for run in prepares:
        if run.status not in LANDED or run.changed is None:
            continue
        for c in run.changes:
            if c.status != "landed" or c.change.before is None:
                continue
            known = out.get(c.change.key)
            if known is None or run.changed + c.change.before.ttl > known[0] + known[1]:
                out[c.change.key] = (run.changed, c.change.before.ttl)
    return out


def prepared_until(prepares: Sequence[Run]) -> dict[RecordKey, float]:
    """Per record set, until when caches may hold an answer with its TTL from before prepare."""
    return {key: when + ttl for key, (when, ttl) in _lowered(prepares).items()}


def safety(diff: ZoneDiff, zone_size: int | None) -> list[Refusal]:
    """Refuse a diff that replaces or deletes more than the allowed share of the zone.

    Creating a record set destroys nothing, so only replaced and deleted sets count
    (which also keeps the share at most 100%); and below ``SAFETY_MIN`` of them a small
    zone's ordinary cutover is not refused for being a large share."""
    touched = [c for c in diff.changes if not c.ttl_only and c.before is not None]
    if zone_size is None or len(touched) < SAFETY_MIN:
        return []
    share = len(touched) / max(zone_size, len(touched))
    limit = diff.plan.max_change_share
    if share <= limit:
        return []
    return [Refusal("safety", (
        f"the plan would replace or delete {len(touched)} of the zone's {zone_size} record sets "
        f"({share:.0%}), more than safety.max_change_share ({limit:.0%})"
    ))]


#: Kinds of record left behind that send traffic to the old server: ``apply`` refuses them.
#: SPF terms and names that merely point at such a record are named, and hold the verdict.
REFUSED_LEFT_BEHIND = ("address", "same-name")


def left_behind(diff: ZoneDiff) -> list[Refusal]:
    """Refuse a change that leaves address records on the old server (an AAAA beside a moved
    A sends every IPv6 client to the old server after it is switched off)."""
    return [Refusal("left-behind", item.reason) for item in diff.left_behind if item.kind in REFUSED_LEFT_BEHIND]


def integrity(diff: ZoneDiff) -> list[Refusal]:
    """Refuse a change that leaves an in-zone MX, SRV or NS target without an address: BIND
    answers a bare REFUSED, other providers accept it and mail bounces."""
    return [Refusal("integrity", p.message) for p in diff.broken_targets]


def conflict(diff: ZoneDiff) -> list[Refusal]:
    """Refuse a change that clashes with records outside the plan (a CNAME beside other
    data, an MX or SRV at a CNAME)."""
    return [Refusal("conflict", c.message) for c in diff.conflicts]


def readiness(diff: ZoneDiff) -> list[Refusal]:
    """Refuse to point DNS at a server that is not ready for the domain: each check of the
    new web and mail servers that failed or is not ready yet, in the server's own words."""
    return [Refusal("readiness", f"{c.check} {c.name} at {c.target}: {c.detail}") for c in diff.readiness if not c.ok]


def _show(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]" if values else "(nothing)"
