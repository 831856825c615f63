"""The pure parts of the Route 53 provider: text forms, change groups, batch packing."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest
from hypothesis import given, settings, strategies as st

from cutover.errors import ProviderError
from cutover.records import Change, RecordSet
from providers.route53 import Route53Provider, ZoneListing
from providers.route53_wire import (
    MAX_RECORDS_PER_REQUEST,
    MAX_VALUE_CHARS_PER_REQUEST,
    batch_keys,
    change_group,
    change_groups,
    from_route53_name,
    from_route53_value,
    plan_batches,
    request_cost,
    to_route53_name,
    to_route53_value,
)

ZONE = "example.com."


def a_set(name: str, *values: str, ttl: int = 300) -> RecordSet:
    return RecordSet.build(f"{name}.{ZONE}", "A", ttl, values or ("192.0.2.1",))


def ips(n: int, third: int = 0) -> list[str]:
    return [f"10.{third}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def creates(n: int) -> list[Change]:
    return [Change(None, a_set(f"h{i}", f"192.0.2.{i % 250 + 1}")) for i in range(n)]


def updates(n: int) -> list[Change]:
    return [Change(a_set(f"u{i}", "192.0.2.1"), a_set(f"u{i}", "192.0.2.2")) for i in range(n)]


def totals(batch: list[dict]) -> tuple[int, int]:
    costs = [request_cost(c) for c in batch]
    return sum(r for r, _ in costs), sum(c for _, c in costs)


def assert_pairs_together(batches: list[list[dict]]) -> None:
    """Every DELETE whose record set is also created sits in the same request as the CREATE."""
    where: dict[tuple[str, str, str], int] = {}
    for number, batch in enumerate(batches):
        for change in batch:
            rrset = change["ResourceRecordSet"]
            where[(change["Action"], rrset["Name"], rrset["Type"])] = number
    for (action, name, rtype), number in where.items():
        if action == "DELETE" and ("CREATE", name, rtype) in where:
            assert where[("CREATE", name, rtype)] == number, f"{name} {rtype} straddles two requests"


# --------------------------------------------------------------------------- change groups


def test_create_delete_update_groups() -> None:
    old, new = a_set("www", "192.0.2.1"), a_set("www", "203.0.113.1", ttl=60)
    assert [c["Action"] for c in change_group(Change(None, new))] == ["CREATE"]
    assert [c["Action"] for c in change_group(Change(old, None))] == ["DELETE"]
    update = change_group(Change(old, new))
    assert [c["Action"] for c in update] == ["DELETE", "CREATE"]  # never UPSERT
    assert update[0]["ResourceRecordSet"] == {
        "Name": "www.example.com.", "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "192.0.2.1"}],
    }
    assert update[1]["ResourceRecordSet"]["TTL"] == 60


def test_delete_carries_the_live_spelling() -> None:
    """Route 53 compares a DELETE with what it holds; the raw live form is sent, not ours."""
    old = RecordSet.build(ZONE, "MX", 300, ["10 MAIL.Example.COM."])
    live = {"Name": "example.com.", "Type": "MX", "TTL": 300, "ResourceRecords": [{"Value": "10 MAIL.Example.COM."}]}
    group = change_group(Change(old, None), live)
    assert group[0]["ResourceRecordSet"] == live
    assert group[0]["ResourceRecordSet"] is not live


def test_groups_put_deletes_first_then_updates_then_creates() -> None:
    create = Change(None, a_set("c"))
    update = Change(a_set("u"), a_set("u", "192.0.2.9"))
    delete = Change(a_set("d"), None)
    groups = change_groups([create, update, delete])
    assert [[c["Action"] for c in g] for g in groups] == [["DELETE"], ["DELETE", "CREATE"], ["CREATE"]]


# --------------------------------------------------------------------------- limits


def test_small_change_is_one_request() -> None:
    batches = plan_batches(change_groups(creates(3) + updates(2)))
    assert len(batches) == 1 and len(batches[0]) == 7


def test_exactly_1000_records_fit_one_request() -> None:
    assert [len(b) for b in plan_batches(change_groups(creates(1000)))] == [1000]


def test_1001_records_need_two_requests() -> None:
    batches = plan_batches(change_groups(creates(1001)))
    assert [totals(b)[0] for b in batches] == [1000, 1]


def test_update_counts_delete_and_create() -> None:
    batches = plan_batches(change_groups(updates(600)))  # 1,200 resource records
    assert [totals(b)[0] for b in batches] == [1000, 200]
    assert_pairs_together(batches)


def test_pair_moves_whole_to_the_next_request() -> None:
    groups = change_groups(updates(1) + creates(999))
    groups = groups[1:] + groups[:1]  # the update last: 999 + 2 > 1000
    batches = plan_batches(groups)
    assert [totals(b)[0] for b in batches] == [999, 2]
    assert [c["Action"] for c in batches[1]] == ["DELETE", "CREATE"]
    assert_pairs_together(batches)


def test_value_characters_are_limited() -> None:
    big = '"' + "x" * 250 + '" "' + "y" * 245 + '"'  # 500 characters
    assert len(big) == 500
    sets = [RecordSet.build(f"t{i}.{ZONE}", "TXT", 300, [big]) for i in range(65)]
    batches = plan_batches(change_groups([Change(None, s) for s in sets]))
    assert [totals(b)[1] for b in batches] == [32000, 500]
    assert all(totals(b)[1] <= MAX_VALUE_CHARS_PER_REQUEST for b in batches)


def test_upsert_counts_twice() -> None:
    rrset = {"Name": "www.example.com.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": v} for v in ips(500)]}
    assert request_cost({"Action": "UPSERT", "ResourceRecordSet": rrset})[0] == 1000
    assert request_cost({"Action": "CREATE", "ResourceRecordSet": rrset})[0] == 500
    upsert = [{"Action": "UPSERT", "ResourceRecordSet": rrset}]
    assert len(plan_batches([upsert, upsert])) == 2
    chars = request_cost({"Action": "CREATE", "ResourceRecordSet": rrset})[1]
    assert request_cost({"Action": "UPSERT", "ResourceRecordSet": rrset})[1] == 2 * chars


def test_one_record_set_over_the_limit_is_a_clear_error() -> None:
    huge = RecordSet.build(f"pool.{ZONE}", "A", 60, ips(1001))
    with pytest.raises(ProviderError) as caught:
        plan_batches(change_groups([Change(None, huge)]))
    message = str(caught.value)
    assert "pool.example.com. A" in message and "1001" in message and str(MAX_RECORDS_PER_REQUEST) in message


def test_replacement_over_the_limit_is_refused_not_split() -> None:
    before = RecordSet.build(f"pool.{ZONE}", "A", 60, ips(600))
    after = RecordSet.build(f"pool.{ZONE}", "A", 60, ips(600, third=1))
    with pytest.raises(ProviderError, match="1200 resource records"):
        plan_batches(change_groups([Change(before, after)]))


@settings(deadline=None, max_examples=60)
@given(st.lists(st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(1, 400)), max_size=25))
def test_batches_respect_limits_and_keep_order(spec: list[tuple[str, int]]) -> None:
    changes = []
    for i, (action, n) in enumerate(spec):
        # already canonical values: RecordSet() directly keeps the test fast
        old = RecordSet(f"s{i}.{ZONE}", "A", 60, tuple(ips(n)))
        new = RecordSet(f"s{i}.{ZONE}", "A", 30, tuple(ips(n, third=1)))
        changes.append({"create": Change(None, new), "update": Change(old, new), "delete": Change(old, None)}[action])
    groups = change_groups(changes)
    batches = plan_batches(groups)
    for batch in batches:
        records, chars = totals(batch)
        assert records <= MAX_RECORDS_PER_REQUEST and chars <= MAX_VALUE_CHARS_PER_REQUEST
    assert [c for b in batches for c in b] == [c for g in groups for c in g]
    assert_pairs_together(batches)
    assert len(batches) >= -(-totals([c for g in groups for c in g])[0] // MAX_RECORDS_PER_REQUEST)
    assert all(batches)


def test_batch_keys_name_each_record_set_once() -> None:
    batch = plan_batches(change_groups(updates(2) + [Change(None, RecordSet.build(f"*.{ZONE}", "A", 60, ["192.0.2.1"]))]))[0]
    assert batch_keys(batch) == [("u0.example.com.", "A"), ("u1.example.com.", "A"), ("*.example.com.", "A")]


# --------------------------------------------------------------------------- text forms


def test_route53_octal_escapes_in_names() -> None:
    assert from_route53_name("\\052.Example.COM.") == "*.example.com."
    assert from_route53_name("*.example.com.") == "*.example.com."
    assert from_route53_name("a\\040b.example.com.") == dns.name.from_text("a\\032b.example.com.").to_text()
    assert to_route53_name("*.example.com.") == "*.example.com."
    assert to_route53_name("_dmarc.mail-1.example.com.") == "_dmarc.mail-1.example.com."
    assert to_route53_name("a\\032b.example.com.") == "a\\040b.example.com."
    assert to_route53_name("x\\*y.example.com.") == "x\\052y.example.com."


@given(st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=4))
def test_name_round_trip(labels: list[bytes]) -> None:
    name = dns.name.Name(labels + [b""]).to_text().lower()
    assert from_route53_name(to_route53_name(name)) == name


def test_route53_octal_escapes_in_values() -> None:
    assert from_route53_value('"caf\\303\\251"') == '"caf\\195\\169"'
    assert to_route53_value('"caf\\195\\169"') == '"caf\\303\\251"'
    # escaped quotes and backslashes mean the same on both sides
    assert to_route53_value('"a \\"b\\" \\\\123"') == '"a \\"b\\" \\\\123"'
    assert from_route53_value('"a \\"b\\" \\\\123"') == '"a \\"b\\" \\\\123"'
    assert to_route53_value("10 mail.example.com.") == "10 mail.example.com."


def test_listing_skips_what_it_must_not_manage() -> None:
    listing = ZoneListing()
    listing.add({"Name": "\\052.example.com.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.1"}]})
    listing.add({"Name": "example.com.", "Type": "A", "AliasTarget": {"DNSName": "lb.example.net.", "HostedZoneId": "Z1", "EvaluateTargetHealth": False}})
    listing.add({"Name": "app.example.com.", "Type": "A", "SetIdentifier": "eu", "Region": "eu-west-1", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.2"}]})
    listing.add({"Name": "example.com.", "Type": "SOA", "TTL": 900, "ResourceRecords": [{"Value": "{'not': 'a value'}"}]})
    assert list(listing.sets) == [("*.example.com.", "A")]
    assert listing.raw[("*.example.com.", "A")]["Name"] == "\\052.example.com."
    assert "alias" in listing.held[("example.com.", "A")]
    assert "latency" in listing.held[("app.example.com.", "A")]
    assert "cannot read" in listing.held[("example.com.", "SOA")]


# --------------------------------------------------------------------------- settings and client


@pytest.mark.parametrize("settings", [{}, {"hosted_zone_id": "Z0123456789ABCDEFGHIJ"}, {"hosted_zone_id": "/hostedzone/Z1D633PJN98FT9"}, {"profile": "prod"}])
def test_good_settings(settings: dict) -> None:
    assert Route53Provider.check_settings(settings) == []


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"hosted_zone_id": 1234}, "hosted_zone_id"),
        ({"hosted_zone_id": "example.com"}, "hosted_zone_id"),
        ({"hosted_zone_id": "z0123 lower"}, "hosted_zone_id"),
        ({"profile": ""}, "profile"),
        ({"profile": ["a"]}, "profile"),
    ],
)
def test_bad_settings(settings: dict, key: str) -> None:
    problems = Route53Provider.check_settings(settings)
    assert [k for k, _ in problems] == [key]
    assert "expected" in problems[0][1] or "not an AWS profile" in problems[0][1]


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for var in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    return monkeypatch


def test_client_retries_busy_route53_by_default(clean_aws_env: pytest.MonkeyPatch) -> None:
    client = Route53Provider(ZONE, {}).client
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}
    assert client.meta.region_name == "us-east-1"


def test_operator_retry_settings_win(clean_aws_env: pytest.MonkeyPatch) -> None:
    clean_aws_env.setenv("AWS_MAX_ATTEMPTS", "3")
    clean_aws_env.setenv("AWS_RETRY_MODE", "adaptive")
    retries = Route53Provider(ZONE, {}).client.meta.config.retries
    assert retries["mode"] == "adaptive" and retries["total_max_attempts"] == 3


def test_missing_profile_is_a_provider_error(clean_aws_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError, match="'nope' is not in the AWS config files"):
        _ = Route53Provider(ZONE, {"profile": "nope"}).client  # the client is made on first use
