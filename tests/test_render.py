"""What people read: the diff with refusals, outcomes naming what is retired, status."""

from __future__ import annotations

from cutover import apply as applymod, render
from cutover.guards import Refusal
from tests.test_geography import PROBLEM, probe_round


def test_diff_lists_refusals_and_marks_the_overridden_ones(env):
    ctx, provider, journal, clock = env
    zdiff = applymod.zone_diff(ctx)  # the fake zone's TTLs are long and nothing was prepared
    assert {r.guard for r in zdiff.refusals} == {"ttl"}
    plain = render.diff_text(zdiff)
    assert "apply would refuse (--force GUARD overrides one):" in plain and "OVERRIDDEN" not in plain
    assert "OVERRIDDEN" in render.diff_text(zdiff, overriding={"ttl"})
    assert "OVERRIDDEN" in render.diff_text(zdiff, overriding=True)
    assert "OVERRIDDEN" not in render.diff_text(zdiff, overriding={"drift"})


def test_a_refusal_reads_relative_but_is_journalled_absolute():
    r = Refusal("ttl", "www A: caches may hold the old TTL until 2026-11-28T12:49:06Z", "in 59m", 1.0)
    assert str(r) == "www A: caches may hold the old TTL until 2026-11-28T12:49:06Z (in 59m)"
    assert r.as_dict()["message"].endswith("12:49:06Z")


def test_outcome_names_the_addresses_retired(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    text = render.outcome_text(applymod.apply(ctx, verify_after=False))
    assert "earliest retire of 198.51.100.10, mail.old-host.net:" in text
    back = render.outcome_text(applymod.rollback(ctx, verify_after=False))
    assert "earliest retire of mail.example.com, 203.0.113.10:" in back  # after a rollback: the server rolled away from


def test_status_says_what_can_be_switched_off_and_what_was_forced():
    doc = {
        "zone": "example.com.", "plan": "plan.yaml", "rounds": 3,
        "runs": [{"kind": "apply", "id": 2, "status": "verified", "changed": "2026-11-28T12:00:00Z", "started": "x",
                  "changes": [], "error": None, "forced": "ttl: www A: caches may hold the old TTL until 12:49:06Z"}],
        "last_round": {"time": "2026-11-28T12:10:00.000Z", "records": [], "change": {}},
        "verdict": {"retire": True, "earliest": None, "retiring": ["192.0.2.20"], "conditions": [], "notes": []},
    }
    text = render.status_text(doc)
    assert "retire: yes: 192.0.2.20 can be switched off" in text
    assert "guards overridden with --force: ttl: www A" in text
    doc["verdict"] = dict(doc["verdict"], retire=False, earliest="2026-11-28T13:00:00Z")
    assert "retire: not yet: keep 192.0.2.20 running (earliest 2026-11-28T13:00:00Z)" in render.status_text(doc)


def _status(last: dict) -> str:
    return render.status_text({"zone": "example.com.", "plan": "plan.yaml", "rounds": 7, "runs": [],
                               "last_round": last, "verdict": last["verdict"]})


def test_status_shows_the_probes_by_country_and_network_with_ages_and_problems():
    doc = probe_round(problems=[PROBLEM, "ripe-atlas: 3 probes offline"], in_flight=1)
    doc["records"][0]["answers"][-1]["vantage"]["network"] = "Evil\x1b[2J Net"  # BR's filtered probe
    text = _status(doc)
    assert "  probes: 22/26 answering new (old 4 err 1 filt 1) from globalping 28; measured 12s-4m10s before the round" in text
    assert "      www.example.com. A by country: DE 7/10 old 3, BR 0/1 old 1 filt 1, JP 10/10, US 4/4, FR 1/1 err 1" in text
    assert ("      by continent: North America 4/4, South America 0/1 old 1 filt 1, Europe 8/11 old 3 err 1, Asia 10/10"
            in text)
    assert "      by network: AS3320 Deutsche Telekom (DE) 7/10 old 3, AS28573 " in text
    assert "AS2516 KDDI (JP) 10/10" in text and "\x1b" not in text
    assert "      globalping: 1 in flight, 28 answers, last finished 2026-11-28T14:59:18.000Z" in text
    assert f"      problem: {PROBLEM}" in text and "      problem: ripe-atlas: 3 probes offline" in text
    assert "not new: globalping DE Berlin AS3320 old TTL 300" in text  # probes that hold a record back are named too


def test_status_names_at_most_a_dozen_places_per_line_and_skips_rounds_without_probes():
    spec = [(place, "new") for place in ("JP", "DE", "FR", "US", "BR")]
    many = probe_round(spec * 3)
    for i, a in enumerate(a for a in many["records"][0]["answers"] if a.get("vantage")):
        a["vantage"].update(country=f"K{i:02d}", asn=1000 + i)
    assert ", +3 more" in next(line for line in _status(many).splitlines() if "by country" in line)
    assert ", +3 more" in next(line for line in _status(many).splitlines() if "by network" in line)
    old = probe_round([], with_services=False)
    for rec in old["records"]:
        for a in rec["answers"]:
            for key in ("vantage", "measured", "age"):
                a.pop(key, None)
    assert "probes" not in _status(old)
    assert "  probes: no probe answers in this round" in _status(probe_round([], in_flight=1))
    assert "      globalping: 1 in flight, no answers yet" in _status(probe_round([], in_flight=1))


def test_a_fleet_summary_in_a_few_lines():
    summary = {"plan": "fleet.yaml", "from": "provider", "zones": 2000, "acted_on": 1800, "untouched": 190,
               "states": {"failed": 12, "verified": 1788}, "changes": 2700,
               "failed_zones": [f"z{i}.test." for i in range(12)]}
    assert render.fleet_text(summary).splitlines() == [
        "fleet fleet.yaml: 2,000 zone(s) (read at the provider); 1,800 acted on: 12 failed, 1,788 verified",
        "  2,700 change(s) in all",
        "  190 hold none of the moved addresses",
        "  failed: z0.test, z1.test, z2.test, z3.test, z4.test, z5.test, z6.test, z7.test, z8.test, z9.test, +2 more"]
    later = dict(summary, **{"from": "journal", "untouched": 3, "failed_zones": [], "retire": 1700})
    del later["changes"]
    assert render.fleet_text(later).splitlines()[1:] == ["  1,700 of 1,800 ready to retire the old server",
                                                         "  3 rolled back since"]
