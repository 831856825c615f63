"""Benchmark: the query engine against a local BIND, beside dnsperf and octodns-report, same run.

One ``named`` (Debian ``bind9``, one worker thread, as the tests run it) serves a zone
``bench.example.`` of N names ``hostI`` type A, on a loopback address of its own on
port 53 when this process may bind it (root: ``octodns-report`` can only ask port 53),
else on 127.0.0.1 and a free port (octodns-report is then skipped, with that reason).
Its UDP buffers are 4 MiB (``udp-receive-buffer``), so that no client's burst is
dropped by the server: every client meets the same server. Then, in this order:

  (a) ``dnsperf`` (Debian ``dnsperf``) over the same names, EDNS on, at its default of 100
      queries outstanding and at 500;
  (b) cutover's engine asking the same names of the same server, each measurement in a
      fresh worker process, two rounds each (the first pays for starting helper
      processes): ``query_pairs`` and ``run_round`` with 1 and 2 processes at the default
      128 queries in flight per server, ``query_pairs`` at 512, and ``query_round`` (the
      asyncio driver ``cutover watch`` uses below ``PARALLEL_FROM``); then two ablations:
      64 shared sockets instead of 4, and the cyclic collector left running;
  (c) the engine as it was before (``cutover/observe/engine.py`` at commit ``BEFORE``,
      loaded from git), on fewer names;
  (d) ``octodns-report`` at its defaults and with 100 queries at once, on fewer names;
  (e) memory over rounds: R rounds of M names in one process, RSS after each.

Around each measurement: the server's CPU time and the system's UDP receive-buffer
errors (``/proc/net/snmp`` RcvbufErrors: dropped datagrams, any process's).

    benchmarks/.venv/bin/python benchmarks/engine.py            # ~5 minutes
    benchmarks/.venv/bin/python benchmarks/engine.py --quick    # ~1 minute
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import _bench

ORIGIN = "bench.example."
OLD = "192.0.2.1"
TIMEOUT = 2.0
RETRIES = 1
#: The engine before this benchmark's changes (the commit the old figures come from).
BEFORE = "e58280b"
#: Where named listens when it may take port 53: an unusual corner of 127/8.
PORT53_ADDRESS = "127.53.200.1"
WORKER_TIMEOUT = 1800


def value_of(i: int) -> str:
    return f"203.0.{(i >> 8) & 255}.{i & 255}"


# --------------------------------------------------------------------------- the server


class Named:
    """A private ``named -g -n 1`` serving the benchmark zone."""

    def __init__(self, directory: Path, names: int, address: str, port: int) -> None:
        self.directory, self.address, self.port = directory, address, port
        zone = [f"$ORIGIN {ORIGIN}", "$TTL 300", "@ IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ IN NS ns1",
                "ns1 IN A 127.0.0.1"]
        zone += [f"host{i} IN A {value_of(i)}" for i in range(names)]
        (directory / "bench.zone").write_text("\n".join(zone) + "\n")
        (directory / "named.conf").write_text(f"""\
controls {{ }};
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
    udp-receive-buffer 4194304;
    udp-send-buffer 4194304;
}};
zone "{ORIGIN}" {{ type primary; file "bench.zone"; }};
""")
        named = shutil.which("named") or "/usr/sbin/named"
        self.log = open(directory / "named.log", "wb")
        self.process = subprocess.Popen([named, "-g", "-n", "1", "-c", str(directory / "named.conf")],
                                        stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        import dns.message
        import dns.query

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited:\n{(self.directory / 'named.log').read_text()[-2000:]}")
            try:
                reply = dns.query.udp(dns.message.make_query(ORIGIN, "SOA"), self.address, port=self.port, timeout=0.5)
                if reply.answer:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        raise RuntimeError("named did not start")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextlib.contextmanager
def server(names: int, want53: bool) -> Iterator[Named]:
    """named on PORT53_ADDRESS:53 (the address put on ``lo`` for it, and taken off after),
    or on 127.0.0.1 and a free port."""
    alias = False
    address, port = "127.0.0.1", _free_port()
    if want53 and os.geteuid() == 0 and _port53_free(PORT53_ADDRESS):
        shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
        if PORT53_ADDRESS not in shown.split():
            alias = subprocess.run(["ip", "addr", "add", f"{PORT53_ADDRESS}/32", "dev", "lo"], capture_output=True).returncode == 0
        address, port = PORT53_ADDRESS, 53
    with tempfile.TemporaryDirectory(prefix="bench-named-") as tmp:
        named = Named(Path(tmp), names, address, port)
        try:
            yield named
        finally:
            named.stop()
            if alias:
                subprocess.run(["ip", "addr", "del", f"{PORT53_ADDRESS}/32", "dev", "lo"], capture_output=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port53_free(address: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, 53))
            except OSError:
                return False
    return True


def rcvbuf_errors() -> int:
    """Datagrams dropped system-wide because a socket's receive buffer was full."""
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    return int(dict(zip(lines[0][1:], lines[1][1:]))["RcvbufErrors"])


# --------------------------------------------------------------------------- workers (fresh processes)


def _targets(count: int) -> list:
    from cutover.observe.types import Target

    return [Target((f"host{i}.{ORIGIN}", "A"), (value_of(i),), (OLD,), 300) for i in range(count)]


def _summary(answers: list, wall: float, cpu: float) -> dict:
    states: dict[str, int] = {}
    for a in answers:
        states[a.state] = states.get(a.state, 0) + 1
    return {"queries": len(answers), "wall_s": wall, "cpu_s": cpu, "answers_per_s": len(answers) / wall, "states": states,
            "retried": sum(1 for a in answers if a.elapsed is not None and a.elapsed >= TIMEOUT)}


def worker_engine(args: argparse.Namespace) -> dict:
    """Two rounds of one API (the first starts any helper processes)."""
    import asyncio

    from cutover.observe import engine, flight
    from cutover.resolvers import Resolver

    if args.sockets:  # what the shared sockets' number costs (ablation)
        flight.MIN_SOCKETS = flight.MAX_SOCKETS = args.sockets
    if args.keep_gc:  # what the collector's pause saves (ablation)
        engine._collector_paused = contextlib.nullcontext  # type: ignore[assignment]
    resolver = Resolver(args.address, args.port, name="bind", group="authoritative")
    targets = _targets(args.size)
    pairs = [(t, resolver) for t in targets]
    runs = []
    for _ in range(2):
        if args.api == "pairs":
            call = lambda: engine.query_pairs(pairs, timeout=TIMEOUT, retries=RETRIES, processes=args.processes,  # noqa: E731
                                              per_server=args.per_server)
        elif args.api == "round":
            call = lambda: engine.run_round(targets, [resolver], timeout=TIMEOUT, retries=RETRIES,  # noqa: E731
                                            processes=args.processes)
        else:
            call = lambda: asyncio.run(engine.query_round(targets, [resolver], timeout=TIMEOUT, retries=RETRIES))  # noqa: E731
        sample = _bench.measure(call)
        runs.append(_summary(sample.result, sample.wall, sample.cpu))
        del sample
    return {"runs": runs, "peak_rss_mib": _bench.peak_rss_mib()}


def worker_before(args: argparse.Namespace) -> dict:
    """The engine at commit BEFORE, loaded from git beside the current one."""
    import asyncio

    from cutover.resolvers import Resolver

    source = subprocess.run(["git", "show", f"{BEFORE}:cutover/observe/engine.py"], capture_output=True, text=True,
                            cwd=_bench.HERE.parent)
    if source.returncode != 0:
        return {"skipped": f"git show {BEFORE}:cutover/observe/engine.py failed: {source.stderr.strip()}"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "engine_before.py"
        path.write_text(source.stdout)
        spec = importlib.util.spec_from_file_location("engine_before", path)
        assert spec is not None and spec.loader is not None
        before = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(before)
    _bench.allow_open_files(65536)  # the old engine holds a socket per query in flight
    resolver = Resolver(args.address, args.port, name="bind", group="authoritative")
    targets = _targets(args.size)
    sample = _bench.measure(lambda: asyncio.run(before.query_round(targets, [resolver], timeout=TIMEOUT, retries=RETRIES)))
    return {"runs": [_summary(sample.result, sample.wall, sample.cpu)], "peak_rss_mib": _bench.peak_rss_mib()}


def worker_memory(args: argparse.Namespace) -> dict:
    """Rounds in one process, keeping only the last one's answers (as a watch loop does)."""
    import gc

    from cutover.observe.engine import run_round
    from cutover.resolvers import Resolver

    resolver = Resolver(args.address, args.port, name="bind", group="authoritative")
    targets = _targets(args.size)
    rows = []
    last = None
    for number in range(1, args.rounds + 1):
        sample = _bench.measure(lambda: run_round(targets, [resolver], timeout=TIMEOUT, retries=RETRIES, processes=1))
        last = sample.result
        del sample.result
        gc.collect()
        rows.append({"round": number, "wall_s": sample.wall, "cpu_s": sample.cpu, "answers_per_s": len(last) / sample.wall,
                     "rss_mib": _bench.rss_mib(), "peak_rss_mib": _bench.peak_rss_mib()})
    return {"names": args.size, "rounds": rows}


# --------------------------------------------------------------------------- dnsperf and octodns-report


def dnsperf(named: Named, names: int, seconds: float, outstanding: int, workdir: Path) -> dict:
    exe = shutil.which("dnsperf")
    if not exe:
        return {"skipped": "dnsperf is not installed (Debian package dnsperf)"}
    data = workdir / f"queries{names}.txt"
    if not data.exists():
        data.write_text("".join(f"host{i}.{ORIGIN} A\n" for i in range(names)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([exe, "-s", named.address, "-p", str(named.port), "-d", str(data), "-l", str(seconds), "-e",
                           "-q", str(outstanding)], capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = proc.stdout + proc.stderr

    def number(label: str) -> float:
        found = re.search(rf"{label}:\s+([\d.]+)", text)
        return float(found.group(1)) if found else float("nan")

    return {"outstanding": outstanding, "answers_per_s": number("Queries per second"), "completed": int(number("Queries completed")),
            "lost": int(number("Queries lost")), "wall_s": number("Run time \\(s\\)"),
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def octodns_report(named: Named, names: int, concurrency: int | None, workdir: Path) -> dict:
    """``octodns-report`` over the same server: it asks port 53 of the addresses it is given."""
    if named.port != 53:
        return {"skipped": "octodns-report asks port 53 only; this process could not bind it (needs root and a free port 53)"}
    data = {f"host{i}": {"type": "A", "ttl": 300, "value": value_of(i)} for i in range(names)}
    found = _bench.octodns_report(data, ORIGIN, [named.address], workdir, concurrency, WORKER_TIMEOUT)
    if "skipped" in found:
        return found
    return {"concurrency": concurrency or "default (4)", "queries": names, "rows": found["rows"], "wall_s": found["wall_s"],
            "answers_per_s": names / found["wall_s"], "cpu_s": found["cpu_s"], "timeouts": found["timeouts"]}


# --------------------------------------------------------------------------- orchestration


def _worker(kind: str, named: Named, size: int, *extra: str) -> dict:
    argv = [str(Path(__file__)), "--worker", kind, "--size", str(size), "--address", named.address, "--port", str(named.port), *extra]
    return _bench.run_json(argv, timeout=WORKER_TIMEOUT)


def _around(named: Named, fn: Any, *args: Any) -> dict:
    """``fn(*args)`` with the server's CPU time and the system's dropped datagrams around it."""
    cpu0, drops0 = named.cpu_seconds(), rcvbuf_errors()
    result = fn(*args)
    result["server_cpu_s"] = named.cpu_seconds() - cpu0
    result["dropped"] = rcvbuf_errors() - drops0
    return result


ENGINE_RUNS = [  # (label, api, processes, per-server, extra worker options)
    ("query_pairs, 1 process", "pairs", 1, 128, ()),
    ("query_pairs, 2 processes", "pairs", 2, 128, ()),
    ("run_round, 1 process", "round", 1, 128, ()),
    ("run_round, 2 processes", "round", 2, 128, ()),
    ("query_pairs, 1 process, 512 per server", "pairs", 1, 512, ()),
    ("query_pairs, 2 processes, 512 per server", "pairs", 2, 512, ()),
    ("query_round (asyncio), 1 process", "async", 1, 128, ()),
    ("ablation: query_pairs, 1 process, 64 sockets", "pairs", 1, 128, ("--sockets", "64")),
    ("ablation: query_pairs, 1 process, collector not paused", "pairs", 1, 128, ("--keep-gc",)),
]


def run(args: argparse.Namespace) -> None:
    document: dict = {"machine": _bench.machine(), "settings": vars(args).copy(), "dnsperf": [], "engine": [], "before": None,
                      "octodns": [], "memory": None}
    print(_bench.load_line(), file=sys.stderr)
    with server(max(args.names, args.round_names), not args.no_port53) as named, \
            tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        workdir = Path(tmp)
        document["server"] = {"address": named.address, "port": named.port, "names": max(args.names, args.round_names)}
        for outstanding in (100, 500):
            row = _around(named, dnsperf, named, args.names, args.dnsperf_seconds, outstanding, workdir)
            document["dnsperf"].append(row)
            print(f"dnsperf -q {outstanding}: {row.get('answers_per_s', 0):.0f}/s", file=sys.stderr)
        for label, api, processes, per_server, extra in ENGINE_RUNS:
            row = _around(named, _worker, "engine", named, args.names, "--api", api, "--processes", str(processes),
                          "--per-server", str(per_server), *extra)
            row.update(label=label, names=args.names)
            document["engine"].append(row)
            print(f"{label}: " + ", ".join(f"{r['answers_per_s']:.0f}/s" for r in row["runs"]), file=sys.stderr)
        if args.before_names:
            document["before"] = _around(named, _worker, "before", named, args.before_names)
            document["before"]["names"] = args.before_names
            print("engine before: done", file=sys.stderr)
        for concurrency in (None, 100):
            if args.octodns_names:
                document["octodns"].append(_around(named, octodns_report, named, args.octodns_names, concurrency, workdir))
                print(f"octodns-report {concurrency or 'default'}: done", file=sys.stderr)
        if args.rounds:
            document["memory"] = _worker("memory", named, args.round_names, "--rounds", str(args.rounds))
            print("memory over rounds: done", file=sys.stderr)
    document["machine"]["load_after"] = os.getloadavg()
    document["machine"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    markdown = render(document)
    path = _bench.save(args.name, document, markdown)
    print(markdown)
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)


def render(doc: dict) -> str:
    f = _bench.fmt
    m = doc["machine"]
    out = [f"## The engine against one local BIND ({doc['server']['address']}:{doc['server']['port']}, "
           f"{doc['server']['names']:,} names)",
           f"started {m['when']}, load {tuple(round(x, 2) for x in m['load'])}; finished {m.get('finished')}, "
           f"load {tuple(round(x, 2) for x in m.get('load_after', ()))}", ""]
    rows = []
    best = max((r["answers_per_s"] for r in doc["dnsperf"] if "answers_per_s" in r), default=float("nan"))
    for r in doc["dnsperf"]:
        if "skipped" in r:
            rows.append({"client": "dnsperf", "note": r["skipped"]})
            continue
        rows.append({"client": f"dnsperf -q {r['outstanding']}", "queries": r["completed"], "wall s": f(r["wall_s"]),
                     "answers/s": round(r["answers_per_s"]), "of dnsperf": "", "client CPU s": f(r["cpu_s"]),
                     "server CPU s": f(r["server_cpu_s"]), "dropped": r["dropped"], "note": f"lost {r['lost']}"})
    for r in doc["engine"]:
        for n, run in enumerate(r["runs"], 1):
            rows.append({"client": f"cutover {r['label']}, round {n}", "queries": run["queries"], "wall s": f(run["wall_s"]),
                         "answers/s": round(run["answers_per_s"]), "of dnsperf": f"{run['answers_per_s'] / best:.0%}",
                         "client CPU s": f(run["cpu_s"]), "server CPU s": f(r["server_cpu_s"]) if n == 1 else "",
                         "dropped": r["dropped"] if n == 1 else "",
                         "note": " ".join(f"{k}={v}" for k, v in sorted(run["states"].items())) + f", retried {run['retried']}"})
    before = doc["before"]
    if before and "skipped" not in before:
        run = before["runs"][0]
        rows.append({"client": f"cutover before ({BEFORE}), query_round", "queries": run["queries"], "wall s": f(run["wall_s"]),
                     "answers/s": round(run["answers_per_s"]), "of dnsperf": f"{run['answers_per_s'] / best:.1%}",
                     "client CPU s": f(run["cpu_s"]), "server CPU s": f(before["server_cpu_s"]), "dropped": before["dropped"],
                     "note": " ".join(f"{k}={v}" for k, v in sorted(run["states"].items()))})
    elif before:
        rows.append({"client": f"cutover before ({BEFORE})", "note": before["skipped"]})
    for r in doc["octodns"]:
        if "skipped" in r:
            rows.append({"client": "octodns-report", "note": r["skipped"]})
            continue
        rows.append({"client": f"octodns-report, concurrency {r['concurrency']}", "queries": r["queries"], "wall s": f(r["wall_s"]),
                     "answers/s": round(r["answers_per_s"]), "of dnsperf": f"{r['answers_per_s'] / best:.2%}",
                     "client CPU s": f(r["cpu_s"]), "server CPU s": f(r["server_cpu_s"]), "dropped": r["dropped"],
                     "note": f"{r['rows']} rows, {r['timeouts']} timeouts"})
    out.append(_bench.table(rows, ["client", "queries", "wall s", "answers/s", "of dnsperf", "client CPU s", "server CPU s",
                                   "dropped", "note"]))
    out.append("\n\"of dnsperf\": against the better dnsperf figure; client CPU of a 2-process run is this process's only.")
    out += _bench.memory_lines(doc["memory"], "run_round, 1 process")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer names, shorter runs")
    parser.add_argument("--names", type=int, default=200_000, help="names the engine and dnsperf ask")
    parser.add_argument("--dnsperf-seconds", type=float, default=10.0)
    parser.add_argument("--before-names", type=int, default=20_000, help="names for the engine before (0: skip)")
    parser.add_argument("--octodns-names", type=int, default=2_000, help="names for octodns-report (0: skip)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds for the memory run (0: skip)")
    parser.add_argument("--round-names", type=int, default=50_000)
    parser.add_argument("--no-port53", action="store_true", help="serve on 127.0.0.1 and a free port (skips octodns-report)")
    parser.add_argument("--name", default="engine", help="results/NAME.json and .md")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["engine", "before", "memory"])
    parser.add_argument("--api", choices=["pairs", "round", "async"], default="pairs")
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--per-server", type=int, default=128)
    parser.add_argument("--sockets", type=int, default=0, help="worker: this many shared sockets (ablation)")
    parser.add_argument("--keep-gc", action="store_true", help="worker: leave the cyclic collector running (ablation)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    args = parser.parse_args()
    if args.worker:
        result = {"engine": worker_engine, "before": worker_before, "memory": worker_memory}[args.worker](args)
        print(json.dumps(result))
        return
    if args.quick:
        args.names, args.dnsperf_seconds, args.before_names, args.octodns_names = 20_000, 2.0, 2_000, 200
        args.rounds, args.round_names = 3, 5_000
    run(args)


if __name__ == "__main__":
    main()
