"""One round's JSON document: written by ``watch``, stored by the journal, read back by ``status``.

The document is the contract's watch JSON (``round``, ``time``, ``records`` with counts,
share and answers, ``verdict``) plus what the verdict was judged on: every
authoritative server's state and serial, the records left behind, the bound on old data
and, for a delegation change, the parent's and the old host's servers. ``evidence``
reads those facts back, so that ``status`` re-judges a stored round with the same rules
(time moves on between rounds) instead of re-implementing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from cutover.bounds import Bound
from cutover.observe.authoritative import ServerView, all_new
from cutover.observe.probes import PROBE
from cutover.observe.types import AUTHORITATIVE, OLD_HOST, PARENT, Answer, RecordSummary, Round, Target
from cutover.times import iso_precise, parse_iso
from cutover.verdict import Evidence, Verdict


def round_document(
    round: Round,
    targets: Sequence[Target],
    verdict: Verdict,
    evidence: Evidence,
    *,
    stale: Iterable[Answer] = (),
    left_behind: Sequence[Mapping[str, Any]] = (),
    delegation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract's watch JSON for one round (plus addresses, values, staleness, evidence)."""
    stale_ids = {(a.resolver, a.key) for a in stale}
    by_key = {s.key: s for s in evidence.summaries}
    records = [_record(round, t, by_key.get(t.key), stale_ids) for t in targets]
    doc: dict[str, Any] = {
        "round": round.number,
        "time": iso_precise(round.time),
        "records": records,
        "authoritative": {
            "all_new": all_new(evidence.servers),
            "since": iso_precise(evidence.agreed_since),
            "servers": [v.as_dict() for v in evidence.servers],
        },
        "authoritative_all_new": all_new(evidence.servers),
        "left_behind": [dict(item) for item in left_behind],
        "bound": {"at": iso_precise(evidence.bound.at), "reason": evidence.bound.reason, "notes": list(evidence.bound.notes)},
        "stale": len(stale_ids),
        "verdict": verdict.as_dict(),
    }
    if delegation is not None:
        doc["delegation"] = dict(delegation)
    return doc


def _record(round: Round, target: Target, s: RecordSummary | None, stale_ids: set[Any]) -> dict[str, Any]:
    s = s or RecordSummary(target.key)
    own = [a for a in round.of_group(AUTHORITATIVE, PARENT) if a.key == target.key]
    old_host = [a for a in round.of_group(OLD_HOST) if a.key == target.key]
    rec = {
        "name": target.name,
        "type": target.type,
        "counts": s.counts,
        "share": s.share if s.share is not None else 0.0,
        "answering": s.answering,
        "resolvers_asked": target.recursive,
        "new": list(target.new),
        "old": list(target.old),
        "old_ttl": target.old_ttl,
        "old_ttl_source": target.old_ttl_source,
        "answers": [a.as_dict((a.resolver, a.key) in stale_ids, round.time) for a in s.answers],
        "authoritative": {
            "all_new": bool(own) and all(a.state == "new" for a in own),
            "answers": [a.as_dict() for a in own],
        },
    }
    if old_host:
        rec["old_host"] = {"answers": [a.as_dict() for a in old_host]}
    return rec


ProbeGroup = tuple[str, str, str, str, list[Any]]  # (service, name, type, measured, answers)


def stored_form(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[ProbeGroup]]:
    """What the journal keeps of a round: the document without its probe answers (each
    record keeps their number in ``probe_answers``; counts and share include them), and
    those answers grouped by measurement, stored once however many rounds they join.

    A probe measurement's answers stay in every round until a newer one replaces them:
    stored with each round, a thousand probes would add half a megabyte a round, a gigabyte
    a day at the default interval."""
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    records = []
    for rec in doc.get("records", []):
        kept, probes = [], 0
        for a in rec.get("answers", []):
            vantage = a.get("vantage")
            if a.get("group") == PROBE and isinstance(vantage, Mapping) and a.get("measured"):
                groups.setdefault((str(vantage.get("service")), rec["name"], rec["type"], a["measured"]), []).append(a)
                probes += 1
            else:
                kept.append(a)
        records.append({**rec, "answers": kept, "probe_answers": probes} if probes else rec)
    return {**doc, "records": records}, [(*key, answers) for key, answers in groups.items()]


def with_probe_answers(doc: Mapping[str, Any], results: Mapping[tuple[str, str, str], Sequence[Mapping[str, Any]]]
                       ) -> dict[str, Any]:
    """A stored round with its probe answers back (``results``: the journal's latest
    measurement per service and record up to the round's time), aged to the round."""
    when = _time(doc.get("time"))
    records = []
    for rec in doc.get("records", []):
        if not rec.get("probe_answers"):
            records.append(rec)
            continue
        back = [dict(a, age=_age(a, when)) for (_service, name, rtype), answers in sorted(results.items())
                if (name, rtype) == (rec["name"], rec["type"]) for a in answers]
        records.append({**rec, "answers": [*rec.get("answers", []), *back]})
    return {**doc, "records": records}


def _age(answer: Mapping[str, Any], when: datetime | None) -> float | None:
    measured = _time(answer.get("measured"))
    if measured is None or when is None:
        return answer.get("age")
    return round(max(0.0, (when - measured).total_seconds()), 1)


def evidence(doc: Mapping[str, Any], change_time: datetime | None) -> Evidence:
    """The facts a stored round was judged on, for judging it again at another time."""
    found = doc.get("authoritative")
    agreement: Mapping[str, Any] = found if isinstance(found, dict) else {}
    bound = doc.get("bound") or {}
    return Evidence(
        summaries=tuple(RecordSummary.from_record(r) for r in doc.get("records", []) if r.get("resolvers_asked", True)),
        servers=tuple(ServerView(**v) for v in agreement.get("servers", [])),
        agreed_since=_time(agreement.get("since")),
        bound=Bound(_time(bound.get("at")), str(bound.get("reason", "the old-data bound was not recorded")),
                    tuple(bound.get("notes", []))),
        change_time=change_time,
        left_behind=tuple(str(item.get("reason", item)) for item in doc.get("left_behind", [])),
        retiring=tuple((doc.get("verdict") or {}).get("retiring", [])),
        awaiting=tuple(str(x) for x in doc.get("awaiting_probes") or ()),
    )


def targets(doc: Mapping[str, Any]) -> tuple[Target, ...]:
    """The targets a stored round watched."""
    return tuple(Target((r["name"], r["type"]), tuple(r["new"]), tuple(r["old"]), int(r.get("old_ttl", 0)),
                        str(r.get("old_ttl_source", "journal")), bool(r.get("resolvers_asked", True)))
                 for r in doc.get("records", []))


def _time(text: Any) -> datetime | None:
    return parse_iso(text) if isinstance(text, str) and text else None

