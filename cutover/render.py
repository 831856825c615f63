"""Human output: tables and summaries. JSON output is the data types' own ``as_dict``.

Kept apart from the CLI so that the demo and the CLI show the same things the same way.
"""

from __future__ import annotations

from typing import Collection, Sequence

from tabulate import tabulate

from cutover.apply import Outcome
from cutover.diff import ZoneDiff
from cutover.guards import Refusal
from cutover.leftbehind import LeftBehind
from cutover.observe.types import RecordSummary
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


def diff_text(zdiff: ZoneDiff, overriding: bool | Collection[str] = False) -> str:
    """The changes, the records left behind, and what apply would refuse (or, when
    ``overriding``, which refusals the operator is overriding)."""
    head = f"{zdiff.plan.zone} ({zdiff.plan.path}, {zdiff.plan.provider.type})"
    extra = "\n".join(filter(None, [left_behind_text(zdiff.plan.zone, zdiff.left_behind),
                                      refusals_text(zdiff.refusals, overriding)]))
    if zdiff.in_sync:
        return f"{head}: in sync, nothing to change" + (f"\n{extra}" if extra else "")
    n = len(zdiff.changes)
    text = f"{head}: {n} change{'s' if n != 1 else ''}\n\n{changes_table(zdiff.plan.zone, zdiff.changes)}\n"
    return text + (f"\n{extra}\n" if extra else "")


def refusals_text(refusals: Sequence[Refusal], overriding: bool | Collection[str] = False) -> str:
    """"apply would refuse" with each guard's reason; the ones ``--force`` overrides marked."""
    if not refusals:
        return ""
    lines = ["apply would refuse (--force GUARD overrides one):"]
    for r in refusals:
        mark = "  OVERRIDDEN" if overriding is True or (not isinstance(overriding, bool) and r.guard in overriding) else ""
        lines.append(f"  {r.guard}: {r}{mark}")
    return "\n".join(lines)


def left_behind_text(zone: str, items: Sequence[LeftBehind]) -> str:
    """The record sets that still point at the old server, one per line, with why."""
    if not items:
        return ""
    lines = [f"left behind on the old server ({len(items)}; add to the plan, or to retire.ignore if intended):"]
    lines += [f"  {relative_name(i.key[0], zone)} {i.key[1]} {' '.join(i.values)}: {i.reason}" for i in items]
    return "\n".join(lines)


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
        lines.append(f"  earliest retire of {', '.join(o.retiring) or 'the old server'}: {when(o.earliest_retire)} "
                     f"(parallel period {span(o.plan.retire.parallel_period).removeprefix('in ')})")
    lines += [f"  note: {n}" for n in o.notes]
    return "\n".join(lines)


#: How many not-new resolvers ``status`` names per record before it says "+N more".
STATUS_NAMES = 6


def status_text(doc: dict) -> str:
    """``cutover status`` for people: the report's facts, compactly.

    The runs and their verification, the change the verdict counts from, the last round
    per record against the threshold with the resolvers not yet on the new data (stale
    ones flagged), the milestones when the document carries a ``timeline``
    (``cutover.report``), and the verdict with the reason for each condition.
    """
    lines = [f"{doc['zone']} ({doc['plan']})"]
    if not doc["runs"]:
        lines.append("  nothing prepared or applied yet")
    for run in doc["runs"]:
        landed = sum(1 for c in run["changes"] if c["status"] == "landed")
        when_ = run["changed"] or run["started"]
        lines.append(f"  {run['kind']:<8} run {run['id']:<3} {run['status']:<10} {when_}  "
                     f"{landed}/{len(run['changes'])} changes landed" + (f"  ({run['error']})" if run["error"] else ""))
        if run.get("forced"):
            lines.append(f"      guards overridden with --force: {run['forced']}")
        for v in run.get("verifications", []):
            lines.append(f"      nameserver {v['server']}: {v['state']} ({v['detail']})")
    last = doc.get("last_round")
    verdict = doc.get("verdict")
    if last:
        change = last.get("change") or {}
        if change.get("time"):
            lines.append(f"  change: {change['time']} ({change.get('source', '')})")
        threshold = (verdict or last.get("verdict") or {}).get("threshold")
        lines.append(f"  watch: {doc['rounds']} rounds, last {last['time']}")
        for rec in last["records"]:
            lines += _record_lines(rec, threshold)
    for entry in doc.get("timeline") or []:
        if entry.get("kind") not in ("watch", "prepare", "apply", "rollback", "verify"):
            lines.append(f"  {entry.get('time') or '?'}  {entry.get('title')}"
                         + ("  (to come)" if entry.get("status") == "due" else ""))
    if verdict:
        retiring = ", ".join(verdict.get("retiring") or []) or "the old server"
        head = (f"yes: {retiring} can be switched off" if verdict["retire"]
                else f"not yet: keep {retiring} running (earliest {verdict['earliest'] or 'unknown'})")
        lines.append(f"  retire: {head}")
        for cond in verdict.get("conditions", []):
            lines.append(f"      [{'x' if cond['met'] else ' '}] {cond['name']}: {cond['reason']}")
        lines += [f"      note: {note}" for note in verdict.get("notes", [])]
    elif doc["runs"]:
        lines.append("  retire: unknown until `cutover watch` has run a round since the last change")
    return "\n".join(lines)


def _record_lines(rec: dict, threshold: float | None) -> list[str]:
    c = rec["counts"]
    if not rec.get("resolvers_asked", True):
        return [f"      {rec['name']} {rec['type']}: asked only of the authoritative servers"]
    mark = ""
    if threshold is not None:
        mark = f"  [{'reached' if RecordSummary.from_record(rec).reached(threshold) else 'below'} {threshold:.0%}]"
    lines = [(f"      {rec['name']} {rec['type']}: new {c['new']} old {c['old']} other {c['other']} "
              f"error {c['error']} ({rec['share']:.0%} new){mark}")]
    behind = [a for a in rec.get("answers", []) if a.get("state") != "new"]
    if behind:
        words = [f"{a.get('resolver')} {a.get('state')}"
                 + (f" TTL {a['ttl']}" if a.get("ttl") is not None and a.get("state") in ("old", "other") else "")
                 + (" STALE" if a.get("stale") else "") for a in behind[:STATUS_NAMES]]
        more = f", +{len(behind) - STATUS_NAMES} more" if len(behind) > STATUS_NAMES else ""
        lines.append(f"          not new: {', '.join(words)}{more}")
    return lines
