"""The rfc2136 provider against a real BIND 9 on loopback.

Every test starts its own ``named`` (about half a second) with the zones it needs, so
a failed update in one test cannot leak into another.
"""

from __future__ import annotations

import base64
import socket
import threading
import time

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
import pytest
import yaml

from cutover import verify
from cutover.errors import PartialApplyError, ProviderError
from cutover.records import Change, RecordSet, index
from providers.dnsquery import KeyRejected, ServerUnreachable
from providers.rfc2136 import RFC2136Provider
from tests.integration.conformance import ProviderConformance, rs
from tests.integration.servers import free_port
from tests.integration.servers.bind import BindServer, BindZone, bind_server, port53_addresses  # noqa: F401 (fixture)
from tests.integration.servers.dnsfake import FakeServer, fakenet  # noqa: F401 (fixture)
from tests.integration.test_manual import run_cli_without_system_resolver

pytestmark = pytest.mark.integration

ZONE = "conformance.test."
WRONG_SECRET = base64.b64encode(b"not-the-key-" * 3).decode()


class TestRFC2136Conformance(ProviderConformance):
    """The shared suite, reading by zone transfer."""

    @pytest.fixture
    def provider(self, bind_server):
        p = RFC2136Provider(ZONE, bind_server(BindZone(ZONE)).settings())
        yield p
        assert p.read_mode in (None, "axfr")
        p.close()


class TestRFC2136ConformanceWithoutTransfer(ProviderConformance):
    """The shared suite again where the server refuses AXFR: every read is by query."""

    @pytest.fixture
    def provider(self, bind_server):
        p = RFC2136Provider(ZONE, bind_server(BindZone(ZONE, transfer=False)).settings())
        yield p
        assert p.read_mode in (None, "query")
        p.close()


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def server(bind_server) -> BindServer:
    return bind_server(
        BindZone(ZONE, records=("www 3600 IN A 192.0.2.10", "mail 3600 IN A 192.0.2.25")),
        BindZone("closed.test.", transfer=False, records=("www 3600 IN A 192.0.2.10",)),
        BindZone("readonly.test.", update=False, records=("www 3600 IN A 192.0.2.10",)),
    )


def key(zone: str, name: str, rtype: str) -> tuple[str, str]:
    return (f"{name}.{zone}" if name != "@" else zone, rtype)


def someone_else_sets(server: BindServer, zone: str, name: str, rtype: str, ttl: int, *values: str) -> None:
    """A concurrent edit by another tool, straight to the server."""
    update = dns.update.UpdateMessage(zone, keyring=server.keyring())
    update.replace(name, ttl, rtype, *values)
    response = dns.query.tcp(update, server.address, port=server.port, timeout=3)
    assert response.rcode() == 0


# --------------------------------------------------------------------------- reading


def test_axfr_reads_the_whole_zone(server):
    p = RFC2136Provider(ZONE, server.settings())
    found = index(p.records())
    assert p.read_mode == "axfr" and p.lists_whole_zone
    assert {(ZONE, "SOA"), (ZONE, "NS"), (f"ns1.{ZONE}", "A"), (f"www.{ZONE}", "A")} <= set(found)
    assert found[(f"www.{ZONE}", "A")] == RecordSet.build(f"www.{ZONE}", "A", 3600, ["192.0.2.10"])


def test_refused_transfer_falls_back_to_queries_for_wanted_sets(server):
    zone = "closed.test."
    p = RFC2136Provider(zone, server.settings())
    found = p.records([key(zone, "www", "A"), key(zone, "nothing", "A"), key(zone, "www", "MX")])
    assert found == [RecordSet.build(f"www.{zone}", "A", 3600, ["192.0.2.10"])]
    assert p.read_mode == "query" and "REFUSED" in p.fallback_reason
    assert p.lists_whole_zone is False and RFC2136Provider.lists_whole_zone is True


def test_read_does_not_follow_cname(server):
    p = RFC2136Provider(ZONE, server.settings())
    cname = rs(p, "alias", "CNAME", 300, f"www.{ZONE}")
    p.apply([Change(None, cname)])
    closed = RFC2136Provider(ZONE, server.settings(tsig_name=None, tsig_secret=None))  # AXFR needs the key
    found = closed.records([cname.key, key(ZONE, "alias", "A")])
    assert closed.read_mode == "query" and found == [cname]


def test_nameservers_start_with_the_configured_server(server):
    p = RFC2136Provider(ZONE, server.settings())
    assert p.nameservers() == [f"127.0.0.1:{server.port}", "ns1.conformance.test"]


def test_update_writes_the_journal(server):
    p = RFC2136Provider(ZONE, server.settings())
    www = index(p.records())[key(ZONE, "www", "A")]
    p.apply([Change(www, rs(p, "www", "A", 300, "203.0.113.10"))])
    assert server.journal(ZONE).stat().st_size > 0
    assert server.values(f"www.{ZONE}", "A") == {"203.0.113.10"}


# --------------------------------------------------------------------------- refusals


def test_change_since_read_fails_the_prerequisite_and_changes_nothing(server):
    p = RFC2136Provider(ZONE, server.settings())
    read = index(p.records())
    www, mail = read[key(ZONE, "www", "A")], read[key(ZONE, "mail", "A")]
    someone_else_sets(server, ZONE, "www", "A", 3600, "198.51.100.77")
    with pytest.raises(ProviderError, match="changed since it was read") as err:
        p.apply([
            Change(mail, rs(p, "mail", "A", 300, "203.0.113.25")),
            Change(www, rs(p, "www", "A", 300, "203.0.113.10")),
        ])
    assert "www.conformance.test. A is now ttl 3600 ['198.51.100.77']" in str(err.value)
    assert server.values(f"www.{ZONE}", "A") == {"198.51.100.77"}
    assert server.values(f"mail.{ZONE}", "A") == {"192.0.2.25"}


def test_create_of_a_set_someone_else_created_fails(server):
    p = RFC2136Provider(ZONE, server.settings())
    someone_else_sets(server, ZONE, "new", "TXT", 300, '"theirs"')
    with pytest.raises(ProviderError, match="prerequisite failed, YXRRSET"):
        p.apply([Change(None, rs(p, "new", "TXT", 300, '"ours"'))])
    assert server.values(f"new.{ZONE}", "TXT") == {'"theirs"'}


def test_bad_secret_is_a_clear_error_without_the_secret(server):
    p = RFC2136Provider(ZONE, server.settings(tsig_secret=WRONG_SECRET))
    with pytest.raises(KeyRejected) as on_read:
        p.records()
    with pytest.raises(KeyRejected) as on_apply:
        p.apply([Change(None, rs(p, "x", "A", 300, "192.0.2.1"))])
    for err in (on_read.value, on_apply.value):
        message = str(err)
        assert "cutover-test-key." in message and "BADSIG" in message
        assert WRONG_SECRET not in message and server.key_secret not in message
    assert WRONG_SECRET not in repr(p) + repr(p.server)
    assert server.values(f"x.{ZONE}", "A") == set()


def test_unknown_key_name_is_reported_as_such(server):
    p = RFC2136Provider(ZONE, server.settings(tsig_name="nobody-knows-me."))
    with pytest.raises(KeyRejected, match=r"nobody-knows-me\..*BADKEY"):
        p.apply([Change(None, rs(p, "x", "A", 300, "192.0.2.1"))])


def test_update_the_key_may_not_make_is_refused(server):
    zone = "readonly.test."
    p = RFC2136Provider(zone, server.settings())
    www = index(p.records())[key(zone, "www", "A")]
    with pytest.raises(ProviderError, match=r"REFUSED; nothing was changed\. Possible causes: the server's allow-update "
                       r"/ update-policy may not let TSIG key cutover-test-key\. change readonly\.test\.") as err:
        p.apply([Change(www, rs(p, "www", "A", 300, "203.0.113.10"))])
    assert "check-integrity; cutover found none in this update" in str(err.value)
    assert "may not be the primary of readonly.test." in str(err.value)
    assert server.values(f"www.{zone}", "A") == {"192.0.2.10"}


def test_mx_whose_in_zone_target_has_no_address_is_refused_for_its_content(server):
    """BIND's check-integrity refuses it; the key is not to blame and must not be blamed."""
    p = RFC2136Provider(ZONE, server.settings())
    with pytest.raises(ProviderError) as err:
        p.apply([Change(None, rs(p, "@", "MX", 300, "10 mail.conformance.test.", "20 mx3.conformance.test."))])
    message = str(err.value)
    assert message.splitlines()[0].endswith(
        "REFUSED, most likely because of its content (BIND's check-integrity); nothing was changed:")
    assert ("\n  @ MX 20 mx3.conformance.test.: mx3.conformance.test. is in the zone but will have no A or AAAA "
            "record after the change; BIND refuses such an update (check-integrity) and mail could not be "
            "delivered\n") in message
    assert "mail.conformance.test." not in message.replace("@ MX 20", "")  # the valid target is not named
    assert "has no address records" in server.log()  # and BIND agrees about the reason
    assert server.values(ZONE, "MX") == set()


def test_mx_with_its_target_created_in_the_same_update_is_accepted(server):
    p = RFC2136Provider(ZONE, server.settings())
    p.apply([Change(None, rs(p, "@", "MX", 300, "10 mx3.conformance.test.")),
             Change(None, rs(p, "mx3", "AAAA", 300, "2001:db8::25"))])
    assert server.values(ZONE, "MX") == {"10 mx3.conformance.test."}


def test_deleting_the_address_of_an_apex_ns_target_is_refused_for_its_content(server):
    p = RFC2136Provider(ZONE, server.settings())
    ns1 = index(p.records())[key(ZONE, "ns1", "A")]
    with pytest.raises(ProviderError, match=r"REFUSED, most likely because of its content") as err:
        p.apply([Change(ns1, None)])
    assert ("@ NS ns1.conformance.test.: ns1.conformance.test. is in the zone but will have no A or AAAA record "
            "after the change (the change removes its address); BIND refuses such an update") in str(err.value)
    assert server.values(f"ns1.{ZONE}", "A") == {"127.0.0.1"}


def test_refused_wording_when_the_zone_cannot_be_read_to_diagnose(monkeypatch):
    p = RFC2136Provider(ZONE, {"server": "127.0.0.1", "port": 5399})

    def unreadable(_wanted=()):
        raise ProviderError("no answer")

    monkeypatch.setattr(p, "records", unreadable)
    message = p._refused([Change(None, rs(p, "@", "MX", 300, "10 mx3.conformance.test."))])
    assert message.startswith(f"update of {ZONE} at 127.0.0.1:5399: REFUSED; nothing was changed. Possible causes: "
                              f"the server's allow-update / update-policy may not let an unsigned update change {ZONE}")
    assert "(BIND's check-integrity; cutover could not read the zone to look for one)" in message


def test_created_delegation_is_read_back_from_the_referral(server):
    """Without a transfer, a delegation's NS set is only ever in a referral: still "landed"."""
    zone = "closed.test."
    p = RFC2136Provider(zone, server.settings())
    shop = rs(p, "shop", "NS", 300, "ns1.other.test.", "ns2.other.test.")
    p.apply([Change(None, shop)])
    assert p.records([shop.key]) == [shop] and p.read_mode == "query"


def test_update_for_a_zone_the_server_does_not_serve(server):
    p = RFC2136Provider("elsewhere.test.", server.settings())
    with pytest.raises(ProviderError, match="NOTAUTH: the server is not authoritative for elsewhere.test."):
        p.apply([Change(None, rs(p, "www", "A", 300, "203.0.113.10"))])
    with pytest.raises(ProviderError, match="REFUSED"):
        p.records([("www.elsewhere.test.", "A")])


def test_name_outside_the_zone_is_refused_before_sending(server):
    p = RFC2136Provider(ZONE, server.settings())
    with pytest.raises(ProviderError, match="not in zone conformance.test.: www.closed.test."):
        p.apply([Change(None, RecordSet.build("www.closed.test.", "A", 300, ["192.0.2.1"]))])


def test_update_the_server_partly_ignores_is_a_partial_apply(server):
    """BIND drops a CNAME added beside other data (RFC 2136 3.4.2.2) yet answers NOERROR."""
    p = RFC2136Provider(ZONE, server.settings())
    txt = rs(p, "www", "TXT", 300, '"kept"')
    cname = rs(p, "mail", "CNAME", 300, f"www.{ZONE}")
    with pytest.raises(PartialApplyError) as err:
        p.apply([Change(None, txt), Change(None, cname)])
    assert err.value.landed == [txt.key]
    assert "mail.conformance.test. CNAME" in str(err.value)


# --------------------------------------------------------------------------- integrity: cutover agrees with BIND

#: (zone-file lines, changes as (name, type, values or None to delete), does BIND refuse?)
INTEGRITY_CASES = {
    "mx-no-address": ((), [("@", "MX", ["10 mx3"])], True),
    "mx-aaaa-only": (("mx3 IN AAAA 2001:db8::25",), [("@", "MX", ["10 mx3"])], False),
    "mx-cname": (("mx3 IN CNAME ns1",), [("@", "MX", ["10 mx3"])], True),
    "mx-empty-name": (("a.mx3 IN TXT x",), [("@", "MX", ["10 mx3"])], False),
    "mx-delegated": (("eu IN NS ns.other.test.",), [("@", "MX", ["10 mx.eu"])], False),
    "mx-wildcard": (("* IN A 192.0.2.9",), [("@", "MX", ["10 any"])], False),
    "mx-below-name-without-wildcard": (("* IN A 192.0.2.9", "a.b IN TXT x"), [("@", "MX", ["10 c.b"])], True),
    "mx-outside": ((), [("@", "MX", ["10 mail.other.test."])], False),
    "mx-and-target": ((), [("@", "MX", ["10 mx3"]), ("mx3", "A", ["192.0.2.25"])], False),
    "mx-target-deleted": (("@ IN MX 10 mx1", "mx1 IN A 192.0.2.25"), [("mx1", "A", None)], False),
    "ns-no-address": ((), [("@", "NS", ["ns1", "ns2"])], True),
    "ns-address-deleted": ((), [("ns1", "A", None)], True),
    "ns-empty-name": (("a.ns2 IN TXT x",), [("@", "NS", ["ns1", "ns2"])], True),
    "srv-no-address": ((), [("_sip._tcp", "SRV", ["0 0 5060 sip"])], False),
    "delegation-no-address": ((), [("shop", "NS", ["ns-shop"])], False),
}


@pytest.fixture(scope="module")
def integrity_server():
    """One named with a zone per case (module scope: starting 15 servers would cost 10 s)."""
    from tests.integration.servers.bind import start_bind
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="cutover-bind-") as tmp:
        zones = tuple(BindZone(f"{case}.test.", records=lines) for case, (lines, _, _) in INTEGRITY_CASES.items())
        server = start_bind(zones, Path(tmp))
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.parametrize("case", INTEGRITY_CASES)
def test_integrity_check_agrees_with_bind(integrity_server, case):
    """What cutover predicts BIND refuses is exactly what BIND refuses, and the cases BIND
    lets through that still break mail or a service are reported all the same."""
    from cutover import integrity

    zone = f"{case}.test."
    _, specs, bind_refuses = INTEGRITY_CASES[case]
    p = RFC2136Provider(zone, integrity_server.settings())
    live = index(p.records())
    changes = []
    for name, rtype, values in specs:
        after = rs(p, name, rtype, 300, *(_absolute(rtype, v, zone) for v in values)) if values is not None else None
        changes.append(Change(live.get(key(zone, name, rtype)), after))
    predicted = integrity.problems(changes, live, zone)
    try:
        p.apply(changes)
        refused = False
    except ProviderError as exc:
        assert "REFUSED" in str(exc), str(exc)
        refused = True
    assert refused is bind_refuses
    assert any(problem.refused_by_bind for problem in predicted) is bind_refuses
    expect_problem = case not in ("mx-aaaa-only", "mx-delegated", "mx-wildcard", "mx-outside", "mx-and-target")
    assert bool(predicted) is expect_problem, predicted


def _absolute(rtype: str, value: str, zone: str) -> str:
    """A zone-file-style MX, SRV or NS value with its relative target made absolute."""
    *head, target = value.split()
    if rtype not in ("MX", "SRV", "NS") or target.endswith("."):
        return value
    return " ".join([*head, f"{target}.{zone}"])


# --------------------------------------------------------------------------- the network


def test_server_down_fails_fast(server):
    port = free_port()  # nothing listens here
    p = RFC2136Provider(ZONE, server.settings(port=port, timeout=1))
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}"):
        p.records([key(ZONE, "www", "A")])
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        p.apply([Change(None, rs(p, "x", "A", 300, "192.0.2.1"))])
    assert time.monotonic() - started < 5


@pytest.fixture
def black_hole():
    """A loopback port that takes TCP connections and UDP datagrams but never answers."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for _ in range(20):
        port = free_port()
        try:
            udp.bind(("127.0.0.1", port))
            tcp.bind(("127.0.0.1", port))
            break
        except OSError:
            udp.close(), tcp.close()
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.listen(16)
    yield port
    udp.close()
    tcp.close()


def test_silent_server_times_out_after_one_retry(server, black_hole):
    p = RFC2136Provider(ZONE, server.settings(port=black_hole, timeout=0.5))
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match=r"no answer from .* within 0\.5s"):
        p.records([key(ZONE, "www", "A")])
    assert p.read_mode is None
    with pytest.raises(ServerUnreachable, match="no answer"):
        p.apply([Change(None, rs(p, "x", "A", 300, "192.0.2.1"))])
    assert time.monotonic() - started < 6


class LosesFirstAnswer:
    """A TCP relay to named that delivers the first request but drops its answer.

    That is the case where a retry is dangerous for a plain UPDATE: the first copy
    landed and we could not know."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.updates = 0  # UPDATE requests relayed (reads go through here too)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
                request = self.read_message(client)
                is_update = (request[4] >> 3) & 0xF == dns.opcode.UPDATE
                self.updates += is_update
                upstream.sendall(request)
                answer = self.read_message(upstream)
                if not (is_update and self.updates == 1):
                    client.sendall(answer)

    @staticmethod
    def read_message(sock: socket.socket) -> bytes:
        head = sock.recv(2, socket.MSG_WAITALL)
        length = int.from_bytes(head, "big")
        return head + sock.recv(length, socket.MSG_WAITALL)

    def close(self) -> None:
        self.listener.close()


def test_retried_update_is_recognised_as_our_own(server):
    relay = LosesFirstAnswer(server.port)
    try:
        p = RFC2136Provider(ZONE, server.settings(timeout=1))
        www = index(p.records())[key(ZONE, "www", "A")]
        primary = p.server  # resolve settings, then send the update through the relay
        p._server = type(primary)(primary.address, relay.port, 1.0, primary.key)
        new = rs(p, "www", "A", 300, "203.0.113.10")
        receipt = p.apply([Change(www, new)])
    finally:
        relay.close()
    assert relay.updates == 2
    assert "confirmed after a retry" in receipt.detail
    assert server.values(f"www.{ZONE}", "A") == {"203.0.113.10"}


# --------------------------------------------------------------------------- settings


GOOD = {"server": "127.0.0.1", "tsig_name": "k.", "tsig_secret": base64.b64encode(b"x" * 32).decode()}


@pytest.mark.parametrize(
    "override, key_, fragment",
    [
        ({"port": 0}, "port", "expected 1-65535"),
        ({"port": "70000"}, "port", "expected 1-65535"),
        ({"tsig_algorithm": "hmac-sha999"}, "tsig_algorithm", "unknown TSIG algorithm"),
        ({"tsig_secret": "not base64 !!"}, "tsig_secret", "not valid base64"),
        ({"timeout": "soon"}, "timeout", "not a number of seconds"),
        ({"timeout": 0}, "timeout", "between 0 and 300"),
        ({"server": "127.0.0.1:5353"}, "server", "give the port in 'port'"),
        ({"server": "bad host!"}, "server", "not an IP address or host name"),
        ({"tsig_secret": None}, "tsig_secret", "go together"),
    ],
)
def test_check_settings_problems(override, key_, fragment):
    settings = {k: v for k, v in {**GOOD, **override}.items() if v is not None}
    problems = RFC2136Provider.check_settings(settings)
    assert [k for k, _ in problems] == [key_]
    assert fragment in problems[0][1]
    if "tsig_secret" in settings:
        assert settings["tsig_secret"] not in problems[0][1]


def test_check_settings_accepts_good_ones():
    assert RFC2136Provider.check_settings({**GOOD, "port": "5353", "timeout": 1, "tsig_algorithm": "HMAC-SHA512"}) == []
    assert RFC2136Provider.check_settings({"server": "ns1.example.net"}) == []
    assert RFC2136Provider.check_settings({**GOOD, "tsig_secret": "${UNSET}"}) == []


# --------------------------------------------------------------------------- reading by query, many names


def refuses_transfers(server: FakeServer) -> FakeServer:
    """The fake answers AXFR with REFUSED (a key allowed to update only), all else honestly."""
    honest = server.replies

    def replies(query: dns.message.Message, tcp: bool) -> list[tuple[float, bytes, str]]:
        if query.question and query.question[0].rdtype == dns.rdatatype.AXFR:
            refused = dns.message.make_response(query)
            refused.set_rcode(dns.rcode.REFUSED)
            return [(0.0, refused.to_wire(), "same")]
        return honest(query, tcp)

    server.replies = replies  # type: ignore[method-assign]
    return server


def test_refused_transfer_reads_the_names_concurrently(fakenet):
    """40 names from a primary 200 ms away: 8 s one query at a time, before every read."""
    records = {(f"h{i}", "A"): (300, [f"192.0.2.{i}"]) for i in range(40)}
    records[("shop", "NS")] = (300, ["ns1.other.test."])
    fake = refuses_transfers(fakenet.add(origin="slow.test.", records=records, delay=0.2, authoritative=True))
    p = RFC2136Provider("slow.test.", {"server": "127.0.0.1", "port": fake.port, "timeout": 2})
    keys = [(f"h{i}.slow.test.", "A") for i in range(40)] + [("shop.slow.test.", "NS")]
    started = time.monotonic()
    found = index(p.records(keys))
    elapsed = time.monotonic() - started
    assert p.read_mode == "query" and p.fallback_reason == "the server refused the transfer (REFUSED)"
    assert len(found) == 41 and found[("h39.slow.test.", "A")].values == ("192.0.2.39",)
    assert elapsed < 41 * 0.2 / 4, f"{elapsed:.1f}s: the names were read one after another"


# --------------------------------------------------------------------------- a zone whose NS live only inside it

INTERNAL = "internal.test."


@pytest.fixture
def internal(bind_server) -> BindServer:
    """An internal zone on port 53 of its own loopback address: NS ns1.internal.test,
    whose only address record is in the zone itself (no public DNS knows the name)."""
    address = port53_addresses(1, first="127.53.77.11")[0]
    return bind_server(BindZone(INTERNAL, default_ns=False, transfer=True, records=(
        "@ IN NS ns1", f"ns1 IN A {address}", "www 3600 IN A 192.0.2.10")), address=address, port=53)


@pytest.fixture
def no_system_resolver(monkeypatch):
    def refuse(host: str) -> list[str]:
        raise AssertionError(f"the system resolver was asked for {host}")

    monkeypatch.setattr(verify, "_addresses", refuse)


def test_in_zone_server_name_is_resolved_at_the_zones_own_server(internal, no_system_resolver):
    servers, problems = verify.endpoints([internal.endpoint, f"ns1.{INTERNAL}"], zone=INTERNAL)
    assert problems == []
    assert [(s.address, s.port, s.name) for s in servers] == [
        (internal.address, 53, internal.endpoint), (internal.address, 53, f"ns1.{INTERNAL}")]


def test_in_zone_server_name_is_taken_from_the_zone_already_read(monkeypatch, no_system_resolver):
    """A zone read whole (AXFR) has the glue already: no question at all."""
    monkeypatch.setattr(verify, "_at_zone_server", lambda host, server: pytest.fail(f"asked {server} for {host}"))
    live = index([RecordSet.build(f"ns1.{INTERNAL}", "A", 300, ["192.0.2.53"]),
                  RecordSet.build(f"ns1.{INTERNAL}", "AAAA", 300, ["2001:db8::53"])])
    servers, problems = verify.endpoints(["127.0.0.1:5399", f"NS1.{INTERNAL}"], zone=INTERNAL, live=live)
    assert problems == [] and [s.address for s in servers] == ["127.0.0.1", "192.0.2.53", "2001:db8::53"]


def test_in_zone_name_without_an_address_is_reported_without_asking_elsewhere(internal, no_system_resolver):
    servers, problems = verify.endpoints([internal.endpoint, f"ns2.{INTERNAL}"], zone=INTERNAL)
    assert [s.name for s in servers] == [internal.endpoint]
    assert problems == [verify.ServerResult(f"ns2.{INTERNAL}", "unreachable",
                                            f"{INTERNAL} has no A or AAAA record for it (asked {internal.address})")]


def test_names_outside_the_zone_still_use_the_system_resolver(monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(verify, "_addresses", lambda host: asked.append(host) or ["192.0.2.99"])
    servers, _ = verify.endpoints(["127.0.0.1:5399", "ns1.provider.example."], zone=INTERNAL)
    assert asked == ["ns1.provider.example"] and servers[-1].address == "192.0.2.99"


@pytest.mark.parametrize("transfer", [True, False], ids=["axfr", "by-query"])
def test_cli_apply_verifies_a_zone_whose_ns_live_only_inside_it(bind_server, tmp_path, transfer):
    """The issue: "ns1.example.test: unreachable - the name has no address". No
    verify.nameservers: the provider's server and the zone's NS are checked, and the NS
    name is resolved at the zone's own server (or from the zone read by AXFR)."""
    address = port53_addresses(1, first="127.53.77.11")[0]
    server = bind_server(BindZone(INTERNAL, default_ns=False, transfer=transfer, records=(
        "@ IN NS ns1", f"ns1 IN A {address}", "www 3600 IN A 192.0.2.10")), address=address, port=53)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": INTERNAL,
        "provider": {"type": "rfc2136", **server.settings()},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
        "verify": {"timeout": "5s"},
    }))
    result = run_cli_without_system_resolver("apply", str(plan), "--yes", "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "apply verified" in result.stdout and "has no address" not in result.stdout
    assert f"ns1.{INTERNAL.rstrip('.')}" in result.stdout
    watched = run_cli_without_system_resolver("watch", str(plan), "--once", "--format", "json",
                                              "--resolvers", server.endpoint)
    assert watched.returncode in (0, 1), watched.stdout + watched.stderr
    assert f'"server": "ns1.{INTERNAL.rstrip(".")}"' in watched.stdout  # watched as an authoritative server
