"""Human output: tables and summaries. JSON output is the data types' own ``as_dict``.

Kept apart from the CLI so that the demo and the CLI show the same things the same way.
"""

from __future__ import annotations

from typing import Collection, Sequence

from tabulate import tabulate

from cutover import geography as geo
from cutover.apply import Outcome
from cutover.diff import ZoneDiff
from cutover.guards import Refusal
from cutover.leftbehind import LeftBehind
from cutover.observe.types import RecordSummary
from cutover.readiness import Check
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


def readiness_text(zone: str, plan_path: str, checks: Sequence[Check]) -> str:
    """``cutover check``: one table per zone, check by check, with the servers' own words."""
    head = f"{zone} ({plan_path})"
    if not checks:
        return f"{head}: nothing to check (the plan moves no web or mail server)"
    failing = [c for c in checks if not c.ok]
    verdict = "ready" if not failing else f"NOT READY: {len(failing)} of {len(checks)} checks"
    rows = [(c.check, c.target, c.name, c.state, c.detail) for c in checks]
    table = tabulate(rows, headers=("check", "target", "name", "result", "detail"), tablefmt="simple",
                     maxcolwidths=[None, None, None, None, 70])
    return f"{head}: {verdict}\n\n{table}\n"


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
    ones flagged), the round's probe answers by country and network (``probe_lines``),
    the milestones when the document carries a ``timeline``
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
        lines += probe_lines(last)
        lines += old_mail_lines(last)
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


#: How many countries or networks ``status`` names on a line before it says "+N more".
STATUS_PLACES = 12


def old_mail_lines(doc: dict) -> list[str]:
    """The parallel period's check of the old MX hosts, as the last round saw it."""
    old = doc.get("old_mail") or {}
    if old.get("accepting") is None:
        return []
    if old["accepting"]:
        return [f"  old MX {', '.join(old.get('hosts') or [])}: still accepts mail (checked {old.get('checked')}, "
                f"every {old.get('every'):g}s until {old.get('until') or 'the parallel period ends'})"]
    return [f"  OLD MX REFUSES MAIL (checked {old.get('checked')}): {old.get('message')}"]


def probe_lines(doc: dict) -> list[str]:
    """A round's probe answers: per record by country (those still answering old data
    first), by continent and by network, how long before the round they were measured,
    and each probe service's state and problems (a failing service never fails a watch,
    so this is where it shows)."""
    found, services = geo.geography(doc), geo.services(doc)
    if found.empty and not services:
        return []
    t = found.tally
    if found.empty:
        lines = ["  probes: no probe answers in this round"]
    else:
        ages = geo.age_words(t.youngest, t.oldest)
        rest = geo.tally_words(t).partition(" ")[2]
        lines = [f"  probes: {t.new}/{t.answering} answering new" + (f" ({rest})" if rest else "") + " from "
                 + ", ".join(f"{name} {n}" for name, n in found.services)
                 + (f"; measured {ages} before the round" if ages else "")]
        for record in found.records:
            places = geo.behind_first(geo.geography(doc, record).countries)
            lines.append(f"      {record} by country: " + _listed([f"{c.code} {geo.tally_words(c.tally)}" for c in places]))
        lines.append("      by continent: " + _listed([f"{c.name} {geo.tally_words(c.tally)}" for c in found.continents]))
        lines.append("      by network: " + _listed([f"{geo.network_words(n)} ({' '.join(n.countries) or '?'}) "
                                                    f"{geo.tally_words(n.tally)}" for n in geo.behind_first(found.networks)]))
    for s in services:
        lines.append(f"      {geo.service_words(s)}" + (f", last finished {s.last_finished}" if s.last_finished else ""))
        lines += [f"      problem: {p}" for p in s.problems]
    return lines


def _listed(items: Sequence[str]) -> str:
    more = f", +{len(items) - STATUS_PLACES} more" if len(items) > STATUS_PLACES else ""
    return ", ".join(items[:STATUS_PLACES]) + more


#: Zones named in a fleet summary's list of failures before "+N more".
FLEET_FAILED_SHOWN = 10


def fleet_text(summary: dict) -> str:
    """A fleet's summary (``FleetRun.summary``) in one paragraph, after its zones' output."""
    states = ", ".join(f"{n:,} {state}" for state, n in summary["states"].items()) or "none"
    source = "from the journal" if summary["from"] == "journal" else "read at the provider"
    lines = [f"fleet {summary['plan']}: {summary['zones']:,} zone(s) ({source}); {summary['acted_on']:,} acted on: {states}"]
    if "changes" in summary:
        lines.append(f"  {summary['changes']:,} change(s) in all")
    if "retire" in summary:
        lines.append(f"  {summary['retire']:,} of {summary['acted_on']:,} ready to retire the old server")
    if summary["untouched"]:
        lines.append(f"  {summary['untouched']:,} hold none of the moved addresses" if summary["from"] == "provider"
                     else f"  {summary['untouched']:,} rolled back since")
    failed = summary["failed_zones"]
    if failed:
        more = f", +{len(failed) - FLEET_FAILED_SHOWN:,} more" if len(failed) > FLEET_FAILED_SHOWN else ""
        lines.append("  failed: " + ", ".join(z.rstrip(".") for z in failed[:FLEET_FAILED_SHOWN]) + more)
    return "\n".join(lines)
