"""The ``rfc2136`` provider: a zone on a primary server that takes dynamic updates.

BIND, Knot, PowerDNS and Windows DNS all speak RFC 2136 (UPDATE), usually signed
with a TSIG key (RFC 8945). This provider reads the zone by zone transfer, changes
it with one UPDATE message per apply, and lets the server itself refuse a change to
a record that someone else changed after we read it: every change carries the
record set we read as a prerequisite, so there is no window between "check" and
"write" for a concurrent edit to slip through.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Collection, Literal, Mapping, Sequence

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update
import dns.xfr
import dns.zone

from cutover import integrity
from cutover.errors import DriftError, PartialApplyError, ProviderError
from cutover.records import Change, RecordKey, RecordSet, index
from providers import dnsquery
from providers.base import ApplyReceipt, Provider, drift_message, drifted
from providers.dnsquery import KeyRejected, Server

#: Record types a zone transfer carries that the server maintains itself (DNSSEC).
SERVER_MAINTAINED = frozenset({"RRSIG", "NSEC", "NSEC3", "NSEC3PARAM"})

#: The prerequisite failures: the zone is not as we read it.
PREREQUISITE_FAILED = frozenset(
    {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}
)

_HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")

ReadMode = Literal["axfr", "query"]


class RFC2136Provider(Provider):
    """A zone at its primary server, read by AXFR and changed by signed UPDATE.

    Reading: ``records()`` asks for a zone transfer (AXFR, signed with the key). When
    the server refuses or breaks off the transfer, which is common where only updates
    were granted to the key, it falls back to asking for each ``wanted`` record set
    directly (recursion off) and returns only those. ``read_mode`` then says
    ``"query"`` and ``lists_whole_zone`` becomes False *on this instance*, so the
    core knows it cannot judge what share of the zone a change touches. A refused
    TSIG signature or an unreachable server is an error, never a reason to fall back.

    Writing: see ``apply``.
    """

    settings_keys = ("server", "port", "tsig_name", "tsig_secret", "tsig_algorithm", "timeout")
    required_settings = ("server",)
    secret_settings = ("tsig_secret",)
    lists_whole_zone = True
    #: The server checks each change's ``before`` itself: a prerequisite in the update.
    backend_checks_before = True
    #: UPDATE carries any type in DNS's own wire format; the server decides what it takes.
    supported_types = None

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        self.origin = dns.name.from_text(zone)
        #: How the last ``records()`` read the zone: "axfr", "query", or None before any read.
        self.read_mode: ReadMode | None = None
        #: Why the transfer was not used, when ``read_mode`` is "query".
        self.fallback_reason = ""
        self._server: Server | None = None

    def __repr__(self) -> str:
        return f"<RFC2136Provider {self.zone} at {self.settings.get('server')}>"

    @property
    def service(self) -> str:
        return f"RFC 2136 server {self.settings.get('server')}"

    # ----------------------------------------------------------------- settings

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if "server" in settings and not dnsquery.unresolved(settings["server"]):
            message = _server_problem(settings["server"])
            if message:
                problems.append(("server", message))
        if "port" in settings and not dnsquery.unresolved(settings["port"]):
            try:
                _port(settings["port"])
            except ValueError as exc:
                problems.append(("port", str(exc)))
        if "timeout" in settings and not dnsquery.unresolved(settings["timeout"]):
            try:
                _timeout(settings["timeout"])
            except ValueError as exc:
                problems.append(("timeout", str(exc)))
        return problems + dnsquery.tsig_problems(settings)

    @property
    def server(self) -> Server:
        """Where to send queries and updates; built on first use (a host name is resolved)."""
        if self._server is None:
            try:
                port = _port(self.settings.get("port", 53))
                timeout = _timeout(self.settings.get("timeout", 5))
            except ValueError as exc:
                raise ProviderError(f"rfc2136 settings: {exc}") from None
            address = dnsquery.resolve_host(str(self.settings["server"]))
            key = dnsquery.key_from_settings(self.settings)
            self._server = Server(address, port, timeout, key)
        return self._server

    # ----------------------------------------------------------------- reading

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        try:
            found = self._transfer()
        except _TransferUnavailable as exc:
            found = self._query(wanted)
            self.read_mode, self.fallback_reason = "query", str(exc)
            self.lists_whole_zone = False
            return found
        self.read_mode, self.fallback_reason = "axfr", ""
        self.lists_whole_zone = True
        return found

    def _query(self, keys: Collection[RecordKey]) -> list[RecordSet]:
        """The given sets, one query each, several in flight at once (``dnsquery.concurrently``):
        a primary 200 ms away would otherwise cost 8 s for 40 names on every read."""
        server = self.server  # resolved once, here, not by every worker
        found = dnsquery.concurrently(lambda key: self._read_key(server, key), sorted(set(keys)))
        return sorted(rs for sets in found for rs in sets)

    def _read_key(self, server: Server, key: RecordKey) -> list[RecordSet]:
        """One set. A delegation's NS set (a zone cut below the apex) never comes back as
        an authoritative answer, only as the referral's authority section, so it is read
        from there; otherwise a created delegation would look absent and be reported as
        skipped by the server."""
        if key[1] == "NS" and key[0] != self.zone:
            return self._delegation(key[0])
        rrset = dnsquery.query_rrset(server, key[0], key[1])
        return [dnsquery.to_recordset(rrset)] if rrset is not None and len(rrset) else []

    def _delegation(self, name: str) -> list[RecordSet]:
        server, what = self.server, f"query {name} NS"
        response = dnsquery.ask(server, dnsquery.make_query(server, name, "NS"), what)
        dnsquery.check_rcode(response, server, what, (dns.rcode.NOERROR, dns.rcode.NXDOMAIN))
        return dnsquery.ns_set(response, name)

    def _transfer(self) -> list[RecordSet]:
        """The whole zone by AXFR; ``_TransferUnavailable`` when the server will not give it."""
        server, what = self.server, f"zone transfer of {self.zone}"
        zone = dns.zone.Zone(self.origin, relativize=False)
        request = dnsquery.make_query(server, self.origin, "AXFR")
        try:
            dns.query.inbound_xfr(server.address, zone, request, port=server.port, timeout=server.timeout)
        except dnsquery.TSIG_ERRORS as exc:
            raise self._transfer_key_error(exc, what) from None
        except ConnectionRefusedError as exc:
            raise dnsquery.explain(exc, server, what) from None
        except dns.xfr.TransferError as exc:
            raise _TransferUnavailable(f"the server refused the transfer ({dns.rcode.to_text(exc.rcode)})") from None
        except (dns.exception.DNSException, OSError) as exc:
            # A timeout here may be a firewall that drops TCP only; the queries will tell.
            raise _TransferUnavailable(f"the transfer failed: {type(exc).__name__}") from None
        found = []
        for name, node in zone.nodes.items():
            for rdataset in node.rdatasets:
                if dns.rdatatype.to_text(rdataset.rdtype) not in SERVER_MAINTAINED:
                    found.append(dnsquery.to_recordset(rdataset, name))
        return sorted(found)

    def _transfer_key_error(self, exc: BaseException, what: str) -> Exception:
        """A TSIG error on the transfer: a wrong key, or a key that may not transfer.

        Knot answers a transfer the key's ACL does not allow with NOTAUTH and the TSIG
        error BADKEY, exactly as for a key it does not know; a key set up the usual
        least-privilege way (update, no transfer) gets that answer. One signed SOA
        query with the same key tells the two apart: a server that verifies and signs
        that answer knows the key, so the transfer was refused by policy and the names
        are read by query. If the query is rejected too, the key itself is wrong, and
        that error (with the query's own reason: BADKEY, BADSIG, BADTIME) is the one
        to report; it is never a reason to fall back. A query that fails otherwise
        (unreachable, refused) is reported as it is: it is what happens now."""
        server = self.server
        try:
            dnsquery.query_rrset(server, self.zone, "SOA")
        except ProviderError as probe:
            return probe  # KeyRejected: the key is wrong, and the query's reason says how
        return _TransferUnavailable(
            f"{server.endpoint} refused the transfer of {self.zone} to TSIG key {server.key_name} "
            f"({_tsig_rcode(exc)}) yet accepts the key for queries: the key is not allowed to transfer the "
            "zone, so the managed names are read by query"
        )

    # ----------------------------------------------------------------- writing

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """All changes in ONE UPDATE message, which the server applies entirely or not at all.

        Prerequisites (RFC 2136 2.4) make the server check what we read, inside the
        same transaction as the write: an update or delete requires the exact record
        set we read (value-dependent, 2.4.2); a create requires that no such record
        set exists (2.4.3). If any fails the server changes nothing and answers
        NXRRSET/YXRRSET. The update then deletes each old set and adds each new one.

        Afterwards the changed sets are read back from the server: a primary may
        accept an update yet silently skip part of it (RFC 2136 3.4.2.2: a CNAME
        beside other data, the last apex NS), and that must not pass as success.
        """
        response, retried = self._send_update(changes)
        rcode = response.rcode()
        if rcode in PREREQUISITE_FAILED and retried and self._landed(changes) == [c.key for c in changes]:
            return ApplyReceipt(detail=f"{len(changes)} change(s) in one update (confirmed after a retry)")
        if rcode != dns.rcode.NOERROR:
            raise self._update_error(rcode, changes)
        try:
            landed = self._landed(changes)
        except ProviderError as exc:
            # The server said NOERROR, so the update happened; the core's own check at
            # the nameservers will see whether all of it is served.
            return ApplyReceipt(detail=f"{len(changes)} change(s) in one update (not read back: {exc})")
        if len(landed) != len(changes):
            missing = [f"{c.name} {c.type}" for c in changes if c.key not in landed]
            raise PartialApplyError(
                f"{self.server.endpoint} accepted the update of {self.zone} but does not serve the "
                f"new data for: {', '.join(missing)} (a server may skip parts of an update, e.g. a "
                "CNAME beside other data or the zone's last NS record; see its log)",
                landed,
            )
        return ApplyReceipt(detail=f"{len(changes)} change(s) in one update")

    def _send_update(self, changes: Sequence[Change]) -> tuple[dns.message.Message, bool]:
        """Send the update over TCP; the answer, and whether it took a second try.

        TCP, not UDP: an update with a few long TXT values outgrows a datagram, and a
        refused connection tells at once that nothing listens."""
        server, what = self.server, f"update of {self.zone}"
        try:
            return dnsquery.send(server, self._update_message(changes), tcp=True), False
        except (dns.exception.Timeout, ConnectionResetError, EOFError) as first:
            # An UPDATE is not idempotent in general, but this one is guarded by
            # prerequisites on exactly the data it replaces: if the first copy was
            # applied, a second one fails on its prerequisite instead of applying
            # twice, and a late first copy after a successful retry fails the same
            # way. So one retry is safe; ``apply`` only has to recognise "the
            # prerequisite failed because our own first copy landed". A fresh
            # message: the TSIG signature carries a time and must not be replayed.
            try:
                return dnsquery.send(server, self._update_message(changes), tcp=True), True
            except Exception as exc:
                raise dnsquery.explain(exc, server, what) from first
        except Exception as exc:
            raise dnsquery.explain(exc, server, what) from None

    def _update_message(self, changes: Sequence[Change]) -> dns.update.UpdateMessage:
        update = dns.update.UpdateMessage(self.origin, keyring=self.server.key)
        for change in changes:
            name = dns.name.from_text(change.name)
            if change.before is not None:
                # Prerequisite RRs carry TTL 0 (RFC 2136 3.2.1; BIND answers FORMERR otherwise).
                update.present(name, _rdataset(change.before, ttl=0))
            else:
                update.absent(name, change.type)
        # Every delete before every add: a CNAME may replace an A at the same name
        # only once the A is gone, within the same message.
        for change in changes:
            if change.before is not None:
                update.delete(dns.name.from_text(change.name), change.type)
        for change in changes:
            if change.after is not None:
                update.add(dns.name.from_text(change.name), _rdataset(change.after))
        return update

    def _landed(self, changes: Sequence[Change]) -> list[RecordKey]:
        """The keys whose live data is now each change's ``after``."""
        live = index(self._query([c.key for c in changes]))
        return [c.key for c in changes if live.get(c.key) == c.after]

    def _update_error(self, rcode: dns.rcode.Rcode, changes: Sequence[Change]) -> ProviderError:
        server, zone = self.server, self.zone
        key = f"TSIG key {server.key_name}" if server.key else "no TSIG key"
        where = f"update of {zone} at {server.endpoint}"
        if rcode in PREREQUISITE_FAILED:
            return DriftError(drift_message(f"{where} (prerequisite failed, {dns.rcode.to_text(rcode)})",
                                            zone, self._drift(changes), "nothing was changed"))
        if rcode == dns.rcode.NOTAUTH:
            return KeyRejected(
                f"{where}: NOTAUTH: the server is not authoritative for {zone}, "
                f"or it did not accept {key}"
            )
        if rcode == dns.rcode.REFUSED:
            return ProviderError(self._refused(changes))
        if rcode == dns.rcode.NOTZONE:
            return ProviderError(f"{where}: NOTZONE: a name in the update is outside zone {zone}")
        return dnsquery.rcode_error(rcode, server, where)

    def _refused(self, changes: Sequence[Change]) -> str:
        """Why an UPDATE may have been REFUSED; the rcode alone does not say.

        Three usual causes: the key's permissions (allow-update / update-policy), the
        content (BIND's check-integrity refuses an MX or apex NS whose in-zone target
        has no address), or the server's role (a secondary, or a zone it does not
        serve). The content is the one cutover can check for itself, so it does, and
        names the records when it finds them instead of blaming the key."""
        server, zone = self.server, self.zone
        where = f"update of {zone} at {server.endpoint}: REFUSED"
        key = f"TSIG key {server.key_name}" if server.key else "an unsigned update"
        policy = f"the server's allow-update / update-policy may not let {key} change {zone}, or not these names or types"
        role = f"the server may not be the primary of {zone} (a secondary refuses updates) or may not serve {zone} at all"
        found = self._integrity_problems(changes)
        if found:
            lines = "".join(f"\n  {p.message}" for p in found)
            return (f"{where}, most likely because of its content (BIND's check-integrity); nothing was "
                    f"changed:{lines}\nGive each such target an A or AAAA record in the same plan, or "
                    f"point the record at a name that has one. If that is not the cause: {policy}; or {role}. "
                    "The server's log names the reason.")
        checked = ("cutover found none in this update" if found is not None
                   else "cutover could not read the zone to look for one")
        return (f"{where}; nothing was changed. Possible causes: {policy}; or the server refused the content, "
                f"e.g. an MX or NS target inside the zone without an A or AAAA record (BIND's "
                f"check-integrity; {checked}); or {role}. The server's log names the reason.")

    def _integrity_problems(self, changes: Sequence[Change]) -> list[integrity.Problem] | None:
        """The problems in ``changes`` that make BIND refuse an update; None when the
        zone cannot be read to tell."""
        wanted = [*(c.key for c in changes), *integrity.target_keys(changes, self.zone), (self.zone, "NS")]
        try:
            live = index(self.records(wanted))
        except ProviderError:
            return None
        return [p for p in integrity.problems(changes, live, self.zone) if p.refused_by_bind]

    def _drift(self, changes: Sequence[Change]) -> list[str]:
        """Which record sets no longer hold what was read, when the server will tell us.

        By values only: a prerequisite compares the data, never the TTL."""
        try:
            live = index(self._query([c.key for c in changes]))
        except ProviderError:
            return []
        return drifted(changes, live, same=_same_values)

    # ----------------------------------------------------------------- nameservers

    def nameservers(self) -> list[str]:
        """The configured server (``address:port``) first, then the zone's NS names.

        The primary comes first because it is the one that certainly has the change
        (hidden primaries are common and are not in the NS set)."""
        server = self.server
        rrset = dnsquery.query_rrset(server, self.zone, "NS")
        names = sorted({rd.target.to_text().rstrip(".").lower() for rd in rrset or ()})
        return [server.endpoint, *names]


class _TransferUnavailable(Exception):
    """The server answered but would not (or could not) transfer the zone."""


def _tsig_rcode(exc: BaseException) -> str:
    """The TSIG error a server sent, as its name (what the operator sees in the server's log)."""
    names = {dns.tsig.PeerBadKey: "NOTAUTH/BADKEY", dns.tsig.PeerBadSignature: "NOTAUTH/BADSIG",
             dns.tsig.PeerBadTime: "NOTAUTH/BADTIME", dns.tsig.PeerBadTruncation: "NOTAUTH/BADTRUNC"}
    return next((text for cls, text in names.items() if isinstance(exc, cls)), type(exc).__name__)


def _same_values(now: RecordSet | None, before: RecordSet | None) -> bool:
    return (now.values if now else None) == (before.values if before else None)


def _rdataset(rs: RecordSet, ttl: int | None = None) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text_list(
        dns.rdataclass.IN, rs.type, rs.ttl if ttl is None else ttl, list(rs.values)
    )


def _server_problem(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return "must be the primary server's IP address or host name"
    text = value.strip()
    try:
        ipaddress.ip_address(text.strip("[]"))
        return ""
    except ValueError:
        pass
    if re.fullmatch(r"[^:\s]+:\d+|\[[^\]]+\]:\d+", text):
        return f"{text!r}: give the port in 'port', not in 'server'"
    if not _HOSTNAME.match(text):
        return f"{text!r} is not an IP address or host name"
    return ""


def _port(value: Any) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{value!r} is not a port number (expected 1-65535)")
    return int(text)


def _timeout(value: Any) -> float:
    try:
        seconds = float(str(value).strip().removesuffix("s"))
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if isinstance(value, bool) or not 0 < seconds <= 300:
        raise ValueError(f"{value!r} is not a timeout between 0 and 300 seconds")
    return seconds
