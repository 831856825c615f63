"""Benchmark: what a watch round with 500 probes costs, on Globalping and on RIPE Atlas.

Two costs, because they are paid in different currencies:

* the service's budget: what one 500-probe measurement of one record spends (Globalping
  tests of an hourly budget, RIPE Atlas credits and results of a daily one) and which
  ``every`` fits 1, 5 and 20 records. Computed with the probe modules' own cost functions
  (``settings_problem``, ``hourly_use``, ``cost_problem``), the ones that refuse a plan
  before anything is sent, then checked against the local Globalping API at its
  published limits;
* the local cost: turning one finished 500-result measurement into classified answers
  (``answers_from``, the clients' ``progress``), a whole measurement through
  ``ProbeRunner`` as ``cutover watch`` runs it (create, poll at the pace allowed,
  snapshot), the round document those answers end up in, the memory that holds them,
  and the journal that stores that document every round.

The APIs are the tests' local fakes (``tests/integration/servers/globalping_fake.py``
and ``atlas_fake.py``), served from a child process so that the client's CPU time is its
own. Their probes answer from REAL DNS lookups, sent to two ``fastdns`` fleets on
loopback (one answering the new address, one the old, 4 probes in 5 on the new), so
the answers are classified as they would be in a cutover. Everything listens on
127.0.0.1 only. Each measurement runs in a fresh worker process.

What the fakes cannot show is the services' own time: a real Globalping measurement
lasts until its last probe has reported, a real one-off on RIPE Atlas reports "generally
8-10" seconds after creation. The figures here are the client's side of it.

    .venv/bin/python benchmarks/probe_round.py            # 500 probes per service (about 30 s)
    .venv/bin/python benchmarks/probe_round.py --quick    # 50 probes (about 10 s)

It runs in the project's own environment (the fakes import pytest), not benchmarks/.venv.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import _bench
import fastdns

# The fakes live in tests/integration/servers: import them from the repository, whatever the
# working directory (the script's own folder comes first on sys.path, the root does not).
sys.path.insert(1, str(_bench.HERE.parent))

ORIGIN = "probe.bench.example."
NAME = f"www.{ORIGIN}"
NEW, OLD = "203.0.113.10", "198.51.100.10"
OLD_EVERY = 5  # every 5th probe asks a resolver that still serves the old address
PLACES = (("DE", "Berlin", "EU"), ("JP", "Tokyo", "AS"), ("US", "Chicago", "NA"), ("BR", "Sao Paulo", "SA"),
          ("AU", "Sydney", "OC"), ("ZA", "Johannesburg", "AF"), ("FR", "Paris", "EU"), ("IN", "Mumbai", "AS"))
RECORDS = (1, 5, 20)  # records watched, for "what every fits"
DAY = 86400
#: ``watch.interval``'s default (cutover/plan.py): how often a round is journalled.
WATCH_INTERVAL = 30.0
WORKER_TIMEOUT = 900


def target() -> Any:
    from cutover.observe.types import Target

    return Target((NAME, "A"), (NEW,), (OLD,), 300)


def human(seconds: float) -> str:
    from cutover.times import duration

    return duration(seconds)


# --------------------------------------------------------------------------- settings


def globalping_settings(api: Mapping[str, str], probes: int, every: str = "1h", token: bool = True) -> Any:
    """A parsed ``watch.probes`` entry asking ``probes`` probes anywhere (one global limit)."""
    from cutover.observe.probes import globalping

    entry: dict[str, Any] = {"service": "globalping", "url": api["url"], "limit": probes, "every": every}
    if token:
        entry["token"] = api["token"]
    return globalping.settings_from(entry)


def atlas_settings(api: Mapping[str, str], probes: int, every: str = "1h") -> Any:
    from cutover.observe.probes import atlas

    return atlas.settings_from({"service": "ripe-atlas", "url": api["url"], "key": api["key"], "every": every,
                                "probes": [{"type": "area", "value": "WW", "requested": probes}]})


# --------------------------------------------------------------------------- 1. the service budget


def smallest_every(fits: Callable[[int], bool], low: int, high: int = 30 * DAY) -> int | None:
    """The shortest ``every`` (whole seconds) the module's cost check accepts; None when
    not even ``high`` fits. The cost only falls as ``every`` grows, so bisect."""
    if not fits(high):
        return None
    if fits(low):
        return low
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    return high


def budget(probes: int) -> dict[str, Any]:
    """What one measurement of ``probes`` probes costs each service, and which ``every`` fits."""
    from cutover.observe.probes import atlas, globalping

    api = {"url": "http://127.0.0.1:9", "token": "bench-token", "key": "bench-key"}
    gp_token = globalping_settings(api, probes)
    gp_anon = globalping_settings(api, min(probes, globalping.TOKEN_PROBES_PER_MEASUREMENT), token=False)
    at = atlas_settings(api, probes)
    unit = atlas.credits_per_result(at.protocol)
    one: list[dict[str, Any]] = [
        {"service": "globalping", "credential": "token", "probes": probes,
         "one measurement": f"{globalping.probes_requested(gp_token.locations, gp_token.limit)} tests",
         "service limit": f"{globalping.hourly_limit(gp_token)} tests/hour",
         "share of limit": globalping.probes_requested(gp_token.locations, gp_token.limit) / globalping.hourly_limit(gp_token),
         "hourly_use at every 1h": globalping.hourly_use(gp_token, 1),
         "settings_problem (1 record, every 1h)": globalping.settings_problem(gp_token, 1) or "none: fits"},
        {"service": "globalping", "credential": "anonymous", "probes": probes,
         "one measurement": f"{probes} tests", "service limit": f"{globalping.hourly_limit(gp_anon)} tests/hour, "
                                                              f"{globalping.ANONYMOUS_PROBES_PER_MEASUREMENT} probes/measurement",
         "share of limit": probes / globalping.hourly_limit(gp_anon),
         "hourly_use at every 1h": globalping.hourly_use(gp_anon, 1),
         "settings_problem (1 record, every 1h)": globalping.settings_problem(gp_anon, 1) or "none: fits"},
        {"service": "ripe-atlas", "credential": "key", "probes": probes,
         "one measurement": f"{probes * unit:,} credits ({unit}/result, one-off UDP), {probes} results",
         "service limit": f"{atlas.CREDITS_PER_DAY:,} credits/day, {atlas.RESULTS_PER_DAY:,} results/day",
         "share of limit": probes * unit / atlas.CREDITS_PER_DAY,
         "hourly_use at every 1h": atlas.hourly_use(at, 1),
         "settings_problem (1 record, every 1h)": atlas.settings_problem(at, 1) or "none: fits"},
    ]
    fits: list[dict[str, Any]] = []
    for records in RECORDS:
        gp_fit = smallest_every(lambda e, r=records: globalping.settings_problem(replace(gp_token, every=float(e)), r) is None, 60)
        gp_row: dict[str, Any] = {"service": "globalping (token)", "records": records, "every_s": gp_fit,
                                  "every": human(gp_fit) if gp_fit else "none",
                                  "use/hour at that every": globalping.hourly_use(replace(gp_token, every=float(gp_fit)), records) if gp_fit else None,
                                  "limit/hour": globalping.hourly_limit(gp_token)}
        gp_row["the module says (every 1h)"] = globalping.settings_problem(replace(gp_token, every=3600.0), records) or "fits"
        fits.append(gp_row)
        at_fit = smallest_every(lambda e, r=records: atlas.settings_problem(replace(at, every=float(e)), r) is None, 1)
        at_every = replace(at, every=float(at_fit)) if at_fit else at
        fits.append({"service": "ripe-atlas", "records": records, "every_s": at_fit, "every": human(at_fit) if at_fit else "none",
                     "use/hour at that every": atlas.hourly_use(at_every, records) if at_fit else None,
                     "limit/hour": atlas.hourly_limit(at),
                     "credits/day at that every": atlas.measurements_per_day(at_every.every, records) * probes * unit if at_fit else None,
                     "the module says (every 1h)": atlas.settings_problem(replace(at, every=3600.0), records) or "fits"})
    # the largest per-record probe count an hourly schedule allows (Globalping's only way to more records)
    hourly = [{"records": r, "globalping probes/record at every 1h (token)": globalping.TOKEN_TESTS_PER_HOUR // r,
               "anonymous": min(globalping.ANONYMOUS_PROBES_PER_MEASUREMENT, globalping.ANONYMOUS_TESTS_PER_HOUR // r),
               "ripe-atlas probes/record at every 1h": min(atlas.PROBES_PER_MEASUREMENT, atlas.RESULTS_PER_DAY // (24 * r),
                                                          atlas.CREDITS_PER_DAY // (unit * 24 * r))}
              for r in RECORDS]
    return {"one_measurement": one, "fits": fits, "hourly_probes": hourly}


def live_budget(api: Mapping[str, str], probes: int) -> list[dict[str, str]]:
    """The Globalping client against the local API at its published limits (250 anonymous,
    500 with a token, tests an hour): what the first and second measurement get."""
    from cutover.observe.probes import globalping
    from providers.httpclient import ApiError

    rows = []
    c = globalping.GlobalpingClient(globalping_settings(api, probes))
    try:
        for n in (1, 2):
            try:
                mid = c.create(target())
                r = c.rate
                rows.append({"request": f"token, measurement {n} ({probes} probes)",
                             "answer": f"202, id {mid}; X-RateLimit: {r.consumed} consumed, {r.remaining} of {r.limit} left, "
                                       f"reset in {r.reset:g}s"})
            except ApiError as exc:
                held = c.not_before - c.clock()
                rows.append({"request": f"token, measurement {n} ({probes} probes)",
                             "answer": f"{exc} | client holds creations for {held:.0f}s"})
    finally:
        c.close()
    anon = globalping.GlobalpingClient(globalping_settings(api, probes, token=False))
    try:
        mid = anon.create(target())
        rows.append({"request": f"anonymous ({probes} probes)", "answer": f"202, id {mid}"})
    except ApiError as exc:
        rows.append({"request": f"anonymous ({probes} probes)", "answer": str(exc)})
    finally:
        anon.close()
    return rows


# --------------------------------------------------------------------------- the local APIs


def _probe_resolver(i: int, new: Sequence[Sequence[Any]], old: Sequence[Sequence[Any]]) -> tuple[str, int]:
    pool = old if i % OLD_EVERY == OLD_EVERY - 1 else new
    host, port = pool[i % len(pool)]
    return str(host), int(port)


def worker_fakes(args: argparse.Namespace) -> None:
    """Serve the fake APIs until stdin closes: one Globalping whose budget never runs out
    (for the timings), one at the published limits (for the budget check), one Atlas.
    ``log`` on stdin prints each API's request log so far (method and path)."""
    from tests.integration.servers.atlas_fake import FakeAtlas
    from tests.integration.servers.atlas_fake import FakeProbe as AtlasProbe
    from tests.integration.servers.globalping_fake import FakeGlobalping, FakeProbe

    endpoints = json.loads(args.endpoints)
    gp = FakeGlobalping(hourly_anonymous=10**9, hourly_token=10**9).start()
    limited = FakeGlobalping().start()
    at = FakeAtlas().start()
    for i in range(args.probes):
        country, city, continent = PLACES[i % len(PLACES)]
        resolver = _probe_resolver(i, endpoints["new"], endpoints["old"])
        for api in (gp, limited):
            api.add_probe(FakeProbe(country, city, 64512 + i, f"Bench Net {i}", resolver, continent=continent))
        at.add_probe(AtlasProbe(10001 + i, country, 64512 + i, f"10.{i // 256}.{i % 256}.0/24", [resolver]))
    print(json.dumps({"globalping": {"url": gp.url, "token": gp.token},
                      "globalping_limited": {"url": limited.url, "token": limited.token},
                      "atlas": {"url": at.url, "key": at.key}}), flush=True)
    try:
        while line := sys.stdin.readline().strip():
            if line == "log":
                print(json.dumps({"globalping": [[m, p] for m, p, _ in gp.log], "atlas": [[m, p] for m, p, _ in at.log]}), flush=True)
    finally:
        for api in (gp, limited, at):
            api.stop()


class Fakes:
    """The parent's handle on the fake APIs' child process."""

    def __init__(self, process: subprocess.Popen, apis: dict[str, dict[str, str]]) -> None:
        self.process, self.apis = process, apis

    def log(self) -> dict[str, list[list[str]]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("log\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def cpu_seconds(self) -> float:
        """CPU time of the fake APIs (their probes' DNS lookups, their JSON), not the client's."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def fakes(endpoints: Mapping[str, Any], probes: int) -> Iterator[Fakes]:
    argv = [sys.executable, str(Path(__file__)), "--worker", "fakes", "--probes", str(probes), "--endpoints", json.dumps(endpoints)]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_bench.HERE.parent)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the fake probe APIs did not start")
        yield Fakes(process, json.loads(line))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --------------------------------------------------------------------------- fetching one finished measurement


def finished_globalping(api: Mapping[str, str], probes: int) -> tuple[Any, str, dict[str, Any]]:
    """A client, the id of a finished measurement, and that measurement as the API sent it."""
    from cutover.observe.probes import globalping

    c = globalping.GlobalpingClient(globalping_settings(api, probes))
    mid = c.create(target())
    state = dict(c.wait(mid, globalping.MEASUREMENT_TIMEOUT))
    if state.get("status") == "in-progress":
        raise RuntimeError(f"globalping measurement {mid} did not finish")
    return c, mid, state


def finished_atlas(api: Mapping[str, str], probes: int, poll: float) -> tuple[Any, str, list[Any], dict[int, Any], list[int]]:
    """A client, a finished one-off's id, its results list, its probes' descriptions and the
    probes it was given: everything ``atlas.answers_from`` reads."""
    import requests

    from cutover.observe.probes import atlas

    c = atlas.AtlasClient(atlas_settings(api, probes), poll_interval=poll)
    mid = c.create(target())
    if not c.wait(mid, target(), atlas.MEASUREMENT_TIMEOUT).final:
        raise RuntimeError(f"atlas measurement {mid} did not finish")
    base = f"{api['url']}{atlas.MEASUREMENTS}{mid}/"
    with requests.Session() as s:
        meta = s.get(base, params={"optional_fields": "probes"}, timeout=30).json()
        results = s.get(base + "results/", timeout=30).json()
        expected = atlas.scheduled_probes(meta)
        described = s.get(f"{api['url']}{atlas.PROBES}", timeout=30, params={
            "id__in": ",".join(map(str, expected)), "fields": "id,country_code,asn_v4,asn_v6,prefix_v4,prefix_v6",
            "page_size": str(atlas.PROBE_PAGE)}).json()["results"]
    infos = {p["id"]: atlas.ProbeInfo.from_api(p) for p in described}
    return c, mid, results, infos, expected


def samples(fn: Callable[[], Any], repeat: int, pause: float = 0.0) -> dict[str, Any]:
    """Every run's wall and CPU time (after a collection each): the minimum is the least
    disturbed on a shared machine, the median says how typical it is."""
    runs = []
    for _ in range(max(1, repeat)):
        time.sleep(pause)  # before each run: the API counts the reads of one measurement in a window
        runs.append(_bench.measure(fn))
    walls = [r.wall for r in runs]
    return {"wall_min_s": min(walls), "wall_median_s": statistics.median(walls), "cpu_min_s": min(r.cpu for r in runs),
            "runs": len(runs), "unanswered": sum(1 for r in runs if r.result is None), "result": runs[-1].result}


def states(answers: Sequence[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in answers:
        out[a.state] = out.get(a.state, 0) + 1
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- 2a. decoding one measurement


def worker_decode(args: argparse.Namespace) -> dict[str, Any]:
    """One finished measurement of ``--probes`` results read as answers: the module's
    ``answers_from`` alone, the JSON parse before it, and the client's ``progress`` (HTTP
    GET(s), JSON, classification) on the finished measurement."""
    from cutover.observe.probes import atlas, globalping

    api = json.loads(args.api)
    t = target()
    if args.service == "globalping":
        client, mid, state = finished_globalping(api, args.probes)
        payload = json.dumps(state)
        decode = lambda: globalping.answers_from(state, t)  # noqa: E731
        answers = decode()
        parse = samples(lambda: json.loads(payload), args.repeat)
        classify = samples(decode, args.repeat)
        # the API wants 500 ms between reads of one measurement, and answers more than 2 reads
        # in a second with a 429 (then progress() is None, and the next one sleeps): keep 0.6 s apart
        first = samples(lambda: client.progress(mid, t), 1, globalping.MIN_POLL_INTERVAL + 0.1)
        later = samples(lambda: client.progress(mid, t), args.repeat, globalping.MIN_POLL_INTERVAL + 0.1)
    else:
        client, mid, results, infos, expected = finished_atlas(api, args.probes, args.atlas_poll)
        payload = json.dumps(results)
        decode = lambda: atlas.answers_from(results, t, infos, expected, True, None)  # noqa: E731
        answers = decode()
        parse = samples(lambda: json.loads(payload), args.repeat)
        classify = samples(decode, args.repeat)
        fresh = atlas.AtlasClient(client.settings, poll_interval=args.atlas_poll)  # knows no probe yet: looks them up
        first = samples(lambda: fresh.progress(mid, t), 1)
        later = samples(lambda: fresh.progress(mid, t), args.repeat)
        fresh.close()
    client.close()
    got = later["result"].answers if later["result"] is not None else ()
    if first["unanswered"] or later["unanswered"]:
        raise RuntimeError(f"{args.service}: progress() was refused ({first['unanswered'] + later['unanswered']} reads): timings not comparable")
    for s in (parse, classify, first, later):
        s.pop("result", None)
    return {"service": args.service, "probes": args.probes, "answers": len(answers), "states": states(answers),
            "progress_answers": len(got), "json_loads": parse, "answers_from": classify, "progress_first": first,
            "progress_later": later, "payload_bytes": len(payload.encode())}


# --------------------------------------------------------------------------- 2b. end to end through ProbeRunner


def worker_runner(args: argparse.Namespace) -> dict[str, Any]:
    """One record measured by ``ProbeRunner`` as ``cutover watch --once`` does it: start,
    wait until settled, snapshot. The Atlas client polls every ``--atlas-poll`` seconds
    (the real one every ``atlas.MIN_POLL_INTERVAL``); Globalping's pace is the real one."""
    from cutover.observe.probes import atlas, globalping
    from cutover.observe.probes.schedule import ProbeRunner
    from cutover.observe.probes.services import ProbeEntry

    api = json.loads(args.api)
    if args.service == "globalping":
        settings = globalping_settings(api, args.probes)
        client: Any = globalping.GlobalpingClient(settings)
        timeout = globalping.MEASUREMENT_TIMEOUT
    else:
        settings = atlas_settings(api, args.probes)
        client = atlas.AtlasClient(settings, poll_interval=args.atlas_poll)
        timeout = atlas.MEASUREMENT_TIMEOUT
    runner = ProbeRunner([ProbeEntry(args.service, settings, "watch.probes[0]")], [target()], clients=[client])
    gc.collect()
    cpu0, t0 = _bench.cpu_seconds(), time.perf_counter()
    runner.start()
    settled = runner.wait_settled(timeout + 10)
    wall, cpu = time.perf_counter() - t0, _bench.cpu_seconds() - cpu0
    snap = samples(runner.snapshot, args.repeat)
    answers, report = runner.snapshot()
    runner.close()
    snap.pop("result", None)
    record = report[0]["records"][0]
    return {"service": args.service, "probes": args.probes, "settled": settled, "wall_s": wall, "cpu_s": cpu,
            "answers": len(answers), "states": states(answers), "measurement": record["id"], "record_state": record["state"],
            "problems": report[0]["problems"], "snapshot": snap, "probes_section_bytes": len(json.dumps(report, sort_keys=True)),
            "poll_interval_s": args.atlas_poll if args.service == "ripe-atlas" else globalping.MIN_POLL_INTERVAL}


def reads(log: Sequence[Sequence[str]], service: str, mid: str) -> dict[str, int]:
    """The requests one measurement cost, by kind, from the fake API's log."""
    kinds: dict[str, int] = {}
    for method, path in log:
        if service == "globalping":
            kind = "POST" if method == "POST" else "GET measurement" if path.endswith("/" + mid) else None
        else:
            bare = path.split("?", 1)[0]
            kind = ("POST" if method == "POST" else "GET measurement" if bare.endswith(f"/{mid}/")
                    else "GET results" if bare.endswith(f"/{mid}/results/") else "GET probes" if "/probes/" in bare else None)
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# --------------------------------------------------------------------------- 2c. the round: document, memory, journal


def round_doc(answers: Sequence[Any], when: datetime) -> dict[str, Any]:
    """The round document ``cutover watch`` journals, for one record and these answers
    (no resolvers, no authoritative servers: the probe answers' own share of it)."""
    from cutover import bounds
    from cutover.observe.types import Round, summarise
    from cutover.rounds import round_document
    from cutover.verdict import Evidence, Rules, decide

    t = target()
    rnd = Round(1, when, tuple(answers))
    evidence = Evidence(tuple(summarise(rnd, [t])), (), None, bounds.record_change([t], None), None)
    return round_document(rnd, [t], decide(evidence, Rules(), when), evidence)


def worker_round(args: argparse.Namespace) -> dict[str, Any]:
    """A round holding both services' answers (2 x ``--probes``): the memory that holds
    them, the size and cost of the round document, and the journal storing one a round."""
    from cutover.journal import Journal
    from cutover.rounds import stored_form
    from cutover.observe.probes import atlas, globalping

    api = json.loads(args.api)
    t = target()
    gp_client, _, gp_state = finished_globalping(api["globalping"], args.probes)
    at_client, _, at_results, infos, expected = finished_atlas(api["atlas"], args.probes, args.atlas_poll)
    gp_client.close()
    at_client.close()
    when = datetime.now(timezone.utc)

    def build() -> tuple[Any, ...]:
        """Both measurements as the runner keeps them: classified, stamped with their arrival."""
        got = [*globalping.answers_from(gp_state, t), *atlas.answers_from(at_results, t, infos, expected, True, None)]
        return tuple(replace(a, measured=when) for a in got)

    build()  # warm: imports, dnspython's caches
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = build()
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    payload_text = json.dumps(gp_state), json.dumps(at_results)
    gc.collect()
    tracemalloc.start()
    base_p = tracemalloc.get_traced_memory()[0]
    parsed = [json.loads(p) for p in payload_text]
    payload_current = tracemalloc.get_traced_memory()[0] - base_p
    tracemalloc.stop()
    del parsed
    memory = {"answers": len(held), "held_bytes": current - base, "peak_bytes": peak - base,
              "held_bytes_per_answer": (current - base) / len(held), "parsed_payloads_bytes": payload_current,
              "payload_bytes": sum(len(p.encode()) for p in payload_text)}

    gp_answers = [a for a in held if a.vantage and a.vantage.service == globalping.SERVICE]
    at_answers = [a for a in held if a.vantage and a.vantage.service == atlas.SERVICE]
    docs = []
    for label, answers in (("no probe answers", []), (f"globalping {len(gp_answers)}", gp_answers),
                           (f"ripe-atlas {len(at_answers)}", at_answers), (f"both {len(held)}", list(held))):
        timing = samples(lambda a=answers: json.dumps(round_doc(a, when), sort_keys=True), args.repeat)
        text = timing.pop("result")
        docs.append({"round": label, "probe_answers": len(answers), "json_bytes": len(text.encode()), **timing})
    empty = docs[0]["json_bytes"]
    for d in docs[1:]:
        d["bytes_per_answer"] = (d["json_bytes"] - empty) / d["probe_answers"]

    journal = {}
    if args.journal_rounds:
        text = json.dumps(round_doc(list(held), when), sort_keys=True)
        doc = json.loads(text)
        with tempfile.TemporaryDirectory(prefix="bench-probe-journal-") as tmp:
            j = Journal(Path(tmp))
            stored, groups = stored_form(doc)  # as cutover.monitor.record_round journals a round

            def journal_rounds() -> None:
                for n in range(1, args.journal_rounds + 1):
                    j.add_round("bench.example.", n, time.time(), stored)
                    j.add_probe_results("bench.example.", n, groups)  # the same measurement: kept once

            added = _bench.measure(journal_rounds)
            db = sum(f.stat().st_size for f in Path(tmp).iterdir() if f.is_file())
            read = _bench.measure(lambda: len(j.rounds("bench.example.")))  # timed without tracemalloc's overhead
            gc.collect()
            tracemalloc.start()
            j.rounds("bench.example.")
            _, read_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            j.db.close()
        per_round = db / args.journal_rounds
        journal = {"rounds": args.journal_rounds, "db_bytes": db, "bytes_per_round": per_round,
                   "add_round_s_each": added.wall / args.journal_rounds, "rounds_read_s": read.wall, "rounds_read_cpu_s": read.cpu,
                   "rounds_read_peak_bytes": read_peak, "watch_interval_s": WATCH_INTERVAL,
                   "extrapolated_bytes_per_day": per_round * DAY / WATCH_INTERVAL}
    return {"probes_per_service": args.probes, "memory": memory, "documents": docs, "journal": journal}


# --------------------------------------------------------------------------- orchestration


def _worker(kind: str, *extra: str) -> dict[str, Any]:
    return _bench.run_json([str(Path(__file__)), "--worker", kind, *extra], timeout=WORKER_TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 probes, few repeats")
    parser.add_argument("--probes", type=int, default=500, help="probes per measurement, on each service")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each timed step (min and median reported)")
    parser.add_argument("--atlas-poll", type=float, default=0.1, help="the Atlas client's poll interval here (real: 5 s)")
    parser.add_argument("--runner-repeat", type=int, default=5, help="measurements through ProbeRunner per service")
    parser.add_argument("--journal-rounds", type=int, default=100, help="rounds written to a scratch journal (0: skip)")
    parser.add_argument("--resolvers", type=int, default=10, help="fake resolvers the probes ask (1 in 5 serves the old address)")
    parser.add_argument("--name", default="probe_round", help="results/NAME.json and .md")
    # worker mode (internal)
    parser.add_argument("--worker", choices=["fakes", "decode", "runner", "round"])
    parser.add_argument("--service", choices=["globalping", "ripe-atlas"])
    parser.add_argument("--api", default="{}")
    parser.add_argument("--endpoints", default="{}")
    args = parser.parse_args()
    if args.worker == "fakes":
        worker_fakes(args)
        return
    if args.worker:
        print(json.dumps({"decode": worker_decode, "runner": worker_runner, "round": worker_round}[args.worker](args)))
        return
    if args.quick:
        args.probes, args.repeat, args.journal_rounds, args.runner_repeat = 50, 3, 10, 2
    run(args)


def run(args: argparse.Namespace) -> None:
    document: dict[str, Any] = {"machine": _bench.machine(), "settings": vars(args).copy()}
    print(_bench.load_line(), file=sys.stderr)
    document["budget"] = budget(args.probes)
    old_count = max(1, args.resolvers // OLD_EVERY)
    records_new = {NAME: (300, [NEW])}
    records_old = {NAME: (300, [OLD])}
    common = ["--probes", str(args.probes), "--repeat", str(args.repeat), "--atlas-poll", str(args.atlas_poll)]
    with fastdns.fleet(args.resolvers - old_count, records_new, origin=ORIGIN, low=0.0, high=0.0, lossy_every=0, port53=False) as new, \
            fastdns.fleet(old_count, records_old, origin=ORIGIN, low=0.0, high=0.0, lossy_every=0, port53=False) as old, \
            fakes({"new": new.endpoints, "old": old.endpoints}, args.probes) as apis:
        document["fleet"] = {"new": len(new.endpoints), "old": len(old.endpoints), "delay_s": 0.0}
        document["live_budget"] = live_budget(apis.apis["globalping_limited"], args.probes)
        print("budget done", file=sys.stderr)
        document["decode"], document["runner"] = [], []
        for service, key in (("globalping", "globalping"), ("ripe-atlas", "atlas")):
            api = json.dumps(apis.apis[key])
            document["decode"].append(_worker("decode", "--service", service, "--api", api, *common))
            print(f"{service}: decode done", file=sys.stderr)
            runs = []
            for _ in range(args.runner_repeat):  # a fresh process and client each time, as a new watch has
                fake_cpu0, mark = apis.cpu_seconds(), len(apis.log()[key])
                run_ = _worker("runner", "--service", service, "--api", api, *common)
                run_["fake_cpu_s"] = apis.cpu_seconds() - fake_cpu0
                run_["requests"] = reads(apis.log()[key][mark:], service, run_["measurement"])
                runs.append(run_)
                print(f"{service}: runner {run_['wall_s']:.2f}s {run_['states']} {run_['requests']}", file=sys.stderr)
            document["runner"].append({"service": service, "runs": runs})
        both = json.dumps({"globalping": apis.apis["globalping"], "atlas": apis.apis["atlas"]})
        document["round"] = _worker("round", "--api", both, "--journal-rounds", str(args.journal_rounds), *common)
        print("round done", file=sys.stderr)
    document["machine"]["load_after"] = os.getloadavg()
    path = _bench.save(args.name, document, render(document))
    print(render(document))
    print(f"\nwritten: {path} (and .json)", file=sys.stderr)


# --------------------------------------------------------------------------- tables


def ms(seconds: float) -> float:
    return _bench.fmt(seconds * 1000)


def real_pacing(row: Mapping[str, Any]) -> str:
    """What the real services' pacing adds to a measurement read ``n`` times: Globalping's
    500 ms is already in the figure; Atlas's first read waits a poll interval after
    creation, so each read moves by ``MIN_POLL_INTERVAL`` - the interval used here."""
    from cutover.observe.probes import atlas, globalping

    n = row["requests"].get("GET measurement", 0)
    if row["service"] == "globalping":
        return f"none: already real ({n} reads, {max(0, n - 1)} x {globalping.MIN_POLL_INTERVAL:g} s apart)"
    added = n * (atlas.MIN_POLL_INTERVAL - row["poll_interval_s"])
    return f"+{added:.1f} s ({n} reads x ({atlas.MIN_POLL_INTERVAL:g} - {row['poll_interval_s']:g}) s)"


def render(doc: Mapping[str, Any]) -> str:
    f = _bench.fmt
    m = doc["machine"]
    probes = doc["settings"]["probes"]
    load = ", ".join(f"{x:.2f}" for x in m["load"])
    after = ", ".join(f"{x:.2f}" for x in m.get("load_after") or ())
    out = [f"## probe round: {probes} probes per service", f"{m['when']}; load {load} before, {after} after; "
           f"fleet: {doc['fleet']['new']} resolvers answering new + {doc['fleet']['old']} answering old, no delay", ""]
    b = doc["budget"]
    out += ["### 1. The service budget: one measurement of one record", ""]
    out.append(_bench.table([{**r, "share of limit": f"{100 * r['share of limit']:.3g}%"} for r in b["one_measurement"]]))
    out += ["", "Shortest `every` the module's cost check accepts, with the probes above:", ""]
    out.append(_bench.table([{k: v for k, v in r.items() if k != "every_s"} for r in b["fits"]]))
    out += ["", "Probes per record an hourly schedule allows:", "", _bench.table(b["hourly_probes"]), ""]
    out += ["Against the local Globalping API at its published limits:", "", _bench.table(doc["live_budget"]), ""]

    out += ["### 2. Local cost: one finished measurement read as answers", ""]
    rows = []
    for d in doc["decode"]:
        rows.append({"service": d["service"], "answers": d["answers"], "payload KiB": f(d["payload_bytes"] / 1024),
                     "json.loads ms": ms(d["json_loads"]["wall_min_s"]),
                     "answers_from ms (min / median)": f"{ms(d['answers_from']['wall_min_s'])} / {ms(d['answers_from']['wall_median_s'])}",
                     "answers_from CPU ms": ms(d["answers_from"]["cpu_min_s"]),
                     "µs per answer": f(1e6 * d["answers_from"]["cpu_min_s"] / d["answers"]),
                     "progress() first ms": ms(d["progress_first"]["wall_min_s"]),
                     "progress() later ms (min / median)": f"{ms(d['progress_later']['wall_min_s'])} / {ms(d['progress_later']['wall_median_s'])}",
                     "states": " ".join(f"{k}={v}" for k, v in d["states"].items())})
    out.append(_bench.table(rows))
    out += ["", "### 3. End to end through ProbeRunner (create, poll, settle, snapshot)", ""]
    rows = []
    for entry in doc["runner"]:
        runs = entry["runs"]
        r = runs[0]
        requests = {json.dumps(x["requests"], sort_keys=True) for x in runs}
        walls, cpus = [x["wall_s"] for x in runs], [x["cpu_s"] for x in runs]
        rows.append({"service": r["service"], "runs": len(runs), "poll interval s": r["poll_interval_s"],
                     "requests per measurement": ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items()))
                     + ("" if len(requests) == 1 else " (varied: see JSON)"),
                     "wall s (min / median)": f"{f(min(walls))} / {f(statistics.median(walls))}",
                     "client CPU s (min / median)": f"{f(min(cpus))} / {f(statistics.median(cpus))}",
                     "fake APIs CPU s": f(statistics.median(x["fake_cpu_s"] for x in runs)),
                     "snapshot ms": ms(min(x["snapshot"]["wall_min_s"] for x in runs)), "answers": r["answers"],
                     "probes section bytes": r["probes_section_bytes"], "real pacing adds": real_pacing(r),
                     "problems": "; ".join(p for x in runs for p in x["problems"]) or "none"})
    out.append(_bench.table(rows))
    rd = doc["round"]
    mem = rd["memory"]
    out += ["", f"### 4. The round: {mem['answers']} probe answers", "",
            f"Held (tracemalloc, after the classifying and stamping, garbage collected): {f(mem['held_bytes'] / 2**20)} MiB, "
            f"{f(mem['held_bytes_per_answer'])} bytes per answer; peak while building {f(mem['peak_bytes'] / 2**20)} MiB. "
            f"The two API payloads: {f(mem['payload_bytes'] / 2**20)} MiB of JSON, {f(mem['parsed_payloads_bytes'] / 2**20)} MiB parsed "
            "(held only while one poll is read).", ""]
    out.append(_bench.table([{"round document": d["round"], "JSON bytes (journal form)": d["json_bytes"],
                              "bytes per probe answer": f(d["bytes_per_answer"]) if "bytes_per_answer" in d else "",
                              "build + json.dumps ms": ms(d["wall_min_s"])} for d in rd["documents"]]))
    j = rd.get("journal")
    if j:
        out += ["", f"Journal (SQLite, `Journal.add_round` of the stored form and `add_probe_results`) holding {j['rounds']} such rounds: {f(j['db_bytes'] / 2**20)} MiB, "
                f"{f(j['bytes_per_round'] / 1024)} KiB a round; `add_round` {ms(j['add_round_s_each'])} ms each; "
                f"`rounds()` (read by every watch set-up and report) {f(j['rounds_read_s'])} s, tracemalloc peak "
                f"{f(j['rounds_read_peak_bytes'] / 2**20)} MiB. EXTRAPOLATED to a day at watch.interval {j['watch_interval_s']:g} s: "
                f"{f(j['extrapolated_bytes_per_day'] / 2**30)} GiB a day."]
    return "\n".join(out)


if __name__ == "__main__":
    main()
