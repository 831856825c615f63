"""A DNS endpoint on loopback: one port, UDP and TCP, served from a background thread.

Both sandbox servers need the same transport: a port that is free for UDP and TCP at
once (DNS clients retry truncated answers over TCP on the same port), length-prefixed
TCP messages, a stop that frees the port for the next test at once, and replies to
malformed or unusual queries that match real servers. The servers only decide what to
answer to one well-formed question (``Listener.answer``).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

import dns.message
import dns.rcode

from cutover.sandbox.errors import SandboxError
from cutover.sandbox.messages import error_reply, parse_query, query_problem, to_wire

#: Where every sandbox server listens unless told otherwise.
LOOPBACK = "127.0.0.1"

_L = TypeVar("_L", bound="Listener")


def _bind(family: int, kind: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


def _bind_pair(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port (DNS needs both); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    attempts = 1 if port else 50
    for _ in range(attempts):
        udp = _bind(family, socket.SOCK_DGRAM, address, port)
        try:
            tcp = _bind(family, socket.SOCK_STREAM, address, udp.getsockname()[1])
        except OSError:
            udp.close()
            if port:
                raise
            continue
        tcp.listen(64)
        return udp, tcp
    raise SandboxError(f"no port on {address} is free for both UDP and TCP")


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = conn.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


class Listener(ABC):
    """A DNS endpoint: one port, UDP and TCP, served by a background thread.

    Each UDP datagram and each TCP connection gets its own short-lived thread, so a
    slow reply (``delay``) never holds up the others. Subclasses implement
    ``answer(query, tcp)`` for one ordinary question and return the reply messages;
    a subclass that must act before the query is even looked at (stay silent, wait)
    overrides ``respond(wire, tcp)`` and returns the replies on the wire (none to stay
    silent).
    """

    kind = "dns"
    #: Whether replies set RA: a caching resolver recurses, an authoritative server does not.
    recursion_available = False

    def __init__(self, address: str = LOOPBACK, port: int = 0) -> None:
        self._udp, self._tcp = _bind_pair(address, port)
        self.address = address
        self.port: int = self._udp.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._stopped = threading.Event()
        self.last_error: Exception | None = None
        self._thread = threading.Thread(target=self._loop, name=f"{self.kind}:{self.port}", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.address, self.port)

    def __enter__(self: _L) -> _L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop listening and close open TCP connections; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        with self._conns_lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            sock.close()

    def respond(self, wire: bytes, tcp: bool) -> list[bytes]:
        """The replies on the wire to one query: what does not parse gets FORMERR (or
        silence), what is not one ordinary question an error; ``answer`` does the rest."""
        query, formerr = parse_query(wire)
        if query is None:
            return formerr
        problem = query_problem(query)
        if problem is not None:
            return [error_reply(query, problem, ra=self.recursion_available).to_wire()]
        return [to_wire(query, m, tcp) for m in self.answer(query, tcp)]

    @abstractmethod
    def answer(self, query: dns.message.Message, tcp: bool = False) -> list[dns.message.Message]:
        """The reply messages to one ordinary question (several for a zone transfer)."""

    def _replies(self, wire: bytes, tcp: bool) -> list[bytes]:
        """``respond``, except that a bug becomes SERVFAIL (as in a real server) and is kept
        in ``last_error`` instead of a traceback on the demo's terminal."""
        try:
            return self.respond(wire, tcp)
        except Exception as exc:  # noqa: BLE001 - the client must get an answer
            self.last_error = exc
            query, formerr = parse_query(wire)
            return [error_reply(query, dns.rcode.SERVFAIL).to_wire()] if query is not None else formerr

    def _loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in (self._udp, self._tcp, self._wake_r):
                selector.register(sock, selectors.EVENT_READ)
            while not self._stopped.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        if key.fileobj is self._udp:
                            wire, peer = self._udp.recvfrom(65535)
                            self._spawn(self._serve_udp, wire, peer)
                        else:
                            conn, _ = self._tcp.accept()
                            self._spawn(self._serve_tcp, conn)
                    except OSError:
                        continue

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _serve_udp(self, wire: bytes, peer: Any) -> None:
        for reply in self._replies(wire, tcp=False):
            if self._stopped.is_set():
                return
            try:
                self._udp.sendto(reply, peer)
            except OSError:
                return

    def _serve_tcp(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)
        try:
            conn.settimeout(10)
            while not self._stopped.is_set():
                header = _recv_exactly(conn, 2)
                if header is None:
                    return
                wire = _recv_exactly(conn, struct.unpack("!H", header)[0])
                if wire is None:
                    return
                for reply in self._replies(wire, tcp=True):
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            conn.close()
