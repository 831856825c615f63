"""A local stand-in for the Cloudflare v4 API, for the cloudflare provider's tests.

No Cloudflare server can run here, so this is a small HTTP server on loopback that
follows the documented request and response shapes of the parts cutover uses:

* every answer is the envelope ``{"success", "errors": [{"code", "message"}],
  "messages", "result", "result_info"}``; a bad ``Authorization: Bearer`` token is a
  401 with that envelope;
* ``GET /zones?name=`` and ``GET /zones/{id}`` (with ``name_servers``);
* ``GET /zones/{id}/dns_records`` with real ``page``/``per_page`` pagination, capped at
  ``max_per_page`` so a small zone already spans several pages;
* ``POST /zones/{id}/dns_records/batch`` executed in the documented order (deletes,
  patches, puts, posts) on a copy of the zone: any invalid operation is a 400 envelope
  and nothing changes;
* records with ``data`` (SRV, CAA) and a ``content`` derived from it, MX ``priority``,
  ``proxied``, TTL 1 for "automatic";
* fault injection: the next N requests answer 429 with ``Retry-After``, or 500, or the
  connection is dropped without an answer.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from tests.integration.servers.fakeapi import FakeApi, Fault

API_PREFIX = "/client/v4"
PROXIABLE = frozenset({"A", "AAAA", "CNAME"})
SUPPORTED = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR"})


class Invalid(Exception):
    """One invalid request or batch operation: becomes an error in the envelope."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class FakeZone:
    id: str
    name: str
    name_servers: list[str]
    records: dict[str, dict] = field(default_factory=dict)  # id -> record, in creation order

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "status": "active", "name_servers": self.name_servers}


class FakeCloudflare(FakeApi):
    """The API's state and behaviour; ``start`` serves it on 127.0.0.1:free port."""

    methods = ("GET", "POST", "PATCH", "DELETE")

    def __init__(self, token: str | None = None, max_per_page: int = 5) -> None:
        super().__init__()
        self.token = token or secrets.token_urlsafe(30)
        self.max_per_page = max_per_page
        self.zones: dict[str, FakeZone] = {}
        self.content_only = False  # answer SRV/CAA without "data" (the newer content-only form)
        self.batches: list[dict] = []  # bodies of accepted batch requests

    # -- set-up used by tests -----------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.url}{API_PREFIX}"

    def add_zone(self, name: str) -> str:
        zid = secrets.token_hex(16)
        name = name.rstrip(".").lower()
        self.zones[zid] = FakeZone(zid, name, ["ada.ns.fake-cloudflare.test", "bob.ns.fake-cloudflare.test"])
        return zid

    def add_record(self, zone_id: str, **fields: Any) -> str:
        """Seed a record as if made in the dashboard (``proxied``, TTL 1, raw content...)."""
        zone = self.zones[zone_id]
        rec = self._make(zone, fields)
        zone.records[rec["id"]] = rec
        return rec["id"]

    def fail_next(self, count: int, status: int = 500, retry_after: int | str | None = None) -> None:
        self.inject(count, self._fault("status", status, retry_after))

    def drop_next(self, count: int) -> None:
        self.inject(count, Fault("drop"))

    def fail_matching(self, method: str, fragment: str, kind: str = "status", status: int = 500,
                      count: int = 1, retry_after: int | None = None) -> None:
        """The next ``count`` requests to ``method`` + ``fragment`` fail as ``kind`` (others pass):
        "status", "drop", or "lost-reply" (the request is served, then the connection drops)."""
        self.inject(count, self._fault(kind, status, retry_after, method, fragment))

    def requests_to(self, method: str, fragment: str) -> int:
        return sum(1 for m, p, _ in self.log if m == method and fragment in p)

    def _fault(self, kind: str, status: int, retry_after: int | str | None, method: str | None = None,
               fragment: str | None = None) -> Fault:
        msg = "Rate limited. Please wait and consider throttling your request speed" if status == 429 else "Internal server error"
        body = json.dumps(self._envelope(False, errors=[(971 if status == 429 else 10001, msg)])).encode()
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return Fault(kind, status, body, headers, method, fragment)

    # -- server -------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, method: str, raw: bytes, fault: Fault | None) -> None:
        lost = fault is not None  # a "lost-reply" (the base serves the other kinds)
        if lost:
            h.close_connection = True
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send_json(h, 401, self._envelope(False, errors=[(10000, "Authentication error")]))
        url = urlparse(h.path)
        if not url.path.startswith(API_PREFIX):
            return self._send_json(h, 404, self._envelope(False, errors=[(7000, "No route for that URI")]))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._json(raw, Invalid(9207, "Request body is invalid JSON"))
            with self._lock:
                status, payload = self._route(method, url.path[len(API_PREFIX):], query, body)
        except Invalid as exc:
            errors = getattr(exc, "all", None) or [(exc.code, exc.message)]
            return self._send_json(h, exc.status, self._envelope(False, errors=errors))
        if lost:
            return  # served, but the reply never reaches the client
        self._send_json(h, status, payload)

    @staticmethod
    def _envelope(success: bool, result: Any = None, errors: list[tuple[int, str]] = (), info: dict | None = None) -> dict:
        env = {
            "success": success,
            "errors": [{"code": c, "message": m} for c, m in errors],
            "messages": [],
            "result": result,
        }
        if info is not None:
            env["result_info"] = info
        return env

    # -- routes -------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, dict]:
        parts = [p for p in path.split("/") if p]
        if method == "GET" and parts == ["zones"]:
            found = [z.as_json() for z in self.zones.values() if "name" not in query or z.name == query["name"].rstrip(".").lower()]
            return 200, self._page(found, query)
        if len(parts) >= 2 and parts[0] == "zones":
            zone = self.zones.get(parts[1])
            if zone is None:
                raise Invalid(7003, f"Could not route to /zones/{parts[1]}, perhaps your object identifier is invalid?", 404)
            rest = parts[2:]
            if method == "GET" and rest == []:
                return 200, self._envelope(True, zone.as_json())
            if method == "GET" and rest == ["dns_records"]:
                recs = [self._render(r) for r in zone.records.values()]
                recs = [r for r in recs if all(str(r.get(k, "")).lower() == query[k].lower() for k in ("name", "type") if k in query)]
                return 200, self._page(recs, query)
            if method == "POST" and rest == ["dns_records", "batch"]:
                return 200, self._batch(zone, body)
        raise Invalid(7000, "No route for that URI", 404)

    def _page(self, items: list, query: dict) -> dict:
        try:
            page = max(1, int(query.get("page", 1)))
            per_page = max(1, min(self.max_per_page, int(query.get("per_page", 20))))
        except ValueError:
            raise Invalid(1004, "page and per_page must be numbers") from None
        total_pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items), "total_pages": total_pages}
        return self._envelope(True, chunk, info=info)

    def _batch(self, zone: FakeZone, body: Any) -> dict:
        if not isinstance(body, dict):
            raise Invalid(9207, "Request body must be an object")
        work = copy.deepcopy(zone.records)
        result: dict[str, list] = {"deletes": [], "patches": [], "puts": [], "posts": []}
        errors: list[tuple[int, str]] = []

        def fail(where: str, exc: Invalid) -> None:
            errors.append((exc.code, f"{where}: {exc.message}"))

        for i, op in enumerate(body.get("deletes") or []):
            rec = work.pop(str((op or {}).get("id")), None)
            if rec is None:
                fail(f"deletes[{i}]", Invalid(81044, "Record does not exist."))
            else:
                result["deletes"].append(self._render(rec))
        for kind in ("patches", "puts"):
            for i, op in enumerate(body.get(kind) or []):
                rid = str((op or {}).get("id"))
                old = work.get(rid)
                if old is None:
                    fail(f"{kind}[{i}]", Invalid(81044, "Record does not exist."))
                    continue
                base = {k: old[k] for k in ("name", "type", "proxied", "ttl", "content", "data", "priority", "comment", "tags") if k in old} if kind == "patches" else {}
                fields = {**base, **{k: v for k, v in op.items() if k != "id"}}
                if kind == "patches" and ("data" in op or "content" in op):
                    fields.pop("content" if "data" in op else "data", None)
                try:
                    new = self._make(zone, fields, rid=rid, created=old["created_on"])
                    self._conflicts(work, new)
                except Invalid as exc:
                    fail(f"{kind}[{i}]", exc)
                    continue
                work[rid] = new
                result[kind].append(self._render(new))
        for i, op in enumerate(body.get("posts") or []):
            try:
                new = self._make(zone, op or {})
                self._conflicts(work, new)
            except Invalid as exc:
                fail(f"posts[{i}]", exc)
                continue
            work[new["id"]] = new
            result["posts"].append(self._render(new))
        if errors:
            raise _BatchInvalid(errors)
        zone.records = work
        self.batches.append(body)
        return self._envelope(True, result)

    # -- records ------------------------------------------------------------------

    def _make(self, zone: FakeZone, f: dict, rid: str | None = None, created: str = "2024-01-01T00:00:00Z") -> dict:
        rtype = str(f.get("type", "")).upper()
        if rtype not in SUPPORTED:
            raise Invalid(9004, f"Invalid or unsupported DNS record type {rtype!r}")
        name = str(f.get("name", "")).rstrip(".").lower()
        if name in ("", "@"):
            name = zone.name
        if name != zone.name and not name.endswith("." + zone.name):
            name = f"{name}.{zone.name}"  # the API accepts names relative to the zone
        ttl = f.get("ttl", 1)
        if not isinstance(ttl, int) or not (ttl == 1 or 30 <= ttl <= 86400):
            raise Invalid(9021, "Invalid TTL. Must be between 30 and 86400 seconds, or 1 for Automatic.")
        proxied = bool(f.get("proxied", False))
        if proxied and rtype not in PROXIABLE:
            raise Invalid(9004, f"{rtype} records cannot be proxied.")
        rec: dict[str, Any] = {
            "id": rid or secrets.token_hex(16),
            "zone_id": zone.id,
            "zone_name": zone.name,
            "name": name,
            "type": rtype,
            "proxiable": rtype in PROXIABLE,
            "proxied": proxied,
            "ttl": 1 if proxied else ttl,  # proxied records always have the automatic TTL
            "locked": False,
            "comment": f.get("comment"),
            "tags": list(f.get("tags") or []),
            "created_on": created,
            "modified_on": "2024-01-02T00:00:00Z",
            "meta": {"auto_added": False, "source": "primary"},
        }
        content = f.get("content")
        if rtype in ("SRV", "CAA"):
            rec["data"] = self._data(rtype, f.get("data"), content, f.get("priority"))
            if rtype == "SRV":
                rec["priority"] = rec["data"]["priority"]
            return rec
        if not isinstance(content, str) or not content:
            raise Invalid(9005, "Content for record is invalid. Must be a non-empty string.")
        if rtype in ("A", "AAAA"):
            try:
                addr = ipaddress.ip_address(content)
            except ValueError:
                raise Invalid(9005, f"Content for {rtype} record is invalid. Must be a valid IPv{4 if rtype == 'A' else 6} address.") from None
            if addr.version != (4 if rtype == "A" else 6):
                raise Invalid(9005, f"Content for {rtype} record is invalid.")
        if rtype == "MX":
            prio = f.get("priority")
            if not isinstance(prio, int) or not 0 <= prio <= 65535:
                raise Invalid(9100, "MX records require a priority between 0 and 65535.")
            rec["priority"] = prio
        if rtype in ("CNAME", "MX", "NS", "PTR"):
            content = content.rstrip(".")
        if rtype == "TXT" and len(content) > 4096:
            raise Invalid(9101, "Content for TXT record is too long.")
        rec["content"] = content
        return rec

    @staticmethod
    def _data(rtype: str, data: Any, content: Any, priority: Any) -> dict:
        if data is None and isinstance(content, str):
            words = content.split(None, 3 if rtype == "SRV" else 2)
            if rtype == "SRV" and len(words) == 3 and isinstance(priority, int):
                words = [str(priority), *words]
            keys = ("priority", "weight", "port", "target") if rtype == "SRV" else ("flags", "tag", "value")
            if len(words) != len(keys):
                raise Invalid(9005, f"Content for {rtype} record is invalid.")
            data = dict(zip(keys, words))
            if rtype == "CAA" and data["value"].startswith('"') and data["value"].endswith('"'):
                data["value"] = data["value"][1:-1].replace('\\"', '"')
        if not isinstance(data, dict):
            raise Invalid(9005, f"{rtype} records need a data object.")
        try:
            if rtype == "SRV":
                out = {k: int(data[k]) for k in ("priority", "weight", "port")}
                out["target"] = str(data["target"]).rstrip(".") or "."
            else:
                out = {"flags": int(data["flags"]), "tag": str(data["tag"]), "value": str(data["value"])}
                if out["tag"] not in ("issue", "issuewild", "iodef"):
                    raise Invalid(9005, "CAA tag must be issue, issuewild or iodef.")
        except (KeyError, ValueError, TypeError):
            raise Invalid(9005, f"Data for {rtype} record is invalid.") from None
        return out

    @staticmethod
    def _conflicts(records: dict[str, dict], new: dict) -> None:
        for other in records.values():
            if other["id"] == new["id"] or other["name"] != new["name"]:
                continue
            if "CNAME" in (other["type"], new["type"]):
                raise Invalid(81053, "An A, AAAA, or CNAME record with that host already exists.")
            same = ("content", "data", "priority")
            if other["type"] == new["type"] and all(other.get(k) == new.get(k) for k in same):
                raise Invalid(81058, "An identical record already exists.")

    def _render(self, rec: dict) -> dict:
        """A record as the API shows it: SRV/CAA content derived from ``data``."""
        out = dict(rec)
        data = rec.get("data")
        if rec["type"] == "SRV":
            out["content"] = f"{data['weight']} {data['port']} {data['target']}"
        elif rec["type"] == "CAA":
            value = data["value"].replace('"', '\\"')
            out["content"] = f'{data["flags"]} {data["tag"]} "{value}"'
        if self.content_only:
            out.pop("data", None)
        return out


class _BatchInvalid(Invalid):
    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(errors[0][0], "; ".join(m for _, m in errors))
        self.all = errors


@pytest.fixture
def cloudflare_api() -> Iterator[FakeCloudflare]:
    """A fresh fake Cloudflare API (no zones yet), stopped after the test."""
    api = FakeCloudflare().start()
    yield api
    api.stop()
