"""Talking DNS to one authoritative server: the plumbing shared by DNS-speaking providers.

The ``rfc2136`` provider reads and updates a zone at its primary server; the ``manual``
provider only reads. Both need the same few things done carefully: a TSIG key that
never shows its secret, a query that asks the server itself (recursion off, so a
resolver's cache can never answer for it), UDP with TCP when the answer is truncated,
one retry where asking again is harmless, and failures turned into messages that an
operator can act on without a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig

from cutover.errors import ProviderError
from cutover.records import RecordKey, RecordSet

DEFAULT_ALGORITHM = "hmac-sha256"

#: Queries in flight at once against one server. Reading 40 names one after another
#: at 200 ms each costs 8 s before every watch round; 16 at a time costs half a
#: second, and stays far below what an authoritative server's rate limit notices.
MAX_PARALLEL = 16

T = TypeVar("T")
R = TypeVar("R")

#: The HMAC algorithms dnspython can sign with, by their usual lower-case names.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-md5.sig-alg.reg.int": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha256-128": dns.tsig.HMAC_SHA256_128,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha384-192": dns.tsig.HMAC_SHA384_192,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha512-256": dns.tsig.HMAC_SHA512_256,
}

#: TSIG failures, from either end. They mean the key is wrong, not the network.
TSIG_ERRORS = (
    dns.tsig.PeerError,
    dns.tsig.BadSignature,
    dns.tsig.BadKey,
    dns.tsig.BadTime,
    dns.tsig.BadAlgorithm,
    dns.message.UnknownTSIGKey,
    dns.message.BadTSIG,
)


class ServerUnreachable(ProviderError):
    """No answer at all: timeout, connection refused, network down."""


class KeyRejected(ProviderError):
    """The server (or we) rejected the TSIG signature: wrong key name, secret, algorithm or clock."""


# --------------------------------------------------------------------------- TSIG


class TSIGKey(dns.tsig.Key):
    """A dnspython key whose repr names the key but not its secret.

    dnspython's own repr prints the secret; a key ends up in tracebacks, logs and
    debugger output, so ours must not."""

    def __repr__(self) -> str:
        return f"<TSIG key {self.name} ({self.algorithm})>"

    __str__ = __repr__


def algorithm_name(text: str) -> dns.name.Name:
    """The dnspython algorithm for ``hmac-sha256`` and friends; ``ValueError`` if unknown."""
    key = str(text).strip().lower().rstrip(".")
    if key not in ALGORITHMS:
        known = ", ".join(k for k in ALGORITHMS if "." not in k)
        raise ValueError(f"unknown TSIG algorithm {str(text)!r} (expected one of: {known})")
    return ALGORITHMS[key]


def decode_secret(secret: Any) -> bytes:
    """The key bytes of a base64 secret. The error message never contains the secret."""
    if not isinstance(secret, str) or not secret.strip():
        raise ValueError("must be a non-empty base64 string (the secret is not shown)")
    try:
        raw = base64.b64decode("".join(secret.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64 (the secret is not shown)") from None
    if not raw:
        raise ValueError("decodes to an empty key (the secret is not shown)")
    return raw


def tsig_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with ``tsig_name`` / ``tsig_secret`` / ``tsig_algorithm``, as (key, message).

    A name without a secret (or the reverse) is a mistake, not "no TSIG"."""
    problems: list[tuple[str, str]] = []
    name, secret = settings.get("tsig_name"), settings.get("tsig_secret")
    if (name is None) != (secret is None):
        missing = "tsig_secret" if secret is None else "tsig_name"
        problems.append((missing, "missing (tsig_name and tsig_secret go together)"))
    if name is not None:
        try:
            dns.name.from_text(str(name))
        except dns.exception.DNSException as exc:
            problems.append(("tsig_name", f"{str(name)!r} is not a valid key name ({exc})"))
    if secret is not None and not unresolved(secret):
        try:
            decode_secret(secret)
        except ValueError as exc:
            problems.append(("tsig_secret", str(exc)))
    if settings.get("tsig_algorithm") is not None:
        try:
            algorithm_name(settings["tsig_algorithm"])
        except ValueError as exc:
            problems.append(("tsig_algorithm", str(exc)))
    return problems


def unresolved(value: Any) -> bool:
    """A ``${VAR}`` left in place because the variable is unset: already reported by the plan."""
    return isinstance(value, str) and "${" in value


def key_from_settings(settings: Mapping[str, Any]) -> TSIGKey | None:
    """The TSIG key the settings describe, or None when they name none."""
    if settings.get("tsig_name") is None:
        return None
    try:
        secret = decode_secret(settings.get("tsig_secret"))
        algorithm = algorithm_name(settings.get("tsig_algorithm") or DEFAULT_ALGORITHM)
        name = dns.name.from_text(str(settings["tsig_name"]))
    except (ValueError, dns.exception.DNSException) as exc:
        raise ProviderError(f"TSIG key {settings['tsig_name']!r}: {exc}") from None
    return TSIGKey(name, secret, algorithm)


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class Server:
    """One DNS server to talk to, and how: address, port, per-try timeout, optional key."""

    address: str
    port: int = 53
    timeout: float = 5.0
    key: TSIGKey | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        """``address:port`` (IPv6 in brackets), the form the rest of cutover parses."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def key_name(self) -> str:
        return self.key.name.to_text() if self.key else ""


def resolve_host(host: str) -> str:
    """An IP address for ``host``: itself if it is one, else the system resolver's first answer."""
    text = str(host).strip().strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, 53, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ProviderError(f"cannot resolve DNS server name {text!r}: {exc.strerror or exc}") from None
    return str(infos[0][4][0])


def send(server: Server, message: dns.message.Message, tcp: bool = False) -> dns.message.Message:
    """One exchange, raw: dnspython's exceptions propagate. UDP falls back to TCP on TC."""
    if tcp:
        return dns.query.tcp(message, server.address, timeout=server.timeout, port=server.port)
    response, _ = dns.query.udp_with_fallback(
        message, server.address, timeout=server.timeout, port=server.port
    )
    return response


def ask(server: Server, message: dns.message.Message, what: str) -> dns.message.Message:
    """Send a message that is safe to repeat (a query or a transfer request).

    A lost UDP datagram is normal, so a timeout earns one more try, over TCP (which
    also gets past a path that drops large UDP answers). ``what`` names the request
    in error messages."""
    try:
        try:
            return send(server, message)
        except (dns.exception.Timeout, OSError):
            return send(server, message, tcp=True)
    except Exception as exc:
        raise explain(exc, server, what) from None


def explain(exc: BaseException, server: Server, what: str) -> ProviderError:
    """The ProviderError for a failed exchange. Names the key, never its secret."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TSIG_ERRORS):
        return KeyRejected(
            f"{what}: {server.endpoint} rejected TSIG key {server.key_name or '(none)'}: "
            f"{_tsig_reason(exc)}"
        )
    if isinstance(exc, dns.exception.Timeout):
        return ServerUnreachable(
            f"{what}: no answer from {server.endpoint} within {server.timeout:g}s (tried twice)"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return ServerUnreachable(f"{what}: cannot reach {server.endpoint}: {reason}")
    if isinstance(exc, dns.exception.DNSException):
        return ProviderError(f"{what}: bad answer from {server.endpoint}: {exc}")
    return ProviderError(f"{what}: {server.endpoint}: {type(exc).__name__}: {exc}")


def _tsig_reason(exc: BaseException) -> str:
    if isinstance(exc, dns.tsig.PeerBadKey):
        return "the server does not know a key by this name and algorithm (BADKEY)"
    if isinstance(exc, dns.tsig.PeerBadSignature):
        return "the signature did not verify: wrong secret or algorithm (BADSIG)"
    if isinstance(exc, (dns.tsig.PeerBadTime, dns.tsig.BadTime)):
        return "the clocks differ too much (BADTIME): check the time on both machines"
    if isinstance(exc, (dns.tsig.BadSignature, dns.message.UnknownTSIGKey, dns.tsig.BadKey)):
        return "the answer was not signed with our key: is the key right on both sides?"
    return type(exc).__name__


def check_rcode(response: dns.message.Message, server: Server, what: str, allowed: Collection[int]) -> None:
    """Raise a ProviderError unless the answer's rcode is one of ``allowed``."""
    if response.rcode() not in allowed:
        raise rcode_error(response.rcode(), server, what)


def rcode_error(rcode: dns.rcode.Rcode, server: Server, what: str) -> ProviderError:
    """The ProviderError for an answer with an error rcode, with the likely reason."""
    hint = {
        dns.rcode.REFUSED: "the server refused; it is not authoritative for this name or its policy forbids the request",
        dns.rcode.NOTAUTH: "the server is not authoritative for the zone, or the TSIG key was not accepted",
        dns.rcode.SERVFAIL: "the server failed (its log will say why)",
        dns.rcode.NOTIMP: "the server does not implement this request",
        dns.rcode.FORMERR: "the server could not parse the request",
    }.get(rcode, "unexpected answer")
    return ProviderError(f"{what}: {server.endpoint} answered {dns.rcode.to_text(rcode)}: {hint}")


# --------------------------------------------------------------------------- reading


def make_query(server: Server, name: str | dns.name.Name, rdtype: str | dns.rdatatype.RdataType) -> dns.message.Message:
    """A query with recursion off, signed when the server has a key.

    Recursion off: the answer must come from the server's own data; if it has none it
    says so rather than asking someone else."""
    q = dns.message.make_query(name, rdtype)
    q.flags &= ~dns.flags.RD
    if server.key is not None:
        q.use_tsig(server.key)
    return q


def query_rrset(server: Server, name: str, rdtype: str) -> dns.rrset.RRset | None:
    """The RRset ``name``/``rdtype`` exactly as the server holds it, or None when absent.

    A CNAME at ``name`` is not followed: asking for A where a CNAME is gives "no A".
    A referral (the name is below a delegation) is "absent" too: that data lives in
    the child zone, not here."""
    what = f"query {name} {rdtype}"
    response = ask(server, make_query(server, name, rdtype), what)
    check_rcode(response, server, what, (dns.rcode.NOERROR, dns.rcode.NXDOMAIN))
    owner = dns.name.from_text(name)
    rdt = dns.rdatatype.from_text(rdtype)
    found = response.get_rrset(response.answer, owner, dns.rdataclass.IN, rdt)
    if not (response.flags & dns.flags.AA):
        if found is None and not response.answer:
            return None  # a referral or an empty non-authoritative answer: not this zone's data
        raise ProviderError(
            f"{what}: {server.endpoint} answered without the authoritative flag: "
            "it is a resolver or a secondary that does not serve this zone"
        )
    return found


def to_recordset(rrset: dns.rrset.RRset | Any, name: dns.name.Name | None = None) -> RecordSet:
    """A RecordSet from a dnspython RRset (or an rdataset with its owner ``name``)."""
    owner = name if name is not None else rrset.name
    return RecordSet.build(
        owner.to_text(),
        dns.rdatatype.to_text(rrset.rdtype),
        rrset.ttl,
        (rd.to_text() for rd in rrset),
    )


def ns_set(response: dns.message.Message, name: str) -> list[RecordSet]:
    """The NS set of ``name`` in a response: in its answer, or, when the server refers
    (a delegation's NS set, or the parent's copy of a zone's), in its authority section.
    A delegation never comes back as an authoritative answer, so reading only the
    answer would report a delegation that exists as absent."""
    owner = dns.name.from_text(name)
    for section in (response.answer, response.authority):
        rrset = response.get_rrset(section, owner, dns.rdataclass.IN, dns.rdatatype.NS)
        if rrset is not None:
            return [to_recordset(rrset)]
    return []


def read_rrsets(server: Server, wanted: Iterable[RecordKey]) -> list[RecordSet]:
    """Read the given (name, type) sets, one query each, several in flight at once;
    absent sets are left out. The first failure (in key order) is raised, as a
    one-at-a-time read would have raised it."""
    found = concurrently(lambda key: _read_set(server, key), sorted(set(wanted)))
    return [rs for rs in found if rs is not None]


def _read_set(server: Server, key: RecordKey) -> RecordSet | None:
    rrset = query_rrset(server, key[0], key[1])
    return to_recordset(rrset) if rrset is not None and len(rrset) else None


def concurrently(fn: Callable[[T], R], items: Sequence[T], workers: int = MAX_PARALLEL) -> list[R]:
    """``[fn(i) for i in items]`` with at most ``workers`` calls running at once.

    Why not a plain loop: each call is one network round trip that mostly waits, so
    the wall time of a loop is the sum of the round trips. Why stop at the first
    failure: the callers treat any failed read as the whole read failed (an
    unreachable server is unreachable for every name), so no call starts after one
    failed, instead of each waiting out its own timeout; the calls already running
    finish (each is bounded by its timeout). The failure raised is the one of the
    earliest item, so the message does not depend on timing."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    failed = threading.Event()

    def guarded(item: T) -> R:
        if failed.is_set():
            raise _NotStarted()
        try:
            return fn(item)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix="dnsquery") as pool:
        futures = [pool.submit(guarded, item) for item in items]
        try:
            wait(futures)
        except BaseException:  # Ctrl-C: the calls not yet started must not run before we stop
            failed.set()
            raise
    if failed.is_set():
        raise _first_failure(futures)
    return [f.result() for f in futures]


class _NotStarted(Exception):
    """A call skipped because an earlier one failed."""


def _first_failure(futures: Sequence[Future]) -> BaseException:
    """The exception of the earliest item that failed (skipped ones did not run)."""
    for future in futures:
        exc = future.exception()
        if exc is not None and not isinstance(exc, _NotStarted):
            return exc
    raise AssertionError("no call failed")
