"""A ``watch.probes`` entry of service ``ripe-atlas``: its settings, and what its schedule costs.

Read by ``settings_from`` (every problem names its field, and never quotes the key);
priced by ``settings_problem`` against RIPE Atlas's published costs and daily limits,
before anything is sent. The client that spends the credits is ``atlas``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from cutover.observe.probes import SettingError
from cutover.values import parse_duration, show

SERVICE = "ripe-atlas"
DEFAULT_URL = "https://atlas.ripe.net"

# Published costs and limits. Costs: "DNS and DNS6: Unit cost for UDP: 10 credits/result,
# for TCP: 20 credits/result" and "One-off measurement result is twice as expensive"
# (https://atlas.ripe.net/docs/getting-started/credits.html, Measurement Cost Model; the
# same text in the User-defined Measurements docs, https://atlas.ripe.net/docs/udm/).
# Limits, from the UDM docs' "Rate Limits": "No more than 100 simultaneous measurements",
# "No more than 1000 probes may be used per measurement", "No more than 100,000 results
# can be generated per day", "No more than 1,000,000 credits may be used each day", "No
# more than 25 ongoing and 25 one-off measurements of the same type running against the
# same target at any time". A probe's one result counts once, whatever number of its own
# resolvers it asked (they come back as one result with a ``resultset``).
DNS_UDP_CREDITS = 10
DNS_TCP_CREDITS = 20
ONE_OFF_FACTOR = 2
PROBES_PER_MEASUREMENT = 1000
RESULTS_PER_DAY = 100_000
CREDITS_PER_DAY = 1_000_000
SIMULTANEOUS_MEASUREMENTS = 100
DAY = 86400.0

#: One measurement per record each hour unless the plan says otherwise: credits are scarce.
DEFAULT_EVERY = 3600.0

#: Query types a DNS measurement takes (the API's list, as the ripe-atlas CLI documents it):
#: HTTPS, SVCB and CAA are not among them.
QUERY_TYPES = frozenset({"A", "AAAA", "ANY", "CNAME", "DNSKEY", "DS", "HINFO", "MX", "NS", "NSEC", "NSEC3",
                         "NSEC3PARAM", "PTR", "RRSIG", "SOA", "SRV", "SSHFP", "TLSA", "TXT"})
AREAS = ("WW", "West", "North-Central", "South-Central", "North-East", "South-East")
SPEC_TYPES = ("area", "country", "asn", "prefix", "probes", "msm")
SPEC_KEYS = frozenset({"type", "value", "requested", "tags"})
FIELDS = frozenset({"service", "key", "probes", "every", "url", "resolver", "protocol", "af", "credits_per_day"})


@dataclass(frozen=True)
class ProbeSpec:
    """One ``probes:`` item: where Atlas picks probes from, and how many (``requested``)."""

    type: str
    value: str
    requested: int
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def as_api(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "value": self.value, "requested": self.requested}
        if self.include or self.exclude:
            spec["tags"] = {"include": list(self.include), "exclude": list(self.exclude)}
        return spec


@dataclass(frozen=True)
class AtlasSettings:
    """One ``probes:`` entry of service ``ripe-atlas``, already parsed.

    ``resolver`` None means each probe's own resolvers (the plan's ``own``), which is the
    point: those are the ISP caches nobody else can ask. ``credits_per_day`` is the
    plan's own budget, checked on top of the service's published limits.
    """

    probes: tuple[ProbeSpec, ...] = ()
    key: str = field(default="", repr=False)
    every: float = DEFAULT_EVERY
    url: str = DEFAULT_URL
    resolver: str | None = None
    protocol: str = "UDP"
    af: int = 4
    credits_per_day: int | None = None


# -- settings ---------------------------------------------------------------------------------


def settings_from(entry: Mapping[str, Any]) -> AtlasSettings:
    """Read one ``watch.probes`` entry of service ``ripe-atlas``; ``SettingError`` names the
    first field that cannot be used (never quoting the key)."""
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if unknown:
        raise SettingError(unknown[0], f"unknown field for {SERVICE} (known: {', '.join(sorted(FIELDS))})")
    if entry.get("service", SERVICE) != SERVICE:
        raise SettingError("service", f"{show(entry.get('service'))} is not {SERVICE}")
    resolver, af = _resolver_setting(entry.get("resolver", "own"), entry.get("af"))
    return AtlasSettings(probes=_probe_specs(entry.get("probes")), key=_key(entry.get("key")),
                         every=_every(entry.get("every", DEFAULT_EVERY)), url=_url(entry.get("url", DEFAULT_URL)),
                         resolver=resolver, protocol=_protocol(entry.get("protocol", "UDP")), af=af,
                         credits_per_day=_credits(entry.get("credits_per_day")))


def _key(value: Any) -> str:
    how = 'e.g. key: "${RIPE_ATLAS_KEY}", an API key allowed to create measurements'
    if value is None or value == "":
        raise SettingError("key", f"required: RIPE Atlas creates measurements only with an API key ({how})")
    if not isinstance(value, str):
        raise SettingError("key", f"must be a string ({how})")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise SettingError("key", "contains spaces or control characters (is the environment variable set right?)")
    return value


def _every(value: Any) -> float:
    try:
        every = parse_duration(value)
    except ValueError as exc:
        raise SettingError("every", str(exc)) from None
    if every < 1:
        raise SettingError("every", "must be at least 1s")
    return every


def _url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError("url", f"{show(value)} is not an http(s) URL such as {DEFAULT_URL}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SettingError("url", "must be a plain base URL: no credentials, query or fragment (the key goes in key:)")
    return value.rstrip("/")


def _resolver_setting(value: Any, af: Any) -> tuple[str | None, int]:
    """``own`` (each probe's resolvers) or one resolver's IP address, and the address family."""
    if af is not None and (isinstance(af, bool) or af not in (4, 6)):
        raise SettingError("af", f"{show(af)} is not 4 or 6")
    if value in (None, "own"):
        return None, int(af or 4)
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise SettingError("resolver", f"{show(value)} is neither own nor an IP address") from None
    if af is not None and af != address.version:
        raise SettingError("af", f"af: {af} does not fit the IPv{address.version} resolver {address}")
    return str(address), address.version


def _protocol(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in ("UDP", "TCP"):
        raise SettingError("protocol", f"{show(value)} is not UDP or TCP")
    return value.upper()


def _credits(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingError("credits_per_day", f"{show(value)} is not a positive whole number of credits")
    return value


def _probe_specs(value: Any) -> tuple[ProbeSpec, ...]:
    if not value:
        raise SettingError("probes", "required: where and how many, e.g. [{type: area, value: WW, requested: 50}]")
    if not isinstance(value, (list, tuple)):
        raise SettingError("probes", "must be a list of {type, value, requested}")
    specs = tuple(_probe_spec(item, f"probes[{i}]") for i, item in enumerate(value))
    total = sum(s.requested for s in specs)
    if total > PROBES_PER_MEASUREMENT:
        raise SettingError("probes", f"{total} probes requested; RIPE Atlas allows at most {PROBES_PER_MEASUREMENT} a measurement")
    return specs


def _probe_spec(item: Any, where: str) -> ProbeSpec:
    if not isinstance(item, Mapping):
        raise SettingError(where, "must be a mapping {type, value, requested}")
    unknown = sorted(str(k) for k in item if k not in SPEC_KEYS)
    if unknown:
        raise SettingError(f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(SPEC_KEYS))})")
    kind = item.get("type")
    if kind not in SPEC_TYPES:
        raise SettingError(f"{where}.type", f"{show(kind)} is not one of {', '.join(SPEC_TYPES)}")
    value = _spec_value(kind, item.get("value"), f"{where}.value")
    default = len(value.split(",")) if kind == "probes" else None
    requested = item.get("requested", default)
    if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= PROBES_PER_MEASUREMENT:
        raise SettingError(f"{where}.requested", f"{show(requested)} is not a number of probes 1..{PROBES_PER_MEASUREMENT}")
    include, exclude = _tags(item.get("tags"), f"{where}.tags")
    return ProbeSpec(kind, value, requested, include, exclude)


def _spec_value(kind: str, value: Any, where: str) -> str:
    """The ``value`` as the API spells it for this ``type``."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if kind == "area":
        canonical = {a.lower(): a for a in AREAS}.get(text.lower())
        if canonical is None:
            raise SettingError(where, f"{show(value)} is not an area ({', '.join(AREAS)})")
        return canonical
    if kind == "country":
        if len(text) != 2 or not text.isalpha():
            raise SettingError(where, f"{show(value)} is not a two-letter country code")
        return text.upper()
    if kind == "prefix":
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise SettingError(where, f"{show(value)} is not an IP prefix") from None
    if kind == "probes":
        ids = value if isinstance(value, (list, tuple)) else text.split(",") if text else []
        numbers = [str(i).strip() for i in ids]
        if not numbers or not all(n.isdigit() and int(n) > 0 for n in numbers):
            raise SettingError(where, f"{show(value)} is not a list of probe ids")
        return ",".join(numbers)
    number = text[2:] if kind == "asn" and text.upper().startswith("AS") else text
    if not number.isdigit() or int(number) < 1:
        raise SettingError(where, f"{show(value)} is not {'an AS number' if kind == 'asn' else 'a measurement id'}")
    return number


def _tags(value: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, Mapping) or set(value) - {"include", "exclude"}:
        raise SettingError(where, "must be {include: [tag, ...], exclude: [tag, ...]}")
    lists = []
    for side in ("include", "exclude"):
        tags = value.get(side) or []
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) and t for t in tags):
            raise SettingError(f"{where}.{side}", "must be a list of tag names")
        lists.append(tuple(tags))
    return lists[0], lists[1]


# -- cost -------------------------------------------------------------------------------------


def probes_requested(settings: AtlasSettings) -> int:
    """Probes one measurement may use: the sum of the specs' ``requested``."""
    return sum(s.requested for s in settings.probes)


def credits_per_result(protocol: str = "UDP") -> int:
    """What one probe's result of a one-off DNS measurement costs."""
    return (DNS_TCP_CREDITS if protocol.upper() == "TCP" else DNS_UDP_CREDITS) * ONE_OFF_FACTOR


def measurements_per_day(every: float, records: int) -> int:
    """One-off measurements started in a day: one per record (name and type) each ``every``."""
    return math.ceil(DAY / max(every, 1.0)) * records


def cost_problem(every: float, probes: int, records: int, protocol: str = "UDP", budget: int | None = None) -> str | None:
    """Why this schedule does not fit RIPE Atlas's published limits (or the plan's own
    ``budget`` of credits a day), or None if it does.

    Checked before anything is sent, so that a plan is refused rather than cut off by the
    service halfway through a cutover. The text says what it would cost and what fits.
    """
    if probes > PROBES_PER_MEASUREMENT:
        return f"{SERVICE}: {probes} probes per measurement exceed the {PROBES_PER_MEASUREMENT} RIPE Atlas allows"
    if records > SIMULTANEOUS_MEASUREMENTS:
        return (f"{SERVICE}: {records} records measured together exceed the {SIMULTANEOUS_MEASUREMENTS} simultaneous "
                "measurements RIPE Atlas allows; watch fewer records with it")
    unit = credits_per_result(protocol)
    runs = measurements_per_day(every, records)
    results = runs * probes
    credits = results * unit
    limits = [(RESULTS_PER_DAY, results > RESULTS_PER_DAY, f"the {RESULTS_PER_DAY} results/day RIPE Atlas allows"),
              (CREDITS_PER_DAY // unit, credits > CREDITS_PER_DAY, f"the {CREDITS_PER_DAY} credits/day RIPE Atlas allows")]
    if budget is not None:
        limits.append((budget // unit, credits > budget, f"credits_per_day: {budget}"))
    over = [text for _, exceeded, text in limits if exceeded]
    if not over:
        return None
    allowed = min(limit for limit, _, _ in limits)  # results a day that fit every limit
    cost = (f"{SERVICE}: {records} record(s) every {every:g}s with {probes} probes is {runs} one-off measurements, "
            f"{results} results and {credits} credits a day ({unit} credits a result), over {' and '.join(over)}")
    return cost + "; what fits: " + (" or ".join(_fits(allowed, runs, probes, records)) or "nothing: raise credits_per_day")


def _fits(allowed: int, runs: int, probes: int, records: int) -> list[str]:
    """The two ways back under ``allowed`` results a day: fewer probes, or a longer ``every``."""
    fits = []
    if allowed // runs:
        fits.append(f"at most {allowed // runs} probes")
    starts = allowed // (probes * records)  # measurements of each record a day
    if starts:
        fits.append(f"every: {math.ceil(DAY / starts)}s or longer")
    return fits


def settings_problem(settings: AtlasSettings, records: int) -> str | None:
    """``cost_problem`` for a parsed ``probes:`` entry."""
    return cost_problem(settings.every, probes_requested(settings), records, settings.protocol, settings.credits_per_day)


#: What ``hourly_use`` counts, for messages about a budget entries share.
UNIT = "credits"


def budget_key(settings: AtlasSettings) -> str:
    """Whose credits an entry spends: its key's account. A digest, so that the key itself
    is never held where messages are built."""
    return "key " + hashlib.sha256(settings.key.encode()).hexdigest()[:12] if settings.key else "no key"


def hourly_use(settings: AtlasSettings, records: int) -> float:
    """Credits an hour (Atlas counts them a day; a day's spending over 24)."""
    daily = measurements_per_day(settings.every, records) * probes_requested(settings) * credits_per_result(settings.protocol)
    return round(daily / 24, 1)


def hourly_limit(settings: AtlasSettings) -> float:
    """The day's credits allowed (the plan's budget when it is lower), over 24."""
    return round(min(CREDITS_PER_DAY, settings.credits_per_day or CREDITS_PER_DAY) / 24, 1)
