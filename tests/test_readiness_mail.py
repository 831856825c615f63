"""The SMTP readiness checks against in-process servers on loopback.

Two kinds of server: aiosmtpd (a real SMTP implementation, with STARTTLS and a certificate
from a test CA made by trustme) for whole conversations, and a scripted one written
here, for what aiosmtpd will not do on demand (a silent banner, a 421 or 554 greeting,
a refused EHLO). Both record every command they receive, so the tests can say that
``DATA`` is never sent and that ``QUIT`` always is.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import pytest
import trustme
from aiosmtpd.controller import Controller

from cutover.readiness import FAILED, OK, PENDING
from cutover.readiness import mail
from cutover.readiness.config import ReadyConfig
from cutover.readiness.mail import MailSettings, check_mx, check_old_mx, helo_name
from tests.integration.servers import free_port

ZONE = "example.test."
MX = "mx.example.test"


# --------------------------------------------------------------------------- aiosmtpd


@dataclass
class Recorder:
    """An aiosmtpd handler: answers RCPT (and MAIL) as told, and records every command."""

    rcpt: str = "250 2.1.5 Ok"
    mail_reply: str = "250 2.1.0 Ok"
    commands: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        self.commands.append(f"EHLO {hostname}" + (" (TLS)" if session.ssl else ""))
        session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):  # noqa: ANN001, ANN201
        self.commands.append(f"HELO {hostname}")
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: ANN001, ANN201
        self.commands.append(f"MAIL FROM:<{address.strip('<>')}>")  # aiosmtpd gives the null sender as "<>"
        if self.mail_reply.startswith("250"):
            envelope.mail_from = address
        return self.mail_reply

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: ANN001, ANN201
        self.commands.append(f"RCPT TO:<{address}>")
        return self.rcpt

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        self.commands.append("DATA")
        return "250 Ok"

    async def handle_QUIT(self, server, session, envelope):  # noqa: ANN001, ANN201
        self.commands.append("QUIT")
        return "221 Bye"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def tls_context(ca: trustme.CA, *names: str, **issue: object) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **issue).configure_cert(context)
    return context


@pytest.fixture
def smtp_server() -> Iterator:
    """``smtp_server(recorder, tls=context or None, host="127.0.0.1")``: an aiosmtpd on a free port."""
    started: list[Controller] = []

    def start(recorder: Recorder, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Controller:
        controller = Controller(recorder, hostname=host, port=free_port(), server_hostname=MX, ident="ESMTP test",
                                tls_context=tls, require_starttls=False, ready_timeout=10)
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def settings(port: int, **overrides: object) -> MailSettings:
    base: dict = {"port": port, "timeout": 3.0, "helo": "checker.example.test"}
    base.update(overrides)
    return MailSettings(**base)


def states(checks: list) -> dict[str, str]:
    return {c.check: c.state for c in checks}


def test_accepting_server_with_valid_certificate(smtp_server, ca, ca_file):
    recorder = Recorder()
    server = smtp_server(recorder, tls_context(ca, MX))
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file))
    assert [c.check for c in checks] == ["smtp", "starttls", "rcpt"]
    assert states(checks) == {"smtp": OK, "starttls": OK, "rcpt": OK}
    smtp, starttls, rcpt = checks
    assert all(c.target == f"127.0.0.1:{server.port}" and c.name == MX for c in checks)
    assert smtp.detail == f"banner 220 {MX} ESMTP test; EHLO checker.example.test accepted"
    assert starttls.detail.startswith(f"TLSv1.3, certificate for {MX} issued by trustme")
    assert rcpt.detail == "RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok"
    # EHLO twice (before and after STARTTLS), the null sender, the recipient, QUIT; never DATA
    assert recorder.commands == ["EHLO checker.example.test", "EHLO checker.example.test (TLS)", "MAIL FROM:<>",
                                 "RCPT TO:<postmaster@example.test>", "QUIT"]


@pytest.mark.parametrize("reply, state, words", [
    ("450 4.2.0 <postmaster@example.test>: Recipient address rejected: Greylisted", PENDING,
     "not ready yet: 450 4.2.0 <postmaster@example.test>: Recipient address rejected: Greylisted"),
    ("550 5.1.1 <postmaster@example.test>: Recipient address rejected: User unknown", FAILED,
     "refuses mail for this domain: 550 5.1.1 <postmaster@example.test>: Recipient address rejected: User unknown"),
])
def test_rcpt_4xx_is_not_ready_yet_and_5xx_refuses(smtp_server, ca, ca_file, reply, state, words):
    recorder = Recorder(rcpt=reply)
    server = smtp_server(recorder, tls_context(ca, MX))
    rcpt = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file))[-1]
    assert rcpt.check == "rcpt" and rcpt.state == state
    assert rcpt.detail == f"{words} (RCPT TO:<postmaster@example.test>)"
    assert "DATA" not in recorder.commands and recorder.commands[-1] == "QUIT"


def test_null_sender_refused(smtp_server, ca, ca_file):
    recorder = Recorder(mail_reply="553 5.1.7 The sender address <> is not accepted")
    server = smtp_server(recorder, tls_context(ca, MX))
    rcpt = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file))[-1]
    assert rcpt.state == FAILED
    assert rcpt.detail == ("refuses mail for this domain: 553 5.1.7 The sender address <> is not accepted "
                           "(MAIL FROM:<>, the null sender that bounces use)")
    assert not any(c.startswith("RCPT") for c in recorder.commands) and "DATA" not in recorder.commands


def test_rcpt_setting_local_part_or_whole_address(smtp_server):
    recorder = Recorder()
    server = smtp_server(recorder)
    check_mx(MX, "127.0.0.1", ZONE, settings(server.port, rcpt="hostmaster", starttls="optional"))
    check_mx(MX, "127.0.0.1", ZONE, settings(server.port, rcpt="ops@example.org", starttls="optional"))
    assert [c for c in recorder.commands if c.startswith("RCPT")] == ["RCPT TO:<hostmaster@example.test>",
                                                                      "RCPT TO:<ops@example.org>"]


def test_no_starttls_fails_when_required_and_passes_when_optional(smtp_server):
    recorder = Recorder()
    server = smtp_server(recorder, tls=None)
    required = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert states(required) == {"smtp": OK, "starttls": FAILED, "rcpt": OK}
    assert required[1].detail.startswith("STARTTLS not offered (EHLO lists: 8BITMIME, ")
    assert required[1].detail.endswith("): mail to this server would travel unencrypted")
    assert required[2].detail == "RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok, over plain SMTP"
    optional = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, starttls="optional"))
    assert states(optional) == {"smtp": OK, "starttls": OK, "rcpt": OK}
    assert optional[1].detail.endswith("would travel unencrypted (starttls: optional, so not a failure)")
    assert "DATA" not in recorder.commands


def test_wrong_name_certificate_fails_starttls_but_rcpt_is_still_asked(smtp_server, ca, ca_file):
    recorder = Recorder()
    server = smtp_server(recorder, tls_context(ca, "other.example.test"))
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file))
    assert states(checks) == {"smtp": OK, "starttls": FAILED, "rcpt": OK}
    assert checks[1].detail == (f"certificate not valid for {MX}: Hostname mismatch, certificate is not valid for "
                                f"'{MX}'. (checked against the CAs in {ca_file})")
    assert checks[2].detail == ("RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok, "
                                "over TLS without certificate checks, as most sending servers do")
    # the first connection ends at the failed handshake; the second goes on over TLS, unverified
    assert recorder.commands == ["EHLO checker.example.test", "EHLO checker.example.test", "EHLO checker.example.test (TLS)",
                                 "MAIL FROM:<>", "RCPT TO:<postmaster@example.test>", "QUIT"]


def test_untrusted_ca_fails_with_the_system_store(smtp_server, ca):
    server = smtp_server(Recorder(), tls_context(ca, MX))
    starttls = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))[1]
    assert starttls.state == FAILED
    assert "unable to get local issuer certificate" in starttls.detail and "the system's CAs" in starttls.detail


def test_expired_certificate(smtp_server, ca, ca_file):
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    server = smtp_server(Recorder(), tls_context(ca, MX, not_before=past, not_after=past + datetime.timedelta(days=90)))
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file))
    assert states(checks) == {"smtp": OK, "starttls": FAILED, "rcpt": OK}
    assert checks[1].detail.startswith(f"certificate not valid for {MX}: certificate has expired")


def test_certificate_expiring_within_cert_days(smtp_server, ca, ca_file):
    end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=30)
    server = smtp_server(Recorder(), tls_context(ca, MX, not_after=end))
    now = end.timestamp() - 10 * 86400
    soon = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file), now=now)[1]
    assert soon.state == FAILED
    assert soon.detail.endswith(f"expires on {end:%Y-%m-%d}, in 10 days: fewer than the 14 days required (ready.cert_days)")
    fine = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file, cert_days=7), now=now)[1]
    assert fine.state == OK and fine.detail.endswith(f"valid until {end:%Y-%m-%d} (10 days)")
    optional = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, ca_file=ca_file, starttls="optional"), now=now)[1]
    assert optional.state == OK and optional.detail.endswith("(starttls: optional, so not a failure)")


def test_ipv6_address(smtp_server, ca, ca_file):
    recorder = Recorder()
    server = smtp_server(recorder, tls_context(ca, MX), host="::1")
    checks = check_mx(MX, "::1", ZONE, settings(server.port, ca_file=ca_file))
    assert states(checks) == {"smtp": OK, "starttls": OK, "rcpt": OK}
    assert checks[0].target == f"[::1]:{server.port}"


# --------------------------------------------------------------------------- a scripted server


class Scripted:
    """A loopback SMTP server that follows a script: the banner (None: say nothing) and a
    reply per verb; records every line it receives. One connection at a time."""

    def __init__(self, banner: str | None, replies: dict[str, str] | None = None, not_tls: bool = False) -> None:
        self.banner, self.replies, self.not_tls = banner, replies or {}, not_tls
        self.received: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                self.talk(conn)

    def talk(self, conn: socket.socket) -> None:
        if self.banner is None:
            self.stopping.wait(5)
            return
        conn.sendall(f"{self.banner}\r\n".encode())
        buffer = b""
        while not self.stopping.is_set():
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                text = line.decode()
                self.received.append(text)
                verb = text.split()[0].upper() if text.split() else ""
                conn.sendall(f"{self.replies.get(verb, '250 Ok')}\r\n".encode())
                if verb == "QUIT":
                    return
                if verb == "STARTTLS" and self.not_tls:  # answer the ClientHello with an SMTP line
                    conn.recv(4096)
                    conn.sendall(b"250 this is not TLS\r\n")
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator:
    servers: list[Scripted] = []

    def make(banner: str | None, replies: dict[str, str] | None = None, not_tls: bool = False) -> Scripted:
        servers.append(Scripted(banner, replies, not_tls))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def test_banner_timeout_is_pending(scripted):
    server = scripted(None)
    started = time.monotonic()
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, timeout=0.5))
    assert time.monotonic() - started < 3
    assert len(checks) == 1 and checks[0].check == "smtp" and checks[0].state == PENDING
    assert checks[0].detail == f"not ready yet: no answer from 127.0.0.1:{server.port} within 0.5s at connect"


def test_banner_timeout_on_port_25_suggests_a_blocked_port(monkeypatch):
    talk = mail._Talk(step="connect", error="no answer", timed_out=True)
    state, detail = mail._unreachable(talk, "192.0.2.25:25", MailSettings())
    assert state == PENDING
    assert detail == ("not ready yet: no answer from 192.0.2.25:25 within 10s at connect "
                      "(is outbound port 25 blocked on this machine's network?)")


def test_connection_refused_fails():
    port = free_port()
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(port))
    assert [(c.check, c.state, c.detail) for c in checks] == [
        ("smtp", FAILED, f"nothing listens on 127.0.0.1:{port}: connection refused")]


@pytest.mark.parametrize("banner, state, detail", [
    ("421 4.3.2 mx.example.test Service not available, try later", PENDING,
     "banner not ready yet: 421 4.3.2 mx.example.test Service not available, try later"),
    ("554 5.7.1 No SMTP service here", FAILED, "banner refuses connections: 554 5.7.1 No SMTP service here"),
])
def test_banner_refusals(scripted, banner, state, detail):
    server = scripted(banner)
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert [(c.check, c.state, c.detail) for c in checks] == [("smtp", state, detail)]
    assert server.received == ["quit"]


def test_ehlo_refused_falls_back_to_helo(scripted):
    server = scripted("220 old.example.test SMTP", {"EHLO": "502 5.5.2 Command not recognised"})
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert states(checks) == {"smtp": OK, "starttls": FAILED, "rcpt": OK}
    assert checks[0].detail == ("banner 220 old.example.test SMTP; EHLO refused (502 5.5.2 Command not recognised), "
                                "HELO checker.example.test accepted: no ESMTP, so no STARTTLS")
    assert checks[1].detail == "STARTTLS not offered (EHLO lists: none): mail to this server would travel unencrypted"
    assert server.received == ["ehlo checker.example.test", "helo checker.example.test", "mail FROM:<>",
                               "rcpt TO:<postmaster@example.test>", "quit"]


def test_helo_refused(scripted):
    server = scripted("220 mx", {"EHLO": "550 5.7.1 go away", "HELO": "550 5.7.1 go away"})
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert [(c.check, c.state) for c in checks] == [("smtp", FAILED)]
    assert checks[0].detail == "banner 220 mx; refuses EHLO checker.example.test: 550 5.7.1 go away"


def test_starttls_answered_4xx_is_pending_and_rcpt_goes_on_in_plain(scripted):
    server = scripted("220 mx", {"EHLO": "250-mx\r\n250 STARTTLS", "STARTTLS": "454 4.7.0 TLS not available due to local problem"})
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert states(checks) == {"smtp": OK, "starttls": PENDING, "rcpt": OK}
    assert checks[1].detail == "not ready yet: 454 4.7.0 TLS not available due to local problem"
    assert checks[2].detail.endswith("over plain SMTP")
    assert server.received.count("STARTTLS") == 1 and "DATA" not in server.received


def test_starttls_handshake_failure_then_plain(scripted):
    # after its 220 the server sends an SMTP line where the TLS ServerHello should be
    server = scripted("220 mx", {"EHLO": "250-mx\r\n250 STARTTLS", "STARTTLS": "220 go ahead"}, not_tls=True)
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, timeout=2))
    assert checks[1].state == FAILED
    assert checks[1].detail.startswith("TLS handshake failed: [SSL: ")  # OpenSSL's words: wrong version number, ...
    assert checks[2].state == OK and checks[2].detail.endswith("over plain SMTP")
    assert server.received[-3:] == ["mail FROM:<>", "rcpt TO:<postmaster@example.test>", "quit"]


def test_starttls_handshake_timeout_is_pending(scripted):
    # the server says 220 to STARTTLS and then waits for an SMTP line that never comes
    server = scripted("220 mx", {"EHLO": "250-mx\r\n250 STARTTLS", "STARTTLS": "220 go ahead"})
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port, timeout=1))
    assert checks[1].state == PENDING
    assert checks[1].detail == f"not ready yet: no answer from 127.0.0.1:{server.port} within 1s after STARTTLS"
    assert checks[2].state == OK and checks[2].detail.endswith("over plain SMTP")


def test_old_mx(scripted, smtp_server):
    accepting = smtp_server(Recorder())
    ok = check_old_mx("old-mx.example.test", "127.0.0.1", ZONE, settings(accepting.port))
    assert (ok.check, ok.state) == ("old-mx", OK)
    assert ok.detail == "still accepts mail for example.test: RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok, over plain SMTP"
    refusing = smtp_server(Recorder(rcpt="550 5.1.1 <postmaster@example.test>: User unknown"))
    stopped = check_old_mx("old-mx.example.test", "127.0.0.1", ZONE, settings(refusing.port))
    assert stopped.state == FAILED
    assert stopped.detail == ("STOPPED accepting mail for example.test: refuses mail for this domain: "
                              "550 5.1.1 <postmaster@example.test>: User unknown (RCPT TO:<postmaster@example.test>, over plain SMTP)")
    later = smtp_server(Recorder(rcpt="451 4.3.0 try later"))
    assert check_old_mx("old-mx.example.test", "127.0.0.1", ZONE, settings(later.port)).state == PENDING
    port = free_port()
    gone = check_old_mx("old-mx.example.test", "127.0.0.1", ZONE, settings(port))
    assert gone.state == FAILED
    assert gone.detail == (f"STOPPED accepting mail for example.test: nothing listens on 127.0.0.1:{port}: "
                           "connection refused (RCPT TO:<postmaster@example.test>)")
    assert mail.rcpt_accepted is check_old_mx


def test_old_mx_with_tls_skips_certificate_checks(smtp_server, ca):
    recorder = Recorder()
    server = smtp_server(recorder, tls_context(ca, "somewhere-else.example.test"))
    check = check_old_mx("old-mx.example.test", "127.0.0.1", ZONE, settings(server.port))
    assert check.state == OK and check.detail.endswith("over TLS without certificate checks, as most sending servers do")
    assert recorder.commands == ["EHLO checker.example.test", "EHLO checker.example.test (TLS)", "MAIL FROM:<>",
                                 "RCPT TO:<postmaster@example.test>", "QUIT"]


# --------------------------------------------------------------------------- settings and names


def test_helo_name_defaults(monkeypatch):
    assert helo_name("mail.example.net", "127.0.0.1") == "mail.example.net"
    monkeypatch.setattr(mail, "_machine_name", lambda: "checker.example.net")
    assert helo_name(None, "127.0.0.1") == "checker.example.net"
    for name in ("vm", "localhost", "localhost.localdomain", "box.local"):
        monkeypatch.setattr(mail, "_machine_name", lambda name=name: name)
        assert helo_name(None, "192.0.2.5") == "[192.0.2.5]"
    assert helo_name(None, "2001:db8::5") == "[IPv6:2001:db8::5]"
    assert helo_name(None, "::ffff:192.0.2.5") == "[192.0.2.5]"


def test_default_helo_is_used_on_the_wire(monkeypatch, smtp_server):
    monkeypatch.setattr(mail, "_machine_name", lambda: "vm")
    recorder = Recorder()
    server = smtp_server(recorder)
    check_mx(MX, "127.0.0.1", ZONE, MailSettings(port=server.port, timeout=3, starttls="optional"))
    assert recorder.commands[0] == "EHLO [127.0.0.1]"


def test_settings():
    assert MailSettings().recipient("example.com.") == "postmaster@example.com"
    assert MailSettings(rcpt="ops@example.org").recipient("example.com") == "ops@example.org"
    with pytest.raises(ValueError, match="starttls must be one of required, optional"):
        MailSettings(starttls="sometimes")
    config = ReadyConfig(rcpt="abuse", smtp_port=2525, starttls="optional", ca_file="/tmp/ca.pem", cert_days=3, timeout=4.0)
    assert MailSettings.from_config(config) == MailSettings(rcpt="abuse", port=2525, starttls="optional",
                                                            ca_file="/tmp/ca.pem", cert_days=3, timeout=4.0)


def test_only_addresses_are_connected_to():
    with pytest.raises(ValueError, match="'mx.example.test' is not an IP address: an MX is checked at its address"):
        check_mx(MX, "mx.example.test", ZONE, MailSettings())
    assert mail.endpoint("2001:db8::25", 25) == "[2001:db8::25]:25"
    assert mail.endpoint("203.0.113.25", 587) == "203.0.113.25:587"


def test_reply_text():
    assert mail.Reply.of(250, b"mx\nPIPELINING\n").words == "250 mx / PIPELINING"


def test_ehlo_answered_421_is_pending(scripted):
    server = scripted("220 mx", {"EHLO": "421 4.7.0 mx Too many connections, try later"})
    checks = check_mx(MX, "127.0.0.1", ZONE, settings(server.port))
    assert [(c.check, c.state, c.detail) for c in checks] == [
        ("smtp", PENDING, "banner 220 mx; not ready yet: 421 4.7.0 mx Too many connections, try later")]
    assert server.received == ["ehlo checker.example.test", "quit"]
