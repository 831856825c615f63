"""Is the new MX ready? SMTP asked at the server's address, as a sending server would ask it.

``check_mx`` connects to one MX host's *address* (from the plan when the host is in the
zone, else from DNS: the caller's choice; this module never resolves a name) and has the
conversation any sending server has, up to the point where mail would start:

1. ``smtp``: the banner (220) and ``EHLO`` (``HELO`` when EHLO is refused);
2. ``starttls``: STARTTLS offered, the TLS handshake, the certificate valid for the MX
   host name (the name is the TLS server name, SNI, and what the certificate must cover)
   and for at least ``cert_days`` more days;
3. ``rcpt``: ``MAIL FROM:<>`` (the null sender: a server must accept it, bounces use it)
   then ``RCPT TO:<postmaster@zone>`` (or ``ready.mail.rcpt``).

Then ``QUIT``, always. Never ``DATA``: nothing is queued, nothing is delivered. A reply in
the 2xx range passes; 4xx is "not ready yet" (``pending``: a temporary refusal, a
greylist, a lookup failure on the server's side: try again later); 5xx is "refuses mail
for this domain" (``failed``); the server's own words follow in every case.

Decisions, and why:

- ``starttls: required`` (the default): the ``starttls`` check fails unless STARTTLS is
  offered, the handshake completes, the certificate chain is trusted (the system's CAs,
  or only ``ca_file``'s when set), it names the MX host and it is valid for
  ``cert_days`` more days. ``optional``: the same is looked at and said in the detail,
  but the check passes (mail still flows: senders fall back to plain SMTP or to TLS
  without certificate checks). Timeouts and a 4xx answer to STARTTLS are ``pending``
  under ``required``, like everywhere else.
- The RCPT check does not depend on the certificate: when the verified handshake fails,
  the check connects again and does what nearly every sending server does (RFC 7435
  opportunistic TLS): STARTTLS without certificate checks, or plain SMTP when the
  handshake itself fails. So one broken certificate gives one failed ``starttls`` and a
  true answer about the domain. At most three connections per MX.
- When a check stops the conversation (no banner, EHLO refused), the later checks are
  left out of the list rather than reported as "not checked": each listed check was
  made. A refused connection is ``failed`` (nothing listens); a timeout ``pending``
  (often outbound port 25 blocked on the checking machine's network, which the detail
  says).
- The HELO name: ``helo`` when set; else the machine's FQDN as ``smtplib`` would send it
  (``socket.getfqdn()``) when it is a dotted name other than localhost; else the
  address literal of the connection's own address (``[192.0.2.5]``, ``[IPv6:...]``),
  which RFC 5321 4.1.4 prescribes for a client without a name and which Postfix's
  ``reject_invalid_helo_hostname``/``reject_non_fqdn_helo_hostname`` accept. A server
  that checks the name in DNS (``reject_unknown_helo_hostname``) answers RCPT with a 4xx
  or 5xx naming the HELO; its words are in the detail, and ``helo`` fixes it.
- The connection goes to the address, never through DNS, with ``smtplib`` (standard
  library): its ``_get_socket`` hook is overridden so that the host name stays the TLS
  server name while the socket goes to the address (the hook ``SMTP_SSL`` and ``LMTP``
  override too).
- ``check_old_mx`` (also ``rcpt_accepted``) is the same RCPT conversation for the *old* MX during the parallel
  period (``watch``, every ``ready.old.every``): one ``old-mx`` check, TLS
  opportunistic (nobody checks the old server's certificate any more).
"""

from __future__ import annotations

import ipaddress
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from cutover.readiness import FAILED, OK, PENDING, Check

if TYPE_CHECKING:
    from cutover.readiness.config import ReadyConfig

STARTTLS_MODES = ("required", "optional")
Tls = Literal["verify", "unverified", "none"]
DAY = 86400.0


@dataclass(frozen=True)
class MailSettings:
    """How an MX is asked. ``rcpt``: a local part (``postmaster``, used @zone) or a whole
    address; ``ca_file``: trust only these CAs (PEM) instead of the system's; ``helo``:
    the EHLO name (None: the machine's FQDN, else an address literal; see the module)."""

    rcpt: str = "postmaster"
    port: int = 25
    starttls: str = "required"
    ca_file: str | None = None
    cert_days: int = 14
    timeout: float = 10.0
    helo: str | None = None

    def __post_init__(self) -> None:
        if self.starttls not in STARTTLS_MODES:
            raise ValueError(f"starttls must be one of {', '.join(STARTTLS_MODES)}, not {self.starttls!r}")

    @classmethod
    def from_config(cls, config: ReadyConfig) -> MailSettings:
        """The settings of a plan's ``ready:`` section."""
        return cls(rcpt=config.rcpt, port=config.smtp_port, starttls=config.starttls, ca_file=config.ca_file,
                   cert_days=config.cert_days, timeout=config.timeout, helo=config.helo)

    def recipient(self, zone: str) -> str:
        """``postmaster@example.com`` for ``postmaster`` in ``example.com.``; a whole address as is."""
        return self.rcpt if "@" in self.rcpt else f"{self.rcpt}@{zone.rstrip('.')}"


# --------------------------------------------------------------------------- one SMTP conversation


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: its code and its text, lines joined."""

    code: int
    text: str

    @property
    def words(self) -> str:
        return f"{self.code} {self.text}".strip()

    @classmethod
    def of(cls, code: int, message: bytes | str) -> Reply:
        text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
        return cls(code, " / ".join(line.strip() for line in text.splitlines() if line.strip()))


@dataclass
class _Talk:
    """What one conversation saw, step by step; ``error`` says why it ended early, at ``step``."""

    banner: Reply | None = None
    helo_name: str = ""
    ehlo: Reply | None = None
    helo: Reply | None = None  # after a refused EHLO
    extensions: tuple[str, ...] = ()
    offered: bool = False
    starttls: Reply | None = None
    tls_error: str = ""  # the handshake failed (certificate or otherwise)
    tls_verify_error: bool = False  # ... because the certificate was not accepted
    tls_version: str = ""
    cert: dict = field(default_factory=dict)  # the verified peer certificate (ssl's dict form)
    mail: Reply | None = None
    rcpt: Reply | None = None
    step: str = "connect"
    error: str = ""  # the connection failed or ended (not an SMTP reply)
    timed_out: bool = False
    refused: bool = False  # the TCP connection was refused

    @property
    def greeted(self) -> bool:
        hello = self.ehlo if self.ehlo is not None and self.ehlo.code == 250 else self.helo
        return self.banner is not None and self.banner.code == 220 and hello is not None and hello.code == 250

    @property
    def tls_failed(self) -> bool:
        """STARTTLS was tried and did not give a TLS session (refused, handshake failed, cut short)."""
        refused = self.starttls is not None and self.starttls.code != 220
        return refused or bool(self.tls_error) or (bool(self.error) and self.step == "STARTTLS")


class _Client(smtplib.SMTP):
    """``smtplib.SMTP`` whose socket goes to ``address`` while ``connect(host)`` keeps the
    host name for TLS (server name and certificate check)."""

    def __init__(self, address: str, timeout: float) -> None:
        self._address = address
        # local_hostname given, so smtplib does not call socket.getfqdn() (a DNS lookup) here
        super().__init__(local_hostname="cutover.invalid", timeout=timeout)

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        # smtplib takes the TLS server name from ``_host``, which only its constructor sets
        self._host = host
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout, self.source_address)


def _timed_out(exc: BaseException) -> bool:
    """smtplib turns a socket timeout into SMTPServerDisconnected; the timeout is its context."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (TimeoutError, socket.timeout)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@lru_cache(maxsize=1)
def _machine_name() -> str:
    return socket.getfqdn()


def helo_name(configured: str | None, local_address: str) -> str:
    """The EHLO name: ``configured``; the machine's dotted FQDN; else an address literal."""
    if configured:
        return configured
    name = _machine_name().rstrip(".").lower()
    if "." in name and not name.startswith("localhost") and not name.endswith((".localdomain", ".local")):
        return name
    ip = ipaddress.ip_address(local_address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return f"[IPv6:{ip}]"
    return f"[{ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip}]"


def _context(settings: MailSettings, tls: Tls) -> ssl.SSLContext:
    if tls == "verify":
        return ssl.create_default_context(cafile=settings.ca_file)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _talk(host: str, address: str, settings: MailSettings, recipient: str, tls: Tls) -> _Talk:
    """One conversation: banner, EHLO, STARTTLS (as ``tls`` says, when offered), MAIL FROM:<>,
    RCPT TO, QUIT. Never DATA."""
    talk = _Talk()
    client = _Client(address, settings.timeout)
    try:
        code, message = client.connect(host.rstrip("."), settings.port)
        talk.banner = Reply.of(code, message)
        if code != 220:
            return talk
        talk.step = "EHLO"
        assert client.sock is not None
        talk.helo_name = helo_name(settings.helo, client.sock.getsockname()[0])
        client.local_hostname = talk.helo_name
        talk.ehlo = Reply.of(*client.ehlo(talk.helo_name))
        if talk.ehlo.code // 100 == 4:  # 421 and the like: the server is closing, HELO would not help
            return talk
        if talk.ehlo.code != 250:  # 500/502: an old server without ESMTP
            talk.step = "HELO"
            talk.helo = Reply.of(*client.helo(talk.helo_name))
            if talk.helo.code != 250:
                return talk
        talk.extensions = tuple(sorted(k.upper() for k in client.esmtp_features))
        talk.offered = client.has_extn("starttls")
        if talk.offered and tls != "none":
            talk.step = "STARTTLS"
            if not _starttls(client, talk, _context(settings, tls)):
                return talk
            talk.step = "EHLO after STARTTLS"
            talk.ehlo = Reply.of(*client.ehlo(talk.helo_name))
            if talk.ehlo.code != 250:
                return talk
        talk.step = "MAIL FROM"
        talk.mail = Reply.of(*client.mail(""))
        if talk.mail.code // 100 != 2:
            return talk
        talk.step = "RCPT TO"
        talk.rcpt = Reply.of(*client.rcpt(recipient))
        return talk
    except (smtplib.SMTPException, OSError) as exc:
        talk.timed_out = _timed_out(exc)
        talk.refused = isinstance(exc, ConnectionRefusedError)
        talk.error = "no answer" if talk.timed_out else str(exc) or type(exc).__name__
        return talk
    finally:
        # QUIT when the conversation is in order; after a timeout or a failed handshake
        # the server is not listening for commands any more: close without waiting for it
        _quit(client, polite=not talk.error and not talk.tls_error)


def _starttls(client: _Client, talk: _Talk, context: ssl.SSLContext) -> bool:
    """STARTTLS and the handshake; False (with the reason in ``talk``) when it did not happen."""
    try:
        talk.starttls = Reply.of(*client.starttls(context=context))
    except smtplib.SMTPResponseException as exc:  # a non-220 answer to STARTTLS
        talk.starttls = Reply.of(exc.smtp_code, exc.smtp_error)
        return False
    except ssl.SSLCertVerificationError as exc:
        talk.tls_error, talk.tls_verify_error = exc.verify_message or str(exc), True
        return False
    except ssl.SSLError as exc:  # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        talk.tls_error = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or type(exc).__name__
        return False
    assert isinstance(client.sock, ssl.SSLSocket)
    talk.tls_version = client.sock.version() or ""
    talk.cert = dict(client.sock.getpeercert() or {})
    return True


def _quit(client: _Client, polite: bool) -> None:
    """QUIT when ``polite`` and the connection is still up; close it in every case."""
    try:
        if polite and client.sock is not None:
            client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


# --------------------------------------------------------------------------- the checks


def endpoint(address: str, port: int) -> str:
    """``203.0.113.25:25``, ``[2001:db8::25]:25``: a check's target."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address: an MX is checked at its address, never through DNS") from None


def check_mx(host: str, address: str, zone: str, settings: MailSettings, now: float | None = None) -> list[Check]:
    """The ``smtp``, ``starttls`` and ``rcpt`` checks of the MX ``host`` at ``address``.

    ``now`` (seconds since the epoch) is when the certificate's remaining days are counted
    from; the handshake itself is judged by OpenSSL at the real time."""
    address = _address(address)
    target = endpoint(address, settings.port)
    recipient = settings.recipient(zone)
    now = time.time() if now is None else now
    first = _talk(host, address, settings, recipient, "verify")
    smtp = _smtp_check(first, target, host, settings)
    if not smtp.ok:
        return [smtp]
    checks = [smtp, _starttls_check(first, target, host, settings, now)]
    checks.append(_rcpt_check(_as_a_sender(first, host, address, settings, recipient), target, host, recipient, settings))
    return checks


def _as_a_sender(first: _Talk, host: str, address: str, settings: MailSettings, recipient: str) -> _Talk:
    """The conversation that answers the RCPT question: ``first`` when its TLS worked (or
    was not offered); else again as a sending server would go on: TLS without certificate
    checks after a certificate problem, plain SMTP after any other TLS failure."""
    if not first.tls_failed:
        return first
    if first.tls_verify_error:
        second = _talk(host, address, settings, recipient, "unverified")
        if not second.tls_failed:
            return second
    return _talk(host, address, settings, recipient, "none")


def _unreachable(talk: _Talk, target: str, settings: MailSettings) -> tuple[str, str]:
    """State and words for a conversation that ended without an SMTP reply."""
    at = "at connect" if talk.step == "connect" else f"after {talk.step}" if talk.step == "STARTTLS" else f"at {talk.step}"
    if talk.timed_out:
        hint = " (is outbound port 25 blocked on this machine's network?)" if settings.port == 25 and talk.banner is None else ""
        return PENDING, f"not ready yet: no answer from {target} within {settings.timeout:g}s {at}{hint}"
    if talk.refused:
        return FAILED, f"nothing listens on {target}: connection refused"
    if talk.banner is None:
        return FAILED, f"cannot connect to {target}: {talk.error}"
    return PENDING, f"not ready yet: the connection ended {at}: {talk.error}"


def _by_code(reply: Reply, refused: str) -> tuple[str, str]:
    """2xx passes; 4xx is "not ready yet"; 5xx (and anything else) is ``refused``."""
    if reply.code // 100 == 2:
        return OK, reply.words
    if reply.code // 100 == 4:
        return PENDING, f"not ready yet: {reply.words}"
    return FAILED, f"{refused}: {reply.words}"


def _smtp_check(talk: _Talk, target: str, host: str, settings: MailSettings) -> Check:
    if talk.banner is None:
        state, detail = _unreachable(talk, target, settings)
        return Check("smtp", target, host, state, detail)
    if talk.banner.code != 220:
        state, detail = _by_code(talk.banner, "refuses connections")
        return Check("smtp", target, host, state, f"banner {detail}")
    if not talk.greeted:
        if talk.error:
            state, detail = _unreachable(talk, target, settings)
        else:
            hello = talk.helo or talk.ehlo
            assert hello is not None
            state, detail = _by_code(hello, f"refuses EHLO {talk.helo_name}")
        return Check("smtp", target, host, state, f"banner {talk.banner.words}; {detail}")
    how = f"EHLO {talk.helo_name} accepted"
    if talk.helo is not None:
        assert talk.ehlo is not None
        how = f"EHLO refused ({talk.ehlo.words}), HELO {talk.helo_name} accepted: no ESMTP, so no STARTTLS"
    return Check("smtp", target, host, OK, f"banner {talk.banner.words}; {how}")


def _starttls_check(talk: _Talk, target: str, host: str, settings: MailSettings, now: float) -> Check:
    state, detail = _starttls_state(talk, target, host, settings, now)
    if settings.starttls == "optional" and state != OK:
        return Check("starttls", target, host, OK, f"{detail} (starttls: optional, so not a failure)")
    return Check("starttls", target, host, state, detail)


def _starttls_state(talk: _Talk, target: str, host: str, settings: MailSettings, now: float) -> tuple[str, str]:
    name = host.rstrip(".")
    if not talk.offered:
        listed = ", ".join(talk.extensions) or "none"
        return FAILED, f"STARTTLS not offered (EHLO lists: {listed}): mail to this server would travel unencrypted"
    if talk.starttls is not None and talk.starttls.code != 220:
        return _by_code(talk.starttls, "refuses STARTTLS")
    if talk.tls_verify_error:
        trust = f"the CAs in {settings.ca_file}" if settings.ca_file else "the system's CAs"
        return FAILED, f"certificate not valid for {name}: {talk.tls_error} (checked against {trust})"
    if talk.tls_error:
        return FAILED, f"TLS handshake failed: {talk.tls_error}"
    if not talk.cert:  # the handshake was cut short (a timeout, a dropped connection)
        return _unreachable(talk, target, settings)
    expires = ssl.cert_time_to_seconds(talk.cert["notAfter"])
    days = (expires - now) / DAY
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    seen = f"{talk.tls_version}, certificate for {name} issued by {_issuer(talk.cert)}"
    if days < settings.cert_days:
        left = f"expired on {when}" if days < 0 else f"expires on {when}, in {days:.0f} days"
        return FAILED, f"{seen} {left}: fewer than the {settings.cert_days} days required (ready.cert_days)"
    return OK, f"{seen}, valid until {when} ({days:.0f} days)"


def _issuer(cert: dict) -> str:
    fields = {k: v for rdn in cert.get("issuer", ()) for k, v in rdn}
    return str(fields.get("organizationName") or fields.get("commonName") or "an unnamed CA")


def _rcpt_check(talk: _Talk, target: str, host: str, recipient: str, settings: MailSettings) -> Check:
    asked = f"RCPT TO:<{recipient}>"
    if talk.rcpt is not None:
        state, detail = _by_code(talk.rcpt, "refuses mail for this domain")
        over = _over(talk)
        return Check("rcpt", target, host, state, f"{asked}: {detail}{over}" if state == OK else f"{detail} ({asked}{over})")
    if talk.mail is not None:
        state, detail = _by_code(talk.mail, "refuses mail for this domain")
        return Check("rcpt", target, host, state, f"{detail} (MAIL FROM:<>, the null sender that bounces use)")
    if talk.error:
        state, detail = _unreachable(talk, target, settings)
        return Check("rcpt", target, host, state, f"{detail} ({asked})")
    reply = talk.banner if talk.banner is not None and talk.banner.code != 220 else talk.helo or talk.ehlo
    if reply is not None and reply.code // 100 != 2:
        state, detail = _by_code(reply, "refuses the conversation")
        return Check("rcpt", target, host, state, f"{detail} ({asked} not asked)")
    return Check("rcpt", target, host, FAILED, f"{asked} was not asked: the conversation ended early")


def _over(talk: _Talk) -> str:
    if talk.cert:
        return ""
    if talk.tls_version:
        return ", over TLS without certificate checks, as most sending servers do"
    return ", over plain SMTP"


def check_old_mx(host: str, address: str, zone: str, settings: MailSettings) -> Check:
    """The ``old-mx`` check for ``watch``: does the old MX still accept mail for ``zone``?

    The same ``MAIL FROM:<>``/``RCPT TO`` conversation as ``check_mx`` (then QUIT, never
    DATA), with STARTTLS when offered but without certificate checks (plain SMTP when
    that fails). 2xx: ``ok``, it still accepts; 4xx or a timeout: ``pending`` (not right
    now); 5xx or nothing listening: ``failed``, it has stopped accepting the mail that
    caches may still send there, and the detail says so in capitals."""
    address = _address(address)
    target = endpoint(address, settings.port)
    recipient = settings.recipient(zone)
    talk = _talk(host, address, settings, recipient, "unverified")
    if talk.tls_failed:
        talk = _talk(host, address, settings, recipient, "none")
    check = _rcpt_check(talk, target, host, recipient, settings)
    if check.ok:
        return Check("old-mx", target, host, OK, f"still accepts mail for {zone.rstrip('.')}: {check.detail}")
    if check.state == FAILED:
        return Check("old-mx", target, host, FAILED, f"STOPPED accepting mail for {zone.rstrip('.')}: {check.detail}")
    return Check("old-mx", target, host, check.state, check.detail)


#: The name the issue gives it: the RCPT question, for the old MX.
rcpt_accepted = check_old_mx
