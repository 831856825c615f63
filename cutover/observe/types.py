"""Observations as plain frozen values: what was asked, what each server said, per round.

Everything downstream (the verdict, the journal, ``status``, the report, notifications,
the live view) reasons about the same few words, so they are defined once here:

* a *state* is what one answer says about one record: ``new``, ``old``, ``other``, an
  error class, or ``filtered``;
* a resolver is *answering* for a record when its state is ``new``, ``old`` or ``other``
  (errors and block pages say nothing about propagation);
* a record's *share* is new / answering, ``None`` when nobody answered;
* a record has *reached* a threshold when somebody answered and the share is at least
  the threshold (with a small tolerance, so that 19/20 meets 95%).

The JSON forms of these values (one round's document, as ``watch --format json`` prints
it and the journal stores it) are written and read here too, so that the consumers of a
stored round parse it with the same definitions it was written with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from cutover.records import Keyed, RecordKey
from cutover.resolvers import Resolver, parse_address
from cutover.times import iso_precise, parse_iso

#: Answers that say something about the record's data; the share is computed over these.
ANSWERED = ("new", "old", "other")
#: Error classes: the server gave no usable statement about the record.
ERRORS = ("timeout", "servfail", "refused", "nxdomain", "nodata", "malformed", "error")
#: A filtering resolver's block answer: neither propagated nor a failure.
FILTERED = "filtered"
#: Errors that mean "could not reach the server", as opposed to an answer we did not like.
UNREACHABLE = ("timeout", "error", "refused")

#: ``Resolver.group`` of the zone's own servers (asked with recursion off).
AUTHORITATIVE = "authoritative"
#: ``Resolver.group`` of the parent zone's servers (a delegation change).
PARENT = "parent"
#: ``Resolver.group`` of the old DNS host's servers (a delegation change).
OLD_HOST = "old-host"
#: Groups asked with recursion off: they say what they hold, not what they can find.
NON_RECURSIVE = (AUTHORITATIVE, PARENT, OLD_HOST)

#: Float shares such as 19/20 against 95% must not fail on the last bit.
EPSILON = 1e-9


@dataclass(frozen=True)
class Target(Keyed):
    """One record set to watch: what "new" and "old" mean for it.

    ``new == ()`` means the record set is being deleted (so an empty answer is the new
    state); ``old == ()`` means it is being created (an empty answer is the old state,
    and ``old_ttl`` is then the zone's negative-caching TTL). ``old_ttl_source`` says
    where ``old_ttl`` comes from (``journal``, ``prepare``, ``rounds``, ``live``,
    ``old host``, ``max_old_ttl``), because a verdict is only as good as that number.
    ``recursive`` is False for what resolvers must not be asked (an NS set: asking a
    resolver for it can teach it the old delegation again) and for serial probes.
    """

    key: RecordKey
    new: tuple[str, ...]
    old: tuple[str, ...]
    old_ttl: int
    old_ttl_source: str = field(default="journal", compare=False)
    recursive: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class Vantage:
    """Where a probe network's answer was seen from: the probe's place and network.

    A resolver we ask ourselves has no vantage (it is where this machine is); a probe's
    answer came through that probe's own resolver, somewhere in the world.
    """

    service: str
    continent: str = ""
    country: str = ""
    city: str = ""
    asn: int | None = None
    network: str = ""
    probe: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "continent": self.continent, "country": self.country, "city": self.city,
                "asn": self.asn, "network": self.network, "probe": self.probe}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Vantage":
        asn = data.get("asn")
        return cls(str(data.get("service", "")), str(data.get("continent") or ""), str(data.get("country") or ""),
                   str(data.get("city") or ""), int(asn) if isinstance(asn, int) else None,
                   str(data.get("network") or ""), str(data.get("probe") or ""))


@dataclass(frozen=True)
class Answer:
    """What one server said about one record, reduced to a state.

    A probe network's answer also carries its ``vantage`` and ``measured``, when its
    measurement began (the probe asked then or a little later): it joins every round
    from the one after its result arrived until a newer measurement replaces it, and its
    age (round time minus ``measured``) is shown with it.
    """

    resolver: Resolver
    key: RecordKey
    state: str
    ttl: int | None
    values: tuple[str, ...]
    detail: str = ""
    elapsed: float | None = None
    vantage: Vantage | None = None
    measured: datetime | None = None

    @property
    def answered(self) -> bool:
        return self.state in ANSWERED

    def as_dict(self, stale: bool = False, now: datetime | None = None) -> dict[str, Any]:
        """The answer's JSON; ``now`` (the round's time) gives a probe answer its age."""
        r = self.resolver
        age = None
        if self.measured is not None and now is not None:
            age = round(max(0.0, (now - self.measured).total_seconds()), 1)
        return {
            "resolver": r.label,
            "address": r.endpoint,
            "operator": r.operator,
            "country": r.country,
            "group": r.group,
            "filtering": r.filtering,
            "state": self.state,
            "ttl": self.ttl,
            "values": list(self.values),
            "detail": self.detail,
            "elapsed": None if self.elapsed is None else round(self.elapsed, 3),
            "stale": stale,
            "vantage": None if self.vantage is None else self.vantage.as_dict(),
            "measured": iso_precise(self.measured),
            "age": age,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], key: RecordKey) -> "Answer":
        """An answer back from its JSON (a stored round), for carrying probe results on."""
        vantage = data.get("vantage")
        measured = data.get("measured")
        try:
            address, port = parse_address(str(data.get("address", "")))
        except ValueError:  # a probe's resolver may be unknown ("own")
            address, port = str(data.get("address", "")), 53
        resolver = Resolver(address, port, str(data.get("resolver", "")), str(data.get("operator", "")),
                            str(data.get("country", "")), bool(data.get("filtering", False)), str(data.get("group", "custom")))
        ttl = data.get("ttl")
        elapsed = data.get("elapsed")
        return cls(resolver, key, str(data.get("state", "error")), ttl if isinstance(ttl, int) else None,
                   tuple(str(v) for v in data.get("values") or ()), str(data.get("detail", "")),
                   float(elapsed) if isinstance(elapsed, (int, float)) else None,
                   Vantage.from_dict(vantage) if isinstance(vantage, Mapping) else None,
                   parse_iso(measured) if isinstance(measured, str) and measured else None)



@dataclass(frozen=True)
class Round:
    """All answers of one round, stamped with the (UTC) time the round started."""

    number: int
    time: datetime
    answers: tuple[Answer, ...]

    def of_group(self, *groups: str) -> tuple[Answer, ...]:
        return tuple(a for a in self.answers if a.resolver.group in groups)

    def from_resolvers(self) -> tuple[Answer, ...]:
        return tuple(a for a in self.answers if a.resolver.group not in NON_RECURSIVE)


class Counted:
    """What anything counting answers by state can say: how many answered (new, old or
    other: errors and filtered answers say nothing about propagation), how many were
    asked, and the share of new among those answering (None when nobody answered)."""

    new: int
    old: int
    other: int
    error: int
    filtered: int

    @property
    def answering(self) -> int:
        return self.new + self.old + self.other

    @property
    def asked(self) -> int:
        return self.answering + self.error + self.filtered

    @property
    def share(self) -> float | None:
        return self.new / self.answering if self.answering else None


@dataclass(frozen=True)
class RecordSummary(Counted):
    """Per record: how the resolvers asked about it split between the states.

    ``share`` is new / (new + old + other): errors and filtered answers say nothing about
    propagation, so they are left out. It is ``None`` when nobody answered, which the
    verdict treats as *not* propagated (silence is not evidence).
    """

    key: RecordKey
    new: int = 0
    old: int = 0
    other: int = 0
    error: int = 0
    filtered: int = 0
    answers: tuple[Answer, ...] = field(default=(), repr=False)

    @property
    def silent(self) -> int:
        """Asked but said nothing about the data (an error class)."""
        return self.error

    def reached(self, threshold: float) -> bool:
        return reached(self.answering, self.share, threshold)

    @property
    def counts(self) -> dict[str, int]:
        return {"new": self.new, "old": self.old, "other": self.other, "error": self.error, "filtered": self.filtered}

    @property
    def label(self) -> str:
        return f"{self.key[0]} {self.key[1]}"

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "RecordSummary":
        """A summary from a round document's record entry (the counts; not the answers)."""
        counts = rec.get("counts") or {}
        new, old, other, error, filtered = (int(counts.get(k, 0)) for k in ("new", "old", "other", "error", "filtered"))
        return cls((str(rec["name"]), str(rec["type"])), new, old, other, error, filtered)


def reached(answering: int, share: float | None, threshold: float) -> bool:
    """The one rule for "this record is at the threshold"."""
    return answering > 0 and share is not None and share >= threshold - EPSILON


def summarise(round: Round, targets: Sequence[Target]) -> list[RecordSummary]:
    """Per target asked of resolvers, the split of the resolvers' answers."""
    by_key: dict[RecordKey, list[Answer]] = {t.key: [] for t in targets if t.recursive}
    for a in round.from_resolvers():
        if a.key in by_key:
            by_key[a.key].append(a)
    return [summary(key, answers) for key, answers in by_key.items()]


def summary(key: RecordKey, answers: Sequence[Answer]) -> RecordSummary:
    count = {s: 0 for s in ("new", "old", "other", "error", FILTERED)}
    for a in answers:
        count[a.state if a.state in count else "error"] += 1
    return RecordSummary(key, count["new"], count["old"], count["other"], count["error"], count[FILTERED], tuple(answers))
