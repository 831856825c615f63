"""What the probe clients' tests share (``test_atlas.py``, ``test_globalping.py``): a zone
whose www moved from OLD to NEW behind two real caches, one of which kept the old answer,
and a client whose pauses are recorded."""

from __future__ import annotations

import time
from typing import Any, Callable

import dns.message
import dns.query
import dns.update

from cutover.observe.types import Target
from tests.integration.servers.bind import BindServer, BindZone
from tests.integration.servers.unbound import UnboundServer

ZONE = "acme.example.com."  # under example.com: Unbound refuses test. by default
OLD, NEW = "198.51.100.10", "203.0.113.10"
WWW = Target(("www." + ZONE, "A"), (NEW,), (OLD,), 300)


def two_caches(bind_server: Callable[..., BindServer],
               unbound_server: Callable[..., UnboundServer]) -> tuple[BindServer, UnboundServer, UnboundServer]:
    """BIND serving www with the old address; Tokyo's Unbound caches it, then the zone
    changes, so Berlin's Unbound (asked only now) sees the new one: (BIND, Tokyo, Berlin)."""
    bind = bind_server(BindZone(ZONE, records=(f"www 300 IN A {OLD}",)))
    tokyo, berlin = unbound_server(ZONE, bind.port), unbound_server(ZONE, bind.port)
    dns.query.udp(dns.message.make_query(WWW.name, "A"), "127.0.0.1", port=tokyo.port, timeout=3)  # caches OLD
    update = dns.update.Update(ZONE, keyring=bind.keyring())
    update.replace("www", 300, "A", NEW)
    dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=3)
    return bind, tokyo, berlin


def record_pauses(client: Any) -> list[float]:
    """The client's pauses stay real, and each is added to the list returned."""
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    client.sleep = sleep
    return pauses
