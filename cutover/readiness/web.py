"""Web readiness: does the new server serve this name over HTTP and HTTPS, with a good certificate?

Before DNS moves, the name still resolves to the old server, so every check connects to
the new *address* itself and asks what a browser will ask once DNS has moved: ``GET
path`` with the name as ``Host`` and, over TLS, as SNI. Three checks per name and
address:

* ``http`` and ``https``: the status line, and where a redirect points (redirects are
  reported, never followed: following one would go through DNS, to the old server). A
  status outside ``ready.web.status`` fails, and so does a 200 that is the web server's
  own default page: that is what a server answers for a name it has no site for, and
  it is the classic "ready" server that is not;
* ``certificate``: verified as a browser would (chain against the system store, or
  ``ready.ca_file`` alone, and the name), not expired, not yet to come, and not
  expiring within ``ready.cert_days``. When verification fails, the certificate the
  ``https`` request saw (fetched without verification) says why in plain words: which
  names it covers, when it expired.

Nothing here resolves a name: ``address`` must be an IP address. A refused, reset or
silent connection is ``failed``, not ``pending``: the check is about a server that is
meant to be ready now, and retrying will not make it listen.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from cutover.readiness import FAILED, OK, Check

#: How much of a body is read to recognise a default page: those pages are small.
BODY_LIMIT = 64 * 1024
#: Markers of the pages web servers serve for a name they have no site for (lower case).
DEFAULT_PAGES = (
    ("<title>welcome to nginx!</title>", "Welcome to nginx!"),
    ("test page for the nginx http server", "nginx test page"),
    ("apache2 debian default page", "Apache2 Debian Default Page"),
    ("apache2 ubuntu default page", "Apache2 Ubuntu Default Page"),
    ("test page for the apache http server", "Apache test page"),
    ("<h1>it works!</h1>", "It works!"),
    ("<title>iis windows server</title>", "IIS Windows Server"),
    ("<title>iis7</title>", "IIS7"),
)
#: OpenSSL verification errors the certificate's own fields explain (hostname mismatch,
#: expired, not yet valid): when one of them is found, OpenSSL's wording adds nothing.
EXPLAINED_BY_FIELDS = {62, 10, 9}
_DAY = 86400


@dataclass(frozen=True)
class WebSettings:
    """``ready:`` as the web checks need it. ``ca_file`` None: the system's trust store;
    otherwise only that file's CAs are trusted (a private CA, a test CA)."""

    path: str = "/"
    statuses: tuple[int, ...] = (200, 301, 302)
    http_port: int = 80
    https_port: int = 443
    ca_file: str | None = None
    cert_days: int = 14
    timeout: float = 5.0


def check_web(name: str, address: str, settings: WebSettings, now: float | None = None) -> list[Check]:
    """The ``http``, ``https`` and ``certificate`` checks of ``name`` (a full name, no
    trailing dot) at ``address`` (IPv4 or IPv6, never resolved). ``now`` (epoch seconds)
    is the time the certificate dates are judged against; the TLS library's own
    verification always uses the real clock."""
    ipaddress.ip_address(address.split("%")[0])  # a name here would go through DNS: refuse it
    now = time.time() if now is None else now
    peer: list[bytes] = []
    plain = _request("http", name, address, settings.http_port, settings)
    secure = _request("https", name, address, settings.https_port, settings, _unverified(), peer)
    if peer:
        certificate = _certificate(name, address, settings, peer[0], now)
    else:
        reason = secure.detail if secure.state != OK else "the server sent none"
        certificate = Check("certificate", secure.target, name, FAILED, f"no certificate: {reason}")
    return [plain, secure, certificate]


def target(address: str, port: int) -> str:
    """``address:port``, with the brackets an IPv6 address needs to be read back."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --- HTTP ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What one request got: the status line, the redirect target, the start of the body."""

    status: int
    reason: str
    location: str = ""
    body: bytes = b""


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection to an address that speaks for a name: TCP to ``host`` (the
    address), TLS with SNI ``sni``; the peer's certificate (DER) is appended to ``peer``
    at the handshake, before ``http.client`` may close the socket."""

    def __init__(self, address: str, port: int, timeout: float, tls: ssl.SSLContext | None = None,
                 sni: str = "", peer: list[bytes] | None = None) -> None:
        super().__init__(address, port, timeout=timeout)
        self._tls, self._sni, self._peer = tls, sni, peer

    def connect(self) -> None:
        super().connect()
        if self._tls is not None:
            sock = self._tls.wrap_socket(self.sock, server_hostname=self._sni)
            self.sock = sock
            der = sock.getpeercert(binary_form=True)
            if der and self._peer is not None:
                self._peer.append(der)


def _fetch(name: str, address: str, port: int, settings: WebSettings, tls: ssl.SSLContext | None,
           peer: list[bytes] | None = None) -> Reply:
    """``GET path`` for ``name`` at ``address:port``; raises what the connection raises."""
    default_port = 443 if tls is not None else 80
    host = name if port == default_port else f"{name}:{port}"
    conn = _Connection(address, port, settings.timeout, tls, name, peer)
    try:
        conn.request("GET", settings.path, headers={"Host": host, "User-Agent": "cutover-readiness",
                                                    "Accept": "*/*", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT) if resp.status == 200 else b""
        return Reply(resp.status, resp.reason, resp.getheader("Location") or "", body)
    finally:
        conn.close()


def _unverified() -> ssl.SSLContext:
    """TLS that accepts any certificate: the ``https`` check judges the site, the
    ``certificate`` check the certificate, so a bad one does not hide the status."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _request(check: str, name: str, address: str, port: int, settings: WebSettings,
             tls: ssl.SSLContext | None = None, peer: list[bytes] | None = None) -> Check:
    try:
        reply = _fetch(name, address, port, settings, tls, peer)
    except (OSError, http.client.HTTPException) as exc:
        return Check(check, target(address, port), name, FAILED, connection_error(exc))
    return Check(check, target(address, port), name, *judge_reply(reply, settings.statuses))


def judge_reply(reply: Reply, statuses: tuple[int, ...]) -> tuple[str, str]:
    """(state, detail) of one reply: the status must be accepted, and a 200 must not be a
    default page. The detail is the status line, and `` -> Location`` for a redirect."""
    line = f"{reply.status} {reply.reason}".strip()
    if reply.location:
        line += f" -> {reply.location}"
    if reply.status not in statuses:
        accepted = ", ".join(str(s) for s in statuses)
        return FAILED, f"{line} (accepted: {accepted})"
    page = default_page(reply.body) if reply.status == 200 else None
    if page:
        return FAILED, f"{line}: the server's default page, not this site ({page})"
    return OK, line


def default_page(body: bytes) -> str | None:
    """Which web server's default page ``body`` is, or None for anything else."""
    text = body.decode("utf-8", errors="replace").lower()
    return next((label for marker, label in DEFAULT_PAGES if marker in text), None)


def connection_error(exc: BaseException) -> str:
    """A connection failure in a few words (the OS's wording for the rarer ones)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without answering"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer: {type(exc).__name__} {exc}".strip()
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


# --- the certificate ----------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """What a certificate says about itself: enough to explain why it is not good here.

    ``dns_names`` and ``addresses`` are its subjectAltName entries; ``subject`` and
    ``issuer`` their common names (or organisation); dates are epoch seconds."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    addresses: tuple[str, ...]
    not_before: float
    not_after: float

    @property
    def covers(self) -> tuple[str, ...]:
        """The names it is valid for: its subjectAltNames, else (as clients still accept) its CN."""
        return self.dns_names + self.addresses or ((self.subject,) if self.subject else ())

    def valid_for(self, name: str) -> bool:
        """RFC 6125 matching as OpenSSL does it for Python: exact, or ``*.`` for one whole
        leftmost label; the CN counts only when there is no DNS subjectAltName."""
        patterns = self.dns_names or ((self.subject,) if self.subject else ())
        return any(_matches(p, name) for p in patterns)


def _matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = name.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == name


def _certificate(name: str, address: str, settings: WebSettings, der: bytes, now: float) -> Check:
    """Verify as a browser would; describe the certificate the ``https`` request saw."""
    where = target(address, settings.https_port)
    try:
        cert = read_certificate(der)
    except ValueError as exc:
        return Check("certificate", where, name, FAILED, str(exc))
    state, detail = judge_certificate(cert, name, now, settings.cert_days, _verify(name, address, settings))
    return Check("certificate", where, name, state, detail)


def _verify(name: str, address: str, settings: WebSettings) -> tuple[int, str] | None:
    """None when a verifying handshake with SNI ``name`` succeeds, else (OpenSSL's
    verification code, 0 for other failures; the reason)."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        return 0, f"cannot load ready.ca_file {settings.ca_file}: {connection_error(exc)}"
    try:
        with socket.create_connection((address, settings.https_port), timeout=settings.timeout) as raw:
            with context.wrap_socket(raw, server_hostname=name):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_code, exc.verify_message or str(exc)
    except OSError as exc:
        return 0, f"verification failed: {connection_error(exc)}"


def judge_certificate(cert: Certificate, name: str, now: float, cert_days: int,
                      error: tuple[int, str] | None = None) -> tuple[str, str]:
    """(state, detail) of a certificate: ``error`` is the verification's failure, if any.
    Every problem found is listed, since fixing one and retrying to learn of the next
    costs a round trip to whoever issues certificates."""
    problems = []
    if error is not None and not cert.valid_for(name):
        problems.append(f"not valid for {name}: it covers {', '.join(cert.covers) or 'no names'}")
    if now >= cert.not_after:
        problems.append(f"expired {_date(cert.not_after)}")
    elif now < cert.not_before:
        problems.append(f"not valid before {_date(cert.not_before)}")
    if error is not None and (error[0] not in EXPLAINED_BY_FIELDS or not problems):
        problems.append(f"not trusted: {error[1]}")
    if problems:
        return FAILED, "; ".join(problems)
    left = _left(cert.not_after - now)
    if cert.not_after - now < cert_days * _DAY:
        return FAILED, f"expires {_date(cert.not_after)}, in {left} (ready.cert_days is {cert_days})"
    return OK, f"valid until {_date(cert.not_after)} ({left}), issued by {cert.issuer or 'an unnamed CA'}"


def _date(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _left(seconds: float) -> str:
    """``4 days 23 hours`` while the hours matter (under a month), else whole days."""
    days, hours = divmod(int(seconds // 3600), 24)
    if days >= 30 or not hours:
        return f"{days} day{'s' * (days != 1)}"
    return f"{days} day{'s' * (days != 1)} {hours} hour{'s' * (hours != 1)}" if days else f"{hours} hour{'s' * (hours != 1)}"


# --- reading a certificate -------------------------------------------------------------
# The standard library decodes only a certificate it has verified, and a certificate that
# failed verification is the one worth describing: ``cryptography`` reads any.


def read_certificate(der: bytes) -> Certificate:
    """The fields of a DER certificate that the checks report; ValueError if unreadable."""
    try:
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns_names = tuple(san.get_values_for_type(x509.DNSName))
            addresses = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            dns_names, addresses = (), ()
        return Certificate(_common_name(cert.subject), _common_name(cert.issuer), dns_names, addresses,
                           cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())
    except ValueError as exc:
        raise ValueError(f"unreadable certificate: {exc or type(exc).__name__}") from None


def _common_name(name: x509.Name) -> str:
    """A Name's CN, else its O: how people tell one CA or server from another."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        found = name.get_attributes_for_oid(oid)
        if found:
            value = found[0].value
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    return ""
