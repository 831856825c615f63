"""Process faults: ``cutover apply`` killed (SIGKILL) or terminated (SIGTERM) at every
step, a journal that cannot be written, two runs on one state. After each, ``status``
tells the truth, a second ``apply`` finishes the job and ``rollback`` restores.

The harness below runs the real CLI in a subprocess and kills it from inside at a
chosen step by wrapping one function; production code has no fault hooks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from cutover.records import RecordSet
from cutover.sandbox import ResolverSpec, Sandbox

ZONE = "faults.example."
OLD, NEW = "198.51.100.10", "203.0.113.10"

HARNESS = textwrap.dedent('''
    import os, signal, sys
    from cutover import apply as applymod, cli, journal as journalmod, verify
    from providers import sandbox as sandboxmod

    step, sig = sys.argv[1], getattr(signal, sys.argv[2])

    def die():
        os.kill(os.getpid(), sig)

    def after(obj, name, when=lambda *a, **k: True):
        original = getattr(obj, name)
        def wrapped(*args, **kwargs):
            result = original(*args, **kwargs)
            if when(*args, **kwargs):
                die()
            return result
        setattr(obj, name, wrapped)

    def before(obj, name):
        original = getattr(obj, name)
        def wrapped(*args, **kwargs):
            die()
            return original(*args, **kwargs)
        setattr(obj, name, wrapped)

    marks = lambda status: (lambda self, run_id, st, **kw: st == status)
    {
        "read": lambda: after(applymod, "read_live"),
        "journal-pending": lambda: after(journalmod.Journal, "begin"),
        "journal-sending": lambda: after(journalmod.Journal, "mark", marks("sending")),
        "provider-before": lambda: before(sandboxmod.SandboxProvider, "apply"),
        "provider-after": lambda: after(sandboxmod.SandboxProvider, "apply"),
        "journal-applied": lambda: after(journalmod.Journal, "mark", marks("applied")),
        "verify": lambda: before(verify, "poll"),
        "journal-verified": lambda: after(journalmod.Journal, "mark", marks("verified")),
    }[step]()
    sys.exit(cli.main(sys.argv[3:]))
''')

STEPS = ["read", "journal-pending", "journal-sending", "provider-before", "provider-after",
         "journal-applied", "verify", "journal-verified"]
LANDS = {"provider-after", "journal-applied", "verify", "journal-verified"}


def cutover(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def world(tmp_path):
    records = [RecordSet.build(f"www.{ZONE}", "A", 1, [OLD]), RecordSet.build(f"mail.{ZONE}", "A", 1, [OLD]),
               RecordSet.build(ZONE, "MX", 1, [f"10 mail.{ZONE}"])]
    with Sandbox(tmp_path / "zone", ZONE, records, resolvers=[ResolverSpec("r1")]) as sb:
        plan = tmp_path / "plan.yaml"
        plan.write_text(yaml.safe_dump({
            "zone": ZONE,
            "provider": {"type": "sandbox", **sb.provider_settings()},
            "records": [{"name": n, "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]} for n in ("www", "mail")],
            "verify": {"nameservers": [sb.provider_settings()["server"]], "timeout": "5s"},
            "safety": {"max_change_share": "100%"},
        }))
        harness = tmp_path / "harness.py"
        harness.write_text(HARNESS)
        yield sb, plan, harness


def zone_values(sb: Sandbox) -> set[tuple[str, ...]]:
    found = {r.key: r.values for r in sb.store.records(ZONE)}
    return {found[(f"{n}.{ZONE}", "A")] for n in ("www", "mail")}


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("step", STEPS)
def test_killed_apply_is_consistent_and_recoverable(world, tmp_path, step, sig):
    sb, plan, harness = world
    killed = subprocess.run([sys.executable, str(harness), step, sig, "apply", str(plan), "--yes"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    if sig == "SIGKILL":
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    else:
        assert killed.returncode in (143, -signal.SIGTERM), killed.stderr
        assert "Traceback" not in killed.stderr
    assert zone_values(sb) == ({(NEW,)} if step in LANDS else {(OLD,)})

    status = cutover("status", str(plan), "--format", "json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)["plans"][0]["runs"]
    if step == "read":
        assert runs == []
    else:
        assert len(runs) == 1 and runs[0]["kind"] == "apply"
        statuses = {c["status"] for c in runs[0]["changes"]}
        if step in LANDS and runs[0]["status"] in ("applied", "insync", "verified", "unverified"):
            assert statuses == {"landed"}
        else:
            assert runs[0]["status"] in ("pending", "sending", "failed", "abandoned"), runs[0]
            assert statuses <= {"pending", "failed"}

    again = cutover("apply", str(plan), "--yes", "--format", "json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert zone_values(sb) == {(NEW,)}
    final = json.loads(cutover("status", str(plan), "--format", "json", cwd=tmp_path).stdout)["plans"][0]["runs"]
    assert all(r["status"] not in ("pending", "sending") for r in final), final
    landed_applies = [r for r in final if r["kind"] == "apply" and all(c["status"] == "landed" for c in r["changes"])]
    assert len(landed_applies) == 1, final

    back = cutover("rollback", str(plan), "--yes", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert zone_values(sb) == {(OLD,)}


DISK_FULL = textwrap.dedent('''
    import resource, signal, sys
    from cutover import cli
    from providers import sandbox

    def disk_full():
        """From now on no file of this process may grow past one page: a full disk, as SQLite meets it."""
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    if sys.argv[1] == "before-send":
        disk_full()
    else:
        original = sandbox.SandboxProvider.apply
        def apply(self, changes):
            receipt = original(self, changes)
            disk_full()
            return receipt
        sandbox.SandboxProvider.apply = apply
    sys.exit(cli.main(sys.argv[2:]))
''')


def without_coverage() -> dict[str, str]:
    """The child's environment without coverage measurement: coverage saves its data at
    exit, which a full disk makes fail loudly, and that is not cutover's output."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}


def test_full_disk_before_sending_changes_nothing(world, tmp_path):
    sb, plan, _ = world
    assert cutover("status", str(plan), cwd=tmp_path).returncode == 0  # the journal exists, as after a prepare
    script = tmp_path / "full.py"
    script.write_text(DISK_FULL)
    result = subprocess.run([sys.executable, str(script), "before-send", "apply", str(plan), "--yes"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=without_coverage())
    assert result.returncode == 2, result.stderr
    assert "journal write failed" in result.stderr and "Traceback" not in result.stderr
    assert zone_values(sb) == {(OLD,)}


def test_full_disk_after_sending_says_so_and_the_next_run_settles(world, tmp_path):
    sb, plan, _ = world
    assert cutover("status", str(plan), cwd=tmp_path).returncode == 0
    script = tmp_path / "full.py"
    script.write_text(DISK_FULL)
    result = subprocess.run([sys.executable, str(script), "after-send", "apply", str(plan), "--yes"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=without_coverage())
    assert result.returncode == 2, result.stderr
    assert "The provider ACCEPTED the change" in result.stderr and "Traceback" not in result.stderr
    assert zone_values(sb) == {(NEW,)}
    runs = json.loads(cutover("status", str(plan), "--format", "json", cwd=tmp_path).stdout)["plans"][0]["runs"]
    assert runs[-1]["status"] == "sending"
    again = cutover("apply", str(plan), "--yes", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    runs = json.loads(cutover("status", str(plan), "--format", "json", cwd=tmp_path).stdout)["plans"][0]["runs"]
    assert runs[0]["status"] in ("applied", "verified") and {c["status"] for c in runs[0]["changes"]} == {"landed"}


def test_state_directory_that_is_a_file_is_a_clear_error(world, tmp_path):
    _, plan, _ = world
    (tmp_path / "blocked").write_text("not a directory")
    result = cutover("apply", str(plan), "--yes", "--state", str(tmp_path / "blocked"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is a file, not a directory; move the file away or give --state another directory" in result.stderr


def test_two_processes_on_one_state(world, tmp_path):
    sb, plan, harness = world
    slow = tmp_path / "slow.py"
    slow.write_text(textwrap.dedent('''
        import sys, time
        from cutover import cli
        from providers import sandbox
        original = sandbox.SandboxProvider.apply
        def apply(self, changes):
            time.sleep(3)
            return original(self, changes)
        sandbox.SandboxProvider.apply = apply
        sys.exit(cli.main(sys.argv[1:]))
    '''))
    first = subprocess.Popen([sys.executable, str(slow), "apply", str(plan), "--yes"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    second = cutover("apply", str(plan), "--yes", cwd=tmp_path)
    assert second.returncode == 2 and "is locked by pid" in second.stderr
    assert first.wait(timeout=60) == 0, first.stderr.read()
    assert zone_values(sb) == {(NEW,)}
