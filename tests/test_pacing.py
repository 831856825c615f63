"""The token bucket that paces API requests, on a fake clock (and once on the real one)."""

from __future__ import annotations

import threading
import time

import pytest

from providers import pacing
from providers.pacing import TokenBucket


class FakeTime:
    """A clock that moves only when someone sleeps (or ``frozen``: never), recording each sleep."""

    def __init__(self, frozen: bool = False) -> None:
        self.now = 1000.0
        self.frozen = frozen
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            if not self.frozen:
                self.now += seconds


def bucket(rate: float, burst: float, t: FakeTime) -> TokenBucket:
    return TokenBucket(rate, burst, clock=t.clock, sleep=t.sleep)


def test_a_full_bucket_lets_the_burst_through_then_paces() -> None:
    t = FakeTime()
    b = bucket(2, 3, t)
    assert [b.take() for _ in range(3)] == [0, 0, 0]
    assert b.take() == pytest.approx(0.5)
    assert b.take() == pytest.approx(0.5)
    assert t.slept == pytest.approx([0.5, 0.5])


def test_the_rate_is_kept_over_many_requests() -> None:
    t = FakeTime()
    b = bucket(5, 1, t)
    start = t.now
    for _ in range(51):
        b.take()
    assert t.now - start == pytest.approx(50 / 5)  # the first is free, then one every 0.2 s
    assert max(t.slept) == pytest.approx(0.2)


def test_time_spent_elsewhere_counts_but_saves_up_at_most_the_burst() -> None:
    t = FakeTime()
    b = bucket(10, 4, t)
    for _ in range(4):
        b.take()
    t.now += 0.25  # 2.5 tokens came back while the caller was busy
    assert [b.take() for _ in range(2)] == [0, 0]
    assert b.take() == pytest.approx(0.05)
    t.now += 3600  # an hour idle: still only the burst
    assert [b.take() for _ in range(4)] == [0, 0, 0, 0]
    assert b.take() == pytest.approx(0.1)


def test_rate_zero_never_waits() -> None:
    t = FakeTime()
    b = bucket(0, 1, t)
    assert all(b.take() == 0 for _ in range(10_000))
    assert t.slept == [] and t.now == 1000.0


def test_reconfiguring_keeps_saved_tokens_up_to_the_new_burst() -> None:
    t = FakeTime()
    b = bucket(0, 1, t)
    b.configure(4, 2)  # from no pacing: starts full
    assert [b.take(), b.take()] == [0, 0]
    assert b.take() == pytest.approx(0.25)
    b.configure(0, 1)
    assert b.take() == 0


@pytest.mark.parametrize("rate, burst", [(-1, 1), (float("nan"), 1), (float("inf"), 1), (1, 0.5)])
def test_nonsense_rates_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_threads_each_reserve_their_own_token() -> None:
    """With the clock frozen, the k-th token taken waits (k - burst) / rate whichever thread
    takes it: no token is handed out twice and none is lost."""
    t = FakeTime(frozen=True)
    b = bucket(10, 5, t)
    threads = [threading.Thread(target=lambda: [b.take() for _ in range(25)]) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(t.slept) == pytest.approx([(k - 5) / 10 for k in range(6, 8 * 25 + 1)])


def test_shared_gives_one_bucket_per_key() -> None:
    key, other = ("https://route53.example", "account a"), ("https://route53.example", "account b")
    first = pacing.shared(key, 5, 5)
    assert pacing.shared(key, 5, 5) is first
    assert pacing.shared(other, 5, 5) is not first
    assert pacing.shared(key, 10, 10) is first and (first.rate, first.burst) == (10, 10)  # the latest setting holds


def test_threads_sharing_a_key_share_one_budget() -> None:
    """On the real clock: 4 threads, each with "its own" bucket for one key, 40 requests at
    100 a second with a burst of 1 take at least 0.39 s together, not a quarter of it."""
    key = ("pacing-test", object())
    got: list[TokenBucket] = []

    def work() -> None:
        b = pacing.shared(key, 100, 1)
        got.append(b)
        for _ in range(10):
            b.take()

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert time.monotonic() - started >= 0.39
    assert all(b is got[0] for b in got)
