"""Probe answers by continent, country and network.

A probe network (Globalping, RIPE Atlas) asks from homes and networks all over the
world, each probe through its own resolver. One number for all of them hides what an
operator needs to know: *where* the old answer is still served. So the live view,
``status`` and the report all group the probe answers of a round the same way, here:
by continent then country, and by network (ASN and name), counting states with the
definitions every other count uses (``ANSWERED``, ``ERRORS``, ``FILTERED`` in
``cutover.observe.types``), with the range of the answers' ages (a probe result is
measured in the background and joins a later round, so how old it is matters).

Everything reads round documents (the JSON ``watch`` writes and the journal stores),
never live objects, and everything here is pure: no I/O, no clock. Old stored rounds
whose answers have no ``vantage`` key simply have no probe answers. Texts from a probe
service (network and city names) are third-party data: control characters are removed
on the way in, so a hostile name cannot move a terminal's cursor; HTML escaping stays
the page's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from cutover.observe.types import ANSWERED, FILTERED, Counted
from cutover.times import duration, parse_iso

#: The two-letter continent codes Globalping and RIPE Atlas use, and how people say them.
CONTINENTS = {
    "AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe",
    "NA": "North America", "OC": "Oceania", "SA": "South America",
}
#: West to east, as a world map reads; a probe without a known continent comes last.
CONTINENT_ORDER = ("NA", "SA", "EU", "AF", "AS", "OC", "AN")
#: What stands for a continent or country a probe did not report.
UNKNOWN = "??"
#: How a group's answers look on a map: every answering probe new, none new, a mix,
#: only ``other`` answers, or nobody answering (errors and block pages only).
TONES = ("new", "old", "mixed", "other", "error")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """Third-party text without control characters (a terminal would act on them)."""
    return _CONTROL.sub("", "" if text is None else str(text)).strip()


def continent_name(code: str) -> str:
    """``EU`` -> ``Europe``; an unknown code is shown as it came (``??`` when missing)."""
    return CONTINENTS.get(code.upper(), code or UNKNOWN)


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class ProbeAnswer:
    """One probe's answer about one record, flattened from the round document.

    ``age`` is the seconds between when its result arrived (``measured``) and the round
    (or report) time it is shown at; None when the document did not say.
    """

    record: str
    state: str
    service: str
    continent: str
    country: str
    city: str
    asn: int | None
    network: str
    probe: str
    resolver: str
    measured: str | None
    age: float | None

    @property
    def network_key(self) -> str:
        """``AS2516``, or the network's name when the probe gave no ASN."""
        return f"AS{self.asn}" if self.asn is not None else (self.network or UNKNOWN)

    @property
    def identity(self) -> tuple[str, str, str]:
        """The same probe asked about the same record in another round."""
        return (self.service, self.probe or self.resolver, self.record)


def probe_answer(answer: Mapping[str, Any], record: str, age: float | None = None) -> ProbeAnswer | None:
    """The answer as a probe answer, or None when it has no vantage (a resolver we asked,
    or an answer from a round stored before probes existed)."""
    vantage = answer.get("vantage")
    if not isinstance(vantage, Mapping):
        return None
    asn = vantage.get("asn")
    stored_age = answer.get("age")
    if age is None and isinstance(stored_age, (int, float)) and not isinstance(stored_age, bool):
        age = float(stored_age)
    measured = answer.get("measured")
    return ProbeAnswer(
        record=record,
        state=clean(answer.get("state")) or "error",
        service=clean(vantage.get("service")) or "probe",
        continent=clean(vantage.get("continent")).upper() or UNKNOWN,
        country=clean(vantage.get("country")).upper() or UNKNOWN,
        city=clean(vantage.get("city")),
        asn=asn if isinstance(asn, int) and not isinstance(asn, bool) else None,
        network=clean(vantage.get("network")),
        probe=clean(vantage.get("probe")),
        resolver=clean(answer.get("resolver")),
        measured=measured if isinstance(measured, str) and measured else None,
        age=age,
    )


def record_label(rec: Mapping[str, Any]) -> str:
    return f"{rec.get('name', '?')} {rec.get('type', '?')}"


def probe_answers(source: Mapping[str, Any] | Iterable[Mapping[str, Any]], record: str | None = None) -> tuple[ProbeAnswer, ...]:
    """The probe answers of a round document (or of its ``records``), optionally of one
    record (``"www.example.com. A"``)."""
    records = source.get("records", []) if isinstance(source, Mapping) else source
    out = []
    for rec in records:
        label = record_label(rec)
        if record is not None and label != record:
            continue
        for ans in rec.get("answers") or []:
            found = probe_answer(ans, label)
            if found is not None:
                out.append(found)
    return tuple(out)


def latest(docs: Sequence[Mapping[str, Any]]) -> tuple[ProbeAnswer, ...]:
    """Per probe and record, its newest answer over all the rounds, aged to the last one.

    A probe's result joins a round after it arrives, not necessarily the last round:
    the report shows what each probe said last, with how long before the last round
    that was.
    """
    found: dict[tuple[str, str, str, int], tuple[float | None, ProbeAnswer]] = {}
    end = _moment(docs[-1].get("time")) if docs else None
    for doc in docs:
        when = _moment(doc.get("time"))
        seen: dict[tuple[str, str, str], int] = {}  # probes without an id may share a label: the n-th is one probe
        for a in probe_answers(doc):
            key = (*a.identity, seen.setdefault(a.identity, 0))
            seen[a.identity] += 1
            measured = _moment(a.measured)
            if measured is None and when is not None and a.age is not None:
                measured = when - a.age
            previous = found.get(key)
            if previous is None or previous[0] is None or (measured is not None and measured >= previous[0]):
                found[key] = (measured, a)
    out = []
    for measured, a in found.values():
        age = round(max(0.0, end - measured), 1) if end is not None and measured is not None else a.age
        out.append(replace(a, age=age))
    return tuple(out)


def aged(source: Mapping[str, Any], at: datetime) -> tuple[ProbeAnswer, ...]:
    """A round's probe answers with their ages at ``at`` rather than at the round: the
    live view keeps counting while it waits for the next round."""
    since = _moment(source.get("time"))
    out = []
    for a in probe_answers(source):
        measured = _moment(a.measured)
        if measured is None and since is not None and a.age is not None:
            measured = since - a.age
        out.append(replace(a, age=a.age if measured is None else round(max(0.0, at.timestamp() - measured), 1)))
    return tuple(out)


def _moment(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_iso(text).timestamp()
    except ValueError:
        return None


# --------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Tally(Counted):
    """How a group of probe answers split between the states, and how old they are.

    The classes are the ones every count uses: ``new``/``old``/``other`` answer, the
    error classes say nothing about the data, a block page is ``filtered``. ``share`` is
    new / answering, None when nobody answered (silence is not evidence).
    """

    new: int = 0
    old: int = 0
    other: int = 0
    error: int = 0
    filtered: int = 0
    youngest: float | None = None
    oldest: float | None = None

    @classmethod
    def of(cls, answers: Iterable[ProbeAnswer]) -> "Tally":
        count = dict.fromkeys(("new", "old", "other", "error", "filtered"), 0)
        ages = []
        for a in answers:
            if a.state in ANSWERED:
                count[a.state] += 1
            elif a.state == FILTERED:
                count["filtered"] += 1
            else:  # ERRORS, and anything unknown: no usable statement
                count["error"] += 1
            if a.age is not None:
                ages.append(a.age)
        return cls(**count, youngest=min(ages, default=None), oldest=max(ages, default=None))

    @property
    def behind(self) -> int:
        """Answering, but not (yet) with the new data."""
        return self.old + self.other

    @property
    def tone(self) -> str:
        """One of ``TONES``: what colour the group is on a map."""
        if not self.answering:
            return "error"
        if self.new == self.answering:
            return "new"
        if self.new:
            return "mixed"
        return "old" if self.old else "other"


@dataclass(frozen=True)
class Country:
    """One country's probe answers; ``networks`` and ``cities`` as the probes named them."""

    code: str
    continent: str
    tally: Tally
    networks: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Continent:
    code: str
    name: str
    tally: Tally
    countries: tuple[Country, ...]


@dataclass(frozen=True)
class Network:
    """One network (an ASN, else a name): a resolver problem is often one ISP's cache."""

    key: str
    asn: int | None
    name: str
    tally: Tally
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class Geography:
    """A round's (or a report's) probe answers, grouped. Empty when there were none."""

    tally: Tally
    continents: tuple[Continent, ...]
    networks: tuple[Network, ...]
    services: tuple[tuple[str, int], ...]  # answers per service, most first
    records: tuple[str, ...]  # the records the answers are about, in document order

    @property
    def empty(self) -> bool:
        return not self.tally.asked

    @property
    def countries(self) -> tuple[Country, ...]:
        return tuple(c for continent in self.continents for c in continent.countries)


def geography(source: Mapping[str, Any] | Iterable[Mapping[str, Any]] | Iterable[ProbeAnswer],
              record: str | None = None) -> Geography:
    """Group probe answers: from a round document, its records, or ``ProbeAnswer`` values."""
    items = list(source.get("records", [])) if isinstance(source, Mapping) else list(source)
    answers = [a for a in items if isinstance(a, ProbeAnswer)]
    if len(answers) != len(items):
        answers = list(probe_answers([x for x in items if isinstance(x, Mapping)]))
    if record is not None:
        answers = [a for a in answers if a.record == record]
    by_continent: dict[str, dict[str, list[ProbeAnswer]]] = {}
    by_network: dict[str, list[ProbeAnswer]] = {}
    services: dict[str, int] = {}
    for a in answers:
        by_continent.setdefault(a.continent, {}).setdefault(a.country, []).append(a)
        by_network.setdefault(a.network_key, []).append(a)
        services[a.service] = services.get(a.service, 0) + 1
    continents = []
    for code in sorted(by_continent, key=_continent_rank):
        countries = [Country(cc, code, Tally.of(found), _distinct(a.network for a in found), _distinct(a.city for a in found))
                     for cc, found in by_continent[code].items()]
        countries.sort(key=lambda c: (c.code == UNKNOWN, -c.tally.asked, c.code))
        continents.append(Continent(code, continent_name(code), Tally.of(a for f in by_continent[code].values() for a in f),
                                    tuple(countries)))
    networks = [Network(key, found[0].asn, next(iter(_distinct(a.network for a in found)), ""), Tally.of(found),
                        _distinct(a.country for a in found)) for key, found in by_network.items()]
    networks.sort(key=lambda n: (-n.tally.asked, n.key))
    return Geography(Tally.of(answers), tuple(continents), tuple(networks),
                     tuple(sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))), _distinct(a.record for a in answers))


def _continent_rank(code: str) -> tuple[int, str]:
    return (CONTINENT_ORDER.index(code) if code in CONTINENT_ORDER else len(CONTINENT_ORDER), code)


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def behind_first(groups: Iterable[Country | Network | Continent]) -> list[Any]:
    """Groups still answering old (or other) data first, the largest first: where the
    operator has to look, before the places that are done."""
    return sorted(groups, key=lambda g: (g.tally.behind == 0, -g.tally.behind, -g.tally.asked))


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Service:
    """One probe service entry of a round (``doc["probes"]``): how its measurements go.

    A failing service (down, 4xx, 5xx, malformed or partial results, probes offline) is
    reported here, in ``problems``, and never fails the watch.
    """

    service: str
    url: str = ""
    every: float | None = None
    in_flight: int = 0
    answers: int = 0
    last_started: str | None = None
    last_finished: str | None = None
    problems: tuple[str, ...] = ()


def services(doc: Mapping[str, Any] | None) -> tuple[Service, ...]:
    """The round's probe services; () for a plan without probes or an older round."""
    found = (doc or {}).get("probes")
    if not isinstance(found, list):
        return ()
    out = []
    for item in found:
        if not isinstance(item, Mapping):
            continue
        every = item.get("every")
        problems = item.get("problems")
        out.append(Service(
            clean(item.get("service")) or "probe", clean(item.get("url")),
            float(every) if isinstance(every, (int, float)) and not isinstance(every, bool) else None,
            _count(item.get("in_flight")), _count(item.get("answers")),
            _text(item.get("last_started")), _text(item.get("last_finished")),
            tuple(clean(p) for p in problems if clean(p)) if isinstance(problems, list) else ()))
    return tuple(out)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return (clean(value) or None) if isinstance(value, str) else None


# --------------------------------------------------------------------------- words


def tally_words(t: Tally) -> str:
    """``7/10 old 3``: new of answering, then what holds it back (zeros left out)."""
    extra = [f"{word} {n}" for word, n in (("old", t.old), ("other", t.other), ("err", t.error), ("filt", t.filtered)) if n]
    return " ".join([f"{t.new}/{t.answering}", *extra])


def age_words(youngest: float | None, oldest: float | None) -> str:
    """``12s``, ``12s-4m10s``: how old the answers are; "" when unknown."""
    if youngest is None or oldest is None:
        return ""
    low, high = duration(youngest), duration(oldest)
    return low if low == high else f"{low}-{high}"


def network_words(n: Network) -> str:
    """``AS2516 KDDI``: the ASN and the name (whichever the probe gave)."""
    if n.asn is not None and n.name:
        return f"AS{n.asn} {n.name}"
    return n.key


def service_words(s: Service) -> str:
    """``globalping: 1 in flight, 37 answers``: what the service is doing."""
    parts = [f"{s.in_flight} in flight" if s.in_flight else "", f"{s.answers} answers" if s.answers else "no answers yet"]
    return f"{s.service}: " + ", ".join(p for p in parts if p)



def brief(doc: Mapping[str, Any]) -> str:
    """The probes of a round in a log line: how many are new, the countries still
    behind, how old, and how many service problems; "" when the round has none."""
    found, problems = geography(doc), sum(len(s.problems) for s in services(doc))
    if found.empty and not problems:
        return ""
    behind = [f"{c.code} {c.tally.behind}" for c in behind_first(found.countries) if c.tally.behind]
    ages = age_words(found.tally.youngest, found.tally.oldest)
    return "; ".join(filter(None, [f"probes {found.tally.new}/{found.tally.answering} new",
                                   "not new in " + ", ".join(behind) if behind else "", f"{ages} old" if ages else "",
                                   f"{problems} probe service problem(s)" if problems else ""]))


def probe_label(answer: Mapping[str, Any]) -> str:
    """How an answer is named in a list: a probe's label (service, place, ASN) with its
    network's name, cleaned; a resolver's label as it is."""
    vantage, name = answer.get("vantage"), str(answer.get("resolver", ""))
    if not isinstance(vantage, Mapping):
        return name
    network = clean(vantage.get("network"))
    return clean(name) + (f" {network}" if network and network not in name else "")


def row_key(answer: Mapping[str, Any]) -> tuple[str, str]:
    """A list row per resolver, and per probe (probes in one city and network share a label)."""
    vantage = answer.get("vantage")
    return (probe_label(answer), clean(vantage.get("probe")) if isinstance(vantage, Mapping) else "")


def numbered(names: Sequence[str]) -> list[str]:
    """Names told apart: the second ``globalping JP Tokyo AS2516`` is ``... #2``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out
