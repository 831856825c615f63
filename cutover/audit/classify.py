"""What one domain's authoritative servers said, and what that makes the domain: pure.

The lookups (``lookup.py``) gather an ``Observation`` per domain: its NS names, how
each server answered the SOA question (reachable, lame, silent), and each record asked
(the apex, ``www``, the MX hosts, ``--names``) with where the answer came from. This
module turns it into a ``DomainResult`` without any I/O, so that every rule can be
tested on frozen values and a stored result reads back exactly as it was decided.

The statuses, from the hoster's point of view (``--old`` is the address customers must
move away from, ``--new`` the one they must move to):

* ``moved``: addresses that matter (old or new) were found and all of them are new;
* ``old``: all of them are old (the records still pointing there are listed);
* ``mixed``: some old, some new (which is which is listed);
* ``elsewhere``: no address found is old or new (the customer went to another host,
  or has no web or mail records at all: where they point is listed);
* ``unreachable``: no authoritative server gave usable answers: no NS records, a lame
  delegation (REFUSED, not authoritative), silence. Each server and why is listed.

Addresses that are neither old nor new (mail at a hosted service beside a web site on
the new address) are listed with the records but do not change the status: they are
not the hoster's to move. A server that fails while another answers is a note, not a
status: resolvers skip a lame server, so the domain is still served.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

STATUSES = ("moved", "old", "mixed", "elsewhere", "unreachable")
#: Engine states that are answers about the data (a value, or its authoritative absence).
ANSWER_STATES = ("other", "nodata", "nxdomain")
#: Record types whose values are addresses.
ADDRESS_TYPES = ("A", "AAAA")
#: Records named in a detail line before "and N more".
MAX_SHOWN = 6


@dataclass(frozen=True)
class Server:
    """One authoritative server address of a domain, under the NS name it was found by."""

    name: str
    address: str
    port: int = 53

    @property
    def label(self) -> str:
        if not self.address:
            return self.name
        host = f"[{self.address}]" if ":" in self.address else self.address
        where = host if self.port == 53 else f"{host}:{self.port}"
        return f"{self.name} ({where})" if self.name else where


@dataclass(frozen=True)
class ServerCheck:
    """How a server answered the domain's SOA question: ``ok`` (with the serial), or why
    not (``timeout``, ``refused``, ``lame``, ``servfail``, ``nxdomain``, ``nodata``,
    ``malformed``, ``error``, ``no-address``)."""

    server: Server
    state: str
    detail: str = ""
    serial: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.server.name, "address": self.server.address, "port": self.server.port,
                "state": self.state, "serial": self.serial, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServerCheck":
        serial = data.get("serial")
        return cls(Server(str(data.get("name", "")), str(data.get("address", "")), int(data.get("port", 53))),
                   str(data.get("state", "error")), str(data.get("detail", "")), serial if isinstance(serial, int) else None)


@dataclass(frozen=True)
class Lookup:
    """One question about the domain and its answer, reduced by the engine to a state.

    ``role`` says why it was asked (``apex``, ``www``, ``mx``, ``name``, ``cname``);
    ``via`` how it was reached (``MX 10 mail.example.com.``, ``CNAME www.example.com. ->
    web.host.example.``); ``source`` which server answered."""

    name: str
    type: str
    role: str
    state: str
    values: tuple[str, ...] = ()
    source: str = ""
    via: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    """Everything the lookups found about one domain. ``problem`` says why no
    authoritative server could be named (empty when some were)."""

    domain: str
    nameservers: tuple[str, ...] = ()
    problem: str = ""
    servers: tuple[ServerCheck, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordResult:
    """One address record set found, with what its values are to the hoster: ``new``,
    ``old``, ``mixed`` (both in one set) or ``other``."""

    name: str
    type: str
    values: tuple[str, ...]
    state: str
    role: str
    via: str = ""
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "values": list(self.values), "state": self.state,
                "role": self.role, "via": self.via, "servers": list(self.sources)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RecordResult":
        return cls(str(data["name"]), str(data["type"]), tuple(str(v) for v in data.get("values") or ()),
                   str(data.get("state", "other")), str(data.get("role", "")), str(data.get("via", "")),
                   tuple(str(s) for s in data.get("servers") or ()))

    def shown(self, domain: str) -> str:
        """``www A 198.51.100.10`` (relative to the domain; ``@`` for the apex)."""
        return f"{relative(self.name, domain)} {self.type} {' '.join(self.values)}"


@dataclass(frozen=True)
class DomainResult:
    """A domain's status, the address records behind it, and a sentence saying why."""

    domain: str
    status: str
    records: tuple[RecordResult, ...]
    detail: str
    nameservers: tuple[str, ...] = ()
    servers: tuple[ServerCheck, ...] = ()

    def records_in(self, *states: str) -> tuple[RecordResult, ...]:
        return tuple(r for r in self.records if r.state in states)

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "status": self.status, "records": [r.as_dict() for r in self.records],
                "detail": self.detail, "nameservers": list(self.nameservers),
                "servers": [s.as_dict() for s in self.servers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DomainResult":
        return cls(str(data["domain"]), str(data["status"]),
                   tuple(RecordResult.from_dict(r) for r in data.get("records") or ()), str(data.get("detail", "")),
                   tuple(str(n) for n in data.get("nameservers") or ()),
                   tuple(ServerCheck.from_dict(s) for s in data.get("servers") or ()))


def classify(obs: Observation, old: frozenset[str], new: frozenset[str]) -> DomainResult:
    """The domain's status from what its servers said; ``old`` and ``new`` are canonical
    address texts (``str(ipaddress.ip_address(...))``)."""
    def result(status: str, records: tuple[RecordResult, ...], detail: str) -> DomainResult:
        return DomainResult(obs.domain, status, records, detail, obs.nameservers, obs.servers)

    if not obs.servers:
        return result("unreachable", (), obs.problem or "no authoritative server found")
    answering = [s for s in obs.servers if s.state == "ok"]
    failing = [s for s in obs.servers if s.state != "ok"]
    server_notes = [f"{s.server.label}: {server_problem(s)}" for s in failing]
    if not answering:
        return result("unreachable", (), _joined(["no authoritative server answers", *server_notes, *obs.notes]))
    answered = [lk for lk in obs.lookups if lk.state in ANSWER_STATES]
    failed = [lk for lk in obs.lookups if lk.state not in ANSWER_STATES]
    lookup_notes = [f"{relative(lk.name, obs.domain)} {lk.type}: {lk.state} at {lk.source}"
                    + (f" ({lk.detail})" if lk.detail else "") for lk in failed]
    if obs.lookups and not answered:
        return result("unreachable", (), _joined(["the servers answer the SOA but no other question",
                                                  *lookup_notes[:MAX_SHOWN], *server_notes, *obs.notes]))
    records = address_records(obs.lookups, old, new)
    olds = [r for r in records if r.state in ("old", "mixed")]
    news = [r for r in records if r.state in ("new", "mixed")]
    others = [r for r in records if r.state == "other"]
    serials = sorted({s.serial for s in answering if s.serial is not None})
    notes = [*server_notes, *lookup_notes, *obs.notes]
    if len(serials) > 1:
        notes.insert(0, "the servers disagree: " + ", ".join(
            f"serial {s.serial} at {s.server.label}" for s in answering if s.serial is not None))
    if olds and news:
        status, lead = "mixed", [f"old: {_listed(olds, obs.domain)}", f"new: {_listed(news, obs.domain)}"]
    elif olds:
        status, lead = "old", [f"still on the old address: {_listed(olds, obs.domain)}"]
    elif news:
        status, lead = "moved", [f"on the new address: {_listed(news, obs.domain)}"]
    elif others:
        return result("elsewhere", records, _joined([f"points elsewhere: {_listed(others, obs.domain)}", *notes]))
    else:
        return result("elsewhere", records, _joined(["no address records at the apex, www, the MX hosts or the names "
                                                     "asked", *notes]))
    if others:
        lead.append(f"neither old nor new: {_listed(others, obs.domain)}")
    return result(status, records, _joined([*lead, *notes]))


def address_records(lookups: Iterable[Lookup], old: frozenset[str], new: frozenset[str]) -> tuple[RecordResult, ...]:
    """Each address record set found, once per distinct answer (two servers that agree
    make one entry naming both)."""
    merged: dict[tuple[str, str, tuple[str, ...], str, str], list[str]] = {}
    for lk in lookups:
        if lk.type not in ADDRESS_TYPES or lk.state != "other" or not lk.values:
            continue
        values = tuple(sorted({_canonical(v) for v in lk.values}))
        sources = merged.setdefault((lk.name, lk.type, values, lk.role, lk.via), [])
        if lk.source and lk.source not in sources:
            sources.append(lk.source)
    return tuple(RecordResult(name, rtype, values, value_state(values, old, new), role, via, tuple(sources))
                 for (name, rtype, values, role, via), sources in merged.items())


def value_state(values: Sequence[str], old: frozenset[str], new: frozenset[str]) -> str:
    has_old = any(v in old for v in values)
    has_new = any(v in new for v in values)
    if has_old and has_new:
        return "mixed"
    return "old" if has_old else "new" if has_new else "other"


def server_problem(check: ServerCheck) -> str:
    """Why a server gave no usable answer, in words a customer's DNS admin acts on."""
    words = {
        "timeout": "no answer",
        "refused": "REFUSED (lame delegation, or the server refuses queries for the domain)",
        "lame": "not authoritative for the domain (lame delegation)",
        "servfail": "SERVFAIL (the server cannot serve the zone)",
        "nxdomain": "NXDOMAIN (the server does not know the domain)",
        "nodata": "no SOA record (not the zone's apex on this server)",
        "malformed": "malformed answer",
        "no-address": "no address for the server's name",
        "error": "error",
    }
    detail = "" if check.detail.startswith("rcode ") else check.detail
    if check.state == "timeout" and detail:
        return detail
    base = words.get(check.state, check.state)
    return f"{base}: {detail}" if detail else base


def relative(name: str, domain: str) -> str:
    """``www.example.com.`` -> ``www``; the domain itself -> ``@``; others stay absolute."""
    if name == domain:
        return "@"
    if name.endswith("." + domain):
        return name[: -len(domain) - 1]
    return name


def _listed(records: Sequence[RecordResult], domain: str) -> str:
    shown = [_record_text(r, domain) for r in records[:MAX_SHOWN]]
    if len(records) > MAX_SHOWN:
        shown.append(f"and {len(records) - MAX_SHOWN} more")
    return ", ".join(shown)


def _record_text(record: RecordResult, domain: str) -> str:
    text = record.shown(domain)
    if record.role == "mx":
        return f"{text} (MX host)"
    if record.role == "cname" and record.via.startswith("CNAME "):
        alias = record.via.split()[1]
        return f"{relative(alias, domain)} CNAME {text}"
    return text


def _joined(parts: Iterable[str]) -> str:
    return "; ".join(p for p in parts if p)


def _canonical(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value
