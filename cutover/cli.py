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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

from cutover import __version__, apply as applymod, export as exportmod, monitor, notify as notifymod, plan as planmod, render
from cutover import audit, fleet, guards, times
from cutover import report as reportmod, report_html
from cutover.diff import ZoneDiff
from cutover.errors import CutoverError, GuardError, ProviderError, UsageError
from cutover.journal import Journal
from cutover.liveview import LiveView
from cutover.session import Failure, Readiness, Session, explain, load_plans, load_probes
#: Version of the JSON documents' shapes, in every document as ``schema``: 2 since the
#: verdict gained authoritative agreement, quorum and records left behind.
SCHEMA_VERSION = 2
#: Seconds ``watch`` waits at exit for queued webhook messages.
NOTIFY_FLUSH = 5.0


# ---------------------------------------------------------------------- plumbing


@dataclass
class Output:
    """Where things go: JSON documents or tables on stdout, progress on stderr (terminals only)."""

    json: bool
    command: str = ""
    written: int = 0

    @property
    def interactive(self) -> bool:
        return sys.stdout.isatty()

    def document(self, doc: Any) -> None:
        """One JSON document on a line, stamped with the schema version of the shapes."""
        sys.stdout.write(json.dumps({"schema": SCHEMA_VERSION, **doc}, sort_keys=False) + "\n")
        sys.stdout.flush()
        self.written += 1

    def failure(self, message: str, code: int) -> None:
        """A command that failed as a whole: with ``--format json`` still one document,
        the problems one per entry (a bad plan lists each of its problems)."""
        self.error(message)
        if self.json:
            problems = [line.strip() for line in message.splitlines() if line.strip()]
            self.document({"command": self.command, "error": problems[0] if problems else message,
                           "problems": problems, "exit_code": code})

    def text(self, text: str) -> None:
        if not self.json:
            print(text, flush=True)

    def progress(self, message: str) -> None:
        if self.interactive:
            print(f"... {message}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"cutover: {message}", file=sys.stderr, flush=True)


@contextmanager
def session(args: argparse.Namespace, out: Output) -> Iterator[Session]:
    with Session(state=Path(args.state) if getattr(args, "state", None) else None,
                 progress=out.progress, warn=out.error) as s:
        yield s


# ---------------------------------------------------------------------- commands


def cmd_diff(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)
    with session(args, out) as s:
        done = s.each(plans, s.diff)
    results, worst = done.items, done.worst
    fleets = [f.summary(_state(_diff_state), _changes) for f in done.fleets]
    if out.json:
        out.document(_with_fleets({"plans": [r.as_dict() for r in results]}, fleets))
    for r in results:
        if not isinstance(r, Failure):
            out.text(render.diff_text(r))
    _fleet_texts(out, fleets)
    if worst:
        return worst
    diffs = [r for r in results if isinstance(r, ZoneDiff)]
    if args.check and any(r.refusals for r in diffs):
        return GuardError.exit_code
    return 1 if any(not r.in_sync for r in diffs) else 0


def cmd_check(args: argparse.Namespace, out: Output) -> int:
    """Exit 0 when every plan's new servers are ready, 1 when one is not, 2 for a bad plan,
    3 when the checks could not run (the provider could not be read)."""
    plans = load_plans(args.plans)
    with session(args, out) as s:
        done = s.each(plans, s.check)
    results, worst = done.items, done.worst
    fleets = [f.summary(_state(lambda r: "ready" if r.ready else "not ready")) for f in done.fleets]
    if out.json:
        out.document(_with_fleets({"plans": [r.as_dict() for r in results]}, fleets))
    else:
        for r in results:
            if not isinstance(r, Failure):
                out.text(render.readiness_text(r.plan.zone, str(r.plan.path), r.checks))
        _fleet_texts(out, fleets)
    if worst:
        return worst
    return 0 if all(r.ready for r in results if isinstance(r, Readiness)) else 1


def cmd_prepare(args: argparse.Namespace, out: Output) -> int:
    return _change(args, out, lambda s, plan, _settle: s.prepare(plan))


def cmd_apply(args: argparse.Namespace, out: Output) -> int:
    force = forced_guards(args.force)
    confirm = _confirmer(args, out, "apply", force)
    wait = (lambda until, why: countdown(until, why, out)) if args.wait else None
    return _change(args, out, lambda s, plan, settle: s.apply(plan, force=force, verify_after=not args.no_verify,
                                                              confirm=confirm, wait=wait, settle=settle), staged=True)


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    force = forced_guards(args.force)
    confirm = _confirmer(args, out, "roll back", force)
    return _change(args, out, lambda s, plan, settle: s.rollback(plan, force=force, verify_after=not args.no_verify,
                                                                 confirm=confirm, settle=settle),
                   source=fleet.APPLIED, staged=True)


def forced_guards(given: Sequence[str] | None) -> bool | frozenset[str]:
    """``--force`` alone overrides every guard; ``--force ttl --force safety`` those two."""
    if not given:
        return False
    return True if "all" in given else frozenset(given)


def countdown(until: float, why: str, out: Output) -> None:
    """``apply --wait``: sleep until ``until``, counting down on a terminal."""
    out.error(f"waiting until {times.iso(until)} for {why} (Ctrl-C stops; nothing has been changed)")
    while (left := until - time.time()) > 0:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  {times.duration(left)} left  ")
            sys.stderr.flush()
        time.sleep(min(1.0, left))
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 24 + "\r")


def _change(args: argparse.Namespace, out: Output, operation: Callable[[Session, planmod.Plan, bool], applymod.Outcome],
            source: str = fleet.LIVE, staged: bool = False) -> int:
    """``operation(session, plan, settle)``; ``staged``: a fleet's zones are all changed
    first (settle False), then each waited for and verified (``Session.finish``)."""
    plans = load_plans(args.plans)
    with session(args, out) as s:
        stages = None
        if staged:
            verify_after = not args.no_verify
            stages = (lambda plan: operation(s, plan, False), lambda started: s.finish(started, verify_after=verify_after))
        done = s.each(plans, lambda plan: operation(s, plan, True), source=source, stages=stages)
    results, worst = done.items, done.worst
    fleets = [f.summary(_state(lambda r: r.status), _changes) for f in done.fleets]
    unverified = [r for r in results if isinstance(r, applymod.Outcome) and r.status == "unverified"]
    for r in unverified:  # landed, but not every nameserver serves it: not a success to script on
        out.error(f"{r.plan.zone}: changed, but not every authoritative server serves the new data yet; "
                  f"run `cutover {r.kind}` again to check again (`cutover watch` follows them too)")
    worst = max(worst, ProviderError.exit_code if unverified else 0)
    if out.json:
        out.document(_with_fleets({"plans": [r.as_dict() for r in results]}, fleets))
        return worst
    for result in results:
        out.text(f"{result.plan.zone}: FAILED: {(result.message.splitlines() or ['see above'])[0]}"
                 if isinstance(result, Failure) else render.outcome_text(result))
    _fleet_texts(out, fleets)
    failed = [r for r in results if isinstance(r, Failure)]
    if len(results) > 1 and not fleets:
        out.text(f"\n{len(results) - len(failed)} of {len(results)} zones done"
                 + (f"; failed: {', '.join(f.plan.zone for f in failed)}" if failed else ""))
    return worst


def _confirmer(args: argparse.Namespace, out: Output, verb: str, force: bool | frozenset[str]) -> Callable[[Any], bool]:
    """--yes, or a question on a terminal; without a terminal, refuse before touching anything.
    The question shows the diff and every guard being overridden."""
    if args.yes:
        return lambda _d: True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # the question and answer use stderr and stdin
        raise UsageError(f"{verb} changes DNS: pass --yes when not running on a terminal")

    every: list[bool] = []  # "all": yes to this zone and every zone after it (a fleet)

    def ask(zdiff: ZoneDiff) -> bool:
        print(render.diff_text(zdiff, overriding=force), file=sys.stderr)
        if every:
            return True
        sys.stderr.write(f"{verb.capitalize()} these changes to {zdiff.plan.zone}? [y/N/all] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer == "all":
            every.append(True)
        return answer in ("y", "yes", "all")

    return ask


def cmd_watch(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)
    notify_urls = [notifymod.check_url(url) for url in args.notify]  # a typo fails before any provider call
    with session(args, out) as s:
        probes = load_probes(args.probes)
        done = s.each(plans, lambda plan: s.watch(plan, args.resolvers, probes), source=fleet.APPLIED)
        if done.worst:
            return done.worst
        watches = [r for r in done.items if not isinstance(r, Failure)]
        if not watches:
            raise UsageError("nothing to watch: no zone of these plans holds a change (apply the fleet first)")
        notifier = notifymod.Notifier(notify_urls) if notify_urls else None
        return watch_loop(watches, out, once=args.once, grid=args.grid, notifier=notifier)


def watch_loop(watches: list[tuple[monitor.Setup, Journal]], out: Output, *, once: bool, grid: bool = False,
               notifier: notifymod.Notifier | None = None) -> int:
    """Show every round; exit 0 when the verdict is reached, 1 when ``--once`` ends before it.

    The notifier only queues (its threads post), so a slow webhook never delays a round.
    The view does the pause between rounds, so that its countdown moves and a resized
    terminal is redrawn; when the watch stops, its last panel says why.
    """
    interval = None if once else min((s.plan.watch.interval for s, _ in watches), default=None)
    view = LiveView(sys.stdout, grid=grid, interval=interval)
    last: dict[str, bool] = {}
    ending = ""
    try:
        if notifier is not None:
            for setup_, journal in watches:  # a restarted watch does not repeat old news
                notifier.seed(monitor.last_round(journal, setup_.plan.zone))
        for seen, doc in enumerate(monitor.rounds(watches, once=once, sleep=view.sleep), start=1):
            last[doc["zone"]] = doc["verdict"]["retire"]
            out.document(doc) if out.json else view.update(doc)
            if len(watches) > 1 and seen % len(watches) == 0 and not (out.json or view.tty):  # a log: one line a round
                out.text(f"round {doc['round']}: {sum(last.values()):,} of {len(last):,} zones ready to retire")
            if notifier is not None:
                notifier.observe(doc)
    except Exception as exc:
        ending = "stopped by the error below; the journal keeps every round"
        if notifier is not None:
            reason = str(exc) if isinstance(exc, CutoverError) else f"{type(exc).__name__}: {exc}"
            notifier.error([s.plan.zone for s, _ in watches], reason)
        raise
    except BaseException:  # Ctrl-C, SIGTERM
        ending = "stopped; the journal keeps every round (cutover status shows the verdict)"
        raise
    finally:
        view.close(ending)
        if notifier is not None:
            notifier.close(NOTIFY_FLUSH)
    return 0 if all(last.values()) else 1


def cmd_report(args: argparse.Namespace, out: Output) -> int:
    """One self-contained HTML page (``-o FILE``, else stdout) or, with ``--format json``, its data."""
    plans = load_plans(args.plans)
    if not out.json and not args.output and sys.stdout.isatty():
        raise UsageError("report: give -o FILE for the HTML page (or --format json, or redirect stdout)")
    now = time.time()
    with session(args, out) as s:
        done = s.each(plans, lambda plan: s.report(plan, now), source=fleet.HISTORY)
    results, worst = done.items, done.worst
    reports = [r.as_dict() if isinstance(r, Failure) else r for r in results]
    fleets = [_retiring(f.summary(_state(_report_state)), f.results, lambda r: r.verdict) for f in done.fleets]
    if args.output or not out.json:
        page = report_html.render(reports, now, fleets)
        if args.output:
            write_whole(Path(args.output), page)
            out.text(f"wrote {args.output} ({len(results)} zone{'s' if len(results) != 1 else ''})")
        else:
            sys.stdout.write(page)
    if out.json:
        out.document(_with_fleets(reportmod.document(reports, now), fleets))
    return worst


def write_whole(target: Path, text: str) -> None:
    """Whole or not at all: an interrupted write leaves no half file behind."""
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    plans = load_plans(args.plans)
    with session(args, out) as s:
        done = s.each(plans, s.status, source=fleet.HISTORY)
    docs = [r.as_dict() if isinstance(r, Failure) else r for r in done.items]
    fleets = [_retiring(f.summary(_state(_status_state)), f.results, lambda r: r["verdict"]) for f in done.fleets]
    if out.json:
        out.document(_with_fleets({"plans": docs}, fleets))
    else:
        for doc in docs:
            if "runs" in doc:
                out.text(render.status_text(doc))
        _fleet_texts(out, fleets)
    return done.worst


# ---------------------------------------------------------------------- fleet summaries


def _state(of: Callable[[Any], str]) -> Callable[[Any], str]:
    """A zone's state in a fleet summary: ``of`` its result, or ``failed``."""
    return lambda result: "failed" if isinstance(result, Failure) else of(result)


def _changes(result: Any) -> int:
    return 0 if isinstance(result, Failure) else len(result.changes)


def _diff_state(zdiff: ZoneDiff) -> str:
    return "in sync" if zdiff.in_sync else "refused" if zdiff.refusals else "changes pending"


def _status_state(doc: dict[str, Any]) -> str:
    """The zone's newest run, e.g. ``apply verified`` or ``rollback verified``."""
    return f"{doc['runs'][-1]['kind']} {doc['runs'][-1]['status']}" if doc["runs"] else "no run"


def _report_state(report: reportmod.ZoneReport) -> str:
    if not report.rounds:
        return "not watched"
    if report.verdict is None:  # a change came after the last round
        return "changed since the last round"
    return "ready to retire" if report.verdict.get("retire") else "not yet"


def _retiring(summary: dict[str, Any], results: Sequence[Any], verdict_of: Callable[[Any], Any]) -> dict[str, Any]:
    """``summary`` with how many zones the last round found ready to retire."""
    verdicts = [verdict_of(r) for r in results if not isinstance(r, Failure)]
    return {**summary, "retire": sum(1 for v in verdicts if v and v.get("retire"))}


def _with_fleets(doc: dict[str, Any], fleets: list[dict[str, Any]]) -> dict[str, Any]:
    """Documents keep their shape; a run over fleet plans adds ``fleets``, one summary each."""
    return {**doc, "fleets": fleets} if fleets else doc


def _fleet_texts(out: Output, fleets: list[dict[str, Any]]) -> None:
    for summary in fleets:
        out.text("\n" + render.fleet_text(summary))


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from cutover import demo

    view = LiveView(sys.stdout, grid=args.grid, interval=(demo.FAST if args.fast else demo.NORMAL).interval)
    rounds: list[dict[str, Any]] = []
    on_round = rounds.append if out.json else view.update
    try:  # the narration goes on below the last panel, so closing does not redraw it
        result = demo.run(Path(args.dir) if args.dir else None, fast=args.fast, show=out.text, on_round=on_round,
                          state=Path(args.state) if args.state else None,
                          sleep=time.sleep if out.json else view.sleep)
    finally:
        view.close()
    if out.json:  # one document, as every command gives: the story's outcome and its rounds
        out.document({"readiness": result["readiness"], "outcome": result["outcome"], "rounds": rounds,
                      "verdict": result["last_round"]["verdict"], "diff_after": result["diff_after"]})
    return 0 if result["last_round"]["verdict"]["retire"] else 1


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    """Exit 0 when every domain has moved, 1 when some have not, 2 bad input, 3 when the
    audit could not run (no resolver answers)."""
    from cutover.audit import output as auditout, run as auditrun

    if args.csv == "-" and out.json:
        raise UsageError("--csv without a FILE writes CSV to stdout; with --format json give --csv FILE")
    for option, target in (("--csv", args.csv), ("--html", args.html)):
        if target and target != "-" and Path(target).resolve() == Path(args.domains).resolve():
            raise UsageError(f"{option} {target} is the DOMAINS file itself; give another file")
    request = audit.request(args.domains, old=args.old, new=args.new, names=args.names, resolvers=args.resolvers,
                            fresh=args.fresh, recheck=args.recheck, timeout=args.timeout, retries=args.retries,
                            rate=args.rate, concurrency=args.concurrency, processes=args.processes)
    with session(args, out) as s:
        report = s.audit(request, auditrun.Meter(sys.stderr, out.error))
    if args.csv:
        text = auditout.csv_text(report)
        sys.stdout.write(text) if args.csv == "-" else write_whole(Path(args.csv), text)
    if args.html:
        write_whole(Path(args.html), auditout.html_page(report))
    if out.json:
        out.document(auditout.document(report))
    elif args.csv != "-":
        out.text(auditout.table(report))
    return 0 if report.all_moved else 1


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    """Every option checked as the plan loader would (exit 2) before the provider is contacted."""
    req = exportmod.request(args.provider, args.zone, args.setting, os.environ, only=args.only, ttl=args.ttl)
    doc = Session.export(req)
    text = json.dumps(doc) + "\n" if out.json else exportmod.to_yaml(doc)
    if args.output:
        write_whole(Path(args.output), text)
        out.progress(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


#: Commands that change DNS and journal how far they got; the others only read.
CHANGING_COMMANDS = ("prepare", "apply", "rollback")


def _interrupted(command: str) -> str:
    """What an interrupt left behind, true for the command that was interrupted."""
    if command in CHANGING_COMMANDS:
        return "interrupted; the journal records how far the run got (see `cutover status`)"
    if command == "audit":
        return "interrupted; the results so far are kept in the state directory: run the same audit again to go on"
    if command == "demo":
        return "interrupted; nothing outside the demo's own sandbox was changed"
    return f"interrupted; nothing was changed in DNS ({command} only reads it)"


# ---------------------------------------------------------------------- parser


def _force_before_plans(raw: list[str]) -> list[str]:
    """``apply --force plan.yaml`` means every guard, not a guard named plan.yaml: a bare
    ``--force`` followed by a plan file takes no value (a misspelt guard is still refused)."""
    out = []
    for i, arg in enumerate(raw):
        following = raw[i + 1] if i + 1 < len(raw) else ""
        plan_next = following.endswith((".yaml", ".yml")) or "/" in following or _is_file(following)
        out.append("--force=all" if arg == "--force" and following and plan_next else arg)
    return out


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: not a plan file anyway
        return False


class BadArguments(Exception):
    """argparse's complaint, so that ``--format json`` can still answer with a document."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise BadArguments(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cutover", description="Move a domain's web and mail service to a new server through DNS, safely.")
    parser.add_argument("--version", action="version", version=f"cutover {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_: str, plans: bool = True,
                state: str = "state directory (default: .cutover/ beside the plan)") -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON document on stdout")
        p.add_argument("--state", metavar="DIR", help=state)
        if plans:
            p.add_argument("plans", nargs="+", metavar="PLAN", help="plan file(s): one zone each, or a fleet of zones")
        p.set_defaults(handler=handler)
        return p

    p = command("diff", cmd_diff, "dry run: what apply would change and what it would refuse "
                                  "(exit 0 in sync, 1 changes pending)")
    p.add_argument("--check", action="store_true", help="exit 2 when apply would refuse (for CI), as a guard does")
    command("check", cmd_check, "is the new server ready? web (HTTP, HTTPS, certificate) and mail (SMTP, STARTTLS, "
                                "RCPT, SPF) checks of the servers the plan moves to (exit 0 ready, 1 not)")
    command("prepare", cmd_prepare, "lower the managed record sets' TTL to prepare.ttl ahead of the window")
    for name, handler, help_, overridable in (
        ("apply", cmd_apply, "check the guards, change the records, wait, verify at every nameserver", guards.GUARDS),
        ("rollback", cmd_rollback, "put back exactly the record sets the last apply replaced", ("drift",)),
    ):
        p = command(name, handler, help_)
        p.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
        p.add_argument("--force", nargs="?", action="append", const="all", metavar="GUARD",
                       choices=("all", *overridable),
                       help=f"override one guard ({', '.join(overridable)}; repeatable), or every guard without GUARD")
        p.add_argument("--no-verify", action="store_true", help="do not poll the authoritative servers afterwards")
        if name == "apply":
            p.add_argument("--wait", action="store_true",
                           help="when only the TTL guard refuses, wait until it clears (with a countdown), then apply")
    p = command("watch", cmd_watch, "query resolvers in rounds until the retire verdict is reached")
    p.add_argument("--once", action="store_true", help="one round; exit 0 if the verdict is reached, else 1")
    p.add_argument("--resolvers", metavar="SPEC", help="public[:unfiltered|country=XX|operator=NAME], a file, or ip[:port],...")
    p.add_argument("--grid", action="store_true", help="show every resolver's answer on a terminal")
    p.add_argument("--probes", metavar="FILE", help="a YAML list of probe entries (as watch.probes) instead of the "
                   "plans'; none: no probes")
    p.add_argument("--notify", action="append", default=[], metavar="URL",
                   help="post a message to this Slack/Teams-style webhook on milestones and errors (repeatable)")
    p = command("report", cmd_report, "one self-contained HTML report of the cutover from the journal")
    p.add_argument("-o", "--output", metavar="FILE", help="write the HTML page here (default: stdout)")
    command("status", cmd_status, "what was applied when, the last watch round, and the retire verdict")
    p = command("demo", cmd_demo, "a whole cutover against a DNS sandbox on loopback (about a minute)", plans=False,
                state="keep the demo's journal here (default: .cutover/ in --dir, or in a temporary folder)")
    p.add_argument("--fast", action="store_true", help="seconds instead of a minute (for tests)")
    p.add_argument("--dir", help="keep the demo's plan, zone and journal here (default: a temporary folder)")
    p.add_argument("--grid", action="store_true", help="show every resolver's answer on a terminal")
    p = command("audit", cmd_audit, "which domains, asked at their own authoritative servers, still point at the old "
                "address (exit 0 every domain moved, 1 not)", plans=False,
                state="keep the results here, so that a run resumes (default: .cutover/ beside DOMAINS)")
    p.add_argument("domains", metavar="DOMAINS", help="a file: one domain a line, or CSV with a 'domain' column")
    p.add_argument("--old", action="append", required=True, metavar="ADDR[,ADDR]", help="the address(es) to move away from")
    p.add_argument("--new", action="append", required=True, metavar="ADDR[,ADDR]", help="the address(es) to move to")
    p.add_argument("--names", action="append", default=[], metavar="NAME[,NAME]",
                   help="more names to ask in every domain, relative to it (the apex, www and the MX hosts always are)")
    p.add_argument("--resolvers", metavar="SPEC", help="where NS and outside names are looked up: a file, ip[:port],... "
                   "or public (default: the system's resolvers)")
    p.add_argument("--csv", nargs="?", const="-", metavar="FILE", help="CSV for a mail merge, to FILE (or stdout instead "
                   "of the table)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--fresh", action="store_true", help="ask every domain again (forget the stored results)")
    p.add_argument("--recheck", metavar="STATUS[,STATUS]", help="ask again the domains stored with these statuses "
                   "(e.g. old,mixed,unreachable)")
    p.add_argument("--timeout", type=float, default=audit.Limits.timeout, help="seconds per try (default %(default)s)")
    p.add_argument("--retries", type=int, default=audit.Limits.retries, help="tries after a timeout (default %(default)s)")
    p.add_argument("--rate", type=float, default=audit.Limits.rate,
                   help="at most this many queries a second to any one server (default %(default)s; 0: no limit)")
    p.add_argument("--concurrency", type=int, default=audit.Limits.concurrency,
                   help="at most this many queries in flight to any one server (default %(default)s)")
    p.add_argument("--processes", type=int, help="processes asking (default: one per core for large audits)")
    p = command("export", cmd_export, "write a plan skeleton from the live zone", plans=False,
                state="not used: export reads the zone and writes no state")
    p.add_argument("--provider", required=True, help="provider type, e.g. route53")
    p.add_argument("--zone", required=True, help="the zone, e.g. example.com")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE", help="provider setting (repeatable; ${ENV} allowed)")
    p.add_argument("--only", metavar="NAMES",
                   help="only these record sets: names or shell patterns relative to the zone, comma-separated "
                        "(e.g. www,mail,@,*.shop)")
    p.add_argument("--ttl", action="store_true",
                   help="write each record set's live TTL (default: none, so apply keeps the TTL prepare set)")
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
    raw = _force_before_plans(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(raw)
    except BadArguments as exc:
        wants_json = "--format=json" in raw or any(a == "--format" and b == "json" for a, b in zip(raw, raw[1:]))
        command = next((a for a in raw if not a.startswith("-")), "")
        Output(json=wants_json, command=command).failure(str(exc), UsageError.exit_code)
        return UsageError.exit_code
    out = Output(json=args.format == "json", command=args.command)
    signal.signal(signal.SIGTERM, _terminate)
    _more_open_files()
    try:
        return int(args.handler(args, out))
    except (KeyboardInterrupt, Terminated) as exc:
        out.error(_interrupted(args.command))
        return 143 if isinstance(exc, Terminated) else 130
    except Exception as exc:  # noqa: BLE001 - one line for the operator, never a traceback by default
        message, code = explain(exc)
        out.failure(message, code)
        return code
