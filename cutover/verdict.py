"""The retire verdict: may the old server be switched off now, and if not, when?

A pure function of frozen evidence and the clock, so that ``watch``, ``status`` and the
tests reach the same answer from the same facts. Every condition must hold:

* ``propagation``: the threshold share of the *answering* resolvers give the new data
  for every record (silence is not evidence);
* ``quorum``: enough resolvers answered at all (``retire.min_answering``), so that one
  answering resolver out of twenty cannot stand for the world;
* ``authoritative``: every authoritative server (every NS name and address; for a
  delegation change, the parent's servers too) serves the new data, since a resolver
  can only hand out what some authoritative server gave it;
* ``left_behind``: no record set in the zone still points at the old server's
  addresses (unless the plan acknowledges it in ``retire.ignore``);
* ``ttl``: the bound on old data in caches we cannot see has passed (``cutover.bounds``
  computes it, one rule per kind of change);
* ``parallel_period``: the operator's own margin has passed since the change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cutover.bounds import Bound
from cutover.observe.authoritative import ServerView, all_new, describe_lagging
from cutover.observe.types import Answer, RecordSummary, Round, Target
from cutover.times import duration, iso, percent


@dataclass(frozen=True)
class Rules:
    """The plan's ``retire`` section, as the verdict needs it."""

    threshold: float = 1.0
    parallel_period: float = 7 * 86400.0
    min_answering: float = 0.5  # a share of the resolvers asked (<= 1) ...
    min_answering_is_count: bool = False  # ... or, when True, a count

    def required(self, asked: int) -> int:
        """How many of ``asked`` resolvers must answer for a record (at least one)."""
        if self.min_answering_is_count:
            return max(1, int(self.min_answering))
        return max(1, math.ceil(self.min_answering * asked - 1e-9))

    @property
    def min_answering_text(self) -> str:
        return str(int(self.min_answering)) if self.min_answering_is_count else percent(self.min_answering)


@dataclass(frozen=True)
class Evidence:
    """Everything one verdict is judged on, at one moment."""

    summaries: tuple[RecordSummary, ...]
    servers: tuple[ServerView, ...]
    agreed_since: datetime | None  # every authoritative server serves the new data since
    bound: Bound  # until when old data can live in caches we cannot see
    change_time: datetime | None
    left_behind: tuple[str, ...] = ()
    retiring: tuple[str, ...] = ()  # the old server: addresses (else names) no new answer keeps
    #: Probe measurements whose first result has not arrived yet ("globalping: www.example.com. A"):
    #: until it does, the caches those probes sit behind are unheard, and they are the ones a
    #: resolver list cannot show (a cache that stretches TTLs answers old long after the bound).
    awaiting: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condition:
    """One condition: whether it holds, from when, and why (not)."""

    name: str
    met: bool
    at: datetime | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "met": self.met, "at": iso(self.at), "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """``retire`` only when all conditions hold; ``earliest`` when that can first be true."""

    retire: bool
    missing: tuple[str, ...]
    earliest: datetime | None
    conditions: tuple[Condition, ...]
    threshold: float | None = None
    unpropagated: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    retiring: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        """The sentence an operator acts on, naming what is switched off."""
        what = ", ".join(self.retiring) or "the old server"
        if self.retire:
            return f"{what} can be switched off"
        when = f"; earliest {iso(self.earliest)}" if self.earliest else ""
        return f"keep {what} running (missing: {', '.join(self.missing)}{when})"

    def condition(self, name: str) -> Condition:
        return next(c for c in self.conditions if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "retire": self.retire,
            "missing": list(self.missing),
            "earliest": iso(self.earliest),
            "threshold": self.threshold,
            "unpropagated": list(self.unpropagated),
            "conditions": [c.as_dict() for c in self.conditions],
            "notes": list(self.notes),
            "retiring": list(self.retiring),
            "headline": self.headline,
        }


def decide(evidence: Evidence, rules: Rules, now: datetime) -> Verdict:
    """Judge every condition at ``now``.

    ``earliest`` is the latest of the conditions' times when all are known. The times of
    propagation, quorum, agreement and records left behind are only known once they hold
    (caches and people cannot be predicted), so while one does not hold ``earliest`` is
    ``None`` and each condition carries its own time.
    """
    now = _utc(now)
    change = _utc(evidence.change_time) if evidence.change_time is not None else None
    propagation, unpropagated = _propagation(evidence.summaries, rules.threshold, now, evidence.awaiting)
    conditions = (
        propagation,
        _quorum(evidence.summaries, rules, now),
        _authoritative(evidence.servers, evidence.agreed_since),
        _left_behind(evidence.left_behind, now),
        _ttl(evidence.bound, now),
        _after("parallel_period", change, rules.parallel_period, now, f"the parallel period ({duration(rules.parallel_period)})"),
    )
    missing = tuple(c.name for c in conditions if not c.met)
    times = [c.at for c in conditions]
    earliest = max(t for t in times if t is not None) if all(t is not None for t in times) else None
    return Verdict(not missing, missing, earliest, conditions, rules.threshold, unpropagated, evidence.bound.notes,
                   evidence.retiring)


#: Probe measurements named in the propagation condition's reason before "+N more".
AWAITING_SHOWN = 3


def _propagation(summaries: Sequence[RecordSummary], threshold: float, now: datetime,
                 awaiting: Sequence[str] = ()) -> tuple[Condition, tuple[str, ...]]:
    found, unpropagated = _shares(summaries, threshold, now)
    if not awaiting:
        return found, unpropagated
    more = f", +{len(awaiting) - AWAITING_SHOWN} more" if len(awaiting) > AWAITING_SHOWN else ""
    waiting = f"waiting for the first probe results ({', '.join(awaiting[:AWAITING_SHOWN])}{more})"
    return Condition("propagation", False, None, waiting if found.met else f"{found.reason}; {waiting}"), unpropagated


def _shares(summaries: Sequence[RecordSummary], threshold: float, now: datetime) -> tuple[Condition, tuple[str, ...]]:
    if not summaries:
        return Condition("propagation", True, now, "no record is asked of resolvers (judged at the authoritative servers)"), ()
    behind = [s for s in summaries if not s.reached(threshold)]
    if not behind:
        lowest = min(summaries, key=lambda s: s.share or 0.0)
        reason = f"every record is at or above {percent(threshold)} new (lowest: {_describe(lowest)})"
        return Condition("propagation", True, now, reason), ()
    reasons = "; ".join(_describe(s) for s in behind)
    return Condition("propagation", False, None, f"below {percent(threshold)} new: {reasons}"), tuple(s.label for s in behind)


def _describe(s: RecordSummary) -> str:
    if s.share is None:
        silent = s.error + s.filtered
        return f"{s.label}: no resolver answered ({silent} failed or filtered)" if silent else f"{s.label}: no resolver asked"
    return f"{s.label}: {s.new} of {s.answering} answering resolvers new ({percent(s.share)}; {s.old} old, {s.other} other)"


def _quorum(summaries: Sequence[RecordSummary], rules: Rules, now: datetime) -> Condition:
    """Per record, enough of the resolvers asked gave a usable answer."""
    if not summaries:
        return Condition("quorum", True, now, "no record is asked of resolvers")
    short = [s for s in summaries if s.answering < rules.required(s.asked)]
    rule = f"retire.min_answering {rules.min_answering_text}"
    if not short:
        fewest = min(summaries, key=lambda s: s.answering)
        return Condition("quorum", True, now, f"enough resolvers answer ({rule}; fewest: {_count(fewest)})")
    words = "; ".join(f"{_count(s)}, need {rules.required(s.asked)}" for s in short)
    return Condition("quorum", False, None, f"too few resolvers answer ({rule}): {words}")


def _count(s: RecordSummary) -> str:
    filtered = f", {s.filtered} filtered" if s.filtered else ""
    return f"{s.label}: {s.asked} asked, {s.answering} answered, {s.silent} silent{filtered}"


def _authoritative(servers: Sequence[ServerView], since: datetime | None) -> Condition:
    if not servers:
        return Condition("authoritative", False, None,
                         "no authoritative server could be asked (set verify.nameservers, or check the provider's NS)")
    if all_new(servers) and since is not None:
        return Condition("authoritative", True, _utc(since),
                         f"all {len(servers)} authoritative servers serve the new data (since {iso(since)})")
    lagging = [v for v in servers if v.state != "new"]
    return Condition("authoritative", False, None,
                     f"{len(lagging)} of {len(servers)} authoritative servers do not serve the new data: {describe_lagging(lagging)}")


def _left_behind(left: Sequence[str], now: datetime) -> Condition:
    if not left:
        return Condition("left_behind", True, now, "no record set in the zone still points at the old server's addresses")
    return Condition("left_behind", False, None,
                     f"{len(left)} record set(s) still point at the old server (add them to the plan, or to "
                     f"retire.ignore if that is intended): " + "; ".join(left))


def _ttl(bound: Bound, now: datetime) -> Condition:
    if bound.at is None:
        return Condition("ttl", False, None, bound.reason)
    at = _utc(bound.at)
    if at <= now:
        return Condition("ttl", True, at, f"{bound.reason}: passed at {iso(at)}")
    return Condition("ttl", False, at, f"{bound.reason}: passes at {iso(at)} (in {duration((at - now).total_seconds())})")


def _after(name: str, change: datetime | None, seconds: float, now: datetime, what: str) -> Condition:
    if change is None:
        return Condition(name, False, None, f"no change observed yet, so {what} has not started")
    at = change + timedelta(seconds=seconds)
    if at <= now:
        return Condition(name, True, at, f"{what} passed at {iso(at)}")
    return Condition(name, False, at, f"{what} passes at {iso(at)} (in {duration((at - now).total_seconds())})")


def stale_resolvers(round: Round, targets: Sequence[Target], ttl_start: datetime | None, now: datetime) -> list[Answer]:
    """Resolvers still giving the old data after every honest cache must have dropped it.

    A cache filled just before the last authoritative server changed may legitimately
    serve the old answer for the old TTL; past ``ttl_start + old_ttl`` an ``old`` answer
    means TTL clamping (``cache-min-ttl``), serve-stale, or a resolver that never saw the
    change. Their answers (with the TTL they gave) are returned so the report can name them.
    """
    if ttl_start is None:
        return []
    start = _utc(ttl_start)
    observed = min(_utc(round.time), _utc(now))
    by_key = {t.key: t for t in targets}
    stale = []
    for answer in round.from_resolvers():
        target = by_key.get(answer.key)
        if target is None or answer.state != "old":
            continue
        seen = observed if answer.measured is None else min(observed, _utc(answer.measured))  # a probe's, earlier
        if seen > start + timedelta(seconds=target.old_ttl):
            stale.append(answer)
    return stale


def _utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC: the journal and rounds are stamped in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
