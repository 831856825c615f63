"""Route 53 requests paced to ``provider.rate``, against moto in server mode.

Requests are counted where they arrive: a loopback proxy in front of moto
(``FaultProxy`` of the Route 53 tests) sees every HTTP request, retries included.
Each test signs with an access key id of its own, so that it starts with a full
bucket of its own (buckets are shared per endpoint and account, process-wide).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Iterator

import boto3
import pytest
import yaml

from cutover.records import Change, RecordSet
from providers import pacing
from providers.route53 import Route53Provider
from tests.integration.servers.moto import moto, moto_endpoint  # noqa: F401 (fixtures)
from tests.integration.test_route53 import FaultProxy, error_xml, make_zone

pytestmark = pytest.mark.integration

RATE, BURST = 10, 10  # provider.rate 10: a burst of one second's worth
READS = 15  # per provider, after one read, one apply and its wait


@pytest.fixture
def aws(moto: str) -> Iterator[Any]:  # noqa: F811
    client = boto3.client("route53", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def proxy(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:  # noqa: F811
    """Every request of the code under test goes through here, signed with a key of this test's own."""
    p = FaultProxy(moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPACE" + uuid.uuid4().hex[:12].upper())
    yield p
    p.close()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every token taken from a pacing bucket, as the time it was granted (``take`` still runs)."""
    taken: list[float] = []
    take = pacing.TokenBucket.take

    def counted(self: pacing.TokenBucket) -> float:
        waited = take(self)
        taken.append(time.monotonic())
        return waited

    monkeypatch.setattr(pacing.TokenBucket, "take", counted)
    return taken


def work(provider: Route53Provider, errors: list[BaseException]) -> None:
    """What a fleet does with a zone, and more reads: about 20 requests."""
    try:
        provider.records()
        receipt = provider.apply([Change(None, RecordSet.build(f"paced.{provider.zone}", "A", 60, ["192.0.2.7"]))])
        assert provider.wait(receipt, timeout=30)
        for _ in range(READS):
            provider.records()
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def run_two(aws: Any, rate: float) -> float:
    """Two providers of one account, one zone each, working at once; the seconds it took."""
    providers = [Route53Provider(zone, {"hosted_zone_id": zone_id, "rate": rate}) for zone, zone_id in
                 (make_zone(aws), make_zone(aws))]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=work, args=(p, errors)) for p in providers]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    for p in providers:
        p.close()
    assert not errors, errors
    return took


def test_two_providers_of_one_account_share_the_rate(aws: Any, proxy: FaultProxy, tokens: list[float]) -> None:
    took = run_two(aws, RATE)
    sent = len(proxy.seen)
    assert sent == 2 * (3 + 2 + READS)  # GetHostedZone, List, Change, GetChange, List...
    assert len(tokens) == sent  # one token per HTTP request, both providers from one bucket
    assert took >= (sent - BURST) / RATE - 0.05
    # nowhere faster than the bucket allows: n requests within any t seconds <= burst + rate * t
    times = sorted(tokens)
    for i in range(len(times)):
        for j in range(i + BURST, len(times)):
            assert j - i + 1 <= BURST + RATE * (times[j] - times[i]) + 1


def test_rate_zero_does_not_slow_the_same_work(aws: Any, proxy: FaultProxy, tokens: list[float]) -> None:
    took = run_two(aws, 0)
    sent = len(proxy.seen)
    assert sent == 2 * (3 + 2 + READS) and tokens == []  # no bucket is consulted at all
    assert took < (sent - BURST) / RATE / 2  # well under what rate 10 costs


def test_a_retried_request_takes_a_token_per_attempt(aws: Any, proxy: FaultProxy, tokens: list[float]) -> None:
    zone, zone_id = make_zone(aws)
    proxy.faults = [(400, error_xml("Throttling", "Rate exceeded"))] * 2
    p = Route53Provider(zone, {"hosted_zone_id": zone_id, "rate": 50})
    receipt = p.apply([Change(None, RecordSet.build(f"www.{zone}", "A", 60, ["192.0.2.8"]))])
    p.close()
    assert receipt.token and proxy.count("POST rrset") == 3  # refused twice, then accepted
    assert len(tokens) == len(proxy.seen) == 5  # GetHostedZone, List, three attempts of Change


def cutover(*args: str, cwd: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_a_fleet_diff_keeps_to_the_plans_rate(aws: Any, proxy: FaultProxy, tmp_path: Any) -> None:
    """The whole CLI: a fleet reads its zones in several threads, one provider each."""
    zones = []
    for _ in range(5):
        zone, zone_id = make_zone(aws)
        aws.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": f"www.{zone}", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "198.51.100.9"}]}}]})
        zones.append(zone)
    (tmp_path / "zones.txt").write_text("\n".join(zones))
    plan = tmp_path / "fleet.yaml"
    plan.write_text(yaml.safe_dump({"version": 1, "fleet": "zones.txt", "provider": {"type": "route53", "rate": RATE},
                                    "renumber": [{"from": "198.51.100.9", "to": "203.0.113.9"}]}))
    started = time.monotonic()
    result = cutover("diff", str(plan), "--format", "json", cwd=tmp_path)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert len(json.loads(result.stdout)["plans"]) == 5
    sent = len(proxy.seen)
    assert sent >= 3 * 5  # per zone at least: ListHostedZonesByName, GetHostedZone, ListResourceRecordSets
    assert proxy.count("GET rrset") == 5, proxy.seen  # each zone listed once: its diff takes the fleet's reading
    proxy.seen.clear()
    applied = cutover("apply", str(plan), "--yes", "--force", "--format", "json", cwd=tmp_path)
    assert {p["status"] for p in json.loads(applied.stdout)["plans"]} <= {"verified", "unverified"}, applied.stderr
    # each zone found once in the run (not again by its change and its verification), changed once
    assert proxy.count("GET hostedzonesbyname") == proxy.count("GET hostedzone") == proxy.count("POST rrset") == 5
    assert took >= (sent - BURST) / RATE - 0.05


@pytest.mark.parametrize("rate", [-1, "fast", True, "nan", [5]])
def test_a_bad_rate_is_refused_naming_the_setting(rate: Any, tmp_path: Any, moto: str) -> None:  # noqa: F811
    problems = Route53Provider.check_settings({"rate": rate})
    assert [key for key, _ in problems] == ["rate"]
    assert "API requests per second" in problems[0][1] and ">= 0" in problems[0][1]
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"version": 1, "zone": "bad-rate.test.", "provider": {"type": "route53", "rate": rate},
                                    "records": [{"name": "www", "type": "A", "to": ["192.0.2.1"]}]}))
    result = cutover("diff", str(plan), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{plan}: provider.rate: " in result.stderr and "is not a number of API requests per second" in result.stderr


@pytest.mark.parametrize("rate", [0, 5, 0.5, "2.5", "${R53_RATE}"])
def test_good_rates_are_accepted(rate: Any) -> None:
    assert Route53Provider.check_settings({"rate": rate}) == []
