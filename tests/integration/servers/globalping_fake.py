"""A local stand-in for the Globalping API (DNS measurements only), for the probe client's tests.

No machine here reaches api.globalping.io, so this small HTTP server on loopback follows
the documented shapes (jsdelivr/globalping ``public/v1/spec.yaml``) of what cutover uses:

* ``POST /v1/measurements`` validates the body as the API does (``type: dns``, ``target``,
  ``locations`` with known keys and ``limit`` 1..200, ``limit`` 1..500 and not together
  with per-location limits, ``measurementOptions.query.type``, ``protocol``, ``port``,
  50 probes at most without a token) and answers ``400 {"error": {"type":
  "validation_error", "message", "params"}}`` otherwise; ``422 no_probes_found`` when no
  probe matches; ``202 {"id", "probesCount"}`` with ``Location`` and ``X-RateLimit-*``;
  ``429 rate_limit_exceeded`` when the hourly points would run out;
* ``GET /v1/measurements/{id}`` answers ``in-progress`` for the first ``in_progress_polls``
  reads (probes marked ``quick`` already finished: partial results), then ``finished``;
  more than 2 reads a second of one measurement is a ``429`` with ``Retry-After``;
* each probe's answer is a REAL DNS query from this process to the probe's own resolver
  (``FakeProbe.resolver``, e.g. a test Unbound on loopback), or to the measurement's
  ``resolver`` option; a probe can be ``offline``, or stay ``in-progress`` forever, and a
  lookup that gets no answer is a ``failed`` test as the real probes report it;
* fault injection: the next N requests (optionally only POST or GET) answer ``429`` with
  ``Retry-After``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.integration.servers.fakeapi import FakeApi, Fault

QUERY_TYPES = {"A", "AAAA", "ANY", "CNAME", "DNSKEY", "DS", "HTTPS", "MX", "NS", "NSEC", "PTR", "RRSIG", "SOA", "TXT", "SRV", "SVCB"}
LOCATION_KEYS = {"continent", "region", "country", "state", "city", "asn", "network", "tags", "magic", "limit"}
OPTION_KEYS = {"query", "resolver", "protocol", "port", "ipVersion", "trace"}
REQUEST_KEYS = {"type", "target", "locations", "limit", "measurementOptions", "inProgressUpdates", "timeout"}
DOCS = "https://globalping.io/docs/api.globalping.io#post-/v1/measurements"


class Invalid(Exception):
    def __init__(self, status: int, kind: str, message: str, params: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.params = status, kind, message, params


@dataclass
class FakeProbe:
    """One probe: where it is, and the resolver it really asks (address, port)."""

    country: str
    city: str
    asn: int
    network: str
    resolver: tuple[str, int]
    continent: str = "EU"
    state: str = "ok"  # "ok", "offline", or "stuck" (never finishes)
    quick: bool = False  # finished already while the measurement is in progress
    reported_resolver: str = "private"  # what the API shows in probe.resolvers

    def location(self) -> dict[str, Any]:
        return {"continent": self.continent, "region": "", "country": self.country, "state": None, "city": self.city,
                "asn": self.asn, "network": self.network, "latitude": 0.0, "longitude": 0.0,
                "tags": [], "resolvers": [self.reported_resolver]}

    def matches(self, loc: dict[str, Any]) -> bool:
        fields = {"continent": self.continent, "country": self.country, "city": self.city, "asn": self.asn, "network": self.network}
        for key, value in loc.items():
            if key == "magic":
                continent = {"EU": "europe", "AS": "asia", "NA": "north america", "SA": "south america", "OC": "oceania"}
                words = {str(v).lower() for v in fields.values()} | {f"as{self.asn}", continent.get(self.continent, ""), "world"}
                if str(value).lower() not in words:
                    return False
            elif key in fields and str(fields[key]).lower() != str(value).lower():
                return False
        return True


@dataclass
class Measurement:
    id: str
    request: dict[str, Any]
    probes: list[FakeProbe]
    created: str
    reads: int = 0
    read_times: list[float] = field(default_factory=list)
    results: list[dict[str, Any] | None] = field(default_factory=list)


class FakeGlobalping(FakeApi):
    """The API's state and behaviour; ``start`` serves it on 127.0.0.1:free port."""

    def __init__(self, token: str | None = None, hourly_anonymous: int = 250, hourly_token: int = 500,
                 in_progress_polls: int = 1, dns_timeout: float = 1.0) -> None:
        super().__init__()
        self.token = token or secrets.token_urlsafe(24)
        self.hourly = {"anon": hourly_anonymous, "auth": hourly_token}
        self.consumed = {"anon": 0, "auth": 0}
        self.in_progress_polls = in_progress_polls
        self.dns_timeout = dns_timeout
        self.probes: list[FakeProbe] = []
        self.measurements: dict[str, Measurement] = {}
        self.bodies: list[Any] = []  # bodies of POST requests, valid or not

    # -- set-up used by tests ---------------------------------------------------------

    def add_probe(self, probe: FakeProbe) -> FakeProbe:
        self.probes.append(probe)
        return probe

    def rate_limit_next(self, count: int, retry_after: int = 1, method: str | None = None) -> None:
        """The next ``count`` requests (of ``method``, if given) answer 429 with Retry-After."""
        self.inject(count, self._fault(429, retry_after, method))

    def fail_next(self, count: int, status: int = 500, method: str | None = None) -> None:
        """The next ``count`` requests (of ``method``, if given) fail with ``status``."""
        self.inject(count, self._fault(status, 0, method))

    def read_times(self, measurement_id: str) -> list[float]:
        return [t for m, p, t in self.log if m == "GET" and p.endswith("/" + measurement_id)]

    def _fault(self, status: int, retry_after: int, method: str | None) -> Fault:
        """A 429 says when to retry, as the API's rate limit does; any other status is an API error."""
        if status == 429:
            error = self._error("too_many_requests", f"Too many requests. Please retry in {retry_after} seconds.")
            return Fault(status=429, body=json.dumps(error).encode(), headers={"Retry-After": str(retry_after)}, method=method)
        return Fault(status=status, body=json.dumps(self._error("api_error", "Internal Server Error.")).encode(), method=method)

    # -- server -----------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, method: str, raw: bytes, fault: Fault | None) -> None:
        auth = h.headers.get("Authorization")
        if auth is not None and auth != f"Bearer {self.token}":
            return self._send_json(h, 401, self._error("unauthorized", "Invalid token."))
        try:
            if method == "POST" and h.path == "/v1/measurements":
                return self._create(h, raw, "auth" if auth else "anon")
            if method == "GET" and h.path.startswith("/v1/measurements/"):
                return self._read(h, h.path.rsplit("/", 1)[1])
            raise Invalid(404, "not_found", "Couldn't find the requested route.")
        except Invalid as exc:
            self._send_json(h, exc.status, self._error(exc.kind, exc.message, exc.params))

    @staticmethod
    def _error(kind: str, message: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"type": kind, "message": message}
        if params:
            err["params"] = params
        return {"error": err, "links": {"documentation": DOCS}}

    # -- POST -------------------------------------------------------------------------

    def _create(self, h: BaseHTTPRequestHandler, raw: bytes, who: str) -> None:
        body = self._json(raw, Invalid(400, "invalid_json", "Invalid JSON body."))
        with self._lock:
            self.bodies.append(body)
        wanted = validate(body, who)
        chosen = self._choose(body)
        if not chosen:
            raise Invalid(422, "no_probes_found", "No matching IPv4 probes available.")
        with self._lock:
            limit, used = self.hourly[who], self.consumed[who]
            if used + wanted > limit:
                headers = self._rate_headers(who, 0)
                msg = "This measurement exceeds the remaining hourly rate limit for your IP address."
                return self._send_json(h, 429, self._error("rate_limit_exceeded", msg), headers | {"X-Request-Cost": str(wanted)})
            self.consumed[who] += len(chosen)
            m = Measurement(secrets.token_hex(8), body, chosen, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            m.results = [None] * len(chosen)
            self.measurements[m.id] = m
            headers = self._rate_headers(who, len(chosen)) | {"Location": f"{self.url}/v1/measurements/{m.id}"}
        self._send_json(h, 202, {"id": m.id, "probesCount": len(chosen)}, headers)

    def _rate_headers(self, who: str, consumed: int) -> dict[str, str]:
        limit = self.hourly[who]
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Consumed": str(consumed),
                "X-RateLimit-Remaining": str(max(0, limit - self.consumed[who])), "X-RateLimit-Reset": "3600"}

    def _choose(self, body: dict[str, Any]) -> list[FakeProbe]:
        locations = body.get("locations") or [{}]
        chosen: list[FakeProbe] = []
        for loc in locations:
            want = int(loc.get("limit", 1)) if any("limit" in x for x in locations) else int(body.get("limit", 1))
            found = [p for p in self.probes if p.matches({k: v for k, v in loc.items() if k != "limit"}) and p not in chosen]
            chosen.extend(found[:want])
        if "limit" in body:
            chosen = chosen[: int(body["limit"])]
        return chosen

    # -- GET --------------------------------------------------------------------------

    def _read(self, h: BaseHTTPRequestHandler, measurement_id: str) -> None:
        with self._lock:
            m = self.measurements.get(measurement_id)
            if m is None:
                raise Invalid(404, "not_found", "Couldn't find the requested measurement.")
            now = time.monotonic()
            m.read_times = [t for t in m.read_times if now - t < 1.0] + [now]
            if len(m.read_times) > 2:
                return self._send_json(h, 429, self._error("too_many_requests", "Too many requests. Please retry in 1 second."),
                                       {"Retry-After": "1"})
            m.reads += 1
            finished = m.reads > self.in_progress_polls
        for i, probe in enumerate(m.probes):
            if m.results[i] is None and (finished or probe.quick):
                m.results[i] = self._run(probe, m.request)
        results = [{"probe": p.location(), "result": r if r is not None else {"status": "in-progress", "rawOutput": ""}}
                   for p, r in zip(m.probes, m.results)]
        if any(r["result"]["status"] == "in-progress" and p.state != "stuck" for p, r in zip(m.probes, results)):
            finished = False
        self._send_json(h, 200, {"id": m.id, "type": "dns", "status": "finished" if finished else "in-progress",
                                 "createdAt": m.created, "updatedAt": m.created, "target": m.request["target"],
                                 "probesCount": len(m.probes), "locations": m.request.get("locations", []),
                                 "measurementOptions": m.request.get("measurementOptions", {}), "results": results})

    def _run(self, probe: FakeProbe, request: dict[str, Any]) -> dict[str, Any] | None:
        """One probe's test: a real DNS query to its resolver (or the requested one)."""
        if probe.state == "offline":
            return {"status": "offline", "rawOutput": ""}
        if probe.state == "stuck":
            return None
        options = request.get("measurementOptions") or {}
        address, port = probe.resolver
        if options.get("resolver"):
            address, port = str(options["resolver"]), int(options.get("port", 53))
        qtype = (options.get("query") or {}).get("type", "A")
        query = dns.message.make_query(request["target"], qtype)
        started = time.monotonic()
        try:
            if options.get("protocol") == "TCP":
                response = dns.query.tcp(query, address, port=port, timeout=self.dns_timeout)
            else:
                response = dns.query.udp(query, address, port=port, timeout=self.dns_timeout)
        except (dns.exception.DNSException, OSError):
            return {"status": "failed", "failureSource": "resolver",
                    "rawOutput": ";; communications error: timed out\n;; no servers could be reached\n"}
        return finished_result(response, address, (time.monotonic() - started) * 1000)


def finished_result(response: dns.message.Message, resolver: str, total_ms: float) -> dict[str, Any]:
    """A finished DNS test as the API reports it, from a real response."""
    answers = [{"name": rrset.name.to_text(), "type": dns.rdatatype.to_text(rrset.rdtype), "ttl": rrset.ttl,
                "class": dns.rdataclass.to_text(rrset.rdclass), "value": rd.to_text()}
               for rrset in response.answer for rd in rrset]
    rcode = response.rcode()
    return {"status": "finished", "statusCode": int(rcode), "statusCodeName": dns.rcode.to_text(rcode), "resolver": resolver,
            "answers": answers, "timings": {"total": round(total_ms, 3)}, "rawOutput": response.to_text()}


def validate(body: Any, who: str) -> int:
    """The request's probe count, or ``Invalid`` 400 naming the bad field as the API does."""
    def bad(param: str, why: str) -> Invalid:
        return Invalid(400, "validation_error", "Parameter validation failed.", {param: why})

    if not isinstance(body, dict):
        raise bad("body", '"value" must be of type object')
    for key in body:
        if key not in REQUEST_KEYS:
            raise bad(key, f'"{key}" is not allowed')
    if body.get("type") != "dns":
        raise bad("type", '"type" must be one of [ping, traceroute, dns, mtr, http] (this fake serves dns)')
    if not isinstance(body.get("target"), str) or not body["target"] or body["target"].endswith("."):
        raise bad("target", '"target" does not match any of the allowed types')
    locations = body.get("locations", [])
    if not isinstance(locations, list):
        raise bad("locations", '"locations" must be an array')
    with_limits = any(isinstance(loc, dict) and "limit" in loc for loc in locations)
    for i, loc in enumerate(locations):
        if not isinstance(loc, dict) or not set(loc) <= LOCATION_KEYS or not set(loc) - {"limit"}:
            raise bad(f"locations[{i}]", '"location" must have one of the allowed location keys')
        if "limit" in loc and not (isinstance(loc["limit"], int) and 1 <= loc["limit"] <= 200):
            raise bad(f"locations[{i}].limit", '"limit" must be between 1 and 200')
    if "limit" in body:
        if with_limits:
            raise bad("limit", '"limit" may not be used together with location limits')
        if not (isinstance(body["limit"], int) and 1 <= body["limit"] <= 500):
            raise bad("limit", '"limit" must be between 1 and 500')
    options = body.get("measurementOptions", {})
    if not isinstance(options, dict) or not set(options) <= OPTION_KEYS:
        raise bad("measurementOptions", '"measurementOptions" has keys that are not allowed')
    if (options.get("query") or {}).get("type", "A") not in QUERY_TYPES:
        raise bad("measurementOptions.query.type", '"type" must be one of the DNS query types')
    if options.get("protocol", "UDP") not in ("UDP", "TCP"):
        raise bad("measurementOptions.protocol", '"protocol" must be one of [TCP, UDP]')
    port = options.get("port", 53)
    if not (isinstance(port, int) and 0 <= port <= 65535):
        raise bad("measurementOptions.port", '"port" must be between 0 and 65535')
    wanted = sum(int(loc.get("limit", 1)) for loc in locations) if with_limits else int(body.get("limit", 1))
    if who == "anon" and wanted > 50:
        raise bad("limit", '"limit" must be less than or equal to 50 for unauthenticated requests')
    return wanted


@pytest.fixture
def globalping_api() -> Iterator[FakeGlobalping]:
    """A fresh fake Globalping API (no probes yet), stopped after the test."""
    api = FakeGlobalping().start()
    yield api
    api.stop()
