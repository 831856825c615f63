"""What to check, derived from the plan (and the live zone): pure, no I/O.

Checks come from the plan's records, not from the diff, so that ``cutover check`` says
the same before the window (is the new server ready?) and after it (is it still?):

* **web**: every name whose planned A/AAAA is a move (``to`` differs from ``from``, or
  no ``from``), at its new addresses; ``ready.web.names`` narrows the list. Names that
  are mail hosts (an MX target in the plan or the zone) are left to the mail checks:
  a mail server need not serve a web site;
* **mail**: every new MX host (in a planned MX's ``to``, not its ``from``), at its
  address from the plan when it is in the zone, else the live zone's, else DNS;
* **sending**: the SPF record after the change (the plan's apex TXT if it manages one,
  else the live one), the DMARC record, and the records mail clients use to find their
  server (``autodiscover``, ``_autodiscover._tcp``, ``autoconfig``);
* **old mail**: the MX hosts a planned MX moves away from, at their old addresses, for
  the parallel-period check in ``watch``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Iterable, Mapping

from cutover.plan import Plan, PlannedRecord
from cutover.records import RecordKey, RecordSet, absolute_name

ADDRESS_TYPES = ("A", "AAAA")
#: Names mail clients use to find their server (Microsoft's autodiscover, Thunderbird's autoconfig).
CLIENT_SETUP = (("autodiscover", "CNAME"), ("autodiscover", "A"), ("_autodiscover._tcp", "SRV"),
                ("autoconfig", "CNAME"), ("autoconfig", "A"))


@dataclass(frozen=True)
class Server:
    """A server to connect to for a name: the name (no trailing dot) and its addresses;
    no addresses means "resolve the name" (an MX host outside the zone)."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Targets:
    """Everything ``cutover check`` connects to or reads for one plan."""

    zone: str  # no trailing dot
    web: tuple[Server, ...]
    mail: tuple[Server, ...]
    old_mail: tuple[Server, ...]
    spf: str | None
    spf_source: str  # "plan", "live" or "" (no SPF record)
    dmarc: str | None
    client_setup: tuple[RecordSet, ...]


def derive(plan: Plan, live: Mapping[RecordKey, RecordSet]) -> Targets:
    """The checks one plan calls for (see the module docstring)."""
    zone = plan.zone
    mail_hosts = _mx_hosts(plan.records, live, zone)
    return Targets(
        zone=zone.rstrip("."),
        web=tuple(_web(plan, mail_hosts)),
        mail=tuple(Server(_bare(h), _addresses(plan, live, h, "to")) for h in _new_mx(plan.records)),
        old_mail=tuple(Server(_bare(h), _addresses(plan, live, h, "from")) for h in _old_mx(plan.records)),
        spf=_spf(plan, live)[0],
        spf_source=_spf(plan, live)[1],
        dmarc=_txt(plan, live, absolute_name("_dmarc", zone), "v=dmarc1"),
        client_setup=tuple(_client_setup(plan, live)),
    )


def keys_to_read(plan: Plan) -> list[RecordKey]:
    """The live record sets ``derive`` looks at beyond the plan's own: the zone's MX and
    SPF, DMARC, the mail client set-up records, and the mail hosts' addresses."""
    zone = plan.zone
    hosts = {_exchange(v) for r in plan.records if r.type == "MX" for v in (*r.to, *(r.from_ or ()))}
    keys = [(zone, "MX"), (zone, "TXT"), (absolute_name("_dmarc", zone), "TXT")]
    keys += [(absolute_name(label, zone), rtype) for label, rtype in CLIENT_SETUP]
    keys += [(h, t) for h in sorted(hosts) if h == zone or h.endswith("." + zone) for t in ADDRESS_TYPES]
    return keys


def _web(plan: Plan, mail_hosts: set[str]) -> list[Server]:
    wanted = None if plan.ready.web_names is None else {absolute_name(n, plan.zone) for n in plan.ready.web_names}
    by_name: dict[str, list[str]] = {}
    for r in plan.records:
        if r.type not in ADDRESS_TYPES or not r.to or (r.from_ is not None and set(r.from_) == set(r.to)):
            continue
        if (wanted is None and r.name in mail_hosts) or (wanted is not None and r.name not in wanted):
            continue
        by_name.setdefault(r.name, []).extend(r.to)
    return [Server(_bare(name), tuple(dict.fromkeys(values))) for name, values in by_name.items()]


def _exchange(value: str) -> str:
    return value.split()[-1].lower()


def _new_mx(records: Iterable[PlannedRecord]) -> list[str]:
    out: dict[str, None] = {}
    for r in records:
        if r.type == "MX":
            before = {_exchange(v) for v in r.from_ or ()}
            out.update((_exchange(v), None) for v in r.to if _exchange(v) not in before and _exchange(v) != ".")
    return list(out)


def _old_mx(records: Iterable[PlannedRecord]) -> list[str]:
    out: dict[str, None] = {}
    for r in records:
        if r.type == "MX" and r.from_:
            after = {_exchange(v) for v in r.to}
            out.update((_exchange(v), None) for v in r.from_ if _exchange(v) not in after and _exchange(v) != ".")
    return list(out)


def _mx_hosts(records: Iterable[PlannedRecord], live: Mapping[RecordKey, RecordSet], zone: str) -> set[str]:
    hosts = {_exchange(v) for r in records if r.type == "MX" for v in (*r.to, *(r.from_ or ()))}
    hosts |= {_exchange(v) for rs in live.values() if rs.type == "MX" for v in rs.values}
    return hosts


def _addresses(plan: Plan, live: Mapping[RecordKey, RecordSet], host: str, side: str) -> tuple[str, ...]:
    """A mail host's addresses: the plan's (``to`` for the new server, ``from`` for the
    old), else the live zone's; empty when it is outside the zone (resolve it)."""
    out: list[str] = []
    for rtype in ADDRESS_TYPES:
        planned = next((r for r in plan.records if r.key == (host, rtype)), None)
        values = (planned.to if side == "to" else planned.from_) if planned is not None else None
        if values is None and (host, rtype) in live:
            values = live[(host, rtype)].values
        out.extend(values or ())
    return tuple(out)


def _spf(plan: Plan, live: Mapping[RecordKey, RecordSet]) -> tuple[str | None, str]:
    planned = next((r for r in plan.records if r.key == (plan.zone, "TXT")), None)
    if planned is not None:
        return _first_txt(planned.to, "v=spf1"), "plan"
    found = _first_txt(live[(plan.zone, "TXT")].values, "v=spf1") if (plan.zone, "TXT") in live else None
    return found, "live" if found else ""


def _txt(plan: Plan, live: Mapping[RecordKey, RecordSet], name: str, prefix: str) -> str | None:
    planned = next((r for r in plan.records if r.key == (name, "TXT")), None)
    if planned is not None:
        return _first_txt(planned.to, prefix)
    return _first_txt(live[(name, "TXT")].values, prefix) if (name, "TXT") in live else None


def _first_txt(values: Iterable[str], prefix: str) -> str | None:
    """The TXT value starting with ``prefix`` (case-insensitively), its strings joined."""
    for value in values:
        text = "".join(part for part in _strings(value))
        if text.lower().startswith(prefix):
            return text
    return None


def _strings(value: str) -> list[str]:
    """A TXT value's character-strings (canonical form: ``"a" "b"``), unquoted."""
    try:
        return shlex.split(value, posix=True)
    except ValueError:
        return [value.strip('"')]


def _client_setup(plan: Plan, live: Mapping[RecordKey, RecordSet]) -> list[RecordSet]:
    out = []
    for label, rtype in CLIENT_SETUP:
        key = (absolute_name(label, plan.zone), rtype)
        planned = next((r for r in plan.records if r.key == key), None)
        if planned is not None and planned.to:
            out.append(RecordSet(key[0], rtype, planned.ttl or 0, planned.to))
        elif planned is None and key in live:
            out.append(live[key])
    return out


def _bare(name: str) -> str:
    return name.rstrip(".")
