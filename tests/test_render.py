"""What people read: the diff with refusals, outcomes naming what is retired, status."""

from __future__ import annotations

from cutover import apply as applymod, render
from cutover.guards import Refusal


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
