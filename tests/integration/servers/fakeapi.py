"""What the local fake HTTP APIs share (``atlas_fake``, ``globalping_fake``, ``cloudflare_fake``).

A fake is a ``FakeApi``: ``start`` serves it on 127.0.0.1 (a free port, ``url``), ``stop``
ends it. Every request is read whole, logged (``log``: method, path with query, monotonic
time), and either fails as an injected ``Fault`` says or goes to the fake's ``_answer``,
which says what the API does (``_send``/``_send_json`` write the reply).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from tests.integration.servers import serve_http, stop_http

Api = TypeVar("Api", bound="FakeApi")


@dataclass
class Fault:
    """One request that fails: the next of ``method`` whose path contains ``path`` (either
    None: any). ``kind`` "status" answers ``status`` with ``body`` and ``headers``; "drop"
    closes the connection without a status line; a fake may define more kinds, which its
    ``_answer`` is given."""

    kind: str = "status"
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in (None, method) and (self.path is None or self.path in path)


class FakeApi:
    """A fake API's server plumbing; a subclass sets ``methods`` and defines ``_answer``."""

    methods: tuple[str, ...] = ("GET", "POST")

    def __init__(self) -> None:
        self.log: list[tuple[str, str, float]] = []  # (method, path with query, monotonic time) of every request
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self: Api) -> Api:
        self._httpd = serve_http(self._serve, self.methods)
        return self

    def stop(self) -> None:
        stop_http(self._httpd)

    def inject(self, count: int, fault: Fault) -> None:
        """The next ``count`` requests that ``fault`` matches fail as it says."""
        with self._lock:
            self._faults.extend(fault for _ in range(count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- serving ----------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self._lock:
            self._note(method, h)
            fault = next((f for f in self._faults if f.matches(method, h.path)), None)
            if fault:
                self._faults.remove(fault)
        if fault and fault.kind == "drop":
            h.close_connection = True
            return  # no status line at all: the client sees the connection close
        if fault and fault.kind == "status":
            return self._send(h, fault.status, fault.body, fault.headers)
        self._answer(h, method, raw, fault)

    def _note(self, method: str, h: BaseHTTPRequestHandler) -> None:
        """Keep what the tests look at of a request (called with the lock held)."""
        self.log.append((method, h.path, time.monotonic()))

    def _answer(self, h: BaseHTTPRequestHandler, method: str, raw: bytes, fault: Fault | None) -> None:
        """Answer one request (``raw``: its body) as the API does; ``fault`` is an injected
        fault of a kind this fake defines, or None."""
        raise NotImplementedError

    @staticmethod
    def _json(raw: bytes, invalid: Exception) -> Any:
        """A request's body read as JSON (None when empty); ``invalid`` is raised when it is not JSON."""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise invalid from None

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @classmethod
    def _send_json(cls, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        cls._send(h, status, json.dumps(payload).encode(), headers)
