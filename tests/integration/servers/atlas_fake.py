"""A local stand-in for the RIPE Atlas API (one-off DNS measurements only), for the probe client's tests.

No machine here reaches atlas.ripe.net, so this small HTTP server on loopback follows the
documented shapes (https://atlas.ripe.net/docs/apis/: REST API manual, measurement
result format) of what cutover uses:

* ``POST /api/v2/measurements/`` needs ``Authorization: Key <key>`` (401 without, 403
  with another key, ``{"error": {"status", "code", "title", "detail"}}``) and validates
  the body as the API does: ``definitions`` of ``type: dns`` with ``af``, ``description``,
  ``query_class``, ``query_type`` (the API's list), ``query_argument``,
  ``use_probe_resolver`` (else an IP ``target``), ``protocol``; ``probes`` specs of a
  known ``type`` with ``value`` and ``requested`` (1000 in all at most); ``is_oneoff``.
  Anything else is a ``400`` naming the field in ``errors[].source.pointer``. It answers
  ``201 {"measurements": [id]}``; a measurement no probe matches is created all the same
  and says ``No suitable probes``;
* ``GET /api/v2/measurements/{id}/`` is ``Ongoing`` for the first ``in_progress_polls``
  reads (probes marked ``quick`` have reported already: partial results), then
  ``Stopped``; with ``optional_fields=probes`` it lists the probes it was given;
* ``GET /api/v2/measurements/{id}/results/`` lists the results so far (the results of
  probes that are not quick can lag the ``Stopped`` status by ``results_lag_reads``
  reads). Each is a REAL DNS query from this process to the probe's own resolvers
  (``FakeProbe.resolvers``, e.g. test Unbounds on loopback: a ``resultset`` entry each)
  or to the requested ``target`` (at ``target_port``), the response's wire format
  base64-encoded in ``abuf``; a resolver that does not answer is ``error: {timeout}``,
  one whose port is closed ``error: {socket}`` (the query goes out on a connected UDP
  socket, as a probe's stub resolver sends it, so the refusal is seen). A probe can be ``offline`` (it never
  reports) or ``garbled`` (its ``abuf`` is cut short);
* ``GET /api/v2/probes/?id__in=`` describes probes (``country_code``, ``asn_v4``,
  ``prefix_v4``, ...);
* fault injection: the next N requests (optionally only of one method, or whose path
  contains a text) answer ``429`` with ``Retry-After``, or any status with any body
  (a 5xx, or a 200 that is not JSON).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import dns.exception
import dns.message
import dns.query
import pytest

from tests.integration.servers.fakeapi import FakeApi, Fault

QUERY_TYPES = {"A", "AAAA", "ANY", "CNAME", "DNSKEY", "DS", "HINFO", "MX", "NS", "NSEC", "NSEC3", "NSEC3PARAM", "PTR",
               "RRSIG", "SOA", "SRV", "SSHFP", "TLSA", "TXT"}
REQUEST_KEYS = {"definitions", "probes", "is_oneoff", "start_time", "stop_time", "bill_to"}
DEFINITION_KEYS = {"type", "af", "description", "query_class", "query_type", "query_argument", "use_probe_resolver",
                   "target", "protocol", "set_rd_bit", "set_do_bit", "set_cd_bit", "set_nsid_bit", "retry",
                   "udp_payload_size", "include_abuf", "include_qbuf", "is_public", "tags", "timeout", "port"}
SPEC_TYPES = {"area", "country", "asn", "prefix", "probes", "msm"}
STATUS_IDS = {"Specified": 0, "Scheduled": 1, "Ongoing": 2, "Stopped": 4, "No suitable probes": 6}


class Invalid(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []


def bad(pointer: str, detail: str) -> Invalid:
    return Invalid(400, "Bad Request", "There was a problem with your request", [(pointer, detail)])


@dataclass
class FakeProbe:
    """One probe: its id, place and network, and the resolvers it really asks (address, port)."""

    id: int
    country: str
    asn: int
    prefix: str
    resolvers: list[tuple[str, int]]
    state: str = "ok"  # "ok", "offline" (never reports), "garbled" (its abuf is cut short)
    quick: bool = False  # reports while the measurement is still Ongoing

    @property
    def address(self) -> str:
        return str(next(ipaddress.ip_network(self.prefix).hosts()))

    def as_api(self) -> dict[str, Any]:
        return {"id": self.id, "type": "Probe", "country_code": self.country, "asn_v4": self.asn, "asn_v6": None,
                "prefix_v4": self.prefix, "prefix_v6": None, "address_v4": self.address, "address_v6": None,
                "is_anchor": False, "is_public": True, "description": f"probe {self.id}",
                "geometry": {"type": "Point", "coordinates": [0.0, 0.0]},
                "status": {"id": 1, "name": "Connected", "since": "2024-01-01T00:00:00Z"}}

    def matches(self, spec: dict[str, Any], measurements: dict[int, "Measurement"]) -> bool:
        kind, value = spec["type"], str(spec["value"])
        if kind == "area":
            return True  # one small world: every probe is in every area
        if kind == "country":
            return self.country.upper() == value.upper()
        if kind == "asn":
            return str(self.asn) == value.upper().removeprefix("AS")
        if kind == "prefix":
            return ipaddress.ip_address(self.address) in ipaddress.ip_network(value, strict=False)
        if kind == "probes":
            return str(self.id) in {v.strip() for v in value.split(",")}
        m = measurements.get(int(value)) if value.isdigit() else None
        return m is not None and self in m.probes


@dataclass
class Measurement:
    id: int
    definition: dict[str, Any]
    probes: list[FakeProbe]
    requested: int
    created: int
    reads: int = 0  # reads of the measurement itself (what moves it on)
    stopped_at: int | None = None  # the read at which it said Stopped first
    results: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if not self.probes:
            return "No suitable probes"
        return "Stopped" if self.stopped_at is not None else "Ongoing"


class FakeAtlas(FakeApi):
    """The API's state and behaviour; ``start`` serves it on 127.0.0.1:free port."""

    def __init__(self, key: str | None = None, in_progress_polls: int = 1, results_lag_reads: int = 0,
                 dns_timeout: float = 1.0, target_port: int = 53) -> None:
        super().__init__()
        self.key = key or secrets.token_urlsafe(24)
        self.in_progress_polls = in_progress_polls
        self.results_lag_reads = results_lag_reads
        self.dns_timeout = dns_timeout
        self.target_port = target_port  # where a requested target resolver is asked (tests run it on a free port)
        self.probes: list[FakeProbe] = []
        self.measurements: dict[int, Measurement] = {}
        self.auth: list[str | None] = []  # the Authorization header of every request
        self.bodies: list[Any] = []  # bodies of POST requests, valid or not
        self._next_id = 1000001

    # -- set-up used by tests ---------------------------------------------------------

    def add_probe(self, probe: FakeProbe) -> FakeProbe:
        self.probes.append(probe)
        return probe

    def rate_limit_next(self, count: int, retry_after: int = 1, method: str | None = None, path: str | None = None) -> None:
        """The next ``count`` matching requests answer 429 with ``Retry-After``."""
        body = json.dumps({"error": {"status": 429, "code": 104, "title": "Too Many Requests",
                                     "detail": "Request was throttled."}}).encode()
        self.inject(count, Fault(status=429, body=body, headers={"Retry-After": str(retry_after)}, method=method, path=path))

    def fail_next(self, count: int, status: int = 500, body: str = "<h1>Server Error (500)</h1>", method: str | None = None,
                  path: str | None = None) -> None:
        """The next ``count`` matching requests answer ``status`` with ``body`` (a 200 with
        a body that is not JSON is a malformed answer)."""
        self.inject(count, Fault(status=status, body=body.encode(), method=method, path=path))

    def reads(self, measurement_id: str | int, resource: str = "") -> list[float]:
        """When the measurement (``resource=""``) or its ``results/`` were read."""
        path = f"/api/v2/measurements/{measurement_id}/{resource}"
        return [t for m, p, t in self.log if m == "GET" and urlsplit(p).path == path]

    # -- server -----------------------------------------------------------------------

    def _note(self, method: str, h: BaseHTTPRequestHandler) -> None:
        super()._note(method, h)
        self.auth.append(h.headers.get("Authorization"))

    def _answer(self, h: BaseHTTPRequestHandler, method: str, raw: bytes, fault: Fault | None) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            self._authorise(h.headers.get("Authorization"), method == "POST")
            if method == "POST" and parts == ["api", "v2", "measurements"]:
                return self._create(h, raw)
            if method == "GET" and parts[:3] == ["api", "v2", "measurements"] and len(parts) in (4, 5):
                return self._read(h, parts[3], parts[4] if len(parts) == 5 else "", query)
            if method == "GET" and parts == ["api", "v2", "probes"]:
                return self._describe(h, query)
            raise Invalid(404, "Not Found", "Not found.")
        except Invalid as exc:
            error: dict[str, Any] = {"status": exc.status, "code": 104 if exc.status in (401, 403) else 102,
                                     "title": exc.title, "detail": exc.detail}
            if exc.errors:
                error["errors"] = [{"source": {"pointer": p}, "detail": d} for p, d in exc.errors]
            self._send_json(h, exc.status, {"error": error})

    def _authorise(self, header: str | None, required: bool) -> None:
        """Creating needs the key; reading does not, but a wrong key is refused anywhere."""
        if header is None and required:
            raise Invalid(401, "Unauthorized", "Authentication credentials were not provided.")
        if header is not None and header != f"Key {self.key}":
            raise Invalid(403, "Forbidden", "The provided API key does not exist")

    # -- POST -------------------------------------------------------------------------

    def _create(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        body = self._json(raw, Invalid(400, "Bad Request", "JSON parse error"))
        with self._lock:
            self.bodies.append(body)
        requested = validate(body)
        ids = []
        with self._lock:
            chosen: list[FakeProbe] = []
            for spec in body["probes"]:
                found = [p for p in self.probes if p.matches(spec, self.measurements) and p not in chosen]
                chosen.extend(found[: int(spec["requested"])])
            for definition in body["definitions"]:
                m = Measurement(self._next_id, definition, list(chosen), requested, int(time.time()))
                self._next_id += 1
                self.measurements[m.id] = m
                ids.append(m.id)
        self._send_json(h, 201, {"measurements": ids})

    # -- GET --------------------------------------------------------------------------

    def _read(self, h: BaseHTTPRequestHandler, measurement_id: str, resource: str, query: dict[str, str]) -> None:
        m = self.measurements.get(int(measurement_id)) if measurement_id.isdigit() else None
        if m is None or resource not in ("", "results"):
            raise Invalid(404, "Not Found", "Not found.")
        if resource == "results":
            self._run(m)
            with self._lock:
                results = [m.results[p.id] for p in m.probes if p.id in m.results]
            return self._send_json(h, 200, results)
        with self._lock:
            m.reads += 1
            if m.stopped_at is None and m.reads > self.in_progress_polls:
                m.stopped_at = m.reads
        self._run(m)
        d = m.definition
        doc: dict[str, Any] = {
            "id": m.id, "type": "dns", "af": d["af"], "description": d["description"], "is_oneoff": True, "is_public": True,
            "query_class": d["query_class"], "query_type": d["query_type"], "query_argument": d["query_argument"],
            "use_probe_resolver": d["use_probe_resolver"], "target": d.get("target"), "protocol": d.get("protocol", "UDP"),
            "probes_requested": m.requested, "probes_scheduled": len(m.probes), "participant_count": len(m.results),
            "creation_time": m.created, "start_time": m.created, "stop_time": m.created + 60 if m.stopped_at else None,
            "status": {"id": STATUS_IDS[m.status], "name": m.status, "when": m.created},
            "result": f"{self.url}/api/v2/measurements/{m.id}/results/",
        }
        if "probes" in query.get("optional_fields", "").split(","):
            doc["probes"] = [{"id": p.id, "url": f"{self.url}/api/v2/probes/{p.id}/"} for p in m.probes]
        self._send_json(h, 200, doc)

    def _run(self, m: Measurement) -> None:
        """Let the probes whose time has come report: quick ones at once, the others once
        the measurement has stopped (and any lag is over); offline ones never."""
        with self._lock:
            done = m.stopped_at is not None and m.reads >= m.stopped_at + self.results_lag_reads
            due = [p for p in m.probes if p.id not in m.results and p.state != "offline" and (p.quick or done)]
        for probe in due:
            result = self._result(m, probe)
            with self._lock:
                m.results.setdefault(probe.id, result)

    def _result(self, m: Measurement, probe: FakeProbe) -> dict[str, Any]:
        """One probe's result as Atlas reports it, from real DNS lookups."""
        d = m.definition
        now = int(time.time())
        base: dict[str, Any] = {"fw": 5080, "lts": 17, "msm_id": m.id, "msm_name": "Tdig", "prb_id": probe.id,
                                "timestamp": now, "type": "dns", "from": probe.address, "group_id": m.id}
        meta = {"af": d["af"], "src_addr": "192.168.1.2", "proto": d.get("protocol", "UDP")}
        if not d["use_probe_resolver"]:
            target = str(d["target"])
            return base | meta | {"dst_addr": target} | self._lookup(target, self.target_port, d, probe)
        count = len(probe.resolvers)
        base["resultset"] = [{"time": now, "lts": 17, "subid": i, "submax": count, "dst_addr": address} | meta
                             | self._lookup(address, port, d, probe)
                             for i, (address, port) in enumerate(probe.resolvers, start=1)]
        return base

    def _lookup(self, address: str, port: int, d: dict[str, Any], probe: FakeProbe) -> dict[str, Any]:
        query = dns.message.make_query(d["query_argument"], d["query_type"])
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        started = time.monotonic()
        try:
            if d.get("protocol") == "TCP":
                response = dns.query.tcp(query, address, port=port, timeout=self.dns_timeout)
            else:  # connected, as a probe's stub resolver is: a closed port is refused at once
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.connect((address, port))
                    sock.setblocking(False)  # dnspython waits (and times out) only on a non-blocking socket
                    response = dns.query.udp(query, address, port=port, timeout=self.dns_timeout, sock=sock)
        except dns.exception.Timeout:
            return {"error": {"timeout": int(self.dns_timeout * 1000)}}
        except OSError as exc:
            return {"error": {"socket": f"connect failed {exc.strerror or exc}"}}
        wire = response.to_wire()
        if probe.state == "garbled":
            wire = wire[: len(wire) // 2]
        return {"result": {"rt": round((time.monotonic() - started) * 1000, 3), "size": len(wire),
                           "abuf": base64.b64encode(wire).decode(), "ID": response.id, "QDCOUNT": len(response.question),
                           "ANCOUNT": len(response.answer), "NSCOUNT": len(response.authority),
                           "ARCOUNT": len(response.additional)}}

    def _describe(self, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        wanted = {int(i) for i in query.get("id__in", "").split(",") if i.strip().isdigit()}
        found = [p.as_api() for p in sorted(self.probes, key=lambda p: p.id) if p.id in wanted]
        fields = [f for f in query.get("fields", "").split(",") if f]
        if fields:
            found = [{k: v for k, v in p.items() if k in fields or k in ("id", "type")} for p in found]
        self._send_json(h, 200, {"count": len(found), "next": None, "previous": None, "results": found})


def validate(body: Any) -> int:
    """The probes requested, or ``Invalid`` 400 naming the bad field as the API does."""
    if not isinstance(body, dict):
        raise bad("/", "Expected a JSON object")
    unknown = sorted(set(body) - REQUEST_KEYS)
    if unknown:
        raise bad(f"/{unknown[0]}", "Unknown field")
    if body.get("is_oneoff") is not True:
        raise bad("/is_oneoff", "This fake only runs one-off measurements")
    definitions = body.get("definitions")
    if not isinstance(definitions, list) or not definitions:
        raise bad("/definitions", "This field is required.")
    for i, d in enumerate(definitions):
        validate_definition(d, f"/definitions/{i}")
    specs = body.get("probes")
    if not isinstance(specs, list) or not specs:
        raise bad("/probes", "This field is required.")
    total = 0
    for i, spec in enumerate(specs):
        where = f"/probes/{i}"
        if not isinstance(spec, dict) or spec.get("type") not in SPEC_TYPES:
            raise bad(f"{where}/type", f"Must be one of {', '.join(sorted(SPEC_TYPES))}")
        if not spec.get("value"):
            raise bad(f"{where}/value", "This field is required.")
        requested = spec.get("requested")
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise bad(f"{where}/requested", "A positive integer is required.")
        total += requested
    if total > 1000:
        raise bad("/probes", "You may not request more than 1000 probes per measurement")
    return total


def validate_definition(d: Any, where: str) -> None:
    if not isinstance(d, dict):
        raise bad(where, "Expected a JSON object")
    unknown = sorted(set(d) - DEFINITION_KEYS)
    if unknown:
        raise bad(f"{where}/{unknown[0]}", "Unknown field")
    if d.get("type") != "dns":
        raise bad(f"{where}/type", "This fake only runs dns measurements")
    if d.get("af") not in (4, 6):
        raise bad(f"{where}/af", "Must be 4 or 6")
    if not isinstance(d.get("description"), str) or not d["description"]:
        raise bad(f"{where}/description", "This field is required.")
    if d.get("query_class") not in ("IN", "CHAOS"):
        raise bad(f"{where}/query_class", "Must be IN or CHAOS")
    if d.get("query_type") not in QUERY_TYPES:
        raise bad(f"{where}/query_type", f'"{d.get("query_type")}" is not a valid choice.')
    if not isinstance(d.get("query_argument"), str) or not d["query_argument"]:
        raise bad(f"{where}/query_argument", "This field is required.")
    if d.get("protocol", "UDP") not in ("UDP", "TCP"):
        raise bad(f"{where}/protocol", "Must be UDP or TCP")
    if not isinstance(d.get("use_probe_resolver"), bool):
        raise bad(f"{where}/use_probe_resolver", "Must be a boolean")
    if d["use_probe_resolver"] and "target" in d:
        raise bad(f"{where}/target", "A target cannot be given with use_probe_resolver")
    if not d["use_probe_resolver"]:
        try:
            ipaddress.ip_address(str(d.get("target")))
        except ValueError:
            raise bad(f"{where}/target", "A target IP address is required without use_probe_resolver") from None


@pytest.fixture
def atlas_api() -> Iterator[FakeAtlas]:
    """A fresh fake RIPE Atlas API (no probes yet), stopped after the test."""
    api = FakeAtlas().start()
    yield api
    api.stop()
