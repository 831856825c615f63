"""The maintenance window: prepare, apply and rollback, each journalled step by step.

All three are the same motion — read live, check, journal, send, wait, verify — with
different changes, so one function (``_execute``) carries every change to the
provider. The provider is only ever called with a journalled run in ``sending``
state, and any doubt about what landed is settled by reading the zone back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Collection, Mapping, Sequence, Union

from cutover import diff as diffmod
from cutover import bounds, conflicts, guards, history, integrity, verify
from cutover.errors import CutoverError, GuardError, PartialApplyError, ProviderError, StateError, UsageError
from cutover.journal import LANDED, UNSETTLED, Journal, Run
from cutover.plan import Plan
from cutover.readiness import Check, run as ready_run, targets as ready_targets
from cutover.records import Change, RecordKey, RecordSet, index
from cutover.times import iso
from providers.base import ApplyReceipt, Provider

Confirm = Callable[[diffmod.ZoneDiff], bool]


@dataclass
class Context:
    """Everything one zone's run needs; built by the CLI, closed by it too."""

    plan: Plan
    provider: Provider
    journal: Journal
    progress: Callable[[str], None] = lambda _m: None
    clock: Callable[[], float] = time.time
    #: The whole zone as read a moment ago (a fleet's expansion), taken by the first
    #: ``read_live`` instead of reading again; ``Provider.apply`` still compares each
    #: change with the zone before sending it.
    prefetched: Mapping[RecordKey, RecordSet] | None = None


@dataclass(frozen=True)
class Outcome:
    """The result of prepare, apply or rollback for one zone, for rendering."""

    plan: Plan
    kind: str
    status: str
    run_id: int | None = None
    changes: tuple[Change, ...] = ()
    changed: float | None = None
    old_answers_until: float | None = None
    earliest_retire: float | None = None
    servers: tuple[verify.ServerResult, ...] = ()
    notes: tuple[str, ...] = field(default=())
    retiring: tuple[str, ...] = ()  # what the change moves away from (after a rollback: the new server)

    def as_dict(self) -> dict:
        return {
            "plan": str(self.plan.path),
            "zone": self.plan.zone,
            "kind": self.kind,
            "status": self.status,
            "run": self.run_id,
            "changes": [c.as_dict() for c in self.changes],
            "changed": iso(self.changed),
            "old_answers_until": iso(self.old_answers_until),
            "earliest_retire": iso(self.earliest_retire),
            "nameservers": [vars(s) for s in self.servers],
            "notes": list(self.notes),
            "retiring": list(self.retiring),
        }


# ---------------------------------------------------------------------- reading


def read_live(ctx: Context) -> tuple[dict[RecordKey, RecordSet], int | None]:
    """Live record sets (the managed ones, their address siblings, those of runs a crash
    left unsettled, and the SOA) and the zone's size when known. The siblings (the AAAA
    beside a managed A, and the reverse) are read even by providers that see only the
    names they are asked for, so that an address left on the old server is found."""
    unsettled = [jc.change.key for r in ctx.journal.runs(ctx.plan.zone) if r.status in UNSETTLED for jc in r.changes]
    siblings = [(name, {"A": "AAAA", "AAAA": "A"}[rtype]) for name, rtype in ctx.plan.keys if rtype in ("A", "AAAA")]
    wanted = tuple(dict.fromkeys((*ctx.plan.keys, *siblings, *unsettled, (ctx.plan.zone, "SOA"))))
    prefetched, ctx.prefetched = ctx.prefetched, None
    if prefetched is not None and ctx.provider.lists_whole_zone:
        return dict(prefetched), len(prefetched)
    records = ctx.provider.records(wanted)
    size = len(records) if ctx.provider.lists_whole_zone else None
    return index(records), size


def zone_diff(ctx: Context) -> diffmod.ZoneDiff:
    """``cutover diff``: what apply would change, and what it would refuse and why."""
    live, size = read_live(ctx)
    return review(ctx, live, size)


def review(ctx: Context, live: Mapping[RecordKey, RecordSet], size: int | None) -> diffmod.ZoneDiff:
    """The diff with every guard's refusals: ``diff`` shows them, ``apply`` acts on them.
    A diff that changes something also checks the new servers (the ``readiness`` guard)."""
    zdiff = diff_with_targets(ctx, live, size)
    if zdiff.changes:
        zdiff = replace(zdiff, readiness=tuple(readiness_checks(ctx, live)))
    return replace(zdiff, refusals=tuple(_guards(ctx, zdiff, live, size)))


def readiness_checks(ctx: Context, live: Mapping[RecordKey, RecordSet]) -> list[Check]:
    """The plan's readiness checks (``cutover check``), with the live records they need
    read first when the provider saw only the names it was asked for."""
    seen = dict(live)
    if not ctx.provider.lists_whole_zone:
        wanted = [k for k in ready_targets.keys_to_read(ctx.plan) if k not in live]
        seen.update(index(ctx.provider.records(wanted)) if wanted else {})
    return ready_run.check_plan(ready_targets.derive(ctx.plan, seen), ctx.plan.ready)


def diff_with_targets(ctx: Context, live: Mapping[RecordKey, RecordSet], size: int | None) -> diffmod.ZoneDiff:
    """The diff, with the in-zone MX/SRV/NS targets (and the names a planned CNAME would
    share) read too when the provider saw only the names it was asked for: a record never
    read would look like one that is not there."""
    zdiff = diffmod.compute(ctx.plan, live)
    if size is not None or not zdiff.changes:
        return zdiff
    keys = [*integrity.target_keys(zdiff.changes, ctx.plan.zone), *conflicts.keys_to_read(zdiff.changes)]
    wanted = [k for k in dict.fromkeys(keys) if k not in live]
    return diffmod.compute(ctx.plan, live, index(ctx.provider.records(wanted)) if wanted else {})


def reconcile(ctx: Context, live: Mapping[RecordKey, RecordSet]) -> list[str]:
    """Settle runs that a crash left unfinished, by what the live zone shows.

    A run in ``pending`` never reached the provider; one in ``sending`` may or may not
    have landed, so each change is looked up: after-state means landed, before-state
    means not, anything else is unknown (reported; a later apply treats it as drift).
    """
    notes = []
    for run in ctx.journal.runs(ctx.plan.zone):
        if run.status == "pending":
            ctx.journal.mark(run.id, "abandoned", finished=ctx.clock(), error="interrupted before sending")
            notes.append(f"run {run.id} ({run.kind}) was interrupted before anything was sent")
        elif run.status == "sending":
            notes.append(_settle(ctx, run, live))
    return notes


def _settle(ctx: Context, run: Run, live: Mapping[RecordKey, RecordSet]) -> str:
    landed, lost, unknown = [], [], []
    for jc in run.changes:
        current = live.get(jc.change.key)
        if current == jc.change.after:
            landed.append(jc.change.key)
        elif current == jc.change.before:
            lost.append(jc.change.key)
        else:
            unknown.append(jc.change.key)
    ctx.journal.mark_changes(run.id, landed, "landed")
    ctx.journal.mark_changes(run.id, lost, "failed")
    ctx.journal.mark_changes(run.id, unknown, "unknown")
    now = ctx.clock()
    if landed and not lost and not unknown:
        ctx.journal.mark(run.id, "applied", changed=now, finished=now)
        return f"run {run.id} ({run.kind}) was interrupted after sending; all {len(landed)} changes are live"
    if not landed:
        ctx.journal.mark(run.id, "failed", finished=now, error="interrupted; the zone shows no change landed")
        return f"run {run.id} ({run.kind}) was interrupted; none of its changes landed"
    ctx.journal.mark(run.id, "partial", changed=now, finished=now,
                     error=f"interrupted; {len(landed)} landed, {len(lost)} not, {len(unknown)} unknown")
    return f"run {run.id} ({run.kind}) was interrupted; {len(landed)} of {len(run.changes)} changes are live"


# ---------------------------------------------------------------------- commands


def prepare(ctx: Context) -> Outcome:
    """Lower the managed record sets' TTL to ``prepare.ttl``, values unchanged."""
    plan = ctx.plan
    if plan.prepare_ttl is None:
        raise UsageError(f"{plan.path}: prepare.ttl is not set; add `prepare: {{ttl: 300}}` to the plan")
    ctx.journal.lock()
    live, _ = read_live(ctx)
    notes = reconcile(ctx, live)
    changes = diffmod.lower_ttls(plan, live, plan.prepare_ttl)
    if not changes:
        return Outcome(plan, "prepare", "in-sync", notes=(*notes, f"every managed TTL is already at most {plan.prepare_ttl}s"))
    outcome = _execute(ctx, "prepare", changes, live, verify_after=False)
    longest = max(c.before.ttl for c in changes if c.before)
    until = (outcome.changed or ctx.clock()) + longest
    note = f"caches may hold the long TTL ({longest}s) until {iso(until)}; apply after that"
    return replace(outcome, old_answers_until=until, notes=(*notes, note))


Force = Union[bool, Collection[str]]


def apply(ctx: Context, *, force: Force = False, verify_after: bool = True, confirm: Confirm = lambda _d: True,
          wait: Callable[[float, str], None] | None = None, settle: bool = True) -> Outcome:
    """Check the guards, confirm, journal, change, wait, verify.

    ``force`` is True (every guard) or the names of the guards to override. With
    ``wait``, a TTL guard that clears by itself is waited out (``wait(until, why)``)
    instead of refused, and everything is checked again afterwards. ``settle`` False
    stops once the provider accepted the change (status ``applied``): ``finish`` waits
    and verifies later, so that a fleet's zones do not wait for each other."""
    plan = ctx.plan
    ctx.journal.lock()
    live, size = read_live(ctx)
    notes = reconcile(ctx, live)
    zdiff = review(ctx, live, size)
    if zdiff.in_sync:
        return _finish_previous(ctx, live, notes, verify_after)
    until = _waitable(zdiff.refusals, force)
    if wait is not None and until is not None:
        wait(until, "the TTL guard: caches may still hold the TTL from before prepare")
        live, size = read_live(ctx)
        zdiff = review(ctx, live, size)
    forced = _check(zdiff.refusals, force, plan)
    if size is None:
        notes.append(f"safety share not checked: the {plan.provider.type} provider cannot list the whole zone")
    notes += [f"left behind: {item.reason}" for item in zdiff.left_behind if item.kind not in guards.REFUSED_LEFT_BEHIND]
    if not confirm(zdiff):
        raise UsageError(f"{plan.path}: not confirmed; nothing was changed")
    return _execute(ctx, "apply", zdiff.changes, live, verify_after=verify_after, forced=forced, notes=notes,
                    settle=settle)


def _waitable(refusals: Sequence[guards.Refusal], force: Force) -> float | None:
    """When every refusal left is a TTL guard that clears by itself: the time it clears."""
    left = [r for r in refusals if not _overridden(r, force)]
    if not left or any(r.guard != "ttl" or r.until is None for r in left):
        return None
    return max(r.until for r in left if r.until is not None)


def _overridden(refusal: guards.Refusal, force: Force) -> bool:
    return force is True or (not isinstance(force, bool) and refusal.guard in force)


def rollback(ctx: Context, *, force: Force = False, verify_after: bool = True, confirm: Confirm = lambda _d: True,
             settle: bool = True) -> Outcome:
    """Put back exactly the record sets the last apply replaced, values and TTLs. A rollback
    that an interruption left unfinished is settled and verified, as a re-run apply is.
    ``settle`` as for ``apply``."""
    plan = ctx.plan
    ctx.journal.lock()
    live, _ = read_live(ctx)
    interrupted = [r.id for r in ctx.journal.runs(plan.zone, ("rollback",)) if r.status in UNSETTLED]
    notes = reconcile(ctx, live)
    settled = [r for r in ctx.journal.runs(plan.zone, ("rollback",)) if r.id in interrupted and r.status in LANDED]
    if settled:  # finish what was interrupted; never go on to undo one apply more
        run = settled[-1]
        return _verify_run(ctx, run, live, notes) if verify_after else _outcome(ctx, run, (), notes, live)
    target = _last_not_undone(ctx.journal, plan.zone)
    newest = ctx.journal.last(plan.zone, ("apply", "rollback"), LANDED)
    if target is None and verify_after and newest is not None and newest.kind == "rollback" \
            and newest.status in ("applied", "insync", "unverified"):
        return _verify_run(ctx, newest, live, notes)  # landed, never verified: check it, as apply does
    if target is None:
        raise UsageError(f"{plan.path}: nothing to roll back: every apply of {plan.zone} journalled in "
                         f"{ctx.journal.directory} is already rolled back (or none landed)")
    snapshot = target.snapshot()
    left = {jc.change.key: jc.change.after for jc in target.changes if jc.status == "landed"}
    changes = diffmod.restore(snapshot, live)
    if not changes:
        return Outcome(plan, "rollback", "in-sync", notes=(*notes, f"the zone already holds what apply {target.id} replaced"))
    forced = _check(guards.reverse_drift(left, live, snapshot), force, plan)
    zdiff = diffmod.ZoneDiff(plan, live, changes)
    if not confirm(zdiff):
        raise UsageError(f"{plan.path}: not confirmed; nothing was changed")
    return _execute(ctx, "rollback", changes, live, verify_after=verify_after, undoes=target.id, forced=forced, notes=notes,
                    settle=settle)


def finish(ctx: Context, started: Outcome, *, verify_after: bool = True) -> Outcome:
    """The second half of an apply or rollback started with ``settle=False``: wait for the
    provider's completion signal, then verify at every authoritative server. By the time
    a fleet comes back to a zone, its change has usually long been in sync."""
    if started.status != "applied" or started.run_id is None:
        return started  # refused, in sync, or already settled: nothing left to do
    ctx.journal.lock()
    run = ctx.journal.run(started.run_id)
    return _settle_run(ctx, run, verify_after, list(started.notes))


def _last_not_undone(journal: Journal, zone: str) -> Run | None:
    """The newest landed apply that no rollback has undone yet. After a partial apply and a
    second apply that finished the job, rollback undoes the second, then the first."""
    runs = journal.runs(zone, ("apply", "rollback"))
    undone = {r.undoes for r in runs if r.kind == "rollback" and r.status in LANDED}
    return next((r for r in reversed(runs) if r.kind == "apply" and r.status in LANDED and r.id not in undone), None)


def _guards(ctx: Context, zdiff: diffmod.ZoneDiff, live: Mapping[RecordKey, RecordSet], size: int | None) -> list[guards.Refusal]:
    prepares = [r for r in ctx.journal.runs(ctx.plan.zone, ("prepare",)) if r.status in LANDED]
    return [
        *guards.drift(ctx.plan, live),
        *guards.ttl_readiness(zdiff, prepares, ctx.clock()),
        *guards.safety(zdiff, size),
        *guards.left_behind(zdiff),
        *guards.integrity(zdiff),
        *guards.conflict(zdiff),
        *guards.readiness(zdiff),
    ]


def _check(refusals: Sequence[guards.Refusal], force: Force, plan: Plan) -> str | None:
    """Raise ``GuardError`` listing every refusal not overridden; return what was
    overridden, in absolute words, for the journal."""
    left = [r for r in refusals if not _overridden(r, force)]
    if left:
        lines = "\n".join(f"  {r.guard}: {r}" for r in left)
        names = " ".join(f"--force {g}" for g in dict.fromkeys(r.guard for r in left))
        raise GuardError(f"{plan.path}: refused, nothing was changed:\n{lines}\n"
                         f"({names} overrides {'it' if len(left) == 1 else 'them one by one'}; --force alone overrides every guard)")
    overridden = [r for r in refusals if _overridden(r, force)]
    return "; ".join(f"{r.guard}: {r.message}" for r in overridden) or None


def _finish_previous(ctx: Context, live: Mapping[RecordKey, RecordSet], notes: list[str], verify_after: bool) -> Outcome:
    """The zone matches the plan. If the last apply of this plan was not verified yet, verify it now."""
    run = ctx.journal.last(ctx.plan.zone, ("apply", "rollback"), LANDED)
    unfinished = run is not None and run.status in ("applied", "insync", "unverified") and run.digest == ctx.plan.digest
    if run is None or not (unfinished and verify_after):
        return Outcome(ctx.plan, "apply", "in-sync", notes=(*notes, "the zone already matches the plan; nothing to do"))
    return _verify_run(ctx, run, live, notes)


# ---------------------------------------------------------------------- execution


def _execute(ctx: Context, kind: str, changes: Sequence[Change], live: Mapping[RecordKey, RecordSet], *,
             verify_after: bool, undoes: int | None = None, forced: str | None = None,
             notes: Sequence[str] = (), settle: bool = True) -> Outcome:
    plan, journal = ctx.plan, ctx.journal
    run_id = journal.begin(kind, plan.zone, str(plan.path), plan.digest, changes, undoes=undoes, forced=forced, now=ctx.clock())
    journal.mark(run_id, "sending")
    ctx.progress(f"{plan.zone}: sending {len(changes)} change(s) to {plan.provider.type}")
    try:
        receipt = ctx.provider.apply(changes)
    except PartialApplyError as exc:
        journal.mark_changes(run_id, exc.landed, "landed")
        journal.mark(run_id, "partial", changed=ctx.clock(), finished=ctx.clock(), error=str(exc))
        raise
    except ProviderError as exc:
        _after_failure(ctx, run_id, str(exc))
        raise
    except BaseException as exc:  # KeyboardInterrupt, a plugin's bug: settle what we can, then re-raise
        _after_failure(ctx, run_id, f"{type(exc).__name__}: {exc}")
        raise
    try:
        journal.mark(run_id, "applied", changed=ctx.clock(), token=receipt.token)
    except StateError as exc:
        raise StateError(f"{exc}. The provider ACCEPTED the change; the journal still says 'sending', "
                         "and the next cutover run on this state settles it from the live zone") from None
    if not settle:
        return _outcome(ctx, journal.run(run_id), (), notes, live)
    return _settle_run(ctx, journal.run(run_id), verify_after, list(notes), live)


def _settle_run(ctx: Context, run: Run, verify_after: bool, notes: list[str],
                live: Mapping[RecordKey, RecordSet] | None = None) -> Outcome:
    """Wait for the provider to report the run's change complete, then verify it (or only
    mark it finished, without ``verify_after``)."""
    plan, journal = ctx.plan, ctx.journal
    ctx.progress(f"{plan.zone}: accepted; waiting for {plan.provider.type} to report the change complete")
    if ctx.provider.wait(ApplyReceipt(token=run.token), timeout=plan.verify.timeout):
        journal.mark(run.id, "insync")
    if live is None:
        live, _ = read_live(ctx)
    run = journal.run(run.id)
    if not verify_after:
        journal.mark(run.id, run.status, finished=ctx.clock())
        return _outcome(ctx, journal.run(run.id), (), notes, live)
    return _verify_run(ctx, run, live, notes)


def _after_failure(ctx: Context, run_id: int, error: str) -> None:
    """After a failed send, read the zone back: an error does not prove nothing landed."""
    try:
        live, _ = read_live(ctx)
    except CutoverError:
        ctx.journal.mark(run_id, "sending", error=f"{error}; outcome unknown until the zone can be read")
        return
    run = ctx.journal.run(run_id)
    _settle(ctx, run, live)
    ctx.journal.mark(run_id, ctx.journal.run(run_id).status, error=error)


def _verify_run(ctx: Context, run: Run, live: Mapping[RecordKey, RecordSet], notes: list[str]) -> Outcome:
    plan, journal = ctx.plan, ctx.journal
    names = list(plan.verify.nameservers) or ctx.provider.nameservers()
    servers, unresolved = verify.endpoints(names, zone=plan.zone, live=live)
    wanted = verify.targets(run.landed_changes, verify.negative_ttl(live, plan.zone))
    results = list(unresolved)
    if servers and wanted:
        ctx.progress(f"{plan.zone}: checking {len(servers)} authoritative server(s)")
        results += verify.poll(wanted, servers, timeout=plan.verify.timeout, progress=ctx.progress,
                               query_timeout=min(plan.watch.timeout, 5.0))
    for r in results:
        journal.add_verification(run.id, r.server, r.state, r.detail, now=ctx.clock())
    ok = bool(results) and all(r.state == "new" for r in results)
    if not results:
        notes = [*notes, "no authoritative servers are known; set verify.nameservers to check them"]
    journal.mark(run.id, "verified" if ok else "unverified", finished=ctx.clock())
    return _outcome(ctx, journal.run(run.id), tuple(results), notes, live)


def _outcome(ctx: Context, run: Run, servers: Sequence[verify.ServerResult], notes: Sequence[str],
             live: Mapping[RecordKey, RecordSet]) -> Outcome:
    """The run's result with the two times an operator acts on. Caches may hold old answers
    until the last authoritative server served the new data plus the longest old TTL (the
    TTL before a prepare whose wait was cut short counts); unknown while one still lags."""
    changes = run.landed_changes
    neg_ttl = verify.negative_ttl(live, ctx.plan.zone)
    windows = guards.prepared_until(ctx.journal.runs(ctx.plan.zone, ("prepare",)))
    old = [history.target_for(c, run.changed, ctx.journal, ctx.plan.zone, neg_ttl, windows) for c in changes]
    longest_old = max((t.old_ttl for t in old), default=0)
    start = _agreed_at(ctx, run, servers)
    until = start + longest_old + bounds.ROUNDING if start is not None else None
    retire = None
    if run.kind != "prepare" and run.changed is not None and until is not None:
        retire = max(until, run.changed + ctx.plan.retire.parallel_period)
    if run.kind != "prepare" and start is None and run.changed is not None:
        notes = (*notes, "the old-TTL clock starts when every authoritative server serves the new data; "
                         "`cutover watch` dates it")
    return Outcome(ctx.plan, run.kind, run.status, run.id, changes, run.changed, until, retire, tuple(servers),
                   tuple(notes), history.retiring(old) if run.kind != "prepare" else ())


def _agreed_at(ctx: Context, run: Run, servers: Sequence[verify.ServerResult]) -> float | None:
    """When every authoritative server was seen serving the new data (the verification), or
    the change itself when nothing was verified on request (``--no-verify``, prepare)."""
    if run.status == "verified":
        verified = ctx.journal.verified_at(run.id)
        return verified if verified is not None else run.changed
    if run.status in ("applied", "insync") and not servers:
        return run.changed
    return None
