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
from cutover import verify
from cutover.errors import UsageError
from cutover.journal import LANDED, Journal, Run
from cutover.plan import Plan
from cutover.records import RecordKey, RecordSet
from cutover.resolvers import Resolver
from cutover.verdict import Verdict, decide, stale_resolvers
from cutover.times import iso
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
    """Targets from the last journalled change, else from the plan; resolvers plus the zone's servers."""
    neg_ttl = verify.negative_ttl(live, plan.zone)
    run = journal.last(plan.zone, ("apply", "rollback"), LANDED)
    if run is not None:
        targets = verify.targets(run.landed_changes, neg_ttl)
        change_time, source = run.changed, f"{run.kind} run {run.id}"
    else:
        targets = _from_plan(plan, live, neg_ttl, journal)
        change_time, source = _observed_change(journal, plan.zone)
    try:
        public = resolvers_mod.resolve_spec(resolver_spec or plan.watch.resolvers, plan.path.parent)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--resolvers: {exc}") from None
    servers, _unresolved = verify.endpoints(list(plan.verify.nameservers) or nameservers)
    return Setup(plan, tuple(targets), tuple(public) + tuple(servers), change_time, source)


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


def _observed_change(journal: Journal, zone: str) -> tuple[float | None, str]:
    """A change made outside cutover is dated by the first round where every authoritative server had it."""
    for doc in journal.rounds(zone):
        if doc.get("authoritative_all_new"):
            return _parse(doc["time"]), f"observed at the authoritative servers in round {doc['round']}"
    return None, "not seen yet at the authoritative servers"


def _parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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
    """The retire verdict at ``now`` from the last round's counts (time moves on between rounds)."""
    doc = journal.last_round(plan.zone)
    if doc is None:
        return None
    summaries = [
        RecordSummary((r["name"], r["type"]), **{k: r["counts"].get(k, 0) for k in ("new", "old", "other", "error", "filtered")})
        for r in doc["records"]
    ]
    change = doc.get("change", {}).get("time")
    setup_ = Setup(plan, tuple(Target((r["name"], r["type"]), tuple(r["new"]), tuple(r["old"]), r["old_ttl"]) for r in doc["records"]),
                   (), _parse(change) if change else None, doc.get("change", {}).get("source", ""))
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
