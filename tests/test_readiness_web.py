"""Web readiness checks: the judgements as pure functions, the wire against an in-process server.

The in-process server is ``http.server`` on 127.0.0.1 (and TLS with a ``trustme``
certificate on a second port); it records the Host header and SNI it was sent, so the
tests can see that the name, not the address, is what the server was asked for.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import trustme
from cryptography import x509

from cutover.readiness import FAILED, OK
from cutover.readiness.web import (Certificate, Reply, WebSettings, check_web, connection_error, default_page, judge_certificate,
                                   judge_reply, read_certificate, target)

NAME = "www.example.test"
DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
NGINX_PAGE = b"<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head><body><h1>Welcome to nginx!</h1></body></html>"


# --- statuses, redirects, default pages ----------------------------------------------


@pytest.mark.parametrize("reply, state, detail", [
    (Reply(200, "OK", body=b"<h1>Our shop</h1>"), OK, "200 OK"),
    (Reply(301, "Moved Permanently", "https://www.example.test/"), OK, "301 Moved Permanently -> https://www.example.test/"),
    (Reply(302, "Found", "/login"), OK, "302 Found -> /login"),
    (Reply(404, "Not Found"), FAILED, "404 Not Found (accepted: 200, 301, 302)"),
    (Reply(308, "Permanent Redirect", "https://elsewhere.test/"), FAILED,
     "308 Permanent Redirect -> https://elsewhere.test/ (accepted: 200, 301, 302)"),
    (Reply(503, "Service Unavailable"), FAILED, "503 Service Unavailable (accepted: 200, 301, 302)"),
    (Reply(200, "OK", body=NGINX_PAGE), FAILED, "200 OK: the server's default page, not this site (Welcome to nginx!)"),
])
def test_judge_reply(reply, state, detail):
    assert judge_reply(reply, (200, 301, 302)) == (state, detail)


def test_accepted_statuses_are_the_settings():
    assert judge_reply(Reply(308, "Permanent Redirect", "/x"), (200, 308)) == (OK, "308 Permanent Redirect -> /x")
    assert judge_reply(Reply(301, "Moved Permanently", "/x"), (200,))[0] == FAILED


@pytest.mark.parametrize("body, page", [
    (NGINX_PAGE, "Welcome to nginx!"),
    (b"<title>Apache2 Debian Default Page: It works</title>", "Apache2 Debian Default Page"),
    (b"<title>Apache2 Ubuntu Default Page: It works</title>", "Apache2 Ubuntu Default Page"),
    (b"<html><body><h1>It works!</h1></body></html>", "It works!"),
    (b'<html><head><title>IIS Windows Server</title></head><body><img src="iisstart.png"></body></html>', "IIS Windows Server"),
    (b"<title>IIS7</title>", "IIS7"),
    (b"<h1>Test Page for the Nginx HTTP Server on Fedora</h1>", "nginx test page"),
    (b"<h1>Our shop</h1><p>Proudly served by nginx. It works! says our CI.</p>", None),
    (b"", None),
    (b"\xff\xfe not utf-8", None),
])
def test_default_page(body, page):
    assert default_page(body) == page


def test_a_default_page_counts_only_as_a_200():
    """A 404 that happens to be a default page is judged by its status alone."""
    assert judge_reply(Reply(404, "Not Found", body=NGINX_PAGE), (200,)) == (FAILED, "404 Not Found (accepted: 200)")


@pytest.mark.parametrize("address, port, shown", [
    ("192.0.2.10", 80, "192.0.2.10:80"),
    ("2001:db8::10", 443, "[2001:db8::10]:443"),
    ("::1", 8443, "[::1]:8443"),
])
def test_target(address, port, shown):
    assert target(address, port) == shown


def test_an_address_is_required_not_a_name():
    with pytest.raises(ValueError):
        check_web(NAME, "www.example.test", WebSettings())


@pytest.mark.parametrize("exc, said", [
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (ConnectionResetError(104, "Connection reset by peer"), "connection reset"),
    (socket.timeout("timed out"), "timed out"),
    (TimeoutError(), "timed out"),
    (OSError(101, "Network is unreachable"), "Network is unreachable"),
])
def test_connection_error(exc, said):
    assert connection_error(exc) == said


# --- certificate judgement -------------------------------------------------------------


def cert(names=(NAME,), not_before=NOW - 30 * DAY, not_after=NOW + 60 * DAY, subject="", addresses=()) -> Certificate:
    return Certificate(subject, "Test CA", tuple(names), tuple(addresses), not_before, not_after)


def test_a_good_certificate_says_until_when_and_who_issued_it():
    assert judge_certificate(cert(), NAME, NOW, 14) == (OK, "valid until 2027-03-16 08:00 UTC (60 days), issued by Test CA")


def test_expiring_within_cert_days_fails_with_the_date():
    state, detail = judge_certificate(cert(not_after=NOW + 5 * DAY + 3 * 3600), NAME, NOW, 14)
    assert (state, detail) == (FAILED, "expires 2027-01-20 11:00 UTC, in 5 days 3 hours (ready.cert_days is 14)")


def test_cert_days_boundary():
    assert judge_certificate(cert(not_after=NOW + 14 * DAY), NAME, NOW, 14)[0] == OK
    assert judge_certificate(cert(not_after=NOW + 14 * DAY - 1), NAME, NOW, 14)[0] == FAILED
    assert judge_certificate(cert(not_after=NOW + 3600), NAME, NOW, 0)[0] == OK
    assert judge_certificate(cert(not_after=NOW + 3 * 3600), NAME, NOW, 1)[1].endswith("in 3 hours (ready.cert_days is 1)")


def test_expired_and_not_yet_valid():
    expired = cert(not_after=NOW - DAY)
    assert judge_certificate(expired, NAME, NOW, 14, (10, "certificate has expired")) == (FAILED, "expired 2027-01-14 08:00 UTC")
    assert judge_certificate(expired, NAME, NOW, 14) == (FAILED, "expired 2027-01-14 08:00 UTC")  # by `now` alone
    future = cert(not_before=NOW + 2 * DAY)
    assert judge_certificate(future, NAME, NOW, 14, (9, "certificate is not yet valid")) == (
        FAILED, "not valid before 2027-01-17 08:00 UTC")


def test_a_wrong_name_says_which_names_it_covers():
    other = cert(names=("other.example.net", "*.example.org"), addresses=("192.0.2.1",))
    error = (62, "Hostname mismatch, certificate is not valid for 'www.example.test'.")
    assert judge_certificate(other, NAME, NOW, 14, error) == (
        FAILED, "not valid for www.example.test: it covers other.example.net, *.example.org, 192.0.2.1")


def test_every_problem_is_listed():
    snakeoil = cert(names=(), subject="debian", not_after=NOW - DAY)
    state, detail = judge_certificate(snakeoil, NAME, NOW, 14, (18, "self-signed certificate"))
    assert (state, detail) == (FAILED, "not valid for www.example.test: it covers debian; expired 2027-01-14 08:00 UTC; "
                                       "not trusted: self-signed certificate")


def test_an_untrusted_chain_alone_is_reported_in_openssl_words():
    assert judge_certificate(cert(), NAME, NOW, 14, (20, "unable to get local issuer certificate")) == (
        FAILED, "not trusted: unable to get local issuer certificate")
    # OpenSSL says the name is wrong where this module would not: OpenSSL is the judge
    assert judge_certificate(cert(), NAME, NOW, 14, (62, "Hostname mismatch")) == (FAILED, "not trusted: Hostname mismatch")


@pytest.mark.parametrize("names, subject, valid", [
    (("*.example.test",), "", True),
    (("*.test",), "", False),  # a wildcard is one label
    (("*.www.example.test",), "", False),
    (("WWW.Example.Test",), "", True),
    ((), NAME, True),  # no DNS subjectAltName: the CN
    (("other.test",), NAME, False),  # a subjectAltName hides the CN
    (("www.example.test.",), "", True),
])
def test_name_matching(names, subject, valid):
    assert cert(names=names, subject=subject).valid_for(NAME) is valid


# --- reading certificates --------------------------------------------------------------


def test_read_certificate_agrees_with_cryptography():
    import datetime
    ca = trustme.CA()
    not_after = datetime.datetime(2031, 5, 4, 3, 2, 1, tzinfo=datetime.timezone.utc)
    leaf = ca.issue_cert(NAME, "*.shop.example.test", "192.0.2.7", "2001:db8::7", common_name="The Shop", not_after=not_after)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    parsed = x509.load_der_x509_certificate(der)
    got = read_certificate(der)
    assert got.dns_names == (NAME, "*.shop.example.test")
    assert got.addresses == ("192.0.2.7", "2001:db8::7")
    assert got.subject == "The Shop"
    assert got.issuer == parsed.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert got.not_after == not_after.timestamp()
    assert got.not_before == parsed.not_valid_before_utc.timestamp()


def test_a_certificate_without_extensions():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, NAME)])
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
             .serial_number(1).not_valid_before(datetime.datetime(1999, 1, 1, tzinfo=datetime.timezone.utc))
             .not_valid_after(datetime.datetime(2051, 1, 1, tzinfo=datetime.timezone.utc)).sign(key, hashes.SHA256()))
    got = read_certificate(built.public_bytes(serialization_der()))
    assert (got.subject, got.issuer, got.dns_names, got.covers) == (NAME, NAME, (), (NAME,))
    assert time.gmtime(got.not_before)[:3] == (1999, 1, 1)  # UTCTime, 19xx
    assert time.gmtime(got.not_after)[:3] == (2051, 1, 1)  # GeneralizedTime from 2050 on


def serialization_der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER


@pytest.mark.parametrize("der", [b"", b"\x30\x05\x01", b"\x30\x03\x02\x01\x01", b"not a certificate at all"])
def test_unreadable_certificates(der):
    with pytest.raises(ValueError, match="unreadable certificate"):
        read_certificate(der)


# --- against an in-process server ----------------------------------------------------


@dataclasses.dataclass
class Site:
    """An in-process web server: HTTP and HTTPS on 127.0.0.1, answering ``pages[path]``."""

    http_port: int
    https_port: int
    ca_file: str
    pages: dict[str, tuple[int, dict[str, str], bytes]]
    hosts: list[str]
    sni: list[str]

    def settings(self, **changes: Any) -> WebSettings:
        return dataclasses.replace(WebSettings(http_port=self.http_port, https_port=self.https_port, ca_file=self.ca_file,
                                               timeout=2.0), **changes)


def serve(httpd: ThreadingHTTPServer) -> ThreadingHTTPServer:
    httpd.daemon_threads = True
    httpd.handle_error = lambda *args: None  # type: ignore[method-assign]  # a failed handshake is part of some tests
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    pages: dict[str, tuple[int, dict[str, str], bytes]] = {"/": (200, {}, b"<h1>Our shop</h1>")}
    hosts: list[str] = []
    sni: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            hosts.append(self.headers.get("Host", ""))
            status, headers, body = pages.get(self.path, (404, {}, b"no such page"))
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(NAME).configure_cert(context)
    context.sni_callback = lambda sock, server_name, ctx: sni.append(server_name or "")
    plain = serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    serve(tls)
    yield Site(plain.server_address[1], tls.server_address[1], str(tmp_path / "ca.pem"), pages, hosts, sni)
    for httpd in (plain, tls):
        httpd.shutdown()
        httpd.server_close()


def states(checks) -> dict[str, tuple[str, str]]:
    return {c.check: (c.state, c.detail) for c in checks}


def test_a_ready_site(site):
    checks = check_web(NAME, "127.0.0.1", site.settings())
    assert [(c.check, c.target, c.name, c.state) for c in checks] == [
        ("http", f"127.0.0.1:{site.http_port}", NAME, OK),
        ("https", f"127.0.0.1:{site.https_port}", NAME, OK),
        ("certificate", f"127.0.0.1:{site.https_port}", NAME, OK),
    ]
    assert site.hosts == [f"{NAME}:{site.http_port}", f"{NAME}:{site.https_port}"]  # the name, never the address
    assert site.sni and set(site.sni) == {NAME}


def test_redirects_are_reported_not_followed(site):
    site.pages["/"] = (301, {"Location": "https://www.example.test/shop/"}, b"")
    found = states(check_web(NAME, "127.0.0.1", site.settings()))
    assert found["http"] == (OK, "301 Moved Permanently -> https://www.example.test/shop/")
    assert len(site.hosts) == 2


def test_path_and_status(site):
    found = states(check_web(NAME, "127.0.0.1", site.settings(path="/nothing-here")))
    assert found["http"] == found["https"] == (FAILED, "404 Not Found (accepted: 200, 301, 302)")
    assert found["certificate"][0] == OK


def test_default_page_over_the_wire(site):
    site.pages["/"] = (200, {}, NGINX_PAGE)
    found = states(check_web(NAME, "127.0.0.1", site.settings()))
    assert found["https"] == (FAILED, "200 OK: the server's default page, not this site (Welcome to nginx!)")


def test_certificate_dates_are_judged_at_now(site):
    later = time.time() + 20 * 365 * DAY  # trustme's certificates run to the year 3000
    assert states(check_web(NAME, "127.0.0.1", site.settings(), now=later))["certificate"][0] == OK
    state, detail = states(check_web(NAME, "127.0.0.1", site.settings(), now=32503680000.0 - 3 * DAY))["certificate"]
    assert (state, detail) == (FAILED, "expires 3000-01-01 00:00 UTC, in 3 days (ready.cert_days is 14)")
    assert states(check_web(NAME, "127.0.0.1", site.settings(), now=32503680000.0 + 1))["certificate"] == (
        FAILED, "expired 3000-01-01 00:00 UTC")


def test_wrong_name_over_the_wire(site):
    found = states(check_web("shop.example.test", "127.0.0.1", site.settings()))
    assert found["https"][0] == OK  # the page is judged apart from the certificate
    assert found["certificate"] == (FAILED, f"not valid for shop.example.test: it covers {NAME}")


def test_the_system_store_does_not_know_a_test_ca(site):
    assert states(check_web(NAME, "127.0.0.1", site.settings(ca_file=None)))["certificate"] == (
        FAILED, "not trusted: unable to get local issuer certificate")


def test_an_unreadable_ca_file(site, tmp_path):
    (tmp_path / "bad.pem").write_text("not PEM")
    state, detail = states(check_web(NAME, "127.0.0.1", site.settings(ca_file=str(tmp_path / "bad.pem"))))["certificate"]
    assert state == FAILED and detail.startswith(f"not trusted: cannot load ready.ca_file {tmp_path / 'bad.pem'}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening():
    settings = WebSettings(http_port=closed_port(), https_port=closed_port(), timeout=2.0)
    assert states(check_web(NAME, "127.0.0.1", settings)) == {
        "http": (FAILED, "connection refused"),
        "https": (FAILED, "connection refused"),
        "certificate": (FAILED, "no certificate: connection refused"),
    }


def test_a_silent_server_times_out():
    with socket.socket() as silent:  # listens, never accepts: the connection opens, no answer comes
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        found = states(check_web(NAME, "127.0.0.1", WebSettings(http_port=port, https_port=port, timeout=0.3)))
    assert found == {"http": (FAILED, "timed out"), "https": (FAILED, "timed out"),
                     "certificate": (FAILED, "no certificate: timed out")}


def test_plain_http_on_the_https_port(site):
    found = states(check_web(NAME, "127.0.0.1", site.settings(https_port=site.http_port)))
    assert found["https"][0] == FAILED and found["https"][1].startswith("TLS handshake failed: ")
    assert found["certificate"][1].startswith("no certificate: TLS handshake failed: ")


def test_ipv6(tmp_path):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")

    class V6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "/welcome")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = serve(V6(("::1", 0), Handler))
    try:
        port = httpd.server_address[1]
        checks = check_web(NAME, "::1", WebSettings(http_port=port, https_port=closed_port(), timeout=2.0))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (checks[0].target, checks[0].state, checks[0].detail) == (f"[::1]:{port}", OK, "302 Found -> /welcome")
