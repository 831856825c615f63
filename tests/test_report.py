"""The report's data and page, from a journal filled the way watch fills it.

Rounds are made with the real ``watch.round_document`` and ``verdict.decide`` from
chosen answers, so the report reads exactly the documents ``cutover watch`` writes;
the browser test (tests/integration/test_report_browser.py) does it end to end.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from cutover import cli, monitor, render, report, report_html
from cutover import plan as planmod
from cutover.journal import Journal
from cutover.records import Change, RecordSet
from cutover.resolvers import Resolver
from cutover.observe.types import Answer, Round, Target
from tests.observations import round_doc
from tests.test_geography import HOSTILE, PROBLEM, probe
from tests.test_geography import services as geo_services

ZONE = "example.test."
OLD, NEW = "198.51.100.10", "203.0.113.10"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z, the apply
EVIL = '<img src=x onerror="alert(1)">'
RESOLVERS = {
    "alpha": Resolver("192.0.2.1", name="alpha", operator="Alpha DNS", country="DE"),
    "evil": Resolver("192.0.2.2", name=EVIL, operator="Evil & <Co>", country="US"),
    "gamma": Resolver("192.0.2.3", name="gamma"),
    "stuck": Resolver("192.0.2.4", name="stuck", operator="Clamps TTLs"),
}
WWW, MAIL = (f"www.{ZONE}", "A"), (f"mail.{ZONE}", "A")
TARGETS = (Target(WWW, (NEW,), (OLD,), 300), Target(MAIL, (NEW,), (OLD,), 300))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def round_time(ts: float) -> str:
    """How a round's start is written: to the millisecond."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def write_plan(directory: Path, zone: str = ZONE, name: str = "plan.yaml") -> planmod.Plan:
    doc = {
        "version": 1,
        "zone": zone,
        "provider": {"type": "manual"},
        "records": [
            {"name": "www", "type": "A", "ttl": 60, "from": [OLD], "to": [NEW]},
            {"name": "mail", "type": "A", "ttl": 60, "from": [OLD], "to": [NEW]},
        ],
        "retire": {"threshold": "75%", "parallel_period": "1h"},
    }
    path = directory / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return planmod.load(path)


def add_runs(journal: Journal, plan: planmod.Plan) -> None:
    prep = [Change(RecordSet.build(k[0], "A", 3600, [OLD]), RecordSet.build(k[0], "A", 300, [OLD])) for k in (WWW, MAIL)]
    run = journal.begin("prepare", plan.zone, str(plan.path), plan.digest, prep, now=T0 - 4000)
    journal.mark(run, "applied", changed=T0 - 4000)  # the lifecycle apply.py walks
    journal.mark(run, "insync", finished=T0 - 3990)
    txt = Change(RecordSet.build(plan.zone, "TXT", 300, ['"v=spf1 -all"']),
                 RecordSet.build(plan.zone, "TXT", 300, ['"<script>alert(2)</script>"']))
    changes = [Change(RecordSet.build(k[0], "A", 300, [OLD]), RecordSet.build(k[0], "A", 60, [NEW])) for k in (WWW, MAIL)]
    run = journal.begin("apply", plan.zone, str(plan.path), plan.digest, changes + [txt], now=T0 - 2)
    journal.mark(run, "applied", changed=T0)
    journal.mark(run, "verified", finished=T0 + 6)
    journal.add_verification(run, "ns1.example.test", "new", "serves the new data", now=T0 + 5)


def add_round(journal: Journal, plan: planmod.Plan, number: int, when: float, states: dict[str, str]) -> dict:
    """One round where each named resolver answers ``states[name]`` for both records."""
    answers = []
    for name, state in states.items():
        for target in TARGETS:
            values = {"new": (NEW,), "old": (OLD,)}.get(state, ())
            ttl = {"new": 60, "old": 3000 if name == "stuck" else 200}.get(state)
            detail = "<b>clamped</b> by cache-min-ttl" if name == "stuck" else ""
            answers.append(Answer(RESOLVERS[name], target.key, state, ttl, values, detail))
    rnd = Round(number, dt(when), tuple(answers))
    doc = round_doc(rnd, TARGETS, change=dt(T0), now=dt(when), threshold=plan.retire.threshold,
                    period=plan.retire.parallel_period)
    doc.update(plan=str(plan.path), zone=plan.zone, change={"time": iso(T0), "source": "apply run 2"})
    journal.add_round(plan.zone, number, when, doc)
    return doc


#: The story: 1 of 4 new; 3 of 4 (threshold reached, "stuck" stale past the old TTL);
#: gamma times out so www drops to 2 of 3; everyone but stuck new again.
STORY = [
    (T0 + 10, {"alpha": "new", "evil": "old", "gamma": "old", "stuck": "old"}),
    (T0 + 400, {"alpha": "new", "evil": "new", "gamma": "new", "stuck": "old"}),
    (T0 + 500, {"alpha": "new", "evil": "new", "gamma": "timeout", "stuck": "old"}),
    (T0 + 600, {"alpha": "new", "evil": "new", "gamma": "new", "stuck": "old"}),
]


@pytest.fixture
def story(tmp_path):
    plan = write_plan(tmp_path)
    journal = Journal(tmp_path / ".cutover")
    add_runs(journal, plan)
    for number, (when, states) in enumerate(STORY, 1):
        add_round(journal, plan, number, when, states)
    yield plan, journal
    journal.close()


# ------------------------------------------------------------------ data


def test_timeline_tells_the_cutover_in_order(story):
    plan, journal = story
    r = report.build(plan, journal, now=T0 + 700)
    kinds = [e.kind for e in r.timeline]
    assert kinds == ["prepare", "apply", "verify", "watch", "ttl", "threshold", "stale", "threshold", "watch",
                     "parallel_period"]
    times = [e.time for e in r.timeline]
    assert times == sorted(times)
    apply = r.timeline[1]
    assert apply.status == "ok" and apply.time == iso(T0) and "3 of 3 changes landed" in apply.detail
    assert f"www A {OLD} -> {NEW} (TTL 300 -> 60)" in apply.detail
    assert "www A TTL 3600 -> 300" in r.timeline[0].detail
    assert r.timeline[2].title == "verified at 1 of 1 nameservers (run 2)"
    thresholds = [e for e in r.timeline if e.kind == "threshold"]
    assert [e.round for e in thresholds] == [2, 4]  # www fell below in round 3 and came back
    assert thresholds[0].title == f"www.{ZONE} A, mail.{ZONE} A reached the threshold"
    stale = next(e for e in r.timeline if e.kind == "stale")
    assert stale.round == 2 and "stuck" in stale.detail and "TTL 3000" in stale.detail
    ttl, period = r.timeline[4], r.timeline[-1]
    assert (ttl.status, ttl.time, ttl.title) == ("ok", iso(T0 + 300), "old TTL expired")
    assert (period.status, period.time, period.title) == ("due", iso(T0 + 3600), "parallel period ends")
    assert not any(e.kind == "verdict" for e in r.timeline)


def test_series_markers_and_verdict(story):
    plan, journal = story
    r = report.build(plan, journal, now=T0 + 700)
    assert [s.label for s in r.series] == [f"www.{ZONE} A", f"mail.{ZONE} A"]
    www = r.series[0]
    assert [p.share for p in www.points] == [0.25, 0.75, pytest.approx(2 / 3), 0.75]
    assert [p.answering for p in www.points] == [4, 4, 3, 4]
    assert www.reached_at == round_time(T0 + 600)  # the last time it reached the threshold and stayed
    assert [(m.kind, m.time, m.passed) for m in r.markers] == [
        ("change", iso(T0), True), ("ttl", iso(T0 + 300), True), ("parallel_period", iso(T0 + 3600), False)]
    assert r.verdict["retire"] is False and r.verdict["missing"] == ["parallel_period"]
    assert (r.threshold, r.rounds, r.change_time, r.change_source) == (0.75, 4, iso(T0), "apply run 2")

    later = report.build(plan, journal, now=T0 + 4000)
    assert later.verdict["retire"] is True and later.markers[-1].passed
    assert later.timeline[-1].kind == "parallel_period" and later.timeline[-1].status == "ok"


def test_a_round_nobody_answered_is_a_gap_not_zero(story):
    plan, journal = story
    add_round(journal, plan, 5, T0 + 700, {name: "timeout" for name in RESOLVERS})
    www = report.build(plan, journal, now=T0 + 800).series[0]
    assert www.points[-1].share is None and www.points[-1].answering == 0
    assert www.reached_at is None


def test_resolver_rows_last_state_first_new_and_stale(story):
    plan, journal = story
    rows = {(row.resolver, row.record): row for row in report.build(plan, journal, now=T0 + 700).resolvers}
    assert len(rows) == 8
    alpha = rows[("alpha", f"www.{ZONE} A")]
    assert (alpha.state, alpha.ttl, alpha.first_new, alpha.operator, alpha.country) == ("new", 60, round_time(T0 + 10), "Alpha DNS", "DE")
    gamma = rows[("gamma", f"www.{ZONE} A")]
    assert gamma.state == "new" and gamma.first_new == round_time(T0 + 400)  # the timeout in between does not reset it
    stuck = rows[("stuck", f"mail.{ZONE} A")]
    assert (stuck.state, stuck.ttl, stuck.first_new, stuck.stale) == ("old", 3000, None, True)
    assert rows[(EVIL, f"www.{ZONE} A")].address == "192.0.2.2"


def test_nothing_journalled_yet(tmp_path):
    plan = write_plan(tmp_path)
    with_journal = Journal(tmp_path / ".cutover")
    try:
        r = report.build(plan, with_journal, now=T0)
    finally:
        with_journal.close()
    assert (r.timeline, r.series, r.markers, r.resolvers, r.verdict) == ((), (), (), (), None)
    page = report_html.render([r], now=T0)
    assert 'data-retire="unknown"' in page and "No watch rounds yet" in page


# ------------------------------------------------------------------ page


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str | None = None, **attrs) -> list[dict]:
        return [a for t, a in self.tags if (tag is None or t == tag)
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def parse(page: str) -> Elements:
    p = Elements()
    p.feed(page)
    return p


def test_page_is_self_contained_and_escapes_everything(story):
    plan, journal = story
    page = report_html.render([report.build(plan, journal, now=T0 + 700)], now=T0 + 700)
    dom = parse(page)
    assert not dom.find("img") and not dom.find("script") and not dom.find("link") and not dom.find("iframe")
    assert not re.search(r"(src|href)\s*=\s*\"(?!#)", page), "no external reference of any kind"
    assert "http://" not in page and "https://" not in page and "@import" not in page and "url(" not in page
    text = "".join(dom.text)
    assert EVIL in text and "Evil & <Co>" in text and '"<script>alert(2)</script>"' in text
    assert "<b>clamped</b> by cache-min-ttl" in text and "<b>" not in page
    assert dom.find("tr", data_resolver=EVIL)


def test_page_structure_carries_the_data(story):
    plan, journal = story
    r = report.build(plan, journal, now=T0 + 700)
    dom = parse(report_html.render([r], now=T0 + 700))
    section = dom.find("section", data_zone=ZONE)
    assert len(section) == 1 and section[0]["id"] == "zone-1"
    assert [a["data-kind"] for a in dom.find("li") if "data-kind" in a] == [e.kind for e in r.timeline]
    series = dom.find("g", **{"class": "series"})
    assert [(s["data-record"], s["data-points"]) for s in series] == [(f"www.{ZONE} A", "4"), (f"mail.{ZONE} A", "4")]
    assert len(dom.find("circle")) == 8 and len(dom.find("polyline")) == 2
    assert dom.find("g", data_threshold="0.75")
    markers = {m["data-marker"]: m for m in dom.find("g") if "data-marker" in m}
    assert markers["ttl"]["data-passed"] == "true" and markers["parallel_period"].get("data-offchart") == "true"
    verdict = dom.find("div", id="verdict-1")[0]
    assert verdict["data-retire"] == "false" and verdict["data-missing"] == "parallel_period"
    conditions = {c["data-condition"]: c["data-met"] for c in dom.find("li") if "data-condition" in c}
    assert conditions == {"propagation": "true", "quorum": "true", "authoritative": "true", "left_behind": "true",
                          "ttl": "true", "parallel_period": "false"}
    stale_rows = [t for t in dom.find("tr") if t.get("data-stale") == "true"]
    assert {t["data-resolver"] for t in stale_rows} == {"stuck"}


def test_several_zones_one_section_each(tmp_path, story):
    plan, journal = story
    other = write_plan(tmp_path, "other.test.", "other.yaml")
    reports = [report.build(plan, journal, now=T0 + 700), report.build(other, journal, now=T0 + 700)]
    dom = parse(report_html.render(reports + [{"zone": "broken.test.", "plan": "b.yaml", "error": "<locked>"}], now=T0))
    assert [s["data-zone"] for s in dom.find("section")] == [ZONE, "other.test.", "broken.test."]
    assert [v["data-retire"] for v in dom.find("div") if "data-retire" in v] == ["false", "unknown"]
    assert "No report: <locked>" in "".join(dom.text)


def test_a_fleet_summary_heads_the_page(tmp_path, story):
    plan, journal = story
    summary = {"plan": "fleet.yaml", "from": "journal", "zones": 2000, "acted_on": 1800, "untouched": 200,
               "states": {"ready to retire": 1500, "not yet": 270, "failed": 30}, "retire": 1500,
               "failed_zones": [f"z{i}.test." for i in range(30)]}
    reports = [report.build(plan, journal, now=T0 + 700)] * 6
    page = report_html.render(reports, now=T0, fleets=[summary])
    dom = parse(page)
    fleet = next(s for s in dom.find("section") if s.get("class") == "fleet")
    assert fleet is not None and "Fleet fleet.yaml" in page
    assert "1,500 ready to retire, 270 not yet, 30 failed" in page and "1,500 of 1,800" in page
    assert "z19.test, +10 more" in page and "z20.test" not in page
    assert "<title>Cutover report: 6 zones</title>" in page


# ------------------------------------------------------------------ CLI and status


def test_cli_report_html_and_json(story, capsys, tmp_path):
    plan, _ = story
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    assert cli.main(["report", str(plan.path), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and f'data-zone="{ZONE}"' in page
    assert not list(out.parent.glob(".*partial"))

    assert cli.main(["report", str(plan.path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    zone = doc["plans"][0]
    assert zone["zone"] == ZONE and zone["rounds"] == 4 and len(zone["series"]) == 2
    assert [e["kind"] for e in zone["timeline"]][:3] == ["prepare", "apply", "verify"]
    assert {row["resolver"] for row in zone["resolvers"]} == {"alpha", EVIL, "gamma", "stuck"}


def test_status_text_shows_the_report_facts(story):
    plan, journal = story
    doc = monitor.status(plan, journal)
    r = report.build(plan, journal, now=T0 + 700)
    doc["timeline"] = [e.__dict__ for e in report.milestones(r)]
    doc["verdict"] = r.verdict  # status judges at the real clock; the story is set in 2023
    text = render.status_text(doc)
    assert f"change: {iso(T0)} (apply run 2)" in text
    assert f"www.{ZONE} A: new 3 old 1 other 0 error 0 (75% new)  [reached 75%]" in text
    assert "not new: stuck old TTL 3000 STALE" in text
    assert f"{iso(T0 + 300)}  old TTL expired" in text and "stale resolvers found" in text
    assert "parallel period ends  (to come)" in text
    assert "[ ] parallel_period" in text


def test_a_long_watch_stays_a_small_page():
    """A week of rounds: equal shares are thinned to the line's corners, which keep their dots."""
    points = tuple(report.Point(n, iso(T0 + 30 * n), 0.5 if n < 10_000 else 1.0, 2 if n < 10_000 else 4, 4)
                   for n in range(1, 20_001))
    r = report.ZoneReport(ZONE, "plan.yaml", iso(T0 + 700_000), 1.0, 7 * 86400, iso(T0), "apply run 1", len(points),
                          points[0].time, points[-1].time, (), (report.Series(*WWW, "www A", points, points[10_000].time),),
                          (), (), None)
    page = report_html.render([r], now=T0 + 700_000)
    assert len(page) < 60_000
    dom = parse(page)
    assert dom.find("g", data_points="20000")
    line = dom.find("polyline")[0]["points"].split()
    assert len(line) == 4  # start, last at 50%, first at 100%, end
    assert [c["data-round"] for c in dom.find("circle")] == ["1", "9999", "10000", "20000"]


def test_a_noisy_long_watch_draws_the_line_without_dots():
    points = tuple(report.Point(n, iso(T0 + 30 * n), 0.5 + 0.1 * (n % 2), 2, 4) for n in range(1, 1001))
    r = report.ZoneReport(ZONE, "plan.yaml", iso(T0 + 40_000), 1.0, 7 * 86400, iso(T0), "apply run 1", len(points),
                          points[0].time, points[-1].time, (), (report.Series(*WWW, "www A", points, None),), (), (), None)
    dom = parse(report_html.render([r], now=T0 + 40_000))
    assert not dom.find("circle") and len(dom.find("polyline")[0]["points"].split()) == 1000


# ------------------------------------------------------------------ probes around the world


def add_probe_round(journal: Journal, plan: planmod.Plan, number: int, when: float, probes: list[tuple[str, str]],
                    *, age: float = 30.0, problems: tuple[str, ...] = (), in_flight: int = 0, **vantage) -> dict:
    """A round of the story's resolvers (all new) plus probe answers about both records,
    in the round document's shape (``tests.test_geography.probe``)."""
    answers = [Answer(RESOLVERS[name], t.key, "new", 60, (NEW,)) for name in ("alpha", "evil") for t in TARGETS]
    doc = round_doc(Round(number, dt(when), tuple(answers)), TARGETS, change=dt(T0), now=dt(when),
                    threshold=plan.retire.threshold, period=plan.retire.parallel_period)
    doc.update(plan=str(plan.path), zone=plan.zone, change={"time": iso(T0), "source": "apply run 2"})
    for rec, target in zip(doc["records"], TARGETS):
        rec["answers"] += [probe(place, state, target, age=age, at=dt(when), n=i, **vantage)
                           for i, (place, state) in enumerate(probes)]
    doc["probes"] = geo_services(problems=problems, in_flight=in_flight, answers=2 * len(probes))
    journal.add_round(plan.zone, number, when, doc)
    return doc


@pytest.fixture
def probed(tmp_path):
    """Round 1: probes in JP and DE old, HTTP 500 from the service. Round 2: only JP
    answers again (new), the service fails again. Round 3: no probe results (none
    arrived), the service is fine."""
    plan = write_plan(tmp_path)
    journal = Journal(tmp_path / ".cutover")
    add_runs(journal, plan)
    add_probe_round(journal, plan, 1, T0 + 10, [("JP", "old"), ("DE", "old"), ("DE", "new"), ("BR", "timeout")],
                    problems=(PROBLEM,))
    add_probe_round(journal, plan, 2, T0 + 400, [("JP", "new")], age=20.0, problems=(PROBLEM, EVIL))
    add_probe_round(journal, plan, 3, T0 + 500, [])
    yield plan, journal
    journal.close()


def test_report_gathers_each_probes_latest_answer_by_country_and_network(probed):
    plan, journal = probed
    r = report.build(plan, journal, now=T0 + 700)
    rows = {c.country: c for c in r.countries}
    assert list(rows) == ["BR", "DE", "JP"]  # South America, Europe, Asia: west to east
    jp, de, br = rows["JP"], rows["DE"], rows["BR"]
    assert (jp.new, jp.old, jp.tone, jp.continent_name) == (2, 0, "new", "Asia")  # round 2 replaced round 1's old answers
    assert (jp.youngest, jp.oldest) == (120.0, 120.0)  # 20s before round 2, 100s before round 3
    assert (de.new, de.old, de.answering, de.tone, de.networks) == (2, 2, 4, "mixed", ("Deutsche Telekom",))
    assert (de.youngest, de.oldest) == (520.0, 520.0)
    assert (br.error, br.answering, br.tone, br.share) == (2, 0, "error", None)
    assert r.probes_at == round_time(T0 + 500)
    nets = {n.network: n for n in r.networks}
    assert (nets["AS3320"].name, nets["AS3320"].countries, nets["AS3320"].old) == ("Deutsche Telekom", ("DE",), 2)
    assert nets["AS28573"].name == HOSTILE
    (gp,) = r.probe_services
    assert (gp.service, gp.answers, gp.problems) == ("globalping", 0, ())  # the last round's
    problems = {p.text: p for p in r.probe_problems}
    assert (problems[PROBLEM].rounds, problems[PROBLEM].first, problems[PROBLEM].last) == (2, round_time(T0 + 10), round_time(T0 + 400))
    assert not problems[PROBLEM].current and r.probe_problems_total == 2


def test_report_json_carries_the_probe_rows(probed, capsys):
    plan, _ = probed
    assert cli.main(["report", str(plan.path), "--format", "json"]) == 0
    zone = json.loads(capsys.readouterr().out)["plans"][0]
    de = next(c for c in zone["countries"] if c["country"] == "DE")
    assert {k: de[k] for k in ("continent", "continent_name", "new", "old", "tone")} == \
        {"continent": "EU", "continent_name": "Europe", "new": 2, "old": 2, "tone": "mixed"}
    assert zone["probe_services"][0]["url"] == "https://api.globalping.io"
    assert {p["text"] for p in zone["probe_problems"]} == {PROBLEM, EVIL}
    assert {n["network"] for n in zone["networks"]} == {"AS2516", "AS3320", "AS28573"}


def test_world_view_grid_cells_networks_and_problems(probed):
    plan, journal = probed
    dom = parse(report_html.render([report.build(plan, journal, now=T0 + 700)], now=T0 + 700))
    cells = {c["data-country"]: c for c in dom.find("div") if "data-country" in c}
    assert set(cells) == {"JP", "DE", "BR"}
    assert (cells["DE"]["data-tone"], cells["DE"]["data-new"], cells["DE"]["data-old"]) == ("mixed", "2", "2")
    assert cells["DE"]["class"] == "country tone-mixed" and cells["JP"]["data-tone"] == "new" and cells["BR"]["data-tone"] == "error"
    assert "Deutsche Telekom" in cells["DE"]["title"] and "8m40s before the last round" in cells["DE"]["title"]
    continents = [c["data-continent"] for c in dom.find("div") if c.get("class") == "continent"]
    assert continents == ["SA", "EU", "AS"]
    tiles = {t["data-continent"]: t for t in dom.find("g") if t.get("class") == "tile"}
    assert set(tiles) == {"NA", "SA", "EU", "AF", "AS", "OC", "AN"}
    assert (tiles["EU"]["data-tone"], tiles["NA"]["data-tone"], tiles["AS"]["data-new"]) == ("mixed", "none", "2")
    networks = [row["data-network"] for row in dom.find("tr") if "data-network" in row]
    assert networks[0] == "AS3320"  # the network still answering old data first
    problems = [li for li in dom.find("li") if "data-current" in li]
    assert len(problems) == 2 and {p["data-current"] for p in problems} == {"false"}
    text = "".join(dom.text)
    assert "Probes around the world" in text and PROBLEM in text and "api.globalping.io" in text
    assert "never stops the watch" in text.replace("\n", " ") or "never stops the watch" in " ".join(text.split())


def test_world_view_escapes_hostile_names_and_stays_self_contained(probed):
    plan, journal = probed
    page = report_html.render([report.build(plan, journal, now=T0 + 700)], now=T0 + 700)
    dom = parse(page)
    assert not dom.find("script") and not dom.find("img") and not dom.find("link") and not dom.find("iframe")
    assert HOSTILE not in page and EVIL not in page  # only escaped
    text = "".join(dom.text)
    assert HOSTILE in text and EVIL in text
    assert dom.find("tr", data_network="AS28573")
    assert not re.search(r"(src|href)\s*=\s*\"(?!#)", page) and "url(" not in page and "@import" not in page
    assert "http://" not in page and "https://" not in page  # the service is named by its host, not linked


def test_a_report_without_probes_has_no_world_view(story):
    plan, journal = story
    r = report.build(plan, journal, now=T0 + 700)
    assert (r.countries, r.networks, r.probe_services, r.probe_problems, r.probes_at) == ((), (), (), (), None)
    assert "Probes around the world" not in report_html.render([r], now=T0 + 700)


def test_status_shows_the_last_rounds_probes_and_problems(probed):
    plan, journal = probed
    doc = monitor.status(plan, journal)
    doc["last_round"] = journal.rounds(plan.zone)[1]  # round 2: JP new, and two problems
    text = render.status_text(doc)
    assert "  probes: 2/2 answering new from globalping 2; measured 20s before the round" in text
    assert f"      www.{ZONE} A by country: JP 1/1" in text
    assert "      by network: AS2516 KDDI (JP) 2/2" in text
    assert f"      problem: {PROBLEM}" in text and f"      problem: {EVIL}" in text
