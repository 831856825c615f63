"""A real Unbound (Debian ``unbound``) on loopback: the caching resolver a watch round asks.

Each server runs ``unbound -d -c unbound.conf`` as a plain foreground process with its
config, pid file and log in one temporary directory; no chroot, no privilege drop, no
remote control, no DNSSEC validation (``module-config: iterator``), listening on
127.0.0.1 only on a free port. A ``stub-zone`` sends the test zone to an authoritative
server on loopback (``do-not-query-localhost: no`` lets it), so the cache behaves as it
would in front of a real zone: answers are held for their TTL, and ``cache_min_ttl``
reproduces a resolver that floors TTLs and keeps serving old data.

    def test_something(unbound_server, fakenet):
        auth = fakenet.add(authoritative=True, records={...})
        resolver = unbound_server(zone="example.com.", upstream=auth.port, cache_min_ttl=3600)

``upstream`` is a port on 127.0.0.1 or ``"ADDRESS@PORT"``; a stub for a *parent* zone
(``unbound_server("example.net.", f"127.0.0.1@{parent.port}")``) makes Unbound follow
the parent's referrals to the child's servers on port 53 at their glue addresses, as a
resolver on the Internet does. ``closed=True`` refuses every name outside the stub
zones, so the resolver can never send a query beyond loopback (to the root servers).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import dns.exception
import dns.message
import dns.query
import pytest

from tests.integration.servers import DaemonServer, free_port, need_binary, spawn, start_daemon, started_servers, wait_for_tcp


@dataclass
class UnboundServer(DaemonServer):
    """A running ``unbound`` and where to ask it."""

    port: int
    log_files = ("unbound.log",)
    stop_timeout = 5.0

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def answers(self) -> bool:
        """Ready means it answers over UDP, not just that the TCP socket is open."""
        try:
            wait_for_tcp(self.port, timeout=0.5)
            dns.query.udp(dns.message.make_query("localhost.", "A"), self.address, timeout=0.5, port=self.port)
        except (TimeoutError, dns.exception.Timeout, OSError):
            return False
        return True


Upstream = int | str  # a port on 127.0.0.1, or "ADDRESS@PORT"


def stub_address(upstream: Upstream) -> str:
    """``stub-addr`` syntax: ``5353`` -> ``127.0.0.1@5353``; ``"127.53.0.1@53"`` as is."""
    return f"127.0.0.1@{upstream}" if isinstance(upstream, int) or str(upstream).isdigit() else str(upstream)


def config(port: int, zone: str, upstream: Upstream, directory: Path, cache_min_ttl: int = 0, serve_expired: bool = False,
           *, stubs: Mapping[str, Upstream] | None = None, closed: bool = False) -> str:
    """The whole ``unbound.conf``: small, loopback-only, and explicit about every default that matters.

    ``stubs`` adds more zones and their servers. ``closed`` adds ``local-zone: "." refuse``
    with each stub zone ``transparent``: a name outside them is refused on the spot, never
    looked up at the root servers."""
    zones = {zone: upstream, **(stubs or {})}
    stub_blocks = "".join(
        f'\nstub-zone:\n    name: "{name}"\n    stub-addr: {stub_address(where)}\n    stub-prime: no\n'
        for name, where in zones.items()
    )
    local = ""
    if closed:
        local = '    local-zone: "." refuse\n' + "".join(f'    local-zone: "{name}" transparent\n' for name in zones)
    return f"""
server:
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 1
    num-threads: 1
    outgoing-range: 32
    outgoing-num-tcp: 4
    incoming-num-tcp: 16
    msg-cache-size: 1m
    rrset-cache-size: 2m
    module-config: "iterator"
    do-not-query-localhost: no
    qname-minimisation: no
    prefetch: no
    serve-expired: {"yes" if serve_expired else "no"}
    cache-min-ttl: {cache_min_ttl}
    cache-max-negative-ttl: 3600
    harden-referral-path: no
    target-fetch-policy: "0 0 0 0 0"
{local}
remote-control:
    control-enable: no
{stub_blocks}"""


def start(zone: str, upstream: Upstream, cache_min_ttl: int = 0, serve_expired: bool = False, *,
          stubs: Mapping[str, Upstream] | None = None, closed: bool = False) -> UnboundServer:
    binary = need_binary("unbound", "unbound")
    directory = Path(tempfile.mkdtemp(prefix="cutover-unbound-"))

    def launch() -> UnboundServer:
        port = free_port()
        (directory / "unbound.conf").write_text(
            config(port, zone, upstream, directory, cache_min_ttl, serve_expired, stubs=stubs, closed=closed))
        command = [binary, "-d", "-c", str(directory / "unbound.conf")]
        return UnboundServer(directory, port, process=spawn(command, directory, "unbound.log"))

    return start_daemon("unbound", launch, clash="bind")


@pytest.fixture
def unbound_server() -> Iterator[Callable[..., UnboundServer]]:
    """Start Unbound resolvers for one test: ``unbound_server(zone=..., upstream=PORT, cache_min_ttl=0)``
    (also ``serve_expired=``, ``stubs={zone: upstream}``, ``closed=True``)."""
    yield from started_servers(start)
