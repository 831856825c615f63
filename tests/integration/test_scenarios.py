"""Whole cutovers against real servers, from prepare to the retire verdict.

BIND is the zone's authoritative server, changed by RFC 2136 with a TSIG key that
only the environment holds; Unbound resolvers on loopback cache its answers. Every
step is the ``cutover`` command an operator would run. TTLs and the parallel period
are seconds instead of hours so that the story fits in a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import yaml

from tests.integration.servers.bind import BindServer, BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.unbound import UnboundServer, unbound_server  # noqa: F401 (fixture)

ZONE = "acme.example.com."  # under example.com: Unbound refuses test. by default
OLD, NEW = "198.51.100.10", "203.0.113.10"


class Operator:
    """Runs cutover commands on one plan, as the operator at the keyboard would."""

    def __init__(self, tmp_path: Path, bind: BindServer, resolvers: list[UnboundServer], records: list[dict], **plan) -> None:
        self.cwd, self.bind, self.resolvers = tmp_path, bind, resolvers
        self.plan = tmp_path / "plan.yaml"
        doc = {
            "version": 1,
            "zone": ZONE,
            "provider": {"type": "rfc2136", "server": "127.0.0.1", "port": bind.port, "tsig_name": bind.key_name,
                         "tsig_secret": "${ACME_TSIG}", "timeout": 2},
            "records": records,
            "prepare": {"ttl": 1},
            "verify": {"nameservers": [f"127.0.0.1:{bind.port}"], "timeout": "10s"},
            "watch": {"resolvers": [r.endpoint for r in resolvers], "interval": "1s", "timeout": "1s"},
            "retire": {"threshold": "100%", "parallel_period": "4s"},
            "safety": {"max_change_share": "100%"},
        }
        doc.update(plan)
        self.plan.write_text(yaml.safe_dump(doc))

    def __call__(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        env = {**os.environ, "ACME_TSIG": self.bind.key_secret}
        result = subprocess.run([sys.executable, "-m", "cutover", args[0], str(self.plan), *args[1:]], cwd=self.cwd,
                                capture_output=True, text=True, timeout=120, env=env)
        if expect is not None:
            assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def rounds(self, *args: str, expect: int = 0) -> list[dict]:
        return [json.loads(line) for line in self("watch", "--format", "json", *args, expect=expect).stdout.splitlines()]

    def status(self) -> dict:
        return json.loads(self("status", "--format", "json").stdout)["plans"][0]

    def ask(self, resolver: UnboundServer, name: str, rtype: str) -> set[str]:
        """What a user behind this resolver gets (and, as a side effect, what it now caches)."""
        response = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=resolver.port, timeout=2)
        return {rd.to_text() for rrset in response.answer if rrset.rdtype == dns.rdatatype.from_text(rtype) for rd in rrset}


def start_world(bind_server, unbound_server, records: tuple[str, ...], floored: bool = False):
    bind = bind_server(BindZone(ZONE, records=records))
    resolvers = [unbound_server(ZONE, bind.port), unbound_server(ZONE, bind.port)]
    if floored:
        resolvers.append(unbound_server(ZONE, bind.port, cache_min_ttl=3600))
    return bind, resolvers



def test_web_and_mail_server_move_to_a_new_ip(tmp_path, bind_server, unbound_server):
    bind, resolvers = start_world(bind_server, unbound_server, (
        f"@ 3 IN A {OLD}", f"www 3 IN A {OLD}", f"mail 3 IN A {OLD}", "@ 3 IN MX 10 mail", "ftp 3 IN A 198.51.100.20"))
    op = Operator(tmp_path, bind, resolvers, [
        {"name": "@", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
        {"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
        {"name": "mx2", "type": "A", "ttl": 1, "to": [NEW]},
        {"name": "@", "type": "MX", "ttl": 1, "from": ["10 mail"], "to": ["10 mx2"]},
        {"name": "mail", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},  # IMAP clients still use it
    ])
    for r in resolvers:
        assert op.ask(r, f"www.{ZONE}", "A") == {OLD}
    assert op("diff", expect=1).stdout.count("update") == 4
    op("prepare")
    refused = op("apply", "--yes", expect=2)
    assert "caches may hold the old TTL until" in refused.stderr
    time.sleep(3.2)
    applied = json.loads(op("apply", "--yes", "--format", "json").stdout)["plans"][0]
    assert applied["status"] == "verified" and {s["state"] for s in applied["nameservers"]} == {"new"}
    assert bind.values(f"www.{ZONE}", "A") == {NEW} and bind.values(ZONE, "MX") == {f"10 mx2.{ZONE}"}

    rounds = op.rounds()
    last = rounds[-1]
    assert last["verdict"]["retire"] is True
    for rec in last["records"]:
        assert rec["counts"] == {"new": 2, "old": 0, "other": 0, "error": 0, "filtered": 0}, rec
    created = next(r for r in last["records"] if r["name"] == f"mx2.{ZONE}")
    assert created["old"] == [] and created["old_ttl"] > 0  # the negative-caching TTL stands for the old TTL
    for r in resolvers:
        assert op.ask(r, f"www.{ZONE}", "A") == {NEW}
    st = op.status()
    assert [run["kind"] for run in st["runs"]] == ["prepare", "apply"] and st["verdict"]["retire"] is True


def test_mail_moves_to_a_hosted_service_with_a_parallel_period(tmp_path, bind_server, unbound_server):
    bind, resolvers = start_world(bind_server, unbound_server, (
        f"@ 1 IN A {OLD}", "@ 1 IN MX 10 mail", f"mail 1 IN A {OLD}", '@ 1 IN TXT "v=spf1 mx -all"'), floored=True)
    hosted_mx = "0 acme-example-com.mail.protection.outlook.com."
    spf = '"v=spf1 include:spf.protection.outlook.com -all"'
    op = Operator(tmp_path, bind, resolvers, [
        {"name": "@", "type": "MX", "ttl": 1, "from": ["10 mail"], "to": [hosted_mx]},
        {"name": "@", "type": "TXT", "ttl": 1, "from": ['"v=spf1 mx -all"'], "to": [spf]},
        {"name": "autodiscover", "type": "CNAME", "ttl": 1, "to": ["autodiscover.outlook.com."]},
    ], retire={"threshold": "60%", "parallel_period": "5s"},
        ready={"resolver": f"127.0.0.1:{bind.port}", "timeout": "2s"})  # BIND refuses recursion: no DNS leaves loopback
    for r in resolvers:
        assert op.ask(r, ZONE, "MX") == {f"10 mail.{ZONE}"}  # the floored resolver now holds the old MX for an hour
    refused = op("apply", "--yes", expect=2)  # the hosted MX cannot be reached from here: not known to be ready
    assert "readiness: smtp acme-example-com.mail.protection.outlook.com" in refused.stderr and "has no address" in refused.stderr
    op("apply", "--yes", "--force", "readiness")
    assert bind.values(f"autodiscover.{ZONE}", "CNAME") == {"autodiscover.outlook.com."}

    time.sleep(1.5)
    early = op.rounds("--once", expect=1)[0]
    assert "parallel_period" in early["verdict"]["missing"]
    mx = next(r for r in early["records"] if r["type"] == "MX")
    assert mx["counts"]["new"] == 2 and mx["counts"]["old"] == 1
    stale = [a for a in mx["answers"] if a["stale"]]
    assert len(stale) == 1 and stale[0]["ttl"] > 1000  # the TTL floor, reported with the TTL it gave

    time.sleep(4)
    done = op.rounds()[-1]
    assert done["verdict"]["retire"] is True  # 2 of 3 answering resolvers is above the 60% threshold
    conditions = {c["name"]: c for c in done["verdict"]["conditions"]}
    assert all(c["met"] for c in conditions.values())
    cname = next(r for r in done["records"] if r["type"] == "CNAME")
    assert cname["counts"]["new"] == 3


def test_rollback_in_the_middle_of_propagation_brings_the_old_answers_back(tmp_path, bind_server, unbound_server):
    bind, resolvers = start_world(bind_server, unbound_server, (f"www 1 IN A {OLD}", f"@ 1 IN A {OLD}", "@ 1 IN MX 10 mail"))
    op = Operator(tmp_path, bind, resolvers, [
        {"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
        {"name": "@", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
    ])
    op.ask(resolvers[0], f"www.{ZONE}", "A")
    op("apply", "--yes")
    assert op.ask(resolvers[1], f"www.{ZONE}", "A") == {NEW}  # one resolver has the new answer already
    middle = op.rounds("--once", expect=1)[0]
    assert middle["verdict"]["retire"] is False

    rolled = json.loads(op("rollback", "--yes", "--format", "json").stdout)["plans"][0]
    assert rolled["kind"] == "rollback" and rolled["status"] == "verified" and rolled["retiring"] == [NEW]
    assert bind.values(f"www.{ZONE}", "A") == {OLD} and bind.values(ZONE, "A") == {OLD}

    back = op.rounds()[-1]  # watching the rollback: "new" is now the original answer
    assert back["verdict"]["retire"] is True
    assert back["verdict"]["retiring"] == [NEW] and back["verdict"]["headline"] == f"{NEW} can be switched off"
    for rec in back["records"]:
        assert rec["new"] == [OLD] and rec["old"] == [NEW] and rec["counts"]["new"] == 2
    for r in resolvers:
        assert op.ask(r, f"www.{ZONE}", "A") == {OLD}
    kinds = [(run["kind"], run["undoes"]) for run in op.status()["runs"]]
    assert kinds == [("apply", None), ("rollback", 1)]
