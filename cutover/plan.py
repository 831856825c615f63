"""Plans: validation and the ``Plan`` value.

A plan is refused before any provider is contacted, with every problem of the file
listed at once and located by its field path (``records[2].to[0]``). Reading the file
is ``cutover.planfile``'s job, collecting problems ``cutover.checking``'s, and the
values people write (``15m``, ``95%``, ``${ENV}``) are read by ``cutover.values``.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import dns.exception
import dns.name
import yaml

from cutover import resolvers as resolvers_mod
from cutover.checking import Checker
from cutover.errors import PlanError, Problem, UsageError
from cutover.observe.probes import SettingError
from cutover.observe.probes.services import ProbeEntry, parse_entries
from cutover.planfile import read_yaml
from cutover.readiness import config as readiness_config
from cutover.readiness.config import ReadyConfig
from cutover.records import (
    HOSTNAME_TARGET_FIELD,
    MAX_TTL,
    RecordKey,
    RecordSet,
    absolute_name,
    in_zone,
    relative_name,
    normalise_value,
    parse_rdata,
    rdtype_of,
)
from cutover.values import parse_duration, parse_quorum, parse_share, show
from providers.base import Provider
from providers.registry import available, provider_class

STAND_IN_ZONE = "zone.invalid."
DEFAULT_TTL = 300

TOP_KEYS = ("version", "zone", "provider", "records", "prepare", "watch", "retire", "verify", "safety", "ready")
RECORD_KEYS = ("name", "type", "ttl", "from", "to")
SECTION_KEYS = {
    "prepare": ("ttl",),
    "watch": ("resolvers", "interval", "timeout", "probes"),
    "retire": ("threshold", "parallel_period", "min_answering", "max_old_ttl", "ignore"),
    "verify": ("nameservers", "timeout"),
    "safety": ("max_change_share",),
}

# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PlannedRecord:
    """One managed record set: what it should become, and optionally what it is now."""

    name: str
    type: str
    ttl: int | None
    to: tuple[str, ...]
    from_: tuple[str, ...] | None
    index: int

    @property
    def key(self) -> RecordKey:
        return (self.name, self.type)

    def desired(self, live: RecordSet | None, default_ttl: int) -> RecordSet | None:
        """The record set after the change. TTL: the plan's, else the live one, else the default."""
        if not self.to:
            return None
        ttl = self.ttl if self.ttl is not None else (live.ttl if live else default_ttl)
        return RecordSet(self.name, self.type, ttl, self.to)


@dataclass(frozen=True)
class ProviderConfig:
    type: str
    settings: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class WatchConfig:
    resolvers: Any = "public"
    interval: float = 30.0
    timeout: float = 2.0
    probes: tuple[ProbeEntry, ...] = field(default=(), repr=False)  # settings hold tokens and keys


#: ``retire.min_answering`` default: half the resolvers asked must answer for a record.
DEFAULT_MIN_ANSWERING = 0.5
#: ``retire.max_old_ttl`` default: the old TTL assumed when nothing recorded it (a day
#: covers the common zone defaults of 3600-86400 s).
DEFAULT_MAX_OLD_TTL = 86400.0


@dataclass(frozen=True)
class RetireConfig:
    threshold: float = 1.0
    parallel_period: float = 7 * 86400.0
    min_answering: float = DEFAULT_MIN_ANSWERING
    min_answering_is_count: bool = False
    max_old_ttl: float = DEFAULT_MAX_OLD_TTL
    ignore: tuple[RecordKey, ...] = ()


@dataclass(frozen=True)
class VerifyConfig:
    nameservers: tuple[str, ...] = ()
    timeout: float = 300.0


@dataclass(frozen=True)
class Plan:
    """A validated plan. ``digest`` identifies its content in the journal."""

    path: Path
    zone: str
    provider: ProviderConfig
    records: tuple[PlannedRecord, ...]
    prepare_ttl: int | None = None
    watch: WatchConfig = WatchConfig()
    retire: RetireConfig = RetireConfig()
    verify: VerifyConfig = VerifyConfig()
    max_change_share: float = 0.5
    digest: str = ""
    ready: ReadyConfig = ReadyConfig()

    @property
    def keys(self) -> tuple[RecordKey, ...]:
        return tuple(r.key for r in self.records)

    @property
    def default_ttl(self) -> int:
        return self.prepare_ttl or DEFAULT_TTL


# --------------------------------------------------------------------------- validation


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Plan:
    """Load and validate a plan file; ``PlanError`` lists every problem found."""
    path = Path(path)
    data = read_yaml(path)
    return build(data, path, os.environ if environ is None else environ)


def build(data: Any, path: Path, environ: Mapping[str, str]) -> Plan:
    """Validate parsed YAML into a ``Plan``."""
    c = Checker(str(path), environ)
    if not isinstance(data, dict):
        what = "is empty" if data is None else f"must be a mapping with 'zone', 'provider' and 'records', not {show(data)}"
        raise PlanError(str(path), [Problem("", f"plan {what}")])
    c.keys(data, TOP_KEYS, "")
    version = data.get("version", 1)
    if version != 1:
        c.add("version", f"{show(version)} is not a supported plan version (expected 1)")
    zone = _zone(c, data.get("zone"))
    provider = _provider(c, data.get("provider"), path.parent)
    # With a bad zone, the records are still checked (every problem at once), against a
    # stand-in origin and without the checks that need the real zone.
    c.zone_known = zone is not None
    records = _records(c, data.get("records"), zone or STAND_IN_ZONE, provider)
    sections = {name: c.mapping(data.get(name), name) or {} for name in SECTION_KEYS}
    for name, section in sections.items():
        c.keys(section, SECTION_KEYS[name], name)
    prepare_ttl = _ttl(c, sections["prepare"]["ttl"], "prepare.ttl") if "ttl" in sections["prepare"] else None
    watch = _watch(c, sections["watch"], path.parent)
    retire = _retire(c, sections["retire"], zone or STAND_IN_ZONE)
    verify = _verify(c, sections["verify"])
    ready = readiness_config.parse(c, data.get("ready"), path.parent)
    share = sections["safety"].get("max_change_share", 0.5)
    share = c.convert(share, "safety.max_change_share", parse_share)
    if c.problems:
        raise PlanError(str(path), c.problems)
    assert zone is not None and provider is not None
    return Plan(
        path=path,
        zone=zone,
        provider=provider,
        records=records,
        prepare_ttl=prepare_ttl,
        watch=watch,
        retire=retire,
        verify=verify,
        max_change_share=share,
        digest=_digest(zone, provider.type, records),
        ready=ready,
    )


def _digest(zone: str, provider_type: str, records: tuple[PlannedRecord, ...]) -> str:
    body = json.dumps(
        [zone, provider_type, [[r.name, r.type, r.ttl, r.to, r.from_] for r in records]],
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def zone_name(value: Any) -> str:
    """The absolute, lower-case zone name; ``ValueError`` for the root or a non-name."""
    try:
        name = dns.name.from_text(str(value))
    except dns.exception.DNSException as exc:
        raise ValueError(f"{show(value)} is not a domain name ({exc})") from None
    if len(name) < 2:
        raise ValueError(f"{show(value)} is the root; a plan manages one zone below it")
    return name.to_text().lower()


def _zone(c: Checker, value: Any) -> str | None:
    if value is None:
        c.add("zone", "missing (expected the zone's name, e.g. example.com)")
        return None
    return c.convert(value, "zone", zone_name)


def _provider(c: Checker, value: Any, base_dir: Path | None = None) -> ProviderConfig | None:
    """The ``provider`` section, checked by the provider class itself.

    ``${ENV}`` is substituted first, then the provider's ``path_settings`` are taken
    from ``base_dir`` (the plan's folder; None leaves them to the working directory, as
    for ``export --setting``), then the class prepares the settings it is built with
    (``Provider.prepare_settings``: a description file is read there, once)."""
    cls = _provider_class(c, value)
    if cls is None:
        return None
    ptype = str(value["type"])
    settings = {k: v for k, v in value.items() if k != "type"}
    c.keys(settings, cls.settings_keys, "provider")
    for key in cls.required_settings:
        if key not in settings:
            c.add(f"provider.{key}", f"missing (the {ptype} provider needs it)")
    resolved = _paths({k: c.env(v, f"provider.{k}") for k, v in settings.items()}, cls.path_settings, base_dir)
    prepared, problems = cls.prepare_settings(resolved, c.environ)
    for key, message in problems:
        c.add(f"provider.{key}", message)
    return ProviderConfig(ptype, prepared)


def _provider_class(c: Checker, value: Any) -> type[Provider] | None:
    section = c.mapping(value, "provider")
    if section is None:
        return None
    if "type" not in section:
        c.add("provider.type", f"missing (expected one of: {', '.join(available())})")
        return None
    ptype = str(section["type"])
    if ptype not in available():
        hint = difflib.get_close_matches(ptype, available(), n=1)
        extra = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(available())}"
        c.add("provider.type", f"unknown provider {show(ptype)} ({extra})")
        return None
    try:
        return provider_class(ptype)
    except UsageError as exc:
        c.add("provider.type", str(exc))
        return None


def _paths(settings: dict[str, Any], keys: tuple[str, ...], base_dir: Path | None) -> dict[str, Any]:
    """``settings`` with each relative path among ``keys`` taken from ``base_dir``, the way
    ``watch.resolvers`` is: a plan then means the same files from any working directory."""
    if base_dir is None:
        return settings
    resolved = dict(settings)
    for key in keys:
        if isinstance(resolved.get(key), str) and resolved[key].strip():
            path = Path(resolved[key]).expanduser()
            resolved[key] = str(path if path.is_absolute() else base_dir / path)
    return resolved


def _check_types(c: Checker, provider: ProviderConfig | None, records: list[PlannedRecord]) -> None:
    """Each record type the provider's backend supports, found before the journal begins."""
    if provider is None:
        return
    cls = provider_class(provider.type)  # loaded already by ``_provider``
    for r in records:
        problem = cls.type_problem(r.type)
        if problem:
            c.add(f"records[{r.index}].type", f"the {provider.type} provider {problem}")


def _ttl(c: Checker, value: Any, path: str) -> int | None:
    value = c.env(value, path)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(path, f"{show(value)} is not a TTL (expected whole seconds, 0-{MAX_TTL})")
        return None
    if not 0 <= value <= MAX_TTL:
        c.add(path, f"{value} is out of range (expected 0-{MAX_TTL} seconds)")
        return None
    return value


def _records(c: Checker, value: Any, zone: str, provider: ProviderConfig | None = None) -> tuple[PlannedRecord, ...]:
    if value is None or value == []:
        c.add("records", "empty: a plan must name at least one record set to manage")
        return ()
    if not isinstance(value, list):
        c.add("records", f"{show(value)} is not a list of record sets")
        return ()
    out = [r for i, item in enumerate(value) if (r := _record(c, item, i, zone)) is not None]
    _check_together(c, out, zone)
    _check_types(c, provider, out)
    return tuple(out)


def _record(c: Checker, item: Any, i: int, zone: str) -> PlannedRecord | None:
    path = f"records[{i}]"
    if not isinstance(item, dict):
        c.add(path, f"{show(item)} is not a mapping with name, type and to")
        return None
    c.keys(item, RECORD_KEYS, path)
    missing = [k for k in ("name", "type", "to") if k not in item]
    for key in missing:
        c.add(f"{path}.{key}", "missing")
    if missing:
        return None
    name = _record_name(c, item["name"], f"{path}.name", zone)
    rtype = str(item["type"]).upper()
    try:
        rdtype_of(rtype)
    except ValueError:
        c.add(f"{path}.type", f"{show(item['type'])} is not a DNS record type (expected e.g. A, AAAA, MX, CNAME, TXT)")
        return None
    ttl = _ttl(c, item["ttl"], f"{path}.ttl") if "ttl" in item else None
    to = _values(c, item["to"], f"{path}.to", rtype, zone)
    from_ = _values(c, item["from"], f"{path}.from", rtype, zone) if "from" in item else None
    if name is None or to is None or ("from" in item and from_ is None):
        return None
    return PlannedRecord(name=name, type=rtype, ttl=ttl, to=to, from_=from_, index=i)


def _record_name(c: Checker, value: Any, path: str, zone: str) -> str | None:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        c.add(path, f"{show(value)} is not a name (expected '@', a relative name or an absolute one ending in '.')")
        return None
    try:
        name = absolute_name(str(value), zone)
    except dns.exception.DNSException as exc:
        c.add(path, f"{show(value)} is not a domain name ({exc})")
        return None
    if not c.zone_known:
        return name
    text = str(value).lower().rstrip()
    bare_zone = zone.rstrip(".")
    if not text.endswith(".") and (text == bare_zone or text.endswith("." + bare_zone)):
        c.add(path, f"{show(value)} is relative, so it means {name}; write {text}. (with the final dot) "
                    f"or {relative_name(text + '.', zone)!r}")
        return None
    if not in_zone(name, zone):
        c.add(path, f"{show(value)} is outside the zone {zone} (absolute names must end in the zone)")
        return None
    return name


def _values(c: Checker, value: Any, path: str, rtype: str, zone: str) -> tuple[str, ...] | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if value is None:
        value = []
    if not isinstance(value, list):
        c.add(path, f"{show(value)} is not a list of values")
        return None
    ok = True
    out: set[str] = set()
    for j, raw in enumerate(value):
        where = f"{path}[{j}]"
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            c.add(where, f"{show(raw)} is not a value in presentation format (expected a string)")
            ok = False
            continue
        text = str(c.env(raw, where))
        try:
            out.add(normalise_value(rtype, text, zone))
        except ValueError as exc:
            c.add(where, str(exc))
            ok = False
            continue
        problem = _target_problem(rtype, text, zone)
        if problem:
            c.add(where, problem)
            ok = False
    if rtype == "CNAME" and len(out) > 1:
        c.add(path, "a CNAME record set holds exactly one value")
        ok = False
    return tuple(sorted(out)) if ok else None


def _target_problem(rtype: str, text: str, zone: str) -> str | None:
    """RFC 2181 10.3 and RFC 1034: MX, NS, SRV and CNAME point at names, never at addresses."""
    attr = HOSTNAME_TARGET_FIELD.get(rtype)
    if not attr:
        return None
    target = getattr(parse_rdata(rtype, text), attr).to_text(omit_final_dot=True)  # no origin: as written
    try:
        ipaddress.ip_address(target)
    except ValueError:
        return None
    return f"{text!r}: the {rtype} target {target} is an IP address; {rtype} must name a host (give the host an A record)"


def _check_together(c: Checker, records: list[PlannedRecord], zone: str) -> None:
    """Rules that span record sets: duplicates, CNAME at the apex or beside other data."""
    seen: dict[RecordKey, int] = {}
    types_at: dict[str, list[PlannedRecord]] = {}
    for r in records:
        path = f"records[{r.index}]"
        if r.key in seen:
            c.add(path, f"duplicate record set {r.name} {r.type} (also records[{seen[r.key]}]); merge the values into one entry")
            continue
        seen[r.key] = r.index
        if r.to:
            types_at.setdefault(r.name, []).append(r)
        if r.type == "CNAME" and r.name == zone and r.to and c.zone_known:
            c.add(path, f"a CNAME at the zone apex ({zone}) is not allowed: the apex holds SOA and NS (RFC 1034 3.6.2)")
    aliases = {name for name, group in types_at.items() if any(r.type == "CNAME" for r in group)}
    for r in records:
        attr = HOSTNAME_TARGET_FIELD.get(r.type)
        if r.type == "CNAME" or not attr:
            continue
        for value in r.to:
            target = getattr(parse_rdata(r.type, value), attr).to_text().lower()
            if target in aliases:
                c.add(f"records[{r.index}]", f"{r.type} target {target} is a CNAME in this plan; "
                      f"{r.type} must point at a name with address records (RFC 2181 10.3)")
    for name, group in types_at.items():
        if len(group) > 1 and any(r.type == "CNAME" for r in group):
            cname = next(r for r in group if r.type == "CNAME")
            others = ", ".join(r.type for r in group if r.type != "CNAME")
            c.add(f"records[{cname.index}]", f"a CNAME at {name} cannot share the name with other data ({others})")


def _watch(c: Checker, section: Mapping[str, Any], base_dir: Path) -> WatchConfig:
    spec = section.get("resolvers", "public")
    try:
        resolvers_mod.resolve_spec(spec, base_dir)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        c.add("watch.resolvers", str(exc))
    interval = c.convert(section.get("interval", "30s"), "watch.interval", _positive_duration)
    timeout = c.convert(section.get("timeout", "2s"), "watch.timeout", _positive_duration)
    probes: tuple[ProbeEntry, ...] = ()
    try:
        probes = parse_entries(_each_field_env(c, section.get("probes"), "watch.probes"))
    except SettingError as exc:
        c.add(exc.field, exc.message)
    found = resolvers_mod.spec_file(spec, base_dir)  # never raises, unlike Path.is_file
    if found is not None:
        spec = str(found.resolve())  # a file beside the plan, wherever cutover runs from
    return WatchConfig(resolvers=spec, interval=30.0 if interval is None else interval,
                       timeout=2.0 if timeout is None else timeout, probes=probes)


def _each_field_env(c: Checker, value: Any, path: str) -> Any:
    """``${ENV}`` substituted field by field in a list of mappings, so that an unset token
    hides only the problems of its own field, not those of the whole list."""
    if not isinstance(value, list):
        return c.env(value, path)
    return [{k: c.env(v, f"{path}[{i}].{k}") for k, v in entry.items()} if isinstance(entry, dict) else entry
            for i, entry in enumerate(value)]


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{show(value)} must be longer than 0 seconds")
    return seconds


def _retire(c: Checker, section: Mapping[str, Any], zone: str) -> RetireConfig:
    threshold = c.convert(section.get("threshold", "100%"), "retire.threshold", parse_share)
    period = c.convert(section.get("parallel_period", "7d"), "retire.parallel_period", parse_duration)
    quorum = c.convert(section.get("min_answering", "50%"), "retire.min_answering", parse_quorum)
    max_old = c.convert(section.get("max_old_ttl", "1d"), "retire.max_old_ttl", parse_duration)
    ignore = _ignore(c, section.get("ignore", []), zone)
    return RetireConfig(
        threshold=1.0 if threshold is None else threshold,
        parallel_period=7 * 86400.0 if period is None else period,
        min_answering=DEFAULT_MIN_ANSWERING if quorum is None else quorum[0],
        min_answering_is_count=False if quorum is None else quorum[1],
        max_old_ttl=DEFAULT_MAX_OLD_TTL if max_old is None else max_old,
        ignore=ignore,
    )


def _ignore(c: Checker, value: Any, zone: str) -> tuple[RecordKey, ...]:
    """``retire.ignore``: ``"NAME TYPE"`` entries, names relative to the zone as in ``records``."""
    if not isinstance(value, list):
        c.add("retire.ignore", f"{show(value)} is not a list of 'NAME TYPE' entries (e.g. [legacy-ftp A])")
        return ()
    keys = []
    for j, entry in enumerate(value):
        parts = str(entry).split() if isinstance(entry, str) else []
        try:
            rtype = str(rdtype_of(parts[1]).name) if len(parts) == 2 else ""
            name = absolute_name(parts[0], zone) if rtype else ""
        except (ValueError, dns.exception.DNSException):
            rtype = ""
        if not rtype or not name:
            c.add(f"retire.ignore[{j}]", f"{show(entry)} is not 'NAME TYPE' (expected e.g. 'legacy-ftp A' or '@ MX')")
            continue
        keys.append((name, rtype))
    return tuple(keys)


def _verify(c: Checker, section: Mapping[str, Any]) -> VerifyConfig:
    servers = section.get("nameservers", [])
    if not isinstance(servers, list):
        c.add("verify.nameservers", f"{show(servers)} is not a list of servers")
        servers = []
    for j, server in enumerate(servers):
        if not isinstance(server, str) or not server.strip():
            c.add(f"verify.nameservers[{j}]", f"{show(server)} is not a server (expected a host name or address[:port])")
    timeout = c.convert(section.get("timeout", "5m"), "verify.timeout", parse_duration)
    return VerifyConfig(tuple(str(s) for s in servers), 300.0 if timeout is None else timeout)
