"""Zone data kept as zone files in a directory, shared by every process that uses it.

A ``cutover`` process using the ``sandbox`` provider and a sandbox serving the same
directory (``python -m cutover.sandbox serve DIR``) must see one truth, and a change
must never be half-made or overwrite a change it did not see. So each zone is a plain
master file, written atomically with a serial bump under a lock that holds across
processes, re-read when the file changes, and every apply compares each change's
``before`` with what the zone holds (the compare-and-swap a real provider's API gives).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from cutover.records import Change, RecordKey, RecordSet, canonical_rdata, parse_rdata
from cutover.sandbox.errors import ChangeRejected, SandboxError, ZoneMissing
from cutover.sandbox.listener import LOOPBACK

IN = dns.rdataclass.IN

def zone_name(zone: str | dns.name.Name) -> dns.name.Name:
    """``zone`` as a name; a relative one is a mistake (``ValueError``), not a guess."""
    name = zone if isinstance(zone, dns.name.Name) else dns.name.from_text(zone)
    if not name.is_absolute():
        raise ValueError(f"zone {zone!r} is not absolute")
    return name


def origin_of(data: dns.zone.Zone) -> dns.name.Name:
    """The origin of zone data: every zone here is made with one, so a missing one is a bug."""
    if data.origin is None:
        raise SandboxError("zone data without an origin")
    return data.origin


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


def _live(data: dns.zone.Zone, name: dns.name.Name, rtype: str) -> RecordSet | None:
    """What ``data`` holds at (name, type) now, as a ``RecordSet``; None when nothing."""
    rds = data.get_rdataset(name, dns.rdatatype.from_text(rtype))
    return record_set(name, rds) if rds else None


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
        return self.directory / f"{_file_stem(zone_name(zone))}.zone"

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
        origin = zone_name(zone)
        path = self.path_of(origin)
        with self._lock:
            stamp = _stamp(path)
            if stamp is None:
                self._cache.pop(origin, None)
                raise self._missing(origin)
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
        return sorted(record_set(name, rds) for name, node in data.nodes.items() for rds in node)

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
        origin = zone_name(zone)
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
        origin = zone_name(zone)
        path = self.path_of(origin)
        with self._locked(origin):
            if not path.is_file():
                raise self._missing(origin)
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
                before = _live(data, dns.name.from_text(name), rtype)
                if before is not None or after is not None:
                    changes.append(Change(before, after))
            _apply_changes(data, changes, check=True)
        return data.get_soa().serial

    # ---- files

    def _missing(self, origin: dns.name.Name) -> ZoneMissing:
        return ZoneMissing(f"no zone file for {origin} in {self.directory}")

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
            raise self._missing(origin) from None
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
    origin = origin_of(data)
    soa_rds = data.find_rdataset(origin, dns.rdatatype.SOA)
    soa = soa_rds[0]
    serial = (soa.serial + 1) % 2**32 or 1  # RFC 1982 arithmetic; 0 is avoided by convention
    data.replace_rdataset(origin, dns.rdataset.from_rdata(soa_rds.ttl, soa.replace(serial=serial)))


def _apply_changes(data: dns.zone.Zone, changes: Sequence[Change], check: bool) -> None:
    """Check every change first, then make them all: a refusal leaves ``data`` as it was."""
    _check_changes(data, origin_of(data), changes, check)
    _check_cname_rule(data, origin_of(data), changes)
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
        live = _live(data, name, change.type)
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
    wanted: dict[dns.name.Name, set[dns.rdatatype.RdataType]] = {}
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
