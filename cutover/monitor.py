"""The propagation monitor behind ``cutover watch`` and ``cutover status``.

A round is: ask every server at once (``cutover.observe.engine``): the resolvers about
the records they may be asked, the zone's authoritative servers about every record and
their SOA serial, and, for a delegation change, the parent's servers about the NS set and
the old host about everything it still serves; learn what the answers tell about old
TTLs; decide the verdict (a pure function, ``cutover.verdict``); journal the round.
What to watch and since when comes from ``cutover.history``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping, MutableSequence, Sequence

from cutover import bounds, delegation as delegation_mod, history, leftbehind, rounds as rounds_doc, verify
from cutover import resolvers as resolvers_mod
from cutover.errors import UsageError
from cutover.journal import LANDED, Journal, Run
from cutover.observe.authoritative import ServerView, all_new, serial_probe, views
from cutover.observe.engine import CONCURRENCY, PARALLEL_FROM, query_pairs, query_round, run_round
from cutover.observe.probes.schedule import ProbeRunner
from cutover.observe.probes.services import ProbeEntry, cost_problems
from cutover.observe.types import AUTHORITATIVE, OLD_HOST, Answer, RecordSummary, Round, Target, summarise
from cutover.plan import Plan
from cutover.readiness import targets as ready_targets
from cutover.readiness.old import OldMailWatch
from cutover.records import Change, RecordKey, RecordSet
from cutover.resolvers import Resolver
from cutover.times import iso_precise, parse_iso
from cutover.verdict import Evidence, Rules, decide, stale_resolvers

Job = tuple[tuple[Target, ...], tuple[Resolver, ...]]
#: ``watch --once`` waits this long at most for the probes' first results (a measurement
#: normally takes seconds; this is the longest a service's partial results are waited for).
ONCE_PROBE_WAIT = 90.0


@dataclass(frozen=True)
class DelegationWatch:
    """A move between DNS hosts: the parent's servers, the old host's, and what it serves."""

    parent: tuple[Resolver, ...]
    old_host: tuple[Resolver, ...]
    parent_ns_ttl: int
    old_ns_ttl: int
    old_ns_ttl_source: str
    teaches_old_ns: bool = True
    serving_old: tuple[RecordKey, ...] = ()
    new_since: tuple[tuple[RecordKey, float], ...] = ()

    def as_bound_input(self) -> bounds.Delegation:
        host = bounds.OldHost(
            servers=tuple(dict.fromkeys(r.label for r in self.old_host)),
            ns_ttl=self.old_ns_ttl, ns_ttl_source=self.old_ns_ttl_source, teaches_old_ns=self.teaches_old_ns,
            serving_old=self.serving_old, new_since={k: _dt(t) for k, t in self.new_since},
        )
        return bounds.Delegation(self.parent_ns_ttl, host)

    def as_dict(self) -> dict[str, Any]:
        return {
            "parent": [r.endpoint for r in self.parent],
            "old_host": [r.endpoint for r in self.old_host],
            "parent_ns_ttl": self.parent_ns_ttl,
            "old_host_ns_ttl": self.old_ns_ttl,
            "old_host_ns_ttl_source": self.old_ns_ttl_source,
            "old_host_teaches_old_ns": self.teaches_old_ns,
            "old_host_serving_old": [f"{k[0]} {k[1]}" for k in self.serving_old],
        }


@dataclass(frozen=True)
class Setup:
    """What one plan's watch looks for, where, and since when."""

    plan: Plan
    targets: tuple[Target, ...]
    resolvers: tuple[Resolver, ...]
    change_time: float | None
    change_source: str
    servers: tuple[Resolver, ...] = ()
    agreed_since: float | None = None
    left_behind: tuple[leftbehind.LeftBehind, ...] = ()
    delegation: DelegationWatch | None = None
    probes: tuple[ProbeEntry, ...] = field(default=(), repr=False)
    mail_targets: ready_targets.Targets | None = None  # the old MX hosts, asked during the parallel period

    def jobs(self) -> list[Job]:
        """Who is asked what this round (resolvers are never asked for an NS set)."""
        recursive = tuple(t for t in self.targets if t.recursive)
        probe = serial_probe(self.plan.zone)
        if self.delegation is None:
            return [(recursive, self.resolvers), ((*self.targets, probe), self.servers)]
        at_parent = tuple(t for t in self.targets if t.key == (self.plan.zone, "NS"))
        at_host = tuple(t for t in self.targets if t.key != (self.plan.zone, "NS"))
        return [(recursive, self.resolvers), ((*at_host, probe), self.servers),
                (at_parent, self.delegation.parent), ((*self.targets, probe), self.delegation.old_host)]


def setup(plan: Plan, journal: Journal, live: Mapping[RecordKey, RecordSet], nameservers: Sequence[str],
          resolver_spec: Any = None, *, parent_nameservers: Sequence[str] = (),
          probes: Sequence[ProbeEntry] | None = None) -> Setup:
    """Targets and change from the journal (``cutover.history``); resolvers from ``--resolvers``
    or the plan; the zone's servers; records left behind; the delegation's servers; the
    probe entries (``--probes`` or the plan's), refused before anything is sent to a
    service when their schedule would exceed its published limits."""
    past = history.read(plan, journal, live, verify.negative_ttl(live, plan.zone))
    entries = tuple(plan.watch.probes if probes is None else probes)
    too_costly = cost_problems(entries, past.targets)
    if too_costly:
        raise UsageError(f"{plan.path}: " + "; ".join(too_costly))
    servers, _unresolved = verify.endpoints(list(plan.verify.nameservers) or list(nameservers), zone=plan.zone, live=live)
    left = leftbehind.find(_as_changes(past.targets), live, managed=plan.keys, ignore=plan.retire.ignore)
    s = Setup(plan, past.targets, tuple(_resolvers(plan, resolver_spec)), past.change_time, past.change_source,
              tuple(servers), past.agreed_since, tuple(left), probes=entries,
              mail_targets=ready_targets.derive(plan, live))
    ns = next((t for t in past.targets if t.key == (plan.zone, "NS")), None)
    if ns is not None and parent_nameservers:
        s = replace(s, delegation=_delegation(plan, ns, parent_nameservers))
    return s


def _as_changes(targets: Sequence[Target]) -> list[Change]:
    """The watched moves as changes, for ``leftbehind``: whose old values are "the old server"."""
    out = []
    for t in targets:
        before = RecordSet(t.name, t.type, t.old_ttl, t.old) if t.old else None
        after = RecordSet(t.name, t.type, 0, t.new) if t.new else None
        if before is not None or after is not None:
            out.append(Change(before, after))
    return out


def _delegation(plan: Plan, ns: Target, parent_names: Sequence[str]) -> DelegationWatch:
    """The old DNS host is the old NS set's servers; its own NS TTL is learnt in the first
    round (until then the plan's stated bound stands in)."""
    parent = tuple(delegation_mod.parent_servers(parent_names))
    old_host = tuple(delegation_mod.old_host(ns.old, parent))
    return DelegationWatch(parent, old_host, ns.old_ttl, int(plan.retire.max_old_ttl), "max_old_ttl")


def _resolvers(plan: Plan, cli_spec: Any) -> list[Resolver]:
    """``--resolvers`` is read from the current directory; the plan's value is already absolute."""
    try:
        return resolvers_mod.resolve_spec(cli_spec or plan.watch.resolvers)
    except (ValueError, OSError) as exc:
        raise UsageError(f"{'--resolvers' if cli_spec else f'{plan.path}: watch.resolvers'}: {exc}") from None


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _maybe_dt(ts: float | None) -> datetime | None:
    return None if ts is None else _dt(ts)


# --------------------------------------------------------------------------- asking


def ask_all(setups: Sequence[Setup]) -> list[list[Answer]]:
    """One round for every plan at once, as one engine round: every server's bound on
    queries in flight (and a public resolver's pace) holds across all the zones, and the
    round's deadline is sized for all of its queries. (A round per zone, 9,000 of them at
    once for a fleet, would each keep its own small deadline and bounds: the server is
    flooded and most rounds end before their queries are sent.) A big round takes every
    core. Each plan's answers come back in (resolver, target) order, as ``query_round``'s.

    A delegation change (its parent and old host asked beside the new servers) is still
    asked job by job, as before: merged into one flight, the verdict lab's registrar case
    once learnt the parent's NS TTL as a day (seen once, not reproduced since; fleets
    never move NS, so they lose nothing while it is understood)."""
    jobs = [(i, job) for i, s in enumerate(setups) for job in s.jobs()]
    if any(s.delegation is not None for s in setups):
        return _job_by_job(setups, jobs)
    # target by target within a job, so that each server sees its share of the window at once
    pairs = [(t, r) for _, (targets, resolvers) in jobs for t in targets for r in resolvers]
    out: list[list[Answer]] = [[] for _ in setups]
    if not pairs:
        return out
    answers = query_pairs(pairs, timeout=max(s.plan.watch.timeout for s in setups))
    start = 0
    for i, (targets, resolvers) in jobs:
        width = len(resolvers)
        mine = answers[start:start + len(targets) * width]
        out[i].extend(mine[t * width + r] for r in range(width) for t in range(len(targets)))
        start += len(mine)
    return out


def _job_by_job(setups: Sequence[Setup], jobs: Sequence[tuple[int, Job]]) -> list[list[Answer]]:
    """Each job its own round: small ones share one event loop, big ones take every core."""
    if sum(len(t) * len(r) for _, (t, r) in jobs) >= PARALLEL_FROM:
        parts = [run_round(t, r, timeout=setups[i].plan.watch.timeout, processes=os.cpu_count()) for i, (t, r) in jobs]
    else:
        parts = asyncio.run(_gather(setups, jobs))
    out: list[list[Answer]] = [[] for _ in setups]
    for (i, _), answers in zip(jobs, parts):
        out[i].extend(answers)
    return out


async def _gather(setups: Sequence[Setup], jobs: Sequence[tuple[int, Job]]) -> list[list[Answer]]:
    share = max(1, CONCURRENCY // max(1, len(jobs)))
    return list(await asyncio.gather(*(
        query_round(t, r, timeout=setups[i].plan.watch.timeout, concurrency=share) for i, (t, r) in jobs
    )))


# --------------------------------------------------------------------------- one round


def record_round(s: Setup, journal: Journal, answers: Sequence[Answer], started: float,
                 sections: Mapping[str, Any] | None = None, awaiting: Sequence[str] = ()) -> tuple[Setup, dict[str, Any]]:
    """Learn from one plan's answers, judge them and journal the round. Returns the updated
    setup (newly dated change, agreement, learnt TTLs) and the round's document. ``sections``
    are what the background work adds to it: ``probes`` (the probe services' state, their
    answers being in ``answers``) and ``old_mail`` (does the old MX still accept mail);
    ``awaiting`` the probe measurements whose first result is still on its way."""
    number = journal.round_count(s.plan.zone) + 1
    rnd = Round(number, _dt(started), tuple(answers))
    s = _learn(s, rnd, started)
    server_views = views(rnd, s.targets)
    agreed = all_new(server_views)
    s = replace(s, agreed_since=(s.agreed_since if s.agreed_since is not None else started) if agreed else None)
    if s.change_time is None and agreed:
        s = replace(s, change_time=started, change_source=f"observed at the authoritative servers in round {number}")
    evidence = _evidence(s, summarise(rnd, s.targets), server_views, awaiting)
    verdict = decide(evidence, rules(s.plan), _dt(started))
    stale = stale_resolvers(rnd, s.targets, _maybe_dt(s.agreed_since), _dt(started))
    doc = rounds_doc.round_document(rnd, s.targets, verdict, evidence, stale=stale,
                                  left_behind=[item.as_dict() for item in s.left_behind],
                                  delegation=s.delegation.as_dict() if s.delegation else None)
    doc["plan"] = str(s.plan.path)
    doc["zone"] = s.plan.zone
    doc["change"] = {"time": iso_precise(s.change_time), "source": s.change_source}
    doc.update(sections or {})
    if awaiting:
        doc["awaiting_probes"] = list(awaiting)
    stored, probe_groups = rounds_doc.stored_form(doc)
    journal.add_round(s.plan.zone, number, started, stored)
    journal.add_probe_results(s.plan.zone, number, probe_groups)
    return s, doc


def _learn(s: Setup, rnd: Round, started: float) -> Setup:
    """Old TTLs that were only guessed (``retire.max_old_ttl``) become facts when an
    authoritative server is seen still serving the old data; a delegation's old host says
    its own NS TTL and which records it still serves old."""
    targets = tuple(_learn_ttl(t, rnd.of_group(AUTHORITATIVE), "authoritative") for t in s.targets)
    if s.delegation is not None:
        targets = tuple(_learn_ttl(t, rnd.of_group(OLD_HOST), "old host") for t in targets)
        s = replace(s, delegation=_learn_old_host(s.delegation, s.plan.zone, targets, rnd.of_group(OLD_HOST), started))
    return replace(s, targets=targets)


def _learn_ttl(t: Target, answers: Sequence[Answer], source: str) -> Target:
    seen = [a.ttl for a in answers if a.key == t.key and a.state == "old" and a.ttl is not None]
    if not seen or not t.old:
        return t
    ttl = max(seen)
    if t.old_ttl_source == "max_old_ttl" or ttl > t.old_ttl:
        return replace(t, old_ttl=ttl, old_ttl_source=source)
    return t


def _learn_old_host(d: DelegationWatch, zone: str, targets: Sequence[Target], answers: Sequence[Answer],
                    started: float) -> DelegationWatch:
    ns = [a for a in answers if a.key == (zone, "NS") and a.answered]
    if ns:
        ttl = max(a.ttl or 0 for a in ns)
        if d.old_ns_ttl_source == "max_old_ttl" or ttl > d.old_ns_ttl:
            d = replace(d, old_ns_ttl=ttl, old_ns_ttl_source="old host")
        d = replace(d, teaches_old_ns=any(a.state != "new" for a in ns))
    since = dict(d.new_since)
    serving_old = []
    for t in targets:
        mine = [a for a in answers if a.key == t.key and a.answered]
        if not t.recursive or not mine:
            continue
        if any(a.state != "new" for a in mine):
            serving_old.append(t.key)
            since.pop(t.key, None)
        else:
            since.setdefault(t.key, started)
    return replace(d, serving_old=tuple(serving_old), new_since=tuple(since.items()))


def _evidence(s: Setup, summaries: Sequence[RecordSummary], server_views: Sequence[ServerView],
              awaiting: Sequence[str] = ()) -> Evidence:
    agreed = _maybe_dt(s.agreed_since)
    if s.delegation is None:
        bound = bounds.record_change(s.targets, agreed)
    else:
        bound = bounds.delegation_change(s.targets, agreed, s.delegation.as_bound_input())
    return Evidence(tuple(summaries), tuple(server_views), agreed, bound, _maybe_dt(s.change_time),
                    tuple(item.reason for item in s.left_behind), history.retiring(s.targets), tuple(awaiting))


def rules(plan: Plan) -> Rules:
    r = plan.retire
    return Rules(r.threshold, r.parallel_period, r.min_answering, r.min_answering_is_count)


def rounds(watches: MutableSequence[tuple[Setup, Journal]], *, once: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Round after round over every plan, until all verdicts say retire (or one round with ``once``)."""
    interval = min(s.plan.watch.interval for s, _ in watches)
    runners: list[ProbeRunner | None] = [_probe_runner(s, journal) for s, journal in watches]
    old_mail: list[OldMailWatch | None] = [_old_mail_watch(s, journal) for s, journal in watches]
    try:
        if once:  # one round only: let it include the probes' first results and the old MX's answer
            for waiting in filter(None, runners):
                waiting.wait_settled(ONCE_PROBE_WAIT)
            for asking in filter(None, old_mail):
                asking.wait_first(3 * asking.config.timeout)
        while True:
            started = time.time()
            answers = ask_all([s for s, _ in watches])
            done = []
            for i, ((setup_, journal), found, runner, mail) in enumerate(zip(list(watches), answers, runners, old_mail)):
                sections: dict[str, Any] = {}
                awaiting: list[str] = []
                if runner is not None:
                    probe_answers, sections["probes"] = runner.snapshot()
                    awaiting = runner.awaited()
                    found = [*found, *probe_answers]
                if mail is not None:
                    sections["old_mail"] = mail.snapshot()
                setup_, doc = record_round(setup_, journal, found, started, sections, awaiting)
                watches[i] = (setup_, journal)
                done.append(doc["verdict"]["retire"])
                yield doc
            if once or all(done):
                return
            sleep(max(0.0, started + interval - time.time()))
    finally:
        for running in filter(None, runners):
            running.close()
        for asking_ in filter(None, old_mail):
            asking_.close()


def _old_mail_watch(s: Setup, journal: Journal) -> OldMailWatch | None:
    """The parallel period's check of the old MX hosts (none when no MX moves away)."""
    if s.mail_targets is None or not s.mail_targets.old_mail:
        return None
    until = None if s.change_time is None else s.change_time + s.plan.retire.parallel_period
    return OldMailWatch(s.mail_targets, s.plan.ready, until, previous=journal.last_round(s.plan.zone)).start()


def _probe_runner(s: Setup, journal: Journal) -> ProbeRunner | None:
    """The zone's probe measurements, started in the background (none without entries)."""
    if not s.probes:
        return None
    return ProbeRunner(s.probes, s.targets, previous=last_round(journal, s.plan.zone)).start()


def last_round(journal: Journal, zone: str) -> dict[str, Any] | None:
    """The zone's last round as it was shown: with the probe answers it held."""
    doc = journal.last_round(zone)
    if doc is None or not any(r.get("probe_answers") for r in doc.get("records", [])):
        return doc
    return rounds_doc.with_probe_answers(doc, journal.probe_results(zone, str(doc.get("time"))))


# --------------------------------------------------------------------------- status


def verdict_now(plan: Plan, journal: Journal, now: float | None = None) -> dict[str, Any] | None:
    """The retire verdict at ``now`` from the last round's evidence (time moves on between
    rounds); none when an apply or rollback came after that round, which it cannot judge."""
    doc = journal.last_round(plan.zone)
    if doc is None:
        return None
    newer = journal.last(plan.zone, ("apply", "rollback"), LANDED)
    if newer is not None and newer.changed is not None and newer.changed > parse_iso(doc["time"]).timestamp():
        return None
    change = (doc.get("change") or {}).get("time")
    evidence = rounds_doc.evidence(doc, parse_iso(change) if change else None)
    return decide(evidence, rules(plan), _dt(time.time() if now is None else now)).as_dict()


def status(plan: Plan, journal: Journal) -> dict[str, Any]:
    """Everything ``cutover status`` shows for one plan, as data."""
    runs: list[Run] = journal.runs(plan.zone)
    return {
        "plan": str(plan.path),
        "zone": plan.zone,
        "runs": [dict(r.as_dict(), verifications=journal.verifications(r.id)) for r in runs],
        "rounds": journal.round_count(plan.zone),
        "last_round": last_round(journal, plan.zone),
        "verdict": verdict_now(plan, journal),
    }
