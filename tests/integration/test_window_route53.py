"""The maintenance window on Route 53 (moto in server mode, over real HTTP): the whole
prepare -> apply -> status -> rollback sequence, every guard refusing and ``--force``
overriding, a failing zone in a multi-zone apply, and SIGKILL around the provider call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import boto3
import pytest
import yaml

from tests.integration.servers.moto import moto, moto_endpoint  # noqa: F401 (fixtures)

OLD, NEW = "198.51.100.10", "203.0.113.10"


class Route53Zone:
    """A hosted zone in moto, seeded like a small production zone."""

    def __init__(self, name: str, ttl: int = 2) -> None:
        self.name = name
        self.client = boto3.client("route53")
        self.id = self.client.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"].split("/")[-1]
        self.upsert(f"www.{name}", "A", ttl, [OLD])
        self.upsert(f"mail.{name}", "A", ttl, [OLD])
        self.upsert(name, "MX", ttl, [f"10 mail.{name}"])
        self.upsert(name, "TXT", ttl, ['"v=spf1 mx -all"'])

    def upsert(self, name: str, rtype: str, ttl: int, values: list[str]) -> None:
        self.client.change_resource_record_sets(HostedZoneId=self.id, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {"Name": name, "Type": rtype, "TTL": ttl,
                                                      "ResourceRecords": [{"Value": v} for v in values]}}]})

    def get(self, name: str, rtype: str = "A") -> tuple[int, set[str]] | None:
        for rs in self.client.list_resource_record_sets(HostedZoneId=self.id)["ResourceRecordSets"]:
            if rs["Name"] == name and rs["Type"] == rtype:
                return rs["TTL"], {r["Value"] for r in rs["ResourceRecords"]}
        return None

    def plan(self, path: Path, **extra) -> Path:
        doc = {
            "zone": self.name,
            "provider": {"type": "route53", "hosted_zone_id": self.id},
            "records": [{"name": n, "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]} for n in ("www", "mail")],
            "prepare": {"ttl": 1},
            "safety": {"max_change_share": "60%"},
        }
        doc.update(extra)
        path.write_text(yaml.safe_dump(doc))
        return path


def cutover(*args: str, cwd: Path, program: list[str] | None = None) -> subprocess.CompletedProcess:
    program = program or [sys.executable, "-m", "cutover"]
    return subprocess.run([*program, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def status(plan: Path, cwd: Path) -> dict:
    return json.loads(cutover("status", str(plan), "--format", "json", cwd=cwd).stdout)["plans"][0]


@pytest.fixture
def zone(moto, tmp_path):  # noqa: F811
    return Route53Zone(f"window-{uuid.uuid4().hex[:6]}.example.")


def test_prepare_then_apply_then_status(zone, tmp_path):
    plan = zone.plan(tmp_path / "plan.yaml")
    assert cutover("diff", str(plan), cwd=tmp_path).returncode == 1
    first = cutover("apply", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert first.returncode == 2 and "live TTL is 2s and no prepare was run" in first.stderr

    assert cutover("prepare", str(plan), cwd=tmp_path).returncode == 0
    assert zone.get(f"www.{zone.name}") == (1, {OLD})
    early = cutover("apply", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert early.returncode == 2 and "prepare lowered the TTL from 2s" in early.stderr
    time.sleep(2.2)
    applied = cutover("apply", str(plan), "--yes", "--no-verify", "--format", "json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    out = json.loads(applied.stdout)["plans"][0]
    assert out["status"] == "insync"  # Route 53's own completion signal
    assert zone.get(f"www.{zone.name}") == (1, {NEW}) and zone.get(f"mail.{zone.name}") == (1, {NEW})

    st = status(plan, tmp_path)
    assert [(r["kind"], r["status"]) for r in st["runs"]] == [("prepare", "insync"), ("apply", "insync")]
    assert st["runs"][1]["changes"][0]["before"] == {"ttl": 1, "values": [OLD]}
    assert st["runs"][0]["changes"][0]["before"] == {"ttl": 2, "values": [OLD]}


def test_apply_then_status_then_rollback_restores_values_and_ttls(zone, tmp_path):
    """Rollback after an apply. (After a prepare, rollback re-creates exactly what prepare
    created; moto refuses a CREATE equal to an earlier one even when the same batch deletes
    the record first, which real Route 53 documents as one transaction. So this sequence
    starts at apply, with the TTL guard overridden.)"""
    plan = zone.plan(tmp_path / "plan.yaml")
    applied = cutover("apply", str(plan), "--yes", "--no-verify", "--force", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert zone.get(f"www.{zone.name}") == (1, {NEW})
    [run] = status(plan, tmp_path)["runs"]
    assert run["kind"] == "apply" and "ttl" in run["forced"]

    back = cutover("rollback", str(plan), "--yes", "--no-verify", "--format", "json", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["plans"][0]["status"] == "insync"
    assert zone.get(f"www.{zone.name}") == (2, {OLD}) and zone.get(f"mail.{zone.name}") == (2, {OLD})
    runs = status(plan, tmp_path)["runs"]
    assert [(r["kind"], r["undoes"]) for r in runs] == [("apply", None), ("rollback", runs[0]["id"])]
    again = cutover("rollback", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert again.returncode == 2 and "nothing to roll back" in again.stderr


def test_each_guard_refuses_and_force_overrides(zone, tmp_path):
    zone.upsert(f"www.{zone.name}", "A", 1, ["192.0.2.99"])  # someone else changed it
    zone.upsert(f"mail.{zone.name}", "A", 1, [OLD])
    plan = zone.plan(tmp_path / "plan.yaml", safety={"max_change_share": "10%"})
    refused = cutover("apply", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert refused.returncode == 2
    assert "drift: www." in refused.stderr and "live [192.0.2.99], plan says from [198.51.100.10]" in refused.stderr
    assert "safety:" not in refused.stderr  # two record sets of five: an ordinary cutover in a small zone
    assert zone.get(f"www.{zone.name}") == (1, {"192.0.2.99"})
    other = cutover("apply", str(plan), "--yes", "--no-verify", "--force", "safety", cwd=tmp_path)
    assert other.returncode == 2 and "--force drift overrides it" in other.stderr

    forced = cutover("apply", str(plan), "--yes", "--no-verify", "--force", "drift", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert zone.get(f"www.{zone.name}") == (1, {NEW})
    run = status(plan, tmp_path)["runs"][-1]
    assert run["forced"].startswith("drift: ") and "safety" not in run["forced"]

    zone.upsert(f"www.{zone.name}", "A", 1, ["192.0.2.77"])  # changed again after the apply
    refused_back = cutover("rollback", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert refused_back.returncode == 2 and "changed since the apply" in refused_back.stderr
    assert cutover("rollback", str(plan), "--yes", "--no-verify", "--force", cwd=tmp_path).returncode == 0
    assert zone.get(f"www.{zone.name}") == (1, {"192.0.2.99"})


def test_a_failing_zone_in_a_multi_zone_apply(moto, tmp_path):  # noqa: F811
    zones = [Route53Zone(f"multi{i}-{uuid.uuid4().hex[:6]}.example.", ttl=1) for i in range(3)]
    plans = [z.plan(tmp_path / f"plan{i}.yaml") for i, z in enumerate(zones)]
    broken = yaml.safe_load(plans[1].read_text())
    broken["provider"]["hosted_zone_id"] = "ZNOSUCHZONE0000"
    plans[1].write_text(yaml.safe_dump(broken))
    result = cutover("apply", *map(str, plans), "--yes", "--no-verify", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert f"2 of 3 zones done; failed: {zones[1].name}" in result.stdout
    assert zones[0].get(f"www.{zones[0].name}") == (1, {NEW}) and zones[2].get(f"www.{zones[2].name}") == (1, {NEW})
    assert zones[1].get(f"www.{zones[1].name}") == (1, {OLD})
    assert [r["status"] for r in status(plans[0], tmp_path)["runs"]] == ["insync"]
    assert status(plans[1], tmp_path)["runs"] == []


KILLER = textwrap.dedent('''
    import os, signal, sys
    from cutover import cli
    from providers import route53
    original = route53.Route53Provider.apply
    def apply(self, changes):
        if sys.argv[1] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        receipt = original(self, changes)
        os.kill(os.getpid(), signal.SIGKILL)
        return receipt
    route53.Route53Provider.apply = apply
    sys.exit(cli.main(sys.argv[2:]))
''')


@pytest.mark.parametrize("when", ["before", "after"])
def test_sigkill_around_the_provider_call_then_rerun_and_rollback(zone, tmp_path, when):
    plan = zone.plan(tmp_path / "plan.yaml")
    zone.upsert(f"www.{zone.name}", "A", 1, [OLD])
    zone.upsert(f"mail.{zone.name}", "A", 1, [OLD])
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    killed = cutover(when, "apply", str(plan), "--yes", "--no-verify", cwd=tmp_path, program=[sys.executable, str(killer)])
    assert killed.returncode == -signal.SIGKILL
    assert zone.get(f"www.{zone.name}") == (1, {NEW if when == "after" else OLD})
    [run] = status(plan, tmp_path)["runs"]
    assert run["status"] == "sending"  # the truth: sent or not, nobody knows yet

    again = cutover("apply", str(plan), "--yes", "--no-verify", "--format", "json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    runs = status(plan, tmp_path)["runs"]
    assert runs[0]["status"] == ("applied" if when == "after" else "failed")
    assert zone.get(f"www.{zone.name}") == (1, {NEW})
    assert cutover("rollback", str(plan), "--yes", "--no-verify", cwd=tmp_path).returncode == 0
    assert zone.get(f"www.{zone.name}") == (1, {OLD}) and zone.get(f"mail.{zone.name}") == (1, {OLD})
