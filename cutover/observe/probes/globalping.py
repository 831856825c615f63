"""Globalping DNS measurements: create one, poll it as slowly as the API asks, read the answers.

The API (https://api.globalping.io, spec in jsdelivr/globalping ``public/v1/spec.yaml``):

* ``POST /v1/measurements`` with ``{"type": "dns", "target", "locations": [{country|magic|...,
  limit}], "limit"?, "measurementOptions": {"query": {"type"}, "resolver"?, "protocol",
  "port"}}`` answers ``202 {"id", "probesCount"}``; every test (one probe running the
  measurement) costs one point of an hourly budget, reported in ``X-RateLimit-Limit``,
  ``-Consumed``, ``-Remaining`` and ``-Reset`` (seconds until the budget refills). A
  request over budget is a ``429`` with those headers (and no ``Retry-After``).
* ``GET /v1/measurements/{id}`` until ``status`` is not ``in-progress``; the spec asks
  clients to wait 500 ms *after* each answer, and answers a faster client ``429`` with
  ``Retry-After``.
* each ``results[]`` item is ``{"probe": {continent, country, city, asn, network,
  resolvers, ...}, "result": {"status": finished|failed|offline|in-progress,
  "statusCode" (the rcode), "answers": [{name, type, ttl, class, value}], "resolver",
  "timings": {"total"}, "rawOutput"}}``.

Each probe's result becomes an ``Answer`` by rebuilding the DNS response it describes and
reading it with ``read_response``, so a probe's state means exactly what a resolver's
does. The client is synchronous and blocking: wiring it into ``watch`` (in the
background, one measurement per name and type) is the caller's business.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import dns.exception
import dns.message
import dns.rcode
import dns.rrset
import requests

from cutover.observe.classify import read_response
from cutover.observe import probes
from cutover.observe.probes import PROBE, Progress, RateLimited, ServiceClient, SettingError
from cutover.observe.types import Answer, Target, Vantage
from cutover.records import shorten
from cutover.resolvers import Resolver, parse_address
from cutover.values import parse_duration
from providers.httpclient import ApiError, RetryPolicy, retry_after

SERVICE = "globalping"
DEFAULT_URL = "https://api.globalping.io"

# Published limits, from the "Limits and credits" table at the top of the API spec
# (jsdelivr/globalping public/v1/spec.yaml, also https://globalping.io/docs/api.globalping.io)
# and the server's config/default.cjs (measurement.rateLimit.post, measurement.limits):
# anonymous 250 free tests/hour and 50 probes/measurement; with a token 500 free
# tests/hour (more only by spending credits) and 500 probes/measurement; one location
# may ask for at most 200 probes. A test is one probe running one measurement.
ANONYMOUS_TESTS_PER_HOUR = 250
TOKEN_TESTS_PER_HOUR = 500
ANONYMOUS_PROBES_PER_MEASUREMENT = 50
TOKEN_PROBES_PER_MEASUREMENT = 500
PROBES_PER_LOCATION = 200
#: Short timeouts: a probe measurement must never hold up a watch round for long.
DEFAULT_POLICY = RetryPolicy(retries=2, connect_timeout=5.0, read_timeout=15.0)
#: "Do not query the results of a single measurement more often than every 500 milliseconds."
MIN_POLL_INTERVAL = 0.5

#: Query types the API accepts (``DnsQueryType`` in the spec): CAA, for one, is not among them.
QUERY_TYPES = frozenset(
    {"A", "AAAA", "ANY", "CNAME", "DNSKEY", "DS", "HTTPS", "MX", "NS", "NSEC", "PTR", "RRSIG", "SOA", "TXT", "SRV", "SVCB"}
)
LOCATION_KEYS = frozenset({"continent", "region", "country", "state", "city", "asn", "network", "tags", "magic", "limit"})


@dataclass(frozen=True)
class GlobalpingSettings:
    """One ``probes:`` entry of service ``globalping``, already parsed.

    ``resolver`` None means each probe's own resolver (the plan's ``own``), which is the
    point: those are the ISP caches nobody else can ask. ``limit`` is the global probe
    count, used only when no location carries its own ``limit`` (the API forbids both).
    """

    locations: tuple[Mapping[str, Any], ...] = ()
    token: str = field(default="", repr=False)
    resolver: str | None = None
    every: float = 600.0
    url: str = DEFAULT_URL
    limit: int | None = None
    protocol: str = "UDP"
    port: int = 53


#: How long a measurement may take before its partial results are used: Globalping's
#: probes give up on a DNS query after a few seconds, so a minute means something broke.
MEASUREMENT_TIMEOUT = 60.0
ENTRY_KEYS = frozenset({"service", "token", "locations", "resolver", "every", "url", "limit", "protocol", "port"})


def settings_from(entry: Mapping[str, Any]) -> GlobalpingSettings:
    """One ``watch.probes`` entry of service ``globalping``; ``SettingError`` names the field."""
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise SettingError(sorted(unknown)[0], f"unknown key (globalping takes {', '.join(sorted(ENTRY_KEYS))})")
    token = entry.get("token") or ""
    if not isinstance(token, str):
        raise SettingError("token", "must be a string, e.g. ${GLOBALPING_TOKEN}")
    locations = entry.get("locations") or []
    if not isinstance(locations, list) or not all(isinstance(loc, Mapping) for loc in locations):
        raise SettingError("locations", "must be a list of mappings such as {country: JP, limit: 10}")
    for i, loc in enumerate(locations):
        _location(i, loc)
    resolver, port = _resolver(entry.get("resolver", "own"), entry.get("port", 53))
    try:
        every = parse_duration(entry.get("every", "10m"))
    except ValueError as exc:
        raise SettingError("every", str(exc)) from None
    if every < 60:
        raise SettingError("every", f"{every:g}s is shorter than a minute; a measurement takes seconds to finish")
    limit = entry.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= TOKEN_PROBES_PER_MEASUREMENT):
        raise SettingError("limit", f"{limit!r} must be a whole number of probes, 1..{TOKEN_PROBES_PER_MEASUREMENT}")
    if limit is not None and any("limit" in loc for loc in locations):
        raise SettingError("limit", "give a limit per location or one overall, not both (the API refuses both)")
    protocol = str(entry.get("protocol", "UDP")).upper()
    if protocol not in ("UDP", "TCP"):
        raise SettingError("protocol", f"{protocol!r} must be UDP or TCP")
    return GlobalpingSettings(locations=tuple(dict(loc) for loc in locations), token=token, resolver=resolver,
                              every=every, url=_url(entry.get("url", DEFAULT_URL)), limit=limit,
                              protocol=protocol, port=port)


def _location(index: int, loc: Mapping[str, Any]) -> None:
    unknown = set(loc) - LOCATION_KEYS
    if unknown:
        raise SettingError(f"locations[{index}]", f"unknown key(s) {', '.join(sorted(unknown))} "
                           f"(a location takes {', '.join(sorted(LOCATION_KEYS))})")
    limit = loc.get("limit", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PROBES_PER_LOCATION:
        raise SettingError(f"locations[{index}].limit", f"{limit!r} must be a whole number, 1..{PROBES_PER_LOCATION}")


def _resolver(value: Any, port: Any) -> tuple[str | None, int]:
    """``own`` (each probe's own resolver: the point) or a resolver's address."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SettingError("port", f"{port!r} must be a port number, 1-65535")
    if value in (None, "own"):
        return None, port
    try:
        address, given = parse_address(str(value), port)
    except ValueError as exc:
        raise SettingError("resolver", f"must be own or a resolver's IP address: {exc}") from None
    return address, given


def _url(value: Any) -> str:
    text = str(value).rstrip("/")
    if not text.startswith(("https://", "http://")):
        raise SettingError("url", f"{value!r} must be an http:// or https:// address of the API")
    return text


def client(settings: GlobalpingSettings) -> "GlobalpingClient":
    return GlobalpingClient(settings)


# -- cost -------------------------------------------------------------------------------------


def probes_requested(locations: Sequence[Mapping[str, Any]], limit: int | None = None) -> int:
    """How many probes (tests) one measurement may use, as the API counts them: the sum of
    the locations' limits when any location has one (a location without counts 1), else
    the global ``limit`` (default 1)."""
    if any("limit" in loc for loc in locations):
        return sum(int(loc.get("limit", 1)) for loc in locations)
    return int(limit or 1)


def measurements_per_hour(every: float, records: int) -> int:
    """Measurements started in any hour: one per record (name and type) each ``every``."""
    return math.ceil(3600.0 / max(every, 1.0)) * records


def cost_problem(every: float, probes: int, records: int, token: bool) -> str | None:
    """Why this schedule does not fit Globalping's published free limits, or None if it does.

    Checked before anything is sent, so that a plan is refused rather than rate limited
    halfway through a cutover. The text says what it would cost and what would fit.
    """
    who = "with a token" if token else "anonymously"
    per_measurement = TOKEN_PROBES_PER_MEASUREMENT if token else ANONYMOUS_PROBES_PER_MEASUREMENT
    if probes > per_measurement:
        return (f"globalping: {probes} probes per measurement exceed the {per_measurement} allowed {who}"
                + ("" if token else f" (a token allows {TOKEN_PROBES_PER_MEASUREMENT})"))
    hourly = TOKEN_TESTS_PER_HOUR if token else ANONYMOUS_TESTS_PER_HOUR
    runs = measurements_per_hour(every, records)
    tests = runs * probes
    if tests <= hourly:
        return None
    fit_probes = hourly // runs
    fit_every = math.ceil(3600.0 / max(1, hourly // (probes * records))) if probes * records <= hourly else None
    fits = [f"at most {fit_probes} probes" if fit_probes else None,
            f"every: {fit_every}s or longer" if fit_every else None,
            None if token else f"a token ({TOKEN_TESTS_PER_HOUR} tests/hour)"]
    return (f"globalping: {records} record(s) every {every:g}s with {probes} probes is {runs} measurements and "
            f"{tests} tests an hour, over the {hourly} free tests/hour allowed {who}; what fits: "
            + " or ".join(f for f in fits if f))


#: What ``hourly_use`` counts, for messages about a shared budget.
UNIT = "tests"


def budget_key(settings: GlobalpingSettings) -> str:
    """Whose hourly budget an entry spends: its token's (anonymous: this machine's address)."""
    return settings.token or "anonymous"


def hourly_use(settings: GlobalpingSettings, records: int) -> int:
    """Tests an hour: measurements started an hour times probes per measurement."""
    return measurements_per_hour(settings.every, records) * probes_requested(settings.locations, settings.limit)


def hourly_limit(settings: GlobalpingSettings) -> int:
    return TOKEN_TESTS_PER_HOUR if settings.token else ANONYMOUS_TESTS_PER_HOUR


def settings_problem(settings: GlobalpingSettings, records: int) -> str | None:
    """``cost_problem`` for a parsed ``probes:`` entry."""
    probes = probes_requested(settings.locations, settings.limit)
    return cost_problem(settings.every, probes, records, bool(settings.token))


# -- requests ---------------------------------------------------------------------------------


def measurement_request(settings: GlobalpingSettings, target: Target) -> dict[str, Any]:
    """The ``POST /v1/measurements`` body for one record. ``ValueError`` when the API cannot
    measure it (a type it does not query, locations it would reject)."""
    if target.type not in QUERY_TYPES:
        raise ValueError(f"globalping cannot query {target.type} records (it queries {', '.join(sorted(QUERY_TYPES))})")
    for loc in settings.locations:
        unknown = set(loc) - LOCATION_KEYS
        if unknown:
            raise ValueError(f"globalping location {dict(loc)!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if not 1 <= int(loc.get("limit", 1)) <= PROBES_PER_LOCATION:
            raise ValueError(f"globalping location {dict(loc)!r}: limit must be 1..{PROBES_PER_LOCATION}")
    options: dict[str, Any] = {"query": {"type": target.type}, "protocol": settings.protocol, "port": settings.port}
    if settings.resolver:
        options["resolver"] = settings.resolver
    body: dict[str, Any] = {"type": "dns", "target": target.name.rstrip("."), "measurementOptions": options}
    if settings.locations:
        body["locations"] = [dict(loc) for loc in settings.locations]
    if not any("limit" in loc for loc in settings.locations):
        body["limit"] = settings.limit or 1
    return body


@dataclass(frozen=True)
class RateLimit:
    """The hourly budget as the last answer reported it (``X-RateLimit-*``); None: not sent."""

    limit: int | None = None
    consumed: int | None = None
    remaining: int | None = None
    reset: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimit":
        def number(name: str) -> int | None:
            value = headers.get(name, "").strip()
            return int(value) if value.isdigit() else None

        reset = number("X-RateLimit-Reset")
        return cls(number("X-RateLimit-Limit"), number("X-RateLimit-Consumed"), number("X-RateLimit-Remaining"),
                   None if reset is None else float(reset))


class GlobalpingLimited(RateLimited):
    """The API refused for rate: ``wait`` seconds (None: unknown) before it will accept again."""


def error_message(response: requests.Response) -> str:
    """The API's error text: ``{"error": {"type", "message", "params": {field: why}}}``."""
    return probes.error_message(response, _describe)


def _describe(err: Mapping[str, Any]) -> str:
    params = err.get("params")
    text = str(err.get("message", "")) or str(err.get("type", ""))
    if isinstance(params, Mapping) and params:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in params.items()) + ")"
    return text


class GlobalpingClient(ServiceClient):
    """One API endpoint with its token, pacing itself to what the API asks.

    It never polls a measurement more often than every ``MIN_POLL_INTERVAL`` (counted from
    the previous answer, as the spec asks), waits out a ``Retry-After``, and after a
    ``429`` on creation refuses to create another measurement before the budget resets
    (``not_before``), so a caller that retries blindly still cannot hammer the service.
    Waits longer than ``policy.max_wait`` are not slept: they raise ``GlobalpingLimited``.
    """

    settings: GlobalpingSettings

    def __init__(self, settings: GlobalpingSettings, policy: RetryPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(f"Bearer {settings.token}" if settings.token else None)
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it to observe pauses
        self.rate = RateLimit()
        self.not_before = 0.0  # clock() before which no measurement is created

    # -- the three steps ----------------------------------------------------------------

    def measure(self, target: Target, timeout: float = 60.0) -> list[Answer]:
        """Create a measurement for ``target``, wait for it, and return its answers."""
        measurement_id = self.create(target)
        return answers_from(self.wait(measurement_id, timeout), target)

    def create(self, target: Target) -> str:
        """``POST /v1/measurements``; the new measurement's id."""
        held = self.not_before - self.clock()
        if held > 0:
            raise GlobalpingLimited(f"globalping: rate limited, next measurement allowed in {held:.0f}s", held)
        body = measurement_request(self.settings, target)
        for attempt in range(self.policy.retries + 1):
            response = self._send("POST", "/v1/measurements", body)
            self.rate = RateLimit.from_headers(response.headers)
            if response.status_code != 429:
                break
            wait = self._rate_wait(response)
            if wait is None or wait > self.policy.max_wait or attempt == self.policy.retries:
                self.not_before = self.clock() + (wait if wait is not None else 60.0)
                raise GlobalpingLimited(self._text("POST", response, wait), wait)
            self.sleep(wait)
        data = self._json("POST", response)
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise ApiError("globalping: POST /v1/measurements: the answer has no measurement id")
        return str(data["id"])

    def wait(self, measurement_id: str, timeout: float = 60.0) -> Mapping[str, Any]:
        """Poll until the measurement is final, or ``timeout`` runs out (then the last,
        partial state is returned: its unfinished tests become timeouts)."""
        deadline = self.clock() + timeout
        last: Mapping[str, Any] | None = None
        while True:
            if self.ready_at(measurement_id) > deadline:
                if last is None:
                    raise ApiError(f"globalping: measurement {measurement_id} not readable within {timeout:g}s", 429)
                return last
            state = self.poll(measurement_id)
            last = state if state is not None else last
            if state is not None and state.get("status") != "in-progress":
                return state

    def poll(self, measurement_id: str) -> Mapping[str, Any] | None:
        """One ``GET`` of the measurement, first waiting until ``ready_at`` if the caller
        came early; None when the API answered 429 (the next read is then held back)."""
        early = self.ready_at(measurement_id) - self.clock()
        if early > 0:
            self.sleep(early)
        path = f"/v1/measurements/{measurement_id}"
        response = self._send("GET", path, None)
        pause = MIN_POLL_INTERVAL
        if response.status_code == 429:
            wait = retry_after(response)
            pause = max(MIN_POLL_INTERVAL, wait if wait is not None else 2 * MIN_POLL_INTERVAL)
        self._next_read[measurement_id] = self.clock() + pause
        if response.status_code == 429:
            return None
        data = self._json("GET", response)
        if not isinstance(data, Mapping) or not isinstance(data.get("results"), list):
            raise ApiError(f"globalping: GET {path}: the answer is not a measurement")
        if data.get("status") != "in-progress":
            self._next_read.pop(measurement_id, None)  # final: nothing more to pace
        return data

    def progress(self, measurement_id: str, target: Target) -> Progress | None:
        """``poll`` read as answers: the ``ProbeClient`` step the watch's scheduler calls."""
        state = self.poll(measurement_id)
        if state is None:
            return None
        return Progress(state.get("status") != "in-progress", tuple(answers_from(state, target)))

    # -- HTTP ---------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any) -> requests.Response:
        """One request; connection failures become ``ApiError`` (a GET is retried by the
        polling loop anyway, and a POST is never repeated blindly: it may have been taken)."""
        try:
            return self._session.request(method, self.settings.url.rstrip("/") + path, json=body,
                                         timeout=(self.policy.connect_timeout, self.policy.read_timeout))
        except requests.RequestException as exc:
            raise ApiError(f"globalping: {method} {path} failed: {type(exc).__name__}") from None

    def _json(self, method: str, response: requests.Response) -> Any:
        if not response.ok:
            raise ApiError(self._text(method, response, None), response.status_code)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"globalping: {method} {response.request.path_url}: the answer is not JSON") from None

    def _rate_wait(self, response: requests.Response) -> float | None:
        """How long a 429 asks us to wait: ``Retry-After``, else until the hourly budget
        resets (the API refuses a measurement asking for more probes than remain, so a
        non-zero ``X-RateLimit-Remaining`` does not mean that retrying sooner helps)."""
        wait = retry_after(response)
        return wait if wait is not None else self.rate.reset

    def _text(self, method: str, response: requests.Response, wait: float | None) -> str:
        text = f"globalping: {method} {response.request.path_url}: HTTP {response.status_code}: {error_message(response)}"
        if response.status_code == 429:
            r = self.rate
            if r.limit is not None:
                text += f" ({r.remaining} of {r.limit} tests left this hour)"
            if wait is not None:
                text += f"; allowed again in {wait:.0f}s"
        return text.replace(self.settings.token, "***") if self.settings.token else text


# -- results ----------------------------------------------------------------------------------


def answers_from(measurement: Mapping[str, Any], target: Target) -> list[Answer]:
    """Every probe's result as an ``Answer`` for ``target``, with the probe's vantage;
    tests still in progress (a measurement cut short by our timeout) are ``timeout``
    answers."""
    results = [r for r in measurement.get("results") or () if isinstance(r, Mapping)]
    probes: list[Mapping[str, Any]] = [_mapping(r.get("probe")) for r in results]
    labels = vantage_resolvers(probes)
    return [replace(answer_from(r.get("result"), target, label), vantage=vantage(p))
            for r, p, label in zip(results, probes, labels)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def vantage(probe: Mapping[str, Any]) -> Vantage:
    """Where a Globalping probe is: ``probe.{continent, country, city, asn, network}``."""
    asn = probe.get("asn")
    return Vantage(SERVICE, str(probe.get("continent") or ""), str(probe.get("country") or ""),
                   str(probe.get("city") or ""), asn if isinstance(asn, int) else None, str(probe.get("network") or ""))


def vantage_resolvers(probes: Sequence[Mapping[str, Any]]) -> list[Resolver]:
    """A ``Resolver`` per probe naming its vantage: ``globalping JP Tokyo AS2516`` run by
    its network. Probes sharing a vantage in one measurement get ``#2``, ``#3``... so
    that no two answers of a round carry the same label."""
    base = [_vantage(p) for p in probes]
    seen: Counter[str] = Counter()
    out: list[Resolver] = []
    for r in base:
        seen[r.name] += 1
        n = seen[r.name]
        out.append(r if n == 1 else Resolver(r.address, r.port, f"{r.name} #{n}", r.operator, r.country, r.filtering, r.group))
    return out


def _vantage(probe: Mapping[str, Any]) -> Resolver:
    country = str(probe.get("country") or "")
    asn = probe.get("asn")
    parts = [SERVICE, country, str(probe.get("city") or ""), f"AS{asn}" if asn else ""]
    resolvers = probe.get("resolvers") or []
    address = str(resolvers[0]) if resolvers else "own"
    return Resolver(address=address, name=" ".join(p for p in parts if p), operator=str(probe.get("network") or ""),
                    country=country, group=PROBE)


def answer_from(result: Any, target: Target, resolver: Resolver) -> Answer:
    """One probe's test result as an ``Answer``, by rebuilding the response it reports."""
    if not isinstance(result, Mapping):
        return Answer(resolver, target.key, "malformed", None, (), "no result object for this probe")
    status = result.get("status")
    resolver = _answered_by(resolver, result.get("resolver"))
    if status == "offline":
        return Answer(resolver, target.key, "error", None, (), "probe offline")
    if status == "in-progress":
        return Answer(resolver, target.key, "timeout", None, (), "the probe had not answered when the measurement ended")
    if status == "failed":
        return _failed(result, target, resolver)
    if status != "finished":
        return Answer(resolver, target.key, "malformed", None, (), f"unknown test status {status!r}")
    try:
        response = _response(result)
    except (ValueError, TypeError, KeyError, dns.exception.DNSException) as exc:
        return Answer(resolver, target.key, "malformed", None, (), f"unreadable answers: {shorten(str(exc), 120)}")
    elapsed = _elapsed(result)
    return read_response(target, resolver, response, elapsed=elapsed)


def _answered_by(resolver: Resolver, address: Any) -> Resolver:
    """The probe's vantage with the address of the resolver that really answered."""
    if not isinstance(address, str) or not address:
        return resolver
    return Resolver(address, resolver.port, resolver.name, resolver.operator, resolver.country, resolver.filtering, resolver.group)


def _failed(result: Mapping[str, Any], target: Target, resolver: Resolver) -> Answer:
    """A failed test: a timeout when the probe's output says so, else a plain error."""
    raw = " ".join(str(result.get("rawOutput") or "").split())
    source = result.get("failureSource")
    detail = "probe test failed" + (f" ({source})" if source else "") + (f": {shorten(raw, 160)}" if raw else "")
    state = "timeout" if "timed out" in raw.lower() or "timeout" in raw.lower() else "error"
    return Answer(resolver, target.key, state, None, (), detail)


def _response(result: Mapping[str, Any]) -> dns.message.Message:
    """The DNS response a finished test describes: its rcode and its answer records,
    grouped into RRsets (a CNAME chain stays a chain) so ``read_response`` can follow it."""
    rcode = result.get("statusCode")
    if not isinstance(rcode, int):
        rcode = dns.rcode.from_text(str(result.get("statusCodeName") or "NOERROR"))
    message = dns.message.Message()
    message.set_rcode(dns.rcode.Rcode.make(rcode))
    sets: dict[tuple[str, str], dns.rrset.RRset] = {}
    for rr in result.get("answers") or ():
        name, rtype, cls = str(rr["name"]), str(rr["type"]).upper(), str(rr.get("class") or "IN")
        one = dns.rrset.from_text(name, int(rr["ttl"]), cls, rtype, str(rr["value"]))
        key = (one.name.to_text().lower(), rtype)
        if key in sets:
            sets[key].union_update(one)
            sets[key].update_ttl(one.ttl)
        else:
            sets[key] = one
    message.answer.extend(sets.values())
    return message


def _elapsed(result: Mapping[str, Any]) -> float | None:
    total = (result.get("timings") or {}).get("total")
    return float(total) / 1000.0 if isinstance(total, (int, float)) else None
