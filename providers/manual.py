"""The ``manual`` provider: a person makes the change, cutover checks it.

For registrars and consoles with no API (a delegation change at a registrar, a form
sent to a registry). ``apply`` prints a change sheet a person can follow, with values
ready to copy, waits for them to confirm on a terminal, then polls the authoritative
servers and reports each record as it goes live. Without a terminal it prints the
sheet and waits by polling alone. Reading is by DNS queries (recursion off) to the
zone's authoritative servers, so only the managed names are ever seen.

A delegation change (NS at the zone apex) is checked where a delegation lives: at the
parent zone's servers (``parent_nameservers``, else found through the system resolver).

Settings: ``nameservers`` (address[:port] or host names; default the zone's NS through
the system resolver), ``parent_nameservers``, ``timeout`` (per query, 5 s), ``wait``
(how long to poll for the person's change, default 1h), ``poll_interval`` (10 s).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Collection, Mapping, Sequence, TextIO

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from cutover.errors import ProviderError
from cutover.plan import parse_duration
from cutover.records import Change, RecordKey, RecordSet, relative_name
from cutover.resolvers import parse_address
from providers import dnsquery
from providers.base import ApplyReceipt, Provider


class ManualProvider(Provider):
    """A person at a console applies; DNS queries read and confirm."""

    settings_keys = ("nameservers", "parent_nameservers", "timeout", "wait", "poll_interval")
    lists_whole_zone = False

    def __init__(self, zone: str, settings: Mapping[str, Any], *, stream: TextIO | None = None,
                 ask: Callable[[str], str] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(zone, settings)
        self.timeout = parse_duration(self.settings.get("timeout", 5))
        self.wait_for = parse_duration(self.settings.get("wait", "1h"))
        self.interval = parse_duration(self.settings.get("poll_interval", 10))
        self.stream = stream or sys.stderr
        self.ask = ask if ask is not None else (_terminal_prompt if sys.stdin.isatty() else None)
        self.sleep = sleep

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        for key in ("timeout", "wait", "poll_interval"):
            if key in settings:
                try:
                    parse_duration(settings[key])
                except ValueError as exc:
                    problems.append((key, str(exc)))
        for key in ("nameservers", "parent_nameservers"):
            value = settings.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append((key, f"{value!r} is not a list of servers (address[:port] or host names)"))
        return problems

    # ------------------------------------------------------------------ reading

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        keys = set(wanted)
        delegation = {k for k in keys if k == (self.zone, "NS")}
        found = _first_answer(self._servers("nameservers"), lambda s: dnsquery.read_rrsets(s, keys - delegation))
        if delegation:
            found += _first_answer(self._servers("parent_nameservers"), self._read_delegation)
        return found

    def _read_delegation(self, server: dnsquery.Server) -> list[RecordSet]:
        """The NS set as the parent publishes it: in the referral's authority section."""
        query = dnsquery.make_query(server, self.zone, "NS")
        response = dnsquery.ask(server, query, f"query {self.zone} NS at the parent")
        owner = dns.name.from_text(self.zone)
        for section in (response.answer, response.authority):
            rrset = response.get_rrset(section, owner, dns.rdataclass.IN, dns.rdatatype.NS)
            if rrset is not None:
                return [dnsquery.to_recordset(rrset)]
        return []

    def nameservers(self) -> list[str]:
        return [str(n) for n in self.settings.get("nameservers", [])] or _zone_ns(self.zone)

    def _servers(self, key: str) -> list[dnsquery.Server]:
        names = [str(n) for n in self.settings.get(key, [])]
        if not names:
            names = _zone_ns(self.zone) if key == "nameservers" else _zone_ns(_parent(self.zone))
        if not names:
            raise ProviderError(f"no authoritative servers known for {self.zone if key == 'nameservers' else _parent(self.zone)}: "
                                f"set provider.{key}")
        servers = []
        for name in names:
            try:
                address, port = parse_address(name)
            except ValueError:
                address, port = dnsquery.resolve_host(name), 53
            servers.append(dnsquery.Server(address, port, self.timeout))
        return servers

    # ------------------------------------------------------------------ applying

    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Print the sheet, wait for the person (or just for DNS), confirm each record live."""
        self._write(change_sheet(self.zone, changes))
        if self.ask is not None:
            reply = self.ask("Type 'done' once the changes are saved at the console (or 'abort'): ").strip().lower()
            if reply not in ("done", "d", "yes", "y"):
                raise ProviderError("the operator did not confirm; cutover has not checked for the changes")
        else:
            self._write(f"No terminal: polling the authoritative servers for up to {self.wait_for:.0f}s.\n")
        self._poll(changes)
        return ApplyReceipt(token=None, atomic=False, detail="made by hand, confirmed at the authoritative servers")

    def _poll(self, changes: Sequence[Change]) -> None:
        deadline = time.monotonic() + self.wait_for
        pending = {c.key: c.after for c in changes}
        while True:
            live = {rs.key: rs for rs in self.records(pending)}
            for key in [k for k, after in pending.items() if live.get(k) == after]:
                self._write(f"  live: {relative_name(key[0], self.zone)} {key[1]}\n")
                del pending[key]
            if not pending:
                return
            if time.monotonic() + self.interval > deadline:
                missing = ", ".join(f"{n} {t}" for n, t in sorted(pending))
                raise ProviderError(f"not live at the authoritative servers after {self.wait_for:.0f}s: {missing}")
            self.sleep(self.interval)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def change_sheet(zone: str, changes: Sequence[Change]) -> str:
    """The checklist for the person at the console: one block per record set."""
    lines = [f"Change sheet for {zone.rstrip('.')} ({len(changes)} record set(s)). Make these changes at the console:", ""]
    for i, c in enumerate(changes, 1):
        name = relative_name(c.name, zone)
        where = " (delegation: at the registrar / parent zone)" if c.key == (zone, "NS") else ""
        lines.append(f"[{i}] {c.action.upper()} {name} {c.type}{where}")
        if c.before:
            lines.append(f"    now  (TTL {c.before.ttl}):")
            lines += [f"        {v}" for v in c.before.values]
        if c.after:
            lines.append(f"    make (TTL {c.after.ttl}):")
            lines += [f"        {v}" for v in c.after.values]
        else:
            lines.append("    make: delete every value of this record set")
        lines.append("")
    return "\n".join(lines) + "\n"


def _terminal_prompt(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline()


def _first_answer(servers: Sequence[dnsquery.Server], read: Callable[[dnsquery.Server], list[RecordSet]]) -> list[RecordSet]:
    """The first server that answers decides; an unreachable one is passed over."""
    errors = []
    for server in servers:
        try:
            return read(server)
        except dnsquery.ServerUnreachable as exc:
            errors.append(str(exc))
    raise ProviderError("no authoritative server answered: " + "; ".join(errors))


def _parent(zone: str) -> str:
    return dns.name.from_text(zone).parent().to_text()


def _zone_ns(zone: str) -> list[str]:
    try:
        return sorted(r.target.to_text() for r in dns.resolver.resolve(zone, "NS", lifetime=5))
    except dns.exception.DNSException:
        return []
