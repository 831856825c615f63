"""A fleet plan against a real PowerDNS holding many zones: renumber every zone at once,
end to end through the CLI (diff, apply, watch, status, rollback), each zone its own unit.

CI runs a few hundred zones (the issue's 2,000-zone run is the same test with
``CUTOVER_FLEET_ZONES=2000``; its figures are in the closing note of the issue).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
import requests
import yaml

from tests.integration.servers.pdns import PdnsServer, pdns_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

OLD, NEW = "198.51.100.77", "203.0.113.77"
ZONES = int(os.environ.get("CUTOVER_FLEET_ZONES", "120"))


def make_zones(server: PdnsServer, count: int) -> list[str]:
    """``count`` zones: www on the old address in all but every tenth, an SPF record naming
    it in every other one."""
    names = []
    stamp = int(time.time() * 1000) % 10**8
    for i in range(count):
        zone = f"c{i}-{stamp}.fleet.test."
        rrsets = [{"name": f"ns1.{zone}", "type": "A", "ttl": 1, "records": [{"content": "192.0.2.53", "disabled": False}]},
                  {"name": f"www.{zone}", "type": "A", "ttl": 1,
                   "records": [{"content": "192.0.2.9" if i % 10 == 9 else OLD, "disabled": False}]}]
        if i % 2 == 0:
            rrsets.append({"name": zone, "type": "TXT", "ttl": 1,
                           "records": [{"content": f'"v=spf1 ip4:{OLD} -all"', "disabled": False}]})
        body = {"name": zone, "kind": "Native", "nameservers": [f"ns1.{zone}"], "rrsets": rrsets}
        r = requests.post(server.zones_url, json=body, headers={"X-API-Key": server.api_key}, timeout=10)
        r.raise_for_status()
        names.append(zone)
    return names


def ask(server: PdnsServer, name: str, rtype: str) -> set[str]:
    response = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=server.dns_port, timeout=2)
    return {rd.to_text() for rrset in response.answer for rd in rrset}


@pytest.fixture
def fleet_zones(pdns_server: PdnsServer) -> list[str]:  # noqa: F811
    zones = make_zones(pdns_server, ZONES)
    yield zones
    for zone in zones:
        pdns_server.delete_zone(zone)


def cutover(tmp_path: Path, server: PdnsServer, *args: str, expect: int | None = 0,
            key: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PDNS_API_KEY": key or server.api_key}
    result = subprocess.run([sys.executable, "-m", "cutover", *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=1200, env=env)
    if expect is not None:
        assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_a_fleet_renumbers_every_zone_and_rolls_back(tmp_path, pdns_server, fleet_zones):  # noqa: F811
    endpoint = f"127.0.0.1:{pdns_server.dns_port}"
    (tmp_path / "zones.txt").write_text("".join(z + "\n" for z in fleet_zones))
    plan = tmp_path / "fleet.yaml"
    plan.write_text(yaml.safe_dump({
        "version": 1,
        "fleet": "zones.txt",
        "provider": {"type": "powerdns", "url": pdns_server.api_url, "api_key": "${PDNS_API_KEY}"},
        "renumber": [{"from": OLD, "to": NEW}],
        "verify": {"nameservers": [endpoint], "timeout": "20s"},
        "watch": {"resolvers": [endpoint], "interval": "1s", "timeout": "1s"},
        "retire": {"threshold": "100%", "parallel_period": "1s", "min_answering": 1},
    }))
    moved = [z for i, z in enumerate(fleet_zones) if i % 10 != 9]

    diff = cutover(tmp_path, pdns_server, "diff", str(plan), "--format", "json", expect=1)
    plans = json.loads(diff.stdout)["plans"]
    assert sorted(p["zone"] for p in plans) == sorted(moved)  # every tenth zone holds none of the address
    assert json.loads(diff.stdout)["fleets"] == [{
        "plan": str(plan), "from": "provider", "zones": ZONES, "acted_on": len(moved), "untouched": ZONES - len(moved),
        "states": {"changes pending": len(moved)}, "changes": len(moved) + ZONES // 2, "failed_zones": []}]
    first = next(p for p in plans if p["zone"] == fleet_zones[0])
    assert {(c["name"], c["type"]) for c in first["changes"]} == {(f"www.{fleet_zones[0]}", "A"), (fleet_zones[0], "TXT")}

    started = time.monotonic()
    applied = cutover(tmp_path, pdns_server, "apply", str(plan), "--yes", "--format", "json")
    took = time.monotonic() - started
    outcomes = json.loads(applied.stdout)["plans"]
    assert len(outcomes) == len(moved) and {o["status"] for o in outcomes} == {"verified"}, took
    assert json.loads(applied.stdout)["fleets"][0]["states"] == {"verified": len(moved)}
    assert ask(pdns_server, f"www.{fleet_zones[0]}", "A") == {NEW}
    assert ask(pdns_server, fleet_zones[0], "TXT") == {f'"v=spf1 ip4:{NEW} -all"'}
    assert ask(pdns_server, f"www.{fleet_zones[9]}", "A") == {"192.0.2.9"}  # untouched

    again = cutover(tmp_path, pdns_server, "diff", str(plan), "--format", "json")  # in sync: the plans come from the journal
    assert len(json.loads(again.stdout)["plans"]) == len(moved)

    watched = cutover(tmp_path, pdns_server, "watch", str(plan), "--once", "--format", "json", expect=None)
    rounds = [json.loads(line) for line in watched.stdout.splitlines()]
    assert watched.returncode in (0, 1) and sorted(r["zone"] for r in rounds) == sorted(moved)
    assert all(rec["counts"]["new"] == 1 for r in rounds for rec in r["records"])

    text = cutover(tmp_path, pdns_server, "watch", str(plan), "--once", expect=None).stdout  # a log: one line a round
    assert re.search(rf"^round 2: [\d,]+ of {len(moved):,} zones ready to retire$", text, re.M), text[-500:]

    # status and report need only the journal: a wrong API key, from another directory, is no matter
    elsewhere = cutover(tmp_path.parent, pdns_server, "status", f"{tmp_path.name}/fleet.yaml", "--format", "json",
                        key="wrong")
    status = json.loads(elsewhere.stdout)
    assert len(status["plans"]) == len(moved) and all(p["runs"][-1]["status"] == "verified" for p in status["plans"])
    applies = [p["runs"][-1] for p in status["plans"]]  # every zone changed before any was waited for and verified
    assert max(r["changed"] for r in applies) <= min(r["finished"] for r in applies)
    assert status["fleets"][0] == {
        "plan": f"{tmp_path.name}/fleet.yaml", "from": "journal", "zones": len(moved), "acted_on": len(moved),
        "untouched": 0, "states": {"apply verified": len(moved)}, "failed_zones": [], "retire": len(moved)}

    rolled = cutover(tmp_path, pdns_server, "rollback", str(plan), "--yes")
    assert f"{len(moved):,} acted on: {len(moved):,} verified" in rolled.stdout
    assert ask(pdns_server, f"www.{fleet_zones[0]}", "A") == {OLD}
    assert ask(pdns_server, fleet_zones[0], "TXT") == {f'"v=spf1 ip4:{OLD} -all"'}
    assert "nothing to watch" in cutover(tmp_path, pdns_server, "watch", str(plan), "--once", expect=2).stderr
    report = json.loads(cutover(tmp_path, pdns_server, "report", str(plan), "--format", "json").stdout)
    assert report["fleets"][0]["states"] == {"changed since the last round": len(moved)}  # the rollback
    assert report["fleets"][0]["untouched"] == 0 and len(report["plans"]) == len(moved)
