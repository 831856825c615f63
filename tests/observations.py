"""Building verdicts and round documents in unit tests, the way ``cutover.monitor`` does.

The verdict judges frozen evidence; these helpers assemble it from a round (or from
counts) with the defaults a plain record change has: every authoritative server on the
new data since the change, the bound at change + old TTL (the bound's own rules are
``tests/test_bounds.py``'s), nothing left behind.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Sequence

from cutover import bounds, rounds
from cutover.observe.authoritative import ServerView, views
from cutover.observe.types import Answer, RecordSummary, Round, Target, summarise
from cutover.resolvers import Resolver
from cutover.verdict import Evidence, Rules, Verdict, decide, stale_resolvers

NS1 = ServerView("ns1.example.test", "192.0.2.53", "authoritative", 7, "new", "serves the new data")
_UNSET: Any = object()


def evidence(summaries: Sequence[RecordSummary], *, change: datetime | None, ttl: int = 300,
             servers: Sequence[ServerView] = (NS1,), agreed: datetime | None = _UNSET,
             left: Sequence[str] = (), awaiting: Sequence[str] = ()) -> Evidence:
    agreed = change if agreed is _UNSET else agreed
    bound = (bounds.Bound(agreed + timedelta(seconds=ttl), f"the longest old TTL ({ttl}s)") if agreed is not None
             else bounds.Bound(None, "the old TTL counts from when every authoritative server serves the new data, "
                                     "which has not happened yet"))
    return Evidence(tuple(summaries), tuple(servers), agreed, bound, change, tuple(left), awaiting=tuple(awaiting))


def judge(summaries: Sequence[RecordSummary], *, now: datetime, change: datetime | None, threshold: float = 1.0,
          ttl: int = 300, period: float = 7 * 86400.0, min_answering: float = 0.5, count: bool = False,
          **kwargs: Any) -> Verdict:
    rules = Rules(threshold, period, min_answering, count)
    return decide(evidence(summaries, change=change, ttl=ttl, **kwargs), rules, now)


def judge_round(rnd: Round, targets: Sequence[Target], *, now: datetime, change: datetime | None,
                **kwargs: Any) -> Verdict:
    return judge(summarise(rnd, targets), now=now, change=change, **kwargs)


def round_doc(rnd: Round, targets: Sequence[Target], *, change: datetime | None, now: datetime | None = None,
              threshold: float = 1.0, ttl: int = 300, period: float = 7 * 86400.0) -> dict[str, Any]:
    """A round's document as ``watch`` writes it: verdict, stale answers and the evidence."""
    now = now or rnd.time
    found = views(rnd, targets)
    ev = evidence(summarise(rnd, targets), change=change, ttl=ttl, **({"servers": found} if found else {}))
    verdict = decide(ev, Rules(threshold, period), now)
    stale: list[Answer] = stale_resolvers(rnd, targets, change, now)
    return rounds.round_document(rnd, targets, verdict, ev, stale=stale)


def later(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


def answer(resolver: Resolver, target: Target, state: str, ttl: int | None = 300) -> Answer:
    """One answer in ``state``, carrying the target's new or old values when it says so."""
    values = {"new": target.new, "old": target.old}.get(state, ())
    return Answer(resolver, target.key, state, ttl, values)


def resolvers(n: int, group: str = "public", **kw: Any) -> list[Resolver]:
    """``n`` distinct resolvers r0, r1, ... at 192.0.2.10 and on."""
    return [Resolver(f"192.0.2.{i + 10}", name=f"r{i}", group=group, **kw) for i in range(n)]
