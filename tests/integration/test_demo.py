"""``cutover demo --fast``: the whole story against the embedded sandbox, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml


def test_demo_runs_the_whole_cutover(tmp_path):
    state = tmp_path / "journal"
    result = subprocess.run([sys.executable, "-m", "cutover", "demo", "--fast", "--dir", str(tmp_path), "--format", "json",
                             "--state", str(state)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    (doc,) = [json.loads(line) for line in result.stdout.splitlines()]  # one document, as every command gives
    assert doc["schema"] == 2 and doc["outcome"]["status"] == "verified"
    ready = doc["readiness"]
    assert ready["ready"] is True and {(c["check"], c["name"], c["state"]) for c in ready["checks"]} >= {
        ("http", "demo.example", "ok"), ("https", "www.demo.example", "ok"), ("certificate", "www.demo.example", "ok")}
    rounds = doc["rounds"]
    assert len(rounds) >= 2 and doc["verdict"] == rounds[-1]["verdict"]
    assert (state / "journal.sqlite3").exists() and not (tmp_path / ".cutover").exists()  # --state is honoured
    first, last = rounds[0], rounds[-1]
    assert any(r["counts"]["old"] > 0 for r in first["records"])  # caches still held the old answer
    assert all(r["counts"]["error"] >= 1 for r in first["records"])  # the broken resolver is reported
    assert last["verdict"]["retire"] is True and last["verdict"]["missing"] == []
    plan = yaml.safe_load((tmp_path / "demo-plan.yaml").read_text())
    assert plan["provider"]["type"] == "sandbox" and len(plan["records"]) == 3

    status = subprocess.run([sys.executable, "-m", "cutover", "status", str(tmp_path / "demo-plan.yaml"), "--format", "json",
                             "--state", str(state)], capture_output=True, text=True, timeout=60)
    runs = json.loads(status.stdout)["plans"][0]["runs"]
    assert [(r["kind"], r["status"]) for r in runs] == [("prepare", "insync"), ("apply", "verified")]


def test_demo_text_output_tells_the_story(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cutover", "demo", "--fast"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("0. check: is the new web server", "www.demo.example", "ready", "1. diff", "2. prepare", "3. apply right away: the TTL guard refuses", "caches may hold the old TTL until",
                 "4. apply", "apply verified", "5. watch", "round 1 ", "retire: yes", "Retire verdict after"):
        assert step in out, step
