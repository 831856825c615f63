"""RIPE Atlas DNS measurements: one-offs through each probe's own resolvers, read back as answers.

The API (https://atlas.ripe.net/docs/apis/, REST API manual and reference):

* ``POST /api/v2/measurements/`` with ``{"definitions": [{"type": "dns", "af",
  "description", "query_class": "IN", "query_type", "query_argument", "protocol",
  "use_probe_resolver": true}], "probes": [{"type": area|country|asn|prefix|probes|msm,
  "value", "requested", "tags"?}], "is_oneoff": true}`` answers ``201 {"measurements":
  [id]}``. With ``use_probe_resolver: false`` the definition names the resolver to ask in
  ``target``. Creating needs an API key allowed to create measurements, sent as
  ``Authorization: Key <key>`` (the docs also allow ``?key=``; a key in a URL ends up in
  logs, so it is never put there). Errors are ``{"error": {"status", "code", "title",
  "detail", "errors": [{"source": {"pointer"}, "detail"}]}}``.
* ``GET /api/v2/measurements/{id}/`` (``optional_fields=probes`` lists the probes it was
  given): ``status.name`` is Specified, Scheduled, Ongoing, then one of the final
  Stopped, Forced to stop, No suitable probes, Failed (and Denied, Canceled, Archived);
  ``probes_scheduled`` says how many probes took it.
* ``GET /api/v2/measurements/{id}/results/``: a list, one item per probe that reported,
  growing while the measurement runs: ``{"prb_id", "from", "timestamp", "resultset":
  [{"dst_addr", "subid", "submax", "result": {"abuf", "rt", ...} | "error": {"timeout" |
  "socket" | "getaddrinfo": ...}}]}`` with the probe's resolvers (one entry per resolver),
  or ``result`` / ``error`` directly when a resolver was named. ``abuf`` is the response
  in wire format, base64-encoded: it is read with dnspython and classified by
  ``read_response``, so a probe's answer means exactly what a resolver's does.
* ``GET /api/v2/probes/?id__in=...``: each probe's ``country_code``, ``asn_v4``/``asn_v6``
  and ``prefix_v4``/``prefix_v6`` (results carry only the probe id). Atlas publishes no
  city and no network name for a probe, so a vantage carries the country, the ASN and
  the probe's prefix as its network. Asked once per probe per client; when it fails the
  answers carry just the probe id.
* Rate: "HTTP 429 Too Many Requests ... wait a few seconds or minutes before retrying"
  and "avoid tight polling loops" (REST API manual, core concepts, rate limiting). No
  poll interval is published; one-off results arrive "a few seconds (generally 8-10)"
  after creation (User-defined Measurements, Timing), so a measurement is read no more
  often than every ``MIN_POLL_INTERVAL`` seconds, and a ``Retry-After`` is honoured.

Why not RIPE's own client library, ripe.atlas.cousteau (2.3.1 read for this): its
``AtlasRequest.build_url`` always writes ``"https://{server}{url_path}"``, so it cannot
be pointed at a plain ``http://`` endpoint (the tests' local API) without overriding its
internals; it sends every request through module-level ``requests.get``/``post`` without
a timeout, so a stalled API would hang the watch; and ``http_method`` returns only
``(ok, body)``, dropping the HTTP status and headers (no ``Retry-After``, no telling a 429
from a 400) and turning connection errors into ``exc.args``. It would also pin
``requests~=2.34.2``. So this module speaks the API with ``requests`` directly.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import requests

from cutover.observe.classify import read_response
from cutover.observe.probes import PROBE, Progress, SettingError
from cutover.observe.probes.continents import continent_of
from cutover.observe.types import Answer, Target, Vantage
from cutover.records import shorten
from cutover.resolvers import Resolver
from cutover.values import parse_duration, show
from providers.httpclient import ApiError, RetryPolicy, retry_after

SERVICE = "ripe-atlas"
DEFAULT_URL = "https://atlas.ripe.net"
MEASUREMENTS = "/api/v2/measurements/"
PROBES = "/api/v2/probes/"

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

#: Short timeouts: a probe measurement must never hold up a watch round for long.
DEFAULT_POLICY = RetryPolicy(retries=2, connect_timeout=5.0, read_timeout=15.0)
#: Seconds between two reads of one measurement (and from its creation to the first read).
MIN_POLL_INTERVAL = 5.0
#: How long to hold back after a 429 that did not say (Atlas: "a few seconds or minutes").
LIMITED_WAIT = 60.0
#: One measurement per record each hour unless the plan says otherwise: credits are scarce.
DEFAULT_EVERY = 3600.0
#: How long a measurement may take before its partial results are used: one-off results
#: arrive "a few seconds (generally 8-10)" after creation; three minutes means a probe is gone.
MEASUREMENT_TIMEOUT = 180.0
#: Probe ids per ``/probes/?id__in=`` request (the API's largest page).
PROBE_PAGE = 500

#: Query types a DNS measurement takes (the API's list, as the ripe-atlas CLI documents it):
#: HTTPS, SVCB and CAA are not among them.
QUERY_TYPES = frozenset({"A", "AAAA", "ANY", "CNAME", "DNSKEY", "DS", "HINFO", "MX", "NS", "NSEC", "NSEC3",
                         "NSEC3PARAM", "PTR", "RRSIG", "SOA", "SRV", "SSHFP", "TLSA", "TXT"})
AREAS = ("WW", "West", "North-Central", "South-Central", "North-East", "South-East")
SPEC_TYPES = ("area", "country", "asn", "prefix", "probes", "msm")
SPEC_KEYS = frozenset({"type", "value", "requested", "tags"})
FIELDS = frozenset({"service", "key", "probes", "every", "url", "resolver", "protocol", "af", "credits_per_day"})
#: Statuses after which a measurement returns no more results.
FINAL_STATUSES = frozenset({"Stopped", "Forced to stop", "No suitable probes", "Failed", "Denied", "Canceled", "Archived"})


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


# -- requests ---------------------------------------------------------------------------------


def measurement_request(settings: AtlasSettings, target: Target) -> dict[str, Any]:
    """The ``POST /api/v2/measurements/`` body for one record. ``ValueError`` when the API
    cannot measure it (a type it does not query, no probes to ask)."""
    if target.type not in QUERY_TYPES:
        raise ValueError(f"{SERVICE} cannot query {target.type} records (it queries {', '.join(sorted(QUERY_TYPES))})")
    if not settings.probes:
        raise ValueError(f"{SERVICE}: no probes to ask (probes: is empty)")
    name = target.name.rstrip(".") or "."
    definition: dict[str, Any] = {
        "type": "dns", "af": settings.af, "description": f"cutover: {name} {target.type}",
        "query_class": "IN", "query_type": target.type, "query_argument": name, "protocol": settings.protocol,
        "use_probe_resolver": settings.resolver is None, "set_rd_bit": True,
    }
    if settings.resolver is not None:
        definition["target"] = settings.resolver
    return {"definitions": [definition], "probes": [p.as_api() for p in settings.probes], "is_oneoff": True}


class MeasurementEnded(ApiError):
    """The measurement is over and gave nothing to read (no probe suited, denied, failed).
    ``final`` tells a scheduler that reading it again is pointless; this client answers
    any later ``progress`` of it with the same error, without asking the API again."""

    final = True


class AtlasLimited(ApiError):
    """The API refused for rate: ``wait`` seconds (None: unknown) before it will accept again."""

    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message, status=429)
        self.wait = wait


def error_message(response: requests.Response) -> str:
    """The API's error text: ``{"error": {"title", "detail", "errors": [{"source": {"pointer"}, "detail"}]}}``."""
    try:
        body = response.json()
    except ValueError:
        return shorten(" ".join(response.text.split()), 200) or response.reason or ""
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return shorten(str(body), 200)
    text = str(err.get("detail") or err.get("title") or "")
    details = []
    for item in err.get("errors") or ():
        if isinstance(item, Mapping):
            source = item.get("source")
            pointer = source.get("pointer") if isinstance(source, Mapping) else None
            details.append(f"{pointer}: {item.get('detail')}" if pointer else str(item.get("detail")))
    if details:
        text += " (" + "; ".join(details) + ")"
    return shorten(text, 300)


@dataclass(frozen=True)
class ProbeInfo:
    """What ``/api/v2/probes/`` says about one probe that a vantage can use."""

    country: str = ""
    asn: int | None = None
    network: str = ""

    @classmethod
    def from_api(cls, probe: Mapping[str, Any], af: int = 4) -> "ProbeInfo":
        order = ("v4", "v6") if af == 4 else ("v6", "v4")
        asn = next((probe.get(f"asn_{v}") for v in order if isinstance(probe.get(f"asn_{v}"), int)), None)
        prefix = next((str(probe.get(f"prefix_{v}")) for v in order if probe.get(f"prefix_{v}")), "")
        return cls(str(probe.get("country_code") or ""), asn, prefix)


class AtlasClient:
    """One API endpoint with its key, pacing itself as the API asks.

    It reads a measurement no more often than every ``poll_interval`` seconds (the first
    read too: one-offs take seconds to start), waits out a ``Retry-After``, and after a
    ``429`` on creation refuses to create another measurement until the wait has passed
    (``not_before``), so a caller that retries blindly still cannot hammer the service.
    Waits longer than ``policy.max_wait`` are not slept: they raise ``AtlasLimited``.
    The key is sent only in the ``Authorization`` header and scrubbed from every message.
    """

    def __init__(self, settings: AtlasSettings, policy: RetryPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = MIN_POLL_INTERVAL) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.poll_interval = poll_interval
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it to observe pauses
        self.not_before = 0.0  # clock() before which no measurement is created
        #: Why the last probe metadata lookup failed (None: it did not); answers then carry only probe ids.
        self.probe_lookup_error: str | None = None
        self._next_read: dict[str, float] = {}  # measurement id -> clock() of its next allowed read
        self._stopped_short: set[str] = set()  # final status seen once with results still missing
        self._asked: dict[str, set[int]] = {}  # measurement id -> probe ids already looked up for it
        self._probes: dict[int, ProbeInfo] = {}
        self._ended: dict[str, MeasurementEnded] = {}  # measurements over without a result
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "cutover (DNS cutover watch)"})
        if settings.key:
            self._session.headers["Authorization"] = f"Key {settings.key}"

    def __repr__(self) -> str:
        return f"AtlasClient({self.settings.url!r})"

    def close(self) -> None:
        self._session.close()

    # -- the three steps ----------------------------------------------------------------

    def measure(self, target: Target, timeout: float = 120.0) -> list[Answer]:
        """Create a measurement for ``target``, wait for it, and return its answers."""
        return list(self.wait(self.create(target), target, timeout).answers)

    def create(self, target: Target) -> str:
        """``POST /api/v2/measurements/``: a one-off of ``target``; its id."""
        if not self.settings.key:
            raise ApiError(f"{SERVICE}: creating a measurement needs an API key (key: in the plan)")
        held = self.not_before - self.clock()
        if held > 0:
            raise AtlasLimited(f"{SERVICE}: rate limited, next measurement allowed in {held:.0f}s", held)
        body = measurement_request(self.settings, target)
        for attempt in range(self.policy.retries + 1):
            response = self._send("POST", MEASUREMENTS, body)
            if response.status_code != 429:
                break
            wait = retry_after(response)
            if wait is None or wait > self.policy.max_wait or attempt == self.policy.retries:
                self.not_before = self.clock() + (wait if wait is not None else LIMITED_WAIT)
                raise AtlasLimited(self._text("POST", response, wait), wait)
            self.sleep(wait)
        data = self._json("POST", response)
        ids = data.get("measurements") if isinstance(data, Mapping) else None
        if not isinstance(ids, list) or not ids or isinstance(ids[0], bool) or not isinstance(ids[0], (int, str)):
            raise ApiError(f"{SERVICE}: POST {MEASUREMENTS}: the answer has no measurement id")
        measurement_id = str(ids[0])
        self._next_read[measurement_id] = self.clock() + self.poll_interval
        return measurement_id

    def wait(self, measurement_id: str, target: Target, timeout: float = 120.0) -> Progress:
        """Read until the measurement is final, or ``timeout`` runs out (then the last,
        partial reading is returned: probes that had not reported are timeouts)."""
        deadline = self.clock() + timeout
        last: Progress | None = None
        while True:
            if self.ready_at(measurement_id) > deadline:
                if last is None:
                    raise ApiError(f"{SERVICE}: measurement {measurement_id} not readable within {timeout:g}s", 429)
                return last
            state = self.progress(measurement_id, target)
            last = state if state is not None else last
            if state is not None and state.final:
                return state

    def ready_at(self, measurement_id: str) -> float:
        """The ``clock()`` time before which this measurement is not read again: a poll
        interval after the previous read (or its creation), or what a ``Retry-After`` said."""
        return self._next_read.get(measurement_id, 0.0)

    def progress(self, measurement_id: str, target: Target) -> Progress | None:
        """One reading (the measurement, then its results), first waiting until ``ready_at``
        if the caller came early; None when the API answered 429 (the next read is held back)."""
        if measurement_id in self._ended:
            raise self._ended[measurement_id]
        early = self.ready_at(measurement_id) - self.clock()
        if early > 0:
            self.sleep(early)
        self._next_read[measurement_id] = self.clock() + self.poll_interval
        path = f"{MEASUREMENTS}{measurement_id}/"
        meta = self._read(measurement_id, path, {"optional_fields": "probes"})
        if meta is None:
            return None
        if not isinstance(meta, Mapping) or not isinstance(meta.get("status"), Mapping):
            raise ApiError(f"{SERVICE}: GET {path}: the answer is not a measurement")
        results = self._read(measurement_id, path + "results/", None)
        if results is None:
            return None
        if not isinstance(results, list):
            raise ApiError(f"{SERVICE}: GET {path}results/: the answer is not a list of results")
        expected = scheduled_probes(meta)
        self._describe(measurement_id, [*expected, *reported_probes(results)])
        final = self._final(measurement_id, meta, results, expected)
        answers = answers_from(results, target, self._probes, expected, final, self.settings.resolver)
        if final:
            self._forget(measurement_id)
            if not answers:
                status = str(meta["status"].get("name") or "")
                ended = MeasurementEnded(f"{SERVICE}: measurement {measurement_id} ended ({status}) without any result")
                self._ended[measurement_id] = ended
                raise ended
        return Progress(final, tuple(answers))

    # -- reading ------------------------------------------------------------------------

    def _read(self, measurement_id: str, path: str, params: Mapping[str, str] | None) -> Any:
        """One GET of a measurement's resource; None after a 429 (its next read is moved
        to what ``Retry-After`` asks, at least a poll interval away)."""
        response = self._send("GET", path, None, params)
        if response.status_code == 429:
            wait = retry_after(response)
            pause = max(self.poll_interval, wait if wait is not None else 2 * self.poll_interval)
            self._next_read[measurement_id] = self.clock() + pause
            return None
        return self._json("GET", response)

    def _final(self, measurement_id: str, meta: Mapping[str, Any], results: Sequence[Any], expected: Sequence[int]) -> bool:
        """Done when every scheduled probe has reported, or the status says no more will.
        A ``Stopped`` measurement still missing results is read once more: the results
        endpoint can lag the status."""
        reported = set(reported_probes(results))
        scheduled = meta.get("probes_scheduled")
        if expected and reported >= set(expected):
            return True
        if isinstance(scheduled, int) and not isinstance(scheduled, bool) and 0 < scheduled <= len(reported):
            return True
        status = meta["status"].get("name")
        if status not in FINAL_STATUSES:
            return False
        if status != "Stopped" or measurement_id in self._stopped_short:
            return True
        self._stopped_short.add(measurement_id)
        return False

    def _describe(self, measurement_id: str, probe_ids: Iterable[int]) -> None:
        """Look up the probes not seen before (once per measurement), tolerating failure:
        a vantage is a nicety, the answers count without it."""
        asked = self._asked.setdefault(measurement_id, set())
        wanted = sorted({p for p in probe_ids if p not in self._probes and p not in asked})
        asked.update(wanted)
        for start in range(0, len(wanted), PROBE_PAGE):
            chunk = wanted[start:start + PROBE_PAGE]
            params = {"id__in": ",".join(map(str, chunk)), "fields": "id,country_code,asn_v4,asn_v6,prefix_v4,prefix_v6",
                      "page_size": str(PROBE_PAGE)}
            try:
                data = self._json("GET", self._send("GET", PROBES, None, params))
                items = data.get("results") if isinstance(data, Mapping) else None
                if not isinstance(items, list):
                    raise ApiError(f"{SERVICE}: GET {PROBES}: the answer is not a list of probes")
            except ApiError as exc:
                self.probe_lookup_error = str(exc)
                continue
            self.probe_lookup_error = None
            for item in items:
                if isinstance(item, Mapping) and isinstance(item.get("id"), int):
                    self._probes[item["id"]] = ProbeInfo.from_api(item, self.settings.af)

    def _forget(self, measurement_id: str) -> None:
        self._next_read.pop(measurement_id, None)
        self._stopped_short.discard(measurement_id)
        self._asked.pop(measurement_id, None)

    # -- HTTP ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, str] | None = None) -> requests.Response:
        """One request; connection failures become ``ApiError`` (a read is repeated by the
        polling anyway, and a POST is never repeated blindly: it may have been taken)."""
        try:
            return self._session.request(method, self.settings.url.rstrip("/") + path, json=body, params=params,
                                         timeout=(self.policy.connect_timeout, self.policy.read_timeout))
        except requests.RequestException as exc:
            raise ApiError(f"{SERVICE}: {method} {path} failed: {type(exc).__name__}") from None

    def _json(self, method: str, response: requests.Response) -> Any:
        if not response.ok:
            raise ApiError(self._text(method, response, None), response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{SERVICE}: {method} {response.request.path_url}: the answer is not JSON") from None

    def _text(self, method: str, response: requests.Response, wait: float | None) -> str:
        text = f"{SERVICE}: {method} {response.request.path_url}: HTTP {response.status_code}"
        if response.status_code in (401, 403):
            text += " (check the key and its permission to create measurements)"
        detail = error_message(response)
        text += f": {detail}" if detail else ""
        if wait is not None:
            text += f"; allowed again in {wait:.0f}s"
        return text.replace(self.settings.key, "***") if self.settings.key else text


def client(settings: AtlasSettings) -> AtlasClient:
    """The ``ProbeClient`` for one ``ripe-atlas`` entry."""
    return AtlasClient(settings)


# -- results ----------------------------------------------------------------------------------


def scheduled_probes(meta: Mapping[str, Any]) -> list[int]:
    """The ids of the probes a measurement was given (``optional_fields=probes``), if listed."""
    probes = meta.get("probes")
    if not isinstance(probes, list):
        return []
    ids = (p.get("id") if isinstance(p, Mapping) else p for p in probes)
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


def reported_probes(results: Sequence[Any]) -> list[int]:
    return [r["prb_id"] for r in results if isinstance(r, Mapping) and isinstance(r.get("prb_id"), int)]


def answers_from(results: Sequence[Any], target: Target, probes: Mapping[int, ProbeInfo] | None = None,
                 expected: Sequence[int] = (), final: bool = True, resolver: str | None = None) -> list[Answer]:
    """Every probe's result as answers for ``target`` (one per resolver the probe asked).

    Probes in ``expected`` that have not reported are errors once the measurement is
    ``final`` (the probe went offline) and timeouts before that (the reading was cut
    short). ``resolver`` is the address the plan named, if any.
    """
    probes = probes or {}
    answers: list[Answer] = []
    seen: set[int] = set()
    for index, item in enumerate(results):
        if not isinstance(item, Mapping) or not isinstance(item.get("prb_id"), int):
            answers.append(Answer(_resolver(None, f"result {index + 1}"), target.key, "malformed", None, (),
                                  "a result without a probe id"))
            continue
        probe_id = item["prb_id"]
        seen.add(probe_id)
        answers.extend(probe_answers(item, target, vantage(probe_id, probes.get(probe_id)), resolver))
    for probe_id in expected:
        if probe_id not in seen:
            answers.append(_missing(target, vantage(probe_id, probes.get(probe_id)), final))
    return answers


def vantage(probe_id: int, info: ProbeInfo | None) -> Vantage:
    info = info or ProbeInfo()
    return Vantage(SERVICE, continent=continent_of(info.country), country=info.country, asn=info.asn,
                   network=info.network, probe=str(probe_id))


def probe_answers(item: Mapping[str, Any], target: Target, where: Vantage, resolver: str | None = None) -> list[Answer]:
    """One probe's result: an answer per entry of its ``resultset`` (each of its own
    resolvers), or one answer for the resolver the measurement named."""
    resultset = item.get("resultset")
    if resultset is None:
        return [dns_answer(item, target, _resolver(where, "", item.get("dst_addr") or resolver), where)]
    if not isinstance(resultset, list) or not resultset:
        return [Answer(_resolver(where), target.key, "error", None, (), "the probe reported no resolvers", vantage=where)]
    return [dns_answer(entry if isinstance(entry, Mapping) else {}, target,
                       _resolver(where, f" resolver {n}" if n > 1 else "", _address(entry)), where)
            for n, entry in enumerate(resultset, start=1)]


def dns_answer(entry: Mapping[str, Any], target: Target, resolver: Resolver, where: Vantage) -> Answer:
    """One DNS result (``result`` with its ``abuf``, or ``error``) as an ``Answer``."""
    error = entry.get("error")
    if isinstance(error, Mapping) and error:
        return _failed(error, target, resolver, where)
    result = entry.get("result")
    if not isinstance(result, Mapping):
        return Answer(resolver, target.key, "malformed", None, (), "neither a result nor an error", vantage=where)
    try:
        message = dns.message.from_wire(base64.b64decode(str(result["abuf"]), validate=True))
    except KeyError:
        return Answer(resolver, target.key, "malformed", None, (), "the result has no abuf", vantage=where)
    except (ValueError, TypeError, dns.exception.DNSException) as exc:
        return Answer(resolver, target.key, "malformed", None, (), f"unreadable abuf: {shorten(str(exc) or type(exc).__name__, 120)}",
                      vantage=where)
    wrong = _other_question(message, target)
    if wrong:
        return Answer(resolver, target.key, "malformed", None, (), wrong, vantage=where)
    rt = result.get("rt")
    elapsed = float(rt) / 1000.0 if isinstance(rt, (int, float)) and not isinstance(rt, bool) else None
    return replace(read_response(target, resolver, message, elapsed=elapsed), vantage=where)


def _other_question(message: dns.message.Message, target: Target) -> str | None:
    """Why a response does not answer our question (None: it does)."""
    if not message.question:
        return None  # some servers answer errors without echoing the question
    asked = message.question[0]
    if asked.name != dns.name.from_text(target.name) or asked.rdtype != dns.rdatatype.from_text(target.type):
        return f"the answer is for {asked.name} {dns.rdatatype.to_text(asked.rdtype)}, not {target.name} {target.type}"
    return None


def _failed(error: Mapping[str, Any], target: Target, resolver: Resolver, where: Vantage) -> Answer:
    """The probe's resolver gave no answer: a timeout when the probe says so, else an error."""
    if "timeout" in error:
        ms = error.get("timeout")
        after = f" in {ms} ms" if isinstance(ms, (int, float)) and not isinstance(ms, bool) else ""
        return Answer(resolver, target.key, "timeout", None, (), f"no answer from the resolver{after}", vantage=where)
    detail = "; ".join(f"{k}: {shorten(str(v), 100)}" for k, v in error.items())
    return Answer(resolver, target.key, "error", None, (), f"probe error ({detail})", vantage=where)


def _missing(target: Target, where: Vantage, final: bool) -> Answer:
    resolver = _resolver(where)
    if final:
        return Answer(resolver, target.key, "error", None, (), "probe offline: no result", vantage=where)
    return Answer(resolver, target.key, "timeout", None, (), "the probe had not reported when the reading ended", vantage=where)


def _resolver(where: Vantage | None, suffix: str = "", address: Any = None) -> Resolver:
    """A probe's answer as a ``Resolver``: named ``ripe-atlas NL AS3333 #6012`` (the probe
    id keeps labels unique in a round), at the resolver's address when reported."""
    if where is None:
        return Resolver("own", name=f"{SERVICE} {suffix}".strip(), group=PROBE)
    parts = [SERVICE, where.country, f"AS{where.asn}" if where.asn else "", f"#{where.probe}"]
    name = " ".join(p for p in parts if p) + suffix
    return Resolver(address if isinstance(address, str) and address else "own", name=name, operator=where.network,
                    country=where.country, group=PROBE)


def _address(entry: Any) -> str | None:
    return entry.get("dst_addr") if isinstance(entry, Mapping) else None
