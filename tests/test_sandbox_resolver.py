"""``cutover.sandbox.resolver``: a cache in front of the authoritative server, with
each of its quirks; the timing tests use TTLs of one or two seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.rcode
import pytest

from cutover.sandbox import LOOPBACK, CachingResolver, ZoneStore
from tests.integration.servers import free_port
from tests.test_sandbox import ZONE, ask, last_ttl, make_store, rs, serving, values

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> ZoneStore:
    return make_store(tmp_path)


@pytest.fixture
def make_cache(store: ZoneStore) -> Iterator[Callable[..., CachingResolver]]:
    """Start caching resolvers (quirks as keyword arguments) in front of one server on ``store``."""
    made: list[CachingResolver] = []
    with serving(store) as server:

        def make(**quirks: Any) -> CachingResolver:
            quirks.setdefault("upstream_timeout", 0.3)
            cache = CachingResolver(server.endpoint, name=f"c{len(made)}", **quirks)
            made.append(cache)
            return cache

        yield make
        for cache in made:
            cache.stop()
            assert cache.last_error is None


def change_www(store: ZoneStore, ip: str = "203.0.113.10", ttl: int = 1) -> None:
    store.put(ZONE, rs("www", "A", ttl, ip))


class TestCachingResolver:
    def test_ttl_counts_down_and_expiry_brings_new_answer(self, make_cache, store) -> None:
        store.put(ZONE, rs("www", "A", 2, "192.0.2.10"))
        cache = make_cache()
        first = ask(cache.endpoint, "www")
        assert values(first) == ["192.0.2.10"] and last_ttl(first) == 2
        assert first.flags & dns.flags.RA and not first.flags & dns.flags.AA
        change_www(store, ttl=2)
        time.sleep(1.1)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 1
        time.sleep(1.0)
        fresh = ask(cache.endpoint, "www")
        assert values(fresh) == ["203.0.113.10"] and last_ttl(fresh) == 2

    def test_negative_answers_last_the_soa_minimum(self, make_cache, store) -> None:
        cache = make_cache()
        miss = ask(cache.endpoint, "later")
        assert miss.rcode() == dns.rcode.NXDOMAIN and miss.authority[0].ttl == 1
        store.put(ZONE, rs("later", "A", 60, "192.0.2.77"))
        assert ask(cache.endpoint, "later").rcode() == dns.rcode.NXDOMAIN  # still cached
        time.sleep(1.1)
        assert values(ask(cache.endpoint, "later")) == ["192.0.2.77"]

    def test_nodata_is_cached_too(self, make_cache, store) -> None:
        cache = make_cache()
        assert ask(cache.endpoint, "www", "AAAA").answer == []
        store.put(ZONE, rs("www", "AAAA", 60, "2001:db8::10"))
        again = ask(cache.endpoint, "www", "AAAA")
        assert again.answer == [] and again.rcode() == dns.rcode.NOERROR
        assert cache.remaining(f"www.{ZONE}", "AAAA") is not None

    def test_ttl_floor_holds_short_ttls_longer(self, make_cache, store) -> None:
        cache = make_cache(ttl_floor=3)
        assert last_ttl(ask(cache.endpoint, "www")) == 3
        change_www(store)
        time.sleep(1.2)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 2

    def test_serve_stale_only_when_upstream_fails(self, make_cache, store) -> None:
        store.put(ZONE, rs("mail", "A", 1, "192.0.2.25"))
        stale, plain = make_cache(serve_stale=True), make_cache()
        for cache in (stale, plain):
            ask(cache.endpoint, "www")
            ask(cache.endpoint, "mail")
        change_www(store)
        store.put(ZONE, rs("mail", "A", 1, "203.0.113.25"))
        time.sleep(1.1)
        # upstream answers: an RFC 8767 cache behaves like any other
        assert values(ask(stale.endpoint, "www")) == ["203.0.113.10"]
        # upstream gone: the expired answer is served with a 30 s TTL instead of SERVFAIL
        stale.upstream = plain.upstream = ("127.0.0.1", free_port())
        served = ask(stale.endpoint, "mail")
        assert values(served) == ["192.0.2.25"] and last_ttl(served) == 30
        assert ask(plain.endpoint, "mail").rcode() == dns.rcode.SERVFAIL

    def test_stale_for_keeps_serving_the_expired_answer(self, make_cache, store) -> None:
        cache = make_cache(stale_for=1.0)
        ask(cache.endpoint, "www")
        change_www(store)
        time.sleep(1.2)
        held = ask(cache.endpoint, "www")
        assert values(held) == ["192.0.2.10"] and last_ttl(held) == 0
        time.sleep(1.0)
        assert values(ask(cache.endpoint, "www")) == ["203.0.113.10"]

    @pytest.mark.parametrize("mode, rcode", [("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)])
    def test_fail_modes_answer_with_an_error(self, make_cache, mode, rcode) -> None:
        r = ask(make_cache(fail=mode).endpoint, "www")
        assert r.rcode() == rcode and r.answer == []

    def test_fail_drop_never_answers_and_can_be_switched_off(self, make_cache) -> None:
        cache = make_cache(fail="drop")
        with pytest.raises(dns.exception.Timeout):
            ask(cache.endpoint, "www", timeout=0.3)
        cache.fail = None
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]

    def test_unknown_fail_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="servfail, drop, refused"):
            CachingResolver((LOOPBACK, free_port()), fail="sometimes")

    def test_delay_slows_every_reply(self, make_cache) -> None:
        cache = make_cache(delay=0.2)
        start = time.monotonic()
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]
        assert time.monotonic() - start >= 0.2

    def test_preload_flush_and_warm(self, make_cache, store) -> None:
        cache = make_cache(preload=[rs("www", "A", 30, "198.51.100.1")])
        held = ask(cache.endpoint, "www")
        assert values(held) == ["198.51.100.1"] and last_ttl(held) == 30
        cache.flush()
        assert values(ask(cache.endpoint, "www")) == ["192.0.2.10"]
        change_www(store)
        cache.flush()
        warmed = cache.warm(f"www.{ZONE}", "A")
        assert values(warmed) == ["203.0.113.10"] and 0 < cache.remaining(f"www.{ZONE}") <= 1

    def test_upstream_refusal_is_passed_on_uncached(self, make_cache) -> None:
        cache = make_cache()
        assert ask(cache.endpoint, "www.example.com.").rcode() == dns.rcode.REFUSED
        assert cache.remaining("www.example.com.") is None

    def test_tcp_queries(self, make_cache) -> None:
        assert values(ask(make_cache().endpoint, "alias", tcp=True)) == ["192.0.2.10", "www.sbx.test."]
