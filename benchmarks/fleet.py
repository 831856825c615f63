"""Benchmark: a fleet plan at the issue's scale, end to end through the CLI.

"It must scale: 10,000 zones and 100,000 record sets on PowerDNS and on Route 53
(respecting its request rate; moto in tests)". One fleet plan (``fleet: all``, one IPv4
and one IPv6 move) over N zones of 10 record sets each, on

- **PowerDNS**: a real ``pdns_server`` (Debian ``pdns-server`` + ``pdns-backend-sqlite3``)
  started as ``tests/integration/servers/pdns.py`` starts it (caches off, SQLite), the
  zones created through its HTTP API, one POST each (set-up, timed apart);
- **Route 53**: the moto server (``_bench.moto_server``), zones created with boto3
  (CreateHostedZone + one change batch each). ``provider.rate: 0`` when the provider
  takes that setting (pacing off against moto); the HTTP requests of each command are
  counted on the server's side (its request log), and what each would take at Route 53's
  documented 5 requests/s is computed from that count. Route 53's own servers cannot be
  asked here (loopback only), so ``verify.nameservers`` and ``watch.resolvers`` name a
  stand-in authoritative server in this process that answers with the zones' data as
  the apply leaves it; ``apply`` and ``rollback`` run with ``--no-verify`` as
  ``tests/integration/test_fleet_route53.py`` does (the provider still waits for INSYNC).

Each command runs as a user runs it: ``python -m cutover CMD fleet.yaml --format json``
in a subprocess (``--yes`` for changes), in the order diff, apply, diff (in sync),
watch --once, status, report, rollback. Measured per command: wall time, zones/s, the
command's CPU time and peak RSS (under GNU time, see ``run_cutover``), the server's CPU
time (``/proc``), the machine's UDP receive-buffer drops. The code measured is one
commit's ``cutover/`` and ``providers/`` unpacked apart (``--code``, default HEAD), so
that others' edits to the tree do not change it halfway through a run. Checked per command: the exit code and the JSON ``fleets``
summary (every zone in the expected state, the number of changes); after apply and
after rollback every record set of every zone is compared with what it must hold (the
PowerDNS SQLite database read directly; Route 53 listed zone by zone), and a few are
asked over DNS. A command that fails a check is reported as such, never as a figure.

A command that runs longer than ``--command-timeout`` (default 600 s) is dumped and
sampled for 30 s with py-spy (when installed), then stopped, and the backend's later
commands are skipped: at that point the stacks are the finding.

    python benchmarks/fleet.py --quick                    # 200 zones on PowerDNS, 100 on Route 53: ~1 min
    python benchmarks/fleet.py                            # 10,000 zones on PowerDNS, 2,000 on Route 53: ~20 min
    python benchmarks/fleet.py --only route53 --route53-zones 10000 --commands diff
    python benchmarks/fleet.py --only powerdns --untouched-every 0 --commands apply,watch
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import _bench

OLD, NEW = "198.51.100.77", "203.0.113.77"
OLD6, NEW6 = "2001:db8::77", "2001:db8:1::77"
OTHER, OTHER6, FTP = "192.0.2.10", "2001:db8::99", "192.0.2.21"
TTL = 60
SETS_PER_ZONE = 10  # SOA and NS (given by the server) and the 8 of zone_sets()
#: 5 of a zone's 10 record sets change (on moto 5 of 9: its SOA value is a Python dict's repr,
#: which cutover cannot read and leaves out), above the default 50% of the safety guard.
SAFETY = "60%"
ROUTE53_RATE = 5.0  # requests/s: the documented Route 53 limit, the provider's default pacing
SPY_SECONDS = 30  # how long a stopped command is sampled with py-spy before it is killed
SCHEMA_CANDIDATES = (
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
)
COMMANDS = ("diff", "apply", "diff again", "watch --once", "status", "report", "rollback")
#: ``--commands`` names: each command's first word, ``again`` for the second diff.
SHORT = {"diff": "diff", "apply": "apply", "again": "diff again", "watch": "watch --once", "status": "status",
         "report": "report", "rollback": "rollback"}
#: The commands run (``--commands``); later ones need the earlier ones' journal.
SELECTED = set(COMMANDS)


# --------------------------------------------------------------------------- the fleet


def zone_name(i: int) -> str:
    return f"z{i:05d}.fleet.test."  # .test: reserved (RFC 2606), never resolved by the readiness checks


#: Every UNTOUCHED_EVERY-th zone holds neither old address (counted, not planned); 0: none.
UNTOUCHED_EVERY = 10


def moved(i: int) -> bool:
    return not UNTOUCHED_EVERY or i % UNTOUCHED_EVERY != UNTOUCHED_EVERY - 1


def zone_sets(i: int, state: str = "before") -> list[tuple[str, str, list[str]]]:
    """The zone's record sets besides SOA and NS: (name, type, values); ``state`` "after"
    is what the apply must leave (the moved addresses replaced)."""
    z = zone_name(i)
    v4 = (NEW if state == "after" else OLD) if moved(i) else OTHER
    v6 = (NEW6 if state == "after" else OLD6) if moved(i) else OTHER6
    return [
        (z, "A", [v4]),
        (f"www.{z}", "A", [v4]),
        (f"mail.{z}", "A", [v4]),
        (f"ftp.{z}", "A", [FTP]),  # another server: never moves
        (z, "AAAA", [v6]),
        (z, "MX", [f"10 mail.{z}"]),
        (z, "TXT", [f'"v=spf1 mx ip4:{v4} -all"']),
        (f"shop.{z}", "CNAME", [f"www.{z}"]),
    ]


def expected_changes(i: int) -> int:
    """apex, www and mail A, the apex AAAA and the SPF TXT."""
    return 5 if moved(i) else 0


def moved_zones(count: int) -> list[str]:
    return [zone_name(i) for i in range(count) if moved(i)]


# --------------------------------------------------------------------------- running cutover


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    wall: float
    cpu: float
    peak_rss_mib: float
    server_cpu: float
    timed_out: bool = False
    dump: str = ""


def proc_cpu(pid: int | None) -> float:
    """A process's CPU time (all its threads) so far, from /proc."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_drops() -> int:
    """The system's UDP datagrams dropped for a full receive buffer so far (any process)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")]) if len(lines) >= 2 else 0


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


TIME = shutil.which("time", path="/usr/bin:/bin")  # GNU time: a lean parent, so the peak RSS is cutover's own


def run_cutover(args: list[str], cwd: Path, env: dict[str, str], server_pid: int | None, timeout: float,
                profile: Path | None = None) -> Ran:
    """``python -m cutover ARGS`` as a user runs it, under GNU time for its peak RSS (the
    process and the helpers it waited for). Not ``os.wait4`` on a child of this script:
    on Linux a child's ``ru_maxrss`` counts the memory of the process it was forked from
    (the kernel keeps the old image's high-water mark at exec), and this script holds
    big parsed documents. CPU: user + system of the whole command. On timeout its stacks
    are dumped and sampled with py-spy, then it is killed."""
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile else []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.NamedTemporaryFile("r", suffix=".time") as rss:
        wrapper = [TIME, "-f", "%M", "-o", rss.name] if TIME else []
        server0 = proc_cpu(server_pid)
        t0 = time.perf_counter()
        proc = subprocess.Popen([*wrapper, sys.executable, *prefix, "-m", "cutover", *args], cwd=cwd, env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = threading.Event()
        dump: list[str] = []

        def stop() -> None:
            timed_out.set()
            spy = py_spy()
            target = child_of(proc.pid) if TIME else proc.pid
            if spy and target:
                with contextlib.suppress(Exception):
                    dump.append(subprocess.run([spy, "dump", "--pid", str(target)], capture_output=True, text=True,
                                               timeout=60).stdout)
                with contextlib.suppress(Exception), tempfile.TemporaryDirectory() as spot:
                    raw = Path(spot) / "raw.txt"
                    subprocess.run([spy, "record", "--pid", str(target), "--duration", str(SPY_SECONDS), "--rate", "100",
                                    "--format", "raw", "--output", str(raw)], capture_output=True, timeout=SPY_SECONDS + 60)
                    dump.append(f"\npy-spy record, {SPY_SECONDS} s after the timeout (samples of running threads):\n"
                                + spy_summary(raw.read_text()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # this script stopped (Ctrl-C, SIGTERM): the command goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        server_cpu = proc_cpu(server_pid) - server0
        out.seek(0)
        err.seek(0)
        peak = usage.ru_maxrss / 1024  # without GNU time: an upper bound (see above)
        if TIME:
            lines = [line for line in rss.read().splitlines() if line.strip().isdigit()]
            peak = int(lines[-1]) / 1024 if lines else 0.0
        return Ran(proc.returncode, out.read(), err.read(), wall, usage.ru_utime + usage.ru_stime,
                   peak, server_cpu, timed_out.is_set(), "".join(reversed(dump)))


def child_of(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
    return None


def spy_summary(raw: str, limit: int = 15) -> str:
    """py-spy's collapsed stacks as two tops: the functions running (self) and the project's
    own frames they ran under (inclusive: each sample counted once per frame)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in dict.fromkeys(f for f in frames if re.search(r"\((\S*/)?(cutover|providers)/\w+", f)):
            inclusive[frame] += n
    if not total:
        return "(no samples)\n"
    lines = [f"{total} samples; self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(limit)]
    lines.append("under the project's frames (inclusive):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(limit)]
    return "\n".join(lines) + "\n"


def documents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def profile_top(path: Path, limit: int = 25) -> str:
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("tottime").print_stats(limit)
    return buf.getvalue()


# --------------------------------------------------------------------------- checks


class Check:
    """What one command must have produced; every mismatch is kept, with what was found."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def that(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def equal(self, found: Any, wanted: Any, what: str) -> None:
        self.that(found == wanted, f"{what}: {json.dumps(found, default=str)[:300]} != {json.dumps(wanted, default=str)[:300]}")

    @property
    def verdict(self) -> str:
        return "ok" if not self.problems else "FAILED: " + "; ".join(self.problems)


def fleet_summary(doc: dict[str, Any], check: Check) -> dict[str, Any]:
    fleets = doc.get("fleets") or []
    check.equal(len(fleets), 1, "fleet summaries")
    return fleets[0] if fleets else {}


def check_command(name: str, ran: Ran, count: int, backend: str, check: Check) -> dict[str, Any]:
    """The exit code and the JSON of one command against what the fleet must show."""
    moved_list = moved_zones(count)
    n_moved, n_untouched = len(moved_list), count - len(moved_list)
    changes = sum(expected_changes(i) for i in range(count))
    docs = documents(ran.stdout)
    if ran.timed_out:
        check.that(False, "stopped after the command timeout")
        return {}
    if name == "watch --once":
        check.that(ran.code in (0, 1), f"exit code {ran.code}")
        zones = sorted(d.get("zone") for d in docs)
        check.equal(len(zones), n_moved, "watch documents (one per zone)")
        check.that(zones == sorted(moved_list), "the watched zones are the moved ones")
        asked: dict[str, Counter[str]] = {"resolvers": Counter(), "authoritative": Counter()}
        details: Counter[str] = Counter()
        for d in docs:
            for rec in d.get("records", []):
                for group, answers in (("resolvers", rec.get("answers", [])),
                                       ("authoritative", (rec.get("authoritative") or {}).get("answers", []))):
                    for a in answers:
                        asked[group][a.get("state")] += 1
                        if a.get("state") != "new":
                            details[f"{group}: {a.get('state')}: {str(a.get('detail'))[:100]}"] += 1
        retire = sum(1 for d in docs if d.get("verdict", {}).get("retire"))
        wanted = sum(5 for _ in moved_list)  # apex, www, mail A; AAAA; TXT
        for group, states in asked.items():
            check.that(set(states) == {"new"} and sum(states.values()) == wanted,
                       f"every {group} answer new ({wanted} wanted): {dict(states)}")
        if details:
            check.problems.append("not new: " + "; ".join(f"{n} x {d}" for d, n in details.most_common(5)))
        return {"zones": len(docs), "acted_on": len(docs), "states": {"retire": retire, "not yet": len(docs) - retire},
                "answers": {group: dict(states) for group, states in asked.items()}}
    check.that(len(docs) == 1, f"{len(docs)} JSON documents")
    doc = docs[-1] if docs else {}
    summary = fleet_summary(doc, check)
    plans = doc.get("plans", [])
    check.equal(summary.get("failed_zones"), [], "failed zones")
    apply_state = "verified" if backend == "powerdns" else "insync"
    if name == "diff":
        check.equal(ran.code, 1, "exit code (changes pending)")
        check.equal({k: summary.get(k) for k in ("from", "zones", "acted_on", "untouched", "states", "changes")},
                    {"from": "provider", "zones": count, "acted_on": n_moved, "untouched": n_untouched,
                     "states": {"changes pending": n_moved}, "changes": changes}, "fleet summary")
        check.equal(sorted(p.get("zone") for p in plans), sorted(moved_list), "planned zones")
    elif name == "apply":
        check.equal(ran.code, 0, "exit code")
        check.equal({k: summary.get(k) for k in ("zones", "acted_on", "untouched", "states", "changes")},
                    {"zones": count, "acted_on": n_moved, "untouched": n_untouched,
                     "states": {apply_state: n_moved}, "changes": changes}, "fleet summary")
    elif name == "diff again":
        check.equal(ran.code, 0, "exit code (in sync)")
        check.equal({k: summary.get(k) for k in ("zones", "acted_on", "untouched", "states")},
                    {"zones": count, "acted_on": n_moved, "untouched": n_untouched,
                     "states": {"in sync": n_moved}}, "fleet summary")
    elif name == "status":
        check.equal(ran.code, 0, "exit code")
        check.equal({k: summary.get(k) for k in ("from", "zones", "acted_on", "states")},
                    {"from": "journal", "zones": n_moved, "acted_on": n_moved,
                     "states": {f"apply {apply_state}": n_moved}}, "fleet summary")
    elif name == "report":
        check.equal(ran.code, 0, "exit code")
        states = summary.get("states", {})
        check.that(set(states) <= {"ready to retire", "not yet"} and sum(states.values()) == n_moved,
                   f"every zone watched once: {states}")
        check.equal((summary.get("from"), summary.get("zones")), ("journal", n_moved), "from the journal, the moved zones")
        check.equal(len(plans), n_moved, "report plans")
    elif name == "rollback":
        check.equal(ran.code, 0, "exit code")
        check.equal({k: summary.get(k) for k in ("from", "zones", "acted_on", "states", "changes")},
                    {"from": "journal", "zones": n_moved, "acted_on": n_moved,
                     "states": {apply_state: n_moved}, "changes": changes}, "fleet summary")
    return summary


def compare_zones(found: dict[str, dict[tuple[str, str], list[str]]], count: int, state: str, check: Check) -> None:
    """Every zone's record sets (besides SOA and NS) against ``zone_sets(i, state)``."""
    wrong = []
    for i in range(count):
        z = zone_name(i)
        sets = found.get(z, {})
        want = {(n, t): sorted(v) for n, t, v in zone_sets(i, state)}
        got = {k: sorted(v) for k, v in sets.items() if k[1] not in ("SOA", "NS")}
        if got != want or len(sets) != SETS_PER_ZONE:
            wrong.append(z)
    check.that(not wrong, f"{len(wrong)} zones do not hold the {state} data, e.g. {wrong[:3]}")


def ask_sample(port: int, count: int, state: str, check: Check, host: str = "127.0.0.1") -> int:
    """A few zones asked over DNS (the server itself, on loopback): what it serves."""
    import dns.message
    import dns.query

    asked = 0
    for i in sorted({0, 1, 2, 9, count // 2, count - 1} & set(range(count))):
        for name, rtype, values in zone_sets(i, state):
            if rtype not in ("A", "AAAA", "TXT"):
                continue
            reply = dns.query.udp(dns.message.make_query(name, rtype), host, port=port, timeout=3)
            served = sorted(rd.to_text() for rrset in reply.answer for rd in rrset)
            check.equal(served, sorted(values), f"DNS {name} {rtype}")
            asked += 1
    return asked


# --------------------------------------------------------------------------- PowerDNS


@dataclass
class Pdns:
    api_url: str
    api_key: str
    dns_port: int
    db: Path
    version: str
    process: subprocess.Popen

    @property
    def zones_url(self) -> str:
        return f"{self.api_url}/api/v1/servers/localhost/zones"


@contextlib.contextmanager
def pdns_server(root: Path) -> Iterator[Pdns]:
    """As ``tests/integration/servers/pdns.py`` starts it (without pytest): SQLite, caches off."""
    import requests

    binary = shutil.which("pdns_server") or shutil.which("pdns_server", path="/usr/sbin:/usr/bin")
    if not binary:
        raise SystemExit("pdns_server not found: install the Debian packages pdns-server pdns-backend-sqlite3")
    schema = next((Path(p) for p in SCHEMA_CANDIDATES if Path(p).exists()), None)
    if schema is None:
        raise SystemExit("the gsqlite3 schema is missing: install pdns-backend-sqlite3")
    text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    version = next((line.split("Server", 1)[1].split("(")[0].strip() for line in (text.stdout + text.stderr).splitlines()
                    if "PowerDNS Authoritative Server" in line), "unknown")
    db = root / "pdns.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(schema.read_text())
    dns_port, web_port, api_key = _bench.free_port(), _bench.free_port(), secrets.token_hex(16)
    conf = {
        "launch": "gsqlite3", "gsqlite3-database": str(db), "local-address": "127.0.0.1", "local-port": dns_port,
        "api": "yes", "api-key": api_key, "webserver": "yes", "webserver-address": "127.0.0.1",
        "webserver-port": web_port, "webserver-allow-from": "127.0.0.0/8", "daemon": "no", "guardian": "no",
        "disable-syslog": "yes", "socket-dir": str(root), "cache-ttl": 0, "negquery-cache-ttl": 0,
        "query-cache-ttl": 0, "consistent-backends": "yes", "loglevel": 4,
    }
    (root / "pdns.conf").write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
    log = root / "pdns.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary, f"--config-dir={root}"], stdout=out, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pdns_server did not start:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/api/v1/servers/localhost", headers={"X-API-Key": api_key}, timeout=1).ok:
                    break
            time.sleep(0.1)
        yield Pdns(url, api_key, dns_port, db, version, proc)
    finally:
        _bench.stop(proc)


def pdns_create(server: Pdns, count: int) -> None:
    """One POST a zone (SOA from the server, NS and the 8 sets in the body), one at a time:
    PowerDNS on SQLite refuses concurrent writes (``database is locked``)."""
    import requests

    with requests.Session() as http:
        http.headers["X-API-Key"] = server.api_key
        for i in range(count):
            z = zone_name(i)
            rrsets = [{"name": n, "type": t, "ttl": TTL, "records": [{"content": v, "disabled": False} for v in vs]}
                      for n, t, vs in zone_sets(i)]
            body = {"name": z, "kind": "Native", "nameservers": ["ns1.fleet-dns.test.", "ns2.fleet-dns.test."],
                    "rrsets": rrsets}
            r = http.post(server.zones_url, json=body, timeout=30)
            if r.status_code != 201:
                raise RuntimeError(f"creating {z}: HTTP {r.status_code}: {r.text[:300]}")
            if (i + 1) % 1000 == 0:
                print(f"  created {i + 1} zones", file=sys.stderr, flush=True)


def pdns_contents(server: Pdns) -> dict[str, dict[tuple[str, str], list[str]]]:
    """Every record of every zone, read from PowerDNS's SQLite database (read-only)."""
    out: dict[str, dict[tuple[str, str], list[str]]] = {}
    conn = sqlite3.connect(f"file:{server.db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT d.name, r.name, r.type, r.content, r.prio FROM records r "
                            "JOIN domains d ON d.id = r.domain_id WHERE r.type IS NOT NULL AND r.disabled = 0")
        for zone, name, rtype, content, prio in rows:
            if rtype == "MX":
                content = f"{prio} {content}"
            if rtype in ("MX", "CNAME") and not content.endswith("."):
                content += "."
            out.setdefault(zone + ".", {}).setdefault((name + ".", rtype), []).append(content)
    finally:
        conn.close()
    return out


def bench_powerdns(count: int, timeout: float, profile: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"backend": "powerdns", "zones": count, "record_sets": count * SETS_PER_ZONE,
                              "moved_zones": len(moved_zones(count)), "rows": [], "checks": {}}
    with tempfile.TemporaryDirectory(prefix="cutover-fleet-bench-") as tmp:
        root = Path(tmp)
        (root / "pdns").mkdir()
        with pdns_server(root / "pdns") as server:
            result["server"] = f"PowerDNS Authoritative {server.version} (gsqlite3, caches off)"
            print(f"PowerDNS {server.version}: creating {count} zones through the API", file=sys.stderr, flush=True)
            t0, cpu0 = time.perf_counter(), proc_cpu(server.process.pid)
            pdns_create(server, count)
            setup = time.perf_counter() - t0
            result["setup"] = {"how": "HTTP API, one POST a zone (SOA + NS + 8 sets)", "wall_s": round(setup, 1),
                               "zones_per_s": round(count / setup, 1),
                               "server_cpu_s": round(proc_cpu(server.process.pid) - cpu0, 1)}
            check = Check()
            compare_zones(pdns_contents(server), count, "before", check)
            result["checks"]["created"] = check.verdict
            endpoint = f"127.0.0.1:{server.dns_port}"
            work = root / "ops"
            work.mkdir()
            plan = {
                "version": 1, "fleet": "all",
                "provider": {"type": "powerdns", "url": server.api_url, "api_key": "${PDNS_API_KEY}"},
                "renumber": [{"from": OLD, "to": NEW}, {"from": OLD6, "to": NEW6}],
                "verify": {"nameservers": [endpoint], "timeout": "20s"},
                "watch": {"resolvers": [endpoint], "interval": "1s", "timeout": "2s"},
                "retire": {"threshold": "100%", "parallel_period": "1s", "min_answering": 1},
                "safety": {"max_change_share": SAFETY},
            }
            env = {**os.environ, "PDNS_API_KEY": server.api_key}
            after = {"apply": "after", "rollback": "before"}

            def verify_data(name: str, check: Check) -> None:
                if name in after:
                    compare_zones(pdns_contents(server), count, after[name], check)
                    ask_sample(server.dns_port, count, after[name], check)

            run_commands(result, plan, work, env, server.process.pid, count, timeout, profile, verify_data)
    return result


# --------------------------------------------------------------------------- Route 53


class MotoLog:
    """The moto server's request log: HTTP requests by Route 53 operation, between two marks."""

    LINE = re.compile(r'"(GET|POST|DELETE|PUT) (\S+) HTTP/[\d.]+" (\d{3})')

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        time.sleep(0.2)
        self.offset = self.path.stat().st_size

    def since(self) -> tuple[Counter[str], int]:
        time.sleep(0.2)  # werkzeug logs a request as its answer starts; the last one is in by now
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
        ops: Counter[str] = Counter()
        errors = 0
        for method, path, status in self.LINE.findall(text):
            ops[self.operation(method, path.split("?", 1)[0])] += 1
            errors += not status.startswith("2")
        return ops, errors

    @staticmethod
    def operation(method: str, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["2013-04-01"]:
            return f"{method} {path}"
        rest = parts[1:]
        if rest == ["hostedzone"]:
            return "ListHostedZones" if method == "GET" else "CreateHostedZone"
        if rest[:1] == ["hostedzonesbyname"]:
            return "ListHostedZonesByName"
        if rest[:1] == ["hostedzone"] and len(rest) == 2:
            return "GetHostedZone" if method == "GET" else f"{method} hostedzone"
        if rest[:1] == ["hostedzone"] and rest[2:3] == ["rrset"]:
            return "ListResourceRecordSets" if method == "GET" else "ChangeResourceRecordSets"
        if rest[:1] == ["change"]:
            return "GetChange"
        return f"{method} /{'/'.join(rest[:1])}"


class StandIn:
    """A stand-in for the zones' authoritative servers on loopback (Route 53's cannot be
    asked here): answers every question about the fleet from the data as the apply
    leaves it, authoritatively. One thread; dnspython builds the replies."""

    def __init__(self, count: int) -> None:
        import dns.rdataclass
        import dns.rrset

        self.sets: dict[tuple[str, str], Any] = {}
        self.zones: dict[str, Any] = {}
        for i in range(count):
            z = zone_name(i)
            self.zones[z] = dns.rrset.from_text(z, TTL, "IN", "SOA", f"ns1.fleet-dns.test. hostmaster.{z} 1 7200 900 1209600 60")
            for name, rtype, values in zone_sets(i, "after"):
                self.sets[(name, rtype)] = dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rtype, values)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answered = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
                reply = dns.message.make_response(query)
                reply.flags |= dns.flags.AA
                q = query.question[0]
                name, rtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
                zone = name if name in self.zones else name.split(".", 1)[1] if "." in name else ""
                found = self.sets.get((name, rtype))
                if found is not None:
                    reply.answer.append(found)
                elif (name, "CNAME") in self.sets:
                    reply.answer.append(self.sets[(name, "CNAME")])
                elif zone in self.zones:
                    known = name == zone or any(k[0] == name for k in self.sets)
                    reply.set_rcode(dns.rcode.NOERROR if known else dns.rcode.NXDOMAIN)
                    reply.authority.append(self.zones[zone])
                else:
                    reply.set_rcode(dns.rcode.REFUSED)
                    reply.flags &= ~dns.flags.AA
                self.sock.sendto(reply.to_wire(), peer)
                self.answered += 1
            except Exception:  # noqa: BLE001 - a stand-in never dies of one odd packet
                continue

    def close(self) -> None:
        self.sock.close()


def route53_create(client: Any, count: int) -> dict[str, str]:
    """CreateHostedZone (SOA and NS from moto) and one UPSERT batch of the 8 sets per zone."""
    ids = {}
    for i in range(count):
        z = zone_name(i)
        zone_id = client.create_hosted_zone(Name=z, CallerReference=uuid.uuid4().hex)["HostedZone"]["Id"]
        # UPSERT: moto 5.2 refuses a CREATE identical to an earlier one (see test_fleet_route53.py)
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
            {"Action": "UPSERT", "ResourceRecordSet": {"Name": n, "Type": t, "TTL": TTL,
                                                        "ResourceRecords": [{"Value": v} for v in vs]}}
            for n, t, vs in zone_sets(i)]})
        ids[z] = zone_id
        if (i + 1) % 1000 == 0:
            print(f"  created {i + 1} hosted zones", file=sys.stderr, flush=True)
    return ids


def route53_contents(client: Any, ids: dict[str, str]) -> dict[str, dict[tuple[str, str], list[str]]]:
    """Every record set of every zone, listed with boto3 (four at a time)."""

    def one(item: tuple[str, str]) -> tuple[str, dict[tuple[str, str], list[str]]]:
        zone, zone_id = item
        sets: dict[tuple[str, str], list[str]] = {}
        for page in client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id):
            for rs in page["ResourceRecordSets"]:
                sets[(rs["Name"].lower(), rs["Type"])] = [r["Value"] for r in rs.get("ResourceRecords", [])]
        return zone, sets

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ids.items()))


def route53_takes_rate() -> bool:
    """Does the measured code's Route 53 provider take ``rate``? (Asked of that code.)"""
    probe = "from providers.route53 import Route53Provider as P; print('rate' in P.settings_keys)"
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tempfile.gettempdir())
    return answer.stdout.strip() == "True"


def bench_route53(count: int, timeout: float, profile: bool) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    result: dict[str, Any] = {"backend": "route53", "zones": count, "record_sets": count * SETS_PER_ZONE,
                              "moved_zones": len(moved_zones(count)), "rows": [], "checks": {}}
    with tempfile.TemporaryDirectory(prefix="cutover-fleet-bench-") as tmp:
        root = Path(tmp)
        log_path = root / "moto.log"
        with _bench.moto_server(log_path) as url:
            server_pid = moto_pid(url)
            client = boto3.client("route53", endpoint_url=url, config=Config(max_pool_connections=8))
            print(f"moto: creating {count} hosted zones", file=sys.stderr, flush=True)
            t0, cpu0 = time.perf_counter(), proc_cpu(server_pid)
            ids = route53_create(client, count)
            setup = time.perf_counter() - t0
            result["setup"] = {"how": "boto3: CreateHostedZone + one UPSERT batch of 8 sets a zone",
                               "wall_s": round(setup, 1), "zones_per_s": round(count / setup, 1),
                               "server_cpu_s": round(proc_cpu(server_pid) - cpu0, 1)}
            check = Check()
            compare_zones(route53_contents(client, ids), count, "before", check)
            result["checks"]["created"] = check.verdict
            stand_in = StandIn(count)
            endpoint = f"127.0.0.1:{stand_in.port}"
            provider: dict[str, Any] = {"type": "route53"}
            result["rate_setting"] = route53_takes_rate()
            if result["rate_setting"]:
                provider["rate"] = 0  # no pacing against moto; the requests are counted instead
            result["server"] = f"moto {_bench.machine().get('moto_version')} server mode" + (
                ", provider.rate: 0" if result["rate_setting"] else ", provider without a rate setting")
            plan = {
                "version": 1, "fleet": "all", "provider": provider,
                "renumber": [{"from": OLD, "to": NEW}, {"from": OLD6, "to": NEW6}],
                "verify": {"nameservers": [endpoint], "timeout": "20s"},
                "watch": {"resolvers": [endpoint], "interval": "1s", "timeout": "2s"},
                "retire": {"threshold": "100%", "parallel_period": "1s", "min_answering": 1},
                "safety": {"max_change_share": SAFETY},
            }
            work = root / "ops"
            work.mkdir()
            moto_log = MotoLog(log_path)
            after = {"apply": "after", "rollback": "before"}

            def verify_data(name: str, check: Check) -> None:
                if name in after:
                    compare_zones(route53_contents(client, ids), count, after[name], check)

            try:
                run_commands(result, plan, work, dict(os.environ), server_pid, count, timeout, profile, verify_data,
                             moto_log=moto_log)
            finally:
                stand_in.close()
            result["stand_in_answers"] = stand_in.answered
    return result


def moto_pid(url: str) -> int | None:
    """The moto server's process id: the one listening on the URL's port (from /proc)."""
    port = int(url.rsplit(":", 1)[1])
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inode = fields[9]
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
    return None


# --------------------------------------------------------------------------- the commands


def run_commands(result: dict[str, Any], plan: dict[str, Any], work: Path, env: dict[str, str], server_pid: int | None,
                 count: int, timeout: float, profile: bool, verify_data: Callable[[str, Check], None],
                 moto_log: MotoLog | None = None) -> None:
    import yaml

    backend = result["backend"]
    (work / "fleet.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    changes_flags = ["--yes"] + (["--no-verify"] if backend == "route53" else [])
    argv = {
        "diff": ["diff", "fleet.yaml", "--format", "json"],
        "apply": ["apply", "fleet.yaml", *changes_flags, "--format", "json"],
        "diff again": ["diff", "fleet.yaml", "--format", "json"],
        "watch --once": ["watch", "fleet.yaml", "--once", "--format", "json"],
        "status": ["status", "fleet.yaml", "--format", "json"],
        "report": ["report", "fleet.yaml", "--format", "json"],
        "rollback": ["rollback", "fleet.yaml", *changes_flags, "--format", "json"],
    }
    for name in (c for c in COMMANDS if c in SELECTED):
        print(f"{backend}: {name} ({count} zones) ...", file=sys.stderr, flush=True)
        if moto_log is not None:
            moto_log.mark()
        prof = _bench.RESULTS / f"fleet_{backend}_{name.split()[0]}{'_again' if name == 'diff again' else ''}.prof" \
            if profile else None
        if prof:
            _bench.RESULTS.mkdir(exist_ok=True)
        drops = udp_drops()
        ran = run_cutover(argv[name], work, env, server_pid, timeout, prof)
        drops = udp_drops() - drops
        check = Check()
        summary = check_command(name, ran, count, backend, check)
        if not ran.timed_out:
            verify_data(name, check)
        zones = summary.get("zones") or 0
        row: dict[str, Any] = {
            "command": name, "exit": ran.code, "zones": zones, "acted on": summary.get("acted_on"),
            "wall s": round(ran.wall, 1), "zones/s": round(zones / ran.wall, 1) if ran.wall else None,
            "CPU s": round(ran.cpu, 1), "peak RSS MiB": round(ran.peak_rss_mib, 1),
            "server CPU s": round(ran.server_cpu, 1), "UDP drops": drops, "states": summary.get("states"),
            "changes": summary.get("changes"), "check": check.verdict,
        }
        if "answers" in summary:
            row["answers"] = summary["answers"]
        if moto_log is not None:
            ops, errors = moto_log.since()
            total = sum(ops.values())
            row.update({"requests": total, "HTTP errors": errors, "at 5/s": round(total / ROUTE53_RATE, 1),
                        "requests by operation": dict(sorted(ops.items()))})
        if ran.stderr.strip():
            row["stderr tail"] = ran.stderr.strip().splitlines()[-3:]
        if ran.timed_out:
            row["py-spy dump"] = ran.dump[:30000]
            result["stopped"] = f"{name} ran over {timeout:.0f} s and was stopped"
        if prof and prof.exists():
            row["profile"] = profile_top(prof)
        result["rows"].append(row)
        print("  " + json.dumps({k: v for k, v in row.items() if k not in ("py-spy dump", "profile")}, default=str),
              file=sys.stderr, flush=True)
        if ran.timed_out or ran.code not in (0, 1):
            print(f"  {backend}: {name} failed or was stopped; the later commands depend on it: stopping {backend}",
                  file=sys.stderr, flush=True)
            if ran.dump:
                print(ran.dump[:4000], file=sys.stderr)
            break


# --------------------------------------------------------------------------- output


def render(doc: dict[str, Any]) -> str:
    code = doc.get("code", {})
    parts = [f"## Fleet plans at scale — {doc['machine']['when']}, load {doc['machine']['load']} before, "
             f"{doc['machine'].get('load_after')} after",
             f"\nCode measured: {code.get('code')} ({code.get('subject', 'as is')}); uncommitted edits in the tree: "
             f"{len(code.get('uncommitted_not_measured', code.get('uncommitted', [])))} files."]
    for b in doc["backends"]:
        parts.append(f"\n### {b['backend']}: {b['zones']:,} zones, {b['record_sets']:,} record sets, "
                     f"{b['moved_zones']:,} holding the old addresses ({b.get('server', '')})\n")
        setup = b.get("setup", {})
        parts.append(f"Set-up ({setup.get('how')}): {setup.get('wall_s')} s, {setup.get('zones_per_s')} zones/s, "
                     f"server CPU {setup.get('server_cpu_s')} s; data as created: {b['checks'].get('created')}.\n")
        columns = ["command", "exit", "zones", "acted on", "wall s", "zones/s", "CPU s", "peak RSS MiB", "server CPU s",
                   "UDP drops"]
        if b["backend"] == "route53":
            columns += ["requests", "at 5/s"]
        columns += ["states", "check"]
        rows = [{**r, "states": ", ".join(f"{k}={v}" for k, v in (r.get("states") or {}).items())} for r in b["rows"]]
        parts.append(_bench.table(rows, columns))
        if b["backend"] == "route53":
            parts.append("\nRequests by operation:\n")
            parts += [f"- {r['command']}: {json.dumps(r.get('requests by operation', {}))}" for r in b["rows"]]
            if "stand_in_answers" in b:
                parts.append(f"\nThe stand-in authoritative server answered {b['stand_in_answers']:,} DNS questions.")
        for r in b["rows"]:
            if r["command"] == "watch --once" and r.get("answers"):
                parts.append(f"\nwatch --once, answers by state: {json.dumps(r['answers'])}")
        if b.get("stopped"):
            parts.append(f"\n**Stopped:** {b['stopped']}.")
        for r in b["rows"]:
            if r.get("stderr tail") and r["exit"] not in (0, 1):
                parts.append(f"\n{r['command']} stderr: {r['stderr tail']}")
            if r.get("py-spy dump"):
                parts.append(f"\npy-spy of {r['command']} when it was stopped:\n\n```\n{r['py-spy dump'][:8000]}\n```")
            if r.get("profile"):
                parts.append(f"\ncProfile of {r['command']} (tottime):\n\n```\n{r['profile']}\n```")
    return "\n".join(parts)


def code_snapshot(treeish: str, into: Path) -> dict[str, Any]:
    """The code to measure: ``cutover`` and ``providers`` of a commit, unpacked into ``into``
    (put first on PYTHONPATH), so that the edits others make to the tree meanwhile do
    not change the code under measurement halfway through a run. ``worktree``: as is."""
    import io
    import tarfile

    root = _bench.HERE.parent

    def git(*argv: str) -> bytes:
        return subprocess.run(["git", *argv], cwd=root, capture_output=True, check=True).stdout

    dirty = git("status", "--porcelain", "--", "cutover", "providers").decode().splitlines()
    if treeish == "worktree":
        return {"code": "working tree", "commit": git("rev-parse", "HEAD").decode().strip(), "uncommitted": dirty}
    commit = git("rev-parse", f"{treeish}^{{commit}}").decode().strip()
    with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", commit, "cutover", "providers"))) as tar:
        tar.extractall(into)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(into), os.environ.get("PYTHONPATH"))))
    return {"code": f"git archive {commit}", "commit": commit, "subject": git("log", "-1", "--format=%s", commit).decode().strip(),
            "uncommitted_not_measured": dirty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 zones (2,000 record sets) on PowerDNS, 100 on Route 53")
    parser.add_argument("--zones", type=int, default=10000, help="PowerDNS zones (default 10,000)")
    parser.add_argument("--route53-zones", type=int, default=2000, help="Route 53 (moto) zones (default 2,000)")
    parser.add_argument("--only", choices=("powerdns", "route53"))
    parser.add_argument("--command-timeout", type=float, default=600.0,
                        help="seconds one command may take before it is stopped and its stacks dumped")
    parser.add_argument("--profile", action="store_true", help="run each command under cProfile (slower; top functions in the results)")
    parser.add_argument("--name", default=None, help="results/NAME.json and .md (default fleet, fleet_quick)")
    parser.add_argument("--code", default="HEAD",
                        help="the commit whose cutover/ and providers/ are measured (unpacked apart), or worktree")
    parser.add_argument("--untouched-every", type=int, default=UNTOUCHED_EVERY,
                        help="every Nth zone holds neither old address (default 10; 0: every zone moves)")
    parser.add_argument("--commands", default=",".join(SHORT),
                        help=f"which commands, in their fixed order (default all: {','.join(SHORT)})")
    args = parser.parse_args()
    globals()["UNTOUCHED_EVERY"] = args.untouched_every
    unknown = set(args.commands.split(",")) - set(SHORT)
    if unknown:
        parser.error(f"--commands: unknown {', '.join(sorted(unknown))} (known: {', '.join(SHORT)})")
    globals()["SELECTED"] = {SHORT[c] for c in args.commands.split(",")}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the servers and the command
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    if args.quick:
        args.zones, args.route53_zones = 200, 100
    name = args.name or ("fleet_quick" if args.quick else "fleet")
    snapshot = tempfile.TemporaryDirectory(prefix="cutover-fleet-code-")
    doc: dict[str, Any] = {"machine": _bench.machine(), "argv": sys.argv[1:], "backends": [],
                           "code": code_snapshot(args.code, Path(snapshot.name))}
    print(_bench.load_line(), file=sys.stderr)
    print(f"measuring {doc['code']['code']}", file=sys.stderr)
    failed = False
    for backend, run in (("powerdns", lambda: bench_powerdns(args.zones, args.command_timeout, args.profile)),
                         ("route53", lambda: bench_route53(args.route53_zones, args.command_timeout, args.profile))):
        if args.only and args.only != backend:
            continue
        started = time.time()
        result = run()
        result["load_after"] = os.getloadavg()
        result["minutes"] = round((time.time() - started) / 60, 1)
        doc["backends"].append(result)
        failed |= any(r["check"] != "ok" for r in result["rows"]) or bool(result.get("stopped")) or \
            any(v != "ok" for v in result["checks"].values())
    doc["machine"]["load_after"] = os.getloadavg()
    snapshot.cleanup()
    path = _bench.save(name, doc, render(doc))
    print(render(doc))
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)
    if failed:
        print("SOME CHECKS FAILED (see the check column): these figures measure failures", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
