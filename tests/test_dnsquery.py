"""providers.dnsquery: TSIG settings, error messages, and how answers are read.

The reading tests talk to a tiny authoritative server on loopback, written with
dnspython in the test, because they need answers BIND will not give on demand
(a truncated UDP answer, a missing AA flag, a referral).
"""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
import time
from typing import Callable, Iterator

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import dns.tsig
import pytest

from cutover.errors import ProviderError
from cutover.records import RecordSet
from providers import dnsquery
from providers.dnsquery import KeyRejected, Server, ServerUnreachable, TSIGKey

SECRET = base64.b64encode(b"s3cr3t-key-material-32-bytes!!!!").decode()


# --------------------------------------------------------------------------- TSIG settings


def test_key_repr_never_shows_the_secret():
    key = dnsquery.key_from_settings({"tsig_name": "k.", "tsig_secret": SECRET})
    assert isinstance(key, TSIGKey)
    assert SECRET not in repr(key) and SECRET not in str(key)
    assert SECRET not in repr(Server("127.0.0.1", 53, 5, key))
    assert "k." in repr(key) and "hmac-sha256" in repr(key)


@pytest.mark.parametrize("text", ["hmac-sha256", "HMAC-SHA256.", "hmac-md5", "hmac-sha512-256"])
def test_known_algorithms(text):
    assert dnsquery.algorithm_name(text) in dnsquery.ALGORITHMS.values()


def test_unknown_algorithm_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown TSIG algorithm 'sha256'.*hmac-sha256"):
        dnsquery.algorithm_name("sha256")


@pytest.mark.parametrize("secret", ["", "   ", "abc$def", "Zm9v!", 42])
def test_bad_secrets_are_refused_without_echo(secret):
    with pytest.raises(ValueError) as err:
        dnsquery.decode_secret(secret)
    assert "secret is not shown" in str(err.value)
    if isinstance(secret, str) and secret.strip():
        assert secret not in str(err.value)


def test_secret_may_be_wrapped_over_lines():
    assert dnsquery.decode_secret(SECRET[:10] + "\n" + SECRET[10:]) == base64.b64decode(SECRET)


def test_tsig_problems():
    assert dnsquery.tsig_problems({}) == []
    assert dnsquery.tsig_problems({"tsig_name": "k.", "tsig_secret": SECRET}) == []
    assert [k for k, _ in dnsquery.tsig_problems({"tsig_name": "k."})] == ["tsig_secret"]
    assert [k for k, _ in dnsquery.tsig_problems({"tsig_secret": SECRET})] == ["tsig_name"]
    bad = dnsquery.tsig_problems({"tsig_name": "k.", "tsig_secret": "%%%", "tsig_algorithm": "md5"})
    assert [k for k, _ in bad] == ["tsig_secret", "tsig_algorithm"]
    assert all("%%%" not in m for _, m in bad)


def test_key_from_settings_without_a_name_is_no_key():
    assert dnsquery.key_from_settings({"server": "127.0.0.1"}) is None


def test_key_from_bad_settings_is_a_provider_error_without_the_secret():
    with pytest.raises(ProviderError) as err:
        dnsquery.key_from_settings({"tsig_name": "k.", "tsig_secret": "not*base64"})
    assert "not*base64" not in str(err.value) and "'k.'" in str(err.value)


# --------------------------------------------------------------------------- servers and errors


def test_endpoint_forms():
    assert Server("127.0.0.1", 5353).endpoint == "127.0.0.1:5353"
    assert Server("::1").endpoint == "[::1]:53"


def test_resolve_host_keeps_addresses():
    assert dnsquery.resolve_host("127.0.0.1") == "127.0.0.1"
    assert dnsquery.resolve_host("[::1]") == "::1"
    assert dnsquery.resolve_host("localhost") in ("127.0.0.1", "::1")


def test_explain_names_the_key_and_the_reason():
    server = Server("127.0.0.1", 53, 2, TSIGKey("k.", SECRET))
    cases = {
        dns.tsig.PeerBadKey(): (KeyRejected, "BADKEY"),
        dns.tsig.PeerBadSignature(): (KeyRejected, "BADSIG"),
        dns.tsig.PeerBadTime(): (KeyRejected, "BADTIME"),
        dns.exception.Timeout(): (ServerUnreachable, "within 2s"),
        ConnectionRefusedError(111, "Connection refused"): (ServerUnreachable, "Connection refused"),
        dns.exception.FormError("junk"): (ProviderError, "bad answer"),
    }
    for exc, (cls, fragment) in cases.items():
        err = dnsquery.explain(exc, server, "query x A")
        assert isinstance(err, cls) and fragment in str(err)
        assert str(err).startswith("query x A: ") and SECRET not in str(err)
        if cls is KeyRejected:
            assert "TSIG key k." in str(err)


# --------------------------------------------------------------------------- a scripted server


Handler = Callable[[dns.message.Message, bool], "dns.message.Message | None"]


@pytest.fixture
def scripted() -> Iterator[Callable[[Handler], Server]]:
    """Start a loopback server (UDP and TCP, same port) answering with ``handler(query, tcp)``."""
    servers: list[socketserver.BaseServer] = []

    def start(handler: Handler) -> Server:
        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                response = handler(dns.message.from_wire(data), False)
                if response is not None:  # None: the datagram is lost
                    sock.sendto(response.to_wire(), self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                length = int.from_bytes(self.request.recv(2, socket.MSG_WAITALL), "big")
                query = dns.message.from_wire(self.request.recv(length, socket.MSG_WAITALL))
                wire = handler(query, True).to_wire()
                self.request.sendall(len(wire).to_bytes(2, "big") + wire)

        for _ in range(20):
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDP)
            try:
                tcp = socketserver.ThreadingTCPServer(("127.0.0.1", udp.server_address[1]), TCP)
                break
            except OSError:
                udp.server_close()
        for s in (udp, tcp):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            servers.append(s)
        return Server("127.0.0.1", udp.server_address[1], timeout=1)

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def answer(query: dns.message.Message, *rrsets: str, aa: bool = True, rcode: int = 0) -> dns.message.Message:
    response = dns.message.make_response(query)
    if aa:
        response.flags |= dns.flags.AA
    response.set_rcode(rcode)
    for text in rrsets:
        name, ttl, rtype, *values = text.split(maxsplit=3)
        response.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rtype, *values))
    return response


def test_query_asks_without_recursion_and_reads_the_exact_set(scripted):
    seen = []

    def handler(q, tcp):
        seen.append(q.flags & dns.flags.RD)
        return answer(q, "www.example.test. 300 CNAME target.example.test.")

    server = scripted(handler)
    assert dnsquery.query_rrset(server, "www.example.test.", "A") is None  # CNAME not followed
    found = dnsquery.read_rrsets(server, [("www.example.test.", "CNAME")])
    assert found == [RecordSet.build("www.example.test.", "CNAME", 300, ["target.example.test."])]
    assert seen == [0, 0]


def test_truncated_udp_answer_is_asked_again_over_tcp(scripted):
    values = [f'"{i:03d} ' + "x" * 200 + '"' for i in range(6)]

    def handler(q, tcp):
        if not tcp:
            r = answer(q)
            r.flags |= dns.flags.TC
            return r
        r = answer(q)
        r.answer.append(dns.rrset.from_text_list("big.example.test.", 60, "IN", "TXT", values))
        return r

    found = dnsquery.read_rrsets(scripted(handler), [("big.example.test.", "TXT")])
    assert found == [RecordSet.build("big.example.test.", "TXT", 60, values)]


def test_nxdomain_and_referral_mean_absent(scripted):
    def handler(q, tcp):
        if str(q.question[0].name).startswith("gone"):
            return answer(q, rcode=dns.rcode.NXDOMAIN)
        r = answer(q, aa=False)
        r.authority.append(dns.rrset.from_text("sub.example.test.", 300, "IN", "NS", "ns.elsewhere.test."))
        return r

    server = scripted(handler)
    assert dnsquery.read_rrsets(server, [("gone.example.test.", "A"), ("x.sub.example.test.", "A")]) == []


def test_answer_without_authority_is_refused(scripted):
    server = scripted(lambda q, tcp: answer(q, "www.example.test. 300 A 192.0.2.1", aa=False))
    with pytest.raises(ProviderError, match="without the authoritative flag"):
        dnsquery.read_rrsets(server, [("www.example.test.", "A")])


def test_refused_is_explained(scripted):
    server = scripted(lambda q, tcp: answer(q, aa=False, rcode=dns.rcode.REFUSED))
    with pytest.raises(ProviderError, match=r"query www.example.test. A: 127.0.0.1:\d+ answered REFUSED: .*not authoritative"):
        dnsquery.read_rrsets(server, [("www.example.test.", "A")])


def test_lost_udp_answer_is_retried_once_over_tcp(scripted):
    calls = []

    def handler(q, tcp):
        calls.append(tcp)
        if not tcp:
            return None
        return answer(q, "www.example.test. 300 A 192.0.2.1")

    found = dnsquery.read_rrsets(scripted(handler), [("www.example.test.", "A")])
    assert [r.values for r in found] == [("192.0.2.1",)] and calls == [False, True]


# --------------------------------------------------------------------------- many names at once


def test_many_sets_are_read_concurrently_from_a_slow_server(scripted):
    """One query at a time, 20 names at 200 ms are 4 s; the reads overlap instead, never
    more than MAX_PARALLEL at once, and the result is what a sequential read gives."""
    lock, running, peak = threading.Lock(), [0], [0]

    def handler(q, tcp):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        name = q.question[0].name.to_text()
        return answer(q, f"{name} 300 A 192.0.2.{int(name.split('.')[0][1:])}")

    server = scripted(handler)
    keys = [(f"h{i}.example.test.", "A") for i in range(20)]
    started = time.monotonic()
    found = dnsquery.read_rrsets(server, reversed(keys))
    elapsed = time.monotonic() - started
    assert found == [RecordSet.build(n, "A", 300, [f"192.0.2.{n.split('.')[0][1:]}"]) for n, _ in sorted(keys)]
    assert elapsed < 20 * 0.2 / 4, f"{elapsed:.1f}s: read one after another"
    assert 1 < peak[0] <= dnsquery.MAX_PARALLEL


def test_concurrently_raises_the_earliest_failure_and_starts_nothing_after_one():
    started: list[int] = []
    lock = threading.Lock()

    def call(i: int) -> int:
        with lock:
            started.append(i)
        if i in (3, 5):
            time.sleep(0.05 if i == 3 else 0)  # 5 fails first, 3 is earlier in the list
            raise ServerUnreachable(f"item {i}")
        time.sleep(0.1)
        return i

    with pytest.raises(ServerUnreachable, match="item 3"):
        dnsquery.concurrently(call, list(range(100)), workers=8)
    assert len(started) < 100 and max(started) < 8 + 8  # the queue stopped at the failure
    assert dnsquery.concurrently(lambda i: i * 2, [3, 1, 2], workers=2) == [6, 2, 4]
    assert dnsquery.concurrently(lambda i: i, []) == []
