"""Benchmark: one watch round (``cutover.observe.engine.query_round``) against 50 delayed, lossy resolvers.

The resolvers are ``fastdns`` fakes in a child process, each answering after its own
delay (spread evenly over 100-300 ms); every tenth one drops a share of the queries
in the "lossy" scenario. A round for N names is N x 50 queries. Every measurement runs
in a fresh worker process so its CPU time and peak memory are its own.

Compared in the same run, on the same names and resolvers:
  (a) a sequential loop of ``dns.query.udp`` (a sample, extrapolated and labelled so);
  (b) ``octodns-report`` at its defaults (it only speaks to port 53, so the fleet listens
      on 127.53.0.x:53 when this process may bind it, else (b) is skipped and says why).

    python benchmarks/watch_round.py            # full figures (several minutes)
    python benchmarks/watch_round.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

import _bench
import fastdns

ORIGIN = "bench.example."
OLD = "192.0.2.1"
TIMEOUT = 2.0  # the plan's default watch.timeout
RETRIES = 1  # what ``cutover watch`` uses
WORKER_TIMEOUT = 1800


def names(count: int) -> list[str]:
    return [f"host{i}.{ORIGIN}" for i in range(count)]


def value_of(i: int) -> str:
    return f"203.0.{(i >> 8) & 255}.{i & 255}"


def zone_records(count: int) -> dict[str, tuple[int, list[str]]]:
    return {name: (300, [value_of(i)]) for i, name in enumerate(names(count))}


# --------------------------------------------------------------------------- workers


def _targets(count: int):  # noqa: ANN202
    from cutover.observe.types import Target

    return [Target((name, "A"), (value_of(i),), (OLD,), 300) for i, name in enumerate(names(count))]


def _resolvers(endpoints: list[list]):  # noqa: ANN202
    from cutover.resolvers import Resolver

    return [Resolver(host, port, name=f"fake{i}") for i, (host, port) in enumerate(endpoints)]


def _round_kwargs(concurrency: int | None) -> dict:
    kw: dict = {"timeout": TIMEOUT, "retries": RETRIES}
    if concurrency:
        kw["concurrency"] = concurrency
    return kw


def worker_round(args: argparse.Namespace) -> dict:
    """One round, as ``cutover watch --once`` runs it: ``run_round``, which splits a big
    round over the cores (``--processes 1`` forces the single-process ``query_round``)."""
    from cutover.observe.engine import query_round, run_round

    fds = _bench.allow_open_files(65536)
    targets, resolvers = _targets(args.size), _resolvers(json.loads(args.endpoints))
    kw = _round_kwargs(args.concurrency)
    rss0 = _bench.rss_mib()
    if args.processes == 1 or args.concurrency:
        one_round = lambda: asyncio.run(query_round(targets, resolvers, **kw))  # noqa: E731
    else:
        one_round = lambda: run_round(targets, resolvers, processes=args.processes, **kw)  # noqa: E731
    if args.profile:
        return _profiled(one_round, f"watch_round_{args.size}")
    sample = _bench.measure(one_round)
    answers = sample.result
    states: dict[str, int] = {}
    for a in answers:
        states[a.state] = states.get(a.state, 0) + 1
    deadline_hits = sum(1 for a in answers if "deadline" in a.detail)
    return {
        "names": args.size,
        "queries": len(answers),
        "wall_s": sample.wall,
        "cpu_s": sample.cpu,
        "answers_per_s": len(answers) / sample.wall,
        "peak_rss_mib": _bench.peak_rss_mib(),
        "rss_before_mib": rss0,
        "states": states,
        "deadline_timeouts": deadline_hits,
        "open_files_limit": fds,
        "concurrency": kw.get("concurrency", "default"),
        "processes": args.processes or "auto",
    }


def _profiled(fn, name: str) -> dict:
    """Run ``fn`` under pyinstrument and save its text report in results/."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    fn()
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    path = _bench.save(f"profile_{name}", {"profile": name}, "```\n" + text + "\n```")
    return {"profile": str(path)}


def worker_rounds(args: argparse.Namespace) -> dict:
    """Many rounds in one process, keeping only the last one's answers (as a watch loop does)."""
    from cutover.observe.engine import query_round
    from cutover.observe.types import Round, summarise
    from datetime import datetime, timezone

    _bench.allow_open_files(65536)
    targets, resolvers = _targets(args.size), _resolvers(json.loads(args.endpoints))
    kw = _round_kwargs(args.concurrency)
    if args.trace:
        tracemalloc.start()
    per_round = []
    last = None
    for number in range(1, args.rounds + 1):
        sample = _bench.measure(lambda: asyncio.run(query_round(targets, resolvers, **kw)))
        last = Round(number, datetime.now(timezone.utc), tuple(sample.result))
        summarise(last, targets)
        del sample.result
        gc.collect()
        row = {"round": number, "wall_s": sample.wall, "cpu_s": sample.cpu, "rss_mib": _bench.rss_mib(), "peak_rss_mib": _bench.peak_rss_mib()}
        if args.trace:
            current, peak = tracemalloc.get_traced_memory()
            row["traced_mib"] = current / 2**20
            row["traced_peak_mib"] = peak / 2**20
            tracemalloc.reset_peak()
        per_round.append(row)
    return {"names": args.size, "rounds": per_round, "traced": bool(args.trace)}


def worker_sequential(args: argparse.Namespace) -> dict:
    """The naive baseline: one ``dns.query.udp`` after another, one retry on timeout."""
    import dns.exception
    import dns.message
    import dns.query

    endpoints = json.loads(args.endpoints)
    todo = [(name, host, port) for host, port in endpoints for name in names(args.size)]

    def run() -> int:
        ok = 0
        for name, host, port in todo:
            query = dns.message.make_query(name, "A", use_edns=0, payload=1232)
            for _ in range(RETRIES + 1):
                try:
                    dns.query.udp(query, host, timeout=TIMEOUT, port=port)
                    ok += 1
                    break
                except dns.exception.Timeout:
                    continue
        return ok

    sample = _bench.measure(run)
    return {"names": args.size, "queries": len(todo), "answered": sample.result, "wall_s": sample.wall, "cpu_s": sample.cpu}


# --------------------------------------------------------------------------- octodns-report


def octodns_report(size: int, endpoints: list[list], workdir: Path) -> dict:
    """``octodns-report`` at its defaults over the same names and resolvers (port 53 only)."""
    data = {name[: -len(ORIGIN) - 1]: {"type": "A", "ttl": 300, "value": value_of(i)} for i, name in enumerate(names(size))}
    servers = [host for host, _ in endpoints]
    found = _bench.octodns_report(data, ORIGIN, servers, workdir, timeout=WORKER_TIMEOUT)
    if "skipped" in found:
        return {"names": size, **found}
    return {"names": size, "queries": size * len(servers), "wall_s": found["wall_s"], "cpu_s": found["cpu_s"],
            "answers_per_s": size * len(servers) / found["wall_s"], "rows": found["rows"], "timeouts": found["timeouts"]}


# --------------------------------------------------------------------------- orchestration


def _worker(kind: str, size: int, endpoints: list, *extra: str) -> dict:
    argv = [str(Path(__file__)), "--worker", kind, "--size", str(size), "--endpoints", json.dumps(endpoints), *extra]
    return _bench.run_json(argv, timeout=WORKER_TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few names, few resolvers")
    parser.add_argument("--sizes", default="10,100,1000,10000", help="names per round (comma-separated)")
    parser.add_argument("--resolvers", type=int, default=50)
    parser.add_argument("--concurrency", default="", help="query_round concurrency values to compare (default: its own default)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds for the memory-over-rounds run")
    parser.add_argument("--rounds-size", type=int, default=1000)
    parser.add_argument("--sequential-size", type=int, default=2, help="names in the sequential sample")
    parser.add_argument("--octodns-sizes", default="10,100")
    parser.add_argument("--drop", type=float, default=0.05, help="share dropped by every tenth resolver (lossy scenario)")
    parser.add_argument("--no-lossy", action="store_true")
    parser.add_argument("--parts", default="rounds,memory,sequential,octodns", help="which measurements to run")
    parser.add_argument("--name", default="watch_round", help="results/NAME.json and .md")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["round", "rounds", "sequential"])
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--endpoints", default="[]")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--profile", action="store_true", help="with --worker round: pyinstrument report in results/")
    parser.add_argument("--processes", type=int, default=None, help="run_round processes (default: its own choice; 1 = one process)")
    args = parser.parse_args()
    if args.worker:
        args.concurrency = int(args.concurrency) if args.concurrency else None
        result = {"round": worker_round, "rounds": worker_rounds, "sequential": worker_sequential}[args.worker](args)
        print(json.dumps(result))
        return
    if args.quick:
        args.sizes, args.resolvers, args.rounds, args.rounds_size = "10,100", 10, 3, 50
        args.sequential_size, args.octodns_sizes = 1, "5"
    run(args)


def run(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    concurrencies = [c for c in args.concurrency.split(",") if c] or [""]
    biggest = max(sizes + [args.rounds_size, args.sequential_size] + [int(s) for s in args.octodns_sizes.split(",") if s])
    document: dict = {"machine": _bench.machine(), "settings": vars(args).copy(), "rounds": [], "sequential": None, "octodns": [], "memory": None}
    print(_bench.load_line(), file=sys.stderr)
    with fastdns.fleet(args.resolvers, zone_records(biggest), origin=ORIGIN, drop=0.0) as fleet:
        endpoints = [list(e) for e in fleet.endpoints]
        slowest = max(fleet.delays)
        document["fleet"] = {"resolvers": len(endpoints), "delays": [min(fleet.delays), slowest], "port53": fleet.port53, "lossy": sum(fleet.lossy)}
        parts = set(args.parts.split(","))
        scenarios = [("clean", 0.0)] + ([] if args.no_lossy else [("lossy", args.drop)])
        scenarios = scenarios if "rounds" in parts else []
        for scenario, drop in scenarios:
            fleet.set_drop(drop)
            for concurrency in concurrencies:
                for size in sizes:
                    sent0, fleet_cpu0 = sum(fleet.queries()), fleet.cpu_seconds()
                    extra = ["--concurrency", concurrency] if concurrency else []
                    extra += ["--processes", str(args.processes)] if args.processes else []
                    row = _worker("round", size, endpoints, *extra)
                    row["packets"] = sum(fleet.queries()) - sent0
                    row["fleet_cpu_s"] = fleet.cpu_seconds() - fleet_cpu0
                    row["scenario"] = scenario
                    row["bound_s"] = 1.5 * slowest + row["cpu_s"]
                    row["within_bound"] = row["wall_s"] <= row["bound_s"]
                    document["rounds"].append(row)
                    print(f"{scenario} c={row['concurrency']} {size} names: {row['wall_s']:.2f}s {row['answers_per_s']:.0f}/s {row['states']}", file=sys.stderr)
        fleet.set_drop(0.0)
        if "memory" in parts:
            document["memory"] = _worker("rounds", args.rounds_size, endpoints, "--rounds", str(args.rounds))
            print(f"memory over {args.rounds} rounds done", file=sys.stderr)
        if "sequential" in parts:
            document["sequential"] = _worker("sequential", args.sequential_size, endpoints)
            print("sequential done", file=sys.stderr)
        if "octodns" not in parts:
            pass
        elif fleet.port53:
            with tempfile.TemporaryDirectory(prefix="bench-octodns-") as tmp:
                for size in [int(s) for s in args.octodns_sizes.split(",") if s]:
                    document["octodns"].append(octodns_report(size, endpoints, Path(tmp)))
                    print(f"octodns-report {size} done", file=sys.stderr)
        else:
            document["octodns"].append({"skipped": "octodns-report queries port 53 only (dns.asyncresolver with nameservers=[ip]); "
                                        "this process cannot bind 127.53.0.x:53 (needs root and a free port 53)"})
    document["machine"]["load_after"] = os.getloadavg()
    path = _bench.save(args.name, document, render(document))
    print(render(document))
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)


def render(doc: dict) -> str:
    f = _bench.fmt
    out = [f"## watch round — {doc['fleet']['resolvers']} resolvers, delays {doc['fleet']['delays'][0]}-{doc['fleet']['delays'][1]} s",
           f"load: {doc['machine']['load']} before, {doc['machine'].get('load_after')} after", ""]
    rows = []
    for r in doc["rounds"]:
        rows.append({
            "scenario": r["scenario"], "concurrency": r["concurrency"], "names": r["names"], "queries": r["queries"],
            "packets sent": r["packets"], "wall s": f(r["wall_s"]), "client cpu s": f(r["cpu_s"]),
            "cpu ms/query": f(1000 * r["cpu_s"] / r["queries"]), "fleet cpu s": f(r.get("fleet_cpu_s", float("nan"))), "answers/s": round(r["answers_per_s"]),
            "peak RSS MiB": f(r["peak_rss_mib"]), "bound s": f(r["bound_s"]), "in bound": "yes" if r["within_bound"] else "NO",
            "states": " ".join(f"{k}={v}" for k, v in sorted(r["states"].items())),
        })
    if rows:
        out.append(_bench.table(rows))
    seq = doc["sequential"]
    if seq:
        per = seq["wall_s"] / seq["queries"]
        out += ["", f"### sequential dns.query.udp: measured {seq['queries']} queries ({seq['names']} names) in {f(seq['wall_s'])} s "
                f"({f(per * 1000)} ms each, cpu {f(seq['cpu_s'])} s); EXTRAPOLATED:", ""]
        resolvers = doc["fleet"]["resolvers"]
        out.append(_bench.table([{"names": n, "queries": n * resolvers, "extrapolated wall s": f(per * n * resolvers)}
                                 for n in sorted({r["names"] for r in doc["rounds"]})]))
    if doc["octodns"]:
        out += ["", "### octodns-report at its defaults (concurrency 4, timeout 1 s)", ""]
        columns = ["names", "queries", "wall_s", "cpu_s", "answers_per_s", "rows", "timeouts", "skipped"]
        out.append(_bench.table([{k: (f(v) if isinstance(v, float) else v) for k, v in r.items()} for r in doc["octodns"]], columns))
    out += _bench.memory_lines(doc["memory"], "query_round")
    return "\n".join(out)


if __name__ == "__main__":
    main()
