"""cutover.observe.engine: the edges of a query round that need no server at all.

Rounds against real and scripted servers are in tests/integration/test_watch.py.
"""

from __future__ import annotations

import asyncio

import pytest

from cutover.observe.engine import query_round
from cutover.observe.types import Target
from cutover.resolvers import Resolver

UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
PLAIN = Resolver("192.0.2.1", name="plain", group="public")


def test_query_round_edges():
    assert asyncio.run(query_round([], [PLAIN], timeout=1.0)) == []
    assert asyncio.run(query_round([UPDATE], [], timeout=1.0)) == []
    with pytest.raises(ValueError):
        asyncio.run(query_round([UPDATE], [PLAIN], timeout=0))
