"""Benchmark: Route 53 API requests for applying 10, 1,000 and 10,000 changes (moto server mode).

Counted with botocore's event hooks on the provider's own client: ``before-call`` once
per API operation as the code asks for it, ``before-send`` once per HTTP request
(retries included). The phases are those of ``cutover apply``: the read behind the
diff (``records()``), ``apply()`` (which re-reads the zone to catch drift, then sends
the change batches) and ``wait()`` (GetChange until INSYNC).

The minimum shown beside each count is what Route 53's documented limits allow:
ListResourceRecordSets returns at most 300 record sets a page; one
ChangeResourceRecordSets carries at most 1,000 ResourceRecord elements and 32,000
characters of values (a replacement counts the old and the new values); a batch
needs at least one GetChange to learn it is INSYNC.

    python benchmarks/api_calls.py            # full figures
    python benchmarks/api_calls.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter

import _bench

ZONE = "bench.example."
PAGE = 300  # ListResourceRecordSets: at most 300 record sets per page
MAX_RECORDS = 1000  # per ChangeResourceRecordSets request
MAX_CHARS = 32000  # characters of values per request


def live_sets(count: int):  # noqa: ANN201
    from cutover.records import RecordSet

    return [RecordSet.build(f"h{i}.{ZONE}", "A", 300, [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"]) for i in range(count)]


def new_set(rs, i: int):  # noqa: ANN001, ANN201
    from cutover.records import RecordSet

    return RecordSet(rs.name, rs.type, rs.ttl, (f"192.0.{(i >> 8) & 255}.{i & 255}",))


class Calls:
    """Counts API operations and HTTP requests on one botocore client, per phase."""

    def __init__(self, client) -> None:  # noqa: ANN001
        self.phase = "setup"
        self.calls: Counter[tuple[str, str]] = Counter()
        self.sends: Counter[str] = Counter()
        client.meta.events.register("before-call.route53", self._call)
        client.meta.events.register("before-send.route53", self._send)

    def _call(self, model, **_) -> None:  # noqa: ANN001, ANN003
        self.calls[(self.phase, model.name)] += 1

    def _send(self, **_) -> None:  # noqa: ANN003
        self.sends[self.phase] += 1

    def in_phase(self, phase: str) -> dict[str, int]:
        return {op: n for (p, op), n in sorted(self.calls.items()) if p == phase}


def minimum(zone_sets: int, changes) -> dict[str, int]:  # noqa: ANN001
    """The fewest requests Route 53's limits allow for one read and one apply of ``changes``."""
    records = chars = 0
    for change in changes:
        for rs in (change.before, change.after):
            if rs is not None:
                records += len(rs.values)
                chars += sum(len(v) for v in rs.values)
    batches = max(math.ceil(records / MAX_RECORDS), math.ceil(chars / MAX_CHARS), 1 if changes else 0)
    pages = math.ceil(zone_sets / PAGE)
    return {"list_pages_per_read": pages, "change_batches": batches, "get_change": batches}


def scenario(zone_size: int, change_count: int) -> dict:
    import boto3
    from cutover.records import Change, index
    from providers.route53 import Route53Provider
    from providers.route53_wire import change_groups, plan_batches

    setup = boto3.client("route53", region_name="us-east-1")
    zone_id = setup.create_hosted_zone(Name=ZONE, CallerReference=f"bench-{time.time_ns()}")["HostedZone"]["Id"].rsplit("/", 1)[-1]
    existing = live_sets(zone_size)
    for batch in plan_batches(change_groups([Change(None, rs) for rs in existing])):
        setup.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": batch})
    setup.close()

    provider = Route53Provider(ZONE, {"hosted_zone_id": zone_id})
    calls = Calls(provider.client)
    timings: dict[str, float] = {}

    calls.phase = "read"
    t0 = time.perf_counter()
    live = index(provider.records())
    timings["read"] = time.perf_counter() - t0
    changes = [Change(live[rs.key], new_set(rs, i)) for i, rs in enumerate(existing[:change_count])]

    calls.phase = "apply"
    t0 = time.perf_counter()
    receipt = provider.apply(changes)
    timings["apply"] = time.perf_counter() - t0

    calls.phase = "wait"
    t0 = time.perf_counter()
    synced = provider.wait(receipt, timeout=60)
    timings["wait"] = time.perf_counter() - t0
    provider.close()

    zone_sets = zone_size + 2  # SOA and NS at the apex
    return {
        "zone_sets": zone_sets,
        "changes": change_count,
        "insync": synced,
        "calls": {phase: calls.in_phase(phase) for phase in ("read", "apply", "wait")},
        "http_requests": dict(calls.sends),
        "minimum": minimum(zone_sets, changes),
        "timings_s": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--name", default="api_calls", help="results/NAME.json and .md")
    parser.add_argument("--cases", default="10:10,1000:1000,10000:10000,10000:10",
                        help="ZONE_SIZE:CHANGES pairs (comma-separated)")
    args = parser.parse_args()
    if args.quick:
        args.cases = "10:10,1000:1000"
    cases = [tuple(int(x) for x in c.split(":")) for c in args.cases.split(",") if c]
    doc: dict = {"machine": _bench.machine(), "cases": []}
    print(_bench.load_line(), file=sys.stderr)
    with _bench.moto_server():
        for zone_size, change_count in cases:
            result = scenario(zone_size, change_count)
            doc["cases"].append(result)
            print(json.dumps(result), file=sys.stderr)
    doc["machine"]["load_after"] = __import__("os").getloadavg()
    path = _bench.save(args.name, doc, render(doc))
    print(render(doc))
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)


def render(doc: dict) -> str:
    rows = []
    for c in doc["cases"]:
        calls, least = c["calls"], c["minimum"]
        pages_read = calls["read"].get("ListResourceRecordSets", 0)
        pages_apply = calls["apply"].get("ListResourceRecordSets", 0)
        batches = calls["apply"].get("ChangeResourceRecordSets", 0)
        gets = calls["wait"].get("GetChange", 0)
        other = sum(n for phase in calls.values() for op, n in phase.items()
                    if op not in ("ListResourceRecordSets", "ChangeResourceRecordSets", "GetChange"))
        rows.append({
            "zone sets": c["zone_sets"], "changes": c["changes"],
            "list pages (diff read)": f"{pages_read} (min {least['list_pages_per_read']})",
            "list pages (apply re-read)": f"{pages_apply} (min {least['list_pages_per_read']})",
            "change batches": f"{batches} (min {least['change_batches']})",
            "GetChange": f"{gets} (min {least['get_change']})",
            "other calls": other,
            "HTTP requests": sum(c["http_requests"].values()),
            "INSYNC": c["insync"],
            "read/apply/wait s": "/".join(f"{c['timings_s'][k]:.2f}" for k in ("read", "apply", "wait")),
        })
    detail = "\n".join(f"- {c['changes']} changes in {c['zone_sets']} sets: {json.dumps(c['calls'])}" for c in doc["cases"])
    return (f"## Route 53 API requests (moto) — load {doc['machine']['load']} before, {doc['machine'].get('load_after')} after\n\n"
            + _bench.table(rows) + "\n\nCalls per phase:\n\n" + detail)


if __name__ == "__main__":
    main()
