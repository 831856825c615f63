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
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import dns.exception
import dns.message
import dns.query
import pytest

from tests.integration.servers import free_port, need_binary, stop_process, wait_for_tcp

READY_TIMEOUT = 20.0


@dataclass
class UnboundServer:
    """A running ``unbound`` and where to ask it."""

    directory: Path
    port: int
    address: str = "127.0.0.1"
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def log(self) -> str:
        path = self.directory / "unbound.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


def config(port: int, zone: str, upstream: int, directory: Path, cache_min_ttl: int = 0, serve_expired: bool = False) -> str:
    """The whole ``unbound.conf``: small, loopback-only, and explicit about every default that matters."""
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

remote-control:
    control-enable: no

stub-zone:
    name: "{zone}"
    stub-addr: 127.0.0.1@{upstream}
    stub-prime: no
"""


def start(zone: str, upstream: int, cache_min_ttl: int = 0, serve_expired: bool = False) -> UnboundServer:
    binary = need_binary("unbound", "unbound")
    directory = Path(tempfile.mkdtemp(prefix="cutover-unbound-"))
    output = ""
    for _ in range(3):
        port = free_port()
        (directory / "unbound.conf").write_text(config(port, zone, upstream, directory, cache_min_ttl, serve_expired))
        server = UnboundServer(directory, port)
        with open(directory / "unbound.log", "wb") as log:
            server.process = subprocess.Popen(
                [binary, "-d", "-c", str(directory / "unbound.conf")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        try:
            _wait_ready(server)
            return server
        except TimeoutError:
            server.stop()
            output = server.log()
            if "bind" not in output.lower():  # not a port clash: no point retrying
                shutil.rmtree(directory, ignore_errors=True)
                raise RuntimeError(f"unbound did not start:\n{output}") from None
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"unbound did not start after 3 ports:\n{output}")


def _wait_ready(server: UnboundServer) -> None:
    """Ready means it answers over UDP, not just that the TCP socket is open."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise TimeoutError("unbound exited")
        try:
            wait_for_tcp(server.port, timeout=0.5)
            query = dns.message.make_query("localhost.", "A")
            dns.query.udp(query, server.address, timeout=0.5, port=server.port)
            return
        except (TimeoutError, dns.exception.Timeout, OSError):
            time.sleep(0.05)
    raise TimeoutError(f"unbound on port {server.port} not ready after {READY_TIMEOUT}s")


@pytest.fixture
def unbound_server() -> Iterator[Callable[..., UnboundServer]]:
    """Start Unbound resolvers for one test: ``unbound_server(zone=..., upstream=PORT, cache_min_ttl=0)``."""
    started: list[UnboundServer] = []

    def make(zone: str, upstream: int, cache_min_ttl: int = 0, serve_expired: bool = False) -> UnboundServer:
        server = start(zone, upstream, cache_min_ttl, serve_expired)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)
