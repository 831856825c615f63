"""The cutover report: one zone's story, assembled from the journal as plain data.

Everything here reads the journal (runs, verifications, round documents) and returns
frozen dataclasses, so the HTML page (``report_html``), ``--format json`` and the
terminal (``render.status_text``) tell the same facts. Nothing is queried live: a
report is reproducible from the state directory alone, long after the cutover.

The facts:

* a timeline: prepare, apply, verification, rollback, and the watch's milestones (first
  and last round, a record reaching the threshold, stale resolvers found, the verdict),
  plus the two moments the verdict waits for (old TTL expired, parallel period over);
* per record, the share of answering resolvers on the new data, round by round;
* per resolver and record, the last state and TTL and when it first gave the new data;
* the probe networks' answers (each probe's latest) by continent, country and network,
  with their age at the last round, and the probe services' problems;
* the retire verdict now, with the reason for each condition.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from cutover import geography as geo
from cutover.journal import LANDED, Journal, Run
from cutover.monitor import last_round, verdict_now
from cutover.notify import reached, round_events, threshold_of
from cutover.observe.types import RecordSummary
from cutover.plan import Plan
from cutover.records import Change, relative_name
from cutover.times import iso

#: Run statuses and how they read in the timeline.
RUN_STATUS = {
    "verified": "ok", "insync": "ok", "applied": "ok",
    "unverified": "warn", "partial": "fail", "failed": "fail", "abandoned": "fail",
    "pending": "warn", "sending": "warn",
}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline. ``status``: ok, warn, fail, info, or ``due`` for a future moment."""

    time: str | None
    kind: str
    title: str
    detail: str = ""
    status: str = "info"
    round: int | None = None


@dataclass(frozen=True)
class Point:
    round: int
    time: str
    share: float | None  # None: nobody answered (a gap, not 0%)
    new: int
    answering: int


@dataclass(frozen=True)
class Series:
    """One record's share of new answers over the rounds."""

    name: str
    type: str
    label: str
    points: tuple[Point, ...]
    reached_at: str | None  # the last time it (re)reached the threshold and stayed there


@dataclass(frozen=True)
class Marker:
    """A vertical line on the chart: the change, the old TTL's expiry, the parallel period's end."""

    kind: str
    time: str
    label: str
    passed: bool


@dataclass(frozen=True)
class ResolverRow:
    resolver: str
    address: str
    operator: str
    country: str
    group: str
    record: str
    state: str
    ttl: int | None
    first_new: str | None
    stale: bool
    detail: str
    seen: str  # time of the last round it appeared in


@dataclass(frozen=True)
class ProbeCounts:
    """A group of probe answers (each probe's latest, about every record) by state, as
    ``_counts`` turns a ``geography.Tally``: ``tone`` is ``geography.TONES``' colour,
    ages are seconds before the last round."""

    new: int
    old: int
    other: int
    error: int
    filtered: int
    answering: int
    share: float | None
    tone: str
    youngest: float | None
    oldest: float | None


@dataclass(frozen=True)
class CountryRow(ProbeCounts):
    """One country's probe answers, for the world view."""

    continent: str
    continent_name: str
    country: str
    networks: tuple[str, ...]
    cities: tuple[str, ...]


@dataclass(frozen=True)
class NetworkRow(ProbeCounts):
    """One network's probe answers: a stale cache is often one ISP's, in every country it serves."""

    network: str  # AS2516, or the name when no ASN was given
    asn: int | None
    name: str
    countries: tuple[str, ...]


@dataclass(frozen=True)
class ProbeProblem:
    """A probe service's problem, as often as rounds reported it (it never failed the watch)."""

    service: str
    text: str
    rounds: int
    first: str
    last: str
    current: bool  # reported by the last round


#: The report keeps the probe problems seen most recently; a week of rounds may hold many.
MAX_PROBLEMS = 30


@dataclass(frozen=True)
class ZoneReport:
    zone: str
    plan: str
    generated: str
    threshold: float
    parallel_period: float
    change_time: str | None
    change_source: str
    rounds: int
    first_round: str | None
    last_round: str | None
    timeline: tuple[Entry, ...]
    series: tuple[Series, ...]
    markers: tuple[Marker, ...]
    resolvers: tuple[ResolverRow, ...]
    verdict: dict[str, Any] | None
    probes_at: str | None = None  # the round the probe ages count to (the last one)
    countries: tuple[CountryRow, ...] = ()
    networks: tuple[NetworkRow, ...] = ()
    probe_services: tuple[geo.Service, ...] = ()
    probe_problems: tuple[ProbeProblem, ...] = ()
    probe_problems_total: int = 0
    old_mail: dict[str, Any] | None = None  # the last round's check of the old MX (parallel period)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- assembling


def build(plan: Plan, journal: Journal, now: float | None = None) -> ZoneReport:
    """The report of one plan's zone at ``now`` (default: the current time)."""
    now = time.time() if now is None else now
    runs = journal.runs(plan.zone)
    docs = journal.rounds(plan.zone)
    if docs:  # the probe answers the last round held (rounds store their counts only)
        docs[-1] = last_round(journal, plan.zone) or docs[-1]
    verdict = verdict_now(plan, journal, now)
    change_time, change_source = _change(runs, docs)
    markers = tuple(markers_for(change_time, verdict, runs, plan, now))
    threshold = float(verdict["threshold"]) if verdict and verdict.get("threshold") is not None else plan.retire.threshold
    return ZoneReport(
        zone=plan.zone,
        plan=str(plan.path),
        generated=iso(now) or "",
        threshold=threshold,
        parallel_period=plan.retire.parallel_period,
        change_time=change_time,
        change_source=change_source,
        rounds=len(docs),
        first_round=docs[0]["time"] if docs else None,
        last_round=docs[-1]["time"] if docs else None,
        timeline=tuple(timeline(runs, docs, markers, journal)),
        series=tuple(series(docs)),
        markers=markers,
        resolvers=tuple(resolver_rows(docs, plan.zone)),
        verdict=verdict,
        **probe_fields(docs),
        old_mail=next((dict(d["old_mail"]) for d in reversed(docs) if (d.get("old_mail") or {}).get("checked")), None),
    )


def _change(runs: Sequence[Run], docs: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The change the verdict counts from: the last round's, else the last landed apply or rollback."""
    if docs and (docs[-1].get("change") or {}).get("time"):
        change = docs[-1]["change"]
        return change["time"], str(change.get("source", ""))
    for run in reversed(runs):
        if run.kind in ("apply", "rollback") and run.status in LANDED and run.changed is not None:
            return iso(run.changed), f"{run.kind} run {run.id}"
    return None, "no change applied or observed yet"


def markers_for(change_time: str | None, verdict: Mapping[str, Any] | None, runs: Sequence[Run], plan: Plan,
                now: float) -> list[Marker]:
    """The change, and when the old TTL and the parallel period end (the verdict's own times)."""
    if change_time is None:
        return []
    changed = _ts(change_time)
    conditions = {c["name"]: c for c in (verdict or {}).get("conditions", [])}
    ttl_at = conditions.get("ttl", {}).get("at")
    if ttl_at is None:
        longest = max((c.change.before.ttl for r in runs if r.kind in ("apply", "rollback")
                       for c in r.changes if c.change.before is not None), default=0)
        ttl_at = iso(changed + longest) or ""
    parallel_at = conditions.get("parallel_period", {}).get("at") or iso(changed + plan.retire.parallel_period) or ""
    return [
        Marker("change", change_time, "change", True),
        Marker("ttl", ttl_at, "old TTL expired" if _ts(ttl_at) <= now else "old TTL expires", _ts(ttl_at) <= now),
        Marker("parallel_period", parallel_at,
               "parallel period over" if _ts(parallel_at) <= now else "parallel period ends", _ts(parallel_at) <= now),
    ]


def timeline(runs: Sequence[Run], docs: Sequence[Mapping[str, Any]], markers: Sequence[Marker],
             journal: Journal | None = None) -> list[Entry]:
    """Every run, its verification, the watch's milestones and the verdict's moments, in time order."""
    entries: list[Entry] = []
    for run in runs:
        entries.append(run_entry(run))
        checks = journal.verifications(run.id) if journal is not None else []
        if checks:
            entries.append(verification_entry(run, checks))
    entries += watch_entries(docs)
    for m in markers:
        if m.kind == "change":
            continue
        entries.append(Entry(m.time, m.kind, m.label, _marker_detail(m.kind), "ok" if m.passed else "due"))
    # Stable: a run comes before its verification, a round's events in the order they happened.
    return sorted(entries, key=lambda e: (e.time is None, e.time or ""))


def _marker_detail(kind: str) -> str:
    if kind == "ttl":
        return "no cache anywhere can still hold the old answer after this"
    return "the safety margin the plan asks for before the old server is switched off"


def run_entry(run: Run) -> Entry:
    landed = sum(1 for c in run.changes if c.status == "landed")
    changes = "; ".join(_change_words(c.change, run.zone) for c in run.changes)
    detail = f"{landed} of {len(run.changes)} changes landed" + (f": {changes}" if changes else "")
    if run.error:
        detail += f" -- {run.error}"
    if run.forced:
        detail += f" (forced: {run.forced})"
    title = f"{run.kind} (run {run.id}): {run.status}"
    return Entry(iso(run.changed or run.started), run.kind, title, detail, RUN_STATUS.get(run.status, "info"))


def _change_words(change: Change, zone: str) -> str:
    name = relative_name(change.name, zone)
    before = " ".join(change.before.values) if change.before and change.before.values else "-"
    after = " ".join(change.after.values) if change.after and change.after.values else "-"
    ttl_b = change.before.ttl if change.before else None
    ttl_a = change.after.ttl if change.after else None
    ttl = "" if ttl_b == ttl_a else f"TTL {ttl_b if ttl_b is not None else '-'} -> {ttl_a if ttl_a is not None else '-'}"
    if before == after:  # a prepare: only the TTL moves
        return f"{name} {change.type} {ttl or 'unchanged'} ({after})"
    return f"{name} {change.type} {before} -> {after}" + (f" ({ttl})" if ttl else "")


def verification_entry(run: Run, checks: Sequence[Mapping[str, Any]]) -> Entry:
    latest: dict[str, Mapping[str, Any]] = {}
    for check in checks:
        latest[check["server"]] = check
    good = sum(1 for c in latest.values() if c["state"] == "new")
    detail = "; ".join(f"{s}: {c['state']} ({c['detail']})" for s, c in latest.items())
    status = "ok" if good == len(latest) else "warn"
    title = f"verified at {good} of {len(latest)} nameservers (run {run.id})"
    return Entry(max(c["time"] for c in latest.values()), "verify", title, detail, status)


def watch_entries(docs: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """First and last round, and every notification-worthy event between consecutive rounds."""
    if not docs:
        return []
    first, last = docs[0], docs[-1]
    out = [Entry(first["time"], "watch", f"watch started (round {first['round']})",
                 f"{len(_resolvers_in(first))} resolvers asked about {len(first.get('records', []))} records",
                 "info", first["round"])]
    previous = None
    for doc in docs:
        for event in round_events(previous, doc):
            status = {"threshold": "ok", "verdict": "ok", "stale": "warn"}.get(event.kind, "info")
            title = {"threshold": f"{', '.join(event.subjects)} reached the threshold",
                     "stale": "stale resolvers found", "verdict": "retire verdict reached"}.get(event.kind, event.kind)
            text = event.text.removeprefix(f"{event.zone}: ")
            out.append(Entry(event.time, event.kind, title, text, status, event.round))
        previous = doc
    if len(docs) > 1:
        out.append(Entry(last["time"], "watch", f"last round ({last['round']})", _round_words(last), "info", last["round"]))
    return out


def _resolvers_in(doc: Mapping[str, Any]) -> set[str]:
    return {str(a.get("address") or a.get("resolver")) for r in doc.get("records", []) for a in r.get("answers", [])}


def _round_words(doc: Mapping[str, Any]) -> str:
    parts = []
    for rec in doc.get("records", []):
        c = rec.get("counts", {})
        parts.append(f"{rec['name']} {rec['type']}: {c.get('new', 0)} new, {c.get('old', 0)} old, "
                     f"{c.get('other', 0)} other, {c.get('error', 0)} failed")
    return "; ".join(parts)


def series(docs: Sequence[Mapping[str, Any]]) -> list[Series]:
    """Per record (in first-seen order), its share of new answers in every round it was watched."""
    points: dict[tuple[str, str], list[Point]] = {}
    reached_at: dict[tuple[str, str], str | None] = {}
    for doc in docs:
        threshold = threshold_of(doc)
        for rec in doc.get("records", []):
            key = (rec["name"], rec["type"])
            summary = RecordSummary.from_record(rec)
            points.setdefault(key, []).append(Point(int(doc["round"]), doc["time"], summary.share, summary.new, summary.answering))
            if not reached(rec, threshold):
                reached_at[key] = None
            elif reached_at.get(key) is None:
                reached_at[key] = doc["time"]
    return [Series(k[0], k[1], f"{k[0]} {k[1]}", tuple(p), reached_at.get(k)) for k, p in points.items()]


def resolver_rows(docs: Sequence[Mapping[str, Any]], zone: str = "") -> list[ResolverRow]:
    """Per resolver and record: its last answer, and the first round it gave the new data."""
    rows: dict[tuple[str, str, str], ResolverRow] = {}
    first_new: dict[tuple[str, str, str], str] = {}
    order: list[tuple[str, str, str]] = []
    for doc in docs:
        for rec in doc.get("records", []):
            answers = list(rec.get("answers", [])) + list((rec.get("authoritative") or {}).get("answers", []))
            for ans in answers:
                address = str(ans.get("address") or ans.get("resolver") or "?")
                key = (address, rec["name"], rec["type"])
                if key not in rows:
                    order.append(key)
                if ans.get("state") == "new" and key not in first_new:
                    first_new[key] = doc["time"]
                rows[key] = ResolverRow(
                    resolver=str(ans.get("resolver") or address),
                    address=address,
                    operator=str(ans.get("operator") or ""),
                    country=str(ans.get("country") or ""),
                    group=str(ans.get("group") or ""),
                    record=f"{rec['name']} {rec['type']}",
                    state=str(ans.get("state") or "?"),
                    ttl=ans.get("ttl"),
                    first_new=first_new.get(key),
                    stale=bool(ans.get("stale")),
                    detail=str(ans.get("detail") or ""),
                    seen=doc["time"],
                )
    authoritative_last = sorted(order, key=lambda k: (rows[k].group == "authoritative", rows[k].resolver, k[0]))
    return [rows[k] for k in authoritative_last]


def probe_fields(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report's probe fields: each probe's latest answer (a probe result joins the
    round after it arrives, not every round) grouped by country and by network, the last
    round's services and every problem the rounds reported (the most recent ones)."""
    found = geo.geography(geo.latest(docs))
    countries = tuple(CountryRow(continent=c.continent, continent_name=geo.continent_name(c.continent), country=c.code,
                                 networks=c.networks, cities=c.cities, **_counts(c.tally)) for c in found.countries)
    networks = tuple(NetworkRow(network=n.key, asn=n.asn, name=n.name, countries=n.countries, **_counts(n.tally))
                     for n in found.networks)
    with_probes = [d for d in docs if d.get("probes")]
    problems: dict[tuple[str, str], ProbeProblem] = {}
    for doc in with_probes:
        for service in geo.services(doc):
            for text in dict.fromkeys(service.problems):
                seen = problems.get((service.service, text))
                problems[(service.service, text)] = ProbeProblem(
                    service.service, text, (seen.rounds if seen else 0) + 1, seen.first if seen else str(doc.get("time")),
                    str(doc.get("time")), doc is with_probes[-1])
    recent = sorted(problems.values(), key=lambda p: p.last, reverse=True)[:MAX_PROBLEMS]
    return {"probes_at": docs[-1].get("time") if docs and (countries or with_probes) else None,
            "countries": countries, "networks": networks,
            "probe_services": geo.services(with_probes[-1]) if with_probes else (),
            "probe_problems": tuple(sorted(recent, key=lambda p: p.first)), "probe_problems_total": len(problems)}


def _counts(t: geo.Tally) -> dict[str, Any]:
    return {"new": t.new, "old": t.old, "other": t.other, "error": t.error, "filtered": t.filtered, "answering": t.answering,
            "share": t.share, "tone": t.tone, "youngest": t.youngest, "oldest": t.oldest}


# --------------------------------------------------------------------------- documents


def document(reports: Iterable[ZoneReport | Mapping[str, Any]], now: float | None = None) -> dict[str, Any]:
    """``cutover report --format json``: the same data the HTML page shows."""
    return {
        "generated": iso(time.time() if now is None else now),
        "plans": [r.as_dict() if isinstance(r, ZoneReport) else dict(r) for r in reports],
    }


def milestones(report: ZoneReport) -> list[Entry]:
    """The timeline without the routine: what ``status`` shows compactly."""
    return [e for e in report.timeline if e.kind not in ("watch",)]


def _ts(text: str) -> float:
    """Seconds since the epoch from the journal's ISO 8601 UTC times (naive ones are UTC too)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
