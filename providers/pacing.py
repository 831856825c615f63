"""Pacing API requests to a documented rate, before the API has to refuse them.

An API that limits requests per account (Route 53 does) counts every request of
that account, whichever thread, zone or provider instance sent it. A fleet plan makes
one provider per zone and reads with several threads at once, so a limit kept per
instance would be exceeded as soon as two instances run; the API then refuses
requests and the client backs off, which costs more time than waiting in the first
place. ``shared`` therefore hands every instance of one account and endpoint the same
``TokenBucket``, and each request takes a token from it first.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Hashable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take`` waits for one.

    Thread-safe. A taker reserves its token under the lock (the bucket may go into
    debt) and sleeps outside it, so takers are served in the order they came and
    none holds the lock while waiting. ``rate`` 0 means no pacing: ``take`` never
    waits. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.rate = self.burst = self._tokens = 0.0
        self._stamp = clock()
        self.configure(rate, burst)

    def configure(self, rate: float, burst: float = 1.0) -> None:
        """Change the rate and burst; tokens already saved are kept up to the new burst."""
        if not (math.isfinite(rate) and rate >= 0 and math.isfinite(burst) and burst >= 1):
            raise ValueError(f"rate {rate!r} must be a finite number >= 0 and burst {burst!r} >= 1")
        with self._lock:
            self._refill()
            if self.rate == 0:  # a bucket that was not pacing starts full
                self._tokens = burst
            self.rate, self.burst = float(rate), float(burst)
            self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> float:
        """Take one token, waiting until it is there; returns the seconds waited."""
        with self._lock:
            if self.rate == 0:
                return 0.0
            self._refill()
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


_registry: dict[Hashable, TokenBucket] = {}
_registry_lock = threading.Lock()


def shared(key: Hashable, rate: float, burst: float = 1.0) -> TokenBucket:
    """The process-wide bucket for ``key`` (e.g. an endpoint and an account).

    Every caller with the same key gets the same bucket, so all of them together keep
    to one budget. A caller asking for another rate or burst reconfigures it: the
    latest setting holds for everyone sharing the key.
    """
    with _registry_lock:
        bucket = _registry.get(key)
        if bucket is None:
            bucket = _registry[key] = TokenBucket(rate, burst)
        elif (bucket.rate, bucket.burst) != (rate, burst):
            bucket.configure(rate, burst)
        return bucket
