"""A DNS sandbox on loopback: an authoritative server and caching resolvers, in-process.

``cutover demo`` and the tests need the whole life of a cutover -- old answers held
in caches, a change at the authoritative server, caches expiring one by one, a few
resolvers that misbehave -- without an account, a daemon or root. Everything here
speaks real DNS over UDP and TCP on ephemeral loopback ports, so the code that
watches public resolvers watches these ones the same way.

The pieces:

- ``ZoneStore``: zone data kept as zone files in a directory. Written atomically with
  a serial bump, re-read when the file changes, locked across processes, so that a
  ``cutover`` process using the ``sandbox`` provider and a sandbox serving the same
  directory (``python -m cutover.sandbox serve DIR``) share one truth.
- ``AuthoritativeServer``: answers for the store's zones (AA, NXDOMAIN/NODATA with
  the SOA for negative caching, CNAME chains, wildcards, referrals, AXFR over TCP)
  and refuses everything else.
- ``CachingResolver``: forwards to the authoritative server and caches like a real
  recursive resolver (TTLs count down, negative answers last the SOA minimum), with
  the quirks real caches have: ``ttl_floor``, RFC 8767 ``serve_stale``, a stale
  ``stale_for`` window, ``delay`` and ``fail``.
- ``Sandbox``: one zone, one authoritative server and a set of resolvers, started
  together and described as ``cutover.resolvers.Resolver`` values and provider
  settings.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import math
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.node
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from cutover.records import Change, RecordKey, RecordSet, canonical_rdata, parse_rdata
from cutover.resolvers import Resolver

IN = dns.rdataclass.IN
LOOPBACK = "127.0.0.1"

#: Longest CNAME chain the authoritative server follows inside its zone.
MAX_CHAIN = 8
#: TTL of an answer served stale after the upstream failed (RFC 8767 section 4 suggests 30 s).
STALE_ANSWER_TTL = 30
#: How long an expired entry may still be served stale (RFC 8767 suggests 1 to 3 days).
STALE_MAX_AGE = 86400.0


class SandboxError(Exception):
    """A sandbox operation that cannot be done; the message says why."""


class ZoneMissing(SandboxError, LookupError):
    """The store has no zone file for the zone asked for."""


class ChangeRejected(SandboxError):
    """A change was refused and nothing was written (drift, conflict, outside the zone)."""


# --------------------------------------------------------------------------- zone store


def _zone_name(zone: str | dns.name.Name) -> dns.name.Name:
    name = zone if isinstance(zone, dns.name.Name) else dns.name.from_text(zone)
    if not name.is_absolute():
        raise ValueError(f"zone {zone!r} is not absolute")
    return name


def _file_stem(origin: dns.name.Name) -> str:
    return "root" if origin == dns.name.root else origin.to_text(omit_final_dot=True).lower()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What identifies one version of a file: a replace makes a new inode, an edit a new mtime."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def record_set(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> RecordSet:
    """A ``RecordSet`` from zone data (names in a store's zones are absolute). The rdata are
    already parsed, so they are canonicalised directly rather than printed and parsed again."""
    return RecordSet(
        name.to_text().lower(), dns.rdatatype.to_text(rdataset.rdtype), rdataset.ttl,
        tuple(sorted({canonical_rdata(rd) for rd in rdataset})),
    )


def _rdataset(rs: RecordSet) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_rdata_list(rs.ttl, [parse_rdata(rs.type, v) for v in rs.values])


def _describe(rs: RecordSet | None) -> str:
    return "absent" if rs is None else f"TTL {rs.ttl} {' '.join(rs.values) or '(no values)'}"


class ZoneStore:
    """Authoritative data of the zones whose files live in ``directory``.

    Each zone is one file, ``<zone>.zone`` (``demo.example.zone``), in master file
    format, so a person can read or even edit it. Writers hold an ``flock`` on a lock
    file beside it, read the file fresh, and replace it atomically with a bumped SOA
    serial; readers re-parse only when the file's identity (inode, mtime, size) moved.
    Snapshots handed out are never mutated afterwards, so readers need no lock.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._cache: dict[dns.name.Name, tuple[tuple[int, int, int], dns.zone.Zone]] = {}

    def __repr__(self) -> str:
        return f"ZoneStore({str(self.directory)!r})"

    def path_of(self, zone: str | dns.name.Name) -> Path:
        return self.directory / f"{_file_stem(_zone_name(zone))}.zone"

    def zones(self) -> list[str]:
        """The zones that have a file here, as absolute lower-case names."""
        names = []
        for path in sorted(self.directory.glob("*.zone")):
            stem = path.name[: -len(".zone")]
            names.append("." if stem == "root" else f"{stem.lower()}.")
        return names

    def has_zone(self, zone: str) -> bool:
        return self.path_of(zone).is_file()

    # ---- reading

    def zone(self, zone: str | dns.name.Name) -> dns.zone.Zone:
        """The current data of ``zone``. Treat it as read-only: it is shared."""
        origin = _zone_name(zone)
        path = self.path_of(origin)
        with self._lock:
            stamp = _stamp(path)
            if stamp is None:
                self._cache.pop(origin, None)
                raise ZoneMissing(f"no zone file for {origin} in {self.directory}")
            cached = self._cache.get(origin)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            data = self._read(path, origin)
            self._cache[origin] = (stamp, data)
            return data

    def find_zone(self, qname: dns.name.Name) -> dns.zone.Zone | None:
        """The most specific zone here that contains ``qname``, if any."""
        best: dns.name.Name | None = None
        for text in self.zones():
            origin = dns.name.from_text(text)
            if qname.is_subdomain(origin) and (best is None or len(origin) > len(best)):
                best = origin
        if best is None:
            return None
        try:
            return self.zone(best)
        except ZoneMissing:  # deleted between listing and reading
            return None

    def records(self, zone: str) -> list[RecordSet]:
        """Every record set of ``zone``, SOA and NS included, sorted."""
        data = self.zone(zone)
        return sorted(record_set(name, rds) for name, node in data.items() for rds in node)

    def serial(self, zone: str) -> int:
        return self.zone(zone).get_soa().serial

    # ---- writing

    def create_zone(
        self,
        zone: str,
        records: Iterable[RecordSet] = (),
        *,
        ttl: int = 300,
        negative_ttl: int = 60,
        replace: bool = False,
    ) -> None:
        """Write a new zone holding ``records`` plus an SOA and NS unless they are given.

        ``negative_ttl`` becomes the SOA minimum: how long caches keep NXDOMAIN/NODATA.
        An existing zone is an error unless ``replace`` is true.
        """
        origin = _zone_name(zone)
        ns_host = dns.name.from_text("ns1", origin)
        data = dns.zone.Zone(origin, relativize=False)
        soa = f"{ns_host} hostmaster.{origin} 1 3600 600 86400 {int(negative_ttl)}"
        data.replace_rdataset(origin, dns.rdataset.from_text(IN, "SOA", ttl, soa))
        data.replace_rdataset(origin, dns.rdataset.from_text(IN, "NS", ttl, ns_host.to_text()))
        data.replace_rdataset(ns_host, dns.rdataset.from_text(IN, "A", ttl, LOOPBACK))
        for rs in records:
            name = dns.name.from_text(rs.name)
            if not name.is_subdomain(origin):
                raise ChangeRejected(f"{rs.name} is not in zone {origin}")
            data.replace_rdataset(name, _rdataset(rs))
        path = self.path_of(origin)
        with self._locked(origin):
            if path.exists() and not replace:
                raise SandboxError(f"zone {origin} already exists in {self.directory}")
            self._write(path, origin, data)

    @contextmanager
    def edit(self, zone: str) -> Iterator[dns.zone.Zone]:
        """Change ``zone`` as one unit: yields a private copy read fresh under the lock;
        when the block ends without an exception, the copy is written with the next serial.
        An exception leaves the file untouched."""
        origin = _zone_name(zone)
        path = self.path_of(origin)
        with self._locked(origin):
            if not path.is_file():
                raise ZoneMissing(f"no zone file for {origin} in {self.directory}")
            data = self._read(path, origin)
            yield data
            _bump_serial(data)
            self._write(path, origin, data)

    def apply(self, zone: str, changes: Sequence[Change], *, check: bool = True) -> int:
        """Make ``changes`` atomically and return the new serial.

        With ``check``, every change's ``before`` must equal what the zone holds now
        (TTL and values), else ``ChangeRejected`` and nothing is written: this is the
        compare-and-swap that keeps two operators from overwriting each other.
        """
        with self.edit(zone) as data:
            _apply_changes(data, changes, check)
        return data.get_soa().serial

    def put(self, zone: str, *record_sets: RecordSet) -> int:
        """Set record sets to these values whatever they held (a change "outside cutover")."""
        return self._overwrite(zone, [(rs.key, rs) for rs in record_sets])

    def remove(self, zone: str, *keys: RecordKey) -> int:
        """Delete the record sets with these (name, type) keys if they exist."""
        return self._overwrite(zone, [(key, None) for key in keys])

    def _overwrite(self, zone: str, items: list[tuple[RecordKey, RecordSet | None]]) -> int:
        with self.edit(zone) as data:
            changes = []
            for (name, rtype), after in items:
                rds = data.get_rdataset(dns.name.from_text(name), dns.rdatatype.from_text(rtype))
                before = record_set(dns.name.from_text(name), rds) if rds else None
                if before is not None or after is not None:
                    changes.append(Change(before, after))
            _apply_changes(data, changes, check=True)
        return data.get_soa().serial

    # ---- files

    @contextmanager
    def _locked(self, origin: dns.name.Name) -> Iterator[None]:
        """Exclusive across threads (RLock) and processes (flock on a lock file)."""
        lock_path = self.directory / f".{_file_stem(origin)}.zone.lock"
        with self._lock, open(lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, path: Path, origin: dns.name.Name) -> dns.zone.Zone:
        try:
            return dns.zone.from_file(str(path), origin=origin, relativize=False, check_origin=True)
        except FileNotFoundError:
            raise ZoneMissing(f"no zone file for {origin} in {self.directory}") from None
        except (dns.exception.DNSException, ValueError) as exc:
            raise SandboxError(f"zone file {path} cannot be read: {exc}") from exc

    def _write(self, path: Path, origin: dns.name.Name, data: dns.zone.Zone) -> None:
        """Write to a temporary file in the same directory, fsync, then rename over the old one,
        so a reader sees the old file or the new one, never half of one."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.directory)
        try:
            os.fchmod(fd, 0o644)  # a zone file people may read, not a secret
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                data.to_file(handle, sorted=True, relativize=True, want_origin=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        stamp = _stamp(path)
        if stamp is not None:
            self._cache[origin] = (stamp, data)


def _bump_serial(data: dns.zone.Zone) -> None:
    soa_rds = data.find_rdataset(data.origin, dns.rdatatype.SOA)
    soa = soa_rds[0]
    serial = (soa.serial + 1) % 2**32 or 1  # RFC 1982 arithmetic; 0 is avoided by convention
    data.replace_rdataset(data.origin, dns.rdataset.from_rdata(soa_rds.ttl, soa.replace(serial=serial)))


def _apply_changes(data: dns.zone.Zone, changes: Sequence[Change], check: bool) -> None:
    """Check every change first, then make them all: a refusal leaves ``data`` as it was."""
    _check_changes(data, data.origin, changes, check)
    _check_cname_rule(data, data.origin, changes)
    for change in changes:
        name = dns.name.from_text(change.name)
        if change.after is None:
            data.delete_rdataset(name, dns.rdatatype.from_text(change.type))
        else:
            data.replace_rdataset(name, _rdataset(change.after))


def _check_changes(data: dns.zone.Zone, origin: dns.name.Name, changes: Sequence[Change], check: bool) -> None:
    seen: set[RecordKey] = set()
    problems = []
    for change in changes:
        name = dns.name.from_text(change.name)
        if change.key in seen:
            problems.append(f"{change.name} {change.type} is changed twice in one apply")
        seen.add(change.key)
        if not name.is_subdomain(origin):
            problems.append(f"{change.name} is not in zone {origin}")
            continue
        if change.type == "SOA":
            problems.append(f"{change.name} SOA is kept by the sandbox (its serial moves on every change)")
            continue
        if not check:
            continue
        rds = data.get_rdataset(name, dns.rdatatype.from_text(change.type))
        live = record_set(name, rds) if rds else None
        if live != change.before:
            problems.append(
                f"{change.name} {change.type} changed since it was read "
                f"(expected {_describe(change.before)}, found {_describe(live)})"
            )
    if problems:
        raise ChangeRejected("; ".join(problems))


def _check_cname_rule(data: dns.zone.Zone, origin: dns.name.Name, changes: Sequence[Change]) -> None:
    """Refuse results the DNS forbids (RFC 1034 3.6.2: a CNAME stands alone; the apex
    keeps its NS) before touching anything: dnspython would silently drop the other data."""
    wanted: dict[dns.name.Name, set[int]] = {}
    for change in changes:
        name = dns.name.from_text(change.name)
        if name not in wanted:
            node = data.get_node(name)
            wanted[name] = {rds.rdtype for rds in node} if node is not None else set()
        rdtype = dns.rdatatype.from_text(change.type)
        if change.after is None:
            wanted[name].discard(rdtype)
        else:
            wanted[name].add(rdtype)
    problems = []
    for name, types in wanted.items():
        if dns.rdatatype.CNAME in types and types - {dns.rdatatype.CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC}:
            others = ", ".join(sorted(dns.rdatatype.to_text(t) for t in types if t != dns.rdatatype.CNAME))
            problems.append(f"{name} cannot hold a CNAME together with other records ({others})")
        if name == origin and dns.rdatatype.NS not in types:
            problems.append(f"the zone apex {origin} needs NS records")
    if problems:
        raise ChangeRejected("; ".join(problems))


# --------------------------------------------------------------------------- listener


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


class _Listener:
    """A DNS endpoint: one port, UDP and TCP, served by a background thread.

    Each UDP datagram and each TCP connection gets its own short-lived thread, so a
    slow reply (``delay``) never holds up the others. Subclasses implement
    ``respond(wire, tcp)`` and return the reply messages (none to stay silent).
    """

    kind = "dns"

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

    def __enter__(self):
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
        raise NotImplementedError

    def _replies(self, wire: bytes, tcp: bool) -> list[bytes]:
        """``respond``, except that a bug becomes SERVFAIL (as in a real server) and is kept
        in ``last_error`` instead of a traceback on the demo's terminal."""
        try:
            return self.respond(wire, tcp)
        except Exception as exc:  # noqa: BLE001 - the client must get an answer
            self.last_error = exc
            query, formerr = _parse_query(wire)
            return [_error(query, dns.rcode.SERVFAIL).to_wire()] if query is not None else formerr

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

    def _spawn(self, target, *args) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _serve_udp(self, wire: bytes, peer) -> None:
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


def _parse_query(wire: bytes) -> tuple[dns.message.Message | None, list[bytes]]:
    """The query, or the FORMERR to send back when it does not parse (nothing if hopeless)."""
    try:
        return dns.message.from_wire(wire), []
    except dns.exception.DNSException:
        if len(wire) < 12:
            return None, []
        (qid, flags) = struct.unpack("!HH", wire[:4])
        if flags & dns.flags.QR:
            return None, []  # never answer a response
        error = dns.message.Message(id=qid)
        error.flags = dns.flags.QR | (flags & dns.flags.RD)
        error.set_rcode(dns.rcode.FORMERR)
        return None, [error.to_wire()]


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode, ra: bool = False) -> dns.message.Message:
    response = dns.message.make_response(query, recursion_available=ra)
    response.set_rcode(rcode)
    return response


def _to_wire(query: dns.message.Message, response: dns.message.Message, tcp: bool) -> bytes:
    """The reply on the wire; over UDP a reply that does not fit is truncated (TC)."""
    limit = 65535 if tcp else max(512, query.payload if query.edns >= 0 else 512)
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        short = dns.message.make_response(query, recursion_available=bool(response.flags & dns.flags.RA))
        short.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
        short.set_rcode(response.rcode())
        return short.to_wire(max_size=limit)


def _plain_query(query: dns.message.Message | None) -> dns.rcode.Rcode | None:
    """An error rcode when this is not one ordinary question, else None."""
    if query is None:
        return dns.rcode.FORMERR
    if query.flags & dns.flags.QR:
        return dns.rcode.FORMERR
    if query.opcode() != dns.opcode.QUERY:
        return dns.rcode.NOTIMP
    if len(query.question) != 1:
        return dns.rcode.FORMERR
    return None


# --------------------------------------------------------------------------- authoritative


def _negative_soa(data: dns.zone.Zone) -> dns.rrset.RRset:
    """The SOA for the authority section of a negative answer; its TTL is
    min(SOA TTL, SOA minimum), how long a cache may keep the negative answer (RFC 2308)."""
    soa_rds = data.find_rdataset(data.origin, dns.rdatatype.SOA)
    rrset = dns.rrset.from_rdata_list(data.origin, min(soa_rds.ttl, soa_rds[0].minimum), list(soa_rds))
    return rrset


def _rrset(name: dns.name.Name, rds: dns.rdataset.Rdataset, ttl: int | None = None) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rds.ttl if ttl is None else ttl, list(rds))


def _delegation(data: dns.zone.Zone, qname: dns.name.Name) -> dns.name.Name | None:
    """The highest zone cut between the apex (exclusive) and ``qname`` (inclusive)."""
    origin = data.origin
    for depth in range(len(origin) + 1, len(qname) + 1):
        _, cut = qname.split(depth)
        node = data.get_node(cut)
        if node is not None and node.get_rdataset(IN, dns.rdatatype.NS) is not None:
            return cut
    return None


def _exists(data: dns.zone.Zone, name: dns.name.Name) -> bool:
    """True for names with data and for empty non-terminals (names with descendants)."""
    return data.get_node(name) is not None or any(n.is_subdomain(name) for n in data.keys())


def _wildcard(data: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
    """The wildcard node that synthesises ``name`` (RFC 4592), if any."""
    encloser = name.parent()
    while not _exists(data, encloser):
        encloser = encloser.parent()
    return data.get_node(dns.name.from_text("*", encloser))


def authoritative_answer(data: dns.zone.Zone, query: dns.message.Message) -> dns.message.Message:
    """The reply of a server authoritative for ``data`` to one question inside the zone."""
    response = dns.message.make_response(query)
    question = query.question[0]
    qname, rdtype = question.name, question.rdtype
    cut = _delegation(data, qname)
    if cut is not None and not (cut == qname and rdtype == dns.rdatatype.DS):
        return _referral(data, response, cut)
    response.flags |= dns.flags.AA
    name = qname
    for _ in range(MAX_CHAIN):
        node = data.get_node(name)
        if node is None:
            if _exists(data, name):
                break  # empty non-terminal: NODATA
            node = _wildcard(data, name)
            if node is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                break
        if rdtype == dns.rdatatype.ANY:
            response.answer.extend(_rrset(name, rds) for rds in node)
            return response
        rds = node.get_rdataset(IN, rdtype)
        if rds is not None:
            response.answer.append(_rrset(name, rds))
            return response
        cname = node.get_rdataset(IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        response.answer.append(_rrset(name, cname))
        target = cname[0].target
        if not target.is_subdomain(data.origin):
            return response  # the resolver follows it elsewhere
        name = target
    else:
        response.set_rcode(dns.rcode.SERVFAIL)  # a CNAME loop
        return response
    response.authority.append(_negative_soa(data))
    return response


def _referral(data: dns.zone.Zone, response: dns.message.Message, cut: dns.name.Name) -> dns.message.Message:
    ns = data.find_rdataset(cut, dns.rdatatype.NS)
    response.authority.append(_rrset(cut, ns))
    for rd in ns:
        if rd.target.is_subdomain(cut):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = data.get_rdataset(rd.target, rdtype)
                if glue is not None:
                    response.additional.append(_rrset(rd.target, glue))
    return response


def zone_transfer(data: dns.zone.Zone, query: dns.message.Message, per_message: int = 64) -> list[dns.message.Message]:
    """AXFR (RFC 5936): the SOA, every other record set, the SOA again, in a few messages."""
    soa = _rrset(data.origin, data.find_rdataset(data.origin, dns.rdatatype.SOA))
    body = [
        _rrset(name, rds)
        for name in sorted(data.keys())
        for rds in data[name]
        if not (name == data.origin and rds.rdtype == dns.rdatatype.SOA)
    ]
    rrsets = [soa, *body, soa]
    messages = []
    for start in range(0, len(rrsets), per_message):
        message = dns.message.make_response(query)
        message.flags |= dns.flags.AA
        if start:
            message.question = []
        message.answer.extend(rrsets[start : start + per_message])
        messages.append(message)
    return messages


class AuthoritativeServer(_Listener):
    """Answers for the zones of a ``ZoneStore`` over UDP and TCP, and for nothing else.

    Like a real authoritative-only server it never recurses: questions outside its
    zones get REFUSED, and it does not set RA. Each answer reads the store, so a
    change by any process sharing the directory shows at once.
    """

    kind = "authoritative"

    def __init__(self, store: ZoneStore, address: str = LOOPBACK, port: int = 0) -> None:
        self.store = store
        super().__init__(address, port)

    def __repr__(self) -> str:
        return f"AuthoritativeServer({self.address}:{self.port}, {self.store!r})"

    def respond(self, wire: bytes, tcp: bool) -> list[bytes]:
        query, formerr = _parse_query(wire)
        problem = _plain_query(query)
        if query is None:
            return formerr
        if problem is not None:
            return [_error(query, problem).to_wire()]
        return [_to_wire(query, m, tcp) for m in self.answer(query, tcp)]

    def answer(self, query: dns.message.Message, tcp: bool = False) -> list[dns.message.Message]:
        question = query.question[0]
        if question.rdclass != IN:
            return [_error(query, dns.rcode.REFUSED)]
        try:
            data = self.store.find_zone(question.name)
        except SandboxError:
            return [_error(query, dns.rcode.SERVFAIL)]  # an unreadable zone file
        if data is None:
            return [_error(query, dns.rcode.REFUSED)]
        if question.rdtype == dns.rdatatype.AXFR:
            if not tcp or question.name != data.origin:
                return [_error(query, dns.rcode.FORMERR if not tcp else dns.rcode.NOTAUTH)]
            return zone_transfer(data, query)
        if question.rdtype in (dns.rdatatype.IXFR, dns.rdatatype.MAILA, dns.rdatatype.MAILB):
            return [_error(query, dns.rcode.NOTIMP)]
        return [authoritative_answer(data, query)]


# --------------------------------------------------------------------------- caching resolver

FAIL_MODES = ("servfail", "drop", "refused")


@dataclass
class _Entry:
    """One cached answer: what the upstream said, when, and for how long it may be kept."""

    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    ttl: float
    stored: float

    def age(self, now: float) -> float:
        return now - self.stored

    def remaining(self, now: float) -> float:
        return self.ttl - self.age(now)


def _copy_with_ttl(rrsets: list[dns.rrset.RRset], ttl: int) -> list[dns.rrset.RRset]:
    copies = []
    for rrset in rrsets:
        clone = copy.copy(rrset)
        clone.ttl = ttl
        copies.append(clone)
    return copies


class CachingResolver(_Listener):
    """A recursive resolver's cache in front of one authoritative server.

    It forwards what it does not hold, keeps positive answers for their smallest TTL
    and negative ones for the SOA's negative TTL (RFC 2308), and counts the TTL down
    in its replies like a real cache. The quirks model caches seen in the wild:

    - ``ttl_floor``: positive answers are kept (and shown) at least this long, like
      Unbound's ``cache-min-ttl``; such a cache holds the old answer past its TTL.
    - ``serve_stale``: RFC 8767; once an entry has expired and the upstream cannot be
      reached or answers SERVFAIL, the expired answer is served with TTL 30.
    - ``stale_for``: a misbehaving cache that keeps serving an expired answer (TTL 0)
      for this many more seconds without asking the upstream.
    - ``delay``: seconds to wait before each reply (a slow or far resolver).
    - ``fail``: ``"servfail"``, ``"refused"`` or ``"drop"`` (no reply) for every query.

    Replies show the whole seconds left, rounded up, as real caches do; RA is set, AA never.
    ``delay``, ``fail`` and ``upstream`` may be changed while the resolver runs.
    ``preload`` puts record sets in the cache as if just fetched, their TTL counting
    from now: a cache that already held the old answer before the sandbox started.
    """

    kind = "resolver"

    def __init__(
        self,
        upstream: tuple[str, int],
        address: str = LOOPBACK,
        port: int = 0,
        *,
        name: str = "",
        ttl_floor: int = 0,
        serve_stale: bool = False,
        stale_for: float = 0.0,
        delay: float = 0.0,
        fail: str | None = None,
        preload: Iterable[RecordSet] = (),
        upstream_timeout: float = 1.0,
    ) -> None:
        if fail is not None and fail not in FAIL_MODES:
            raise ValueError(f"fail={fail!r} is not one of {', '.join(FAIL_MODES)}")
        if ttl_floor < 0 or stale_for < 0 or delay < 0:
            raise ValueError("ttl_floor, stale_for and delay cannot be negative")
        self.upstream = upstream
        self.name = name
        self.ttl_floor = int(ttl_floor)
        self.serve_stale = serve_stale
        self.stale_for = float(stale_for)
        self.delay = float(delay)
        self.fail = fail
        self.upstream_timeout = upstream_timeout
        self._cache: dict[tuple[dns.name.Name, int, int], _Entry] = {}
        self._cache_lock = threading.Lock()
        for rs in preload:
            self._preload(rs)
        super().__init__(address, port)

    def __repr__(self) -> str:
        return f"CachingResolver({self.name or '?'} at {self.address}:{self.port}, quirk={self.quirk})"

    @property
    def quirk(self) -> str:
        """A short human description of how this cache misbehaves ("normal" when it does not)."""
        parts = []
        if self.fail:
            parts.append("drops queries" if self.fail == "drop" else f"answers {self.fail.upper()}")
        if self.ttl_floor:
            parts.append(f"cache-min-ttl {self.ttl_floor}s")
        if self.serve_stale:
            parts.append("serve-stale")
        if self.stale_for:
            parts.append(f"stale for {self.stale_for:g}s")
        if self.delay:
            parts.append(f"slow {self.delay * 1000:.0f} ms")
        return ", ".join(parts) or "normal"

    # ---- helpers for demos and tests

    def flush(self) -> None:
        """Forget everything cached."""
        with self._cache_lock:
            self._cache.clear()

    def warm(self, name: str, rdtype: str = "A") -> dns.message.Message:
        """Look ``name`` up through this cache (filling it) and return the reply a client
        would get; ignores ``delay`` and ``fail``, which are about clients."""
        query = dns.message.make_query(name, rdtype)
        return self.resolve(query)

    def remaining(self, name: str, rdtype: str = "A") -> float | None:
        """Seconds until the cached answer for (name, type) expires (negative once it has),
        or None when nothing is cached."""
        key = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype), IN)
        with self._cache_lock:
            entry = self._cache.get(key)
        return None if entry is None else entry.remaining(time.monotonic())

    # ---- serving

    def respond(self, wire: bytes, tcp: bool) -> list[bytes]:
        query, formerr = _parse_query(wire)
        if self.delay:
            time.sleep(self.delay)
        if self.fail == "drop":
            return []
        problem = _plain_query(query)
        if query is None:
            return formerr
        if problem is not None:
            return [_error(query, problem, ra=True).to_wire()]
        if self.fail is not None:
            rcode = dns.rcode.SERVFAIL if self.fail == "servfail" else dns.rcode.REFUSED
            return [_error(query, rcode, ra=True).to_wire()]
        return [_to_wire(query, self.resolve(query), tcp)]

    def resolve(self, query: dns.message.Message) -> dns.message.Message:
        """The reply to one question: from the cache while fresh, else from upstream."""
        question = query.question[0]
        key = (question.name, question.rdtype, question.rdclass)
        now = time.monotonic()
        with self._cache_lock:
            entry = self._cache.get(key)
        if entry is not None:
            left = entry.remaining(now)
            if left > 0:
                return self._from_cache(query, entry, math.ceil(left))
            if self.stale_for and -left < self.stale_for:
                return self._from_cache(query, entry, 0)
        upstream = self._ask_upstream(question)
        if upstream is None or upstream.rcode() == dns.rcode.SERVFAIL:
            if self.serve_stale and entry is not None and -entry.remaining(now) < STALE_MAX_AGE:
                return self._from_cache(query, entry, STALE_ANSWER_TTL)
            return _error(query, dns.rcode.SERVFAIL, ra=True)
        fresh = self._store(key, upstream)
        if fresh is None:  # not cacheable (REFUSED, a referral): pass it on as it came
            response = _error(query, upstream.rcode(), ra=True)
            response.answer = list(upstream.answer)
            return response
        return self._from_cache(query, fresh, math.ceil(fresh.ttl))

    def _ask_upstream(self, question: dns.rrset.RRset) -> dns.message.Message | None:
        query = dns.message.make_query(question.name, question.rdtype, question.rdclass, use_edns=0, payload=1232)
        query.flags &= ~dns.flags.RD
        host, port = self.upstream
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=self.upstream_timeout, port=port)
        except (dns.exception.DNSException, OSError, EOFError, ValueError):
            return None
        return response

    def _store(self, key, response: dns.message.Message) -> _Entry | None:
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        answer = list(response.answer)
        if rcode == dns.rcode.NOERROR and answer:
            ttl = max(min(r.ttl for r in answer), self.ttl_floor)
            authority: list[dns.rrset.RRset] = []
        else:
            soas = [r for r in response.authority if r.rdtype == dns.rdatatype.SOA]
            if not soas:
                return None
            soa = soas[0]
            ttl = min(soa.ttl, soa[0].minimum)
            authority = [soa]
        entry = _Entry(rcode, answer, authority, float(ttl), time.monotonic())
        with self._cache_lock:
            self._cache[key] = entry
        return entry

    def _preload(self, rs: RecordSet) -> None:
        name = dns.name.from_text(rs.name)
        rrset = dns.rrset.from_rdata_list(name, rs.ttl, [parse_rdata(rs.type, v) for v in rs.values])
        ttl = max(rs.ttl, self.ttl_floor)
        key = (name, dns.rdatatype.from_text(rs.type), IN)
        self._cache[key] = _Entry(dns.rcode.NOERROR, [rrset], [], float(ttl), time.monotonic())

    def _from_cache(self, query: dns.message.Message, entry: _Entry, ttl: int) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True)
        response.set_rcode(entry.rcode)
        response.answer = _copy_with_ttl(entry.answer, ttl)
        response.authority = _copy_with_ttl(entry.authority, ttl)
        return response


# --------------------------------------------------------------------------- sandbox


@dataclass(frozen=True)
class ResolverSpec:
    """How one sandbox resolver behaves; see ``CachingResolver`` for the meaning of each quirk."""

    name: str
    ttl_floor: int = 0
    serve_stale: bool = False
    stale_for: float = 0.0
    delay: float = 0.0
    fail: str | None = None


#: The resolvers a sandbox starts unless told otherwise: mostly well-behaved, plus one
#: of each kind of trouble an operator meets while watching a cutover spread.
DEFAULT_RESOLVERS: tuple[ResolverSpec, ...] = (
    ResolverSpec("sandbox-1"),
    ResolverSpec("sandbox-2"),
    ResolverSpec("sandbox-3"),
    ResolverSpec("sandbox-4", ttl_floor=30),
    ResolverSpec("sandbox-5", serve_stale=True),
    ResolverSpec("sandbox-6", stale_for=20.0),
    ResolverSpec("sandbox-7", delay=0.3),
    ResolverSpec("sandbox-8", fail="servfail"),
)


def default_records(zone: str, ttl: int = 60) -> list[RecordSet]:
    """A small web-and-mail zone for a sandbox started without records."""
    origin = _zone_name(zone).to_text().lower()
    return [
        RecordSet.build(origin, "A", ttl, ["198.51.100.10"]),
        RecordSet.build(f"www.{origin}", "A", ttl, ["198.51.100.10"]),
        RecordSet.build(origin, "MX", ttl, [f"10 mail.{origin}"]),
        RecordSet.build(f"mail.{origin}", "A", ttl, ["198.51.100.25"]),
        RecordSet.build(origin, "TXT", ttl, ['"v=spf1 mx -all"']),
    ]


class Sandbox:
    """One zone served by an authoritative server and watched through caching resolvers.

    Everything starts when the object is made and stops on ``stop()`` (or at the end
    of a ``with`` block). The zone file lives in ``directory``; when ``records`` are
    given the zone is (re)created with them, when they are not an existing zone file
    is served as it is, or a small default zone is written.

    The demo's story is told with three things: ``provider_settings()`` for a plan's
    ``provider:`` section (type ``sandbox``), ``resolvers`` for its ``watch.resolvers``,
    and ``warm()`` to fill the caches with the old answers before the change.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        zone: str = "demo.example.",
        records: Iterable[RecordSet] | None = None,
        *,
        resolvers: Sequence[ResolverSpec] = DEFAULT_RESOLVERS,
        address: str = LOOPBACK,
        port: int = 0,
        negative_ttl: int = 60,
        upstream_timeout: float = 1.0,
    ) -> None:
        self.zone = _zone_name(zone).to_text().lower()
        self.store = ZoneStore(directory)
        if records is not None:
            self.store.create_zone(self.zone, records, negative_ttl=negative_ttl, replace=True)
        elif not self.store.has_zone(self.zone):
            self.store.create_zone(self.zone, default_records(self.zone), negative_ttl=negative_ttl)
        self.server = AuthoritativeServer(self.store, address, port)
        self.caches: list[CachingResolver] = []
        try:
            for spec in resolvers:
                self.caches.append(
                    CachingResolver(
                        self.server.endpoint,
                        address,
                        name=spec.name,
                        ttl_floor=spec.ttl_floor,
                        serve_stale=spec.serve_stale,
                        stale_for=spec.stale_for,
                        delay=spec.delay,
                        fail=spec.fail,
                        upstream_timeout=upstream_timeout,
                    )
                )
        except BaseException:
            self.stop()
            raise

    def __repr__(self) -> str:
        return f"Sandbox({self.zone} at {self.server.address}:{self.server.port}, {len(self.caches)} resolvers)"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def authoritative(self) -> tuple[str, int]:
        """(address, port) of the authoritative server."""
        return self.server.endpoint

    @property
    def resolvers(self) -> list[Resolver]:
        """The caching resolvers as watch targets, named and described for the report."""
        return [
            Resolver(address=c.address, port=c.port, name=c.name, operator=f"sandbox ({c.quirk})", group="custom")
            for c in self.caches
        ]

    def cache(self, name: str) -> CachingResolver:
        """The caching resolver called ``name``; ``KeyError`` if there is none."""
        for c in self.caches:
            if c.name == name:
                return c
        raise KeyError(name)

    def provider_settings(self) -> dict[str, str]:
        """Settings for a plan's ``provider:`` section with ``type: sandbox``."""
        return {"path": str(self.directory), "server": _endpoint_text(*self.authoritative)}

    def warm(self, name: str, rdtype: str = "A") -> None:
        """Fill every cache that answers with the current answer for (name, type)."""
        fqdn = dns.name.from_text(name, dns.name.from_text(self.zone)).to_text()
        for c in self.caches:
            if c.fail is None:
                c.warm(fqdn, rdtype)

    def flush(self) -> None:
        for c in self.caches:
            c.flush()

    def stop(self) -> None:
        for c in self.caches:
            c.stop()
        self.server.stop()

    def describe(self) -> dict:
        """The endpoints as plain data (what ``python -m cutover.sandbox serve`` prints)."""
        return {
            "zone": self.zone,
            "path": str(self.directory),
            "authoritative": _endpoint_text(*self.authoritative),
            "provider": {"type": "sandbox", **self.provider_settings()},
            "resolvers": [
                {"address": r.address, "port": r.port, "name": r.name, "operator": r.operator} for r in self.resolvers
            ],
        }


def _endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --------------------------------------------------------------------------- process mode


def serve(sandbox: Sandbox, out: TextIO | None = None, stop: threading.Event | None = None) -> None:
    """Print ``sandbox.describe()`` as one JSON line on ``out`` and serve until SIGINT or
    SIGTERM (or until ``stop`` is set). ``cutover sandbox`` can reuse this as it is."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    out = out or sys.stdout
    print(json.dumps(sandbox.describe()), file=out, flush=True)
    while not stop.wait(0.5):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cutover.sandbox serve DIR --zone ZONE``: serve until killed.

    The endpoints are printed as one JSON document on stdout (then stdout is left
    alone), so a script or a second ``cutover`` process can find them."""
    parser = argparse.ArgumentParser(prog="python -m cutover.sandbox", description="Run a DNS sandbox on loopback.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="serve a zone directory until interrupted")
    cmd.add_argument("directory", help="directory holding the zone file (created if missing)")
    cmd.add_argument("--zone", default="demo.example.", help="zone to serve (default: demo.example.)")
    cmd.add_argument("--address", default=LOOPBACK, help="loopback address to listen on (default: 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=0, help="authoritative server port (default: any free port)")
    cmd.add_argument("--no-resolvers", action="store_true", help="start only the authoritative server")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(
            args.directory,
            args.zone,
            resolvers=() if args.no_resolvers else DEFAULT_RESOLVERS,
            address=args.address,
            port=args.port,
        )
    except (SandboxError, OSError, ValueError, dns.exception.DNSException) as exc:
        print(f"cutover sandbox: {exc}", file=sys.stderr)
        return 2
    with sandbox:
        serve(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
