"""The probe services a plan may name, its ``watch.probes`` entries, and what they cost.

A plan's ``watch.probes`` is a list of entries, each naming its ``service``. Reading an
entry is the service module's business (``settings_from``); this module only dispatches
on the name, numbers the entries (``watch.probes[1].token``), and asks every service,
once the records to watch are known, whether the schedule fits its published limits
(``cost_problems``), before anything is sent to it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping, Sequence

from cutover.observe.probes import SettingError
from cutover.observe.types import Target

#: Service name -> the module implementing it (see ``cutover.observe.probes``).
MODULES = {"globalping": "cutover.observe.probes.globalping", "ripe-atlas": "cutover.observe.probes.atlas"}


@dataclass(frozen=True)
class ProbeEntry:
    """One ``watch.probes`` entry: which service, its parsed settings, where it was written."""

    service: str
    settings: Any
    where: str

    @property
    def module(self) -> ModuleType:
        return service_module(self.service)

    def measurable(self, targets: Sequence[Target]) -> tuple[Target, ...]:
        """The targets this service can measure: those resolvers are asked about, of a
        type the service queries (Globalping cannot ask for CAA, for one)."""
        types = getattr(self.module, "QUERY_TYPES", None)
        return tuple(t for t in targets if t.recursive and (types is None or t.type in types))


def service_module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])


def parse_entries(value: Any, where: str = "watch.probes") -> tuple[ProbeEntry, ...]:
    """Every entry of ``watch.probes`` (``${ENV}`` already substituted); ``SettingError``
    whose field is the full path of the first problem (``watch.probes[0].every``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SettingError(where, "must be a list of entries such as {service: globalping, locations: [...]}")
    return tuple(parse_entry(entry, f"{where}[{i}]") for i, entry in enumerate(value))


def parse_entry(entry: Any, where: str) -> ProbeEntry:
    if not isinstance(entry, Mapping):
        raise SettingError(where, "must be a mapping with a service, e.g. {service: globalping}")
    service = entry.get("service")
    if service not in MODULES:
        raise SettingError(f"{where}.service", f"{service!r} is not a probe service (expected one of: {', '.join(MODULES)})")
    try:
        settings = service_module(str(service)).settings_from(entry)
    except SettingError as exc:
        raise SettingError(f"{where}.{exc.field}", exc.message) from None
    return ProbeEntry(str(service), settings, where)


def cost_problems(entries: Sequence[ProbeEntry], targets: Sequence[Target]) -> list[str]:
    """Why a schedule would exceed a service's published limits: one message per entry
    that does not fit, saying what it would cost and what fits. Entries of one service
    and credential share its budget, so they are also checked together. A service
    module gives ``budget_key(settings)`` (whose budget: a token, or "anonymous"),
    ``hourly_use(settings, records)``, ``hourly_limit(settings)`` and ``UNIT``."""
    problems = []
    budgets: dict[tuple[str, str], list[tuple[ProbeEntry, int]]] = {}
    for entry in entries:
        records = len(entry.measurable(targets))
        if records:
            problem = entry.module.settings_problem(entry.settings, records)
            if problem:
                problems.append(f"{entry.where}: {problem}")
            budgets.setdefault((entry.service, entry.module.budget_key(entry.settings)), []).append((entry, records))
    for (service, _key), group in budgets.items():
        if len(group) > 1 and not problems:
            problems.extend(_shared_budget(service, group))
    return problems


def _shared_budget(service: str, group: Sequence[tuple[ProbeEntry, int]]) -> list[str]:
    """Entries that each fit but together spend more than the one budget they share."""
    module = service_module(service)
    use = sum(module.hourly_use(e.settings, records) for e, records in group)
    limit = module.hourly_limit(group[0][0].settings)
    if use <= limit:
        return []
    where = ", ".join(e.where for e, _ in group)
    return [f"{where}: together these {service} entries spend {use:,.0f} {module.UNIT} an hour of the one budget "
            f"they share, over the {limit:,.0f} allowed; lengthen their every or use fewer probes"]


def unmeasurable(entries: Sequence[ProbeEntry], targets: Sequence[Target]) -> list[str]:
    """Notes on watched records a service cannot measure (said, not refused)."""
    notes = []
    for entry in entries:
        skipped = [t for t in targets if t.recursive and t not in entry.measurable(targets)]
        if skipped:
            notes.append(f"{entry.where}: {entry.service} cannot measure "
                         + ", ".join(f"{t.name} {t.type}" for t in skipped))
    return notes
