"""The command line: parse, call the core, render. Nothing else lives here.

Exit codes follow the contract: 0 done (or in sync), 1 changes pending / verdict not
yet (diff, watch --once), 2 bad plan, bad arguments or a refused guard, 3 a provider
or network failure. No command prints a traceback unless ``CUTOVER_DEBUG`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import dns.exception

from cutover import __version__, apply as applymod, export as exportmod, monitor, notify as notifymod, plan as planmod, render
from cutover import report as reportmod, report_html
from cutover.errors import CutoverError, PlanError, ProviderError, UsageError
from cutover.journal import Journal
from cutover.liveview import LiveView
from providers import registry

STATE_DIR = ".cutover"
#: Seconds ``watch`` waits at exit for queued webhook messages.
NOTIFY_FLUSH = 5.0


# ---------------------------------------------------------------------- plumbing


@dataclass
class Output:
    """Where things go: JSON documents or tables on stdout, progress on stderr (terminals only)."""

    json: bool

    @property
    def interactive(self) -> bool:
        return sys.stdout.isatty()

    def document(self, doc: Any) -> None:
        sys.stdout.write(json.dumps(doc, sort_keys=False) + "\n")
        sys.stdout.flush()

    def text(self, text: str) -> None:
        if not self.json:
            print(text, flush=True)

    def progress(self, message: str) -> None:
        if self.interactive:
            print(f"... {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"cutover: {message}", file=sys.stderr, flush=True)


def state_dir(args: argparse.Namespace, plan: planmod.Plan) -> Path:
    return Path(args.state) if args.state else plan.path.parent / STATE_DIR


def load_plans(paths: Sequence[str]) -> list[planmod.Plan]:
    """Every plan, validated before any provider is contacted; all problems at once."""
    plans, problems = [], []
    for path in paths:
        try:
            plans.append(planmod.load(path))
        except PlanError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("\n".join(problems)) from None
    return plans


@contextmanager
def context(args: argparse.Namespace, plan: planmod.Plan, out: Output) -> Iterator[applymod.Context]:
    journal = Journal(state_dir(args, plan))
    provider = None
    try:
        provider = registry.create(plan.provider.type, plan.zone, dict(plan.provider.settings))
        yield applymod.Context(plan, provider, journal, progress=out.progress)
    finally:
        if provider is not None:
            provider.close()
        journal.close()


@dataclass(frozen=True)
class Failure:
    plan: planmod.Plan
    message: str
    exit_code: int

    def as_dict(self) -> dict:
        return {"plan": str(self.plan.path), "zone": self.plan.zone, "error": self.message, "exit_code": self.exit_code}


def explain(exc: Exception) -> tuple[str, int]:
    """The one-line message and exit code for any failure: ours, the network's, or a bug."""
    if isinstance(exc, CutoverError):
        return str(exc), exc.exit_code
    if isinstance(exc, (OSError, dns.exception.DNSException)):
        return f"network or system failure: {type(exc).__name__}: {exc}", ProviderError.exit_code
    if os.environ.get("CUTOVER_DEBUG"):
        traceback.print_exception(exc)
    return f"unexpected error: {type(exc).__name__}: {exc} (CUTOVER_DEBUG=1 shows the traceback)", ProviderError.exit_code


def per_plan(plans: Sequence[planmod.Plan], out: Output, fn: Callable[[planmod.Plan], Any]) -> tuple[list[Any], int]:
    """Run ``fn`` for each plan; one zone failing, whatever the failure, does not stop the others."""
    results: list[Any] = []
    worst = 0
    for plan in plans:
        try:
            results.append(fn(plan))
        except Exception as exc:  # noqa: BLE001 - each zone is its own unit; explain() keeps bugs visible
            message, code = explain(exc)
            out.error(message)
            results.append(Failure(plan, message, code))
            worst = max(worst, code)
    return results, worst


# ---------------------------------------------------------------------- commands


def cmd_diff(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)

    def one(plan: planmod.Plan):
        with context(args, plan, out) as ctx:
            return applymod.zone_diff(ctx)

    results, worst = per_plan(plans, out, one)
    if out.json:
        out.document({"plans": [r.as_dict() for r in results]})
    for r in results:
        if not isinstance(r, Failure):
            out.text(render.diff_text(r))
    if worst:
        return worst
    return 1 if any(not r.in_sync for r in results) else 0


def cmd_prepare(args: argparse.Namespace, out: Output) -> int:
    return _change(args, out, lambda ctx: applymod.prepare(ctx))


def cmd_apply(args: argparse.Namespace, out: Output) -> int:
    confirm = _confirmer(args, out, "apply")
    return _change(args, out, lambda ctx: applymod.apply(ctx, force=args.force, verify_after=not args.no_verify, confirm=confirm))


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    confirm = _confirmer(args, out, "roll back")
    return _change(args, out, lambda ctx: applymod.rollback(ctx, force=args.force, verify_after=not args.no_verify, confirm=confirm))


def _change(args: argparse.Namespace, out: Output, fn: Callable[[applymod.Context], applymod.Outcome]) -> int:
    plans = load_plans(args.plans)

    def one(plan: planmod.Plan) -> applymod.Outcome:
        with context(args, plan, out) as ctx:
            return fn(ctx)

    results, worst = per_plan(plans, out, one)
    unverified = [r for r in results if isinstance(r, applymod.Outcome) and r.status == "unverified"]
    for r in unverified:  # landed, but not every nameserver serves it: not a success to script on
        out.error(f"{r.plan.zone}: changed, but not every authoritative server serves the new data yet; "
                  "run apply again to check again")
    worst = max(worst, ProviderError.exit_code if unverified else 0)
    if out.json:
        out.document({"plans": [r.as_dict() for r in results]})
    else:
        for r in results:
            out.text(f"{r.plan.zone}: FAILED: {(r.message.splitlines() or ['see above'])[0]}"
                     if isinstance(r, Failure) else render.outcome_text(r))
        failed = [r for r in results if isinstance(r, Failure)]
        if len(plans) > 1:
            out.text(f"\n{len(plans) - len(failed)} of {len(plans)} zones done"
                     + (f"; failed: {', '.join(f.plan.zone for f in failed)}" if failed else ""))
    return worst


def _confirmer(args: argparse.Namespace, out: Output, verb: str) -> Callable[[Any], bool]:
    """--yes, or a question on a terminal; without a terminal, refuse before touching anything."""
    if args.yes:
        return lambda _d: True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # the question and answer use stderr and stdin
        raise UsageError(f"{verb} changes DNS: pass --yes when not running on a terminal")

    def ask(zdiff) -> bool:
        print(render.diff_text(zdiff), file=sys.stderr)
        sys.stderr.write(f"{verb.capitalize()} these changes to {zdiff.plan.zone}? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return ask


def cmd_watch(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)
    notify_urls = [notifymod.check_url(url) for url in args.notify]  # a typo fails before any provider call
    watches: list[tuple[monitor.Setup, Journal]] = []

    def one(plan: planmod.Plan) -> None:
        with context(args, plan, out) as ctx:
            live, _ = applymod.read_live(ctx)
            nameservers = [] if plan.verify.nameservers else ctx.provider.nameservers()
            delegation = (plan.zone, "NS") in plan.keys
            setup = monitor.setup(plan, ctx.journal, live, nameservers, args.resolvers,
                                  parent_nameservers=ctx.provider.parent_nameservers() if delegation else ())
        watches.append((setup, Journal(state_dir(args, plan))))

    _, worst = per_plan(plans, out, one)
    if worst:
        return worst
    notifier = notifymod.Notifier(notify_urls) if notify_urls else None
    return watch_loop(watches, out, once=args.once, grid=args.grid, notifier=notifier)


def watch_loop(watches: list[tuple[monitor.Setup, Journal]], out: Output, *, once: bool, grid: bool = False,
               notifier: notifymod.Notifier | None = None) -> int:
    """Show every round; exit 0 when the verdict is reached, 1 when ``--once`` ends before it.

    The notifier only queues (its threads post), so a slow webhook never delays a round.
    """
    view = LiveView(sys.stdout, grid=grid)
    last: dict[str, bool] = {}
    try:
        if notifier is not None:
            for setup_, journal in watches:  # a restarted watch does not repeat old news
                notifier.seed(journal.last_round(setup_.plan.zone))
        for doc in monitor.rounds(watches, once=once):
            last[doc["zone"]] = doc["verdict"]["retire"]
            out.document(doc) if out.json else view.update(doc)
            if notifier is not None:
                notifier.observe(doc)
    except Exception as exc:
        if notifier is not None:
            reason = str(exc) if isinstance(exc, CutoverError) else f"{type(exc).__name__}: {exc}"
            notifier.error([s.plan.zone for s, _ in watches], reason)
        raise
    finally:
        view.close()
        for _, journal in watches:
            journal.close()
        if notifier is not None:
            notifier.close(NOTIFY_FLUSH)
    return 0 if all(last.values()) else 1


def cmd_report(args: argparse.Namespace, out: Output) -> int:
    """One self-contained HTML page (``-o FILE``, else stdout) or, with ``--format json``, its data."""
    plans = load_plans(args.plans)
    if not out.json and not args.output and sys.stdout.isatty():
        raise UsageError("report: give -o FILE for the HTML page (or --format json, or redirect stdout)")
    now = time.time()

    def one(plan: planmod.Plan) -> reportmod.ZoneReport:
        journal = Journal(state_dir(args, plan))
        try:
            return reportmod.build(plan, journal, now)
        finally:
            journal.close()

    results, worst = per_plan(plans, out, one)
    reports = [r.as_dict() if isinstance(r, Failure) else r for r in results]
    if args.output or not out.json:
        page = report_html.render(reports, now)
        if args.output:
            target = Path(args.output)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_text(page, encoding="utf-8")
            os.replace(partial, target)
            out.text(f"wrote {target} ({len(plans)} zone{'s' if len(plans) != 1 else ''})")
        else:
            sys.stdout.write(page)
    if out.json:
        out.document(reportmod.document(reports, now))
    return worst


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)

    def one(plan: planmod.Plan) -> dict:
        journal = Journal(state_dir(args, plan))
        try:
            doc = monitor.status(plan, journal)
            doc["timeline"] = [asdict(e) for e in reportmod.milestones(reportmod.build(plan, journal))]
            return doc
        finally:
            journal.close()

    results, worst = per_plan(plans, out, one)
    docs = [r.as_dict() if isinstance(r, Failure) else r for r in results]
    if out.json:
        out.document({"plans": docs})
    else:
        for doc in docs:
            if "runs" in doc:
                out.text(render.status_text(doc))
    return worst


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from cutover import demo

    view = LiveView(sys.stdout, grid=args.grid)
    on_round = out.document if out.json else view.update
    result = demo.run(Path(args.dir) if args.dir else None, fast=args.fast, show=out.text, on_round=on_round)
    view.close()
    return 0 if result["last_round"]["verdict"]["retire"] else 1


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    raw = dict(_setting(s) for s in args.setting)
    cls = registry.provider_class(args.provider)
    try:
        settings = {k: planmod.substitute_env(str(v), os.environ) for k, v in raw.items()}
    except KeyError as exc:
        raise UsageError(f"--setting: environment variable {exc.args[0]} is not set") from None
    problems = cls.check_settings(settings)
    if problems:
        raise UsageError("; ".join(f"--setting {k}: {m}" for k, m in problems))
    try:
        zone = planmod.zone_name(args.zone)
    except ValueError as exc:
        raise UsageError(f"--zone: {exc}") from None
    provider = registry.create(args.provider, zone, settings)
    try:
        doc = exportmod.skeleton(provider, args.provider, raw)
    finally:
        provider.close()
    text = json.dumps(doc) + "\n" if out.json else exportmod.to_yaml(doc)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        out.progress(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--setting {text!r}: expected KEY=VALUE (use ${{ENV}} for secrets)")
    return key.strip(), value


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON document on stdout")
    common.add_argument("--state", metavar="DIR", help="state directory (default: .cutover/ beside the plan)")

    parser = argparse.ArgumentParser(prog="cutover", description="Move a domain's web and mail service to a new server through DNS, safely.")
    parser.add_argument("--version", action="version", version=f"cutover {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_: str, plans: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        if plans:
            p.add_argument("plans", nargs="+", metavar="PLAN", help="plan file(s), one zone each")
        p.set_defaults(handler=handler)
        return p

    command("diff", cmd_diff, "dry run: what apply would change (exit 0 in sync, 1 changes pending)")
    command("prepare", cmd_prepare, "lower the managed record sets' TTL to prepare.ttl ahead of the window")
    for name, handler, help_ in (
        ("apply", cmd_apply, "check the guards, change the records, wait, verify at every nameserver"),
        ("rollback", cmd_rollback, "put back exactly the record sets the last apply replaced"),
    ):
        p = command(name, handler, help_)
        p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
        p.add_argument("--force", action="store_true", help="override the drift, TTL and safety guards")
        p.add_argument("--no-verify", action="store_true", help="do not poll the authoritative servers afterwards")
    p = command("watch", cmd_watch, "query resolvers in rounds until the retire verdict is reached")
    p.add_argument("--once", action="store_true", help="one round; exit 0 if the verdict is reached, else 1")
    p.add_argument("--resolvers", metavar="SPEC", help="public[:unfiltered|country=XX|operator=NAME], a file, or ip[:port],...")
    p.add_argument("--grid", action="store_true", help="show every resolver's answer on a terminal")
    p.add_argument("--notify", action="append", default=[], metavar="URL",
                   help="post a message to this Slack/Teams-style webhook on milestones and errors (repeatable)")
    p = command("report", cmd_report, "one self-contained HTML report of the cutover from the journal")
    p.add_argument("-o", "--output", metavar="FILE", help="write the HTML page here (default: stdout)")
    command("status", cmd_status, "what was applied when, the last watch round, and the retire verdict")
    p = command("demo", cmd_demo, "a whole cutover against a DNS sandbox on loopback (about a minute)", plans=False)
    p.add_argument("--fast", action="store_true", help="seconds instead of a minute (for tests)")
    p.add_argument("--dir", help="keep the demo's plan, zone and journal here (default: a temporary folder)")
    p.add_argument("--grid", action="store_true", help="show every resolver's answer on a terminal")
    p = command("export", cmd_export, "write a plan skeleton from the live zone", plans=False)
    p.add_argument("--provider", required=True, help="provider type, e.g. route53")
    p.add_argument("--zone", required=True, help="the zone, e.g. example.com")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE", help="provider setting (repeatable; ${ENV} allowed)")
    p.add_argument("-o", "--output", help="write the plan here instead of stdout")
    return parser


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that a run in flight settles its journal first."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def _more_open_files() -> None:
    """A watch round holds one socket per query in flight; allow as many as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # the pool then stays within the soft limit, as watch.py already ensures


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(json=args.format == "json")
    signal.signal(signal.SIGTERM, _terminate)
    _more_open_files()
    try:
        return int(args.handler(args, out))
    except (KeyboardInterrupt, Terminated) as exc:
        out.error("interrupted; the journal records how far the run got (see `cutover status`)")
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback by default
        message, code = explain(exc)
        out.error(message)
        return code
