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

A plan entry's settings and their price are in ``atlas_settings`` (re-exported here, so
that the service is one module to ``cutover.observe.probes.services``).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import requests

from cutover.observe.classify import read_response
from cutover.observe import probes
from cutover.observe.probes import PROBE, Progress, RateLimited, ServiceClient
from cutover.observe.probes.atlas_settings import (  # noqa: F401 - the service's surface, read as atlas.NAME
    SERVICE, DEFAULT_URL, DNS_UDP_CREDITS, DNS_TCP_CREDITS, ONE_OFF_FACTOR, PROBES_PER_MEASUREMENT,
    RESULTS_PER_DAY, CREDITS_PER_DAY, SIMULTANEOUS_MEASUREMENTS, DAY, DEFAULT_EVERY, QUERY_TYPES, AREAS,
    SPEC_TYPES, SPEC_KEYS, FIELDS, ProbeSpec, AtlasSettings, settings_from, probes_requested,
    credits_per_result, measurements_per_day, cost_problem, settings_problem, UNIT, budget_key, hourly_use,
    hourly_limit,
)
from cutover.observe.probes.continents import continent_of
from cutover.observe.types import Answer, Target, Vantage
from cutover.records import shorten
from cutover.resolvers import Resolver
from providers.httpclient import ApiError, RetryPolicy, retry_after

MEASUREMENTS = "/api/v2/measurements/"
PROBES = "/api/v2/probes/"

#: Short timeouts: a probe measurement must never hold up a watch round for long.
DEFAULT_POLICY = RetryPolicy(retries=2, connect_timeout=5.0, read_timeout=15.0)
#: Seconds between two reads of one measurement (and from its creation to the first read).
MIN_POLL_INTERVAL = 5.0
#: How long to hold back after a 429 that did not say (Atlas: "a few seconds or minutes").
LIMITED_WAIT = 60.0
#: How long a measurement may take before its partial results are used: one-off results
#: arrive "a few seconds (generally 8-10)" after creation; three minutes means a probe is gone.
MEASUREMENT_TIMEOUT = 180.0
#: Probe ids per ``/probes/?id__in=`` request (the API's largest page).
PROBE_PAGE = 500
#: Statuses after which a measurement returns no more results.
FINAL_STATUSES = frozenset({"Stopped", "Forced to stop", "No suitable probes", "Failed", "Denied", "Canceled", "Archived"})


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


class AtlasLimited(RateLimited):
    """The API refused for rate: ``wait`` seconds (None: unknown) before it will accept again."""


def error_message(response: requests.Response) -> str:
    """The API's error text: ``{"error": {"title", "detail", "errors": [{"source": {"pointer"}, "detail"}]}}``."""
    return probes.error_message(response, _describe)


def _describe(err: Mapping[str, Any]) -> str:
    text = str(err.get("detail") or err.get("title") or "")
    details = []
    for item in err.get("errors") or ():
        if isinstance(item, Mapping):
            source = item.get("source")
            pointer = source.get("pointer") if isinstance(source, Mapping) else None
            details.append(f"{pointer}: {item.get('detail')}" if pointer else str(item.get("detail")))
    return text + (" (" + "; ".join(details) + ")" if details else "")


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


class AtlasClient(ServiceClient):
    """One API endpoint with its key, pacing itself as the API asks.

    It reads a measurement no more often than every ``poll_interval`` seconds (the first
    read too: one-offs take seconds to start), waits out a ``Retry-After``, and after a
    ``429`` on creation refuses to create another measurement until the wait has passed
    (``not_before``), so a caller that retries blindly still cannot hammer the service.
    Waits longer than ``policy.max_wait`` are not slept: they raise ``AtlasLimited``.
    The key is sent only in the ``Authorization`` header and scrubbed from every message.
    """

    settings: AtlasSettings

    def __init__(self, settings: AtlasSettings, policy: RetryPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = MIN_POLL_INTERVAL) -> None:
        super().__init__(f"Key {settings.key}" if settings.key else None)
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.poll_interval = poll_interval
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it to observe pauses
        self.not_before = 0.0  # clock() before which no measurement is created
        #: Why the last probe metadata lookup failed (None: it did not); answers then carry only probe ids.
        self.probe_lookup_error: str | None = None
        self._stopped_short: set[str] = set()  # final status seen once with results still missing
        self._asked: dict[str, set[int]] = {}  # measurement id -> probe ids already looked up for it
        self._probes: dict[int, ProbeInfo] = {}
        self._ended: dict[str, MeasurementEnded] = {}  # measurements over without a result

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
