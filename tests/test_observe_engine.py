"""cutover.observe.engine: the edges of a query round that need no server at all.

Rounds against real and scripted servers are in tests/integration/test_watch.py and
tests/integration/test_engine_rounds.py; the fast reply reader against dnspython in
tests/test_observe_fastpath.py and tests/integration/test_engine_fastpath.py.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from cutover.observe import engine
from cutover.observe.engine import _Grid, query_pairs, query_round, run_round
from cutover.observe.flight import MAX_SOCKETS, MIN_SOCKETS, Flight
from cutover.observe.types import Target
from cutover.resolvers import Resolver

UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
PLAIN = Resolver("192.0.2.1", name="plain", group="public")


def test_query_round_edges():
    assert asyncio.run(query_round([], [PLAIN], timeout=1.0)) == []
    assert asyncio.run(query_round([UPDATE], [], timeout=1.0)) == []
    with pytest.raises(ValueError):
        asyncio.run(query_round([UPDATE], [PLAIN], timeout=0))


def test_the_synchronous_entry_points_have_the_same_edges():
    assert query_pairs([], timeout=1.0) == []
    assert run_round([], [PLAIN], timeout=1.0) == []
    assert run_round([UPDATE], [], timeout=1.0) == []
    with pytest.raises(ValueError):
        query_pairs([(UPDATE, PLAIN)], timeout=0)
    with pytest.raises(ValueError):
        run_round([UPDATE], [PLAIN], timeout=-1)


def test_a_grid_is_asked_target_by_target_and_answered_resolver_by_resolver():
    targets = [Target((f"t{i}.example.", "A"), (), (), 60) for i in range(3)]
    resolvers = [Resolver(f"192.0.2.{i}") for i in range(1, 3)]
    grid = _Grid(targets, resolvers)
    assert len(grid) == 6
    assert [grid[i] for i in range(6)] == [(t, r) for r in resolvers for t in targets]
    assert list(grid.order()) == [0, 3, 1, 4, 2, 5]


def unreachable(group: str = "public") -> Resolver:
    """Loopback, a port nothing listens on: the query is sent and nothing answers."""
    return Resolver("127.0.0.1", 9, name="discard", group=group)


def test_pairs_that_cannot_be_asked_are_answered_with_the_reason_and_the_round_goes_on():
    bad_name = Target(("a..b.example.", "A"), (), (), 60)  # an empty label: dnspython refuses it
    bad_address = Resolver("not-an-address", name="typo")
    answers = query_pairs([(bad_name, unreachable()), (UPDATE, bad_address), (UPDATE, unreachable())],
                          timeout=0.2, retries=0)
    assert [a.state for a in answers] == ["error", "error", "timeout"]
    assert answers[0].detail.startswith("unexpected failure: EmptyLabel")
    assert "unexpected failure" in answers[1].detail and answers[1].resolver == bad_address
    assert answers[2].detail == "no answer after 1 try of 0.2s"


def test_answers_come_back_in_the_pairs_order_with_each_pairs_own_objects():
    other = Target(("other.example.com.", "A"), ("192.0.2.7",), (), 60)
    a, b = unreachable(), unreachable("authoritative")
    pairs = [(UPDATE, a), (other, b), (UPDATE, a), (other, a)]
    answers = query_pairs(pairs, timeout=0.1, retries=0)
    assert [(x.key, x.resolver) for x in answers] == [(t.key, r) for t, r in pairs]
    assert all(x.resolver is r for x, (_, r) in zip(answers, pairs))


@pytest.mark.parametrize("enabled", [True, False])
def test_a_synchronous_round_pauses_the_collector_and_restores_it_as_it_was(enabled, monkeypatch):
    seen = []
    real = engine._fly

    def fly(*args, **kw):
        seen.append(gc.isenabled())
        return real(*args, **kw)

    monkeypatch.setattr(engine, "_fly", fly)
    (gc.enable if enabled else gc.disable)()
    try:
        query_pairs([(UPDATE, unreachable())], timeout=0.05, retries=0)
        assert seen == [False] and gc.isenabled() is enabled
    finally:
        gc.enable()


@pytest.mark.parametrize("window, sockets", [(1, 1), (3, 3), (128, MIN_SOCKETS), (1024, 8), (100_000, MAX_SOCKETS)])
def test_a_round_opens_a_few_sockets_never_more_than_it_has_queries_in_flight(window, sockets):
    resolvers = [Resolver(f"127.0.0.{i}", 9) for i in range(1, 65)]  # room for the window: 64 x 128
    flight = Flight([], iter(()), resolvers, timeout=1.0, retries=0, deadline=1e18, window=window, now=0.0)
    try:
        assert len(flight.by_fd) == sockets
    finally:
        flight.close()


def test_the_window_is_bounded_by_what_the_servers_may_have_in_flight():
    flight = Flight([], iter(()), [unreachable()], timeout=1.0, retries=0, deadline=1e18, window=1024, now=0.0,
                    per_server=10)
    try:
        assert flight.window == 10
    finally:
        flight.close()
