"""What would change: the plan's desired record sets against the live ones.

Pure functions over plain values; reading the live zone is the provider's job and
happens at the edge (``cutover.apply``). A diff also names the record sets the plan
would leave on the old server's addresses (``cutover.leftbehind``), because a dry run
that says nothing of the AAAA still pointing at the old server is not a dry run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping

from cutover import conflicts as conflictsmod, integrity, leftbehind
from cutover.plan import Plan
from cutover.readiness import Check
from cutover.records import Change, RecordKey, RecordSet

if TYPE_CHECKING:  # guards judge a diff; the diff only carries their refusals
    from cutover.guards import Refusal


@dataclass(frozen=True)
class ZoneDiff:
    """The changes one plan needs, with the live record sets they were computed from."""

    plan: Plan
    live: Mapping[RecordKey, RecordSet]
    changes: tuple[Change, ...]
    left_behind: tuple[leftbehind.LeftBehind, ...] = ()
    broken_targets: tuple[integrity.Problem, ...] = ()
    conflicts: tuple[conflictsmod.Conflict, ...] = ()
    refusals: tuple["Refusal", ...] = ()  # what apply would refuse (filled in by cutover.apply.review)
    readiness: tuple[Check, ...] = ()  # the new servers' checks (run by cutover.apply.review)

    @property
    def in_sync(self) -> bool:
        return not self.changes

    def as_dict(self) -> dict:
        return {
            "plan": str(self.plan.path),
            "zone": self.plan.zone,
            "changes": [c.as_dict() for c in self.changes],
            "left_behind": [item.as_dict() for item in self.left_behind],
            "broken_targets": [p.as_dict() for p in self.broken_targets],
            "refusals": [r.as_dict() for r in self.refusals],
            "readiness": [c.as_dict() for c in self.readiness],
        }


def compute(plan: Plan, live: Mapping[RecordKey, RecordSet],
            targets: Mapping[RecordKey, RecordSet] | None = None) -> ZoneDiff:
    """Changes that make the managed record sets match the plan; others are never touched.
    ``targets`` are extra record sets read for the in-zone MX/SRV/NS targets' integrity."""
    changes = []
    for record in plan.records:
        before = live.get(record.key)
        after = record.desired(before, plan.default_ttl)
        if before != after:
            changes.append(Change(before=before, after=after))
    left = leftbehind.find(changes, live, managed=plan.keys, ignore=plan.retire.ignore)
    seen = {**(targets or {}), **live}
    broken = integrity.problems(changes, seen, plan.zone)
    clashes = conflictsmod.find(changes, seen, plan.zone)
    return ZoneDiff(plan=plan, live=live, changes=tuple(changes), left_behind=tuple(left), broken_targets=tuple(broken),
                    conflicts=tuple(clashes))


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
