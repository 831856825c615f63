"""``cutover export``: a plan skeleton written from the live zone.

The skeleton names every record set with ``from`` and ``to`` equal to what is live, so
that ``cutover diff`` on it is empty and an operator only edits the ``to`` lines.
The zone's SOA and apex NS are left out: they belong to the DNS host, not the move.
TTLs are left out unless asked for: a plan without ``ttl`` keeps the live one, so
after ``prepare`` lowered it, ``apply`` does not raise it back to the exported value.

Everything the user typed is checked the way the plan loader checks a plan, before the
provider is contacted, so that an exported plan is one ``diff`` accepts.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import dns.name
import yaml

from cutover import plan as planmod
from cutover.checking import Checker
from cutover.errors import Problem, UsageError
from cutover.records import RecordSet, relative_name
from providers.base import Provider

SKIPPED_AT_APEX = ("SOA", "NS")
#: One label of a zone name: letters, digits, hyphens inside, underscores allowed
#: (RFC 952/1123 host names, plus the ``_`` of service zones). IDN arrives as ``xn--``.
_LABEL = re.compile(rb"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
#: Names listed when an ``--only`` term matches nothing.
_NAMES_SHOWN = 12
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """A checked export request: nothing in it can make the exported plan unloadable."""

    zone: str
    provider: planmod.ProviderConfig
    raw_settings: Mapping[str, str] = field(repr=False)  # may hold a literal secret
    only: tuple[str, ...] = ()
    ttl: bool = False


def request(type_name: str, zone_text: str, settings: Sequence[str], environ: Mapping[str, str],
            *, only: str | None = None, ttl: bool = False) -> Request:
    """Check zone, ``--setting KEY=VALUE`` options and ``--only`` together, before any
    provider is contacted; ``UsageError`` lists every problem at once."""
    problems: list[str] = []
    zone = _checked(problems, "--zone", lambda: export_zone(zone_text))
    patterns = _checked(problems, "--only", lambda: parse_only(only, zone)) if only is not None and zone else ()
    raw = _settings(problems, settings)
    provider = _provider_config(problems, type_name, raw, environ)
    if problems:
        raise UsageError("\n".join(problems))
    assert zone is not None and provider is not None
    return Request(zone, provider, raw, tuple(patterns or ()), ttl)


def _checked(problems: list[str], option: str, check: Callable[[], T]) -> T | None:
    try:
        return check()
    except ValueError as exc:
        problems.append(f"{option}: {exc}")
        return None


def export_zone(text: str) -> str:
    """The zone's absolute name; ``ValueError`` unless every label is a host-name label.

    The plan loader takes any DNS name, but a zone at a DNS host is a host name: "bad
    zone!" is a typo to report, not a name to send to the provider."""
    zone = planmod.zone_name(text)
    for label in dns.name.from_text(zone).labels[:-1]:
        if not _LABEL.fullmatch(label):
            shown = label.decode("ascii", "backslashreplace")
            raise ValueError(f"{text!r} is not a zone name: the label {shown!r} may hold only letters, digits, "
                             "'-' and '_' (and not start or end with '-')")
    return zone


def parse_only(text: str, zone: str) -> tuple[str, ...]:
    """``www,mail,*.shop``: names or shell-style patterns relative to the zone (``@`` is the
    apex; a name ending in ``.`` is absolute and made relative)."""
    terms = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not terms:
        raise ValueError(f"{text!r} names nothing (expected e.g. www,mail,*.shop)")
    return tuple(dict.fromkeys(_relative_term(t, zone) for t in terms))


def _relative_term(term: str, zone: str) -> str:
    if not term.endswith("."):
        return term
    if term == zone:
        return "@"
    if term.endswith("." + zone):
        return term[: -len(zone) - 1]
    raise ValueError(f"{term!r} is outside the zone {zone}")


def _settings(problems: list[str], settings: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as written (``${ENV}`` kept for the plan); a key given twice
    with two values is a mistake to report, not a choice to make silently."""
    raw: dict[str, str] = {}
    for text in settings:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--setting {text!r}: expected KEY=VALUE (use ${{ENV}} for secrets)")
        elif key in raw and raw[key] != value:
            problems.append(f"--setting {key}: given twice with different values")
        else:
            raw[key] = value
    return raw


def _provider_config(problems: list[str], type_name: str, raw: Mapping[str, str],
                     environ: Mapping[str, str]) -> planmod.ProviderConfig | None:
    """The plan loader's own provider check (unknown keys with a hint, required keys,
    ``${ENV}``, the provider's value checks), its problems renamed to the options."""
    checker = Checker("export", environ)  # the loader's own check: the two cannot disagree
    config = planmod._provider(checker, {"type": type_name, **raw})
    problems.extend(_option_problem(p) for p in checker.problems)
    return config if not checker.problems else None


def _option_problem(problem: Problem) -> str:
    if problem.path == "provider.type":
        return f"--provider: {problem.message}"
    key = problem.path.removeprefix("provider.")
    return f"--setting {key}: {problem.message}"


def skeleton(provider: Provider, req: Request) -> dict[str, Any]:
    """The plan as data, from the settings as the user wrote them (``${ENV}`` unexpanded).

    A secret given literally becomes a ``${ENV}`` placeholder: a plan file must never
    hold a secret, and export must not be the way one gets written to disk."""
    zone = provider.zone
    type_name = req.provider.type
    safe = {
        key: (f"${{{_env_name(type_name, key)}}}" if key in provider.secret_settings and "${" not in str(value) else value)
        for key, value in req.raw_settings.items()
    }
    chosen = select(_managed(provider.records(), zone), zone, req.only)
    return {
        "version": 1,
        "zone": zone.rstrip("."),
        "provider": {"type": type_name, **safe},
        "records": [_entry(rs, zone, req.ttl) for rs in chosen],
        "prepare": {"ttl": 300},
        "watch": {"resolvers": "public", "interval": "30s", "timeout": "2s"},
        "retire": {"threshold": "100%", "parallel_period": "7d"},
    }


def _managed(records: Iterable[RecordSet], zone: str) -> list[RecordSet]:
    return sorted(r for r in records if not (r.name == zone and r.type in SKIPPED_AT_APEX))


def select(records: list[RecordSet], zone: str, only: Sequence[str]) -> list[RecordSet]:
    """The record sets whose relative name matches an ``--only`` term (all without one).

    A term matching nothing is refused rather than dropped: ``--only www,mial`` must not
    quietly export a plan without the mail record."""
    if not only:
        return records
    named = [(relative_name(rs.name, zone), rs) for rs in records]
    unmatched = [t for t in only if not any(fnmatch.fnmatchcase(n, t) for n, _ in named)]
    if unmatched:
        present = sorted({n for n, _ in named})
        listed = ", ".join(present[:_NAMES_SHOWN]) + (f" and {len(present) - _NAMES_SHOWN} more" if len(present) > _NAMES_SHOWN else "")
        verb = "matches" if len(unmatched) == 1 else "match"
        raise UsageError(f"--only: {', '.join(map(repr, unmatched))} {verb} no record set in {zone} "
                         f"(names there: {listed or 'none besides the apex SOA and NS'})")
    return [rs for n, rs in named if any(fnmatch.fnmatchcase(n, t) for t in only)]


def _entry(rs: RecordSet, zone: str, ttl: bool) -> dict[str, Any]:
    """One plan entry; with ``ttl`` false the live TTL stays whatever it is at apply time."""
    entry: dict[str, Any] = {"name": relative_name(rs.name, zone), "type": rs.type}
    if ttl:
        entry["ttl"] = rs.ttl
    return {**entry, "from": list(rs.values), "to": list(rs.values)}  # two lists: YAML must not alias them


def _env_name(type_name: str, key: str) -> str:
    return f"{type_name}_{key}".upper().replace("-", "_")


def to_yaml(plan: Mapping[str, Any]) -> str:
    """YAML with libyaml's emitter when it is there: ten times faster on a 100,000-set zone."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(dict(plan), Dumper=dumper, sort_keys=False, default_flow_style=None, width=1000)
