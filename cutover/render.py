"""Human output: tables and summaries. JSON output is the data types' own ``as_dict``.

Kept apart from the CLI so that the demo and the CLI show the same things the same way.
"""

from __future__ import annotations

from typing import Sequence

from tabulate import tabulate

from cutover.apply import Outcome
from cutover.diff import ZoneDiff
from cutover.times import iso, span, when
from cutover.records import Change, RecordSet, relative_name


def _cell(rs: RecordSet | None) -> str:
    return "\n".join(rs.values) if rs and rs.values else "-"


def _ttl(change: Change) -> str:
    before = change.before.ttl if change.before else None
    after = change.after.ttl if change.after else None
    if before is None or after is None or before == after:
        return str(after if after is not None else before)
    return f"{before} -> {after}"


def changes_table(zone: str, changes: Sequence[Change]) -> str:
    rows = [
        (relative_name(c.name, zone), c.type, c.action, _ttl(c), _cell(c.before), _cell(c.after))
        for c in changes
    ]
    return tabulate(rows, headers=("name", "type", "action", "TTL", "now", "after"), tablefmt="simple")


def diff_text(zdiff: ZoneDiff) -> str:
    head = f"{zdiff.plan.zone} ({zdiff.plan.path}, {zdiff.plan.provider.type})"
    if zdiff.in_sync:
        return f"{head}: in sync, nothing to change"
    n = len(zdiff.changes)
    return f"{head}: {n} change{'s' if n != 1 else ''}\n\n{changes_table(zdiff.plan.zone, zdiff.changes)}\n"


def outcome_text(o: Outcome) -> str:
    lines = [f"{o.plan.zone}: {o.kind} {o.status}" + (f" (run {o.run_id})" if o.run_id else "")]
    if o.changes:
        lines += ["", changes_table(o.plan.zone, o.changes), ""]
    for s in o.servers:
        lines.append(f"  nameserver {s.server}: {s.state} - {s.detail}")
    if o.changed is not None:
        lines.append(f"  changed at {iso(o.changed)}")
    if o.old_answers_until is not None:
        lines.append(f"  old answers may stay in caches until {when(o.old_answers_until)}")
    if o.earliest_retire is not None:
        lines.append(f"  earliest retire of the old server: {when(o.earliest_retire)} "
                     f"(parallel period {span(o.plan.retire.parallel_period).removeprefix('in ')})")
    lines += [f"  note: {n}" for n in o.notes]
    return "\n".join(lines)


def status_text(doc: dict) -> str:
    """``cutover status`` for people: the runs, the last round, the verdict and its reasons."""
    lines = [f"{doc['zone']} ({doc['plan']})"]
    if not doc["runs"]:
        lines.append("  nothing prepared or applied yet")
    for run in doc["runs"]:
        landed = sum(1 for c in run["changes"] if c["status"] == "landed")
        when_ = run["changed"] or run["started"]
        lines.append(f"  {run['kind']:<8} run {run['id']:<3} {run['status']:<10} {when_}  "
                     f"{landed}/{len(run['changes'])} changes landed" + (f"  ({run['error']})" if run["error"] else ""))
        for v in run.get("verifications", []):
            lines.append(f"      nameserver {v['server']}: {v['state']} ({v['detail']})")
    last = doc.get("last_round")
    if last:
        lines.append(f"  watch: {doc['rounds']} rounds, last {last['time']}")
        for rec in last["records"]:
            c = rec["counts"]
            lines.append(f"      {rec['name']} {rec['type']}: new {c['new']} old {c['old']} other {c['other']} "
                         f"error {c['error']} ({rec['share']:.0%} new)")
    verdict = doc.get("verdict")
    if verdict:
        head = "yes" if verdict["retire"] else f"not yet (earliest {verdict['earliest'] or 'unknown'})"
        lines.append(f"  retire the old server: {head}")
        for cond in verdict.get("conditions", []):
            lines.append(f"      [{'x' if cond['met'] else ' '}] {cond['name']}: {cond['reason']}")
    elif doc["runs"]:
        lines.append("  retire the old server: unknown until `cutover watch` has run a round")
    return "\n".join(lines)
