"""SPF, DMARC and mail client records: the sending readiness checks.

Every DNS lookup the SPF evaluation makes goes to an in-process DNS server on 127.0.0.1
(``tests/integration/servers/dnsfake.py``), passed as ``nameservers``: never to the
system's resolver.
"""

from __future__ import annotations

import pytest
import spf

from cutover.readiness import FAILED, OK, PENDING
from cutover.readiness.sending import check_autodiscover, check_dmarc, check_spf, make_resolver, parse_dmarc
from cutover.records import RecordSet
from tests.integration.servers.dnsfake import FakeServer, fakenet  # noqa: F401 (fixture)

ZONE = "example.test"
OUTLOOK = "spf.protection.outlook.com"
RECORD = "v=spf1 ip4:203.0.113.0/28 a:mail.example.test include:_spf.example.test -all"


def txt(text: str) -> tuple[int, list[str]]:
    return (60, [f'"{text}"'])


@pytest.fixture
def dns_server(fakenet) -> FakeServer:  # noqa: F811
    """The zone's includes, the hosted service's record and a host for ``a:``."""
    return fakenet.add(origin="example.test.", records={
        ("_spf.example.test.", "TXT"): txt(f"v=spf1 ip4:198.51.100.7 include:{OUTLOOK} ~all"),
        (f"{OUTLOOK}.", "TXT"): txt("v=spf1 ip4:40.92.0.0/15 ip6:2a01:111:f400::/48 -all"),
        ("mail.example.test.", "A"): (60, ["192.0.2.44"]),
        ("example.test.", "MX"): (60, ["10 mail.example.test."]),
        ("redirected.example.test.", "TXT"): txt("v=spf1 ip4:198.51.100.99 -all"),
        ("soft.example.test.", "TXT"): txt(f"v=spf1 ~include:{OUTLOOK} -all"),
        ("after-all.example.test.", "TXT"): txt(f"v=spf1 -all include:{OUTLOOK}"),
        ("empty.example.test.", "TXT"): txt("not an spf record"),
    })


def spf_checks(server: FakeServer, record: str | None, sending: list[str], **kw) -> list:
    return check_spf(ZONE, record, sending, [("127.0.0.1", server.port)], timeout=2.0, **kw)


def one(server: FakeServer, record: str | None, entry: str, **kw):
    [check] = spf_checks(server, record, [entry], **kw)
    assert (check.check, check.target, check.name) == ("spf", ZONE, entry)
    return check


def test_addresses_authorised_directly_through_a_and_through_includes(dns_server):
    where = "the plan's SPF record for example.test"
    checks = spf_checks(dns_server, RECORD, ["203.0.113.5", "192.0.2.44", "198.51.100.7", "40.93.1.1", "2a01:111:f400::25"],
                        source="plan")
    assert [(c.name, c.state, c.detail) for c in checks] == [
        ("203.0.113.5", OK, f"pass: {where} authorises 203.0.113.5 through ip4:203.0.113.0/28"),
        ("192.0.2.44", OK, f"pass: {where} authorises 192.0.2.44 through a:mail.example.test"),
        ("198.51.100.7", OK, f"pass: {where} authorises 198.51.100.7 through include:_spf.example.test"),
        ("40.93.1.1", OK, f"pass: {where} authorises 40.93.1.1 through include:_spf.example.test"),
        ("2a01:111:f400::25", OK, f"pass: {where} authorises 2a01:111:f400::25 through include:_spf.example.test"),
    ]
    assert dns_server.queries > 0  # the lookups went to the loopback server


def test_address_not_authorised_says_what_to_add(dns_server):
    check = one(dns_server, RECORD, "203.0.113.25", source="live")
    assert check.state == FAILED
    assert check.detail == ("fail (-all): the live SPF record of example.test does not authorise 203.0.113.25; "
                            "add ip4:203.0.113.25 before its 'all'")
    soft = one(dns_server, "v=spf1 ip4:192.0.2.1 ~all", "2001:db8::25")
    assert soft.detail == ("softfail (~all): the SPF record of example.test does not authorise 2001:db8::25; "
                           "add ip6:2001:db8::25 before its 'all'")
    neutral = one(dns_server, "v=spf1 ip4:192.0.2.1", "203.0.113.25")
    assert neutral.state == FAILED and neutral.detail.startswith("neutral (no term matches): ")


def test_mx_mechanism(dns_server):
    check = one(dns_server, "v=spf1 mx -all", "192.0.2.44")
    assert check.state == OK and check.detail.endswith("through mx")


def test_include_of_a_name_that_does_not_exist(dns_server):
    check = one(dns_server, "v=spf1 include:nowhere.example.test -all", "include:nowhere.example.test")
    assert check.state == FAILED
    assert check.detail.endswith("but nowhere.example.test publishes no SPF record: a permerror for every sender")


def test_networks_need_both_ends(dns_server):
    inside = one(dns_server, RECORD, "203.0.113.0/28")
    assert inside.state == OK
    assert inside.detail == ("pass: the SPF record of example.test authorises 203.0.113.0/28 (its first and last addresses, "
                             "203.0.113.0 and 203.0.113.15) through ip4:203.0.113.0/28")
    wider = one(dns_server, RECORD, "203.0.113.0/24")
    assert wider.state == FAILED
    assert wider.detail == ("fail (-all): the SPF record of example.test does not authorise 203.0.113.255 (in 203.0.113.0/24); "
                            "add ip4:203.0.113.0/24 before its 'all'")


def test_redirect_is_followed(dns_server):
    record = "v=spf1 ip4:203.0.113.0/28 redirect=redirected.example.test"
    assert one(dns_server, record, "198.51.100.99").state == OK
    assert one(dns_server, record, "198.51.100.98").detail.startswith("fail (")


def test_includes_found_in_the_tree(dns_server):
    nested = one(dns_server, RECORD, f"include:{OUTLOOK}", source="plan")
    assert nested.state == OK
    assert nested.detail == f"the plan's SPF record for example.test includes {OUTLOOK} (through include:_spf.example.test)"
    direct = one(dns_server, f"v=spf1 include:{OUTLOOK} -all", f"include:{OUTLOOK}.")
    assert direct.state == OK and direct.detail == f"the SPF record of example.test includes {OUTLOOK}"
    redirected = one(dns_server, "v=spf1 redirect=_spf.example.test", f"include:{OUTLOOK}")
    assert redirected.state == OK and redirected.detail.endswith("(through redirect=_spf.example.test)")


def test_includes_missing_or_useless(dns_server):
    missing = one(dns_server, "v=spf1 ip4:203.0.113.0/28 -all", f"include:{OUTLOOK}", source="plan")
    assert missing.state == FAILED
    assert missing.detail == (f"not in the plan's SPF record for example.test nor in the records it includes; "
                              f"add include:{OUTLOOK} before its 'all'")
    after_all = one(dns_server, "v=spf1 include:after-all.example.test -all", f"include:{OUTLOOK}")
    assert after_all.state == FAILED  # terms after 'all' are never evaluated
    soft = one(dns_server, "v=spf1 redirect=soft.example.test", f"include:{OUTLOOK}")
    assert soft.state == FAILED
    assert soft.detail == (f"the SPF record of example.test has include:{OUTLOOK} (through redirect=soft.example.test) "
                           "with the softfail qualifier: only + (or none) authorises")
    empty = one(dns_server, "v=spf1 include:empty.example.test -all", "include:empty.example.test")
    assert empty.state == FAILED
    assert empty.detail == ("the SPF record of example.test includes empty.example.test, but empty.example.test "
                            "publishes no SPF record: a permerror for every sender")


def test_broken_record_is_a_permerror(dns_server):
    record = "v=spf1 ip4:203.0.113.0/28 frobnicate -all"
    address = one(dns_server, record, "203.0.113.5")
    assert address.state == FAILED
    assert address.detail == ("the SPF record of example.test is broken (permerror): "
                              "SPF Permanent Error: Unknown mechanism found: frobnicate")
    include = one(dns_server, f"v=spf1 include:{OUTLOOK} frobnicate -all", f"include:{OUTLOOK}")
    assert include.state == FAILED and "broken (permerror)" in include.detail


def test_too_many_lookups_is_a_permerror(dns_server):
    for n in range(11):
        dns_server.set(f"l{n}", "TXT", 60, [f'"v=spf1 include:l{n + 1}.example.test"' if n < 10 else '"v=spf1 -all"'])
    check = one(dns_server, "v=spf1 include:l0.example.test -all", "203.0.113.5")
    assert check.state == FAILED and "Too many DNS lookups" in check.detail


def test_no_record(dns_server):
    checks = spf_checks(dns_server, None, ["203.0.113.25", f"include:{OUTLOOK}", "2001:db8::/64"])
    suggestion = f'"v=spf1 ip4:203.0.113.25 include:{OUTLOOK} ip6:2001:db8::/64 -all"'
    assert [(c.state, c.detail) for c in checks] == [
        (FAILED, f"example.test publishes no SPF record after the change; publish one, e.g. {suggestion}")] * 3
    assert spf_checks(dns_server, RECORD, []) == []


def test_dns_failure_is_pending(fakenet):  # noqa: F811
    silent = fakenet.add(behaviour="drop")
    record = "v=spf1 include:_spf.example.test -all"
    [address, include] = check_spf(ZONE, record, ["203.0.113.5", f"include:{OUTLOOK}"], [("127.0.0.1", silent.port)],
                                   timeout=0.3)
    assert address.state == PENDING and address.detail.startswith(
        "not ready yet: the SPF record of example.test could not be evaluated for 203.0.113.5: SPF Temporary Error: DNS ")
    assert include.state == PENDING and include.detail.startswith("not ready yet: the record's includes could not be read")
    assert silent.queries > 0


def test_the_pyspf_hook_is_restored(dns_server):
    before = spf.DNSLookup
    one(dns_server, RECORD, "203.0.113.5")
    assert spf.DNSLookup is before


def test_resolver_settings():
    resolver = make_resolver([("127.0.0.1", 5353), ("::1", 53)], 3.0)
    assert [(n.address, n.port) for n in resolver.nameservers] == [("127.0.0.1", 5353), ("::1", 53)]
    assert resolver.lifetime == 3.0


# --------------------------------------------------------------------------- DMARC


@pytest.mark.parametrize("record, state, detail", [
    (None, OK, "no DMARC record (the plan's): receivers apply their own policy (informational; p=none with rua= is the usual first step)"),
    ("v=DMARC1; p=reject; rua=mailto:dmarc@example.test; pct=100", OK, "p=reject, pct=100, rua=mailto:dmarc@example.test (the plan's)"),
    ("v=DMARC1;p=quarantine;sp=none;adkim=s", OK, "p=quarantine, sp=none, adkim=s (the plan's)"),
    ("v=DMARC1; rua=mailto:d@example.test", OK,
     "p=none, rua=mailto:d@example.test (the plan's) (no p=, but rua= is there: receivers treat it as p=none, RFC 7489 6.6.3)"),
    ("v=DMARC1; p=block", FAILED, "'v=DMARC1; p=block' (the plan's) has no valid p= (none/quarantine/reject): receivers ignore it"),
    ("v=DMARC1", FAILED, "'v=DMARC1' (the plan's) has no valid p= (none/quarantine/reject): receivers ignore it"),
    ("p=reject; v=DMARC1", FAILED, "'p=reject; v=DMARC1' (the plan's) does not start with v=DMARC1: receivers ignore it"),
])
def test_dmarc(record, state, detail):
    check = check_dmarc("example.test.", record, source="plan")
    assert (check.check, check.target, check.name) == ("dmarc", "_dmarc.example.test", "example.test")
    assert (check.state, check.detail) == (state, detail)


def test_dmarc_live_and_tags():
    assert check_dmarc(ZONE, "v=DMARC1; p=none", source="live").detail == "p=none (live)"
    assert check_dmarc(ZONE, "v=DMARC1; p=none").detail == "p=none"
    assert parse_dmarc("v=DMARC1; P=Reject ; rua = mailto:a@b ;;") == {"v": "DMARC1", "p": "Reject", "rua": "mailto:a@b"}


# --------------------------------------------------------------------------- mail client records


def test_autodiscover_reports_each_record_given():
    records = [
        RecordSet("autodiscover.example.test.", "CNAME", 300, ("autodiscover.outlook.com.",)),
        RecordSet("_autodiscover._tcp.example.test.", "SRV", 300, ("0 0 443 mail.example.test.",)),
        RecordSet("autoconfig.example.test.", "A", 300, ("203.0.113.10",)),
        RecordSet("_imaps._tcp.example.test.", "SRV", 300, ("0 1 993 mail.example.test.",)),
        RecordSet("webmail.example.test.", "CNAME", 300, ("mail.example.test.",)),
    ]
    checks = check_autodiscover("example.test.", records)
    assert [(c.check, c.target, c.name, c.state, c.detail) for c in checks] == [
        ("autodiscover", "autodiscover.example.test", "example.test", OK,
         "CNAME autodiscover.outlook.com.: Outlook and Microsoft 365 find the mail server here"),
        ("autodiscover", "_autodiscover._tcp.example.test", "example.test", OK,
         "SRV 0 0 443 mail.example.test.: Outlook's SRV fallback for autodiscover"),
        ("autodiscover", "autoconfig.example.test", "example.test", OK,
         "A 203.0.113.10: Thunderbird and other clients fetch their settings here"),
        ("autodiscover", "_imaps._tcp.example.test", "example.test", OK, "SRV 0 1 993 mail.example.test.: IMAP over TLS (RFC 6186)"),
        ("autodiscover", "webmail.example.test", "example.test", OK, "CNAME mail.example.test."),
    ]
    assert check_autodiscover(ZONE, []) == []
