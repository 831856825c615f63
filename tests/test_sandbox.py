"""The DNS sandbox as a whole: the ``Sandbox`` that wires its parts, its public names,
and ``python -m cutover.sandbox serve``; and the helpers its per-part test modules share.

The parts have a module of tests each, as they have a module each:
``test_sandbox_store.py``, ``test_sandbox_authoritative.py`` (with the listener's and
the message helpers' share), ``test_sandbox_resolver.py``. Every DNS test sends real
queries over loopback with dnspython.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

import cutover.sandbox
from cutover.records import RecordSet
from cutover.sandbox import AuthoritativeServer, ResolverSpec, Sandbox, ZoneStore

ZONE = "sbx.test."

pytestmark = pytest.mark.timeout(60)


def rs(name: str, rtype: str, ttl: int, *values: str) -> RecordSet:
    fqdn = ZONE if name == "@" else f"{name}.{ZONE}"
    return RecordSet.build(fqdn, rtype, ttl, values)


def ask(
    endpoint: tuple[str, int], name: str, rtype: str = "A", *, tcp: bool = False, timeout: float = 2.0, **make: Any,
) -> dns.message.Message:
    host, port = endpoint
    fqdn = name if name.endswith(".") else (ZONE if name == "@" else f"{name}.{ZONE}")
    query = dns.message.make_query(fqdn, rtype, **make)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, host, port=port, timeout=timeout)


def values(response: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def last_ttl(response: dns.message.Message) -> int:
    return response.answer[-1].ttl


def make_store(tmp_path: Path) -> ZoneStore:
    """A store holding ZONE with one of each case the servers must answer: a short TTL,
    in-zone and out-of-zone CNAMEs, a CNAME loop, an empty non-terminal, a wildcard
    and a delegation; negative answers last one second."""
    s = ZoneStore(tmp_path / "zones")
    s.create_zone(
        ZONE,
        [
            rs("www", "A", 1, "192.0.2.10"),
            rs("@", "MX", 300, "10 mail.sbx.test."),
            rs("mail", "A", 300, "192.0.2.25"),
            rs("alias", "CNAME", 300, "www.sbx.test."),
            rs("outside", "CNAME", 300, "www.example.net."),
            rs("loop1", "CNAME", 300, "loop2.sbx.test."),
            rs("loop2", "CNAME", 300, "loop1.sbx.test."),
            rs("a.b.deep", "A", 300, "192.0.2.30"),
            rs("*.wild", "A", 300, "192.0.2.40"),
            rs("sub", "NS", 300, "ns.sub.sbx.test."),
            rs("ns.sub", "A", 300, "192.0.2.53"),
        ],
        negative_ttl=1,
    )
    return s


@contextmanager
def serving(store: ZoneStore) -> Iterator[AuthoritativeServer]:
    """An authoritative server on ``store`` for the length of the block."""
    with AuthoritativeServer(store) as srv:
        yield srv
    assert srv.last_error is None  # a bug turned into SERVFAIL must still fail the test


#: Every public name the single-module ``cutover.sandbox`` had; callers import them from the package.
PUBLIC_NAMES = (
    "AuthoritativeServer", "CachingResolver", "ChangeRejected", "DEFAULT_RESOLVERS", "FAIL_MODES", "LOOPBACK",
    "MAX_CHAIN", "ResolverSpec", "STALE_ANSWER_TTL", "STALE_MAX_AGE", "Sandbox", "SandboxError", "ZoneMissing",
    "ZoneStore", "authoritative_answer", "default_records", "record_set", "serve", "zone_transfer",
)


def test_public_names_import_from_the_package() -> None:
    missing = [name for name in PUBLIC_NAMES if not hasattr(cutover.sandbox, name)]
    assert missing == []
    assert set(PUBLIC_NAMES) <= set(cutover.sandbox.__all__)


class TestSandbox:
    def test_default_sandbox_serves_and_describes_itself(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path) as sb:
            assert len(sb.resolvers) == 8 and len({r.port for r in sb.resolvers}) == 8
            assert all(r.group == "custom" and r.address == "127.0.0.1" for r in sb.resolvers)
            assert [r.name for r in sb.resolvers] == [f"sandbox-{i}" for i in range(1, 9)]
            assert sb.provider_settings() == {"path": str(tmp_path), "server": f"127.0.0.1:{sb.authoritative[1]}"}
            assert values(ask(sb.authoritative, "www.demo.example.")) == ["198.51.100.10"]
            rcodes = {r.name: ask((r.address, r.port), "www.demo.example.").rcode() for r in sb.resolvers}
            assert rcodes.pop("sandbox-8") == dns.rcode.SERVFAIL
            assert set(rcodes.values()) == {dns.rcode.NOERROR}
            assert "SERVFAIL" in sb.cache("sandbox-8").quirk.upper()
            description = sb.describe()
            assert description["provider"]["type"] == "sandbox" and len(description["resolvers"]) == 8
        # stopped: the ports are free again
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sb.authoritative)

    def test_existing_zone_is_kept_unless_records_are_given(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path, zone="keep.test", resolvers=()) as sb:
            sb.store.put(sb.zone, RecordSet.build("www.keep.test.", "A", 60, ["203.0.113.5"]))
        with Sandbox(tmp_path, zone="keep.test", resolvers=()) as sb:
            assert values(ask(sb.authoritative, "www.keep.test.")) == ["203.0.113.5"]
        records = [RecordSet.build("web.keep.test.", "A", 60, ["192.0.2.9"])]
        with Sandbox(tmp_path, zone="keep.test", records=records, resolvers=()) as sb:
            assert ask(sb.authoritative, "www.keep.test.").rcode() == dns.rcode.NXDOMAIN
            assert values(ask(sb.authoritative, "web.keep.test.")) == ["192.0.2.9"]

    def test_warm_fills_every_answering_cache(self, tmp_path: Path) -> None:
        specs = (ResolverSpec("a"), ResolverSpec("b", ttl_floor=10), ResolverSpec("down", fail="drop"))
        with Sandbox(tmp_path, resolvers=specs) as sb:
            sb.warm("www")
            assert sb.cache("a").remaining("www.demo.example.") is not None
            assert sb.cache("b").remaining("www.demo.example.") > 9
            assert sb.cache("down").remaining("www.demo.example.") is None
            sb.flush()
            assert sb.cache("a").remaining("www.demo.example.") is None

    def test_fixed_port_in_use_is_a_clear_error(self, tmp_path: Path) -> None:
        with Sandbox(tmp_path, resolvers=()) as sb:
            with pytest.raises(OSError):
                Sandbox(tmp_path, resolvers=(), port=sb.authoritative[1])

    def test_serve_as_a_process(self, tmp_path: Path) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cutover.sandbox", "serve", str(tmp_path), "--zone", "proc.test"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        try:
            info = json.loads(proc.stdout.readline())
            host, port = info["authoritative"].rsplit(":", 1)
            assert info["zone"] == "proc.test." and info["provider"]["path"] == str(tmp_path)
            assert len(info["resolvers"]) == 8
            assert values(ask((host, int(port)), "www.proc.test.")) == ["198.51.100.10"]
            # a second process (this one) changes the zone; the server process serves it
            ZoneStore(tmp_path).put("proc.test.", RecordSet.build("www.proc.test.", "A", 60, ["203.0.113.7"]))
            assert values(ask((host, int(port)), "www.proc.test.")) == ["203.0.113.7"]
            first = info["resolvers"][0]
            assert values(ask((first["address"], first["port"]), "www.proc.test.")) == ["203.0.113.7"]
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
