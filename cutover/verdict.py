"""The retire verdict: may the old server be switched off now, and if not, when?

Pure functions of observations and clock, so that ``watch``, ``status`` and the tests
reach the same answer from the same facts. Three conditions, all required:

* propagation: enough of the *answering* resolvers give the new data for every record
  (a record nobody answered for is not propagated: silence is not evidence);
* ttl: the longest old TTL has passed since the change, so that no cache, including
  the ones we cannot see, can still hold the old answer;
* parallel_period: the operator's own safety margin has passed since the change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from cutover.times import duration, iso, percent
from cutover.watch import AUTHORITATIVE, Answer, RecordSummary, Round, Target

#: Float shares such as 19/20 against 95% must not fail on the last bit.
EPSILON = 1e-9

CONDITIONS = ("propagation", "ttl", "parallel_period")


@dataclass(frozen=True)
class Condition:
    """One of the three conditions: whether it holds, from when, and why (not)."""

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
        }


def decide(
    summaries: Sequence[RecordSummary],
    *,
    threshold: float,
    change_time: datetime | None,
    longest_old_ttl: int,
    parallel_period: float,
    now: datetime,
) -> Verdict:
    """Judge the three conditions at ``now``.

    ``change_time`` is the journalled apply, or the first round where every authoritative
    server served the new data; ``None`` means no change has been seen yet, and then no
    condition is met. ``earliest`` is the latest of the three times when all are known;
    propagation's time is only known once it holds (we cannot predict caches), so while
    it does not hold ``earliest`` is ``None`` and each condition carries its own time.
    """
    now = _utc(now)
    change = _utc(change_time) if change_time is not None else None
    propagation, unpropagated = _propagation(summaries, threshold, now)
    conditions = (
        propagation,
        _after("ttl", change, longest_old_ttl, now, _ttl_words(longest_old_ttl)),
        _after("parallel_period", change, parallel_period, now, f"the parallel period ({duration(parallel_period)})"),
    )
    missing = tuple(c.name for c in conditions if not c.met)
    times = [c.at for c in conditions]
    earliest = max(times) if all(t is not None for t in times) else None  # type: ignore[type-var]
    return Verdict(not missing, missing, earliest, conditions, threshold, unpropagated)


def _propagation(summaries: Sequence[RecordSummary], threshold: float, now: datetime) -> tuple[Condition, tuple[str, ...]]:
    if not summaries:
        return Condition("propagation", False, None, "no records are watched"), ()
    behind = [s for s in summaries if s.share is None or s.share < threshold - EPSILON]
    labels = tuple(f"{s.key[0]} {s.key[1]}" for s in behind)
    if not behind:
        lowest = min(summaries, key=lambda s: s.share or 0.0)
        reason = f"every record is at or above {percent(threshold)} new (lowest: {_describe(lowest)})"
        return Condition("propagation", True, now, reason), ()
    reasons = "; ".join(_describe(s) for s in behind)
    return Condition("propagation", False, None, f"below {percent(threshold)} new: {reasons}"), labels


def _describe(s: RecordSummary) -> str:
    name = f"{s.key[0]} {s.key[1]}"
    if s.share is None:
        silent = s.error + s.filtered
        return f"{name}: no resolver answered ({silent} failed or filtered)" if silent else f"{name}: no resolver asked"
    return f"{name}: {s.new} of {s.answering} answering resolvers new ({percent(s.share)}; {s.old} old, {s.other} other)"


def _after(name: str, change: datetime | None, seconds: float, now: datetime, what: str) -> Condition:
    if change is None:
        return Condition(name, False, None, f"no change observed yet, so {what} has not started")
    at = change + timedelta(seconds=seconds)
    if at <= now:
        return Condition(name, True, at, f"{what} passed at {iso(at)}")
    return Condition(name, False, at, f"{what} passes at {iso(at)} (in {duration((at - now).total_seconds())})")


def _ttl_words(ttl: int) -> str:
    return f"the longest old TTL ({duration(ttl)})"


def stale_resolvers(
    round: Round, targets: Sequence[Target], change_time: datetime | None, now: datetime
) -> list[Answer]:
    """Resolvers still giving the old data after every honest cache must have dropped it.

    A cache filled just before the change may legitimately serve the old answer for the
    old TTL; past ``change_time + old_ttl`` an ``old`` answer means TTL clamping
    (``cache-min-ttl``), serve-stale, or a resolver that never saw the change. Their
    answers (with the TTL they gave) are returned so the report can name them.
    """
    if change_time is None:
        return []
    change = _utc(change_time)
    observed = min(_utc(round.time), _utc(now))
    by_key = {t.key: t for t in targets}
    stale = []
    for answer in round.answers:
        target = by_key.get(answer.key)
        if target is None or answer.state != "old" or answer.resolver.group == AUTHORITATIVE:
            continue
        if observed > change + timedelta(seconds=target.old_ttl):
            stale.append(answer)
    return stale


# --------------------------------------------------------------------------- wording


def _utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC: the journal and rounds are stamped in UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
