"""Plan loading and validation: every problem located by file and field, all at once."""

from __future__ import annotations

import pytest

from cutover import plan as planmod, values
from cutover.errors import PlanError

GOOD = """
version: 1
zone: Example.COM
provider:
  type: rfc2136
  server: 127.0.0.1
records:
  - name: www
    type: a
    ttl: 300
    from: [198.51.100.10]
    to: [203.0.113.10]
  - name: "@"
    type: MX
    from: ["10 mail.old-host.net."]
    to: ["10 mail", "20 mail2.example.com."]
  - name: legacy
    type: A
    to: []
  - name: _dmarc.example.com.
    type: TXT
    to: ["v=DMARC1; p=none"]
prepare: {ttl: 300}
watch: {resolvers: "127.0.0.1:5353, [::1]:53", interval: 15m, timeout: 2s}
retire: {threshold: 95%, parallel_period: 7d}
verify: {nameservers: ["127.0.0.1:5300"], timeout: 90}
safety: {max_change_share: 0.8}
"""


def problems(write_plan, text: str) -> list[str]:
    path = write_plan(text)
    with pytest.raises(PlanError) as info:
        planmod.load(path)
    assert all(line.startswith(f"{path}: ") for line in str(info.value).splitlines())
    return [line.removeprefix(f"{path}: ") for line in str(info.value).splitlines()]


def test_good_plan_is_normalised(write_plan):
    plan = planmod.load(write_plan(GOOD))
    assert plan.zone == "example.com."
    www, mx, legacy, dmarc = plan.records
    assert www.key == ("www.example.com.", "A") and www.ttl == 300
    assert www.from_ == ("198.51.100.10",) and www.to == ("203.0.113.10",)
    assert mx.key == ("example.com.", "MX") and mx.ttl is None
    assert mx.to == ("10 mail.example.com.", "20 mail2.example.com.")
    assert legacy.to == ()
    assert dmarc.key == ("_dmarc.example.com.", "TXT") and dmarc.to == ('"v=DMARC1; p=none"',)
    assert plan.prepare_ttl == 300
    assert plan.watch.interval == 900 and plan.watch.timeout == 2
    assert plan.retire.threshold == 0.95 and plan.retire.parallel_period == 7 * 86400
    assert plan.verify.nameservers == ("127.0.0.1:5300",) and plan.verify.timeout == 90
    assert plan.max_change_share == 0.8
    assert len(plan.digest) == 16


def test_digest_follows_content(write_plan):
    a = planmod.load(write_plan(GOOD, "a.yaml"))
    b = planmod.load(write_plan(GOOD.replace("203.0.113.10", "203.0.113.11"), "b.yaml"))
    assert a.digest != b.digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", 90), (90, 90), ("90s", 90), ("15m", 900), ("48h", 172800), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text, expected):
    assert values.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "5y", "-5", True, "1.5.2h"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        values.parse_duration(text)


def test_every_problem_is_reported_at_once(write_plan):
    found = problems(write_plan, """
        version: 1
        zone: example.com
        provider: {type: rfc2136, server: 127.0.0.1}
        records:
          - name: www
            type: A
            to: [192.0.2.1, 203.0.113.10]
          - name: "@"
            type: MX
            to: ["10 192.0.2.25"]
          - name: "@"
            type: CNAME
            to: [elsewhere.example.net.]
          - name: www
            type: A
            to: [203.0.113.11]
          - name: shop
            type: CNAME
            to: [shops.example.net.]
          - name: shop
            type: TXT
            to: ["hello"]
          - name: www.example.org.
            type: A
            to: [203.0.113.10]
          - name: big
            type: A
            ttl: 99999999999
            to: [203.0.113.10]
          - name: x
            type: AAAA
            to: [192.0.2.1]
          - name: y
            type: BOGUS
            to: [1]
          - name: z
            typ: A
            to: [192.0.2.1]
          - name: bad
            type: A
            to: [300.1.1.1]
        watch: {interval: soon}
        retire: {threshold: 120%}
        """)
    expected = [
        "records[11].to[0]: '300.1.1.1' is not a valid IPv4 address",
        "records[1].to[0]: '10 192.0.2.25': the MX target 192.0.2.25 is an IP address; MX must name a host (give the host an A record)",
        "records[2]: a CNAME at the zone apex (example.com.) is not allowed: the apex holds SOA and NS (RFC 1034 3.6.2)",
        "records[3]: duplicate record set www.example.com. A (also records[0]); merge the values into one entry",
        "records[4]: a CNAME at shop.example.com. cannot share the name with other data (TXT)",
        "records[6].name: 'www.example.org.' is outside the zone example.com. (absolute names must end in the zone)",
        "records[7].ttl: 99999999999 is out of range (expected 0-2147483647 seconds)",
        "records[8].to[0]: '192.0.2.1' is not a valid IPv6 address",
        "records[9].type: 'BOGUS' is not a DNS record type (expected e.g. A, AAAA, MX, CNAME, TXT)",
        "records[10].typ: unknown key 'typ' (did you mean 'type'?)",
        "records[10].type: missing",
        "watch.interval: 'soon' is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)",
        "retire.threshold: '120%' is not a share (expected a percentage like 95% or a number 0..1)",
    ]
    for line in expected:
        assert line in found, f"missing: {line}\nfound:\n" + "\n".join(found)
    assert len(found) == len(expected)


def test_unknown_top_level_key_has_a_hint(write_plan):
    found = problems(write_plan, """
        version: 1
        zone: example.com
        provider: {type: rfc2136, server: 127.0.0.1}
        recrods: []
        records: [{name: www, type: A, to: [192.0.2.1]}]
        """)
    assert found == ["recrods: unknown key 'recrods' (did you mean 'records'?)"]


def test_unknown_provider_has_a_hint(write_plan):
    found = problems(write_plan, """
        zone: example.com
        provider: {type: route35}
        records: [{name: www, type: A, to: [192.0.2.1]}]
        """)
    assert found == ["provider.type: unknown provider 'route35' (did you mean 'route53'?)"]


def test_empty_plan_and_empty_records(write_plan):
    assert problems(write_plan, "") == ["plan is empty"]
    found = problems(write_plan, "zone: example.com\nprovider: {type: rfc2136, server: 127.0.0.1}\nrecords: []\n")
    assert found == ["records: empty: a plan must name at least one record set to manage"]


def test_env_substitution(write_plan, monkeypatch):
    text = """
        zone: ${ZONE}
        provider: {type: rfc2136, server: "${DNS_SERVER}"}
        records: [{name: www, type: A, to: ["${NEW_IP}"]}]
        """
    monkeypatch.setenv("ZONE", "example.net")
    monkeypatch.setenv("NEW_IP", "203.0.113.7")
    found = problems(write_plan, text)
    assert found == ["provider.server: environment variable DNS_SERVER is not set"]
    monkeypatch.setenv("DNS_SERVER", "127.0.0.1")
    plan = planmod.load(write_plan(text))
    assert plan.zone == "example.net." and plan.records[0].to == ("203.0.113.7",)
    assert plan.provider.settings["server"] == "127.0.0.1"


def test_secrets_are_not_in_the_plan_repr(write_plan, monkeypatch):
    monkeypatch.setenv("SECRET", "c2VjcmV0LXZhbHVlLTEyMzQ=")
    plan = planmod.load(write_plan("""
        zone: example.com
        provider: {type: rfc2136, server: 127.0.0.1, tsig_name: k, tsig_secret: "${SECRET}"}
        records: [{name: www, type: A, to: [192.0.2.1]}]
        """))
    assert "c2VjcmV0" not in repr(plan)


def test_duplicate_yaml_keys_are_refused(write_plan):
    found = problems(write_plan, """
        zone: example.com
        provider: {type: rfc2136, server: 127.0.0.1}
        records:
          - name: www
            type: A
            to: [192.0.2.1]
            to: [192.0.2.2]
        """)
    assert found == ["line 8, column 5: invalid YAML: duplicate key 'to'"]


def test_tabs_bom_and_size(write_plan, tmp_path):
    found = problems(write_plan, "zone: example.com\nrecords:\n\t- name: www\n")
    assert "tabs" in found[0] and found[0].startswith("line 3")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + b"zone: example.com\nprovider: {type: rfc2136, server: 127.0.0.1}\nrecords: [{name: www, type: A, to: [192.0.2.1]}]\n")
    assert planmod.load(bom).zone == "example.com."
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(20 * 1000 * 1000)
    with pytest.raises(PlanError, match="file is 20.0 MB; a plan is at most 16 MiB"):
        planmod.load(big)


def test_missing_file(tmp_path):
    with pytest.raises(PlanError, match="no such file"):
        planmod.load(tmp_path / "nope.yaml")


def test_records_are_checked_even_when_the_zone_is_bad(write_plan):
    found = problems(write_plan, """
        zone: "bad zone..name"
        provider: {type: rfc2136, server: 127.0.0.1}
        records: [{name: www, type: A, to: [300.1.1.1]}]
        """)
    assert len(found) == 2 and found[0].startswith("zone: 'bad zone..name' is not a domain name")
    assert found[1] == "records[0].to[0]: '300.1.1.1' is not a valid IPv4 address"


def test_retire_defaults_are_a_half_quorum_and_a_day_of_old_ttl(write_plan):
    retire = planmod.load(write_plan(GOOD)).retire
    assert (retire.min_answering, retire.min_answering_is_count) == (0.5, False)
    assert retire.max_old_ttl == 86400 and retire.ignore == ()


@pytest.mark.parametrize("text, expected", [("3", (3.0, True)), ("75%", (0.75, False)), ("0.25", (0.25, False)),
                                            ("1", (1.0, True))])
def test_min_answering_is_a_count_or_a_share(write_plan, text, expected):
    plan = planmod.load(write_plan(GOOD.replace("parallel_period: 7d}", f"parallel_period: 7d, min_answering: '{text}'}}")))
    assert (plan.retire.min_answering, plan.retire.min_answering_is_count) == expected


def test_retire_ignore_and_bad_retire_values(write_plan):
    plan = planmod.load(write_plan(GOOD.replace("parallel_period: 7d}", "parallel_period: 7d, ignore: [www AAAA, '@ mx']}")))
    assert plan.retire.ignore == (("www.example.com.", "AAAA"), ("example.com.", "MX"))
    found = problems(write_plan, GOOD.replace(
        "parallel_period: 7d}", "parallel_period: 7d, min_answering: 0, max_old_ttl: soon, ignore: [www, 'www BOGUS', 7]}"))
    assert found == [
        "retire.min_answering: 0 must be at least 1 (or a share such as 50%)",
        "retire.max_old_ttl: 'soon' is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)",
        "retire.ignore[0]: 'www' is not 'NAME TYPE' (expected e.g. 'legacy-ftp A' or '@ MX')",
        "retire.ignore[1]: 'www BOGUS' is not 'NAME TYPE' (expected e.g. 'legacy-ftp A' or '@ MX')",
        "retire.ignore[2]: 7 is not 'NAME TYPE' (expected e.g. 'legacy-ftp A' or '@ MX')",
    ]
