"""The guards as an operator meets them: ``diff`` shows what ``apply`` would refuse,
``diff --check`` fails a CI job on it, ``--force GUARD`` overrides one guard and no
other, ``apply --wait`` waits the TTL guard out, and records outside the plan are
checked for clashes. Against the embedded sandbox's real servers on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from cutover.records import RecordSet
from cutover.sandbox import ResolverSpec, Sandbox
from tests.integration.test_cli import run

ZONE = "guards.example."
OLD, NEW = "198.51.100.10", "203.0.113.10"


@pytest.fixture
def sandbox(tmp_path):
    records = [
        RecordSet.build(f"www.{ZONE}", "A", 2, [OLD]),
        RecordSet.build(f"mail.{ZONE}", "A", 2, [OLD]),
        RecordSet.build(f"mail.{ZONE}", "AAAA", 2, ["2001:db8::25"]),
        RecordSet.build(f"shop.{ZONE}", "CNAME", 2, [f"www.{ZONE}"]),
        RecordSet.build(ZONE, "MX", 2, [f"10 mail.{ZONE}"]),
    ]
    with Sandbox(tmp_path / "zone", ZONE, records, resolvers=[ResolverSpec("r1")]) as sb:
        yield sb


def plan(tmp_path: Path, sandbox: Sandbox, records: list[dict], **sections) -> Path:
    doc = {
        "version": 1, "zone": ZONE,
        "provider": {"type": "sandbox", **sandbox.provider_settings()},
        "records": records,
        "prepare": sections.pop("prepare", {"ttl": 1}),
        "verify": {"nameservers": [sandbox.provider_settings()["server"]], "timeout": "5s"},
        "watch": {"resolvers": [f"{r.address}:{r.port}" for r in sandbox.resolvers], "interval": "1s", "timeout": "1s"},
        **sections,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def live(sandbox: Sandbox, name: str, rtype: str) -> tuple[str, ...]:
    found = {r.key: r for r in sandbox.store.records(ZONE)}.get((f"{name}.{ZONE}", rtype))
    return found.values if found else ()


def test_diff_shows_the_refusals_and_check_fails_on_them(tmp_path, sandbox):
    path = plan(tmp_path, sandbox, [{"name": "www", "type": "A", "ttl": 1, "from": ["192.0.2.99"], "to": [NEW]}],
                prepare={"ttl": 2}, retire={"ignore": ["mail A", "mail AAAA"]})
    shown = run("diff", str(path), cwd=tmp_path)
    assert shown.returncode == 1, shown.stderr  # changes pending: the dry run itself is not refused
    assert "apply would refuse" in shown.stdout and "drift: www." in shown.stdout
    checked = run("diff", str(path), "--check", "--format", "json", cwd=tmp_path)
    assert checked.returncode == 2
    refusals = json.loads(checked.stdout)["plans"][0]["refusals"]
    assert [r["guard"] for r in refusals] == ["drift"] and "192.0.2.99" in refusals[0]["message"]
    clean = plan(tmp_path, sandbox, [{"name": "www", "type": "A", "ttl": 2, "from": [OLD], "to": [NEW]}],
                 prepare={"ttl": 2}, retire={"ignore": ["mail A", "mail AAAA"]})
    assert run("diff", str(clean), "--check", cwd=tmp_path).returncode == 1  # pending, nothing refused


def test_force_one_guard_leaves_the_others_on(tmp_path, sandbox):
    sandbox.store.put(ZONE, RecordSet.build(f"www.{ZONE}", "A", 3600, ["192.0.2.99"]))  # changed by someone, long TTL
    path = plan(tmp_path, sandbox, [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}])
    only_ttl = run("apply", str(path), "--yes", "--force", "ttl", cwd=tmp_path)
    assert only_ttl.returncode == 2 and "drift: www." in only_ttl.stderr and "ttl:" not in only_ttl.stderr
    assert "--force drift overrides it" in only_ttl.stderr
    assert live(sandbox, "www", "A") == ("192.0.2.99",)
    both = run("apply", str(path), "--yes", "--force", "ttl", "--force", "drift", "--format", "json", cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert live(sandbox, "www", "A") == (NEW,)
    status = json.loads(run("status", str(path), "--format", "json", cwd=tmp_path).stdout)["plans"][0]
    forced = status["runs"][-1]["forced"]
    assert forced.startswith("drift: ") and "ttl: " in forced and "(in " not in forced  # absolute words, journalled
    text = run("status", str(path), cwd=tmp_path).stdout
    assert "guards overridden with --force: drift:" in text
    bad = run("apply", str(path), "--yes", "--force", "tll", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'tll'" in bad.stderr


def test_records_outside_the_plan_are_checked_for_clashes(tmp_path, sandbox):
    path = plan(tmp_path, sandbox, [
        {"name": "mail", "type": "CNAME", "to": ["mx.hosted.example.net."]},  # beside the live mail A/AAAA
        {"name": "@", "type": "MX", "from": [f"10 mail.{ZONE}"], "to": [f"10 shop.{ZONE}"]},  # shop is a CNAME
    ], safety={"max_change_share": "100%"})
    refused = run("apply", str(path), "--yes", "--force", "ttl", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "conflict: mail CNAME: the zone also holds A, AAAA at this name" in refused.stderr
    assert f"conflict: @ MX: the target shop.{ZONE} is a CNAME" in refused.stderr
    assert live(sandbox, "mail", "A") == (OLD,) and live(sandbox, "mail", "CNAME") == ()


def test_apply_wait_waits_the_ttl_guard_out(tmp_path, sandbox):
    path = plan(tmp_path, sandbox, [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}],
                retire={"ignore": ["mail A", "mail AAAA"]})
    assert run("prepare", str(path), cwd=tmp_path).returncode == 0
    started = time.monotonic()
    waited = run("apply", str(path), "--yes", "--wait", cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert time.monotonic() - started >= 1.5  # prepare lowered 2 s to 1 s: caches may hold 2 s
    assert "waiting until" in waited.stderr and "TTL guard" in waited.stderr
    assert live(sandbox, "www", "A") == (NEW,)
