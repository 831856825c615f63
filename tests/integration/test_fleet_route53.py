"""A fleet plan on Route 53 (moto in server mode): every zone renumbered, then rolled back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import boto3
import pytest
import yaml

from tests.integration.servers.moto import moto, moto_endpoint  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

OLD, NEW = "198.51.100.88", "203.0.113.88"


def make_zones(client: Any, count: int) -> list[str]:
    zones = []
    for i in range(count):
        zone = f"f{i}-{uuid.uuid4().hex[:8]}.fleet.test."
        zone_id = client.create_hosted_zone(Name=zone, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
        # UPSERT, not CREATE: moto 5.2 refuses a CREATE identical to an earlier one while the
        # set exists, before applying the DELETE in the same batch (rollback's DELETE + CREATE)
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": {"Name": f"www.{zone}", "Type": "A", "TTL": 60,
                                                        "ResourceRecords": [{"Value": OLD}]}}]})
        zones.append(zone)
    return zones


def values(client: Any, zone: str, name: str) -> set[str]:
    zone_id = client.list_hosted_zones_by_name(DNSName=zone)["HostedZones"][0]["Id"]
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {r["Value"] for s in sets if s["Name"] == name and s["Type"] == "A" for r in s["ResourceRecords"]}


def test_a_fleet_on_route53(tmp_path, moto):  # noqa: F811
    client = boto3.client("route53", endpoint_url=moto)
    zones = make_zones(client, 25)
    (tmp_path / "zones.txt").write_text("\n".join(zones))
    plan = tmp_path / "fleet.yaml"
    plan.write_text(yaml.safe_dump({"version": 1, "fleet": "zones.txt", "provider": {"type": "route53", "rate": 0},
                                    "renumber": [{"from": OLD, "to": NEW}]}))

    def run(*args: str, expect: int) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "cutover", *args], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600, env=dict(os.environ))
        assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        return result

    plans = json.loads(run("diff", str(plan), "--format", "json", expect=1).stdout)["plans"]
    assert len(plans) == 25 and all(p["changes"][0]["after"]["values"] == [NEW] for p in plans)
    applied = json.loads(run("apply", str(plan), "--yes", "--no-verify", "--format", "json", expect=0).stdout)["plans"]
    assert {p["status"] for p in applied} == {"insync"} and len(applied) == 25  # Route 53 said INSYNC
    assert values(client, zones[0], f"www.{zones[0]}") == {NEW} and values(client, zones[-1], f"www.{zones[-1]}") == {NEW}
    run("rollback", str(plan), "--yes", "--no-verify", expect=0)
    assert values(client, zones[3], f"www.{zones[3]}") == {OLD}
