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
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import pytest

from tests.integration.servers import free_port, need_binary, stop_process

KEY_ALGORITHM = "hmac-sha256"
READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class BindZone:
    """One master zone and what the test key may do with it."""

    name: str
    transfer: bool = True  # allow-transfer { key K; } (else: none)
    update: bool = True  # allow-update { key K; } (else: none)
    records: tuple[str, ...] = ()  # extra zone-file lines, relative to the zone

    @property
    def origin(self) -> str:
        return self.name if self.name.endswith(".") else self.name + "."

    @property
    def file_name(self) -> str:
        return self.origin.rstrip(".") + ".zone"


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


def zone_file(zone: BindZone) -> str:
    """A minimal zone: SOA with a short negative TTL, NS ns1.<zone> and its glue."""
    lines = [
        f"$ORIGIN {zone.origin}",
        "$TTL 300",
        "@ IN SOA ns1 hostmaster 1 60 30 600 5",
        "@ IN NS ns1",
        "ns1 IN A 127.0.0.1",
        *zone.records,
    ]
    return "\n".join(lines) + "\n"


def named_conf(directory: Path, port: int, key_name: str, secret: str, zones: tuple[BindZone, ...]) -> str:
    def acl(allowed: bool) -> str:
        return f'key "{key_name}";' if allowed else "none;"

    zone_blocks = "".join(
        f'zone "{z.origin}" {{\n'
        f"    type primary;\n"
        f'    file "{z.file_name}";\n'
        f"    allow-update {{ {acl(z.update)} }};\n"
        f"    allow-transfer {{ {acl(z.transfer)} }};\n"
        f"}};\n"
        for z in zones
    )
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
    listen-on port {port} {{ 127.0.0.1; }};
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


def start_bind(zones: tuple[BindZone, ...], directory: Path) -> BindServer:
    if not zones:
        raise ValueError("start_bind needs at least one zone")
    named = need_binary("named", "bind9")
    if apparmor_confines(named):
        pytest.fail(
            f"AppArmor confines {named} to /etc/bind and /var/lib/bind, so it cannot run from a "
            f"temp dir: put it in complain mode for the tests (aa-complain {named})"
        )
    key_name = "cutover-test-key."
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    for _ in range(3):  # the free port can be taken by someone else before named binds it
        port = free_port()
        for z in zones:
            (directory / z.file_name).write_text(zone_file(z))
            (directory / (z.file_name + ".jnl")).unlink(missing_ok=True)
        (directory / "named.conf").write_text(named_conf(directory, port, key_name, secret, zones))
        # We run as root in CI containers; without -u named keeps root and can write the
        # journals in the temp dir. As a normal user it simply runs as that user.
        # -n 1: one worker thread, the machine is shared.
        with open(directory / "named.stderr", "wb") as log:
            process = subprocess.Popen(
                [named, "-g", "-n", "1", "-c", str(directory / "named.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=directory,
            )
        server = BindServer(directory, port, key_name, secret, zones, process=process)
        if _wait_ready(server):
            return server
        server.stop()
    stderr = (directory / "named.stderr").read_text(errors="replace")
    pytest.fail(f"named did not start:\n{stderr[-3000:]}")


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


@pytest.fixture
def bind_server() -> Iterator[Callable[..., BindServer]]:
    """Factory: ``bind_server(BindZone(...), ...)`` starts a named serving those zones."""
    started: list[BindServer] = []
    with tempfile.TemporaryDirectory(prefix="cutover-bind-") as tmp:
        counter = iter(range(1000))

        def start(*zones: BindZone) -> BindServer:
            directory = Path(tmp) / f"named{next(counter)}"
            directory.mkdir()
            server = start_bind(tuple(zones), directory)
            started.append(server)
            return server

        try:
            yield start
        finally:
            for server in started:
                server.stop()
