"""Benchmark: fetch, diff and export for zones of 1,000 to 100,000 record sets.

Backends: (a) the sandbox provider (a ``ZoneStore`` zone file), (b) Route 53 on moto
server mode. The plan manages every record set of the zone (as ``cutover export``
writes it) and changes 1% of them. Measured separately, each in a fresh worker
process so that peak memory is the step's own:

- fetch: ``provider.records()`` (reading the zone, normalising every value);
- plan: ``cutover.plan.build`` (validating the plan data; the 1 MiB plan *file* limit
  is bypassed on purpose, and reported);
- diff: ``cutover.diff.compute`` alone (the target: under 1 s at 100,000), with its
  tracemalloc peak;
- export: ``cutover.export.skeleton`` + ``to_yaml`` (fetch included).

Compared: octodns (``YamlProvider`` source -> ``YamlProvider`` target) planning the same
change on the same data: the populate of each side and ``Zone.changes`` (its diff).

    python benchmarks/large_zone.py            # full figures
    python benchmarks/large_zone.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import _bench

ZONE = "bench.example."
CHANGED_EVERY = 100  # 1% of the record sets
WORKER_TIMEOUT = 3600


# --------------------------------------------------------------------------- the data


def record_data(count: int) -> list[tuple[str, str, int, list[str]]]:
    """``count`` record sets, a mix of the contract's types, one per name: (rel name, type, ttl, values)."""
    out = []
    for i in range(count):
        kind = i % 10
        name = f"r{i}"
        if kind <= 5:
            out.append((name, "A", 300, [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"]))
        elif kind == 6:
            out.append((name, "AAAA", 300, [f"2001:db8::{i >> 16:x}:{i & 0xffff:x}"]))
        elif kind == 7:
            out.append((name, "MX", 3600, [f"10 mx1.r{i}.{ZONE}", f"20 mx2.r{i}.{ZONE}"]))
        elif kind == 8:
            out.append((name, "TXT", 300, [f'"v=spf1 ip4:10.0.0.{i & 255} -all"']))
        else:
            out.append((name, "CNAME", 300, [f"r{i - 1}.{ZONE}"]))
    return out


def changed_value(name: str, rtype: str, values: list[str], i: int) -> list[str]:
    if rtype == "A":
        return [f"192.0.2.{i & 255}"]
    if rtype == "AAAA":
        return [f"2001:db8:ffff::{i >> 16:x}:{i & 0xffff:x}"]
    if rtype == "MX":
        return [f"10 mail.{ZONE}"]
    if rtype == "TXT":
        return ['"v=spf1 -all"']
    return [f"r{i - 3}.{ZONE}"]


def plan_data(count: int, provider: dict) -> dict:
    """What ``cutover export`` writes for this zone, with the ``to`` of 1% of the record sets edited."""
    records = []
    for i, (name, rtype, ttl, values) in enumerate(record_data(count)):
        to = changed_value(name, rtype, values, i) if i % CHANGED_EVERY == 0 else values
        records.append({"name": name, "type": rtype, "ttl": ttl, "from": values, "to": to})
    return {"version": 1, "zone": ZONE.rstrip("."), "provider": provider, "records": records,
            "safety": {"max_change_share": "100%"}}


def record_sets(count: int):  # noqa: ANN201
    from cutover.records import RecordSet

    return [RecordSet.build(f"{n}.{ZONE}", t, ttl, v) for n, t, ttl, v in record_data(count)]


# --------------------------------------------------------------------------- steps


def traced(fn):  # noqa: ANN001, ANN201
    """Run ``fn`` under tracemalloc; (result, wall, peak MiB). Only for steps cheap enough to trace."""
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, wall, peak


def steps(provider, provider_settings: dict, count: int, repeat: int) -> dict:  # noqa: ANN001
    from cutover import diff, export, plan
    from cutover.records import index

    out: dict = {"base_rss_mib": _bench.rss_mib()}
    rss0 = out["base_rss_mib"]
    fetch = _bench.measure(provider.records)
    live = fetch.result
    out["fetch"] = {"wall_s": fetch.wall, "cpu_s": fetch.cpu, "record_sets": len(live), "rss_growth_mib": _bench.rss_mib() - rss0}
    live_index = index(live)
    data = plan_data(count, provider_settings)
    built = _bench.measure(lambda: plan.build(data, Path("bench-plan.yaml"), {}))
    the_plan = built.result
    out["plan_build"] = {"wall_s": built.wall, "cpu_s": built.cpu, "records": len(the_plan.records)}
    out["plan_file_mib"] = len(export.to_yaml(data).encode()) / 2**20
    best = _bench.best_of(lambda: diff.compute(the_plan, live_index), repeat)
    result, traced_wall, peak = traced(lambda: diff.compute(the_plan, live_index))
    assert len(best.result.changes) == len(range(0, count, CHANGED_EVERY)), (len(best.result.changes), count)
    out["diff"] = {"wall_s": best.wall, "cpu_s": best.cpu, "changes": len(best.result.changes), "tracemalloc_peak_mib": peak,
                   "traced_wall_s": traced_wall}
    skeleton = _bench.measure(lambda: export.skeleton(provider, provider_settings.get("type", "x"), provider_settings))
    text = _bench.measure(lambda: export.to_yaml(skeleton.result))
    out["export"] = {"skeleton_wall_s": skeleton.wall, "to_yaml_wall_s": text.wall, "wall_s": skeleton.wall + text.wall,
                     "records": len(skeleton.result["records"]), "yaml_mib": len(text.result.encode()) / 2**20}
    out["peak_rss_mib"] = _bench.peak_rss_mib()
    return out


def write_zone_file(path: Path, count: int) -> None:
    """The zone as master-file text, written directly so that building it leaves no garbage behind."""
    lines = [f"$ORIGIN {ZONE}", "@ 300 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ 300 IN NS ns1", "ns1 300 IN A 127.0.0.1"]
    for name, rtype, ttl, values in record_data(count):
        lines.extend(f"{name} {ttl} IN {rtype} {v}" for v in values)
    path.write_text("\n".join(lines) + "\n")


def worker_sandbox(count: int, repeat: int) -> dict:
    from cutover.sandbox import ZoneStore
    from providers.sandbox import SandboxProvider

    with tempfile.TemporaryDirectory(prefix="bench-zone-") as tmp:
        t0 = time.perf_counter()
        write_zone_file(ZoneStore(tmp).path_of(ZONE), count)
        setup = time.perf_counter() - t0
        gc.collect()
        settings = {"type": "sandbox", "path": tmp}
        provider = SandboxProvider(ZONE, {"path": tmp})  # a fresh store: the first read parses the file
        out = steps(provider, settings, count, repeat)
        out["setup_s"] = setup
        out["zone_file_mib"] = sum(p.stat().st_size for p in Path(tmp).glob("*.zone")) / 2**20
    return out


def worker_route53(count: int, repeat: int) -> dict:
    """Needs AWS_ENDPOINT_URL etc. set to a moto server (the parent does that)."""
    import boto3
    from providers.route53 import Route53Provider
    from providers.route53_wire import change_groups, plan_batches
    from cutover.records import Change

    client = boto3.client("route53", region_name="us-east-1")
    zone_id = client.create_hosted_zone(Name=ZONE, CallerReference=f"bench-{time.time_ns()}")["HostedZone"]["Id"].rsplit("/", 1)[-1]
    t0 = time.perf_counter()
    batches = plan_batches(change_groups([Change(None, rs) for rs in record_sets(count)]))
    for batch in batches:
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": batch})
    setup = time.perf_counter() - t0
    settings = {"type": "route53", "hosted_zone_id": zone_id}
    provider = Route53Provider(ZONE, {"hosted_zone_id": zone_id})
    out = steps(provider, settings, count, repeat)
    out["setup_s"] = setup
    out["load_batches"] = len(batches)
    client.close()
    provider.close()
    return out


# --------------------------------------------------------------------------- octodns


def worker_octodns(count: int, repeat: int) -> dict:
    """octodns plans the same change: desired from one YamlProvider, existing from another."""
    import yaml
    from octodns.provider.yaml import YamlProvider
    from octodns.zone import Zone

    with tempfile.TemporaryDirectory(prefix="bench-octodns-") as tmp:
        src, dst = Path(tmp, "desired"), Path(tmp, "existing")
        src.mkdir()
        dst.mkdir()
        desired_doc, existing_doc = {}, {}
        for i, (name, rtype, ttl, values) in enumerate(record_data(count)):
            to = changed_value(name, rtype, values, i) if i % CHANGED_EVERY == 0 else values
            existing_doc[name] = _octodns_record(rtype, ttl, values)
            desired_doc[name] = _octodns_record(rtype, ttl, to)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        (src / f"{ZONE}yaml").write_text(yaml.dump(desired_doc, Dumper=dumper))
        (dst / f"{ZONE}yaml").write_text(yaml.dump(existing_doc, Dumper=dumper))
        source = YamlProvider("desired", str(src), supports_root_ns=False, enforce_order=False)
        target = YamlProvider("existing", str(dst), supports_root_ns=False, enforce_order=False)
        out: dict = {"base_rss_mib": _bench.rss_mib()}
        desired = Zone(ZONE, [])
        fetch = _bench.measure(lambda: source.populate(desired))
        out["fetch"] = {"wall_s": fetch.wall, "cpu_s": fetch.cpu, "record_sets": len(desired.records)}
        existing = Zone(ZONE, [])
        target.populate(existing)
        best = _bench.best_of(lambda: existing.changes(desired, target), repeat)
        _, traced_wall, peak = traced(lambda: existing.changes(desired, target))
        out["diff"] = {"wall_s": best.wall, "cpu_s": best.cpu, "changes": len(best.result), "tracemalloc_peak_mib": peak,
                       "traced_wall_s": traced_wall}
        whole = _bench.measure(lambda: target.plan(desired))
        out["plan"] = {"wall_s": whole.wall, "changes": len(whole.result.changes) if whole.result else 0}
        out["peak_rss_mib"] = _bench.peak_rss_mib()
    return out


def _octodns_record(rtype: str, ttl: int, values: list[str]) -> dict:
    if rtype == "MX":
        parsed = [{"preference": int(v.split()[0]), "exchange": v.split()[1]} for v in values]
        return {"type": "MX", "ttl": ttl, "values": parsed}
    if rtype == "TXT":
        return {"type": "TXT", "ttl": ttl, "values": [v.strip('"').replace(";", "\\;") for v in values]}
    if rtype == "CNAME":
        return {"type": "CNAME", "ttl": ttl, "value": values[0]}
    return {"type": rtype, "ttl": ttl, "values": values}


# --------------------------------------------------------------------------- orchestration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", default="large_zone", help="results/NAME.json and .md")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--route53-sizes", default="1000,10000,100000", help="moto sizes to try")
    parser.add_argument("--route53-budget", type=float, default=900.0,
                        help="seconds one moto size may take (load + fetch + diff + export) before it is abandoned")
    parser.add_argument("--octodns-sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5, help="diff repetitions (best is reported)")
    parser.add_argument("--worker", choices=["sandbox", "route53", "octodns"])
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    if args.worker:
        fn = {"sandbox": worker_sandbox, "route53": worker_route53, "octodns": worker_octodns}[args.worker]
        print(json.dumps(fn(args.size, args.repeat)))
        return
    if args.quick:
        args.sizes = args.route53_sizes = args.octodns_sizes = "200,1000"
        args.repeat = 2
    run(args)


def _sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def run(args: argparse.Namespace) -> None:
    doc: dict = {"machine": _bench.machine(), "settings": vars(args).copy(), "sandbox": [], "route53": [], "octodns": []}
    print(_bench.load_line(), file=sys.stderr)

    def worker(kind: str, size: int, timeout: float = WORKER_TIMEOUT) -> dict:
        argv = [str(Path(__file__)), "--worker", kind, "--size", str(size), "--repeat", str(args.repeat)]
        row = _bench.run_json(argv, timeout=timeout, env=dict(os.environ))
        row["size"] = size
        print(f"{kind} {size}: " + json.dumps({k: v for k, v in row.items() if k in ('fetch', 'diff')}), file=sys.stderr)
        return row

    for size in _sizes(args.sizes):
        doc["sandbox"].append(worker("sandbox", size))
    with _bench.moto_server():
        for size in _sizes(args.route53_sizes):
            try:
                doc["route53"].append(worker("route53", size, timeout=args.route53_budget))
            except subprocess.TimeoutExpired:
                doc["route53"].append({"size": size, "skipped": f"did not finish within {args.route53_budget:.0f} s "
                                       "(loading the zone into moto and listing it back)"})
                break  # larger sizes only take longer
            except Exception as exc:  # noqa: BLE001 - a moto limit is a figure, not a crash
                doc["route53"].append({"size": size, "skipped": f"failed: {str(exc)[-300:]}"})
    for size in _sizes(args.octodns_sizes):
        try:
            doc["octodns"].append(worker("octodns", size))
        except Exception as exc:  # noqa: BLE001
            doc["octodns"].append({"size": size, "skipped": f"failed: {str(exc)[-300:]}"})
    doc["machine"]["load_after"] = os.getloadavg()
    path = _bench.save(args.name, doc, render(doc))
    print(render(doc))
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)


def render(doc: dict) -> str:
    f = _bench.fmt
    out = [f"## large zones — load {doc['machine']['load']} before, {doc['machine'].get('load_after')} after", ""]
    rows = []
    for backend in ("sandbox", "route53"):
        for r in doc[backend]:
            if "skipped" in r:
                rows.append({"backend": backend, "record sets": r["size"], "fetch s": r["skipped"]})
                continue
            rows.append({
                "backend": backend, "record sets": r["size"], "setup s": f(r["setup_s"]),
                "fetch s": f(r["fetch"]["wall_s"]), "plan build s": f(r["plan_build"]["wall_s"]),
                "diff s": f(r["diff"]["wall_s"]), "diff < 1 s": "yes" if r["diff"]["wall_s"] < 1 else "NO",
                "diff peak MiB": f(r["diff"]["tracemalloc_peak_mib"]), "changes": r["diff"]["changes"],
                "export s": f(r["export"]["wall_s"]), "plan file MiB": f(r["plan_file_mib"]),
                "peak RSS MiB": f(r["peak_rss_mib"]),
                "peak - base MiB per 1k sets": f((r["peak_rss_mib"] - r["base_rss_mib"]) / (r["size"] / 1000)),
            })
    out.append(_bench.table(rows))
    if doc["octodns"]:
        out += ["", "### octodns YamlProvider -> YamlProvider, same data and change", ""]
        orows = []
        for r in doc["octodns"]:
            if "skipped" in r:
                orows.append({"record sets": r["size"], "populate s": r["skipped"]})
                continue
            orows.append({"record sets": r["size"], "populate (desired) s": f(r["fetch"]["wall_s"]),
                          "Zone.changes s": f(r["diff"]["wall_s"]), "diff peak MiB": f(r["diff"]["tracemalloc_peak_mib"]),
                          "changes": r["diff"]["changes"], "target.plan s": f(r["plan"]["wall_s"]), "peak RSS MiB": f(r["peak_rss_mib"]),
                          "peak - base MiB per 1k sets": f((r["peak_rss_mib"] - r["base_rss_mib"]) / (r["size"] / 1000))})
        out.append(_bench.table(orows))
    return "\n".join(out)


if __name__ == "__main__":
    main()
