"""The propagation monitor behind ``cutover watch`` and ``cutover status``.

``cutover.watch`` asks the resolvers and ``cutover.verdict`` judges; this module
decides *what* to watch for a plan (from the journal: the last apply's values and
TTLs, or the plan's ``from``/``to`` when the change was made outside cutover), runs
the rounds, dates the change, and journals every round.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, MutableSequence, Sequence

from cutover import resolvers as resolvers_mod
from cutover import guards, verify
from cutover.errors import UsageError
from cutover.journal import LANDED, Journal, Run
from cutover.plan import Plan
from cutover.records import Change, RecordKey, RecordSet
from cutover.resolvers import Resolver
from cutover.verdict import Verdict, decide, stale_resolvers
from cutover.times import iso, parse_iso
from cutover.watch import (
    CONCURRENCY,
    PARALLEL_FROM,
    Answer,
    RecordSummary,
    Round,
    Target,
    authoritative_all_new,
    query_round,
    round_document,
    run_round,
    summarise,
)


@dataclass(frozen=True)
class Setup:
    """What one plan's watch looks for, where, and since when."""

    plan: Plan
    targets: tuple[Target, ...]
    resolvers: tuple[Resolver, ...]
    change_time: float | None
    change_source: str

    @property
    def longest_old_ttl(self) -> int:
        return max((t.old_ttl for t in self.targets), default=0)


def setup(plan: Plan, journal: Journal, live: Mapping[RecordKey, RecordSet], nameservers: Sequence[str],
          resolver_spec: Any = None) -> Setup:
    """Targets from the journal (what was changed, from what, when), else from the plan's
    ``from``/``to``; resolvers from ``--resolvers`` or the plan, plus the zone's servers."""
    neg_ttl = verify.negative_ttl(live, plan.zone)
    last = journal.last(plan.zone, ("apply", "rollback"), LANDED)
    if last is not None and last.kind == "rollback":
        targets = [_target(c, last.changed, journal, plan.zone, neg_ttl) for c in last.landed_changes]
        change_time, source = last.changed, f"rollback run {last.id}"
    elif last is not None:
        targets, runs = _from_applies(plan, journal, neg_ttl)
        change_time = max((r.changed for r in runs if r.changed is not None), default=None)
        source = "apply run" + ("s " if len(runs) > 1 else " ") + ", ".join(str(r.id) for r in runs)
    else:
        targets = _from_plan(plan, live, neg_ttl, journal)
        change_time, source = _observed_change(journal, plan.zone, targets)
    return Setup(plan, tuple(targets), tuple(_resolvers(plan, resolver_spec)) + tuple(_servers(plan, nameservers)),
                 change_time, source)


def _resolvers(plan: Plan, cli_spec: Any) -> list[Resolver]:
    """``--resolvers`` is read from the current directory; the plan's value is already absolute."""
    try:
        return resolvers_mod.resolve_spec(cli_spec or plan.watch.resolvers)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{'--resolvers' if cli_spec else f'{plan.path}: watch.resolvers'}: {exc}") from None


def _servers(plan: Plan, nameservers: Sequence[str]) -> list[Resolver]:
    servers, _unresolved = verify.endpoints(list(plan.verify.nameservers) or nameservers)
    return servers


def _from_applies(plan: Plan, journal: Journal, neg_ttl: int) -> tuple[list[Target], list[Run]]:
    """Per plan record, the newest apply that moved it to the plan's values (back to the last
    rollback); a record whose change did not land (a partial apply) is watched too, from its
    journalled ``before``, so that it holds the verdict back until it is really there."""
    runs = [r for r in journal.runs(plan.zone, ("apply", "rollback"))]
    since = max((i for i, r in enumerate(runs) if r.kind == "rollback" and r.status in LANDED), default=-1)
    applies = [r for r in runs[since + 1:] if r.kind == "apply"]
    targets, used = [], []
    for record in plan.records:
        found = _newest_change(applies, record.key, record.to)
        if found is None:
            if record.from_ is not None:
                targets.append(Target(record.key, record.to, record.from_, neg_ttl))
            continue
        run, change, landed = found
        if landed:
            targets.append(_target(change, run.changed, journal, plan.zone, neg_ttl))
            used.append(run)
        else:
            targets.append(Target(record.key, record.to, change.before.values if change.before else (),
                                  change.before.ttl if change.before else neg_ttl))
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


def _target(change: Change, changed: float | None, journal: Journal, zone: str, neg_ttl: int) -> Target:
    """What watchers look for after ``change``. The old TTL is the longest a cache may still
    hold the old answer for, counted from the change: the TTL just before it, or what is
    left of a longer TTL from before a prepare whose wait was cut short (``--force``)."""
    old_ttl = change.before.ttl if change.before else neg_ttl
    window = guards.prepared_until(journal.runs(zone, ("prepare",))).get(change.key)
    if window is not None and changed is not None:
        old_ttl = max(old_ttl, int(window - changed + 0.999))
    return Target(change.key, change.after.values if change.after else (),
                  change.before.values if change.before else (), old_ttl)


def _from_plan(plan: Plan, live: Mapping[RecordKey, RecordSet], neg_ttl: int, journal: Journal) -> list[Target]:
    """Without a journalled apply, "old" is the plan's ``from``, with the longest TTL we know of:
    the live one, the one before a prepare, and the one earlier rounds recorded (the live
    TTL after an outside change is the new record's, not the old one's)."""
    known: dict[RecordKey, int] = {}
    for run in journal.runs(plan.zone, ("prepare",)):
        for c in run.changes:
            if c.change.before is not None:
                known[c.change.key] = max(known.get(c.change.key, 0), c.change.before.ttl)
    for doc in journal.rounds(plan.zone):
        for rec in doc.get("records", []):
            key = (rec["name"], rec["type"])
            known[key] = max(known.get(key, 0), int(rec.get("old_ttl", 0)))
    out = []
    for record in plan.records:
        if record.from_ is None:
            continue
        current = live.get(record.key)
        old_ttl = max(known.get(record.key, 0), current.ttl if current else 0) if record.from_ else neg_ttl
        out.append(Target(record.key, record.to, record.from_, old_ttl or neg_ttl))
    if not out:
        raise UsageError(
            f"{plan.path}: nothing to watch: no apply is journalled for {plan.zone} and no record has `from`"
            " (add `from:` to say what the old answer is)"
        )
    return out


def _observed_change(journal: Journal, zone: str, targets: Sequence[Target]) -> tuple[float | None, str]:
    """A change made outside cutover is dated by the first round, watching these same
    targets, where every authoritative server had it (older rounds of another cutover of
    the zone do not count)."""
    wanted = {(t.name, t.type, t.new, t.old) for t in targets}
    for doc in journal.rounds(zone):
        watched = {(r["name"], r["type"], tuple(r["new"]), tuple(r["old"])) for r in doc.get("records", [])}
        if watched == wanted and doc.get("authoritative_all_new"):
            return parse_iso(doc["time"]).timestamp(), f"observed at the authoritative servers in round {doc['round']}"
    return None, "not seen yet at the authoritative servers"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def ask_all(setups: Sequence[Setup]) -> list[list[Answer]]:
    """One round for every plan at once. Small rounds share one event loop and the query
    budget, so watching ten zones costs about the slowest resolver's time, not ten rounds;
    big ones (CPU-bound) take every core, plan after plan."""
    if sum(len(s.targets) * len(s.resolvers) for s in setups) >= PARALLEL_FROM:
        return [run_round(s.targets, s.resolvers, timeout=s.plan.watch.timeout, processes=os.cpu_count()) for s in setups]
    return asyncio.run(_gather(setups))


async def _gather(setups: Sequence[Setup]) -> list[list[Answer]]:
    share = max(1, CONCURRENCY // max(1, len(setups)))
    return list(await asyncio.gather(*(
        query_round(s.targets, s.resolvers, timeout=s.plan.watch.timeout, concurrency=share) for s in setups
    )))


def record_round(s: Setup, journal: Journal, answers: Sequence[Answer], started: float) -> tuple[Setup, dict[str, Any]]:
    """Judge one plan's answers and journal the round. Returns the (possibly newly dated)
    setup and the round's document."""
    number = journal.round_count(s.plan.zone) + 1
    rnd = Round(number, _dt(started), tuple(answers))
    if s.change_time is None and authoritative_all_new(rnd, s.targets):
        s = replace(s, change_time=started, change_source=f"observed at the authoritative servers in round {number}")
    verdict = judge(s, summarise(rnd, s.targets), started)
    stale = stale_resolvers(rnd, s.targets, _dt(s.change_time) if s.change_time else None, _dt(started))
    doc = round_document(rnd, s.targets, verdict, stale=stale)
    doc["plan"] = str(s.plan.path)
    doc["zone"] = s.plan.zone
    doc["change"] = {"time": iso(s.change_time), "source": s.change_source}
    journal.add_round(s.plan.zone, number, started, doc)
    return s, doc


def rounds(watches: MutableSequence[tuple[Setup, Journal]], *, once: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Round after round over every plan, until all verdicts say retire (or one round with ``once``)."""
    interval = min(s.plan.watch.interval for s, _ in watches)
    while True:
        started = time.time()
        answers = ask_all([s for s, _ in watches])
        done = []
        for i, ((setup_, journal), found) in enumerate(zip(list(watches), answers)):
            setup_, doc = record_round(setup_, journal, found, started)
            watches[i] = (setup_, journal)
            done.append(doc["verdict"]["retire"])
            yield doc
        if once or all(done):
            return
        sleep(interval)


def judge(s: Setup, summaries: Sequence[RecordSummary], now: float) -> Verdict:
    return decide(
        summaries,
        threshold=s.plan.retire.threshold,
        change_time=_dt(s.change_time) if s.change_time is not None else None,
        longest_old_ttl=s.longest_old_ttl,
        parallel_period=s.plan.retire.parallel_period,
        now=_dt(now),
    )


def verdict_now(plan: Plan, journal: Journal, now: float | None = None) -> dict[str, Any] | None:
    """The retire verdict at ``now`` from the last round's counts (time moves on between
    rounds); none when an apply or rollback came after that round, which it cannot judge."""
    doc = journal.last_round(plan.zone)
    if doc is None:
        return None
    newer = journal.last(plan.zone, ("apply", "rollback"), LANDED)
    if newer is not None and newer.changed is not None and newer.changed > parse_iso(doc["time"]).timestamp():
        return None
    summaries = [
        RecordSummary((r["name"], r["type"]), **{k: r["counts"].get(k, 0) for k in ("new", "old", "other", "error", "filtered")})
        for r in doc["records"]
    ]
    change = doc.get("change", {}).get("time")
    setup_ = Setup(plan, tuple(Target((r["name"], r["type"]), tuple(r["new"]), tuple(r["old"]), r["old_ttl"]) for r in doc["records"]),
                   (), parse_iso(change).timestamp() if change else None, doc.get("change", {}).get("source", ""))
    return judge(setup_, summaries, time.time() if now is None else now).as_dict()


def status(plan: Plan, journal: Journal) -> dict[str, Any]:
    """Everything ``cutover status`` shows for one plan, as data."""
    runs: list[Run] = journal.runs(plan.zone)
    return {
        "plan": str(plan.path),
        "zone": plan.zone,
        "runs": [dict(r.as_dict(), verifications=journal.verifications(r.id)) for r in runs],
        "rounds": journal.round_count(plan.zone),
        "last_round": journal.last_round(plan.zone),
        "verdict": verdict_now(plan, journal),
    }
