"""Plan files: loading, ``${ENV}`` substitution, validation, and the ``Plan`` value.

A plan is refused before any provider is contacted, with every problem of the file
listed at once and located by its field path (``records[2].to[0]``), because an
operator fixing a plan at midnight should not have to run the tool once per typo.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import os
import re
import reprlib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import dns.exception
import dns.name
import yaml

from cutover import resolvers as resolvers_mod
from cutover.errors import PlanError, Problem, UsageError
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

#: Large enough for a plan of about 180,000 record sets (an export of a big zone), small
#: enough that a wrong file (a log, a dump) is refused before it is read.
MAX_PLAN_BYTES = 16 * 1024 * 1024
STAND_IN_ZONE = "zone.invalid."
DEFAULT_TTL = 300

TOP_KEYS = ("version", "zone", "provider", "records", "prepare", "watch", "retire", "verify", "safety")
RECORD_KEYS = ("name", "type", "ttl", "from", "to")
SECTION_KEYS = {
    "prepare": ("ttl",),
    "watch": ("resolvers", "interval", "timeout"),
    "retire": ("threshold", "parallel_period", "min_answering", "max_old_ttl", "ignore"),
    "verify": ("nameservers", "timeout"),
    "safety": ("max_change_share",),
}

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 4
_short.maxdict = 4
_short.maxlevel = 2


def show(value: Any) -> str:
    """A bounded repr for messages: a hostile plan cannot make an error message huge."""
    return _short.repr(value)


# --------------------------------------------------------------------------- values


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``48h``, ``7d`` (or ``2w``). ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{show(value)} is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def parse_share(value: Any) -> float:
    """A share 0..1 from ``100%``, ``95 %``, ``0.95`` or ``1``."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if isinstance(value, bool) or not 0.0 <= share <= 1.0:
        raise ValueError(f"{show(value)} is not a share (expected a percentage like 95% or a number 0..1)")
    return share


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_env(value: str, environ: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` by the environment's value; ``KeyError(NAME)`` if unset."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in environ:
            raise KeyError(m.group(1))
        return environ[m.group(1)]

    return _ENV.sub(one, value)


def substitute_tree(data: Any, environ: Mapping[str, str], path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """``${NAME}`` replaced in every string of a nested structure (provider settings such as
    ``auth: {token: ...}`` nest). Returns the result and the (path, NAME) of unset variables;
    an unset variable is left as written."""
    missing: list[tuple[str, str]] = []

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            def one(m: re.Match[str]) -> str:
                if m.group(1) in environ:
                    return environ[m.group(1)]
                missing.append((where, m.group(1)))
                return m.group(0)

            return _ENV.sub(one, value)
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(data, path), missing


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

    @property
    def keys(self) -> tuple[RecordKey, ...]:
        return tuple(r.key for r in self.records)

    @property
    def default_ttl(self) -> int:
        return self.prepare_ttl or DEFAULT_TTL


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys: the second ``to:`` silently winning is a classic."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", mark
            )
        seen.add(key) if isinstance(key, (str, int, float, bool)) else None
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; ``PlanError`` for I/O, size, encoding or syntax trouble."""
    source = str(path)
    try:
        text = _read_plan_bytes(path, source).decode("utf-8-sig")
    except FileNotFoundError:
        raise PlanError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise PlanError(source, [Problem("", "is a directory, not a plan file")]) from None
    except UnicodeDecodeError as exc:
        raise PlanError(source, [Problem("", f"is not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise PlanError(source, [Problem("", f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if "\t" in what or "'\\t'" in what:
            what += " (YAML indentation must use spaces, not tabs)"
        raise PlanError(source, [Problem(where, f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise PlanError(source, [Problem("", f"invalid YAML: {exc}")]) from None


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(source: str, mode: int) -> None:
    """Refuse anything but a regular file, naming what it is."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for is_kind, name in _KINDS if is_kind(mode)), "not a regular file")
    hint = "" if kind == "a directory" else "; give the path of a regular file"
    raise PlanError(source, [Problem("", f"is {kind}, not a plan file{hint}")])


def _read_plan_bytes(path: Path, source: str) -> bytes:
    """At most ``MAX_PLAN_BYTES`` of a regular file, whatever ``stat`` claims.

    A device or FIFO is refused before it is opened (opening one can block or have side
    effects), and checked again on the open descriptor, opened non-blocking, in case the
    path was swapped in between. ``/dev/zero`` reports size 0 and never ends, and
    ``/proc`` files report 0 while holding data, so the size from ``stat`` only refuses
    early and the read itself stops one byte past the limit."""
    _not_regular(source, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        _not_regular(source, info.st_mode)
        if info.st_size > MAX_PLAN_BYTES:
            raise PlanError(source, [Problem("", f"file is {info.st_size / 1e6:.1f} MB; a plan is at most {MAX_PLAN_BYTES // 2**20} MiB")])
        data = _read_at_most(f, MAX_PLAN_BYTES + 1)
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(source, [Problem("", f"file is larger than {MAX_PLAN_BYTES // 2**20} MiB; a plan is at most that")])
    return data


def _read_at_most(f: Any, limit: int) -> bytes:
    """Read until end of file or ``limit`` bytes, whichever comes first."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- validation


class _Checker:
    """Collects problems while building the plan, so that all are reported together."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[Problem] = []
        self.zone_known = True
        self.unset: dict[str, list[str]] = {}  # variable -> the places that use it, in order
        self._unset_at: dict[str, int] = {}  # variable -> index of its one problem
        self._unresolved: set[str] = set()  # paths whose value still holds an unset ${NAME}

    def add(self, path: str, message: str) -> None:
        """Record a problem, unless it is at (or inside) a value whose variable is unset:
        "'${NEW_IP}' is not a valid IPv4 address" only repeats that NEW_IP is not set."""
        if not self._follows_unset(path):
            self.problems.append(Problem(path, message))

    def _follows_unset(self, path: str) -> bool:
        return any(path == root or path.startswith((f"{root}.", f"{root}[")) for root in self._unresolved)

    def keys(self, mapping: Mapping[Any, Any], allowed: Iterable[str], path: str) -> None:
        allowed = tuple(allowed)
        for key in mapping:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            where = f"{path}.{key}" if path else str(key)
            extra = f" (did you mean {hint[0]!r}?)" if hint else f" (expected one of: {', '.join(allowed)})"
            self.add(where, f"unknown key {show(key)}{extra}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"{show(value)} is not a mapping")
            return None
        return value

    def convert(self, value: Any, path: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(self.env(value, path))
        except (ValueError, TypeError) as exc:
            self.add(path, str(exc))
            return None

    def env(self, value: Any, path: str) -> Any:
        """``${NAME}`` substituted; each unset variable is one problem per plan, at its first
        place, naming the others (a plan using ``${NEW_IP}`` ten times is one mistake)."""
        result, missing = substitute_tree(value, self.environ, path)
        for where, name in missing:
            self._unset_variable(name, where)
        if missing:
            self._unresolved.add(path)
        return result

    def _unset_variable(self, name: str, where: str) -> None:
        places = self.unset.setdefault(name, [])
        if where in places:
            return
        places.append(where)
        problem = Problem(places[0], f"environment variable {name} is not set{_also_used(places[1:])}")
        if name in self._unset_at:
            self.problems[self._unset_at[name]] = problem
        else:
            self._unset_at[name] = len(self.problems)
            self.problems.append(problem)


#: Places named in full in the unset-variable problem; the rest are counted.
_PLACES_SHOWN = 3


def _also_used(places: list[str]) -> str:
    """`` (also used at a, b and 4 more places)``: bounded, however often a variable is used."""
    if not places:
        return ""
    rest = len(places) - _PLACES_SHOWN
    named = places[:_PLACES_SHOWN] + ([f"{rest} more place{'s' if rest > 1 else ''}"] if rest > 0 else [])
    listed = f"{', '.join(named[:-1])} and {named[-1]}" if len(named) > 1 else named[0]
    return f" (also used at {listed})"


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Plan:
    """Load and validate a plan file; ``PlanError`` lists every problem found."""
    path = Path(path)
    data = read_yaml(path)
    return build(data, path, os.environ if environ is None else environ)


def build(data: Any, path: Path, environ: Mapping[str, str]) -> Plan:
    """Validate parsed YAML into a ``Plan``."""
    c = _Checker(str(path), environ)
    if not isinstance(data, dict):
        what = "is empty" if data is None else f"must be a mapping with 'zone', 'provider' and 'records', not {show(data)}"
        raise PlanError(str(path), [Problem("", f"plan {what}")])
    c.keys(data, TOP_KEYS, "")
    version = data.get("version", 1)
    if version != 1:
        c.add("version", f"{show(version)} is not a supported plan version (expected 1)")
    zone = _zone(c, data.get("zone"))
    provider = _provider(c, data.get("provider"))
    # With a bad zone, the records are still checked (every problem at once), against a
    # stand-in origin and without the checks that need the real zone.
    c.zone_known = zone is not None
    records = _records(c, data.get("records"), zone or STAND_IN_ZONE)
    sections = {name: c.mapping(data.get(name), name) or {} for name in SECTION_KEYS}
    for name, section in sections.items():
        c.keys(section, SECTION_KEYS[name], name)
    prepare_ttl = _ttl(c, sections["prepare"]["ttl"], "prepare.ttl") if "ttl" in sections["prepare"] else None
    watch = _watch(c, sections["watch"], path.parent)
    retire = _retire(c, sections["retire"], zone or STAND_IN_ZONE)
    verify = _verify(c, sections["verify"])
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


def _zone(c: _Checker, value: Any) -> str | None:
    if value is None:
        c.add("zone", "missing (expected the zone's name, e.g. example.com)")
        return None
    return c.convert(value, "zone", zone_name)


def _provider(c: _Checker, value: Any) -> ProviderConfig | None:
    from providers.registry import available, provider_class

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
        cls = provider_class(ptype)
    except UsageError as exc:
        c.add("provider.type", str(exc))
        return None
    settings = {k: v for k, v in section.items() if k != "type"}
    c.keys(settings, cls.settings_keys, "provider")
    for key in cls.required_settings:
        if key not in settings:
            c.add(f"provider.{key}", f"missing (the {ptype} provider needs it)")
    resolved = {k: c.env(v, f"provider.{k}") for k, v in settings.items()}
    for key, message in cls.check_settings(resolved):
        c.add(f"provider.{key}", message)
    return ProviderConfig(ptype, resolved)


def _ttl(c: _Checker, value: Any, path: str) -> int | None:
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


def _records(c: _Checker, value: Any, zone: str) -> tuple[PlannedRecord, ...]:
    if value is None or value == []:
        c.add("records", "empty: a plan must name at least one record set to manage")
        return ()
    if not isinstance(value, list):
        c.add("records", f"{show(value)} is not a list of record sets")
        return ()
    out = [r for i, item in enumerate(value) if (r := _record(c, item, i, zone)) is not None]
    _check_together(c, out, zone)
    return tuple(out)


def _record(c: _Checker, item: Any, i: int, zone: str) -> PlannedRecord | None:
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


def _record_name(c: _Checker, value: Any, path: str, zone: str) -> str | None:
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


def _values(c: _Checker, value: Any, path: str, rtype: str, zone: str) -> tuple[str, ...] | None:
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


def _check_together(c: _Checker, records: list[PlannedRecord], zone: str) -> None:
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


def _watch(c: _Checker, section: Mapping[str, Any], base_dir: Path) -> WatchConfig:
    spec = section.get("resolvers", "public")
    try:
        resolvers_mod.resolve_spec(spec, base_dir)
    except (ValueError, OSError, yaml.YAMLError) as exc:
        c.add("watch.resolvers", str(exc))
    interval = c.convert(section.get("interval", "30s"), "watch.interval", _positive_duration)
    timeout = c.convert(section.get("timeout", "2s"), "watch.timeout", _positive_duration)
    found = resolvers_mod.spec_file(spec, base_dir)  # never raises, unlike Path.is_file
    if found is not None:
        spec = str(found.resolve())  # a file beside the plan, wherever cutover runs from
    return WatchConfig(resolvers=spec, interval=30.0 if interval is None else interval,
                       timeout=2.0 if timeout is None else timeout)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{show(value)} must be longer than 0 seconds")
    return seconds


def _retire(c: _Checker, section: Mapping[str, Any], zone: str) -> RetireConfig:
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


def parse_quorum(value: Any) -> tuple[float, bool]:
    """``retire.min_answering``: a count (``3``) or a share (``50%``, ``0.5``); (value, is_count)."""
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a count or a share (expected e.g. 3 or 50%)")
    text = str(value).strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise ValueError(f"{show(value)} must be at least 1 (or a share such as 50%)")
        return float(count), True
    try:
        return parse_share(value), False
    except ValueError:
        raise ValueError(f"{show(value)} is not a count or a share (expected e.g. 3 or 50%)") from None


def _ignore(c: _Checker, value: Any, zone: str) -> tuple[RecordKey, ...]:
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


def _verify(c: _Checker, section: Mapping[str, Any]) -> VerifyConfig:
    servers = section.get("nameservers", [])
    if not isinstance(servers, list):
        c.add("verify.nameservers", f"{show(servers)} is not a list of servers")
        servers = []
    for j, server in enumerate(servers):
        if not isinstance(server, str) or not server.strip():
            c.add(f"verify.nameservers[{j}]", f"{show(server)} is not a server (expected a host name or address[:port])")
    timeout = c.convert(section.get("timeout", "5m"), "verify.timeout", parse_duration)
    return VerifyConfig(tuple(str(s) for s in servers), 300.0 if timeout is None else timeout)
