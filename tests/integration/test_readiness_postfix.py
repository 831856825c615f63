"""The mail readiness checks against a real Postfix on loopback.

Each case starts its own Postfix (``servers/postfix.py``) with a virtual alias domain the
test sets up and a certificate from a test CA (trustme): one accepting the domain, one
refusing it, one with a certificate for another name and one with an expired certificate;
then the old-MX check of ``watch``. After every conversation the queue is empty and
Postfix's own log shows no DATA: nothing was delivered.
"""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path

import pytest
import trustme

from cutover.readiness import FAILED, OK, PENDING
from cutover.readiness.mail import MailSettings, check_mx, check_old_mx
from tests.integration.servers.postfix import PostfixServer, PostfixSetup, postfix_server, tls_files  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

ZONE = "example.test."
MX = "mx.example.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def settings(server: PostfixServer, ca_file: str, **overrides: object) -> MailSettings:
    base: dict = {"port": server.port, "ca_file": ca_file, "timeout": 10.0, "helo": "checker.example.test"}
    base.update(overrides)
    return MailSettings(**base)


def nothing_delivered(server: PostfixServer, conversations: int) -> None:
    """No message queued, no DATA in Postfix's own account of each conversation, and
    every conversation that reached RCPT ended with QUIT. (Postfix opens a queue file at
    the first accepted RCPT; its cleanup daemon removes it after QUIT, a moment later.
    Each smtpd logs its summary when its client has gone, so the log can lag behind the
    checker: wait for the fixture's readiness probe plus ``conversations`` summaries.)"""
    deadline = time.monotonic() + 10
    summaries: list[str] = []
    while time.monotonic() < deadline:
        summaries = re.findall(r"disconnect from \S+ (.*)", server.log())
        if not server.queued() and len(summaries) >= conversations + 1:
            break
        time.sleep(0.1)
    assert server.queued() == []
    assert len(summaries) == conversations + 1, server.log()
    for summary in summaries:
        assert "data=" not in summary and "bdat=" not in summary, summary
    reached_rcpt = [s for s in summaries if "rcpt=" in s]
    assert reached_rcpt and all("quit=1" in s for s in reached_rcpt), summaries


def test_accepting_the_domain(postfix_server, ca, ca_file, tmp_path):
    server = postfix_server(PostfixSetup(domains=("example.test",), tls=tls_files(ca, tmp_path, MX)))
    checks = check_mx(MX, server.address, ZONE, settings(server, ca_file))
    assert [(c.check, c.state) for c in checks] == [("smtp", OK), ("starttls", OK), ("rcpt", OK)]
    smtp, starttls, rcpt = checks
    assert smtp.target == server.endpoint and smtp.name == MX
    assert smtp.detail == f"banner 220 {MX} ESMTP Postfix (cutover test); EHLO checker.example.test accepted"
    assert re.fullmatch(rf"TLSv1\.[23], certificate for {MX} issued by trustme.*, valid until \d{{4}}-\d\d-\d\d \(\d+ days\)",
                        starttls.detail), starttls.detail
    assert rcpt.detail == "RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok"
    nothing_delivered(server, 1)
    assert "starttls=1 mail=1 rcpt=1 quit=1" in server.log()


def test_refusing_the_domain(postfix_server, ca, ca_file, tmp_path):
    server = postfix_server(PostfixSetup(domains=("other.test",), tls=tls_files(ca, tmp_path, MX)))
    checks = check_mx(MX, server.address, ZONE, settings(server, ca_file))
    assert [(c.check, c.state) for c in checks] == [("smtp", OK), ("starttls", OK), ("rcpt", FAILED)]
    assert checks[2].detail == ("refuses mail for this domain: 554 5.7.1 <postmaster@example.test>: Relay access denied "
                                "(RCPT TO:<postmaster@example.test>)")
    # the domain is there but not the recipient: Postfix's own words say which
    unknown = check_mx(MX, server.address, "other.test", settings(server, ca_file, rcpt="abuse"))[2]
    assert unknown.state == FAILED
    assert unknown.detail == ("refuses mail for this domain: 550 5.1.1 <abuse@other.test>: Recipient address rejected: "
                              "User unknown in virtual alias table (RCPT TO:<abuse@other.test>)")
    nothing_delivered(server, 2)


def test_deferring_the_domain_is_not_ready_yet(postfix_server, ca, ca_file, tmp_path):
    server = postfix_server(PostfixSetup(domains=("other.test",), tls=tls_files(ca, tmp_path, MX), relay="defer"))
    rcpt = check_mx(MX, server.address, ZONE, settings(server, ca_file))[2]
    assert rcpt.state == PENDING
    assert rcpt.detail == ("not ready yet: 454 4.7.1 <postmaster@example.test>: Relay access denied "
                           "(RCPT TO:<postmaster@example.test>)")


def test_certificate_for_another_name(postfix_server, ca, ca_file, tmp_path):
    server = postfix_server(PostfixSetup(tls=tls_files(ca, tmp_path, "mail.other.test")))
    checks = check_mx(MX, server.address, ZONE, settings(server, ca_file))
    assert [(c.check, c.state) for c in checks] == [("smtp", OK), ("starttls", FAILED), ("rcpt", OK)]
    assert checks[1].detail == (f"certificate not valid for {MX}: Hostname mismatch, certificate is not valid for "
                                f"'{MX}'. (checked against the CAs in {ca_file})")
    assert checks[2].detail == ("RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok, "
                                "over TLS without certificate checks, as most sending servers do")
    optional = check_mx(MX, server.address, ZONE, settings(server, ca_file, starttls="optional"))
    assert [c.state for c in optional] == [OK, OK, OK]
    assert optional[1].detail.endswith("(starttls: optional, so not a failure)")
    nothing_delivered(server, 4)  # each check: the refused handshake, then RCPT without certificate checks


def test_expired_certificate(postfix_server, ca, ca_file, tmp_path):
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    tls = tls_files(ca, tmp_path, MX, not_before=start, not_after=start + datetime.timedelta(days=90))
    server = postfix_server(PostfixSetup(tls=tls))
    checks = check_mx(MX, server.address, ZONE, settings(server, ca_file))
    assert [(c.check, c.state) for c in checks] == [("smtp", OK), ("starttls", FAILED), ("rcpt", OK)]
    assert checks[1].detail == f"certificate not valid for {MX}: certificate has expired (checked against the CAs in {ca_file})"
    nothing_delivered(server, 2)  # the refused handshake, then RCPT over TLS without certificate checks


def test_no_tls_offered(postfix_server, ca_file):
    server = postfix_server(PostfixSetup(tls=None))
    checks = check_mx(MX, server.address, ZONE, settings(server, ca_file))
    assert [(c.check, c.state) for c in checks] == [("smtp", OK), ("starttls", FAILED), ("rcpt", OK)]
    assert "STARTTLS not offered" in checks[1].detail and "PIPELINING" in checks[1].detail
    assert checks[2].detail == "RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok, over plain SMTP"


def test_old_mx_accepts_then_stops(postfix_server, ca, ca_file, tmp_path):
    server = postfix_server(PostfixSetup(tls=tls_files(ca, tmp_path, "old-mx.example.test")))
    still = check_old_mx("old-mx.example.test", server.address, ZONE, settings(server, ca_file))
    assert (still.check, still.state) == ("old-mx", OK)
    assert still.detail.startswith("still accepts mail for example.test: RCPT TO:<postmaster@example.test>: 250 2.1.5 Ok")
    refusing = check_old_mx("old-mx.example.test", server.address, "moved.test", settings(server, ca_file))
    assert refusing.state == FAILED and refusing.detail.startswith(
        "STOPPED accepting mail for moved.test: refuses mail for this domain: 554 5.7.1 <postmaster@moved.test>: Relay access denied")
    nothing_delivered(server, 2)
    server.stop()
    gone = check_old_mx("old-mx.example.test", server.address, ZONE, settings(server, ca_file))
    assert gone.state == FAILED
    assert gone.detail == (f"STOPPED accepting mail for example.test: nothing listens on {server.endpoint}: "
                           "connection refused (RCPT TO:<postmaster@example.test>)")
