"""The sandbox's caching resolver: a recursive resolver's cache with the quirks of real ones.

What ``cutover watch`` reports is how far a change has spread through caches, and what
makes a cutover dangerous is the caches that do not behave: the ones that keep a short
TTL longer (a TTL floor), serve an expired answer when the upstream fails (RFC 8767
serve-stale), keep serving it regardless (stale), answer slowly, or not at all. Each
of those is a setting here, so the demo and the tests can show every case on loopback.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from cutover.records import RecordSet, parse_rdata
from cutover.sandbox.listener import LOOPBACK, Listener
from cutover.sandbox.messages import error_reply

IN = dns.rdataclass.IN

#: What ``fail`` may be: answer SERVFAIL, answer nothing, answer REFUSED.
FAIL_MODES = ("servfail", "drop", "refused")
#: TTL of an answer served stale after the upstream failed (RFC 8767 section 4 suggests 30 s).
STALE_ANSWER_TTL = 30
#: How long an expired entry may still be served stale (RFC 8767 suggests 1 to 3 days).
STALE_MAX_AGE = 86400.0

#: A cache key: (name, type, class) of the question.
CacheKey = tuple[dns.name.Name, int, int]


@dataclass
class _Entry:
    """One cached answer: what the upstream said, when, and for how long it may be kept."""

    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    ttl: float
    stored: float

    def age(self, now: float) -> float:
        return now - self.stored

    def remaining(self, now: float) -> float:
        return self.ttl - self.age(now)


def _key(name: str, rdtype: str) -> CacheKey:
    return (dns.name.from_text(name), dns.rdatatype.from_text(rdtype), IN)


def _copy_with_ttl(rrsets: list[dns.rrset.RRset], ttl: int) -> list[dns.rrset.RRset]:
    copies = []
    for rrset in rrsets:
        clone = copy.copy(rrset)
        clone.ttl = ttl
        copies.append(clone)
    return copies


class CachingResolver(Listener):
    """A recursive resolver's cache in front of one authoritative server.

    It forwards what it does not hold, keeps positive answers for their smallest TTL
    and negative ones for the SOA's negative TTL (RFC 2308), and counts the TTL down
    in its replies like a real cache. The quirks model caches seen in the wild:

    - ``ttl_floor``: positive answers are kept (and shown) at least this long, like
      Unbound's ``cache-min-ttl``; such a cache holds the old answer past its TTL.
    - ``serve_stale``: RFC 8767; once an entry has expired and the upstream cannot be
      reached or answers SERVFAIL, the expired answer is served with TTL 30.
    - ``stale_for``: a misbehaving cache that keeps serving an expired answer (TTL 0)
      for this many more seconds without asking the upstream.
    - ``delay``: seconds to wait before each reply (a slow or far resolver).
    - ``fail``: ``"servfail"``, ``"refused"`` or ``"drop"`` (no reply) for every query.

    Replies show the whole seconds left, rounded up, as real caches do; RA is set, AA never.
    ``delay``, ``fail`` and ``upstream`` may be changed while the resolver runs.
    ``preload`` puts record sets in the cache as if just fetched, their TTL counting
    from now: a cache that already held the old answer before the sandbox started.
    """

    kind = "resolver"
    recursion_available = True

    def __init__(
        self,
        upstream: tuple[str, int],
        address: str = LOOPBACK,
        port: int = 0,
        *,
        name: str = "",
        ttl_floor: int = 0,
        serve_stale: bool = False,
        stale_for: float = 0.0,
        delay: float = 0.0,
        fail: str | None = None,
        preload: Iterable[RecordSet] = (),
        upstream_timeout: float = 1.0,
    ) -> None:
        if fail is not None and fail not in FAIL_MODES:
            raise ValueError(f"fail={fail!r} is not one of {', '.join(FAIL_MODES)}")
        if ttl_floor < 0 or stale_for < 0 or delay < 0:
            raise ValueError("ttl_floor, stale_for and delay cannot be negative")
        self.upstream = upstream
        self.name = name
        self.ttl_floor = int(ttl_floor)
        self.serve_stale = serve_stale
        self.stale_for = float(stale_for)
        self.delay = float(delay)
        self.fail = fail
        self.upstream_timeout = upstream_timeout
        self._cache: dict[CacheKey, _Entry] = {}
        self._cache_lock = threading.Lock()
        for rs in preload:
            self._preload(rs)
        super().__init__(address, port)

    def __repr__(self) -> str:
        return f"CachingResolver({self.name or '?'} at {self.address}:{self.port}, quirk={self.quirk})"

    @property
    def quirk(self) -> str:
        """A short human description of how this cache misbehaves ("normal" when it does not)."""
        parts = []
        if self.fail:
            parts.append("drops queries" if self.fail == "drop" else f"answers {self.fail.upper()}")
        if self.ttl_floor:
            parts.append(f"cache-min-ttl {self.ttl_floor}s")
        if self.serve_stale:
            parts.append("serve-stale")
        if self.stale_for:
            parts.append(f"stale for {self.stale_for:g}s")
        if self.delay:
            parts.append(f"slow {self.delay * 1000:.0f} ms")
        return ", ".join(parts) or "normal"

    # ---- helpers for demos and tests

    def flush(self) -> None:
        """Forget everything cached."""
        with self._cache_lock:
            self._cache.clear()

    def warm(self, name: str, rdtype: str = "A") -> dns.message.Message:
        """Look ``name`` up through this cache (filling it) and return the reply a client
        would get; ignores ``delay`` and ``fail``, which are about clients."""
        query = dns.message.make_query(name, rdtype)
        return self.resolve(query)

    def remaining(self, name: str, rdtype: str = "A") -> float | None:
        """Seconds until the cached answer for (name, type) expires (negative once it has),
        or None when nothing is cached."""
        with self._cache_lock:
            entry = self._cache.get(_key(name, rdtype))
        return None if entry is None else entry.remaining(time.monotonic())

    # ---- serving

    def respond(self, wire: bytes, tcp: bool) -> list[bytes]:
        """Wait out ``delay`` and stay silent for ``fail="drop"`` before anything else,
        as a slow or unreachable resolver does whatever the query holds."""
        if self.delay:
            time.sleep(self.delay)
        if self.fail == "drop":
            return []
        return super().respond(wire, tcp)

    def answer(self, query: dns.message.Message, tcp: bool = False) -> list[dns.message.Message]:
        """The ``fail`` error when one is set, else the reply from cache or upstream."""
        if self.fail is not None:
            rcode = dns.rcode.SERVFAIL if self.fail == "servfail" else dns.rcode.REFUSED
            return [error_reply(query, rcode, ra=True)]
        return [self.resolve(query)]

    def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The reply to one question: from the cache while fresh, else from upstream."""
        question = query.question[0]
        key = (question.name, question.rdtype, question.rdclass)
        now = time.monotonic()
        with self._cache_lock:
            entry = self._cache.get(key)
        if entry is not None:
            left = entry.remaining(now)
            if left > 0:
                return self._from_cache(query, entry, math.ceil(left))
            if self.stale_for and -left < self.stale_for:
                return self._from_cache(query, entry, 0)
        upstream = self._ask_upstream(question)
        if upstream is None or upstream.rcode() == dns.rcode.SERVFAIL:
            if self.serve_stale and entry is not None and -entry.remaining(now) < STALE_MAX_AGE:
                return self._from_cache(query, entry, STALE_ANSWER_TTL)
            return error_reply(query, dns.rcode.SERVFAIL, ra=True)
        fresh = self._store(key, upstream)
        if fresh is None:  # not cacheable (REFUSED, a referral): pass it on as it came
            response = error_reply(query, upstream.rcode(), ra=True)
            response.answer = list(upstream.answer)
            return response
        return self._from_cache(query, fresh, math.ceil(fresh.ttl))

    def _ask_upstream(self, question: dns.rrset.RRset) -> dns.message.Message | None:
        query = dns.message.make_query(question.name, question.rdtype, question.rdclass, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        host, port = self.upstream
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=self.upstream_timeout, port=port)
        except (dns.exception.DNSException, OSError, EOFError, ValueError):
            return None
        return response

    def _store(self, key: CacheKey, response: dns.message.Message) -> _Entry | None:
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        answer = list(response.answer)
        if rcode == dns.rcode.NOERROR and answer:
            return self._keep(key, rcode, answer, [], max(min(r.ttl for r in answer), self.ttl_floor))
        soas = [r for r in response.authority if r.rdtype == dns.rdatatype.SOA]
        if not soas:
            return None
        soa = soas[0]
        return self._keep(key, rcode, answer, [soa], min(soa.ttl, soa[0].minimum))

    def _preload(self, rs: RecordSet) -> None:
        name = dns.name.from_text(rs.name)
        rrset = dns.rrset.from_rdata_list(name, rs.ttl, [parse_rdata(rs.type, v) for v in rs.values])
        self._keep(_key(rs.name, rs.type), dns.rcode.NOERROR, [rrset], [], max(rs.ttl, self.ttl_floor))

    def _keep(
        self, key: CacheKey, rcode: dns.rcode.Rcode, answer: list[dns.rrset.RRset],
        authority: list[dns.rrset.RRset], ttl: int,
    ) -> _Entry:
        """Cache an answer for ``ttl`` seconds from now (the floor is the caller's to apply:
        it is for positive answers only)."""
        entry = _Entry(rcode, answer, authority, float(ttl), time.monotonic())
        with self._cache_lock:
            self._cache[key] = entry
        return entry

    def _from_cache(self, query: dns.message.Message, entry: _Entry, ttl: int) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True)
        response.set_rcode(entry.rcode)
        response.answer = _copy_with_ttl(entry.answer, ttl)
        response.authority = _copy_with_ttl(entry.authority, ttl)
        return response
