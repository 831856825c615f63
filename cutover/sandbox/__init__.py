"""A DNS sandbox on loopback: an authoritative server and caching resolvers, in-process.

``cutover demo`` and the tests need the whole life of a cutover -- old answers held
in caches, a change at the authoritative server, caches expiring one by one, a few
resolvers that misbehave -- without an account, a daemon or root. Everything here
speaks real DNS over UDP and TCP on ephemeral loopback ports, so the code that
watches public resolvers watches these ones the same way.

One module per part, each importable on its own; this module wires them into a
``Sandbox`` and is where every public name is imported from:

- ``store``: ``ZoneStore``, zone data kept as zone files in a directory. Written
  atomically with a serial bump, re-read when the file changes, locked across
  processes, so that a ``cutover`` process using the ``sandbox`` provider and a sandbox
  serving the same directory (``python -m cutover.sandbox serve DIR``) share one truth.
- ``listener``: the UDP/TCP endpoint both servers are built on; ``messages``: the
  query parsing and error replies they share.
- ``authoritative``: ``AuthoritativeServer`` answers for the store's zones (AA,
  NXDOMAIN/NODATA with the SOA for negative caching, CNAME chains, wildcards,
  referrals, AXFR over TCP) and refuses everything else.
- ``resolver``: ``CachingResolver`` forwards to the authoritative server and caches
  like a real recursive resolver (TTLs count down, negative answers last the SOA
  minimum), with the quirks real caches have: ``ttl_floor``, RFC 8767
  ``serve_stale``, a stale ``stale_for`` window, ``delay`` and ``fail``.
- here: ``Sandbox``, one zone, one authoritative server and a set of resolvers,
  started together and described as ``cutover.resolvers.Resolver`` values and
  provider settings; ``serve`` keeps one running until a signal.
- ``__main__``: ``python -m cutover.sandbox serve DIR``.
- ``errors``: ``SandboxError`` and its kinds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import dns.name

from cutover.records import RecordSet
from cutover.resolvers import Resolver
from cutover.sandbox.authoritative import MAX_CHAIN, AuthoritativeServer, authoritative_answer, zone_transfer
from cutover.sandbox.errors import ChangeRejected, SandboxError, ZoneMissing
from cutover.sandbox.listener import LOOPBACK, Listener
from cutover.sandbox.resolver import FAIL_MODES, STALE_ANSWER_TTL, STALE_MAX_AGE, CachingResolver
from cutover.sandbox.store import ZoneStore, record_set, zone_name

__all__ = [
    "DEFAULT_RESOLVERS",
    "FAIL_MODES",
    "LOOPBACK",
    "MAX_CHAIN",
    "STALE_ANSWER_TTL",
    "STALE_MAX_AGE",
    "AuthoritativeServer",
    "CachingResolver",
    "ChangeRejected",
    "Listener",
    "ResolverSpec",
    "Sandbox",
    "SandboxError",
    "ZoneMissing",
    "ZoneStore",
    "authoritative_answer",
    "default_records",
    "record_set",
    "serve",
    "zone_transfer",
]

_S = TypeVar("_S", bound="Sandbox")


@dataclass(frozen=True)
class ResolverSpec:
    """How one sandbox resolver behaves; see ``CachingResolver`` for the meaning of each quirk."""

    name: str
    ttl_floor: int = 0
    serve_stale: bool = False
    stale_for: float = 0.0
    delay: float = 0.0
    fail: str | None = None


#: The resolvers a sandbox starts unless told otherwise: mostly well-behaved, plus one
#: of each kind of trouble an operator meets while watching a cutover spread.
DEFAULT_RESOLVERS: tuple[ResolverSpec, ...] = (
    ResolverSpec("sandbox-1"),
    ResolverSpec("sandbox-2"),
    ResolverSpec("sandbox-3"),
    ResolverSpec("sandbox-4", ttl_floor=30),
    ResolverSpec("sandbox-5", serve_stale=True),
    ResolverSpec("sandbox-6", stale_for=20.0),
    ResolverSpec("sandbox-7", delay=0.3),
    ResolverSpec("sandbox-8", fail="servfail"),
)


def default_records(zone: str, ttl: int = 60) -> list[RecordSet]:
    """A small web-and-mail zone for a sandbox started without records."""
    origin = zone_name(zone).to_text().lower()
    return [
        RecordSet.build(origin, "A", ttl, ["198.51.100.10"]),
        RecordSet.build(f"www.{origin}", "A", ttl, ["198.51.100.10"]),
        RecordSet.build(origin, "MX", ttl, [f"10 mail.{origin}"]),
        RecordSet.build(f"mail.{origin}", "A", ttl, ["198.51.100.25"]),
        RecordSet.build(origin, "TXT", ttl, ['"v=spf1 mx -all"']),
    ]


class Sandbox:
    """One zone served by an authoritative server and watched through caching resolvers.

    Everything starts when the object is made and stops on ``stop()`` (or at the end
    of a ``with`` block). The zone file lives in ``directory``; when ``records`` are
    given the zone is (re)created with them, when they are not an existing zone file
    is served as it is, or a small default zone is written.

    The demo's story is told with three things: ``provider_settings()`` for a plan's
    ``provider:`` section (type ``sandbox``), ``resolvers`` for its ``watch.resolvers``,
    and ``warm()`` to fill the caches with the old answers before the change.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        zone: str = "demo.example.",
        records: Iterable[RecordSet] | None = None,
        *,
        resolvers: Sequence[ResolverSpec] = DEFAULT_RESOLVERS,
        address: str = LOOPBACK,
        port: int = 0,
        negative_ttl: int = 60,
        upstream_timeout: float = 1.0,
    ) -> None:
        self.zone = zone_name(zone).to_text().lower()
        self.store = ZoneStore(directory)
        if records is not None:
            self.store.create_zone(self.zone, records, negative_ttl=negative_ttl, replace=True)
        elif not self.store.has_zone(self.zone):
            self.store.create_zone(self.zone, default_records(self.zone), negative_ttl=negative_ttl)
        self.server = AuthoritativeServer(self.store, address, port)
        self.caches: list[CachingResolver] = []
        try:
            for spec in resolvers:
                # a spec's fields are the resolver's keyword arguments, name for name
                quirks: dict[str, Any] = asdict(spec)
                self.caches.append(
                    CachingResolver(self.server.endpoint, address, upstream_timeout=upstream_timeout, **quirks)
                )
        except BaseException:
            self.stop()
            raise

    def __repr__(self) -> str:
        return f"Sandbox({self.zone} at {self.server.address}:{self.server.port}, {len(self.caches)} resolvers)"

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def authoritative(self) -> tuple[str, int]:
        """(address, port) of the authoritative server."""
        return self.server.endpoint

    @property
    def resolvers(self) -> list[Resolver]:
        """The caching resolvers as watch targets, named and described for the report."""
        return [
            Resolver(address=c.address, port=c.port, name=c.name, operator=f"sandbox ({c.quirk})", group="custom")
            for c in self.caches
        ]

    def cache(self, name: str) -> CachingResolver:
        """The caching resolver called ``name``; ``KeyError`` if there is none."""
        for c in self.caches:
            if c.name == name:
                return c
        raise KeyError(name)

    def provider_settings(self) -> dict[str, str]:
        """Settings for a plan's ``provider:`` section with ``type: sandbox``; the path is
        absolute, since a plan resolves relative paths from its own folder."""
        return {"path": str(self.directory.resolve()), "server": _endpoint_text(*self.authoritative)}

    def warm(self, name: str, rdtype: str = "A") -> None:
        """Fill every cache that answers with the current answer for (name, type)."""
        fqdn = dns.name.from_text(name, dns.name.from_text(self.zone)).to_text()
        for c in self.caches:
            if c.fail is None:
                c.warm(fqdn, rdtype)

    def flush(self) -> None:
        """Empty every cache."""
        for c in self.caches:
            c.flush()

    def stop(self) -> None:
        """Stop every server; safe to call twice."""
        for c in self.caches:
            c.stop()
        self.server.stop()

    def describe(self) -> dict[str, Any]:
        """The endpoints as plain data (what ``python -m cutover.sandbox serve`` prints)."""
        return {
            "zone": self.zone,
            "path": str(self.directory),
            "authoritative": _endpoint_text(*self.authoritative),
            "provider": {"type": "sandbox", **self.provider_settings()},
            "resolvers": [
                {"address": r.address, "port": r.port, "name": r.name, "operator": r.operator} for r in self.resolvers
            ],
        }


def _endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def serve(sandbox: Sandbox, out: TextIO | None = None, stop: threading.Event | None = None) -> None:
    """Print ``sandbox.describe()`` as one JSON line on ``out`` and serve until SIGINT or
    SIGTERM (or until ``stop`` is set). ``cutover sandbox`` can reuse this as it is."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    out = out or sys.stdout
    print(json.dumps(sandbox.describe()), file=out, flush=True)
    while not stop.wait(0.5):
        pass

