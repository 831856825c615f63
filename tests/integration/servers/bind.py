"""A real BIND 9 (Debian ``bind9``) on loopback, for the RFC 2136 provider's tests.

Each server runs ``named -g`` as a plain foreground process with every file it
writes (config, zone files, ``.jnl`` journals, pid, session key) inside one
temporary directory, listens on 127.0.0.1 only on a free port (UDP and TCP), has no
control channel (``controls { };``, so nothing binds port 953) and does no recursion.

One server per test: ``named`` is ready in well under a second here, and a fresh
server per test means no test can see another's zone, even after a failure.

    def test_something(bind_server):
        server = bind_server(BindZone("t.test.", transfer=False))
        provider = RFC2136Provider("t.test.", server.settings())

Two more shapes for the retire-verdict lab:

* a primary and a *lagging* secondary (``start_primary_and_secondary``): the primary
  sends no NOTIFY and the SOA refresh is an hour, so the secondary keeps the old zone
  until the test calls ``notify(secondary)``; transfers are signed with the shared key;
* a server on port 53 of its own loopback address (``bind_server(zone,
  address=port53_addresses(1)[0], port=53)``), because a resolver that follows a referral
  asks the glue address on port 53 and nothing else.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import pytest

from tests.integration.servers import ZoneNames, free_port, need_binary, stop_process

KEY_ALGORITHM = "hmac-sha256"
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class BindZone(ZoneNames):
    """One zone and what the test key may do with it: a primary (the default), or a
    secondary of ``primary`` (address, port) that starts empty and transfers the zone."""

    name: str
    transfer: bool = True  # allow-transfer { key K; } (else: none)
    update: bool = True  # allow-update { key K; } (else: none); ignored for a secondary
    records: tuple[str, ...] = ()  # extra zone-file lines, relative to the zone
    primary: tuple[str, int] | None = None  # set: a secondary zone transferring from there
    refresh: int = 60  # SOA refresh; a lab secondary is meant to lag, so it gets an hour
    default_ns: bool = True  # "@ NS ns1" + "ns1 A 127.0.0.1"; off when records bring the apex NS


    @property
    def secondary(self) -> bool:
        return self.primary is not None


@dataclass
class BindServer:
    """A running ``named`` and what a test needs to talk to it."""

    directory: Path
    port: int
    key_name: str
    key_secret: str
    zones: tuple[BindZone, ...]
    address: str = "127.0.0.1"
    key_algorithm: str = KEY_ALGORITHM
    process: subprocess.Popen | None = field(default=None, repr=False)
    alias: bool = False  # we added ``address`` to lo for this server, and take it away at stop

    def settings(self, **overrides: object) -> dict:
        """Provider settings for the ``rfc2136`` provider pointing at this server."""
        base = {
            "server": self.address,
            "port": self.port,
            "tsig_name": self.key_name,
            "tsig_secret": self.key_secret,
            "tsig_algorithm": self.key_algorithm,
            "timeout": 2,
        }
        base.update(overrides)
        return base

    @property
    def endpoint(self) -> str:
        """``address:port`` as a plan's ``verify.nameservers`` and ``watch.resolvers`` take it."""
        return f"{self.address}:{self.port}"

    def keyring(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.key_name, self.key_secret, self.key_algorithm)

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """Ask the server directly (not through the provider under test)."""
        q = dns.message.make_query(name, rdtype)
        q.flags &= ~dns.flags.RD
        return dns.query.tcp(q, self.address, port=self.port, timeout=3)

    def values(self, name: str, rdtype: str) -> set[str]:
        """The server's current values for one RRset, as text (empty when absent)."""
        response = self.query(name, rdtype)
        found = response.get_rrset(
            response.answer, dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(rdtype)
        )
        return {rd.to_text() for rd in found} if found else set()

    def journal(self, zone: str) -> Path:
        return self.directory / (BindZone(zone).file_name + ".jnl")

    def log(self) -> str:
        """named's own log (with -g it goes to stderr, which we keep in a file)."""
        path = self.directory / "named.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        if self.alias:
            drop_loopback_alias(self.address)
            self.alias = False


def zone_file(zone: BindZone) -> str:
    """A minimal zone: SOA with a short negative TTL, NS ns1.<zone> and its glue.

    The expire (600 s) stays above any lab test's length, so a lagging secondary keeps
    answering with its old data instead of going SERVFAIL."""
    lines = [
        f"$ORIGIN {zone.origin}",
        "$TTL 300",
        f"@ IN SOA ns1 hostmaster 1 {zone.refresh} 30 600 5",
        *(("@ IN NS ns1", "ns1 IN A 127.0.0.1") if zone.default_ns else ()),
        *zone.records,
    ]
    return "\n".join(lines) + "\n"


def zone_block(zone: BindZone, key_name: str) -> str:
    """One ``zone`` statement. A secondary accepts NOTIFY from any loopback address (the
    test sends it with dnspython) and transfers with the shared key from its primary."""

    def acl(allowed: bool) -> str:
        return f'key "{key_name}";' if allowed else "none;"

    if zone.primary is not None:
        address, port = zone.primary
        return (
            f'zone "{zone.origin}" {{\n'
            f"    type secondary;\n"
            f'    file "{zone.file_name}";\n'
            f'    primaries {{ {address} port {port} key "{key_name}"; }};\n'
            f"    allow-notify {{ 127.0.0.0/8; }};\n"
            f"    allow-transfer {{ {acl(zone.transfer)} }};\n"
            f"}};\n"
        )
    return (
        f'zone "{zone.origin}" {{\n'
        f"    type primary;\n"
        f'    file "{zone.file_name}";\n'
        f"    allow-update {{ {acl(zone.update)} }};\n"
        f"    allow-transfer {{ {acl(zone.transfer)} }};\n"
        f"}};\n"
    )


def named_conf(directory: Path, port: int, key_name: str, secret: str, zones: tuple[BindZone, ...],
               address: str = "127.0.0.1") -> str:
    """``notify no``: no server here tells another about a change, so a secondary lags
    until the test sends the NOTIFY itself (``notify``)."""
    zone_blocks = "".join(zone_block(z, key_name) for z in zones)
    return f"""\
key "{key_name}" {{
    algorithm {KEY_ALGORITHM};
    secret "{secret}";
}};
controls {{ }};
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
    max-journal-size 1M;
}};
{zone_blocks}"""


def apparmor_confines(binary: str) -> bool:
    """True when an enforcing AppArmor profile covers ``binary`` (Ubuntu hosts).

    Debian's profile for named allows only /etc/bind, /var/lib/bind and /var/cache/bind,
    so a private config in a temp dir cannot be read. Containers and Debian CI images
    usually have no AppArmor at all."""
    profiles = Path("/sys/kernel/security/apparmor/profiles")
    try:
        text = profiles.read_text()
    except OSError:
        return False
    names = {binary, os.path.basename(binary), os.path.realpath(binary)}
    return any(line.rsplit(" (", 1)[0] in names and "(enforce)" in line for line in text.splitlines())


def start_bind(zones: tuple[BindZone, ...], directory: Path, *, address: str = "127.0.0.1",
               port: int | None = None, key_secret: str | None = None) -> BindServer:
    """Start ``named`` for ``zones`` on ``address``: a free port (tried up to three times),
    or exactly ``port`` (e.g. 53, for delegation tests; one try). ``key_secret`` shares
    the TSIG key with another server, as a primary and its secondary must."""
    if not zones:
        raise ValueError("start_bind needs at least one zone")
    named = need_binary("named", "bind9")
    if apparmor_confines(named):
        pytest.fail(
            f"AppArmor confines {named} to /etc/bind and /var/lib/bind, so it cannot run from a "
            f"temp dir: put it in complain mode for the tests (aa-complain {named})"
        )
    key_name = "cutover-test-key."
    secret = key_secret or base64.b64encode(secrets.token_bytes(32)).decode()
    alias = address != "127.0.0.1" and add_loopback_alias(address)
    for _ in range(3 if port is None else 1):  # a free port can be taken by someone else before named binds it
        chosen = port if port is not None else free_port()
        _write_config(directory, zones, named_conf(directory, chosen, key_name, secret, zones, address))
        server = BindServer(directory, chosen, key_name, secret, zones, address=address,
                            process=_spawn_named(named, directory))
        if _wait_ready(server):
            server.alias = alias
            return server
        server.stop()
    if alias:
        drop_loopback_alias(address)
    stderr = (directory / "named.stderr").read_text(errors="replace")
    pytest.fail(f"named did not start on {address}:{port or 'a free port'}:\n{stderr[-3000:]}")


def _write_config(directory: Path, zones: tuple[BindZone, ...], conf: str) -> None:
    """Zone files for the primaries; a secondary starts with none, so it must transfer."""
    for z in zones:
        (directory / (z.file_name + ".jnl")).unlink(missing_ok=True)
        if z.secondary:
            (directory / z.file_name).unlink(missing_ok=True)
        else:
            (directory / z.file_name).write_text(zone_file(z))
    (directory / "named.conf").write_text(conf)


def _spawn_named(named: str, directory: Path) -> subprocess.Popen:
    # We run as root in CI containers; without -u named keeps root and can write the
    # journals in the temp dir (and bind port 53). As a normal user it simply runs as
    # that user. -n 1: one worker thread, the machine is shared.
    with open(directory / "named.stderr", "wb") as log:
        return subprocess.Popen(
            [named, "-g", "-n", "1", "-c", str(directory / "named.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=directory,
        )


def _wait_ready(server: BindServer) -> bool:
    """Ready when every zone's SOA is served with AA over both UDP and TCP."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = [z.origin for z in server.zones]
    while pending and time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        if "address in use" in server.log():
            return False  # the port was taken after all: the caller tries another
        q = dns.message.make_query(pending[0], "SOA")
        try:
            answers = [
                dns.query.udp(q, server.address, port=server.port, timeout=0.5),
                dns.query.tcp(q, server.address, port=server.port, timeout=0.5),
            ]
        except (dns.exception.DNSException, OSError):
            time.sleep(0.05)
            continue
        if all(a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AA for a in answers):
            pending.pop(0)
        else:
            time.sleep(0.05)
    return not pending


# --------------------------------------------------------------------------- secondaries, NOTIFY, port 53


def serial(server: BindServer, zone: str | None = None) -> int:
    """The SOA serial ``server`` serves for ``zone`` (default: its first zone)."""
    origin = BindZone(zone).origin if zone else server.zones[0].origin
    response = server.query(origin, "SOA")
    found = response.get_rrset(response.answer, dns.name.from_text(origin), dns.rdataclass.IN, dns.rdatatype.SOA)
    if not found:
        raise AssertionError(f"{server.endpoint} serves no SOA for {origin}: rcode {dns.rcode.to_text(response.rcode())}")
    return int(found[0].serial)


def notify(server: BindServer, zone: str | None = None) -> None:
    """Send the DNS NOTIFY a primary would have sent, from 127.0.0.1: the secondary then
    asks its primary for the SOA and transfers what changed."""
    origin = BindZone(zone).origin if zone else server.zones[0].origin
    message = dns.message.make_query(origin, "SOA")
    message.flags = dns.flags.AA  # no RD; the opcode lives in the flags too, so it comes after
    message.set_opcode(dns.opcode.NOTIFY)
    response = dns.query.udp(message, server.address, port=server.port, timeout=3, source="127.0.0.1")
    if response.rcode() != dns.rcode.NOERROR:
        raise AssertionError(f"{server.endpoint} refused the NOTIFY for {origin}: {dns.rcode.to_text(response.rcode())}")


def wait_for_serial(server: BindServer, at_least: int, timeout: float = 5.0, zone: str | None = None) -> float:
    """Wait until ``server`` serves serial ``at_least`` (or later); the wall time it was
    first seen, which is when the server started to serve the new data."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serial(server, zone) >= at_least:
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"{server.endpoint} still serves serial {serial(server, zone)} after {timeout}s, "
                         f"expected {at_least}:\n{server.log()[-2000:]}")


def start_primary_and_secondary(start: Callable[..., BindServer], zone: BindZone) -> tuple[BindServer, BindServer]:
    """A primary for ``zone`` and a secondary of it, each its own ``named`` on its own port.

    The secondary lags on purpose: the primary sends no NOTIFY and the SOA refresh is an
    hour (BIND's floor is 5 min anyway), so it serves the old data until ``notify``."""
    lagging = replace(zone, refresh=3600)
    primary = start(lagging)
    secondary = start(replace(lagging, primary=(primary.address, primary.port), records=()),
                      key_secret=primary.key_secret)
    if serial(secondary) != serial(primary):
        raise AssertionError(f"the secondary did not transfer the zone:\n{secondary.log()[-2000:]}")
    return primary, secondary


def add_loopback_alias(address: str) -> bool:
    """Put ``address`` on ``lo`` unless an interface has it already; True when we added it.

    Linux answers for all of 127.0.0.0/8, but ``named`` listens only on addresses that an
    interface carries (it scans them), so 127.53.x.y:53 needs the alias (we run as root);
    ``BindServer.stop`` removes it again."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    if any(part.split("/")[0] == address for part in shown.split()):
        return False
    added = subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, text=True, check=False)
    if added.returncode != 0:
        pytest.fail(f"cannot put {address} on lo for named (needs root): {added.stderr.strip()}")
    return True


def drop_loopback_alias(address: str) -> None:
    subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True, text=True, check=False)


def port53_free(address: str) -> bool:
    """Nothing holds UDP or TCP port 53 on ``address`` right now (only root can bind it)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:  # a closed server's TIME_WAIT does not count; UDP must not share
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, 53))
            except OSError:
                return False
    return True


def port53_addresses(count: int, first: str = "127.53.13.11") -> list[str]:
    """``count`` loopback addresses whose port 53 is free, from ``first`` upwards.

    The whole 127.0.0.0/8 is loopback on Linux, so every address is there to bind; the
    check only avoids another test's (or a helper session's) server on the same address."""
    found: list[str] = []
    start = ipaddress.IPv4Address(first)
    for offset in range(200):
        candidate = str(start + offset)
        if port53_free(candidate):
            found.append(candidate)
            if len(found) == count:
                return found
    raise RuntimeError(f"no {count} loopback addresses with port 53 free from {first}")


@pytest.fixture
def bind_server() -> Iterator[Callable[..., BindServer]]:
    """Factory: ``bind_server(BindZone(...), ..., address=, port=, key_secret=)`` starts a
    named serving those zones (by default on 127.0.0.1 and a free port)."""
    started: list[BindServer] = []
    with tempfile.TemporaryDirectory(prefix="cutover-bind-") as tmp:
        counter = iter(range(1000))

        def start(*zones: BindZone, address: str = "127.0.0.1", port: int | None = None,
                  key_secret: str | None = None) -> BindServer:
            directory = Path(tmp) / f"named{next(counter)}"
            directory.mkdir()
            server = start_bind(tuple(zones), directory, address=address, port=port, key_secret=key_secret)
            started.append(server)
            return server

        try:
            yield start
        finally:
            for server in started:
                server.stop()
