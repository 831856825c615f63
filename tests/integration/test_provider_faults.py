"""Provider faults injected at the HTTP level, seen through the whole command: the
exit code, the journal that ``status`` shows, and a working ``rollback`` afterwards.

The local Cloudflare API (tests/integration/servers/cloudflare_fake.py) fails chosen
requests: throttling, server errors, a dropped reply to a batch that did land, a
broken page in the middle of a listing, and a batch the API rejects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.servers.cloudflare_fake import FakeCloudflare, cloudflare_api  # noqa: F401 (fixture)

ZONE = "faulty.example"


@pytest.fixture
def world(tmp_path, cloudflare_api):  # noqa: F811
    zone_id = cloudflare_api.add_zone(ZONE)
    for i in range(12):  # more than two pages at the fake's 5 records per page
        cloudflare_api.add_record(zone_id, type="A", name=f"host{i}.{ZONE}", content=f"192.0.2.{100 + i}", ttl=300)
    cloudflare_api.add_record(zone_id, type="A", name=f"www.{ZONE}", content="192.0.2.10", ttl=300)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": ZONE,
        "provider": {"type": "cloudflare", "api_token": "${CF_TOKEN}", "zone_id": zone_id, "base_url": cloudflare_api.base_url},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
    }))
    yield cloudflare_api, zone_id, plan


def cutover(api: FakeCloudflare, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CF_TOKEN": api.token}
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=env)


def www(api: FakeCloudflare, zone_id: str) -> set[str]:
    return {r["content"] for r in api.zones[zone_id].records.values() if r["name"] == f"www.{ZONE}" and r["type"] == "A"}


def runs(api: FakeCloudflare, plan: Path, cwd: Path) -> list[dict]:
    result = cutover(api, "status", str(plan), "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["plans"][0]["runs"]


def apply(api: FakeCloudflare, plan: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return cutover(api, "apply", str(plan), "--yes", "--no-verify", *extra, cwd=cwd)


def test_throttled_batch_is_retried_and_lands_once(world, tmp_path):
    api, zone_id, plan = world
    api.fail_matching("POST", "/batch", status=429, retry_after=0, count=2)
    result = apply(api, plan, tmp_path)
    assert result.returncode == 0, result.stderr
    assert www(api, zone_id) == {"203.0.113.10"} and len(api.batches) == 1
    assert [r["status"] for r in runs(api, plan, tmp_path)] == ["insync"]


def test_server_error_on_the_batch_exit_3_journal_failed_then_recovers(world, tmp_path):
    api, zone_id, plan = world
    api.fail_matching("POST", "/batch", status=500)
    result = apply(api, plan, tmp_path)
    assert result.returncode == 3 and "500" in result.stderr and "Traceback" not in result.stderr
    assert www(api, zone_id) == {"192.0.2.10"}
    [run] = runs(api, plan, tmp_path)
    assert run["status"] == "failed" and [c["status"] for c in run["changes"]] == ["failed"]
    nothing = cutover(api, "rollback", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert nothing.returncode == 2 and "nothing to roll back" in nothing.stderr
    assert apply(api, plan, tmp_path).returncode == 0
    assert www(api, zone_id) == {"203.0.113.10"}


def test_lost_reply_after_landing_is_journalled_as_landed_and_rolls_back(world, tmp_path):
    api, zone_id, plan = world
    api.fail_matching("POST", "/batch", kind="lost-reply")
    result = apply(api, plan, tmp_path)
    assert result.returncode == 3, result.stderr
    assert www(api, zone_id) == {"203.0.113.10"}
    [run] = runs(api, plan, tmp_path)
    assert run["status"] == "applied" and [c["status"] for c in run["changes"]] == ["landed"]
    assert run["error"]  # the failure is recorded beside the truth about what landed
    back = cutover(api, "rollback", str(plan), "--yes", "--no-verify", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert www(api, zone_id) == {"192.0.2.10"}


def test_broken_page_in_the_listing_fails_before_anything_is_journalled(world, tmp_path):
    api, zone_id, plan = world
    api.fail_matching("GET", "page=2", status=502, count=10)
    result = apply(api, plan, tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert www(api, zone_id) == {"192.0.2.10"}
    assert runs(api, plan, tmp_path) == []
    api.clear_faults()
    assert cutover(api, "diff", str(plan), cwd=tmp_path).returncode == 1  # the listing is whole again


def test_rejected_batch_changes_nothing(world, tmp_path):
    api, zone_id, plan = world
    doc = yaml.safe_load(plan.read_text())
    doc["records"].append({"name": "host1", "type": "CNAME", "to": ["elsewhere.example.net."]})  # beside host1's A
    doc["safety"] = {"max_change_share": "100%"}
    plan.write_text(yaml.safe_dump(doc))
    refused = apply(api, plan, tmp_path)
    assert refused.returncode == 2 and "conflict: host1 CNAME" in refused.stderr  # cutover sees the clash first
    result = apply(api, plan, tmp_path, "--force", "conflict")  # the API then rejects the whole batch
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert www(api, zone_id) == {"192.0.2.10"}
    [run] = runs(api, plan, tmp_path)
    assert run["status"] == "failed"
