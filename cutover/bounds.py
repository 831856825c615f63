"""Until when can old data still be served from caches nobody can see? One rule per kind of change.

The watch sees only the resolvers it asks; the old server may be retired only when no
cache anywhere can still hold (or fetch) the old data. That moment is a bound computed
from what the DNS itself promises, never from what the watch happened to observe:

* **a record changed at the DNS host** (A, AAAA, MX, TXT, ...): a cache may have fetched
  the old answer from the last authoritative server that still served it, just before it
  changed, and keeps it for the old TTL. The clock therefore starts when the *last*
  authoritative server served the new data, and the bound is that time plus the longest
  old TTL (for a created record, the zone's negative-caching TTL);
* **a delegation change** (the apex NS changed at the parent, a move between DNS hosts):
  a resolver that learnt the old delegation just before the parent changed keeps it for
  the parent's NS TTL, and may re-learn it from the old host's own NS set with a fresh
  TTL (resolvers prefer the child's NS set), so it can keep asking the old host until
  *change + parent NS TTL + old host NS TTL*. Whatever the old host serves until then can
  be cached for its TTL; where the old host was updated to the new data, the fetches of
  old data end when that update was seen.

Caches count TTLs in whole seconds and may still hand out an answer during its last
second (Unbound serves a TTL-2 answer for up to 3 s), so every cache step adds
``ROUNDING`` to the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping, Sequence

from cutover.observe.types import Target
from cutover.records import RecordKey
from cutover.times import duration, iso

#: Seconds a cache may serve an answer past its TTL because TTLs are counted in whole seconds.
ROUNDING = 1


@dataclass(frozen=True)
class Bound:
    """The moment after which no cache can hold old data, and how it was reached."""

    at: datetime | None
    reason: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class OldHost:
    """What the old DNS host serves (a delegation change), as seen by the watch so far."""

    servers: tuple[str, ...]
    ns_ttl: int  # its own apex NS TTL (or the stated bound when never seen)
    ns_ttl_source: str
    teaches_old_ns: bool  # its own NS set is not the new one, so resolvers can re-learn the old delegation
    serving_old: tuple[RecordKey, ...] = ()  # records it served old data for in the last round
    new_since: Mapping[RecordKey, datetime] = field(default_factory=dict)  # records it serves new since


@dataclass(frozen=True)
class Delegation:
    """A move between DNS hosts: the parent's old NS TTL and what the old host does."""

    parent_ns_ttl: int
    old_host: OldHost


def record_change(targets: Sequence[Target], agreed_since: datetime | None) -> Bound:
    """Last authoritative server on the new data + the longest old TTL."""
    if not targets:
        return Bound(None, "no record is watched")
    longest = max(targets, key=lambda t: t.old_ttl)
    ttl_words = _ttl_words(longest)
    if agreed_since is None:
        return Bound(None, f"{ttl_words} counts from when every authoritative server serves the new data, which has not happened yet")
    at = agreed_since + timedelta(seconds=longest.old_ttl + ROUNDING)
    return Bound(at, f"{ttl_words} counted from {iso(agreed_since)}, when the last authoritative server served the new data")


def _ttl_words(t: Target) -> str:
    if t.old_ttl_source == "prepare":  # a forced apply soon after prepare: the long TTL is still running
        return f"what is left of the TTL from before prepare ({duration(t.old_ttl)}, {t.name} {t.type})"
    return f"the longest old TTL ({duration(t.old_ttl)}, {t.name} {t.type}, from {t.old_ttl_source})"


def delegation_change(targets: Sequence[Target], agreed_since: datetime | None, d: Delegation) -> Bound:
    """Parent NS TTL (+ the old host's NS TTL while it teaches the old NS) + record TTLs."""
    host = d.old_host
    if agreed_since is None:
        return Bound(None, "the clock starts when the parent's servers hand out the new delegation and every "
                           "server of the new DNS host serves the new data, which has not happened yet",
                     _advice(targets, d, None))
    relearn = host.ns_ttl + ROUNDING if host.teaches_old_ns else 0
    held_until = agreed_since + timedelta(seconds=d.parent_ns_ttl + ROUNDING + relearn)
    ends = {t.key: _last_fetch(t, held_until, host) + timedelta(seconds=t.old_ttl + ROUNDING)
            for t in targets if t.recursive}
    at = max([held_until, *ends.values()])
    relearnt = (f" plus the old host's own NS TTL ({duration(host.ns_ttl)}, from {host.ns_ttl_source}), since resolvers "
                "can re-learn the old NS set from the old host's answers") if relearn else ""
    reason = (f"delegation change: the parent hands out the new NS since {iso(agreed_since)}; a resolver may keep the old "
              f"delegation for the parent's NS TTL ({duration(d.parent_ns_ttl)}){relearnt}, until {iso(held_until)}")
    if ends:
        key, end = max(ends.items(), key=lambda kv: kv[1])
        target = next(t for t in targets if t.key == key)
        reason += f"; then {key[0]} {key[1]} fetched from the old host can stay cached for {duration(target.old_ttl)} (until {iso(end)})"
    if host.serving_old:
        reason += "; the old host still serves the old " + ", ".join(f"{k[0]} {k[1]}" for k in host.serving_old)
    return Bound(at, reason, _advice(targets, d, held_until))


def _last_fetch(target: Target, held_until: datetime, host: OldHost) -> datetime:
    """The last moment a resolver can fetch the old data of ``target`` from the old host."""
    updated = host.new_since.get(target.key)
    return min(held_until, updated) if updated is not None and target.key not in host.serving_old else held_until


def _advice(targets: Sequence[Target], d: Delegation, held_until: datetime | None) -> tuple[str, ...]:
    """What the old host still serving old data means, and how to shorten that tail."""
    host = d.old_host
    old = [f"{k[0]} {k[1]}" for k in host.serving_old if any(t.key == k and t.recursive for t in targets)]
    if not old:
        return ()
    until = f"until {iso(held_until)}" if held_until is not None else "for as long as they hold it"
    servers = ", ".join(host.servers) or "the old DNS host"
    return (f"the old host ({servers}) still serves the old {', '.join(old)}: any resolver that holds the old delegation "
            f"can keep receiving it {until}. To shorten this tail, update the old host's zone to the new data (then "
            f"only answers already cached remain), or, before a move, lower the old host's NS TTL and the parent's.",)
