"""``ready:`` as read from a plan, and what a plan calls to be checked (pure)."""

from __future__ import annotations

import pytest

from cutover import plan as planmod
from cutover.errors import PlanError
from cutover.readiness import FAILED, OK, PENDING, SKIPPED, Check
from cutover.readiness.config import ReadyConfig
from cutover.readiness.run import documentation, reserved
from cutover.readiness.targets import Server, derive, keys_to_read
from cutover.records import RecordSet

MOVE = """
version: 1
zone: example.com
provider: {type: rfc2136, server: 127.0.0.1}
records:
  - {name: "@", type: A, from: [198.51.100.10], to: [203.0.113.10]}
  - {name: www, type: A, from: [198.51.100.10], to: [203.0.113.10]}
  - {name: www, type: AAAA, to: ["2001:db8::10"]}
  - {name: mail, type: A, from: [198.51.100.10], to: [203.0.113.25]}
  - {name: same, type: A, from: [203.0.113.99], to: [203.0.113.99]}
  - {name: "@", type: MX, from: ["10 mail.old-host.net."], to: ["10 mail", "20 mx.hosted.net."]}
  - {name: "@", type: TXT, to: ['"v=spf1 ip4:203.0.113.25 include:spf.hosted.net -all"']}
"""


def test_a_plan_without_ready_gets_the_defaults(write_plan):
    plan = planmod.load(write_plan(MOVE))
    assert plan.ready == ReadyConfig()
    assert (plan.ready.http_port, plan.ready.https_port, plan.ready.smtp_port, plan.ready.rcpt) == (80, 443, 25, "postmaster")
    assert (plan.ready.starttls, plan.ready.cert_days, plan.ready.old_every) == ("required", 14, 3600.0)


def test_ready_is_read_with_paths_beside_the_plan(write_plan, tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    plan = planmod.load(write_plan(MOVE + """
ready:
  web: {names: [www, "@"], path: /health, status: [200], ports: {http: 8080, https: 8443}}
  mail: {rcpt: ops@example.com, port: 2525, starttls: optional, sending: [203.0.113.25, "include:spf.protection.outlook.com"]}
  old: {every: 30m}
  ca_file: ca.pem
  cert_days: 30
  resolver: 127.0.0.1:5353
"""))
    r = plan.ready
    assert r.web_names == ("www", "@") and (r.web_path, r.web_status, r.http_port, r.https_port) == ("/health", (200,), 8080, 8443)
    assert (r.rcpt, r.smtp_port, r.starttls) == ("ops@example.com", 2525, "optional")
    assert r.sending == ("203.0.113.25", "include:spf.protection.outlook.com")
    assert (r.old_every, r.cert_days, r.resolver) == (1800.0, 30, ("127.0.0.1", 5353))
    assert r.ca_file == str((tmp_path / "ca.pem").resolve())


@pytest.mark.parametrize("ready, field, words", [
    ("{web: {status: [99]}}", "ready.web.status", "HTTP status codes"),
    ("{web: {path: health}}", "ready.web.path", "starting with /"),
    ("{web: {ports: {https: 0}}}", "ready.web.ports.https", "1-65535"),
    ("{web: {names: []}}", "ready.web.names", "list of names"),
    ("{mail: {starttls: maybe}}", "ready.mail.starttls", "required, optional"),
    ("{mail: {sending: [mail.example.net]}}", "ready.mail.sending", "include:DOMAIN"),
    ("{mail: {rcpt: '<x>'}}", "ready.mail.rcpt", "local part"),
    ("{old: {every: never}}", "ready.old.every", "never"),
    ("{ca_file: missing.pem}", "ready.ca_file", "no such file"),
    ("{cert_days: -1}", "ready.cert_days", "0 or more"),
    ("{resolver: dns.google}", "ready.resolver", "not an IP address"),
    ("{web: {pth: /}}", "ready.web.pth", "unknown key"),
])
def test_bad_ready_settings_name_the_field(write_plan, ready, field, words):
    with pytest.raises(PlanError) as caught:
        planmod.load(write_plan(MOVE + f"ready: {ready}\n"))
    assert f"{field}: " in str(caught.value) and words in str(caught.value)


def test_checks_come_from_the_plan_web_moves_mail_hosts_and_spf(write_plan):
    plan = planmod.load(write_plan(MOVE))
    t = derive(plan, {})
    # mail is an MX host: not a web site; "same" does not move
    assert t.web == (Server("example.com", ("203.0.113.10",)), Server("www.example.com", ("203.0.113.10", "2001:db8::10")))
    assert t.mail == (Server("mail.example.com", ("203.0.113.25",)), Server("mx.hosted.net", ()))
    assert t.old_mail == (Server("mail.old-host.net", ()),)
    assert (t.spf, t.spf_source) == ("v=spf1 ip4:203.0.113.25 include:spf.hosted.net -all", "plan")
    assert t.zone == "example.com" and t.dmarc is None and t.client_setup == ()


def test_web_names_narrow_the_checks_and_live_records_fill_in(write_plan):
    plan = planmod.load(write_plan(MOVE.replace('''  - {name: "@", type: TXT, to: ['"v=spf1 ip4:203.0.113.25 include:spf.hosted.net -all"']}\n''', "")
                                   + "ready: {web: {names: [www]}}\n"))
    live = {
        ("example.com.", "TXT"): RecordSet("example.com.", "TXT", 300, ('"v=spf1 mx -all"', '"google-site-verification=x"')),
        ("_dmarc.example.com.", "TXT"): RecordSet("_dmarc.example.com.", "TXT", 300, ('"v=DMARC1; p=reject"',)),
        ("autodiscover.example.com.", "CNAME"): RecordSet("autodiscover.example.com.", "CNAME", 300,
                                                          ("autodiscover.outlook.com.",)),
    }
    t = derive(plan, live)
    assert [s.name for s in t.web] == ["www.example.com"]
    assert (t.spf, t.spf_source, t.dmarc) == ("v=spf1 mx -all", "live", "v=DMARC1; p=reject")
    assert [rs.key for rs in t.client_setup] == [("autodiscover.example.com.", "CNAME")]


def test_old_mx_hosts_in_the_zone_keep_their_old_addresses(write_plan):
    plan = planmod.load(write_plan("""
version: 1
zone: example.com
provider: {type: rfc2136, server: 127.0.0.1}
records:
  - {name: "@", type: MX, from: ["10 mail"], to: ["10 mx2"]}
  - {name: mx2, type: A, to: [203.0.113.25]}
"""))
    live = {("mail.example.com.", "A"): RecordSet("mail.example.com.", "A", 300, ("198.51.100.25",))}
    t = derive(plan, live)
    assert t.mail == (Server("mx2.example.com", ("203.0.113.25",)),)
    assert t.old_mail == (Server("mail.example.com", ("198.51.100.25",)),)
    assert ("mail.example.com.", "A") in keys_to_read(plan) and ("example.com.", "MX") in keys_to_read(plan)


def test_documentation_addresses_and_reserved_names_are_never_contacted():
    assert documentation("192.0.2.1") and documentation("203.0.113.10") and documentation("2001:db8::1")
    assert not documentation("127.0.0.1") and not documentation("8.8.8.8") and not documentation("mail.example.com")
    assert reserved("mail.example.com") and reserved("example.org.") and reserved("x.test") and reserved("a.invalid")
    assert not reserved("outlook.com") and not reserved("myexample.com")


def test_a_check_is_ok_when_passed_or_not_checkable():
    assert [Check("http", "t", "n", s).ok for s in (OK, SKIPPED, PENDING, FAILED)] == [True, True, False, False]
    assert Check("rcpt", "127.0.0.1:25", "mx", PENDING, "451 try later").as_dict() == {
        "check": "rcpt", "target": "127.0.0.1:25", "name": "mx", "ok": False, "state": "pending", "detail": "451 try later"}
