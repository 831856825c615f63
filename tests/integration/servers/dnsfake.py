"""Tiny scriptable DNS servers on loopback, for behaviour real servers will not show on demand.

Each ``FakeServer`` listens on UDP and TCP on one free 127.0.0.1 port and answers from a
small in-memory zone, either honestly (as an authoritative server or as a resolver) or
in one of the broken or hostile ways a watch round must survive: slow, silent, wrong
id, wrong source, wrong question, truncated, garbage, SERVFAIL, REFUSED, or a
filtering resolver's 0.0.0.0. All servers of a ``FakeNet`` share one asyncio loop in a
background thread, so fifty of them cost one thread.

Messages are built and parsed with dnspython; the "hostile" replies are real messages
with one thing wrong, except ``garbage`` which is bytes that do not parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

#: Scripts a server can follow. The three "decoy" ones first send a forged reply
#: carrying DECOY values, then (after ``delay``) the honest one, unless ``honest=False``.
BEHAVIOURS = (
    "answer",          # honest answer, after ``delay`` seconds
    "drop",            # never answers
    "servfail",
    "refused",
    "truncate",        # UDP: TC bit and no data; TCP: the full answer
    "garbage",         # UDP and TCP: oversized bytes that are not a DNS message
    "wrong_id",        # decoy with another message id
    "wrong_source",    # decoy sent from another port
    "wrong_question",  # decoy answering another name
    "sinkhole",        # a filtering resolver's block: 0.0.0.0 / ::
)
DECOY = "192.0.2.66"


@dataclass
class FakeServer:
    """One scripted server. Change ``records``/``behaviour`` at any time (under ``lock``)."""

    origin: str = "example.com."
    records: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)
    behaviour: str = "answer"
    delay: float = 0.0
    honest: bool = True
    authoritative: bool = False
    negative_ttl: int = 2
    port: int = 0
    queries: int = 0
    recursion_desired: list[bool] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {self.behaviour!r}")
        self.origin = dns.name.from_text(self.origin).to_text().lower()
        self.records = {(_abs(n, self.origin), t.upper()): v for (n, t), v in self.records.items()}

    # ----------------------------------------------------------------- zone edits

    def set(self, name: str, type_: str, ttl: int, values: Iterable[str]) -> None:
        with self.lock:
            self.records[(_abs(name, self.origin), type_.upper())] = (ttl, list(values))

    def delete(self, name: str, type_: str) -> None:
        with self.lock:
            self.records.pop((_abs(name, self.origin), type_.upper()), None)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- answers

    def answer(self, query: dns.message.Message, tcp: bool) -> dns.message.Message:
        """The honest response to ``query`` from the in-memory zone (CNAMEs followed)."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA if self.authoritative else dns.flags.RA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        with self.lock:
            records = dict(self.records)
        for _ in range(8):
            key = (name.to_text().lower(), dns.rdatatype.to_text(rdtype))
            if key in records:
                response.answer.append(_rrset(name, rdtype, *records[key]))
                return response
            cname = (key[0], "CNAME")
            if cname not in records or rdtype == dns.rdatatype.CNAME:
                break
            rrset = _rrset(name, dns.rdatatype.CNAME, *records[cname])
            response.answer.append(rrset)
            name = rrset[0].target
        exists = any(n == name.to_text().lower() for n, _ in records)
        if name.to_text().lower() == self.origin:
            exists = True
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(self._soa())
        return response

    def _soa(self) -> dns.rrset.RRset:
        text = f"ns.{self.origin} hostmaster.{self.origin} 1 60 60 600 {self.negative_ttl}"
        return dns.rrset.from_text(self.origin, self.negative_ttl, "IN", "SOA", text)

    def replies(self, query: dns.message.Message, tcp: bool) -> list[tuple[float, bytes, str]]:
        """What to send, as (delay, wire, how); how is "same" or "other-port"."""
        b = self.behaviour
        if b == "drop":
            return []
        if b == "garbage":
            # Looks like a reply to this query for two bytes, then a name pointer into nowhere.
            junk = struct.pack("!HHHHHH", query.id, 0x8180, 1, 5, 0, 0) + b"\xc0\xff" * 1500
            return [(self.delay, junk, "same")]
        response = self.answer(query, tcp)
        if b in ("servfail", "refused"):
            response.answer.clear()
            response.authority.clear()
            response.set_rcode(dns.rcode.SERVFAIL if b == "servfail" else dns.rcode.REFUSED)
        elif b == "truncate" and not tcp:
            response.answer.clear()
            response.authority.clear()
            response.flags |= dns.flags.TC
        elif b == "sinkhole":
            response.answer.clear()
            response.authority.clear()
            response.set_rcode(dns.rcode.NOERROR)
            question = query.question[0]
            if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                sink = "0.0.0.0" if question.rdtype == dns.rdatatype.A else "::"
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", question.rdtype, sink))
        sends = []
        if b in ("wrong_id", "wrong_source", "wrong_question") and not tcp:
            sends.append((0.0, self._decoy(query, b), "other-port" if b == "wrong_source" else "same"))
            if not self.honest:
                return sends
        sends.append((self.delay, response.to_wire(), "same"))
        return sends

    def _decoy(self, query: dns.message.Message, how: str) -> bytes:
        asked = query.question[0]
        qname = dns.name.from_text("decoy.invalid.") if how == "wrong_question" else asked.name
        forged = dns.message.make_query(qname, asked.rdtype)
        forged.id = (query.id + 1) % 65536 if how == "wrong_id" else query.id
        forged = dns.message.make_response(forged)
        forged.flags |= dns.flags.RA | dns.flags.AA
        forged.answer.append(dns.rrset.from_text(qname, 3600, "IN", "A", DECOY))
        return forged.to_wire()


def _abs(name: str, origin: str) -> str:
    if name in ("@", ""):
        return origin
    return dns.name.from_text(name, origin=dns.name.from_text(origin)).to_text().lower()


def _rrset(name: dns.name.Name, rdtype: int, ttl: int, values: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, rdtype, values)


# --------------------------------------------------------------------------- transport


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, net: "FakeNet", server: FakeServer) -> None:
        self.net, self.server = net, server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - a fake server ignores what it cannot read
            return
        self.server.queries += 1
        self.server.recursion_desired.append(bool(query.flags & dns.flags.RD))
        loop = asyncio.get_running_loop()
        for delay, wire, how in self.server.replies(query, tcp=False):
            sender = self.net.other_port if how == "other-port" else self.transport
            loop.call_later(delay, _send, sender, wire, addr)


def _send(transport: asyncio.DatagramTransport | None, wire: bytes, addr: tuple) -> None:
    if transport is not None and not transport.is_closing():
        transport.sendto(wire, addr)


async def _serve_tcp(server: FakeServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            query = dns.message.from_wire(await reader.readexactly(size))
            server.queries += 1
            server.recursion_desired.append(bool(query.flags & dns.flags.RD))
            for delay, wire, _ in server.replies(query, tcp=True):
                await asyncio.sleep(delay)
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, dns.exception.DNSException):
        pass
    finally:
        writer.close()


class FakeNet:
    """The background loop that runs every fake server of a test, and stops them after."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dnsfake", daemon=True)
        self.closers: list = []
        self.other_port: asyncio.DatagramTransport | None = None
        self.servers: list[FakeServer] = []

    def __enter__(self) -> "FakeNet":
        self.thread.start()
        self._call(self._open_other_port())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def _call(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def add(self, **settings) -> FakeServer:  # noqa: ANN003
        """Start one ``FakeServer(**settings)`` on a fresh port and return it."""
        return self.start(FakeServer(**settings))

    def start(self, server: FakeServer) -> FakeServer:
        """Start a server made by the test (a ``FakeServer`` subclass with its own ``answer``)."""
        self._call(self._listen(server))
        self.servers.append(server)
        return server

    async def _open_other_port(self) -> None:
        transport, _ = await self.loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        self.other_port = transport
        self.closers.append(transport.close)

    async def _listen(self, server: FakeServer) -> None:
        # Bind UDP first on an OS-chosen port, then TCP on the same number; retry on a clash.
        for _ in range(50):
            transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Udp(self, server), local_addr=("127.0.0.1", 0), family=socket.AF_INET
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(
                    lambda r, w: _serve_tcp(server, r, w), "127.0.0.1", port, reuse_address=True
                )
            except OSError:
                transport.close()
                continue
            server.port = port
            self.closers += [transport.close, tcp.close]
            return
        raise RuntimeError("no free loopback port for a fake DNS server")

    async def _close(self) -> None:
        for close in self.closers:
            close()
        await asyncio.sleep(0)


@pytest.fixture
def fakenet() -> Iterator[FakeNet]:
    """Fake DNS servers for one test; ``fakenet.add(behaviour=..., records=...)``."""
    with FakeNet() as net:
        yield net


# --------------------------------------------------------------------------- a fleet in a child process


@dataclass
class Fleet:
    """Honest fake resolvers served by a child process (see ``fleet``)."""

    process: subprocess.Popen
    ports: list[int]

    def queries(self) -> list[int]:
        """How many queries each server has received so far."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())


@contextlib.contextmanager
def fleet(count: int, records: dict[tuple[str, str], tuple[int, list[str]]], delay: float = 0.0) -> Iterator[Fleet]:
    """``count`` servers with the same ``records``, each answering after ``delay`` seconds."""
    root = Path(__file__).resolve().parents[3]
    spec = {"count": count, "delay": delay, "records": [[n, t, ttl, v] for (n, t), (ttl, v) in records.items()]}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.servers.dnsfake"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(spec) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the fake DNS fleet did not start")
        yield Fleet(process, json.loads(line))
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _serve_fleet() -> None:
    """Child side of ``fleet``: spec on the first stdin line, ports out, serve until stdin closes."""
    spec = json.loads(sys.stdin.readline())
    records = {(n, t): (ttl, values) for n, t, ttl, values in spec["records"]}
    with FakeNet() as net:
        servers = [net.add(records=dict(records), delay=spec["delay"]) for _ in range(spec["count"])]
        print(json.dumps([s.port for s in servers]), flush=True)
        for _ in sys.stdin:  # any line asks for the query counts; EOF ends the fleet
            print(json.dumps([s.queries for s in servers]), flush=True)


if __name__ == "__main__":
    _serve_fleet()
