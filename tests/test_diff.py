"""The diff: only managed record sets, only real differences."""

from __future__ import annotations

from cutover import diff, plan as planmod
from cutover.records import RecordSet, index

PLAN = """
zone: example.com
provider: {type: rfc2136, server: 127.0.0.1}
records:
  - {name: www, type: A, ttl: 300, from: [198.51.100.10], to: [203.0.113.10]}
  - {name: "@", type: MX, to: ["10 mail.example.com."]}
  - {name: new, type: AAAA, to: ["2001:db8::10"]}
  - {name: legacy, type: A, to: []}
  - {name: gone, type: A, to: []}
prepare: {ttl: 120}
"""


def live_zone() -> dict:
    return index([
        RecordSet.build("example.com.", "SOA", 3600, ["ns1.example.com. host.example.com. 1 7200 900 1209600 300"]),
        RecordSet.build("www.example.com.", "A", 3600, ["198.51.100.10"]),
        RecordSet.build("example.com.", "MX", 86400, ["10 Mail.Example.com."]),
        RecordSet.build("legacy.example.com.", "A", 600, ["198.51.100.99"]),
        RecordSet.build("ftp.example.com.", "A", 600, ["198.51.100.10"]),
    ])


def test_changes_cover_only_managed_sets_that_differ(write_plan):
    plan = planmod.load(write_plan(PLAN))
    zdiff = diff.compute(plan, live_zone())
    by_name = {c.name: c for c in zdiff.changes}
    assert set(by_name) == {"www.example.com.", "new.example.com.", "legacy.example.com."}
    assert by_name["www.example.com."].action == "update"
    assert by_name["www.example.com."].after == RecordSet("www.example.com.", "A", 300, ("203.0.113.10",))
    # no TTL in the plan: a create gets prepare.ttl, the MX keeps its live TTL and is in sync
    assert by_name["new.example.com."].after.ttl == 120
    assert by_name["legacy.example.com."].action == "delete"
    assert not zdiff.in_sync
    doc = zdiff.as_dict()
    assert doc["zone"] == "example.com." and {c["action"] for c in doc["changes"]} == {"update", "create", "delete"}


def test_in_sync_after_applying(write_plan):
    plan = planmod.load(write_plan(PLAN))
    live = dict(live_zone())
    for change in diff.compute(plan, live).changes:
        live.pop(change.key, None)
        if change.after:
            live[change.key] = change.after
    assert diff.compute(plan, live).in_sync


def test_lower_ttls_only_touches_long_ttls_and_keeps_values(write_plan):
    plan = planmod.load(write_plan(PLAN))
    changes = diff.lower_ttls(plan, live_zone(), 120)
    assert {c.name for c in changes} == {"www.example.com.", "example.com.", "legacy.example.com."}
    assert all(c.ttl_only and c.after.ttl == 120 for c in changes)


def test_restore_puts_back_snapshot(write_plan):
    live = live_zone()
    www = live[("www.example.com.", "A")]
    snapshot = {www.key: www, ("new.example.com.", "AAAA"): None}
    now = dict(live)
    now[www.key] = RecordSet(www.name, "A", 300, ("203.0.113.10",))
    now[("new.example.com.", "AAAA")] = RecordSet("new.example.com.", "AAAA", 120, ("2001:db8::10",))
    changes = diff.restore(snapshot, now)
    assert {(c.name, c.action) for c in changes} == {("www.example.com.", "update"), ("new.example.com.", "delete")}
    assert next(c for c in changes if c.action == "update").after == www
