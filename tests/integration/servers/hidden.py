"""A *hidden cache*: a caching resolver the watch is never told about, asked by a client.

The retire verdict claims that no cache can still hand out the old data. The watch only
sees the resolvers it asks, and asking a resolver changes what it caches; so the lab
keeps one more Unbound that cutover never queries, primes it with the old answer just
before the change (as a busy resolver on the Internet would be), then asks it every
quarter second from a client thread and records every answer. The time it switched to
the new data for good is the ground truth a verdict is measured against.

Times are wall-clock (``time.time()``) so that they compare with the ISO 8601 ``time``
of cutover's round documents; each observation also keeps a monotonic time.

    def test_something(hidden_cache, bind_server):
        bind = bind_server(BindZone("acme.example.com.", records=("www 2 IN A 192.0.2.1",)))
        cache = hidden_cache("acme.example.com.", bind.port)
        cache.prime("www.acme.example.com.", "A")
        ...change...
        cache.start("www.acme.example.com.", "A")
        ...
        cache.stop()
        assert cache.switched_at({"203.0.113.1"}) is not None
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from typing import Callable, Collection, Iterator, Mapping

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.integration.servers import unbound
from tests.integration.servers.unbound import UnboundServer, Upstream

INTERVAL = 0.25


@dataclass(frozen=True)
class Observation:
    """One answer of the hidden cache: when, what (values as text), and with which TTL.

    ``values`` is None when the cache gave no answer (timeout or SERVFAIL): that is not
    old data, so it neither delays nor advances the switch."""

    wall: float
    monotonic: float
    question: tuple[str, str]  # (name, type) asked
    values: frozenset[str] | None
    ttl: int | None
    rcode: str

    @property
    def answered(self) -> bool:
        return self.values is not None


class HiddenCache:
    """An Unbound the watch never asks, and a client that keeps asking it."""

    def __init__(self, server: UnboundServer) -> None:
        self.server = server
        self.observations: list[Observation] = []
        self.question: tuple[str, str] | None = None  # what prime/start ask; the accessors judge only it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def ask(self, name: str, rtype: str) -> Observation:
        """One query, as a user behind this resolver makes it (RD set)."""
        query = dns.message.make_query(name, rtype)
        wall, mono = time.time(), time.monotonic()
        try:
            response = dns.query.udp(query, self.server.address, port=self.server.port, timeout=1)
        except (dns.exception.Timeout, OSError) as exc:
            return Observation(wall, mono, (name, rtype), None, None, type(exc).__name__)
        rcode = dns.rcode.to_text(response.rcode())
        wanted = dns.rdatatype.from_text(rtype)
        rrsets = [r for r in response.answer if r.rdtype == wanted]
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return Observation(wall, mono, (name, rtype), None, None, rcode)
        values = frozenset(rd.to_text() for r in rrsets for rd in r)
        ttl = min((r.ttl for r in rrsets), default=None)
        return Observation(wall, mono, (name, rtype), values, ttl, rcode)

    def prime(self, name: str, rtype: str) -> Observation:
        """Ask once, so that the cache holds the current (old) answer; recorded too."""
        self.question = (name, rtype)
        seen = self.ask(name, rtype)
        self._record(seen)
        return seen

    def ask_at(self, when: float, name: str, rtype: str) -> threading.Thread:
        """One more client asks ``name rtype`` at wall time ``when`` (recorded with the
        others): e.g. someone checking the delegation with ``dig NS``, which makes Unbound
        learn the NS set from whichever host its cached delegation points at."""

        def later() -> None:
            time.sleep(max(0.0, when - time.time()))
            self._record(self.ask(name, rtype))

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread

    def start(self, name: str, rtype: str, interval: float = INTERVAL) -> None:
        """Ask every ``interval`` seconds in a thread until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("the hidden cache's client is already running")
        self.question = (name, rtype)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(name, rtype, interval), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None

    def stop_when_switched(self, new_values: Collection[str], timeout: float = 20.0, settle: float = 1.0) -> float | None:
        """Keep asking until the cache has served only ``new_values`` for ``settle`` s (or
        ``timeout`` passed), then stop; the switch time. A verdict can end the watch before
        the cache switched, and the test must still learn when it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            switched = self.switched_at(new_values)
            if switched is not None and time.time() - switched >= settle:
                break
            time.sleep(0.1)
        self.stop()
        return self.switched_at(new_values)

    def _loop(self, name: str, rtype: str, interval: float) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._record(self.ask(name, rtype))
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _record(self, seen: Observation) -> None:
        with self._lock:
            self.observations.append(seen)

    def answers(self) -> list[Observation]:
        """The observations of the polled question that carried an answer, oldest first."""
        with self._lock:
            return [o for o in self.observations if o.answered and o.question == self.question]

    # ------------------------------------------------------------------ accessors

    def first_seen(self, values: Collection[str]) -> float | None:
        """Wall time of the first answer equal to ``values``."""
        wanted = frozenset(values)
        return next((o.wall for o in self.answers() if o.values == wanted), None)

    def last_seen(self, values: Collection[str]) -> float | None:
        """Wall time of the last answer equal to ``values`` (e.g. the old data)."""
        wanted = frozenset(values)
        return next((o.wall for o in reversed(self.answers()) if o.values == wanted), None)

    def switched_at(self, new_values: Collection[str]) -> float | None:
        """Wall time of the first answer after which every answer equals ``new_values``;
        None when the last answer is not the new data (it never switched for good)."""
        wanted = frozenset(new_values)
        switched = None
        for seen in self.answers():
            if seen.values != wanted:
                switched = None
            elif switched is None:
                switched = seen.wall
        return switched

    def served_old_for(self, old_values: Collection[str], since: float) -> float:
        """Seconds from ``since`` to the last old answer (0 when none came after it)."""
        last = self.last_seen(old_values)
        return max(0.0, last - since) if last is not None else 0.0

    def timeline(self, since: float | None = None) -> str:
        """A readable history for assertion messages: one line per change of answer or TTL."""
        lines, previous = [], object()
        base = since if since is not None else (self.observations[0].wall if self.observations else 0.0)
        with self._lock:
            seen = list(self.observations)
        for o in seen:
            current = (o.question, o.values, o.rcode, o.ttl)
            if current != previous:
                shown = sorted(o.values) if o.values is not None else o.rcode
                lines.append(f"  {o.wall - base:+7.2f}s {o.question[1]:5} {shown} ttl={o.ttl}")
                previous = current
        return "\n".join(lines)


@pytest.fixture
def hidden_cache() -> Iterator[Callable[..., HiddenCache]]:
    """Factory: ``hidden_cache(zone, upstream, stubs=None)`` starts a closed Unbound with a
    stub for ``zone`` (and ``stubs``) and returns its ``HiddenCache``; both stop after the test."""
    made: list[HiddenCache] = []

    def make(zone: str, upstream: Upstream, stubs: Mapping[str, Upstream] | None = None) -> HiddenCache:
        cache = HiddenCache(unbound.start(zone, upstream, stubs=stubs, closed=True))
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.stop()
        cache.server.stop()
        shutil.rmtree(cache.server.directory, ignore_errors=True)
