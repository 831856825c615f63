"""What would change: the plan's desired record sets against the live ones.

Pure functions over plain values; reading the live zone is the provider's job and
happens at the edge (``cutover.engine``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from cutover.plan import Plan
from cutover.records import Change, RecordKey, RecordSet


@dataclass(frozen=True)
class ZoneDiff:
    """The changes one plan needs, with the live record sets they were computed from."""

    plan: Plan
    live: Mapping[RecordKey, RecordSet]
    changes: tuple[Change, ...]

    @property
    def in_sync(self) -> bool:
        return not self.changes

    def as_dict(self) -> dict:
        return {
            "plan": str(self.plan.path),
            "zone": self.plan.zone,
            "changes": [c.as_dict() for c in self.changes],
        }


def compute(plan: Plan, live: Mapping[RecordKey, RecordSet]) -> ZoneDiff:
    """Changes that make the managed record sets match the plan; others are never touched."""
    changes = []
    for record in plan.records:
        before = live.get(record.key)
        after = record.desired(before, plan.default_ttl)
        if before != after:
            changes.append(Change(before=before, after=after))
    return ZoneDiff(plan=plan, live=live, changes=tuple(changes))


def lower_ttls(plan: Plan, live: Mapping[RecordKey, RecordSet], ttl: int) -> tuple[Change, ...]:
    """``prepare``: the TTL-only changes that bring managed, existing record sets down to ``ttl``."""
    out = []
    for record in plan.records:
        current = live.get(record.key)
        if current is not None and current.ttl > ttl:
            out.append(Change(before=current, after=replace(current, ttl=ttl)))
    return tuple(out)


def restore(snapshot: Mapping[RecordKey, RecordSet | None], live: Mapping[RecordKey, RecordSet]) -> tuple[Change, ...]:
    """``rollback``: changes that put every snapshotted record set back as it was."""
    out = []
    for key in sorted(snapshot):
        before, after = live.get(key), snapshot[key]
        if before != after:
            out.append(Change(before=before, after=after))
    return tuple(out)
