"""Probe answers by continent, country and network, from round documents as watch writes them.

``probe_round`` (used by the live view, status and report tests too) takes a real round
document (``tests.observations.round_doc``) and adds probe answers and the ``probes``
services list in exactly the shape the round document carries them: an ordinary answer
dict with ``group: probe``, plus ``vantage``, ``measured`` and ``age``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from cutover import geography as geo
from cutover.observe.types import Answer, Round, Target
from cutover.resolvers import Resolver
from cutover.times import iso_precise, parse_iso
from tests.observations import round_doc

T0 = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)
WWW = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
MAIL = Target(("mail.example.com.", "A"), ("203.0.113.25",), ("198.51.100.25",), 300)
HOSTILE = "<script>alert('net')</script>"
PROBLEM = "globalping: POST /v1/measurements: HTTP 500: internal error"

#: (continent, country, city, asn, network): where the sample probes sit.
PLACES = {
    "JP": ("AS", "JP", "Tokyo", 2516, "KDDI"),
    "DE": ("EU", "DE", "Berlin", 3320, "Deutsche Telekom"),
    "FR": ("EU", "FR", "Paris", 3215, "Orange"),
    "US": ("NA", "US", "Ashburn", 7922, "Comcast"),
    "BR": ("SA", "BR", "Sao Paulo", 28573, HOSTILE),
}


def probe(place: str, state: str, target: Target = WWW, *, age: float = 42.0, at: datetime = T0, n: int = 0,
          service: str = "globalping", **vantage: Any) -> dict[str, Any]:
    """One probe answer dict as a round document carries it."""
    continent, country, city, asn, network = PLACES[place]
    v = {"service": service, "continent": continent, "country": country, "city": city, "asn": asn,
         "network": network, "probe": f"{service}-{place}-{n}"}
    v.update(vantage)
    values = {"new": list(target.new), "old": list(target.old)}.get(state, [])
    return {
        "resolver": f"{service} {v['country']} {v['city']} AS{v['asn']}", "address": "own", "operator": v["network"],
        "country": v["country"], "group": "probe", "filtering": False, "state": state,
        "ttl": 300 if values else None, "values": values, "detail": "", "elapsed": 0.012, "stale": False,
        "vantage": v, "measured": iso_precise(at - timedelta(seconds=age)), "age": age,
    }


def services(*, problems: Sequence[str] = (), in_flight: int = 0, answers: int = 0) -> list[dict[str, Any]]:
    return [{"service": "globalping", "url": "https://api.globalping.io", "every": 600.0, "in_flight": in_flight,
             "answers": answers, "last_started": "2026-11-28T14:59:00.000Z", "last_finished": "2026-11-28T14:59:18.000Z",
             "problems": list(problems)}]


#: The sample: JP all new, DE mostly new with old caches, FR one timeout, US new, BR old.
SAMPLE = [("JP", "new")] * 10 + [("DE", "new")] * 7 + [("DE", "old")] * 3 + [("FR", "new"), ("FR", "timeout")] \
    + [("US", "new")] * 4 + [("BR", "old"), ("BR", "filtered")]


def probe_round(spec: Iterable[tuple[str, str]] = SAMPLE, *, targets: Sequence[Target] = (WWW,), at: datetime = T0,
                number: int = 7, ages: Sequence[float] = (12.0, 42.0, 250.0), problems: Sequence[str] = (),
                in_flight: int = 0, with_services: bool = True) -> dict[str, Any]:
    """A round document (two resolvers, both new) with probe answers added to each target:
    counts and share as the round would count them."""
    resolver = [Resolver("192.0.2.1", name="alpha", group="public"), Resolver("192.0.2.2", name="beta", group="public")]
    answers = [Answer(r, t.key, "new", 300, t.new) for r in resolver for t in targets]
    doc = round_doc(Round(number, at, tuple(answers)), targets, change=at - timedelta(hours=1))
    spec = list(spec)
    for rec, target in zip(doc["records"], targets):
        added = [probe(place, state, target, age=ages[i % len(ages)], at=at, n=i) for i, (place, state) in enumerate(spec)]
        rec["answers"] += added
        for a in added:
            cls = a["state"] if a["state"] in ("new", "old", "other", "filtered") else "error"
            rec["counts"][cls] += 1
        c = rec["counts"]
        rec["answering"] = c["new"] + c["old"] + c["other"]
        rec["share"] = c["new"] / rec["answering"] if rec["answering"] else 0.0
    if with_services:
        doc["probes"] = services(problems=problems, in_flight=in_flight, answers=len(spec) * len(targets))
    return doc


def country(found: geo.Geography, code: str) -> geo.Country:
    return next(c for c in found.countries if c.code == code)


# --------------------------------------------------------------------------- tests


def test_counts_per_continent_and_country_with_the_shared_state_classes():
    found = geo.geography(probe_round())
    assert not found.empty
    t = found.tally
    assert (t.new, t.old, t.other, t.error, t.filtered) == (22, 4, 0, 1, 1)
    assert (t.answering, t.asked, t.behind) == (26, 28, 4) and t.share == 22 / 26
    assert [c.code for c in found.continents] == ["NA", "SA", "EU", "AS"]  # west to east
    assert [c.name for c in found.continents] == ["North America", "South America", "Europe", "Asia"]
    europe = found.continents[2]
    assert [c.code for c in europe.countries] == ["DE", "FR"]  # most answers first
    assert (europe.tally.new, europe.tally.old, europe.tally.error) == (8, 3, 1)
    de = country(found, "DE")
    assert (de.tally.new, de.tally.old, de.tally.answering, de.tally.tone) == (7, 3, 10, "mixed")
    assert de.networks == ("Deutsche Telekom",) and de.cities == ("Berlin",) and de.continent == "EU"
    assert country(found, "JP").tally.tone == "new" and country(found, "BR").tally.tone == "old"
    assert country(found, "FR").tally.tone == "new"  # a timeout says nothing: the one that answered is new
    assert geo.geography(probe_round([("FR", "timeout")])).tally.tone == "error"
    assert geo.Tally(other=2).tone == "other" and geo.Tally(filtered=1).tone == "error"


def test_age_range_and_networks():
    found = geo.geography(probe_round())
    assert (found.tally.youngest, found.tally.oldest) == (12.0, 250.0)
    assert geo.age_words(12.0, 250.0) == "12s-4m10s" and geo.age_words(5.0, 5.0) == "5s" and geo.age_words(None, None) == ""
    kddi = found.networks[0]
    assert (kddi.key, kddi.asn, kddi.name, kddi.countries, kddi.tally.new) == ("AS2516", 2516, "KDDI", ("JP",), 10)
    assert geo.network_words(kddi) == "AS2516 KDDI"
    assert [n.key for n in found.networks] == ["AS2516", "AS3320", "AS7922", "AS28573", "AS3215"]
    assert found.services == (("globalping", 28),)


def test_resolver_answers_and_old_rounds_without_vantage_keys_have_no_probes():
    doc = probe_round([])
    assert geo.geography(doc).empty and geo.probe_answers(doc) == ()
    old = probe_round()
    for rec in old["records"]:
        for a in rec["answers"]:
            for key in ("vantage", "measured", "age"):
                a.pop(key, None)
    old.pop("probes")
    assert geo.geography(old).empty and geo.services(old) == () and geo.brief(old) == ""


def test_per_record_and_from_records_or_answers():
    doc = probe_round([("JP", "new"), ("DE", "old")], targets=(WWW, MAIL))
    found = geo.geography(doc)
    assert found.records == ("www.example.com. A", "mail.example.com. A") and found.tally.asked == 4
    www = geo.geography(doc, "www.example.com. A")
    assert (www.tally.new, www.tally.old) == (1, 1)
    assert geo.geography(doc["records"]) == found == geo.geography(geo.probe_answers(doc))


def test_behind_first_puts_the_places_with_old_data_first():
    found = geo.geography(probe_round())
    assert [c.code for c in geo.behind_first(found.countries)] == ["DE", "BR", "JP", "US", "FR"]


def test_missing_places_and_hostile_text():
    doc = probe_round([("JP", "new")])
    a = doc["records"][0]["answers"][-1]
    a["vantage"].update(continent=None, country="", network="Evil\x1b[2J Net\x07", asn="2516", city=None)
    a["age"] = None
    found = geo.geography(doc)
    (c,) = found.countries
    assert (c.code, c.continent, found.continents[0].name) == ("??", "??", "??")
    assert found.networks[0].key == "Evil[2J Net" and found.networks[0].asn is None  # a string ASN is not trusted
    assert found.tally.youngest is None and "\x1b" not in geo.probe_label(a)
    assert geo.continent_name("oc") == "Oceania" and geo.continent_name("XX") == "XX"


def test_latest_answer_per_probe_over_rounds_aged_to_the_last_round():
    first = probe_round([("JP", "old"), ("DE", "old")], at=T0, number=1, ages=(30.0,))
    second = probe_round([("JP", "new")], at=T0 + timedelta(minutes=10), number=2, ages=(5.0,))
    third = probe_round([], at=T0 + timedelta(minutes=20), number=3)
    answers = geo.latest([first, second, third])
    by_country = {a.country: a for a in answers}
    assert by_country["JP"].state == "new" and by_country["JP"].age == 605.0  # 5s before round 2, 10m before round 3
    assert by_country["DE"].state == "old" and by_country["DE"].age == 1230.0
    assert geo.latest([]) == ()


def test_aged_counts_from_measured_to_now():
    doc = probe_round([("JP", "new")], ages=(12.0,))
    (a,) = geo.aged(doc, T0 + timedelta(seconds=30))
    assert a.age == 42.0
    doc["records"][0]["answers"][-1]["measured"] = None  # then from the round's time and the stored age
    assert geo.aged(doc, T0 + timedelta(seconds=30))[0].age == 42.0
    assert parse_iso(doc["time"]) == T0


def test_services_tolerate_missing_and_malformed_entries():
    doc: dict[str, Any] = {"probes": services(problems=[PROBLEM, "", "\x1b[31mred"], in_flight=1, answers=37)}
    doc["probes"] += ["junk", {"service": "ripe-atlas", "every": "often", "in_flight": -3, "problems": "not a list"}]
    gp, atlas = geo.services(doc)
    assert (gp.service, gp.every, gp.in_flight, gp.answers, gp.problems) == ("globalping", 600.0, 1, 37, (PROBLEM, "[31mred"))
    assert (atlas.service, atlas.every, atlas.in_flight, atlas.problems, atlas.last_started) == ("ripe-atlas", None, 0, (), None)
    assert geo.service_words(gp) == "globalping: 1 in flight, 37 answers"
    assert geo.service_words(atlas) == "ripe-atlas: no answers yet"
    assert geo.services({"probes": []}) == () and geo.services({}) == () and geo.services(None) == ()


def test_words():
    assert geo.tally_words(geo.Tally(new=7, old=3)) == "7/10 old 3"
    assert geo.tally_words(geo.Tally(new=1, other=1, error=2, filtered=1)) == "1/2 other 1 err 2 filt 1"
    brief = geo.brief(probe_round(problems=[PROBLEM]))
    assert brief == "probes 22/26 new; not new in DE 3, BR 1; 12s-4m10s old; 1 probe service problem(s)"


def _states(doc: Mapping[str, Any]) -> list[str]:
    return [a["state"] for r in doc["records"] for a in r["answers"] if a.get("vantage")]


def test_fixture_has_the_round_document_shape():
    doc = probe_round()
    a = doc["records"][0]["answers"][-1]
    assert a["group"] == "probe" and set(a["vantage"]) == {"service", "continent", "country", "city", "asn", "network", "probe"}
    assert a["measured"].endswith("Z") and isinstance(a["age"], float)
    assert doc["records"][0]["answers"][0]["vantage"] is None  # resolvers: vantage null
    assert len(_states(doc)) == len(SAMPLE)


def test_probes_without_an_id_sharing_a_label_stay_apart():
    first = probe_round([("JP", "old"), ("JP", "old")], number=1)
    second = probe_round([("JP", "new"), ("JP", "old")], at=T0 + timedelta(minutes=10), number=2)
    for doc in (first, second):
        for rec in doc["records"]:
            for a in rec["answers"]:
                if a.get("vantage"):
                    a["vantage"]["probe"] = ""  # Globalping gives none: both are "globalping JP Tokyo AS2516"
    answers = geo.latest([first, second])
    assert sorted(a.state for a in answers) == ["new", "old"]
    assert geo.geography(answers).tally.asked == 2
