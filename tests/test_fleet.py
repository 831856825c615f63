"""Fleet plans: reading them, and the ordinary plan each zone gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cutover import fleet
from cutover.errors import PlanError
from cutover.journal import Journal
from cutover.records import Change, RecordSet

FLEET = {
    "version": 1,
    "fleet": "all",
    "provider": {"type": "powerdns", "url": "http://127.0.0.1:8081", "api_key": "${PDNS_API_KEY}"},
    "renumber": [{"from": "198.51.100.10", "to": "203.0.113.10"}, {"from": "2001:db8::10", "to": "2001:db8:1::10"}],
    "retire": {"parallel_period": "14d"},
}


def load(tmp_path: Path, doc: dict, environ: dict | None = None) -> fleet.FleetPlan:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc))
    return fleet.build(yaml.safe_load(path.read_text()), path, {"PDNS_API_KEY": "k"} if environ is None else environ)


def test_a_fleet_plan_reads_its_zones_moves_and_shared_sections(tmp_path):
    f = load(tmp_path, FLEET)
    assert f.zones is None and f.provider_type == "powerdns"
    assert [(str(m.old), str(m.new)) for m in f.moves] == [("198.51.100.10", "203.0.113.10"), ("2001:db8::10", "2001:db8:1::10")]
    (tmp_path / "zones.txt").write_text("# customers\nExample.COM\n\nexample.net.  # moved first\n")
    assert load(tmp_path, {**FLEET, "fleet": "zones.txt"}).zones == ("example.com.", "example.net.")
    assert load(tmp_path, {**FLEET, "fleet": ["a.example", "b.example"]}).zones == ("a.example.", "b.example.")


def test_each_zone_gets_an_ordinary_plan_with_the_shared_sections(tmp_path):
    f = load(tmp_path, FLEET)
    plan = fleet.zone_plan(f, "example.com", [{"name": "www.example.com.", "type": "A", "from": ["198.51.100.10"],
                                               "to": ["203.0.113.10"]}])
    assert plan.zone == "example.com." and plan.path == f.path and plan.retire.parallel_period == 14 * 86400
    assert plan.provider.type == "powerdns" and plan.records[0].to == ("203.0.113.10",)


@pytest.mark.parametrize("change, words", [
    ({"fleet": None}, "fleet: None must be all, a list of zones, or a file"),
    ({"fleet": "missing.txt"}, "cannot be read"),
    ({"fleet": ["a..b"]}, "fleet[0]"),
    ({"renumber": []}, "renumber: [] must be a list of {from: OLD, to: NEW} addresses"),
    ({"renumber": [{"from": "198.51.100.10"}]}, "renumber[0]"),
    ({"renumber": [{"from": "198.51.100.10", "to": "2001:db8::1"}]}, "keeps the address family"),
    ({"renumber": [{"from": "198.51.100.10", "to": "203.0.113.1"}, {"from": "198.51.100.10", "to": "203.0.113.2"}]},
     "198.51.100.10 moves twice"),
    ({"zone": "example.com"}, "unknown key 'zone'"),
    ({"provider": {"type": "powerdns"}}, "provider.url: missing"),
])
def test_a_bad_fleet_plan_names_the_field(tmp_path, change, words):
    with pytest.raises(PlanError) as caught:
        load(tmp_path, {**FLEET, **change})
    assert words in str(caught.value)


def test_an_unset_secret_is_named_once(tmp_path):
    with pytest.raises(PlanError, match="environment variable PDNS_API_KEY is not set"):
        load(tmp_path, FLEET, environ={})


def test_after_the_apply_the_zone_plan_comes_from_the_journal(tmp_path):
    path = tmp_path / "fleet.yaml"
    before = RecordSet("www.example.com.", "A", 300, ("198.51.100.10",))
    after = RecordSet("www.example.com.", "A", 300, ("203.0.113.10",))
    journal = Journal(tmp_path / "state")
    try:
        run = journal.begin("apply", "example.com.", str(path), "d1", [Change(before, after)])
        journal.mark_changes(run, [before.key], "landed")
        journal.mark(run, "verified", changed=1.0, finished=1.0)
        runs = journal.runs("example.com.")
        assert fleet.journalled_records(runs, path) == [
            {"name": "www.example.com.", "type": "A", "from": ["198.51.100.10"], "to": ["203.0.113.10"]}]
        assert fleet.journalled_records(runs, tmp_path / "other.yaml") == []  # another plan's apply
    finally:
        journal.close()


def test_a_fleet_expands_into_the_zones_that_hold_a_moved_address(tmp_path):
    f = load(tmp_path, FLEET)
    zones = {
        "a.example.": [RecordSet("www.a.example.", "A", 300, ("198.51.100.10",))],
        "b.example.": [RecordSet("www.b.example.", "A", 300, ("192.0.2.7",))],
    }

    def read(zone: str) -> dict:
        if zone == "broken.example.":
            raise OSError("connection refused")
        return {rs.key: rs for rs in zones[zone]}

    said: list[str] = []
    found = fleet.expand(f, ["a.example.", "b.example.", "broken.example."], read, lambda _z: [], said.append)
    assert [p.zone for p in found.plans] == ["a.example."] and found.plans[0].records[0].to == ("203.0.113.10",)
    assert found.untouched == ("b.example.",)
    assert found.failed == (("broken.example.", "OSError: connection refused"),)
    assert set(found.live) == {"a.example."} and list(found.live["a.example."].values()) == zones["a.example."]
    assert said == ["fleet fleet.yaml: read 3 of 3 zones, 1 to change"]


def _applied(journal: Journal, zone: str, plan: str, kind: str = "apply") -> None:
    before = RecordSet(f"www.{zone}", "A", 300, ("198.51.100.10",))
    after = RecordSet(f"www.{zone}", "A", 300, ("203.0.113.10",))
    change = Change(before, after) if kind == "apply" else Change(after, before)
    run = journal.begin(kind, zone, plan, "d", [change])
    journal.mark(run, "applied", changed=1.0)
    journal.mark(run, "verified", finished=1.0)


def test_an_applied_fleet_is_found_in_the_journal_without_the_provider(tmp_path):
    f = load(tmp_path, FLEET)
    journal = Journal(tmp_path / "state")
    try:
        _applied(journal, "a.example.", str(f.path))
        _applied(journal, "b.example.", "../elsewhere/" + f.path.name)  # the same file, named from another directory
        _applied(journal, "c.example.", str(tmp_path / "other-fleet.yaml"))
        _applied(journal, "b.example.", str(f.path), kind="rollback")
        zones = fleet.journalled_zones(f, journal.zone_plans())
        assert zones == ["a.example.", "b.example."]
        watching = fleet.from_journal(f, zones, journal.runs, rolled_back=False)
        assert [p.zone for p in watching.plans] == ["a.example."] and watching.untouched == ("b.example.",)
        assert watching.source == "journal" and watching.zones == 2
        assert watching.plans[0].records[0].from_ == ("198.51.100.10",)
        history = fleet.from_journal(f, zones, journal.runs, rolled_back=True)  # status and report tell it all
        assert [p.zone for p in history.plans] == ["a.example.", "b.example."]
    finally:
        journal.close()


def test_a_fleet_summary_counts_zones_by_state(tmp_path):
    f = load(tmp_path, FLEET)
    plans = tuple(fleet.zone_plan(f, z, [{"name": "www", "type": "A", "from": ["198.51.100.10"], "to": ["203.0.113.10"]}])
                  for z in ("a.example", "b.example", "c.example"))
    expansion = fleet.Expansion(plans, ("quiet.example.",), (("broken.example.", "OSError: refused"),))
    results = ("FAILED", "verified", "verified", "unverified")  # the failed read's stand-in first, then each zone
    summary = fleet.FleetRun(f, expansion, results).summary(lambda r: r.lower() if r == "FAILED" else r, lambda r: 1)
    assert summary == {"plan": str(f.path), "from": "provider", "zones": 5, "acted_on": 4, "untouched": 1,
                       "states": {"failed": 1, "unverified": 1, "verified": 2}, "changes": 4,
                       "failed_zones": ["broken.example."]}
