"""What the journal says about one zone's change: what to watch, since when, with which old TTL.

``watch`` and ``status`` judge the present against this history: the applies (and the
rollback) that moved each planned record, when the change landed, when every
authoritative server was last seen agreeing, and the old TTL of every record. The old
TTL is always a pre-change fact (the journalled snapshot, the TTL before a prepare, the
live TTL read while the record still held its old values, an authoritative server seen
serving the old data) and never the new record's: a change that also lowered the TTL
must not shorten the wait. When nothing recorded it, the plan's ``retire.max_old_ttl``
stands in, and the source says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from cutover import guards
from cutover.errors import UsageError
from cutover.journal import LANDED, Journal, Run
from cutover.observe.types import Target
from cutover.plan import Plan, PlannedRecord
from cutover.records import Change, RecordKey, RecordSet
from cutover.times import parse_iso

#: Old-TTL sources taken from earlier rounds (a guess is not evidence to carry on).
RECORDED_SOURCES = ("journal", "prepare", "live before the change", "authoritative", "old host", "negative TTL", "rounds")


@dataclass(frozen=True)
class History:
    """The watched targets and the change they follow."""

    targets: tuple[Target, ...]
    change_time: float | None
    change_source: str
    agreed_since: float | None  # every authoritative server served the new data since (None: not yet seen)
    run: Run | None  # the newest apply or rollback the targets follow


def read(plan: Plan, journal: Journal, live: Mapping[RecordKey, RecordSet], neg_ttl: int) -> History:
    """Targets from the journal (what was changed, from what, when), else from the plan."""
    last = journal.last(plan.zone, ("apply", "rollback"), LANDED)
    prepares = journal.runs(plan.zone, ("prepare",))
    past = _Read(journal.rounds(plan.zone), guards.prepared_until(prepares), prepares)
    if last is not None and last.kind == "rollback":
        targets = [target_for(c, last.changed, journal, plan.zone, neg_ttl, past.windows) for c in last.landed_changes]
        history = History(tuple(targets), last.changed, f"rollback run {last.id}", None, last)
    elif last is not None:
        targets, runs = _from_applies(plan, journal, live, neg_ttl, past)
        change = max((r.changed for r in runs if r.changed is not None), default=None)
        source = "apply run" + ("s " if len(runs) > 1 else " ") + ", ".join(str(r.id) for r in runs)
        history = History(tuple(targets), change, source, None, runs[-1] if runs else last)
    else:
        targets = _from_plan(plan, plan.records, past, live, neg_ttl)
        change, source = _observed_change(past.rounds, targets)
        history = History(tuple(targets), change, source, None, None)
    return _with_agreement(history, journal, past.rounds)


@dataclass(frozen=True)
class _Read:
    """What the journal holds for the zone, read once per ``read``: every round, the
    prepare runs and their TTL windows (each is needed by several rules below)."""

    rounds: list[dict[str, Any]]
    windows: Mapping[RecordKey, float]
    prepares: list[Run]


def _with_agreement(h: History, journal: Journal, rounds: Sequence[Mapping[str, Any]]) -> History:
    """When every authoritative server has served the new data since: the apply's
    verification if it found all of them new, then every later round (a round where one
    lagged starts the clock again)."""
    since: float | None = None
    if h.run is not None and h.run.status == "verified":
        verified = journal.verified_at(h.run.id)
        since = verified if verified is not None else h.run.changed
    if h.change_time is None:
        return h
    wanted = {(t.name, t.type, t.new, t.old) for t in h.targets}
    # a change dated by a round carries that round's millisecond time: allow its rounding
    since_change = [d for d in rounds if parse_iso(d["time"]).timestamp() >= h.change_time - 0.001]
    for doc in since_change:
        agreement = doc.get("authoritative")
        if not isinstance(agreement, dict) or not _same_targets(doc, wanted):
            continue
        if agreement.get("all_new"):
            since = since if since is not None else parse_iso(doc["time"]).timestamp()
        else:
            since = None
    return History(h.targets, h.change_time, h.change_source, since, h.run)


def _same_targets(doc: Mapping[str, Any], wanted: set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]) -> bool:
    return {(r["name"], r["type"], tuple(r["new"]), tuple(r["old"])) for r in doc.get("records", [])} <= wanted


def _from_applies(plan: Plan, journal: Journal, live: Mapping[RecordKey, RecordSet],
                  neg_ttl: int, past: _Read) -> tuple[list[Target], list[Run]]:
    """Per plan record, the newest apply that moved it to the plan's values (back to the last
    rollback); a record whose change did not land (a partial apply) is watched too, from its
    journalled ``before``, so that it holds the verdict back until it is really there. A
    planned record no apply changed was changed some other way: judged as an outside change."""
    runs = journal.runs(plan.zone, ("apply", "rollback"))
    since = max((i for i, r in enumerate(runs) if r.kind == "rollback" and r.status in LANDED), default=-1)
    applies = [r for r in runs[since + 1:] if r.kind == "apply"]
    targets, used, outside = [], [], []
    for record in plan.records:
        found = _newest_change(applies, record.key, record.to)
        if found is None:
            outside.append(record)
            continue
        run, change, landed = found
        if landed:
            targets.append(target_for(change, run.changed, journal, plan.zone, neg_ttl, past.windows))
            used.append(run)
        else:
            before = change.before
            targets.append(_watch(record.key, record.to, before.values if before else (),
                                  before.ttl if before else neg_ttl, "journal" if before else "negative TTL"))
    if outside:
        targets += _from_plan(plan, outside, past, live, neg_ttl, required=False)
    return targets, sorted(set(used), key=lambda r: r.id) or applies[-1:]


def _newest_change(applies: Sequence[Run], key: RecordKey, to: tuple[str, ...]) -> tuple[Run, Change, bool] | None:
    """The newest journalled change of ``key`` to ``to``: landed if any landed, else the last attempt."""
    attempt = None
    for run in reversed(applies):
        for jc in run.changes:
            after = jc.change.after.values if jc.change.after else ()
            if jc.change.key != key or after != to:
                continue
            if jc.status == "landed" and run.status in LANDED:
                return run, jc.change, True
            attempt = attempt or (run, jc.change, False)
    return attempt


def target_for(change: Change, changed: float | None, journal: Journal, zone: str, neg_ttl: int,
               windows: Mapping[RecordKey, float] | None = None) -> Target:
    """What watchers look for after ``change``. The old TTL is the longest a cache may still
    hold the old answer for, counted from the change: the TTL just before it, or what is
    left of a longer TTL from before a prepare whose wait was cut short (``--force``).
    ``windows`` are the prepares' (``guards.prepared_until``), when already read."""
    old_ttl, source = (change.before.ttl, "journal") if change.before else (neg_ttl, "negative TTL")
    if windows is None:
        windows = guards.prepared_until(journal.runs(zone, ("prepare",)))
    window = windows.get(change.key)
    if window is not None and changed is not None and int(window - changed + 0.999) > old_ttl:
        old_ttl, source = int(window - changed + 0.999), "prepare"
    return _watch(change.key, change.after.values if change.after else (),
                  change.before.values if change.before else (), old_ttl, source)


def _from_plan(plan: Plan, records: Sequence[PlannedRecord], past: _Read, live: Mapping[RecordKey, RecordSet],
               neg_ttl: int, required: bool = True) -> list[Target]:
    """Without a journalled apply, "old" is the plan's ``from``, with the longest pre-change
    TTL known: the one before a prepare, the live one while the record still holds its old
    values, or one that earlier rounds recorded; else ``retire.max_old_ttl``."""
    known = _recorded_ttls(past)
    out = []
    for record in records:
        if record.from_ is None:
            continue
        current = live.get(record.key)
        if not record.from_:
            out.append(_watch(record.key, record.to, (), neg_ttl, "negative TTL"))
        elif current is not None and current.values == record.from_:
            ttl, source = max((current.ttl, "live before the change"), known.get(record.key, (0, "")))
            out.append(_watch(record.key, record.to, record.from_, ttl, source))
        elif record.key in known:
            out.append(_watch(record.key, record.to, record.from_, *known[record.key]))
        else:
            out.append(_watch(record.key, record.to, record.from_, int(plan.retire.max_old_ttl), "max_old_ttl"))
    if not out and required:
        raise UsageError(
            f"{plan.path}: nothing to watch: no apply is journalled for {plan.zone} and no record has `from`"
            " (add `from:` to say what the old answer is)"
        )
    return out


def _recorded_ttls(past: _Read) -> dict[RecordKey, tuple[int, str]]:
    """The longest pre-change TTL per record that prepares and earlier rounds recorded."""
    known: dict[RecordKey, tuple[int, str]] = {}

    def note(key: RecordKey, ttl: int, source: str) -> None:
        if ttl > known.get(key, (-1, ""))[0]:
            known[key] = (ttl, source)

    for run in past.prepares:
        for c in run.changes:
            if c.change.before is not None:
                note(c.change.key, c.change.before.ttl, "prepare")
    for doc in past.rounds:
        for rec in doc.get("records", []):
            if rec.get("old_ttl_source") in RECORDED_SOURCES:
                note((rec["name"], rec["type"]), int(rec.get("old_ttl", 0)), "rounds")
    return known


def retiring(targets: Sequence[Target]) -> tuple[str, ...]:
    """What "the old server" is, in words an operator can act on: the addresses (else the
    host names) the old answers point at that no new answer keeps. After a rollback these
    are the addresses that were rolled away from, not the server now in use again."""
    new = {v for t in targets for v in _pointed(t.type, t.new)}
    old = [v for t in targets for v in _pointed(t.type, t.old) if v not in new]
    return tuple(dict.fromkeys(old))


def _pointed(rtype: str, values: Sequence[str]) -> list[str]:
    if rtype in ("A", "AAAA"):
        return list(values)
    if rtype in ("MX", "SRV", "CNAME"):
        return [v.split()[-1].rstrip(".") for v in values]
    return []


def _watch(key: RecordKey, new: tuple[str, ...], old: tuple[str, ...], old_ttl: int, source: str) -> Target:
    """A target; an NS set is never asked of resolvers (that can re-teach an old delegation)."""
    return Target(key, new, old, old_ttl, source, recursive=key[1] != "NS")


def _observed_change(rounds: Sequence[Mapping[str, Any]], targets: Sequence[Target]) -> tuple[float | None, str]:
    """A change made outside cutover is dated by the first round, watching these same
    targets, where every authoritative server had it (older rounds of another cutover of
    the zone do not count)."""
    wanted = {(t.name, t.type, t.new, t.old) for t in targets}
    for doc in rounds:
        agreement = doc.get("authoritative")
        agreed = agreement.get("all_new") if isinstance(agreement, dict) else doc.get("authoritative_all_new")
        watched = {(r["name"], r["type"], tuple(r["new"]), tuple(r["old"])) for r in doc.get("records", [])}
        if watched == wanted and agreed:
            return parse_iso(doc["time"]).timestamp(), f"observed at the authoritative servers in round {doc['round']}"
    return None, "not seen yet at the authoritative servers"
