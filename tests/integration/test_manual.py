"""The manual provider against real BIND: a "person" makes the change by dynamic
update while cutover waits, polls the authoritative servers and confirms each record."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import dns.query
import dns.update
import pytest
import yaml

from cutover.errors import ProviderError
from cutover.records import Change, RecordSet, index
from providers import dnsquery, registry
from providers.manual import ManualProvider, change_sheet
from tests.integration.servers import free_port
from tests.integration.servers.bind import BindServer, BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.dnsfake import FakeNet, FakeServer, fakenet  # noqa: F401 (fixture)

ZONE = "manual.test."


def person_sets(server: BindServer, zone: str, name: str, rtype: str, ttl: int, *values: str, delay: float = 0.0) -> threading.Thread:
    """The person at the console, working at their own pace in another thread."""

    def work() -> None:
        time.sleep(delay)
        update = dns.update.UpdateMessage(zone, keyring=server.keyring())
        update.replace(name, ttl, rtype, *values)
        assert dns.query.tcp(update, server.address, port=server.port, timeout=3).rcode() == 0

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.fixture
def server(bind_server) -> BindServer:
    return bind_server(BindZone(ZONE, records=("www 3600 IN A 192.0.2.10", "@ 3600 IN MX 10 mail.old-host.net.")))


def provider(server: BindServer, **settings) -> tuple[ManualProvider, io.StringIO]:
    out = io.StringIO()
    base = {"nameservers": [f"127.0.0.1:{server.port}"], "poll_interval": 0.2, "wait": 10, "timeout": 1}
    return ManualProvider(ZONE, {**base, **settings}, stream=out, ask=None, sleep=time.sleep), out


def test_reads_only_the_wanted_sets_by_dns(server):
    p, _ = provider(server)
    found = index(p.records([(f"www.{ZONE}", "A"), (ZONE, "MX"), (f"nothing.{ZONE}", "A")]))
    assert set(found) == {(f"www.{ZONE}", "A"), (ZONE, "MX")}
    assert found[(ZONE, "MX")] == RecordSet.build(ZONE, "MX", 3600, ["10 mail.old-host.net."])
    assert p.lists_whole_zone is False


def test_sheet_then_polls_until_the_person_made_the_change(server):
    p, out = provider(server)
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    new = RecordSet.build(f"www.{ZONE}", "A", 300, ["203.0.113.10"])
    person = person_sets(server, ZONE, "www", "A", 300, "203.0.113.10", delay=0.8)
    started = time.monotonic()
    receipt = p.apply([Change(www, new)])
    person.join()
    assert time.monotonic() - started >= 0.8 and receipt.atomic is False
    text = out.getvalue()
    assert "[1] UPDATE www A" in text and "192.0.2.10" in text and "203.0.113.10" in text
    assert "live: www A" in text


def test_not_confirmed_is_a_provider_error(server):
    p, _ = provider(server)
    p.ask = lambda _prompt: "abort"
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    with pytest.raises(ProviderError, match="did not confirm"):
        p.apply([Change(www, RecordSet.build(www.name, "A", 300, ["203.0.113.10"]))])


def test_change_never_made_times_out_naming_the_record(server):
    p, _ = provider(server, wait=1)
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    with pytest.raises(ProviderError) as err:
        p.apply([Change(www, RecordSet.build(www.name, "A", 300, ["203.0.113.10"]))])
    first, detail, advice = str(err.value).splitlines()
    assert first == f"manual change of {ZONE} not live at the authoritative servers 1s after the change sheet was printed: www A"
    assert detail == f"  www A: wanted 203.0.113.10 (TTL 300); 127.0.0.1:{server.port} serves 192.0.2.10 (TTL 3600)"
    assert "run `cutover apply` again: it reads the zone again" in advice and "raise provider.wait (now 1s)" in advice


class FakeClock:
    """Monotonic time that moves only when the test (or the provider's sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def slow_person(clock: FakeClock, seconds: float, reply: str = "done"):
    """A person at the terminal who takes ``seconds`` to confirm."""

    def ask(_prompt: str) -> str:
        clock.advance(seconds)
        return reply

    return ask


def test_wait_counts_from_the_sheet_not_from_the_confirmation(server):
    clock = FakeClock()
    p, _ = provider(server, wait="1h", poll_interval=60)
    p.clock, p.sleep, p.ask = clock, clock.advance, slow_person(clock, 50 * 60)
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    started = clock.now
    with pytest.raises(ProviderError, match="not live at the authoritative servers 1h after the change sheet"):
        p.apply([Change(www, RecordSet.build(www.name, "A", 300, ["203.0.113.10"]))])
    assert clock.now - started <= 3600  # 50 min at the prompt + 10 min of polling, not 50 + 60


def test_a_confirmation_after_the_wait_still_checks_once(server):
    clock = FakeClock()
    p, out = provider(server, wait=60)
    p.clock, p.sleep, p.ask = clock, clock.advance, slow_person(clock, 3600)
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    person_sets(server, ZONE, "www", "A", 300, "203.0.113.10").join()
    p.apply([Change(www, RecordSet.build(www.name, "A", 300, ["203.0.113.10"]))])
    assert "live: www A" in out.getvalue()


def test_timeout_names_what_each_server_serves(bind_server):
    """Live means served by every server that answers; the message says who lags and how."""
    zone_lines = ("www 3600 IN A 192.0.2.10", "@ 3600 IN MX 10 mail.old-host.net.")
    first, second = bind_server(BindZone(ZONE, records=zone_lines)), bind_server(BindZone(ZONE, records=zone_lines))
    silent = free_port()
    out = io.StringIO()
    p = ManualProvider(ZONE, {"nameservers": [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}", f"127.0.0.1:{silent}"],
                              "poll_interval": 0.2, "wait": 1, "timeout": 1}, stream=out, ask=None)
    live = index(p.records([(f"www.{ZONE}", "A"), (ZONE, "MX")]))
    person_sets(first, ZONE, "www", "A", 300, "203.0.113.10").join()  # made on one server only
    changes = [Change(live[(f"www.{ZONE}", "A")], RecordSet.build(f"www.{ZONE}", "A", 300, ["203.0.113.10"])),
               Change(live[(ZONE, "MX")], None)]
    with pytest.raises(ProviderError) as err:
        p.apply(changes)
    lines = str(err.value).splitlines()
    assert lines[0].endswith("after the change sheet was printed: www A, @ MX")
    assert lines[1] == (f"  www A: wanted 203.0.113.10 (TTL 300); 127.0.0.1:{first.port} already serves it; "
                        f"127.0.0.1:{second.port} serves 192.0.2.10 (TTL 3600); 127.0.0.1:{silent} did not answer")
    assert lines[2].startswith(f"  @ MX: wanted no such records; 127.0.0.1:{first.port} serves 10 mail.old-host.net. (TTL 3600);")
    assert "live: www A" not in out.getvalue()


def test_delegation_change_is_read_at_the_parent(bind_server):
    parent = bind_server(BindZone("parent.test.", records=(
        "child 3600 IN NS ns1.old-dns.net.", "child 3600 IN NS ns2.old-dns.net.")))
    child = bind_server(BindZone("child.parent.test.", records=("www 300 IN A 192.0.2.10",)))
    p = ManualProvider("child.parent.test.", {
        "nameservers": [f"127.0.0.1:{child.port}"], "parent_nameservers": [f"127.0.0.1:{parent.port}"],
        "poll_interval": 0.2, "wait": 10, "timeout": 1}, stream=io.StringIO(), ask=None)
    key = ("child.parent.test.", "NS")
    now = index(p.records([key]))[key]
    assert now.values == ("ns1.old-dns.net.", "ns2.old-dns.net.")
    new = RecordSet.build("child.parent.test.", "NS", 3600, ["ns1.new-dns.net.", "ns2.new-dns.net."])
    person = person_sets(parent, "parent.test.", "child", "NS", 3600, "ns1.new-dns.net.", "ns2.new-dns.net.", delay=0.5)
    p.apply([Change(now, new)])
    person.join()
    assert index(p.records([key]))[key] == new
    assert "delegation: at the registrar" in change_sheet("child.parent.test.", [Change(now, new)])


def test_cli_apply_without_terminal_prints_the_sheet_and_polls(server, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": ZONE,
        "provider": {"type": "manual", "nameservers": [f"127.0.0.1:{server.port}"], "poll_interval": 0.2, "wait": 20},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
        "verify": {"nameservers": [f"127.0.0.1:{server.port}"], "timeout": "5s"},
    }))
    person = person_sets(server, ZONE, "www", "A", 300, "203.0.113.10", delay=1.5)
    result = subprocess.run([sys.executable, "-m", "cutover", "apply", str(plan), "--yes", "--force"],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    person.join()
    assert result.returncode == 0, result.stderr
    assert "Change sheet for manual.test" in result.stderr and "live: www A" in result.stderr
    assert "apply verified" in result.stdout


def test_cli_apply_that_times_out_says_what_is_missing(server, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": ZONE,
        "provider": {"type": "manual", "nameservers": [f"127.0.0.1:{server.port}"], "poll_interval": 0.2, "wait": 1},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
        "verify": {"nameservers": [f"127.0.0.1:{server.port}"], "timeout": "5s"},
    }))
    result = subprocess.run([sys.executable, "-m", "cutover", "apply", str(plan), "--yes", "--force"],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode != 0
    assert f"www A: wanted 203.0.113.10 (TTL 300); 127.0.0.1:{server.port} serves 192.0.2.10 (TTL 3600)" in result.stderr
    assert f"{ZONE}: FAILED" in result.stdout


# --------------------------------------------------------------------------- reading many names from slow servers

SLOW = "slow.test."
NAMES = 40
DELAY = 0.2  # per answer, as from a server far away


def slow_server(fakenet: FakeNet, **settings) -> FakeServer:
    """An authoritative fake for SLOW that holds each answer back DELAY seconds."""
    records = {(f"h{i}", "A"): (300, [f"192.0.2.{i}"]) for i in range(NAMES)}
    return fakenet.add(origin=SLOW, records=records, delay=DELAY, authoritative=True, **settings)


def slow_keys() -> list[tuple[str, str]]:
    return [(f"h{i}.{SLOW}", "A") for i in range(NAMES)]


def test_many_names_are_read_concurrently(fakenet):
    """40 names at 200 ms took 8 s one at a time before each watch round."""
    server = slow_server(fakenet)
    p = ManualProvider(SLOW, {"nameservers": [server.address], "timeout": 2}, stream=io.StringIO(), ask=None)
    started = time.monotonic()
    found = index(p.records(slow_keys()))
    elapsed = time.monotonic() - started
    assert len(found) == NAMES and found[(f"h7.{SLOW}", "A")].values == ("192.0.2.7",)
    assert elapsed < NAMES * DELAY / 4, f"{elapsed:.1f}s: the names were read one after another"
    assert server.queries == NAMES


def test_every_server_is_polled_at_once_and_a_silent_one_only_noted(fakenet):
    """Polling for a manual change reads every server; one that never answers costs its
    timeout once, beside the others, and is reported as not answering."""
    first, second, silent = slow_server(fakenet), slow_server(fakenet), slow_server(fakenet, behaviour="drop")
    p = ManualProvider(SLOW, {"nameservers": [first.address, second.address, silent.address], "timeout": 1},
                       stream=io.StringIO(), ask=None)
    started = time.monotonic()
    readings = p._read_each(slow_keys())
    elapsed = time.monotonic() - started
    assert [r.server for r in readings] == [first.address, second.address, silent.address]
    assert [len(r.sets) if r.sets is not None else None for r in readings] == [NAMES, NAMES, None]
    assert elapsed < 4, f"{elapsed:.1f}s (one after another: about {2 * NAMES * DELAY + 2:.0f}s)"
    assert silent.queries <= 2 * dnsquery.MAX_PARALLEL  # UDP, then TCP, for the names in flight; no more


# --------------------------------------------------------------------------- verify.nameservers as the servers to read


def test_verify_nameservers_are_the_default_servers(server):
    p = registry.create("manual", ZONE, {"timeout": 1}, verify_nameservers=[f"127.0.0.1:{server.port}"])
    assert p.settings["nameservers"] == [f"127.0.0.1:{server.port}"]
    assert index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")].values == ("192.0.2.10",)
    own = registry.create("manual", ZONE, {"nameservers": ["127.0.0.1:9"]}, verify_nameservers=["127.0.0.1:53"])
    assert own.settings["nameservers"] == ["127.0.0.1:9"]  # the provider's own setting wins


def test_cli_reads_at_verify_nameservers_when_the_provider_names_none(server, tmp_path):
    """A zone whose NS are in no public DNS: the plan names its servers once, under verify."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": ZONE,
        "provider": {"type": "manual", "poll_interval": 0.2, "wait": 20},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
        "verify": {"nameservers": [f"127.0.0.1:{server.port}"], "timeout": "5s"},
    }))
    diff = run_cli_without_system_resolver("diff", str(plan))
    assert diff.returncode == 1, diff.stdout + diff.stderr
    assert "no authoritative servers known" not in diff.stderr and "192.0.2.10" in diff.stdout
    person = person_sets(server, ZONE, "www", "A", 300, "203.0.113.10", delay=1.0)
    applied = run_cli_without_system_resolver("apply", str(plan), "--yes", "--force")
    person.join()
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "live: www A" in applied.stderr and "apply verified" in applied.stdout


#: Runs the CLI with every system-resolver entry point failing loudly: a zone read or
#: verified at its own servers must never need one (and tests must never ask one).
NO_SYSTEM_RESOLVER = """
import socket, sys
import dns.resolver
def refuse(*args, **kwargs):
    raise AssertionError(f"the system resolver was asked: {args!r}")
dns.resolver.resolve = refuse
dns.resolver.Resolver.resolve = refuse
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *args, **kwargs):
    import ipaddress
    try:
        ipaddress.ip_address(str(host).strip("[]"))
    except ValueError:
        if host not in (None, "localhost"):
            refuse(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from cutover.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli_without_system_resolver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_SYSTEM_RESOLVER, *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))
