"""The one façade every front end uses: plans in, results out.

A session owns what the commands share: the plans (validated before any provider is
contacted), one journal per state directory (and its locks), a provider per zone while
it is used, and the clock. The CLI parses arguments, calls a session and renders what
comes back; the demo tells its story through the same calls; neither wires providers
or journals itself. Each zone is its own unit: ``each`` runs an operation for every
plan, and one zone failing, whatever the failure, does not stop the others.
"""

from __future__ import annotations

import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Mapping, Sequence, TypeVar, Union

import dns.exception

from cutover import audit
from cutover.audit import run as auditrun
from cutover.audit.store import AuditStore
from cutover import apply as applymod, export as exportmod, fleet as fleetmod, monitor, plan as planmod, report as reportmod
from cutover.diff import ZoneDiff
from cutover.errors import CutoverError, PlanError, ProviderError, UsageError
from cutover.journal import Journal
from cutover.observe.probes import SettingError
from cutover.observe.probes.services import ProbeEntry, parse_entries, unmeasurable
from cutover.planfile import read_yaml
from cutover.readiness import Check
from cutover.records import RecordKey, RecordSet, index
from cutover.values import substitute_tree
from providers import registry
from providers.base import Provider

#: The state directory beside a plan, unless ``--state`` says otherwise.
STATE_DIR = ".cutover"

T = TypeVar("T")
#: A fleet's progress is said every this many zones (on a terminal; the zones' own steps too).
PROGRESS_EVERY = 100


@dataclass(frozen=True)
class Results(Generic[T]):
    """What ``Session.each`` gives back: every zone's result (or its failure), the worst
    exit code among the failures, and each fleet's share of the results."""

    items: list[Any]  # T | Failure, in the plans' order
    worst: int
    fleets: list[fleetmod.FleetRun]


@dataclass(frozen=True)
class Failure:
    """One zone's failure, in place of its result."""

    plan: "planmod.Plan | fleetmod.FleetPlan"
    message: str
    exit_code: int

    def as_dict(self) -> dict[str, Any]:
        return {"plan": str(self.plan.path), "zone": self.plan.zone, "error": self.message, "exit_code": self.exit_code}


@dataclass(frozen=True)
class Readiness:
    """``cutover check`` for one zone: every check of the servers its plan moves to."""

    plan: planmod.Plan
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"plan": str(self.plan.path), "zone": self.plan.zone, "ready": self.ready,
                "checks": [c.as_dict() for c in self.checks]}


def explain(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for any failure: ours, the network's, or a bug."""
    if isinstance(exc, CutoverError):
        return str(exc), exc.exit_code
    if isinstance(exc, (OSError, dns.exception.DNSException)):
        return f"network or system failure: {type(exc).__name__}: {exc}", ProviderError.exit_code
    if os.environ.get("CUTOVER_DEBUG"):
        traceback.print_exception(exc)
    return f"unexpected error: {type(exc).__name__}: {exc} (CUTOVER_DEBUG=1 shows the traceback)", ProviderError.exit_code


AnyPlan = Union[planmod.Plan, fleetmod.FleetPlan]


def load_plans(paths: Sequence[str | Path], environ: Mapping[str, str] | None = None) -> list[AnyPlan]:
    """Every plan (a zone's, or a fleet's), validated before any provider is contacted;
    all problems at once."""
    env = os.environ if environ is None else environ
    plans: list[AnyPlan] = []
    problems = []
    for path in map(Path, paths):
        try:
            data = read_yaml(path)
            plans.append(fleetmod.build(data, path, env) if fleetmod.is_fleet(data) else planmod.build(data, path, env))
        except PlanError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("\n".join(problems)) from None
    return plans


def load_probes(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[ProbeEntry, ...] | None:
    """``--probes``: a YAML file holding a list of ``watch.probes`` entries, used instead
    of the plans'; ``none`` watches without probes; None (not given) keeps the plans'."""
    if text is None:
        return None
    if text == "none":
        return ()
    try:
        data = read_yaml(Path(text))
    except PlanError as exc:
        raise UsageError(f"--probes {exc}") from None
    data, missing = substitute_tree(data, os.environ if environ is None else environ, "--probes")
    if missing:
        raise UsageError(f"--probes {text}: {missing[0][0]}: environment variable {missing[0][1]} is not set")
    try:
        return parse_entries(data, "probes")
    except SettingError as exc:
        raise UsageError(f"--probes {text}: {exc.field}: {exc.message}") from None


class Session:
    """Journals, providers and the clock for one invocation; ``close`` releases them."""

    def __init__(self, *, state: Path | None = None, progress: Callable[[str], None] = lambda _m: None,
                 warn: Callable[[str], None] = lambda _m: None, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.progress = progress
        self.warn = warn
        self.clock = clock
        self._journals: dict[Path, Journal] = {}
        self._prefetched: dict[tuple[Path, str], Mapping[RecordKey, RecordSet]] = {}  # a fleet's zones as read

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for journal in self._journals.values():
            journal.close()
        self._journals.clear()

    # ------------------------------------------------------------------ plumbing

    def state_dir(self, plan: planmod.Plan) -> Path:
        return self.state if self.state is not None else plan.path.parent / STATE_DIR

    def journal(self, plan: planmod.Plan) -> Journal:
        """One journal per state directory: several plans may share it, and its locks."""
        directory = self.state_dir(plan).resolve()
        if directory not in self._journals:
            self._journals[directory] = Journal(directory)
        return self._journals[directory]

    @contextmanager
    def zone(self, plan: planmod.Plan) -> Iterator[applymod.Context]:
        """A zone's context: its journal and, while it is used, its provider."""
        journal = self.journal(plan)
        provider = self.provider(plan)
        try:
            yield applymod.Context(plan, provider, journal, progress=self.progress, clock=self.clock,
                                   prefetched=self._prefetched.pop((plan.path, plan.zone), None))
        finally:
            provider.close()

    @staticmethod
    def provider(plan: planmod.Plan) -> Provider:
        return registry.create(plan.provider.type, plan.zone, dict(plan.provider.settings),
                               verify_nameservers=plan.verify.nameservers)

    def each(self, plans: Sequence[AnyPlan], operation: Callable[[planmod.Plan], T], *,
             source: str = fleetmod.LIVE, stages: tuple[Callable[[planmod.Plan], T], Callable[[T], T]] | None = None,
             ) -> "Results[T]":
        """``operation`` for every zone, in the plans' order (a fleet plan stands for each
        of its zones, found as ``source`` says: ``cutover.fleet.LIVE`` and the others); a
        failure is reported (``warn``) and stands in for its zone's result.

        With ``stages`` (start, finish), a fleet's zones are all started first and then
        each finished: a change that the provider takes a minute to put in sync (Route 53)
        would otherwise cost a minute a zone, days for a large fleet."""
        results: list[T | Failure] = []
        fleets: list[fleetmod.FleetRun] = []
        for plan in plans:
            if isinstance(plan, planmod.Plan):
                results.append(self._one(plan, operation))
                continue
            found = self._expand(plan, source)
            if isinstance(found, Failure):
                results.append(found)
                continue
            mine: list[T | Failure] = []
            for zone, why in found.failed:
                failure = Failure(fleetmod.stand_in(plan, zone), f"{zone}: {why}", ProviderError.exit_code)
                self.warn(failure.message)
                mine.append(failure)
            count = len(found.plans)
            if stages is None:
                mine += [self._counted(plan, k, count, "done", self._one(zone_plan, operation))
                         for k, zone_plan in enumerate(found.plans, start=1)]
            else:
                start, finish = stages
                started = [self._counted(plan, k, count, "started", self._one(zone_plan, start))
                           for k, zone_plan in enumerate(found.plans, start=1)]
                mine += [self._counted(plan, k, count, "finished", self._finish(zone_plan, r, finish))
                         for k, (zone_plan, r) in enumerate(zip(found.plans, started), start=1)]
            results += mine
            fleets.append(fleetmod.FleetRun(plan, found, tuple(mine)))
        worst = max((r.exit_code for r in results if isinstance(r, Failure)), default=0)
        return Results(results, worst, fleets)

    def _one(self, plan: planmod.Plan, operation: Callable[[planmod.Plan], T]) -> T | Failure:
        try:
            return operation(plan)
        except Exception as exc:  # noqa: BLE001 - each zone is its own unit; explain() keeps bugs visible
            message, code = explain(exc)
            self.warn(message)
            return Failure(plan, message, code)

    def _counted(self, fleet: fleetmod.FleetPlan, k: int, count: int, what: str, result: T) -> T:
        """``result``, after saying how far a long fleet has got (every ``PROGRESS_EVERY`` zones)."""
        if k % PROGRESS_EVERY == 0 or (k == count and count >= PROGRESS_EVERY):
            self.progress(f"{fleet.zone}: {what} {k:,} of {count:,} zones")
        return result

    def _finish(self, plan: planmod.Plan, started: Any, finish: Callable[[Any], Any]) -> Any:
        """The second stage of a zone whose first stage did not fail."""
        if isinstance(started, Failure):
            return started
        return self._one(plan, lambda _plan: finish(started))

    def _expand(self, f: fleetmod.FleetPlan, source: str) -> fleetmod.Expansion | Failure:
        """A fleet plan as the plans of its zones (``cutover.fleet``); a fleet whose zones
        cannot be listed is one failure, a zone that cannot be read is its own."""
        try:
            found = self._from_journal(f, source) if source != fleetmod.LIVE else None
            found = found or self._from_provider(f)
        except Exception as exc:  # noqa: BLE001 - a fleet that cannot be listed fails alone
            message, code = explain(exc)
            self.warn(f"{f.zone}: {message}")
            return Failure(f, f"{f.zone}: {message}", code)
        self.progress(f"{f.zone}: {len(found.plans)} zone(s) to act on ({found.source}), {len(found.untouched)} "
                      f"without the moved addresses, {len(found.failed)} failed")
        return found

    def _from_journal(self, f: fleetmod.FleetPlan, source: str) -> fleetmod.Expansion | None:
        """The zones this fleet changed, from the journal; None when it changed none yet."""
        journal = self.journal(fleetmod.stand_in(f, "."))
        zones = fleetmod.journalled_zones(f, journal.zone_plans())
        if not zones:
            return None
        return fleetmod.from_journal(f, zones, journal.runs, rolled_back=source == fleetmod.HISTORY)

    def _from_provider(self, f: fleetmod.FleetPlan) -> fleetmod.Expansion:
        settings = dict(fleetmod.stand_in(f, ".").provider.settings)
        if f.zones is None:
            lister = registry.create(f.provider_type, ".", settings)
            try:
                zones: Sequence[str] = lister.zones()
            finally:
                lister.close()
        else:
            zones = f.zones
        journal = self.journal(fleetmod.stand_in(f, "."))

        def read(zone: str) -> dict[RecordKey, RecordSet]:
            provider = registry.create(f.provider_type, zone, settings)
            try:
                return index(provider.records())
            finally:
                provider.close()

        found = fleetmod.expand(f, zones, read, journal.runs, self.progress)
        self._prefetched.update(((f.path, zone), records) for zone, records in found.live.items())
        return found

    # ------------------------------------------------------------------ operations

    def diff(self, plan: planmod.Plan) -> ZoneDiff:
        with self.zone(plan) as ctx:
            return applymod.zone_diff(ctx)

    def check(self, plan: planmod.Plan) -> Readiness:
        """Are the new web and mail servers ready for the zone? (The ``readiness`` guard.)"""
        with self.zone(plan) as ctx:
            live, _ = applymod.read_live(ctx)
            return Readiness(plan, tuple(applymod.readiness_checks(ctx, live)))

    def prepare(self, plan: planmod.Plan) -> applymod.Outcome:
        with self.zone(plan) as ctx:
            return applymod.prepare(ctx)

    def apply(self, plan: planmod.Plan, **options: Any) -> applymod.Outcome:
        with self.zone(plan) as ctx:
            return applymod.apply(ctx, **options)

    def rollback(self, plan: planmod.Plan, **options: Any) -> applymod.Outcome:
        with self.zone(plan) as ctx:
            return applymod.rollback(ctx, **options)

    def finish(self, started: applymod.Outcome, **options: Any) -> applymod.Outcome:
        """The second stage of an apply or rollback started with ``settle=False``."""
        with self.zone(started.plan) as ctx:
            return applymod.finish(ctx, started, **options)

    def watch(self, plan: planmod.Plan, resolver_spec: Any = None,
              probes: Sequence[ProbeEntry] | None = None) -> tuple[monitor.Setup, Journal]:
        """What to watch, under the state's watch lock. The DNS host being down must not stop
        a watch: without the provider the journal still says what changed, and the
        authoritative servers are then reported unreachable in every round (which holds
        the verdict back), not a reason to exit. ``probes`` replaces the plan's entries."""
        journal = self.journal(plan)
        journal.lock_watch()
        with self.zone(plan) as ctx:
            try:
                live, _ = applymod.read_live(ctx)
            except (ProviderError, OSError, dns.exception.DNSException) as exc:
                self.warn(f"{plan.zone}: the zone could not be read ({exc}); watching what the journal knows, "
                          "the authoritative servers are asked every round")
                live = {}
            nameservers = [] if plan.verify.nameservers else self._nameservers(ctx.provider, plan)
            delegation = (plan.zone, "NS") in plan.keys
            setup = monitor.setup(plan, journal, live, nameservers, resolver_spec,
                                  parent_nameservers=ctx.provider.parent_nameservers() if delegation else (),
                                  probes=probes)
        for note in unmeasurable(setup.probes, setup.targets):
            self.warn(f"{plan.zone}: {note}")
        return setup, journal

    def _nameservers(self, provider: Provider, plan: planmod.Plan) -> list[str]:
        try:
            return list(provider.nameservers())
        except (ProviderError, OSError, dns.exception.DNSException) as exc:
            self.warn(f"{plan.zone}: the provider could not name the zone's servers ({exc}); set verify.nameservers")
            return []

    def status(self, plan: planmod.Plan) -> dict[str, Any]:
        journal = self.journal(plan)
        doc = monitor.status(plan, journal)
        doc["timeline"] = [asdict(e) for e in reportmod.milestones(reportmod.build(plan, journal))]
        return doc

    def report(self, plan: planmod.Plan, now: float) -> reportmod.ZoneReport:
        return reportmod.build(plan, self.journal(plan), now)

    def audit(self, request: "audit.AuditRequest", meter: "auditrun.Meter | None" = None) -> "audit.AuditReport":
        """``cutover audit``: the domains without a stored result are asked, then all are
        reported. The results live in the state directory (default: beside DOMAINS)."""
        state = self.state if self.state is not None else request.domains.path.resolve().parent / STATE_DIR
        with AuditStore(state, request.params) as store:
            return auditrun.run(request, store, meter)

    @staticmethod
    def export(request: exportmod.Request) -> dict[str, Any]:
        """A plan skeleton from the live zone (every option was checked before this call)."""
        provider = registry.create(request.provider.type, request.zone, dict(request.provider.settings))
        try:
            return exportmod.skeleton(provider, request)
        finally:
            provider.close()

