"""A real Knot DNS (Debian ``knot``) on loopback, for the RFC 2136 provider's tests.

Knot is the second primary the ``rfc2136`` provider is tested against because it
answers differently from BIND where it matters: a TSIG key its ACL does not allow to
transfer the zone gets NOTAUTH with the TSIG error BADKEY (BIND says REFUSED), the
same answer as a key it does not know at all.

Each server runs ``knotd`` as a plain foreground process with everything it writes
(config, zone files, journal and timer databases, control socket) inside one temporary
directory, listens on 127.0.0.1 only on a free port (UDP and TCP) and does no
recursion (Knot never does). Two keys, set up the usual ways:

* ``transfer-key.`` may transfer and update the zone (an operator's full key);
* ``update-key.`` may only update it (least privilege for a tool that writes).

    def test_something(knot_server):
        server = knot_server(KnotZone("t.test."))
        provider = RFC2136Provider("t.test.", server.settings("update"))
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.integration.servers import ZoneNames, free_port, need_binary, stop_process

KEY_ALGORITHM = "hmac-sha256"
READY_TIMEOUT = 20.0
KEY_NAMES = {"transfer": "transfer-key.", "update": "update-key."}

KeyKind = Literal["transfer", "update"]


@dataclass(frozen=True)
class KnotZone(ZoneNames):
    """One primary zone: SOA, ``@ NS ns1`` with ``ns1 A 127.0.0.1``, and ``records``
    (zone-file lines relative to the zone)."""

    name: str
    records: tuple[str, ...] = ()



@dataclass
class KnotServer:
    """A running ``knotd`` and what a test needs to talk to it."""

    directory: Path
    port: int
    secrets: dict[str, str]  # key kind -> base64 secret
    zones: tuple[KnotZone, ...]
    address: str = "127.0.0.1"
    process: subprocess.Popen | None = field(default=None, repr=False)

    def settings(self, kind: KeyKind = "update", **overrides: object) -> dict:
        """``rfc2136`` provider settings with the ``transfer`` or the ``update``-only key."""
        base = {
            "server": self.address,
            "port": self.port,
            "tsig_name": KEY_NAMES[kind],
            "tsig_secret": self.secrets[kind],
            "tsig_algorithm": KEY_ALGORITHM,
            "timeout": 2,
        }
        base.update(overrides)
        return base

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def values(self, name: str, rdtype: str) -> set[str]:
        """The server's current values for one RRset, as text (empty when absent)."""
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        response = dns.query.tcp(query, self.address, port=self.port, timeout=3)
        found = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN,
                                   dns.rdatatype.from_text(rdtype))
        return {rd.to_text() for rd in found} if found else set()

    def log(self) -> str:
        path = self.directory / "knotd.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


def zone_file(zone: KnotZone) -> str:
    lines = [
        f"$ORIGIN {zone.origin}",
        "$TTL 300",
        "@ IN SOA ns1 hostmaster 1 60 30 600 5",
        "@ IN NS ns1",
        "ns1 IN A 127.0.0.1",
        *zone.records,
    ]
    return "\n".join(lines) + "\n"


def knot_conf(directory: Path, port: int, key_secrets: dict[str, str], zones: tuple[KnotZone, ...],
              address: str = "127.0.0.1") -> str:
    """One worker of each kind (the machine is shared); logs to stderr; the control socket
    and every database in ``directory``. Each zone lists both ACLs: transfer+update for
    the full key, update alone for the least-privilege one."""
    keys = "".join(
        f"  - id: {KEY_NAMES[kind]}\n    algorithm: {KEY_ALGORITHM}\n    secret: {key_secrets[kind]}\n"
        for kind in ("transfer", "update")
    )
    zone_entries = "".join(f"  - domain: {z.origin}\n    file: {directory / z.file_name}\n" for z in zones)
    return f"""\
server:
    rundir: "{directory}"
    listen: {address}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{directory}/db"
control:
    listen: "{directory}/knot.sock"
key:
{keys}acl:
  - id: transfer-and-update
    key: {KEY_NAMES["transfer"]}
    action: [transfer, update]
  - id: update-only
    key: {KEY_NAMES["update"]}
    action: update
template:
  - id: default
    storage: "{directory}"
    acl: [transfer-and-update, update-only]
zone:
{zone_entries}"""


def start_knot(zones: tuple[KnotZone, ...], directory: Path, *, address: str = "127.0.0.1") -> KnotServer:
    """Start ``knotd`` for ``zones`` on a free port of ``address`` (tried up to three times)."""
    if not zones:
        raise ValueError("start_knot needs at least one zone")
    knotd = need_binary("knotd", "knot")
    key_secrets = {kind: base64.b64encode(secrets.token_bytes(32)).decode() for kind in KEY_NAMES}
    (directory / "db").mkdir(exist_ok=True)  # knotd does not create it; updates fail "not exists" without
    for z in zones:
        (directory / z.file_name).write_text(zone_file(z))
    for _ in range(3):  # a free port can be taken by someone else before knotd binds it
        port = free_port()
        (directory / "knot.conf").write_text(knot_conf(directory, port, key_secrets, zones, address))
        server = KnotServer(directory, port, key_secrets, zones, address, _spawn(knotd, directory))
        if _wait_ready(server):
            return server
        server.stop()
    pytest.fail(f"knotd did not start on {address}:\n{(directory / 'knotd.stderr').read_text(errors='replace')[-3000:]}")


def _spawn(knotd: str, directory: Path) -> subprocess.Popen:
    with open(directory / "knotd.stderr", "ab") as log:
        return subprocess.Popen(
            [knotd, "-c", str(directory / "knot.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=directory,
        )


def _wait_ready(server: KnotServer) -> bool:
    """Ready when every zone's SOA is served with AA over both UDP and TCP."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = [z.origin for z in server.zones]
    while pending and time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            return False
        query = dns.message.make_query(pending[0], "SOA")
        query.flags &= ~dns.flags.RD
        try:
            answers = [dns.query.udp(query, server.address, port=server.port, timeout=0.5),
                       dns.query.tcp(query, server.address, port=server.port, timeout=0.5)]
        except (dns.exception.DNSException, OSError):
            time.sleep(0.05)
            continue
        if all(a.rcode() == dns.rcode.NOERROR and a.flags & dns.flags.AA for a in answers):
            pending.pop(0)
        else:
            time.sleep(0.05)
    return not pending


@pytest.fixture
def knot_server() -> Iterator[Callable[..., KnotServer]]:
    """Factory: ``knot_server(KnotZone(...), ...)`` starts a knotd serving those zones."""
    started: list[KnotServer] = []
    with tempfile.TemporaryDirectory(prefix="cutover-knot-") as tmp:
        counter = iter(range(1000))

        def start(*zones: KnotZone, address: str = "127.0.0.1") -> KnotServer:
            directory = Path(tmp) / f"knot{next(counter)}"
            directory.mkdir()
            server = start_knot(tuple(zones), directory, address=address)
            started.append(server)
            return server

        try:
            yield start
        finally:
            for server in started:
                server.stop()
