"""The ``manual`` provider: a person makes the change, cutover checks it.

For registrars and consoles with no API (a delegation change at a registrar, a form
sent to a registry). ``apply`` prints a change sheet a person can follow, with values
ready to copy, waits for them to confirm on a terminal, then polls the authoritative
servers and reports each record as it goes live (served by every server that
answers). Without a terminal it prints the sheet and waits by polling alone. Reading
is by DNS queries (recursion off) to the zone's authoritative servers, so only the
managed names are ever seen.

A delegation change (NS at the zone apex) is checked where a delegation lives: at the
parent zone's servers (``parent_nameservers``, else found through the system resolver).

Settings: ``nameservers`` (address[:port] or host names; default the plan's
``verify.nameservers``, else the zone's NS through the system resolver), ``parent_nameservers``, ``timeout`` (per query, 5 s), ``wait``
(how long the person has for the change, counted from when the sheet is printed,
default 1h), ``poll_interval`` (10 s).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Sequence, TextIO

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from cutover.errors import ProviderError
from cutover.values import parse_duration
from cutover.records import Change, RecordKey, RecordSet, index, relative_name
from cutover.resolvers import parse_address
from cutover.times import duration
from providers import dnsquery
from providers.base import ApplyReceipt, Provider


class ManualProvider(Provider):
    """A person at a console applies; DNS queries read and confirm."""

    settings_keys = ("nameservers", "parent_nameservers", "timeout", "wait", "poll_interval")
    lists_whole_zone = False
    #: No re-read before the sheet: the person at the console is the backend. The sheet
    #: shows each record set as read ("now"), which is what they check at the console
    #: before they change it; a read by cutover a second after the diff's own would add
    #: nothing, and cannot cover the minutes the person then takes.
    backend_checks_before = True
    #: A person can type any record type into a console; the console decides.
    supported_types = None
    service = "manual change"

    def __init__(self, zone: str, settings: Mapping[str, Any], *, stream: TextIO | None = None,
                 ask: Callable[[str], str] | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(zone, settings)
        self.timeout = parse_duration(self.settings.get("timeout", 5))
        self.wait_for = parse_duration(self.settings.get("wait", "1h"))
        self.interval = parse_duration(self.settings.get("poll_interval", 10))
        self.stream = stream or sys.stderr
        self.ask = ask if ask is not None else (_terminal_prompt if sys.stdin.isatty() else None)
        self.sleep = sleep
        self.clock = clock

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

    @classmethod
    def with_verify_nameservers(cls, settings: Mapping[str, Any], nameservers: Sequence[str]) -> dict[str, Any]:
        """The plan's ``verify.nameservers`` are where to read when ``nameservers`` is not set:
        both name the zone's authoritative servers, and for a zone whose NS are in no public
        DNS they are the only servers cutover can know."""
        merged = dict(settings)
        if not merged.get("nameservers") and nameservers:
            merged["nameservers"] = [str(n) for n in nameservers]
        return merged

    # ------------------------------------------------------------------ reading

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        keys = set(wanted)
        delegation = {k for k in keys if k == self._delegation_key}
        found = _first_answer(self._servers("nameservers"), lambda s: dnsquery.read_rrsets(s, keys - delegation))
        if delegation:
            found += _first_answer(self._servers("parent_nameservers"), self._read_delegation)
        return found

    @property
    def _delegation_key(self) -> RecordKey:
        return (self.zone, "NS")

    def _read_each(self, wanted: Collection[RecordKey]) -> list[_Reading]:
        """What every server serves for ``wanted``: the zone's servers for its records, the
        parent's for the delegation. A server that does not answer is noted, not fatal.
        The servers are read at the same time, so one silent server costs its timeout
        once per round, not on top of everyone else's answers."""
        keys = set(wanted)
        groups = [("nameservers", frozenset(keys - {self._delegation_key}), None),
                  ("parent_nameservers", frozenset(keys & {self._delegation_key}), self._read_delegation)]
        jobs = [(server, group, read) for setting, group, read in groups if group for server in self._servers(setting)]
        return dnsquery.concurrently(lambda job: _read_one(*job), jobs)

    def _read_delegation(self, server: dnsquery.Server) -> list[RecordSet]:
        """The NS set as the parent publishes it: in the referral's authority section."""
        query = dnsquery.make_query(server, self.zone, "NS")
        return dnsquery.ns_set(dnsquery.ask(server, query, f"query {self.zone} NS at the parent"), self.zone)

    def nameservers(self) -> list[str]:
        return [str(n) for n in self.settings.get("nameservers", [])] or _zone_ns(self.zone)

    def parent_nameservers(self) -> list[str]:
        """The delegation is changed here at the parent: its servers, for the watch."""
        return [str(n) for n in self.settings.get("parent_nameservers", [])] or _zone_ns(_parent(self.zone))

    def _servers(self, key: str) -> list[dnsquery.Server]:
        names = [str(n) for n in self.settings.get(key, [])]
        if not names:
            names = _zone_ns(self.zone) if key == "nameservers" else _zone_ns(_parent(self.zone))
        if not names:
            where = "provider.nameservers (or verify.nameservers)" if key == "nameservers" else f"provider.{key}"
            raise ProviderError(f"no authoritative servers known for {self.zone if key == 'nameservers' else _parent(self.zone)}: "
                                f"set {where}")
        servers = []
        for name in names:
            try:
                address, port = parse_address(name)
            except ValueError:
                address, port = dnsquery.resolve_host(name), 53
            servers.append(dnsquery.Server(address, port, self.timeout))
        return servers

    # ------------------------------------------------------------------ applying

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Print the sheet, wait for the person (or just for DNS), confirm each record live.

        ``wait`` counts from the moment the sheet is printed, not from the confirmation:
        it is the person's time for the whole job, so an hour at the console followed by
        a confirmation does not buy another hour of polling."""
        deadline = self.clock() + self.wait_for
        self._write(change_sheet(self.zone, changes))
        if self.ask is not None:
            reply = self.ask("Type 'done' once the changes are saved at the console (or 'abort'): ").strip().lower()
            if reply not in ("done", "d", "yes", "y"):
                raise ProviderError("the operator did not confirm; cutover has not checked for the changes")
        else:
            self._write(f"No terminal: polling the authoritative servers for up to {duration(self.wait_for)}.\n")
        self._poll(changes, deadline)
        return ApplyReceipt(token=None, atomic=False, detail="made by hand, confirmed at the authoritative servers")

    def _poll(self, changes: Sequence[Change], deadline: float) -> None:
        """Check until every change is live, at least once even when the person took
        all the time there was; then say exactly what is still missing where."""
        pending = {c.key: c for c in changes}
        while True:
            readings = self._read_each(pending)
            for key in [k for k, c in pending.items() if _live(readings, k, c.after)]:
                self._write(f"  live: {relative_name(key[0], self.zone)} {key[1]}\n")
                del pending[key]
            if not pending:
                return
            if self.clock() + self.interval > deadline:
                raise ProviderError(self._not_live(list(pending.values()), readings))
            self.sleep(self.interval)

    def _not_live(self, missing: Sequence[Change], readings: Sequence[_Reading]) -> str:
        """The timeout message: which records, what each server serves instead, what next."""
        names = ", ".join(_label(c.key, self.zone) for c in missing)
        lines = [f"manual change of {self.zone} not live at the authoritative servers "
                 f"{duration(self.wait_for)} after the change sheet was printed: {names}"]
        for change in missing:
            served = "; ".join(_served(r, change) for r in readings if change.key in r.keys)
            lines.append(f"  {_label(change.key, self.zone)}: wanted {_shown(change.after)}; {served}")
        lines.append("Make (or correct) these changes at the console as the sheet shows them, then run "
                     "`cutover apply` again: it reads the zone again, leaves what is already live alone and "
                     "checks the rest. If the console only publishes slowly, raise provider.wait "
                     f"(now {duration(self.wait_for)}).")
        return "\n".join(lines)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


@dataclass(frozen=True)
class _Reading:
    """What one server served for the keys asked of it; ``sets`` is None when it did not answer."""

    server: str
    keys: frozenset[RecordKey]
    sets: Mapping[RecordKey, RecordSet] | None


def _read_one(server: dnsquery.Server, keys: frozenset[RecordKey],
              read: Callable[[dnsquery.Server], list[RecordSet]] | None) -> _Reading:
    try:
        found = read(server) if read is not None else dnsquery.read_rrsets(server, keys)
    except dnsquery.ServerUnreachable:
        return _Reading(server.endpoint, keys, None)
    return _Reading(server.endpoint, keys, index(found))


def _live(readings: Sequence[_Reading], key: RecordKey, after: RecordSet | None) -> bool:
    """Live: every server that answered serves ``after`` (absent, for a delete), and one did."""
    answers = [r.sets for r in readings if key in r.keys and r.sets is not None]
    return bool(answers) and all(sets.get(key) == after for sets in answers)


def _served(reading: _Reading, change: Change) -> str:
    if reading.sets is None:
        return f"{reading.server} did not answer"
    now = reading.sets.get(change.key)
    state = "already serves it" if now == change.after else f"serves {_shown(now)}"
    return f"{reading.server} {state}"


def _shown(rs: RecordSet | None) -> str:
    return "no such records" if rs is None else f"{', '.join(rs.values)} (TTL {rs.ttl})"


def _label(key: RecordKey, zone: str) -> str:
    return f"{relative_name(key[0], zone)} {key[1]}"


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
