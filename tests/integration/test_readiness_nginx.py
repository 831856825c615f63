"""The web readiness checks against a real nginx on loopback, one server with every case as a site.

nginx chooses the site by SNI and Host exactly as it will once DNS points at it, so each
case below is a name on the same server: a good site, a certificate for other names, an
expired one, one expiring within ``cert_days``, a redirect, and a name the server has no
site for (its default page, and the default certificate).
"""

from __future__ import annotations

import dataclasses

import pytest

from cutover.readiness import FAILED, OK
from cutover.readiness.web import WebSettings, check_web
from tests.integration.servers import free_port
from tests.integration.servers.nginx import NginxServer, NginxSite, days_from_now, nginx_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

GOOD, WRONG, EXPIRED, SOON, MOVED, UNKNOWN = (f"{n}.example.test" for n in ("www", "wrong", "expired", "soon", "moved", "new"))


@pytest.fixture
def nginx(nginx_server) -> NginxServer:
    return nginx_server(
        NginxSite(GOOD),
        NginxSite(WRONG, cert_names=("other.example.net", "*.example.org")),
        NginxSite(EXPIRED, not_before=days_from_now(-90), not_after=days_from_now(-2)),
        NginxSite(SOON, not_after=days_from_now(5)),
        NginxSite(MOVED, redirect=f"https://{GOOD}/"),
    )


def settings(server: NginxServer, **changes) -> WebSettings:
    return dataclasses.replace(WebSettings(http_port=server.http_port, https_port=server.https_port, ca_file=server.ca_file,
                                           timeout=5.0), **changes)


def found(name: str, server: NginxServer, **changes) -> dict[str, tuple[str, str]]:
    checks = check_web(name, server.address, settings(server, **changes))
    assert [c.check for c in checks] == ["http", "https", "certificate"]
    assert {c.target for c in checks} == {f"127.0.0.1:{server.http_port}", f"127.0.0.1:{server.https_port}"}
    return {c.check: (c.state, c.detail) for c in checks}


def test_the_right_name_is_ready(nginx):
    result = found(GOOD, nginx)
    assert result["http"] == result["https"] == (OK, "200 OK")
    state, detail = result["certificate"]
    assert state == OK and detail.startswith("valid until ") and "issued by " in detail, detail


def test_a_wrong_name_certificate_names_what_it_covers(nginx):
    result = found(WRONG, nginx)
    assert result["https"] == (OK, "200 OK")
    assert result["certificate"] == (FAILED, f"not valid for {WRONG}: it covers other.example.net, *.example.org")


def test_an_expired_certificate(nginx):
    state, detail = found(EXPIRED, nginx)["certificate"]
    assert state == FAILED and detail.startswith("expired ") and detail.endswith(" UTC"), detail


def test_a_certificate_expiring_within_cert_days(nginx):
    state, detail = found(SOON, nginx)["certificate"]
    date = days_from_now(5).strftime("%Y-%m-%d")
    assert state == FAILED and detail.startswith(f"expires {date}") and detail.endswith("(ready.cert_days is 14)"), detail
    assert found(SOON, nginx, cert_days=3)["certificate"][0] == OK


def test_a_name_without_a_site_gets_the_default_page(nginx):
    result = found(UNKNOWN, nginx)
    default = (FAILED, "200 OK: the server's default page, not this site (Welcome to nginx!)")
    assert result["http"] == result["https"] == default
    assert result["certificate"] == (FAILED, f"not valid for {UNKNOWN}: it covers default.invalid")


def test_a_missing_path_fails_with_its_status(nginx):
    result = found(GOOD, nginx, path="/missing")
    assert result["http"] == result["https"] == (FAILED, "404 Not Found (accepted: 200, 301, 302)")
    assert result["certificate"][0] == OK


def test_a_redirect_is_ok_and_says_where(nginx):
    result = found(MOVED, nginx)
    assert result["http"] == result["https"] == (OK, f"301 Moved Permanently -> https://{GOOD}/")
    assert found(MOVED, nginx, statuses=(200,))["http"] == (FAILED, f"301 Moved Permanently -> https://{GOOD}/ (accepted: 200)")


def test_the_system_trust_store_does_not_trust_the_test_ca(nginx):
    assert found(GOOD, nginx, ca_file=None)["certificate"] == (FAILED, "not trusted: unable to get local issuer certificate")


def test_nothing_listening_is_connection_refused(nginx):
    nginx.stop()
    result = {c.check: (c.state, c.detail) for c in check_web(GOOD, "127.0.0.1", settings(nginx))}
    assert result == {"http": (FAILED, "connection refused"), "https": (FAILED, "connection refused"),
                      "certificate": (FAILED, "no certificate: connection refused")}
    other = {c.check: c.detail for c in check_web(GOOD, "127.0.0.1", WebSettings(http_port=free_port(), https_port=free_port()))}
    assert other["http"] == other["https"] == "connection refused"
