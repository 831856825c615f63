"""Normalisation: equal DNS data must compare equal whatever its spelling."""

import pytest

from cutover.records import Change, RecordSet, absolute_name, normalise_value, normalise_values, relative_name


@pytest.mark.parametrize(
    ("rtype", "a", "b"),
    [
        ("MX", ["10 Mail.Example.COM."], ["10 mail.example.com."]),
        ("MX", ["10 mail"], ["10 mail.example.com."]),  # relative to the zone
        ("CNAME", ["Target.Example.NET."], ["target.example.net."]),
        ("AAAA", ["2001:DB8:0:0::0001"], ["2001:db8::1"]),
        ("A", ["192.0.2.2", "192.0.2.1"], ["192.0.2.1", "192.0.2.2", "192.0.2.1"]),
        ("TXT", ['"v=spf1 -all"'], ["v=spf1 -all"]),
        ("TXT", ['"a" "b"'], ['"a"   "b"']),
        ("CAA", ["0 issue letsencrypt.org"], ['0 issue "letsencrypt.org"']),
        ("SRV", ["0 5 443 SIP.example.com."], ["0 5 443 sip.example.com."]),
    ],
)
def test_equal_data_normalises_equal(rtype, a, b):
    assert normalise_values(rtype, a, "example.com.") == normalise_values(rtype, b, "example.com.")


def test_txt_keeps_case():
    assert normalise_values("TXT", ['"ABC"'], "example.com.") != normalise_values("TXT", ['"abc"'], "example.com.")


def test_long_txt_must_be_split():
    with pytest.raises(ValueError, match="at most 255"):
        normalise_value("TXT", '"' + "x" * 256 + '"')
    assert normalise_value("TXT", '"' + "x" * 255 + '" "y"').count('"') == 4


@pytest.mark.parametrize(
    ("rtype", "text", "expected"),
    [
        ("A", "300.1.1.1", "'300.1.1.1' is not a valid IPv4 address"),
        ("A", "2001:db8::1", "'2001:db8::1' is not a valid IPv4 address"),
        ("AAAA", "192.0.2.1", "'192.0.2.1' is not a valid IPv6 address"),
        ("MX", "mail.example.com.", "'mail.example.com.' is not a valid MX value ('PRIORITY HOST')"),
    ],
)
def test_bad_values_explain_what_was_expected(rtype, text, expected):
    with pytest.raises(ValueError) as info:
        normalise_value(rtype, text)
    assert str(info.value).startswith(expected)


def test_names():
    assert absolute_name("@", "example.com") == "example.com."
    assert absolute_name("WWW", "example.com.") == "www.example.com."
    assert absolute_name("www.example.com.", "example.com") == "www.example.com."
    assert relative_name("www.example.com.", "example.com.") == "www"
    assert relative_name("example.com.", "example.com.") == "@"


def test_change_actions():
    old = RecordSet.build("www.example.com.", "A", 3600, ["192.0.2.1"])
    new = RecordSet.build("www.example.com.", "A", 300, ["203.0.113.1"])
    assert Change(None, new).action == "create"
    assert Change(old, None).action == "delete"
    assert Change(old, new).action == "update"
    assert Change(old, RecordSet(old.name, old.type, 300, old.values)).ttl_only
    with pytest.raises(ValueError):
        Change(None, None)
