"""The Route 53 provider against moto in server mode, over real HTTP on loopback.

Where Route 53 behaviour cannot be had from moto (throttling, PriorRequestNotComplete,
a change that stays PENDING, a batch refused half-way), a small HTTP proxy in front of
moto answers those requests itself and forwards everything else, so boto3's real
retry and error handling is what gets exercised.
"""

from __future__ import annotations

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import boto3
import pytest
import requests

from cutover.errors import DriftError, PartialApplyError, ProviderError, UsageError
from cutover.records import Change, RecordSet, index
from providers.route53 import Route53Provider
from tests.integration.conformance import ProviderConformance, rs
from tests.integration.servers import free_port
from tests.integration.servers.moto import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, moto, moto_endpoint  # noqa: F401

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def aws(moto: str) -> Any:
    """A plain boto3 client on moto, for setting up what the provider must cope with."""
    client = boto3.client("route53", endpoint_url=moto)
    yield client
    client.close()


def make_zone(aws: Any, name: str | None = None, private: bool = False) -> tuple[str, str]:
    zone = name or f"r53-{uuid.uuid4().hex[:10]}.test."
    kwargs: dict[str, Any] = {"Name": zone, "CallerReference": uuid.uuid4().hex}
    if private:
        kwargs["HostedZoneConfig"] = {"PrivateZone": True, "Comment": "inside the VPC"}
        kwargs["VPC"] = {"VPCRegion": "us-east-1", "VPCId": "vpc-0123456789abcdef0"}
    answer = aws.create_hosted_zone(**kwargs)
    return zone, answer["HostedZone"]["Id"].rsplit("/", 1)[-1]


@pytest.fixture
def zone(aws: Any) -> Iterator[tuple[str, str]]:
    yield make_zone(aws)


@pytest.fixture
def provider(zone: tuple[str, str]) -> Iterator[Route53Provider]:
    p = Route53Provider(zone[0], {"rate": 0, "hosted_zone_id": zone[1]})
    yield p
    p.close()


def raw_change(aws: Any, zone_id: str, action: str, rrset: dict) -> None:
    aws.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rrset}]}
    )


def simple(name: str, rtype: str, ttl: int, *values: str) -> dict:
    return {"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}


def error_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>11111111-2222-3333-4444-555555555555</RequestId></ErrorResponse>"
    ).encode()


class FaultProxy:
    """A loopback HTTP proxy in front of moto that can stand in for Route 53's bad days.

    ``faults`` are answered, one per ChangeResourceRecordSets request, instead of
    forwarding (None forwards; "lose" forwards but answers 500, a lost response); ``before_change`` runs before a change is forwarded
    (another operator acting at that moment); ``pending`` makes GetChange say PENDING.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[tuple[int, bytes] | str | None] = []
        self.before_change: Callable[[], None] | None = None
        self.pending = False
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, kind: str) -> int:
        return sum(1 for s in self.seen if s == kind)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        path = req.path.split("?", 1)[0].rstrip("/")
        kind = f"{req.command} {path.rsplit('/', 1)[-1] if path.endswith('/rrset') else path.split('/')[2]}"
        self.seen.append(kind)
        if req.command == "POST" and path.endswith("/rrset"):
            fault = self.faults.pop(0) if self.faults else None
            if isinstance(fault, tuple):
                return self.reply(req, fault[0], fault[1])
            if self.before_change is not None:
                hook, self.before_change = self.before_change, None
                hook()
        headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length", "connection")}
        answer = requests.request(req.command, self.upstream + req.path, headers=headers, data=body, timeout=30)
        content = answer.content
        if self.pending and req.command == "GET" and "/change/" in path:
            content = content.replace(b"INSYNC", b"PENDING")
        if req.command == "POST" and path.endswith("/rrset") and fault == "lose":
            return self.reply(req, 500, error_xml("InternalFailure", "the answer got lost"))
        self.reply(req, answer.status_code, content)

    @staticmethod
    def reply(req: BaseHTTPRequestHandler, status: int, content: bytes) -> None:
        req.send_response(status)
        req.send_header("Content-Type", "text/xml")
        req.send_header("Content-Length", str(len(content)))
        req.end_headers()
        req.wfile.write(content)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    p = FaultProxy(moto)
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.url)
    yield p
    p.close()


def names_of(records: list[RecordSet], rtype: str) -> set[str]:
    return {r.name for r in records if r.type == rtype}


# --------------------------------------------------------------------------- conformance


class TestRoute53Conformance(ProviderConformance):
    @pytest.fixture
    def provider(self, aws: Any) -> Iterator[Route53Provider]:
        zone, zone_id = make_zone(aws)
        p = Route53Provider(zone, {"rate": 0, "hosted_zone_id": zone_id})
        yield p
        p.close()


# --------------------------------------------------------------------------- the hosted zone


def test_zone_found_by_name(aws: Any, zone: tuple[str, str]) -> None:
    name, zone_id = zone
    p = Route53Provider(name, {"rate": 0})
    assert p.zone_id == zone_id
    assert p.nameservers() and all(ns and not ns.endswith(".") for ns in p.nameservers())


def test_zone_name_shared_by_public_and_private_zone_is_ambiguous(aws: Any) -> None:
    name, public_id = make_zone(aws)
    _, private_id = make_zone(aws, name, private=True)
    with pytest.raises(UsageError) as caught:
        Route53Provider(name, {"rate": 0}).records()
    message = str(caught.value)
    assert public_id in message and private_id in message
    assert f"{public_id} (public" in message and f"{private_id} (private" in message
    assert "hosted_zone_id" in message
    # naming the id settles it
    assert Route53Provider(name, {"rate": 0, "hosted_zone_id": private_id}).nameservers() == []
    assert Route53Provider(name, {"rate": 0, "hosted_zone_id": f"/hostedzone/{public_id}"}).nameservers()


def test_zones_lists_the_accounts_hosted_zones_once_by_name(aws: Any) -> None:
    name, _ = make_zone(aws)
    make_zone(aws, name, private=True)
    other, _ = make_zone(aws)
    zones = Route53Provider(name, {"rate": 0}).zones()
    assert name in zones and other in zones and len(zones) == len(set(zones))


def test_missing_zone_is_a_provider_error(aws: Any) -> None:
    with pytest.raises(ProviderError) as caught:
        Route53Provider("nowhere-to-be-found.test.", {"rate": 0}).records()
    assert "nowhere-to-be-found.test." in str(caught.value)
    assert not isinstance(caught.value, UsageError)


def test_zone_id_of_another_zone_is_refused(aws: Any, zone: tuple[str, str]) -> None:
    _, zone_id = zone
    with pytest.raises(ProviderError, match="not the plan's zone"):
        Route53Provider("other.test.", {"rate": 0, "hosted_zone_id": zone_id}).records()


def test_unknown_zone_id(aws: Any) -> None:
    with pytest.raises(ProviderError, match="NoSuchHostedZone"):
        Route53Provider("example.test.", {"rate": 0, "hosted_zone_id": "Z0000000000NOSUCHZONE"}).records()


# --------------------------------------------------------------------------- reading


def test_pagination_reads_every_record_set(provider: Route53Provider, proxy: FaultProxy) -> None:
    wanted = [rs(provider, f"host{i:03d}", "A", 300, f"192.0.2.{i % 250 + 1}") for i in range(320)]
    receipt = provider.apply([Change(None, w) for w in wanted])
    assert receipt.atomic
    listed_before = proxy.count("GET rrset")
    records = provider.records()
    assert proxy.count("GET rrset") - listed_before >= 2  # moto pages at 300
    live = index(records)
    assert all(live[w.key] == w for w in wanted)
    assert len(names_of(records, "A")) == 320
    assert "NS" in {r.type for r in records if r.name == provider.zone}


def test_alias_and_weighted_sets_are_listed_around_and_protected(aws: Any, zone: tuple[str, str], provider: Route53Provider) -> None:
    name, zone_id = zone
    plain = rs(provider, "www", "A", 300, "192.0.2.10")
    provider.apply([Change(None, plain)])
    raw_change(aws, zone_id, "CREATE", {
        "Name": f"{name}", "Type": "A",
        "AliasTarget": {"HostedZoneId": zone_id, "DNSName": f"www.{name}", "EvaluateTargetHealth": False},
    })
    for ident, weight, value in (("blue", 90, "192.0.2.20"), ("green", 10, "192.0.2.21")):
        raw_change(aws, zone_id, "CREATE", dict(simple(f"app.{name}", "A", 60, value), SetIdentifier=ident, Weight=weight))

    records = provider.records()
    keys = {r.key for r in records}
    assert plain.key in keys
    assert (name, "A") not in keys and (f"app.{name}", "A") not in keys
    assert "alias" in provider.held[(name, "A")] and "weighted" in provider.held[(f"app.{name}", "A")]

    for target in (rs(provider, "@", "A", 300, "203.0.113.1"), rs(provider, "app", "A", 300, "203.0.113.2")):
        with pytest.raises(ProviderError) as caught:
            provider.apply([Change(plain, rs(provider, "www", "A", 60, "203.0.113.10")), Change(None, target)])
        assert "will not replace it" in str(caught.value)
    assert index(provider.records())[plain.key] == plain  # nothing of either batch landed
    sets = aws.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert sum(1 for s in sets if "AliasTarget" in s) == 1 and sum(1 for s in sets if "SetIdentifier" in s) == 2


def test_wildcard_and_escaped_txt_round_trip(provider: Route53Provider) -> None:
    wild = rs(provider, "*", "A", 300, "192.0.2.1")
    txt = rs(provider, "intl", "TXT", 300, '"caf\\195\\169 \\"au lait\\""', '"back\\\\slash"')
    provider.apply([Change(None, wild), Change(None, txt)])
    live = index(provider.records())
    assert live[wild.key] == wild and live[txt.key] == txt


# --------------------------------------------------------------------------- changing


def test_drift_since_read_is_refused_before_sending(aws: Any, zone: tuple[str, str], provider: Route53Provider, proxy: FaultProxy) -> None:
    name, zone_id = zone
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    provider.apply([Change(None, www)])
    # someone else moves www meanwhile
    theirs = simple(f"www.{name}", "A", 300, "198.51.100.7")
    aws.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "DELETE", "ResourceRecordSet": simple(f"www.{name}", "A", 300, "192.0.2.10")},
        {"Action": "CREATE", "ResourceRecordSet": theirs},
    ]})
    posts = proxy.count("POST rrset")
    with pytest.raises(ProviderError) as caught:
        provider.apply([
            Change(www, rs(provider, "www", "A", 60, "203.0.113.10")),
            Change(None, rs(provider, "www", "AAAA", 60, "2001:db8::10")),
        ])
    message = str(caught.value)
    assert "changed since it was read" in message and "198.51.100.7" in message and "nothing was sent" in message
    assert proxy.count("POST rrset") == posts
    live = index(provider.records())
    assert live[www.key].values == ("198.51.100.7",) and (www.name, "AAAA") not in live


def test_create_of_a_record_that_appeared_is_refused(aws: Any, zone: tuple[str, str], provider: Route53Provider) -> None:
    name, zone_id = zone
    raw_change(aws, zone_id, "CREATE", simple(f"new.{name}", "A", 300, "198.51.100.1"))
    with pytest.raises(DriftError, match=r"changed since it was read, nothing was sent: new\..* A is now ttl 300 \['198\.51\.100\.1'\] \(read as absent\)"):
        provider.apply([Change(None, rs(provider, "new", "A", 300, "203.0.113.1"))])


def test_race_refused_by_route53_itself_is_clear_and_atomic(moto: str, zone: tuple[str, str], provider: Route53Provider, proxy: FaultProxy) -> None:
    """Another operator creates the same record between our read and our request:
    Route 53 (here moto) refuses the batch, nothing of it lands, the message is its own."""
    name, zone_id = zone
    direct = boto3.client("route53", endpoint_url=moto)
    ours = rs(provider, "race", "A", 300, "203.0.113.5")
    proxy.before_change = lambda: raw_change(direct, zone_id, "CREATE", simple(f"race.{name}", "A", 300, "203.0.113.5"))
    with pytest.raises(ProviderError) as caught:
        provider.apply([Change(None, rs(provider, "bystander", "A", 300, "203.0.113.6")), Change(None, ours)])
    message = str(caught.value)
    assert "InvalidChangeBatch" in message and "already exists" in message and f"race.{name}" in message
    assert "Traceback" not in message and "\n" not in message
    assert not isinstance(caught.value, PartialApplyError)
    assert (f"bystander.{name}", "A") not in index(provider.records())


def test_large_change_is_split_and_all_lands(provider: Route53Provider, proxy: FaultProxy) -> None:
    wanted = [rs(provider, f"n{i:04d}", "A", 300, f"198.51.{i // 250}.{i % 250 + 1}") for i in range(1100)]
    receipt = provider.apply([Change(None, w) for w in wanted])
    assert receipt.atomic is False
    assert proxy.count("POST rrset") == 2 and len(receipt.token.split(",")) == 2
    assert provider.wait(receipt, timeout=10)
    live = index(provider.records())
    assert all(live.get(w.key) == w for w in wanted)


def test_failure_after_first_batch_is_partial(provider: Route53Provider, proxy: FaultProxy) -> None:
    wanted = [rs(provider, f"p{i:04d}", "A", 300, f"198.51.{i // 250}.{i % 250 + 1}") for i in range(1005)]
    proxy.faults = [None, (400, error_xml("InvalidChangeBatch", "[Tried to create resource record set but it already exists]"))]
    with pytest.raises(PartialApplyError) as caught:
        provider.apply([Change(None, w) for w in wanted])
    landed = set(caught.value.landed)
    live = index(provider.records())
    assert len(landed) == 1000
    assert all(key in live for key in landed)
    assert not any(w.key in live for w in wanted if w.key not in landed)
    assert "already exists" in str(caught.value) and "1000 record sets" in str(caught.value)


# --------------------------------------------------------------------------- retries and failures


@pytest.mark.parametrize("code", ["PriorRequestNotComplete", "Throttling"])
def test_busy_route53_is_retried(provider: Route53Provider, proxy: FaultProxy, code: str) -> None:
    proxy.faults = [(400, error_xml(code, "Rate exceeded or still processing a prior request"))]
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    receipt = provider.apply([Change(None, www)])
    assert proxy.count("POST rrset") == 2
    assert provider.wait(receipt, timeout=10)
    assert index(provider.records())[www.key] == www


def test_lost_answer_then_refused_retry_counts_as_landed(provider: Route53Provider, proxy: FaultProxy) -> None:
    """The first request lands but its answer is lost; botocore retries and Route 53
    refuses the retry because the records exist. The zone holds what was asked: success."""
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    mail = rs(provider, "mail", "A", 300, "192.0.2.25")
    proxy.faults = ["lose"]
    provider.apply([Change(None, www), Change(None, mail)])
    assert proxy.count("POST rrset") == 2
    live = index(provider.records())
    assert live[www.key] == www and live[mail.key] == mail


def test_refused_retry_with_other_data_is_still_an_error(aws: Any, zone: tuple[str, str], provider: Route53Provider, proxy: FaultProxy) -> None:
    name, zone_id = zone
    proxy.faults = [(500, error_xml("InternalFailure", "try again"))]
    # the retry meets a record someone else created meanwhile, with other data
    def meanwhile() -> None:
        raw_change(aws, zone_id, "CREATE", simple(f"www.{name}", "A", 300, "192.0.2.10"))
        raw_change(aws, zone_id, "DELETE", simple(f"www.{name}", "A", 300, "192.0.2.10"))
        raw_change(aws, zone_id, "CREATE", simple(f"www.{name}", "A", 300, "198.51.100.1"))
    proxy.before_change = meanwhile
    with pytest.raises(ProviderError, match="already exists"):
        provider.apply([Change(None, rs(provider, "www", "A", 300, "192.0.2.10"))])
    assert index(provider.records())[(f"www.{name}", "A")].values == ("198.51.100.1",)


def test_retries_give_up_with_a_clear_error(provider: Route53Provider, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    busy = (400, error_xml("PriorRequestNotComplete", "The request was rejected because Route 53 was still processing a prior request."))
    proxy.faults = [busy, busy, busy]
    with pytest.raises(ProviderError) as caught:
        provider.apply([Change(None, rs(provider, "www", "A", 300, "192.0.2.10"))])
    assert "PriorRequestNotComplete" in str(caught.value) and "2 attempts" in str(caught.value)
    assert proxy.count("POST rrset") == 2


def test_unreachable_endpoint_names_it_without_credentials(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    p = Route53Provider("example.test.", {"rate": 0, "hosted_zone_id": "Z0123456789ABCDEFGHIJ"})
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        p.records()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "unreachable" in message
    assert FAKE_SECRET_KEY not in message and FAKE_ACCESS_KEY not in message
    assert FAKE_SECRET_KEY not in repr(p)
    assert time.monotonic() - started < 20


# --------------------------------------------------------------------------- waiting


def test_wait_sees_insync(provider: Route53Provider) -> None:
    receipt = provider.apply([Change(None, rs(provider, "www", "A", 300, "192.0.2.10"))])
    assert receipt.token and receipt.atomic
    assert provider.wait(receipt, timeout=5) is True


def test_wait_gives_up_at_timeout(provider: Route53Provider, proxy: FaultProxy) -> None:
    receipt = provider.apply([Change(None, rs(provider, "www", "A", 300, "192.0.2.10"))])
    proxy.pending = True
    started = time.monotonic()
    assert provider.wait(receipt, timeout=1.5) is False
    assert 1.4 <= time.monotonic() - started < 5
    assert proxy.count("GET change") >= 2


def test_nothing_to_apply_sends_nothing(provider: Route53Provider, proxy: FaultProxy) -> None:
    receipt = provider.apply([])
    assert proxy.seen == [] and provider.wait(receipt, timeout=0)
