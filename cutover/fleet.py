"""Fleet plans: one plan file, many zones, moved by address.

When a hosting company moves a server, its old address is in every zone it hosts::

    version: 1
    fleet: all                  # every zone the provider holds; or a list; or a file, one zone a line
    provider: {type: powerdns, url: ..., api_key: ${PDNS_API_KEY}}
    renumber:
      - {from: 198.51.100.10, to: 203.0.113.10}

A fleet plan is turned into one ordinary ``Plan`` per zone that holds a moved address
(``zone_plan``), so that each zone is its own unit in every command, with its own journal
rows, guards and safety share, exactly as a hand-written plan. The records come from the
live zone (``cutover.renumber``) before the change; after it, the live zone no longer
holds the old address, so they come from the zone's last apply of this fleet file
(``journalled_records``): ``watch``, ``status``, ``rollback`` and ``report`` see the
same zone plans the apply ran. Everything else a plan can say (``prepare``, ``watch``,
``retire``, ``verify``, ``safety``, ``ready``) is shared by every zone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cutover import plan as planmod, renumber
from cutover.checking import Checker
from cutover.errors import CutoverError, PlanError, Problem
from cutover.journal import LANDED, Run
from cutover.records import RecordKey, RecordSet
from cutover.renumber import Move
from cutover.values import show

KEYS = ("version", "fleet", "provider", "renumber", "prepare", "watch", "retire", "verify", "safety", "ready")
SHARED = ("provider", "prepare", "watch", "retire", "verify", "safety", "ready")
#: A record that validates the shared sections before any zone is known.
_STAND_IN = {"zone": "fleet.invalid", "records": [{"name": "@", "type": "A", "to": ["192.0.2.1"]}]}


@dataclass(frozen=True)
class FleetPlan:
    """A validated fleet plan. ``zones`` None: every zone the provider holds."""

    path: Path
    zones: tuple[str, ...] | None
    moves: tuple[Move, ...]
    provider_type: str
    shared: Mapping[str, Any] = field(repr=False, compare=False)
    environ: Mapping[str, str] = field(repr=False, compare=False, default_factory=dict)

    @property
    def zone(self) -> str:
        """How the fleet is named where a zone would be (messages, summaries)."""
        return f"fleet {self.path.name}"


def is_fleet(data: Any) -> bool:
    return isinstance(data, dict) and "fleet" in data


def build(data: Mapping[str, Any], path: Path, environ: Mapping[str, str]) -> FleetPlan:
    """Validate a fleet plan's YAML; ``PlanError`` lists every problem, as a plan's does."""
    c = Checker(str(path), environ)
    c.keys(data, KEYS, "")
    if data.get("version", 1) != 1:
        c.add("version", f"{show(data.get('version'))} is not a supported plan version (expected 1)")
    zones = _zones(c, data.get("fleet"), path.parent)
    moves = _moves(c, data.get("renumber"))
    shared = {k: data[k] for k in SHARED if k in data}
    try:
        stand_in = planmod.build({**shared, **_STAND_IN}, path, environ)
    except PlanError as exc:
        c.problems.extend(exc.problems)
        stand_in = None
    if c.problems or stand_in is None:
        raise PlanError(str(path), c.problems)
    return FleetPlan(path, zones, moves, stand_in.provider.type, shared, environ)


def _zones(c: Checker, value: Any, base: Path) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if isinstance(value, list):
        names = [c.convert(v, f"fleet[{i}]", planmod.zone_name) for i, v in enumerate(value)]
        if not value:
            c.add("fleet", "an empty list: name zones, a file, or all")
        return tuple(dict.fromkeys(n for n in names if n))
    if isinstance(value, str) and value.strip():
        return _zone_file(c, base / value.strip())
    c.add("fleet", f"{show(value)} must be all, a list of zones, or a file with one zone a line")
    return ()


def _zone_file(c: Checker, path: Path) -> tuple[str, ...]:
    """One zone a line; blank lines and ``#`` comments skipped; each mistake named by line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        c.add("fleet", f"{path}: cannot be read ({exc.strerror or exc})")
        return ()
    names = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            names.append(c.convert(text, f"fleet ({path}, line {number})", planmod.zone_name))
    if not any(names):
        c.add("fleet", f"{path}: names no zone")
    return tuple(dict.fromkeys(n for n in names if n))


def _moves(c: Checker, value: Any) -> tuple[Move, ...]:
    if not isinstance(value, list) or not value:
        c.add("renumber", f"{show(value)} must be a list of {{from: OLD, to: NEW}} addresses")
        return ()
    moves = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"from", "to"}:
            c.add(f"renumber[{i}]", f"{show(item)} must be a mapping with exactly from and to")
            continue
        move = c.convert(item, f"renumber[{i}]", lambda v: Move.parse(v["from"], v["to"]))
        if move is not None:
            moves.append(move)
    olds = [m.old for m in moves]
    for dup in sorted({o for o in olds if olds.count(o) > 1}, key=str):
        c.add("renumber", f"{dup} moves twice")
    return tuple(moves)


def zone_plan(fleet: FleetPlan, zone: str, records: Sequence[Mapping[str, Any]]) -> planmod.Plan:
    """The ordinary plan of one zone of the fleet: the shared sections and these records.
    A problem here (a record the provider cannot write, say) is the zone's, named with it."""
    try:
        return planmod.build({**fleet.shared, "zone": zone, "records": list(records)}, fleet.path, fleet.environ)
    except PlanError as exc:
        raise PlanError(str(fleet.path), [Problem(f"{zone}: {p.path}", p.message) for p in exc.problems]) from None


def stand_in(fleet: FleetPlan, zone: str) -> planmod.Plan:
    """A plan with the fleet's shared sections for ``zone`` and no real records: its
    provider settings (``${ENV}`` substituted), its state directory, a failure's label."""
    data = {**fleet.shared, "zone": "fleet.invalid" if zone == "." else zone, "records": _STAND_IN["records"]}
    return planmod.build(data, fleet.path, fleet.environ)


def journalled_records(runs: Sequence[Run], plan_path: Path, *, rolled_back: bool = False) -> list[dict[str, Any]]:
    """The records of the zone's newest landed apply of this fleet file: what the zone's
    plan was when it changed the zone. After a rollback there are none, unless
    ``rolled_back`` asks for them anyway (``status`` and ``report`` tell the whole story).

    The fleet file is recognised by its name: the journal sits beside the plan, and the
    same file given as ``fleet.yaml`` or ``../ops/fleet.yaml`` is the same fleet."""
    for run in reversed(runs):
        if run.kind == "rollback" and run.status in LANDED and not rolled_back:
            return []
        if run.kind == "apply" and run.status in LANDED and same_file(run.plan, plan_path):
            return [{"name": c.before.name, "type": c.before.type, "from": list(c.before.values), "to": list(c.after.values)}
                    for c in run.landed_changes if c.before is not None and c.after is not None]
    return []


def same_file(journalled: str, plan_path: Path) -> bool:
    return Path(journalled).name == plan_path.name


# --------------------------------------------------------------------------- expansion


#: Zones read at once while expanding a fleet: reads are safe to overlap, and a backend
#: such as PowerDNS on SQLite serves a few readers well (writes stay one zone at a time).
READERS = 4


#: Where a command finds a fleet's zones. ``LIVE``: every zone named (or held by the
#: provider) is read, for the commands that change DNS or compare with it (diff, apply,
#: prepare, check); ``APPLIED``: the zones this fleet changed and did not roll back, from
#: the journal alone (watch, rollback); ``HISTORY``: every zone it ever changed, from the
#: journal (status, report). The journal's commands neither wait for 10,000 zone reads
#: nor depend on the provider answering; a fleet the journal knows nothing of is read live.
LIVE, APPLIED, HISTORY = "live", "applied", "history"


@dataclass(frozen=True)
class Expansion:
    """A fleet as zone plans: the zones to act on, those holding no moved address, and
    those that failed (the zone could not be read, or its plan is not valid), with why;
    ``source`` says where the zones came from (``provider`` or ``journal``)."""

    plans: tuple[planmod.Plan, ...]
    untouched: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    source: str = "provider"
    #: The zones to act on as they were read (``source`` provider): the first command on
    #: each uses them instead of reading the zone again (Route 53 at 5 requests a second
    #: makes every read count); a change is still compared with the zone before it is sent.
    live: Mapping[str, Mapping[RecordKey, RecordSet]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def zones(self) -> int:
        return len(self.plans) + len(self.untouched) + len(self.failed)


def expand(f: FleetPlan, zones: Sequence[str], read_zone: Callable[[str], Mapping[RecordKey, RecordSet]],
           runs_of: Callable[[str], Sequence[Run]], progress: Callable[[str], None] = lambda _m: None) -> Expansion:
    """One plan per zone that holds a moved address (from the live zone) or that an apply
    of this fleet changed (from the journal), the two merged record by record."""
    plans: list[planmod.Plan] = []
    untouched: list[str] = []
    failed: list[tuple[str, str]] = []

    live: dict[str, Mapping[RecordKey, RecordSet]] = {}

    def one(zone: str) -> tuple[str, list[dict[str, Any]] | str, Mapping[RecordKey, RecordSet]]:
        try:
            records = read_zone(zone)
            return zone, renumber.records(records, f.moves), records
        except Exception as exc:  # noqa: BLE001 - one zone's failure never stops the others
            return zone, f"{type(exc).__name__}: {exc}" if not isinstance(exc, CutoverError) else str(exc), {}

    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="fleet-read") as pool:
        for done, (zone, found, records) in enumerate(pool.map(one, zones), start=1):
            if isinstance(found, list):  # the journal is read here, in the thread that opened it
                keys = {(r["name"], r["type"]) for r in found}
                found += [r for r in journalled_records(runs_of(zone), f.path) if (r["name"], r["type"]) not in keys]
            if _sort(f, zone, found, plans, untouched, failed):
                live[zone] = records
            if done % 100 == 0 or done == len(zones):
                progress(f"{f.zone}: read {done} of {len(zones)} zones, {len(plans)} to change")
    return Expansion(tuple(plans), tuple(untouched), tuple(failed), live=live)


def journalled_zones(f: FleetPlan, zone_plans: Sequence[tuple[str, str]]) -> list[str]:
    """The zones the journal says an apply of this fleet file touched (``Journal.zone_plans``)."""
    return list(dict.fromkeys(zone for zone, plan in zone_plans if same_file(plan, f.path)))


def from_journal(f: FleetPlan, zones: Sequence[str], runs_of: Callable[[str], Sequence[Run]], *,
                 rolled_back: bool) -> Expansion:
    """The zone plans of an applied fleet from its journal alone, each as its last apply
    left it; a zone rolled back since is untouched unless ``rolled_back`` keeps it."""
    plans: list[planmod.Plan] = []
    untouched: list[str] = []
    failed: list[tuple[str, str]] = []
    for zone in zones:
        _sort(f, zone, journalled_records(runs_of(zone), f.path, rolled_back=rolled_back), plans, untouched, failed)
    return Expansion(tuple(plans), tuple(untouched), tuple(failed), source="journal")


def _sort(f: FleetPlan, zone: str, found: list[dict[str, Any]] | str, plans: list[planmod.Plan],
          untouched: list[str], failed: list[tuple[str, str]]) -> bool:
    """One zone into its pile: a plan to act on (True), untouched, or failed with why."""
    if isinstance(found, str):
        failed.append((zone, found))
    elif found:
        try:
            plans.append(zone_plan(f, zone, found))
            return True
        except PlanError as exc:
            failed.append((zone, str(exc)))
    else:
        untouched.append(zone)
    return False


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class FleetRun:
    """One command over one fleet: its expansion and its zones' results, in the order of
    ``zones`` (the zones that failed to be read first, then those acted on)."""

    fleet: FleetPlan
    expansion: Expansion
    results: tuple[Any, ...]

    @property
    def zones(self) -> tuple[str, ...]:
        return (*(zone for zone, _ in self.expansion.failed), *(p.zone for p in self.expansion.plans))

    def summary(self, state_of: Callable[[Any], str], changes_of: Callable[[Any], int] | None = None) -> dict[str, Any]:
        """The fleet in a few numbers: zones named (or held), acted on, without the moved
        addresses, and how many ended in each state (``state_of`` names a result's state,
        ``failed`` for a failure); ``changes_of`` adds up the changes, where they count."""
        states = [state_of(r) for r in self.results]
        doc: dict[str, Any] = {"plan": str(self.fleet.path), "from": self.expansion.source,
                               "zones": self.expansion.zones, "acted_on": len(self.results),
                               "untouched": len(self.expansion.untouched),
                               "states": {s: states.count(s) for s in sorted(set(states))}}
        if changes_of is not None:
            doc["changes"] = sum(map(changes_of, self.results))
        doc["failed_zones"] = [zone for zone, state in zip(self.zones, states) if state == "failed"]
        return doc
