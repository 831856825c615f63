"""The commands end to end, as an operator runs them: the ``cutover`` process against
the embedded sandbox's real UDP/TCP servers on loopback, checking exit codes, JSON
documents and what lands in the zone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cutover.records import RecordSet
from cutover.sandbox import ResolverSpec, Sandbox

ZONE = "shop.example."
OLD, NEW = "198.51.100.10", "203.0.113.10"


def run(*args: str, cwd: Path, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cutover", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, input=stdin,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def sandbox(tmp_path):
    records = [
        RecordSet.build(ZONE, "A", 2, [OLD]),
        RecordSet.build(f"www.{ZONE}", "A", 2, [OLD]),
        RecordSet.build(ZONE, "MX", 2, [f"10 mail.{ZONE}"]),
        RecordSet.build(f"mail.{ZONE}", "A", 2, [OLD]),
        RecordSet.build(ZONE, "TXT", 2, ['"v=spf1 mx -all"']),
    ]
    specs = [ResolverSpec("r1"), ResolverSpec("r2"), ResolverSpec("r3", ttl_floor=600), ResolverSpec("dead", fail="drop")]
    with Sandbox(tmp_path / "zone", ZONE, records, resolvers=specs) as sb:
        yield sb


def write_plan(tmp_path: Path, sandbox: Sandbox, **overrides) -> Path:
    resolvers = [f"{r.address}:{r.port}" for r in sandbox.resolvers]
    doc = {
        "version": 1,
        "zone": ZONE,
        "provider": {"type": "sandbox", **sandbox.provider_settings()},
        "records": [
            {"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
            {"name": "mail", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
        ],
        "prepare": {"ttl": 1},
        "verify": {"nameservers": [sandbox.provider_settings()["server"]], "timeout": "10s"},
        "watch": {"resolvers": resolvers, "interval": "0.5s", "timeout": "0.5s"},
        # the apex stays on the old server for now (it only redirects), knowingly
        "retire": {"threshold": "60%", "parallel_period": "3s", "ignore": ["@ A"]},
    }
    doc.update(overrides)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def live(sandbox: Sandbox, name: str) -> tuple[str, ...]:
    found = {r.key: r for r in sandbox.store.records(ZONE)}
    rs = found.get((f"{name}.{ZONE}" if name != "@" else ZONE, "A"))
    return rs.values if rs else ()


def test_full_cutover_through_the_cli(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox)

    diff = run("diff", str(plan), "--format", "json", cwd=tmp_path)
    assert diff.returncode == 1, diff.stderr
    doc = json.loads(diff.stdout)
    changes = doc["plans"][0]["changes"]
    assert {(c["name"], c["action"]) for c in changes} == {(f"www.{ZONE}", "update"), (f"mail.{ZONE}", "update")}
    assert changes[0]["before"] == {"ttl": 2, "values": [OLD]} and changes[0]["after"] == {"ttl": 1, "values": [NEW]}

    early = run("apply", str(plan), "--yes", cwd=tmp_path)
    assert early.returncode == 2 and "live TTL is 2s and no prepare was run" in early.stderr

    prep = run("prepare", str(plan), "--format", "json", cwd=tmp_path)
    assert prep.returncode == 0, prep.stderr
    assert json.loads(prep.stdout)["plans"][0]["kind"] == "prepare"
    refused = run("apply", str(plan), "--yes", cwd=tmp_path)
    assert refused.returncode == 2 and "caches may hold the old TTL until" in refused.stderr
    assert live(sandbox, "www") == (OLD,)
    time.sleep(2.2)

    applied = run("apply", str(plan), "--yes", "--format", "json", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    out = json.loads(applied.stdout)["plans"][0]
    assert out["status"] == "verified" and out["nameservers"][0]["state"] == "new"
    assert live(sandbox, "www") == (NEW,) and live(sandbox, "mail") == (NEW,)
    assert run("diff", str(plan), cwd=tmp_path).returncode == 0

    once = run("watch", str(plan), "--once", "--format", "json", cwd=tmp_path)
    assert once.returncode == 1, once.stderr  # the parallel period cannot have passed yet
    rnd = json.loads(once.stdout.splitlines()[0])
    assert rnd["round"] == 1 and {r["name"] for r in rnd["records"]} == {f"www.{ZONE}", f"mail.{ZONE}"}
    assert "parallel_period" in rnd["verdict"]["missing"]
    assert any(a["state"] == "timeout" for r in rnd["records"] for a in r["answers"])

    time.sleep(3)
    done = run("watch", str(plan), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["verdict"]["retire"] is True and last["verdict"]["missing"] == []

    status = run("status", str(plan), "--format", "json", cwd=tmp_path)
    assert status.returncode == 0
    st = json.loads(status.stdout)["plans"][0]
    assert [r["kind"] for r in st["runs"]] == ["prepare", "apply"]
    assert st["verdict"]["retire"] is True and st["last_round"]["round"] >= 2

    back = run("rollback", str(plan), "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert live(sandbox, "www") == (OLD,)


def test_apply_without_terminal_needs_yes(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox)
    result = run("apply", str(plan), cwd=tmp_path)
    assert result.returncode == 2
    assert "pass --yes when not running on a terminal" in result.stderr
    assert live(sandbox, "www") == (OLD,)


def test_bad_plan_exit_2_no_traceback(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox, records=[{"name": "www", "type": "A", "to": ["300.1.1.1"]}])
    for command in ("diff", "apply", "prepare", "watch", "status", "rollback"):
        result = run(command, str(plan), "--yes" if command in ("apply", "rollback") else "--format=text", cwd=tmp_path)
        assert result.returncode == 2, command
        assert f"{plan}: records[0].to[0]: '300.1.1.1' is not a valid IPv4 address" in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_provider_down_exit_3(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox, provider={"type": "sandbox", "path": str(tmp_path / "nowhere")})
    result = run("diff", str(plan), cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr


def test_export_round_trips_to_an_in_sync_plan(tmp_path, sandbox):
    settings = sandbox.provider_settings()
    result = run("export", "--provider", "sandbox", "--zone", ZONE, "--setting", f"path={settings['path']}",
                 "--setting", f"server={settings['server']}", "-o", str(tmp_path / "exported.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "exported.yaml").read_text()
    assert "&id" not in text and "*id" not in text  # from and to are separate lines to edit, not an alias
    exported = yaml.safe_load(text)
    names = {(r["name"], r["type"]) for r in exported["records"]}
    assert ("www", "A") in names and ("@", "MX") in names and ("@", "SOA") not in names
    diff = run("diff", str(tmp_path / "exported.yaml"), cwd=tmp_path)
    assert diff.returncode == 0, diff.stdout + diff.stderr


def test_several_plans_one_failing_zone(tmp_path, sandbox):
    good = write_plan(tmp_path, sandbox)
    bad_doc = yaml.safe_load(good.read_text())
    bad_doc["zone"] = "other.example."
    bad_doc["records"] = [{"name": "www", "type": "A", "to": [NEW]}]
    bad = tmp_path / "other.yaml"
    bad.write_text(yaml.safe_dump(bad_doc))
    result = run("apply", str(good), str(bad), "--yes", "--force", "--format", "json", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    plans = json.loads(result.stdout)["plans"]
    assert plans[0]["status"] == "verified" and plans[1]["exit_code"] == 3 and "other.example." in plans[1]["error"]
    assert live(sandbox, "www") == (NEW,)


def test_change_made_outside_cutover_is_dated_at_the_authoritative_servers(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox)
    before = run("watch", str(plan), "--once", "--format", "json", cwd=tmp_path)
    assert before.returncode == 1
    first = json.loads(before.stdout)
    assert first["change"] == {"time": None, "source": "not seen yet at the authoritative servers"}
    assert all(r["authoritative"]["all_new"] is False for r in first["records"])

    for name in ("www", "mail"):  # someone changes the records in a web console
        sandbox.store.put(ZONE, RecordSet.build(f"{name}.{ZONE}", "A", 1, [NEW]))
    seen = json.loads(run("watch", str(plan), "--once", "--format", "json", cwd=tmp_path).stdout)
    assert seen["round"] == 2 and seen["change"]["source"] == "observed at the authoritative servers in round 2"
    assert seen["change"]["time"] == seen["time"]
    ttl = next(c for c in seen["verdict"]["conditions"] if c["name"] == "ttl")
    assert ttl["met"] is False and ttl["at"] is not None
    assert {r["old_ttl"] for r in seen["records"]} == {2}  # the TTL the old records had, not the new one

    time.sleep(3.5)
    later = json.loads(run("watch", str(plan), "--once", "--format", "json", cwd=tmp_path).stdout)
    assert later["change"]["time"] == seen["time"]  # dated once, by the first round that saw it
    assert later["verdict"]["retire"] is True, json.dumps(later["verdict"], indent=1)


def test_one_watch_over_several_plans_shares_each_round(tmp_path, sandbox):
    first = write_plan(tmp_path, sandbox)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    with Sandbox(other_dir / "zone", "blog.example.", [RecordSet.build("www.blog.example.", "A", 2, [OLD])],
                 resolvers=[ResolverSpec("slow", delay=0.3)]) as blog:
        doc = yaml.safe_load(write_plan(other_dir, blog).read_text())
        doc["zone"] = "blog.example."
        doc["records"] = [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}]
        second = other_dir / "plan.yaml"
        second.write_text(yaml.safe_dump(doc))
        result = run("watch", str(first), str(second), "--once", "--format", "json", "--state", str(tmp_path / "st"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["zone"] for d in docs] == [ZONE, "blog.example."]
    assert docs[0]["time"] == docs[1]["time"]  # one round over both plans' records
    assert docs[1]["records"][0]["counts"]["old"] == 1  # the slow resolver answered within the shared round


def test_resolver_file_beside_the_plan_is_found_from_anywhere(tmp_path, sandbox):
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "resolvers.txt").write_text("\n".join(f"{r.address}:{r.port}" for r in sandbox.resolvers) + "\n")
    doc = yaml.safe_load(write_plan(tmp_path, sandbox).read_text())
    doc["watch"]["resolvers"] = "resolvers.txt"
    plan = plans / "plan.yaml"
    plan.write_text(yaml.safe_dump(doc))
    result = run("watch", "plans/plan.yaml", "--once", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert len(json.loads(result.stdout)["records"][0]["answers"]) == len(sandbox.resolvers)
    (tmp_path / "mine.txt").write_text(f"{sandbox.resolvers[0].address}:{sandbox.resolvers[0].port}\n")
    mine = run("watch", "plans/plan.yaml", "--once", "--format", "json", "--resolvers", "mine.txt", cwd=tmp_path)
    assert mine.returncode == 1, mine.stderr
    assert len(json.loads(mine.stdout)["records"][0]["answers"]) == 1


# --------------------------------------------------------------------------- issue 14: lists, files, export


def test_a_long_resolver_list_with_repeats_asks_each_resolver_once(tmp_path, sandbox):
    endpoints = [f"{r.address}:{r.port}" for r in sandbox.resolvers]
    spec = ",".join(endpoints * 20)  # well over 255 characters, every resolver twenty times
    assert len(spec) > 255
    plan = write_plan(tmp_path, sandbox, watch={"resolvers": spec, "interval": "0.5s", "timeout": "0.5s"})
    assert run("diff", str(plan), cwd=tmp_path).returncode == 1  # loads; once "network or system failure"
    for extra in ([], ["--resolvers", spec]):
        result = run("watch", str(plan), "--once", "--format", "json", *extra, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert len(json.loads(result.stdout)["records"][0]["answers"]) == len(sandbox.resolvers)


def test_a_fifo_or_device_as_plan_is_refused_at_once(tmp_path):
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        result = subprocess.run([sys.executable, "-m", "cutover", "diff", path], cwd=tmp_path,
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 2, result.stderr
        assert f"cutover: {path}: is a " in result.stderr and ", not a plan file" in result.stderr


def test_a_state_path_that_is_a_file_is_named_as_such(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox)
    (tmp_path / "state").write_text("")
    result = run("status", str(plan), "--state", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 2
    assert f"state directory {tmp_path / 'state'}: is a file, not a directory" in result.stderr
    assert "File exists" not in result.stderr
    nested = run("status", str(plan), "--state", str(tmp_path / "state" / "sub"), cwd=tmp_path)
    assert nested.returncode == 2 and f"{tmp_path / 'state'} is a file, not a directory" in nested.stderr


def test_ctrl_c_in_watch_says_nothing_was_changed(tmp_path, sandbox):
    plan = write_plan(tmp_path, sandbox, watch={"resolvers": [f"{r.address}:{r.port}" for r in sandbox.resolvers[:1]],
                                                "interval": "60s", "timeout": "0.5s"})
    proc = subprocess.Popen([sys.executable, "-m", "cutover", "watch", str(plan), "--format", "json"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["round"] == 1  # now waiting for the next round
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 130
    assert "interrupted; nothing was changed in DNS (watch only reads it)" in err and "journal" not in err


@pytest.mark.parametrize(("command", "expected"), [
    ("diff", "interrupted; nothing was changed in DNS (diff only reads it)"),
    ("export", "interrupted; nothing was changed in DNS (export only reads it)"),
    ("apply", "interrupted; the journal records how far the run got (see `cutover status`)"),
    ("rollback", "interrupted; the journal records how far the run got (see `cutover status`)"),
])
def test_the_interrupt_message_fits_the_command(monkeypatch, capsys, command, expected):
    from cutover import cli

    def interrupted(*_a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
    monkeypatch.setattr(cli.signal, "signal", lambda *_a: None)  # the test process keeps its SIGTERM handler
    argv = ["export", "--provider", "rfc2136", "--zone", "example.com"] if command == "export" else [command, "plan.yaml"]
    assert cli.main(argv) == 130
    assert capsys.readouterr().err == f"cutover: {expected}\n"


def test_export_only_without_ttls_and_a_bad_setting_before_contacting(tmp_path, sandbox):
    settings = sandbox.provider_settings()
    base = ["export", "--provider", "sandbox", "--zone", ZONE, "--setting", f"path={settings['path']}",
            "--setting", f"server={settings['server']}"]
    result = run(*base, "--only", "www,mail", "-o", str(tmp_path / "some.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = yaml.safe_load((tmp_path / "some.yaml").read_text())
    assert [(r["name"], r["type"]) for r in exported["records"]] == [("mail", "A"), ("www", "A")]
    assert not any("ttl" in r for r in exported["records"])
    assert run("diff", str(tmp_path / "some.yaml"), cwd=tmp_path).returncode == 0

    refused = run("export", "--provider", "sandbox", "--zone", ZONE, "--setting", f"path={tmp_path / 'nowhere'}",
                  "--setting", "region=x", "--only", "wwww", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "cutover: --setting region: unknown key 'region'" in refused.stderr
    bad_zone = run("export", "--provider", "sandbox", "--zone", "bad zone!", "--setting", f"path={settings['path']}",
                   cwd=tmp_path)
    assert bad_zone.returncode == 2 and "--zone: 'bad zone!' is not a zone name" in bad_zone.stderr
