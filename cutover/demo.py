"""``cutover demo``: a whole cutover against the embedded sandbox, in about a minute.

It is the real pipeline, not a recording: a plan file is written, then loaded and run
through check (is the new web server ready?), diff, prepare, apply (whose TTL guard
first refuses, as it should), and watch, against an authoritative server and caching
resolvers on loopback, some of which misbehave the way real ones do (a TTL floor, a
stale cache, a slow one, a broken one), and a new web server on a loopback address
(``cutover.sandbox.web``). The TTLs are scaled down from hours to seconds so that the
story fits in a minute.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from cutover import apply as applymod, diff as diffmod, monitor, plan as planmod, render
from cutover.errors import GuardError
from cutover.records import RecordSet
from cutover.sandbox import ResolverSpec, Sandbox
from cutover.sandbox.web import DemoWebServer
from cutover.session import Session

ZONE = "demo.example."
#: The old server is a documentation address (nothing connects to it); the new one is on
#: this machine, where the demo's web server answers, so that readiness is really checked.
OLD_IP, NEW_IP = "198.51.100.10", "127.0.0.10"


@dataclass(frozen=True)
class Timing:
    """The demo's clock: the long TTL before prepare, the short one after, and the rest."""

    long_ttl: int
    short_ttl: int
    parallel_period: int
    ttl_floor: int
    stale_for: float
    interval: float


NORMAL = Timing(long_ttl=20, short_ttl=5, parallel_period=40, ttl_floor=30, stale_for=20.0, interval=2.0)
FAST = Timing(long_ttl=3, short_ttl=1, parallel_period=6, ttl_floor=5, stale_for=3.0, interval=0.5)


def resolver_specs(t: Timing) -> tuple[ResolverSpec, ...]:
    return (
        ResolverSpec("isp-resolver-1"),
        ResolverSpec("isp-resolver-2"),
        ResolverSpec("office-resolver"),
        ResolverSpec("clamping-resolver", ttl_floor=t.ttl_floor),
        ResolverSpec("stale-cache", stale_for=t.stale_for),
        ResolverSpec("serve-stale", serve_stale=True),
        ResolverSpec("slow-resolver", delay=0.3),
        ResolverSpec("broken-resolver", fail="servfail"),
    )


def zone_records(t: Timing) -> list[RecordSet]:
    return [
        RecordSet.build(ZONE, "A", t.long_ttl, [OLD_IP]),
        RecordSet.build(f"www.{ZONE}", "A", t.long_ttl, [OLD_IP]),
        RecordSet.build(f"mail.{ZONE}", "A", t.long_ttl, [OLD_IP]),
        RecordSet.build(ZONE, "MX", t.long_ttl, [f"10 mail.{ZONE}"]),
        RecordSet.build(ZONE, "TXT", t.long_ttl, ['"v=spf1 mx -all"']),
        RecordSet.build(f"ftp.{ZONE}", "CNAME", t.long_ttl, [f"www.{ZONE}"]),
    ]


def plan_document(sandbox: Sandbox, t: Timing, web: DemoWebServer) -> dict[str, Any]:
    """The demo plan, as an operator would write it for this move."""
    return {
        "version": 1,
        "zone": ZONE.rstrip("."),
        "provider": {"type": "sandbox", **sandbox.provider_settings()},
        "records": [
            {"name": name, "type": "A", "ttl": t.short_ttl, "from": [OLD_IP], "to": [NEW_IP]}
            for name in ("@", "www", "mail")
        ],
        "prepare": {"ttl": t.short_ttl},
        "verify": {"nameservers": [sandbox.provider_settings()["server"]], "timeout": "30s"},
        "watch": {
            "resolvers": [{"address": r.address, "port": r.port, "name": r.name, "operator": r.operator}
                          for r in sandbox.resolvers],
            "interval": f"{t.interval}s",
            "timeout": "1s",
        },
        "retire": {"threshold": "100%", "parallel_period": f"{t.parallel_period}s"},
        "safety": {"max_change_share": "60%"},
        "ready": {"web": {"ports": {"http": web.http_port, "https": web.https_port}}, "ca_file": web.ca_file,
                  "timeout": "3s"},
    }


def run(directory: Path | None, *, fast: bool, show: Callable[[str], None],
        on_round: Callable[[dict[str, Any]], None], state: Path | None = None,
        sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The whole story. ``show`` gets narration and tables, ``on_round`` each watch round;
    ``state`` is the journal's directory (default ``.cutover/`` in the demo's folder) and
    ``sleep`` the pause between rounds (the live view counts it down)."""
    t = FAST if fast else NORMAL
    with ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cutover-demo-")))
        directory.mkdir(parents=True, exist_ok=True)
        sandbox = stack.enter_context(Sandbox(directory / "zone", ZONE, zone_records(t), resolvers=resolver_specs(t)))
        web = stack.enter_context(DemoWebServer(NEW_IP))
        plan_path = directory / "demo-plan.yaml"
        plan_path.write_text(yaml.safe_dump(plan_document(sandbox, t, web), sort_keys=False), encoding="utf-8")
        show(f"Sandbox: {ZONE} served at {sandbox.provider_settings()['server']}, "
             f"{len(sandbox.resolvers)} caching resolvers on loopback. Plan: {plan_path}")
        plan = planmod.load(plan_path)
        session = stack.enter_context(Session(state=state or directory / ".cutover", progress=lambda m: show(f"... {m}")))
        show(f"\n0. check: is the new web server ({NEW_IP}) ready for {ZONE.rstrip('.')} and www?\n")
        readiness = session.check(plan)
        show(render.readiness_text(plan.zone, str(plan.path), readiness.checks))
        ctx = stack.enter_context(session.zone(plan))
        return {**_story(ctx, sandbox, t, show, on_round, sleep), "readiness": readiness.as_dict()}


def _story(ctx: applymod.Context, sandbox: Sandbox, t: Timing, show: Callable[[str], None],
           on_round: Callable[[dict[str, Any]], None], sleep: Callable[[float], None]) -> dict[str, Any]:
    started = time.monotonic()
    for name in ("@", "www", "mail"):
        sandbox.warm(name, "A")
    show(f"\n1. diff: what would change (resolvers have cached the old answers, TTL {t.long_ttl}s)\n")
    show(render.diff_text(applymod.zone_diff(ctx)))

    show(f"2. prepare: lower the TTL to {t.short_ttl}s ahead of the window\n")
    show(render.outcome_text(applymod.prepare(ctx)))

    show("\n3. apply right away: the TTL guard refuses, caches may still hold the long TTL\n")
    try:
        applymod.apply(ctx, verify_after=False)
    except GuardError as exc:
        show(str(exc))
    _wait(t.long_ttl + 0.5, "waiting for the long TTL to run out", show)
    for name in ("@", "www", "mail"):
        sandbox.warm(name, "A")  # traffic goes on: caches now hold the old answer with the short TTL

    show("\n4. apply: change the records, verify at the authoritative server\n")
    outcome = applymod.apply(ctx)
    show(render.outcome_text(outcome))

    show("\n5. watch: rounds across the resolvers until the old server may be retired\n")
    live, _ = applymod.read_live(ctx)
    watches = [(monitor.setup(ctx.plan, ctx.journal, live, []), ctx.journal)]
    last: dict[str, Any] = {}
    stale: set[str] = set()
    for doc in monitor.rounds(watches, sleep=sleep):
        last = doc
        stale |= {a["resolver"] for rec in doc["records"] for a in rec["answers"] if a.get("stale")}
        on_round(doc)
    show(f"\nRetire verdict after {time.monotonic() - started:.0f}s: {'yes' if last['verdict']['retire'] else 'no'}. "
         f"Seen serving the old answer after its TTL ran out: {', '.join(sorted(stale)) or 'none'}.")
    return {"outcome": outcome.as_dict(), "last_round": last, "diff_after": diffmod.compute(ctx.plan, live).as_dict()}


def _wait(seconds: float, why: str, show: Callable[[str], None]) -> None:
    show(f"... {why} ({seconds:.0f}s)")
    time.sleep(seconds)
