"""The retire-verdict lab: worlds of real BIND and Unbound servers, an operator that runs
the real ``cutover`` command, and a hidden cache to measure the verdict against.

A verdict is right when it never says "retire" while some cache can still hand out the
old data, and not needlessly late after that. The watch only sees the resolvers it asks,
so every world also has a *hidden cache* (``servers/hidden.py``) that cutover is never
told about: primed with the old answer just before the change, then asked four times a
second. Each test then checks, for the first round whose verdict is ``retire``:

    hidden cache's switch time  <=  round time  <=  true bound + one interval + slack

where the true bound is what the kind of change allows (the change plus the old TTL, the
secondary's catch-up plus the old TTL, the parent's NS TTL plus the old host's NS TTL
plus the record's TTL, ...).

Safety of the lab itself: every server is on loopback; every Unbound is ``closed`` (names
outside its stub zones are refused, never sent to the root servers); and the cutover
subprocess resolves host names through a lab resolver instead of /etc/resolv.conf
(``LOOKUP_BOOT``), so no test can reach the system resolver.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import dns.message
import dns.query
import dns.rdatatype
import dns.update
import yaml

from tests.integration.servers.bind import BindServer, BindZone, port53_addresses, start_primary_and_secondary
from tests.integration.servers.hidden import HiddenCache
from tests.integration.servers.unbound import UnboundServer

REPO = Path(__file__).resolve().parents[2]
ZONE = "verdict.example.com."  # under example.com: Unbound has a local zone for test.
OLD, NEW = "198.51.100.10", "203.0.113.10"
SECRET_ENV = "LAB_TSIG"
INTERVAL = 1.0  # watch.interval in every lab plan
SLACK = 2.0  # a verdict may come this long after the true bound plus one interval
# Unbound counts TTLs in whole seconds and still serves an answer whose TTL is down to 0,
# so a cache that fetched an answer with TTL T at time t serves it until floor(t) + T + 1:
# up to one second past t + T. True bounds include it.
EXPIRY = 1.0
OLD_TTL_SOURCES = ("journal", "prepare", "rounds", "resolvers", "old host", "max_old_ttl")

# Points every host-name lookup of a Python process (dnspython's resolvers and
# socket.getaddrinfo) at the lab resolver in CUTOVER_LAB_LOOKUP ("address:port"; a dead
# loopback port when unset), never at /etc/resolv.conf.
LOOKUP_PATCH = r"""
import ipaddress, os, runpy, socket
import dns.exception, dns.resolver
_address, _, _port = (os.environ.get("CUTOVER_LAB_LOOKUP") or "127.0.0.1:9").rpartition(":")
def _lab_conf(self, f=None):
    self.nameservers, self.port, self.lifetime = [_address], int(_port), 3.0
dns.resolver.Resolver.read_resolv_conf = _lab_conf
dns.resolver.reset_default_resolver()
_real = socket.getaddrinfo
def _numeric(host):
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False
def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    text = host.decode() if isinstance(host, bytes) else host
    if text is None or text == "localhost" or _numeric(text):
        return _real(host, port, family, type, proto, flags)
    try:
        found = [r.address for r in dns.resolver.resolve(text, "A")]
    except dns.exception.DNSException as exc:
        raise socket.gaierror(socket.EAI_NONAME, f"lab resolver: {text}: {exc}") from None
    return [i for a in found for i in _real(a, port, socket.AF_INET, type, proto, flags | socket.AI_NUMERICHOST)]
socket.getaddrinfo = _getaddrinfo
"""
# Runs cutover as ``python -m cutover`` does, with the patch above.
LOOKUP_BOOT = LOOKUP_PATCH + 'runpy.run_module("cutover", run_name="__main__", alter_sys=True)\n'


# --------------------------------------------------------------------------- worlds


@dataclass
class World:
    """The servers of one lab case. ``primary`` takes the dynamic updates; ``authoritative``
    are the zone's servers as the plan lists them; ``resolvers`` are the watch's; ``hidden``
    is the cache the watch is never told about; ``lookup`` resolves host names for the
    cutover process (and for the test's own checks), so it must not be the hidden cache."""

    zone: str
    primary: BindServer
    authoritative: list[BindServer]
    resolvers: list[str]
    hidden: HiddenCache
    lookup: UnboundServer
    extra: dict[str, Any] = field(default_factory=dict)


Factory = Callable[..., Any]


def closed_unbound(unbound_server: Factory, zone: str, upstream: int | str) -> UnboundServer:
    """An Unbound that can reach only the lab's zones (a watch resolver, or the lookup one)."""
    return unbound_server(zone, upstream, closed=True)


def plain_world(bind_server: Factory, unbound_server: Factory, hidden_cache: Factory, records: Sequence[str],
                resolvers: int = 1) -> World:
    """One BIND primary for ZONE; Unbound resolvers and the hidden cache stub to it."""
    bind = bind_server(BindZone(ZONE, records=tuple(records)))
    watched = [closed_unbound(unbound_server, ZONE, bind.port).endpoint for _ in range(resolvers)]
    return World(ZONE, bind, [bind], watched, hidden_cache(ZONE, bind.port), closed_unbound(unbound_server, ZONE, bind.port))


def secondary_world(bind_server: Factory, unbound_server: Factory, hidden_cache: Factory, records: Sequence[str]) -> World:
    """A primary and a lagging secondary; the watch's Unbound and the hidden cache both ask
    the SECONDARY, so they keep getting the old data while it lags."""
    primary, secondary = start_primary_and_secondary(bind_server, BindZone(ZONE, records=tuple(records)))
    watched = [closed_unbound(unbound_server, ZONE, secondary.port).endpoint]
    return World(ZONE, primary, [primary, secondary], watched, hidden_cache(ZONE, secondary.port),
                 closed_unbound(unbound_server, ZONE, primary.port), extra={"secondary": secondary})


PARENT = "example.net."
CHILD = "shop.example.net."
OLD_MX, NEW_MX = "10 mail.old-host.example.org.", "10 mail.new-host.example.org."
NS_OLD, NS_NEW = "ns-old.example.net.", "ns-new.example.net."


@dataclass(frozen=True)
class DelegationTTLs:
    """The host's NS TTL is longer than the MX's, so that a cache that re-learns the old
    delegation from the old host keeps fetching the old MX for several MX lifetimes,
    whatever the phase of its fetches."""

    parent_ns: int = 3  # shop NS at the parent (the delegation)
    host_ns: int = 6  # the apex NS in each DNS host's own copy of the zone
    mx: int = 2


def delegation_world(bind_server: Factory, unbound_server: Factory, hidden_cache: Factory,
                     ttls: DelegationTTLs = DelegationTTLs()) -> World:
    """A parent zone (random port) delegating shop.example.net to the old DNS host; the new
    host already serves the new MX. Both hosts listen on port 53 of their own loopback
    address, because a resolver follows a referral to port 53 at the glue address.
    Resolvers and the hidden cache stub only the PARENT and follow the delegation."""
    old_addr, new_addr = port53_addresses(2)
    parent = bind_server(BindZone(PARENT, records=(
        f"shop {ttls.parent_ns} IN NS {NS_OLD}", f"ns-old {ttls.parent_ns} IN A {old_addr}",
        f"ns-new {ttls.parent_ns} IN A {new_addr}")))
    old_host = bind_server(host_zone(NS_OLD, OLD_MX, ttls), address=old_addr, port=53)
    new_host = bind_server(host_zone(NS_NEW, NEW_MX, ttls), address=new_addr, port=53)
    upstream = f"127.0.0.1@{parent.port}"
    watched = [closed_unbound(unbound_server, PARENT, upstream).endpoint]
    return World(CHILD, parent, [new_host], watched, hidden_cache(PARENT, upstream),
                 closed_unbound(unbound_server, PARENT, upstream),
                 extra={"parent": parent, "old_host": old_host, "new_host": new_host, "ttls": ttls})


def host_zone(ns: str, mx: str, ttls: DelegationTTLs) -> BindZone:
    """One DNS host's copy of shop.example.net: its own NS and its MX."""
    return BindZone(CHILD, default_ns=False, records=(f"@ {ttls.host_ns} IN NS {ns}", f"@ {ttls.mx} IN MX {mx}"))


@contextmanager
def silent_resolvers(count: int) -> Iterator[list[str]]:
    """``count`` loopback UDP endpoints that receive queries and never answer: resolvers
    that are down or filtered (not refused: a refused port answers with ICMP)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        yield [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --------------------------------------------------------------------------- plans and the operator


def rfc2136_plan(world: World, records: list[dict], **sections: Any) -> dict:
    """A plan for the rfc2136 provider at the world's primary; the key only in the environment."""
    doc = base_plan(world, records, {
        "type": "rfc2136", "server": world.primary.address, "port": world.primary.port,
        "tsig_name": world.primary.key_name, "tsig_secret": "${" + SECRET_ENV + "}", "timeout": 2})
    return merge(doc, sections)


def manual_plan(world: World, records: list[dict], **sections: Any) -> dict:
    """A plan for the ``manual`` provider of a delegation world: records are read at the NEW
    host, the delegation at the parent; the person's change is polled for five times a second."""
    new_host, parent = world.extra["new_host"], world.extra["parent"]
    doc = base_plan(world, records, {
        "type": "manual", "nameservers": [new_host.address], "parent_nameservers": [parent.endpoint],
        "poll_interval": 0.2, "wait": 30, "timeout": 1})
    return merge(doc, sections)


def base_plan(world: World, records: list[dict], provider: dict) -> dict:
    """Short everything: TTLs of seconds, a 1 s interval, timeout and parallel period."""
    return {
        "version": 1,
        "zone": world.zone,
        "provider": provider,
        "records": records,
        "verify": {"nameservers": [s.endpoint for s in world.authoritative], "timeout": "5s"},
        "watch": {"resolvers": list(world.resolvers), "interval": "1s", "timeout": "1s"},
        "retire": {"threshold": "100%", "parallel_period": "1s"},
        "safety": {"max_change_share": "100%"},
    }


def merge(doc: dict, sections: dict) -> dict:
    """``sections`` replace or extend the plan's sections key by key (``retire={"ignore": [...]}``)."""
    out = dict(doc)
    for key, value in sections.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class WatchRun:
    """What one ``cutover watch --format json`` printed: a round document per line, with
    the wall time each line arrived, and how the process ended."""

    rounds: list[dict]
    arrivals: list[float]
    returncode: int | None
    stderr: str
    killed: bool

    def retire_index(self) -> int | None:
        return next((i for i, doc in enumerate(self.rounds) if doc["verdict"]["retire"]), None)

    def window(self, index: int) -> tuple[float, float]:
        """When round ``index`` can have started: from its ``time`` to the latest moment
        consistent with it (``time`` has whole seconds, and the line came after the round)."""
        start, whole = parse_time(self.rounds[index]["time"])
        return start, min(start + (1.0 if whole else 0.0), self.arrivals[index])

    def describe(self, since: float) -> str:
        """Every round, one line: time relative to ``since``, verdict, what is missing; then
        the reasons of the first retire round (or of the last round)."""
        lines = []
        for doc, arrived in zip(self.rounds, self.arrivals):
            verdict = doc["verdict"]
            lines.append(f"  round {doc.get('round')}: {parse_time(doc['time'])[0] - since:+6.1f}s "
                         f"(line {arrived - since:+6.2f}s) retire={verdict['retire']} missing={verdict['missing']}")
        if self.rounds:
            index = self.retire_index()
            decisive = self.rounds[index if index is not None else -1]
            lines += [f"    {c['name']}: {c['reason']}" for c in decisive["verdict"]["conditions"]]
        return "\n".join(lines) + f"\n  exit {self.returncode}{' (killed)' if self.killed else ''}\n{self.stderr[-1500:]}"


def parse_time(text: str) -> tuple[float, bool]:
    """An ISO 8601 UTC time as POSIX seconds, and whether it had whole seconds only."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return moment.timestamp(), moment.microsecond == 0 and "." not in text


class Watch:
    """``cutover watch PLAN --format json`` in the background, read line by line."""

    def __init__(self, process: subprocess.Popen, max_seconds: float) -> None:
        self.process, self.max_seconds = process, max_seconds
        self.rounds: list[dict] = []
        self.arrivals: list[float] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.arrivals.append(time.time())
                self.rounds.append(json.loads(line))

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        """A test that fails half-way must not leave the watch running."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def wait(self) -> WatchRun:
        """Until the watch exits (retire, or an error) or ``max_seconds`` have passed."""
        killed = False
        try:
            self.process.wait(timeout=self.max_seconds)
        except subprocess.TimeoutExpired:
            killed = True
            self.process.terminate()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        stderr = self.process.stderr.read() if self.process.stderr else ""
        return WatchRun(self.rounds, self.arrivals, None if killed else self.process.returncode, stderr, killed)


class Operator:
    """Runs cutover commands on one plan, as the operator at the keyboard would; the TSIG
    secret is only in the environment, names resolve through the lab resolver."""

    def __init__(self, tmp_path: Path, plan: dict, secret: str = "", lookup: UnboundServer | None = None) -> None:
        self.cwd, self.secret, self.lookup = tmp_path, secret, lookup
        self.plan = tmp_path / "plan.yaml"
        self.write(plan)

    def write(self, plan: dict) -> None:
        self.doc = plan
        self.plan.write_text(yaml.safe_dump(plan))

    def amend(self, **sections: Any) -> None:
        """Change the plan (e.g. ``amend(retire={"ignore": ["www AAAA"]})``)."""
        self.write(merge(self.doc, sections))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", LOOKUP_BOOT, args[0], str(self.plan), *args[1:]]

    def env(self) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, SECRET_ENV: self.secret, "PYTHONPATH": path,
                "CUTOVER_LAB_LOOKUP": self.lookup.endpoint if self.lookup else ""}

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*args), cwd=self.cwd, capture_output=True, text=True,
                                timeout=timeout, env=self.env(), check=False)
        if expect is not None:
            assert result.returncode == expect, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def python(self, code: str) -> subprocess.CompletedProcess:
        """Run ``code`` in a process set up as cutover's is (lookups through the lab resolver)."""
        return subprocess.run([sys.executable, "-c", LOOKUP_PATCH + code], cwd=self.cwd, capture_output=True,
                              text=True, timeout=30, env=self.env(), check=False)

    def rounds(self, *args: str, expect: int | None = 0) -> list[dict]:
        return [json.loads(line) for line in self("watch", "--format", "json", *args, expect=expect).stdout.splitlines()
                if line.strip()]

    def watch(self, max_seconds: float) -> Watch:
        """Start ``watch --format json`` in the background (``with op.watch(40) as watch:``);
        ``watch.wait()`` for its rounds."""
        process = subprocess.Popen(self.command("watch", "--format", "json"), cwd=self.cwd, env=self.env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Watch(process, max_seconds)

    def watch_until_retire(self, max_seconds: float) -> WatchRun:
        """Watch until the verdict says retire (exit 0) or ``max_seconds`` pass."""
        with self.watch(max_seconds) as watch:
            return watch.wait()


# --------------------------------------------------------------------------- changes and checks


def prime_hidden(world: World, name: str, rtype: str, old: set[str]) -> float:
    """Prime the hidden cache with the old answer, just before the change, and start
    asking it every quarter second; the wall time it was primed."""
    primed = world.hidden.prime(name, rtype)
    assert primed.values == old, f"the hidden cache was primed with {primed.values}, not the old {old}"
    world.hidden.start(name, rtype)
    return primed.wall


def dynamic_update(server: BindServer, zone: str, name: str, rtype: str, ttl: int, *values: str) -> float:
    """Replace one RRset by RFC 2136 with the server's key, as a change made outside
    cutover; the wall time the server confirmed it (it serves the new data from then)."""
    update = dns.update.UpdateMessage(zone, keyring=server.keyring())
    update.replace(name, ttl, rtype, *values)
    response = dns.query.tcp(update, server.address, port=server.port, timeout=3)
    assert response.rcode() == 0, f"update of {name} {rtype} refused: {response.rcode()}"
    return time.time()


def person_later(server: BindServer, zone: str, name: str, rtype: str, ttl: int, *values: str,
                 delay: float) -> tuple[threading.Thread, list[float]]:
    """The person at the registrar's console, making the change ``delay`` s from now in
    another thread; the list receives the time the change was live."""
    done: list[float] = []

    def work() -> None:
        time.sleep(delay)
        done.append(dynamic_update(server, zone, name, rtype, ttl, *values))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, done


def ask(endpoint: str, name: str, rtype: str) -> set[str]:
    """What a user behind this resolver gets (and, as a side effect, what it now caches)."""
    address, port = endpoint.rsplit(":", 1)
    response = dns.query.udp(dns.message.make_query(name, rtype), address, port=int(port), timeout=3)
    wanted = dns.rdatatype.from_text(rtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}


def condition(doc: dict, name: str) -> dict:
    """One of a round's verdict conditions, by name."""
    found = [c for c in doc["verdict"]["conditions"] if c["name"] == name]
    assert found, f"no condition {name!r} in {[c['name'] for c in doc['verdict']['conditions']]}"
    return found[0]


def names_server(entry: dict, server: BindServer) -> bool:
    """Whether an ``authoritative.servers`` entry of a round is ``server`` (by address:port)."""
    shown = f"{entry.get('server')} {entry.get('address')}"
    return server.address in shown and str(server.port) in shown


def assert_verdict_window(run: WatchRun, switched: float | None, bound: float, *, since: float,
                          hidden: HiddenCache) -> int:
    """The first ``retire`` round is not before the hidden cache switched to the new data,
    and not later than the true bound plus one interval plus ``SLACK``; its index."""
    story = f"rounds:\n{run.describe(since)}\nhidden cache:\n{hidden.timeline(since)}"
    print(f"true bound {bound - since:+.2f}s, hidden cache switched {(switched or since) - since:+.2f}s\n{story}")
    index = run.retire_index()
    assert index is not None, f"the verdict never said retire (true bound {bound - since:+.1f}s)\n{story}"
    assert switched is not None, f"the hidden cache never switched to the new data\n{story}"
    earliest, latest = run.window(index)
    assert latest >= switched, (
        f"retire at {earliest - since:+.2f}s (line {run.arrivals[index] - since:+.2f}s) but the hidden cache served "
        f"the old data until {switched - since:+.2f}s\n{story}")
    assert earliest <= bound + INTERVAL + SLACK, (
        f"retire at {earliest - since:+.2f}s, needlessly late: true bound {bound - since:+.2f}s\n{story}")
    return index
