"""A loopback fleet of customers' own DNS, for ``cutover audit``: thousands of small
zones on real BIND servers, delegated from a parent zone that a real Unbound resolves.

Every server listens on port 53 of its own 127.53.x.y address (put on ``lo``; needs
root, as the verdict lab does), because a resolver follows a delegation to port 53 at
the glue address, and so does the audit when it asks a domain's servers itself:

    parent   fleet.example.com. on P:53: every customer's delegation, the NS hosts'
             addresses, and names customers point at (web.new-host, mx.mail-host, ...)
    dns-a    two addresses (ns1/ns2.dns-a), one named: most customers
    dns-b    one address: customers with a single NS; zones it REFUSES by config
             (allow-query none); and the lame ones delegated to it without a zone
    dns-c    a second host for "split" zones, serving a newer serial than dns-a
    dns-dead a UDP socket on port 53 that reads every query and never answers

Zones of one kind share one zone file (relative names, ``$ORIGIN`` is each zone's own),
so 10,000 zones are a dozen files and named loads them in a few seconds. The fleet
knows each domain's expected status, which is what the audit must find.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.integration.servers import need_binary, stop_process
from tests.integration.servers.bind import add_loopback_alias, apparmor_confines, drop_loopback_alias, port53_addresses
from tests.integration.servers.unbound import UnboundServer, start as start_unbound

PARENT = "fleet.example.com."
OLD, OLD6 = "198.51.100.10", "2001:db8::10"
NEW, NEW6 = "203.0.113.10", "2001:db8::20"
ELSEWHERE = "192.0.2.80"

#: Each kind: the zone's records (relative names; NS names made absolute below), where it
#: is served and delegated, and the status the audit must find.
KINDS: dict[str, tuple[str, str]] = {
    # kind: (expected status, NS hosts)
    "moved": ("moved", "a"),
    "moved_cname": ("moved", "a"),
    "moved_v6": ("moved", "a"),
    "old": ("old", "a"),
    "old_mx": ("old", "a"),
    "mixed": ("mixed", "a"),
    "elsewhere": ("elsewhere", "a"),
    "empty": ("elsewhere", "a"),
    "b_moved": ("moved", "b"),
    "b_old": ("old", "b"),
    "split": ("mixed", "ac"),
    "partial": ("moved", "a-dead"),
    "refused": ("unreachable", "b"),
    "lame_refused": ("unreachable", "lame"),
    "lame_parent": ("unreachable", "lame-parent"),
    "dead": ("unreachable", "dead"),
    "nxdomain": ("unreachable", ""),
}

RECORDS = {
    "moved": [f"@ A {NEW}", "www CNAME @", "@ MX 10 mail", f"mail A {NEW}"],
    "moved_cname": [f"@ A {NEW}", f"www CNAME web.new-host.{PARENT}"],
    "moved_v6": [f"@ A {NEW}", f"@ AAAA {NEW6}", f"www A {NEW}", f"www AAAA {NEW6}", f"@ MX 10 mx.mail-host.{PARENT}"],
    "old": [f"@ A {OLD}", f"www A {OLD}", "@ MX 10 mail", f"mail A {OLD}", f"mail AAAA {OLD6}"],
    "old_mx": [f"@ A {ELSEWHERE}", f"@ MX 10 mx.old-host.{PARENT}"],
    "mixed": [f"@ A {NEW}", f"www A {NEW}", "@ MX 10 mail", f"mail A {OLD}"],
    "elsewhere": [f"@ A {ELSEWHERE}", f"www CNAME web.elsewhere.{PARENT}", f"@ MX 10 mx.mail-host.{PARENT}"],
    "empty": ['@ TXT "nothing here"'],
    "b_moved": [f"@ A {NEW}", f"www A {NEW}"],
    "b_old": [f"@ A {OLD}", "@ MX 10 mail", f"mail A {OLD}"],
    "split": [f"@ A {OLD}", f"www A {OLD}"],  # dns-a: serial 1, old; dns-c: serial 2, new
    "partial": [f"@ A {NEW}", f"www A {NEW}"],
    "refused": [f"@ A {NEW}"],
}
SPLIT_NEW = [f"@ A {NEW}", f"www A {NEW}"]


@dataclass
class Fleet:
    """The running fleet: where its resolver listens, and what each domain should be."""

    directory: Path
    resolver: UnboundServer | None
    expected: dict[str, str]
    kinds: dict[str, str]
    addresses: dict[str, str]
    processes: list[subprocess.Popen] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    silent: socket.socket | None = None

    @property
    def domains(self) -> list[str]:
        return list(self.expected)

    def write_domains(self, path: Path, *, as_csv: bool = False, domains: list[str] | None = None) -> Path:
        chosen = self.domains if domains is None else domains
        if as_csv:
            with path.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["customer", "domain", "email"])
                for i, d in enumerate(chosen):
                    writer.writerow([f"K{i:05d}", d.rstrip("."), f"admin@{d.rstrip('.')}"])
        else:
            path.write_text("# customers\n" + "".join(d.rstrip(".") + "\n" for d in chosen))
        return path

    def stop(self) -> None:
        if self.resolver is not None:
            self.resolver.stop()
        for proc in self.processes:
            stop_process(proc)
        if self.silent is not None:
            self.silent.close()
        for address in self.aliases:
            drop_loopback_alias(address)


def plan(counts: Mapping[str, int]) -> dict[str, str]:
    """Domain -> kind, interleaved so that every part of the list has every kind."""
    pools = {kind: [f"{kind.replace('_', '-')}-{i:05d}.{PARENT}" for i in range(n)] for kind, n in counts.items()}
    out: dict[str, str] = {}
    while any(pools.values()):
        for kind, pool in pools.items():
            if pool:
                out[pool.pop(0)] = kind
    return out


def start_fleet(directory: Path, counts: Mapping[str, int]) -> Fleet:
    named = need_binary("named", "bind9")
    if apparmor_confines(named):
        pytest.fail(f"AppArmor confines {named}; put it in complain mode for the tests (aa-complain {named})")
    kinds = plan(counts)
    p, a1, a2, b1, c1, d1 = port53_addresses(6, first="127.53.60.1")
    addresses = {"parent": p, "ns1.dns-a": a1, "ns2.dns-a": a2, "ns1.dns-b": b1, "ns1.dns-c": c1, "ns1.dns-dead": d1}
    ns_names = {
        "a": ["ns1.dns-a", "ns2.dns-a"], "b": ["ns1.dns-b"], "ac": ["ns1.dns-a", "ns1.dns-c"],
        "a-dead": ["ns1.dns-a", "ns1.dns-dead"], "lame": ["ns1.dns-lame"], "lame-parent": ["ns1.dns-lame-parent"],
        "dead": ["ns1.dns-dead"], "": [],
    }
    fleet = Fleet(directory, None, {d: KINDS[k][0] for d, k in kinds.items()}, kinds, addresses)
    try:
        # the zone files, one per kind and NS set
        files: dict[tuple[str, int], str] = {}

        def zone_file(kind: str, hosts: str, serial: int = 1, records: list[str] | None = None) -> str:
            key = (kind, serial)
            if key not in files:
                ns = "".join(f"@ NS {n}.{PARENT}\n" for n in ns_names[hosts])
                body = "\n".join(records if records is not None else RECORDS[kind])
                name = f"{kind}-{serial}.zone"
                (directory / name).write_text(f"$TTL 300\n@ SOA ns1.{PARENT} hostmaster.{PARENT} {serial} 3600 600 86400 60\n"
                                              f"{ns}{body}\n")
                files[key] = name
            return files[key]

        served: dict[str, list[str]] = {"a": [], "b": [], "c": []}
        delegations: list[str] = []
        for domain, kind in kinds.items():
            hosts = KINDS[kind][1]
            for n in ns_names[hosts]:
                delegations.append(f"{domain} 300 NS {n}.{PARENT}")
            if kind in ("lame_refused", "lame_parent", "dead", "nxdomain"):
                continue
            options = "allow-query { none; }; " if kind == "refused" else ""
            server = "b" if hosts == "b" else "a"
            served[server].append(f'zone "{domain}" {{ type primary; file "{zone_file(kind, hosts)}"; {options}}};\n')
            if kind == "split":
                served["c"].append(f'zone "{domain}" {{ type primary; file "{zone_file(kind, hosts, 2, SPLIT_NEW)}"; }};\n')
        parent_records = [
            f"ns1 A {p}", f"ns1.dns-a A {a1}", f"ns2.dns-a A {a2}", f"ns1.dns-b A {b1}", f"ns1.dns-c A {c1}",
            f"ns1.dns-dead A {d1}", f"ns1.dns-lame A {b1}", f"ns1.dns-lame-parent A {p}",
            f"web.new-host A {NEW}", "web.elsewhere A 192.0.2.81", "mx.mail-host A 192.0.2.25", f"mx.old-host A {OLD}",
        ]
        (directory / "parent.zone").write_text(
            f"$ORIGIN {PARENT}\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\n"
            + "\n".join(parent_records) + "\n" + "\n".join(delegations) + "\n")
        parent_conf = f'zone "{PARENT}" {{ type primary; file "parent.zone"; }};\n'
        fleet.silent = _silent_server(d1)
        for name, listen, zones, threads in (("parent", [p], [parent_conf], 1), ("a", [a1, a2], served["a"], 2),
                                             ("b", [b1], served["b"], 1), ("c", [c1], served["c"], 1)):
            for address in listen:
                if add_loopback_alias(address):
                    fleet.aliases.append(address)
            fleet.processes.append(_start_named(named, directory, name, listen, zones, threads))
        for name, listen, probe in (("parent", p, PARENT), ("a", a1, _first(kinds, "moved")), ("b", b1, _first(kinds, "b_moved")),
                                    ("c", c1, _first(kinds, "split"))):
            if probe:
                _wait_serving(directory, name, listen, probe)
        fleet.resolver = start_unbound(PARENT, f"{p}@53", closed=True)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _first(kinds: Mapping[str, str], kind: str) -> str | None:
    return next((d for d, k in kinds.items() if k == kind), None)


def _start_named(named: str, directory: Path, name: str, listen: list[str], zones: list[str], threads: int) -> subprocess.Popen:
    work = directory / f"named-{name}"
    work.mkdir()
    addresses = " ".join(f"{a};" for a in listen)
    files = {str(directory / z.split('file "')[1].split('"')[0]) for z in zones}
    for path in files:  # named runs in its own folder; the shared zone files are one level up
        (work / Path(path).name).write_bytes(Path(path).read_bytes())
    (work / "named.conf").write_text(f"""\
controls {{ }};
options {{
    directory "{work}";
    pid-file "{work}/named.pid";
    session-keyfile "{work}/session.key";
    managed-keys-directory "{work}";
    listen-on port 53 {{ {addresses} }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
    rate-limit {{ responses-per-second 0; }};
}};
{''.join(zones)}""")
    with open(work / "named.stderr", "wb") as log:
        return subprocess.Popen([named, "-g", "-n", str(threads), "-c", str(work / "named.conf")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=work)


def _wait_serving(directory: Path, name: str, address: str, zone: str, timeout: float = 60.0) -> None:
    """Ready when named says every zone is loaded and answers one of them with AA."""
    log = directory / f"named-{name}" / "named.stderr"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "all zones loaded" in text:
            try:
                answer = dns.query.udp(dns.message.make_query(zone, "SOA"), address, port=53, timeout=0.5)
                if answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.AA:
                    return
            except (dns.exception.DNSException, OSError):
                pass
        if "exiting (due to fatal error)" in text:
            break
        time.sleep(0.1)
    pytest.fail(f"named {name} on {address} is not serving {zone}:\n{log.read_text(errors='replace')[-3000:]}")


def _silent_server(address: str) -> socket.socket:
    """Port 53 that takes every query and never answers: a server that times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    return sock  # nobody reads it; the kernel queue fills and drops, which is silence too


@pytest.fixture
def fleet_factory() -> Iterator:
    """``fleet_factory(counts)`` starts a fleet; stopped after the test."""
    started: list[Fleet] = []
    with tempfile.TemporaryDirectory(prefix="cutover-fleet-") as tmp:
        counter = iter(range(100))

        def make(counts: Mapping[str, int]) -> Fleet:
            directory = Path(tmp) / f"fleet{next(counter)}"
            directory.mkdir()
            fleet = start_fleet(directory, counts)
            started.append(fleet)
            return fleet

        try:
            yield make
        finally:
            for fleet in started:
                fleet.stop()
