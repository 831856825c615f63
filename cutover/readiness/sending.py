"""Will mail sent from the new servers be accepted? SPF, DMARC and the mail client records.

``check_spf`` asks of the SPF record the zone publishes after the change (the plan's apex
TXT when it manages it, else the live one: the caller's choice) whether each entry of
``ready.mail.sending`` is authorised:

- an address (``203.0.113.25``): the record's SPF result for a message from that address
  must be ``pass``, evaluated as a receiving server would (RFC 7208: qualifiers, ``a``,
  ``mx``, ``include``, ``redirect``, macros, the ten-lookup limit); for a network
  (``203.0.113.0/28``) its first and last addresses must both pass;
- an ``include:DOMAIN`` (a hosted service's documented include, e.g.
  ``include:spf.protection.outlook.com`` for Microsoft 365): the term must be in the
  record or in a record it includes (or redirects to), with a pass qualifier and before
  ``all``, DOMAIN must publish an SPF record, and the record as a whole must evaluate
  without a permanent error.

The library is pyspf (``spf``), the reference Python implementation of RFC 7208 (it is
what Debian's postfix-policyd-spf-python runs). checkdmarc (6.0.4) was the other
candidate: it parses a record and resolves its include tree through chosen nameservers,
but it does not evaluate a record for a sender's address, which is the question here;
that would have meant writing SPF evaluation by hand on top of its parse tree, and it
pulls in httpx, pyleri, publicsuffixlist and more. pyspf needs dnspython only. Two things
to know about it, and what is done about them:

- pyspf asks DNS through one module-level function, ``spf.DNSLookup``, which its
  maintainer names as the hook for a custom DNS server (sdgathman/pyspf#29). It is
  replaced, for the length of one check and under a lock, by a lookup through a
  dnspython resolver aimed at ``nameservers`` (``ready.resolver``, any port), else the
  system's resolver; so tests never leave loopback.
- The include tree is walked with pyspf's own pieces (``query.dns_spf`` to fetch and
  select a domain's record, ``validate_mechanism`` to parse each term, macros expanded as
  it expands them); only the walk is here.

Results: ``pass`` is ``ok``; ``fail``, ``softfail``, ``neutral``, ``none`` and
``permerror`` are ``failed`` (mail from that address is at risk, or the record is broken),
with the fix in the detail; ``temperror`` (a DNS lookup failed) is ``pending``.

``check_dmarc`` reports the DMARC record: the issue asks to report it, so a missing
record is ``ok`` (informational: receivers apply their own policy) and so is any valid
policy, with the policy in the detail; a record that is there but that receivers ignore
(no ``v=DMARC1`` first, no valid ``p=``) is ``failed``, because it is a mistake the move
publishes or keeps. ``check_autodiscover`` reports the records mail clients use to find
their server (Outlook's ``autodiscover``/``_autodiscover._tcp``, Thunderbird's
``autoconfig``, RFC 6186 SRV records) from the record sets given: no network, always ``ok``.
"""

from __future__ import annotations

import ipaddress
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import dns.exception
import dns.nameserver
import dns.resolver
import spf

from cutover.readiness import FAILED, OK, PENDING, Check
from cutover.records import RecordSet

#: A documentation address (RFC 5737): no real record authorises it, so evaluating it
#: walks the whole record, which finds errors anywhere in the include tree.
PROBE = "192.0.2.1"
MAX_DEPTH = 10  # includes and redirects followed; RFC 7208's lookup limit stops real records sooner
_HOOK = threading.Lock()  # spf.DNSLookup is module-wide: one evaluation at a time


# --------------------------------------------------------------------------- DNS for pyspf


def make_resolver(nameservers: Sequence[tuple[str, int]] | None, timeout: float) -> dns.resolver.Resolver:
    """A dnspython resolver asking ``nameservers`` ((address, port) pairs), else the system's."""
    resolver = dns.resolver.Resolver(configure=nameservers is None)
    if nameservers is not None:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers]
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def _lookup_through(resolver: dns.resolver.Resolver) -> Any:
    """A replacement for ``spf.DNSLookup``: same arguments and answers as pyspf's own
    dnspython lookup (``((name, type), data)`` pairs), through ``resolver``."""

    def lookup(name: str, qtype: str, strict: object = True, timeout: float = 20.0) -> list[tuple[tuple[str, str], Any]]:
        try:
            answer = resolver.resolve(name, qtype, lifetime=min(timeout, resolver.lifetime), raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise spf.TempError(f"DNS {name} {qtype}: {exc}") from None
        out: list[tuple[tuple[str, str], Any]] = []
        for rdata in answer.rrset or ():
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                out.append(((name, qtype), rdata.strings))
        return out

    return lookup


@contextmanager
def _dns_through(resolver: dns.resolver.Resolver) -> Iterator[None]:
    with _HOOK:
        saved = spf.DNSLookup
        spf.DNSLookup = _lookup_through(resolver)
        try:
            yield
        finally:
            spf.DNSLookup = saved


# --------------------------------------------------------------------------- SPF


def _bare(zone: str) -> str:
    return zone.rstrip(".").lower()


def _query(ip: str, domain: str, timeout: float) -> spf.query:
    """A pyspf query for a message from ``ip`` with ``postmaster@domain`` as the envelope sender."""
    return spf.query(i=ip, s=f"postmaster@{domain}", h=domain, timeout=timeout, querytime=2 * timeout)


def _evaluate(record: str, ip: str, domain: str, timeout: float) -> tuple[str, str, str]:
    """(result, explanation, the base-level term that decided) for a message from ``ip``."""
    query = _query(ip, domain, timeout)
    try:
        result, _code, explanation = query.check(spf=record)
    except Exception as exc:  # noqa: BLE001 - a library bug must not end the whole check run
        return "permerror", f"{type(exc).__name__}: {exc}", ""
    return result, explanation, query.mechanism or ""


@dataclass
class _Tree:
    """What the walk of a record's includes found."""

    includes: dict[str, tuple[str, str]] = field(default_factory=dict)  # domain -> (qualifier result, via)
    empty: set[str] = field(default_factory=set)  # included domains without an SPF record
    error: tuple[str, str] | None = None  # (state, words) when the walk could not finish


def _walk(record: str, domain: str, timeout: float) -> _Tree:
    """Every ``include:`` reachable from ``record`` (terms before ``all``, then ``redirect=``)."""
    tree = _Tree()
    query = _query(PROBE, domain, timeout)
    seen: set[str] = {domain}

    def walk(text: str, at: str, via: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        query.d = at  # pyspf expands %{d} and checks trivial includes against the current domain
        redirect, ended = None, False
        for term in (t for t in text.split(" ")[1:] if t):
            modifier = spf.RE_MODIFIER.split(term)[1:]
            if len(modifier) == 2:
                if modifier[0].lower() == "redirect":
                    redirect = query.expand_domain(modifier[1])
                continue
            _term, kind, arg, _cidr, result = query.validate_mechanism(term)
            if kind == "all":
                ended = True
                break
            if kind != "include":
                continue
            target = _bare(arg)
            tree.includes.setdefault(target, (result, via))
            if target in seen:
                continue
            seen.add(target)
            sub = query.dns_spf(target)
            if not sub:
                tree.empty.add(target)
                continue
            walk(sub, target, f"{via} > include:{target}" if via else f"include:{target}", depth + 1)
            query.d = at
        if redirect and not ended and _bare(redirect) not in seen:
            seen.add(_bare(redirect))
            sub = query.dns_spf(redirect)
            if sub:
                walk(sub, _bare(redirect), f"{via} > redirect={redirect}" if via else f"redirect={redirect}", depth + 1)

    try:
        walk(record, domain, "", 0)
    except spf.TempError as exc:
        tree.error = (PENDING, f"not ready yet: the record's includes could not be read ({exc}); try again")
    except spf.PermError as exc:
        tree.error = (FAILED, f"the SPF record is broken (permerror): {exc}")
    return tree


def _where(source: str, domain: str) -> str:
    return {"plan": f"the plan's SPF record for {domain}", "live": f"the live SPF record of {domain}"}.get(
        source, f"the SPF record of {domain}")


def _ip_term(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    single = network.prefixlen == network.max_prefixlen
    return f"ip{network.version}:{network.network_address if single else network}"


def _suggestion(sending: Sequence[str]) -> str:
    terms = []
    for entry in sending:
        if entry.lower().startswith("include:"):
            terms.append(entry)
        else:
            terms.append(_ip_term(ipaddress.ip_network(entry, strict=False)))
    return f'"v=spf1 {" ".join(terms)} -all"'


def check_spf(zone: str, record: str | None, sending: Sequence[str],
              nameservers: Sequence[tuple[str, int]] | None = None, *, source: str = "",
              timeout: float = 10.0) -> list[Check]:
    """One ``spf`` check per ``sending`` entry (an address, a network or ``include:DOMAIN``).

    ``record``: the SPF text the zone publishes after the change (TXT strings joined), or
    None when it publishes none; ``source``: ``plan`` or ``live``, for the words;
    ``nameservers``: where the lookups the record needs go ((address, port) pairs), None
    for the system's resolver. Target: the zone; name: the entry."""
    domain = _bare(zone)
    if not sending:
        return []
    if not record:
        why = f"{domain} publishes no SPF record after the change; publish one, e.g. {_suggestion(sending)}"
        return [Check("spf", domain, entry, FAILED, why) for entry in sending]
    where = _where(source, domain)
    resolver = make_resolver(nameservers, timeout)
    out: list[Check] = []
    with _dns_through(resolver):
        tree: _Tree | None = None
        probe: tuple[str, str, str] | None = None
        for entry in sending:
            if entry.lower().startswith("include:"):
                if tree is None:
                    tree, probe = _walk(record, domain, timeout), _evaluate(record, PROBE, domain, timeout)
                assert probe is not None
                out.append(_include_check(domain, entry, tree, probe, where))
            else:
                out.append(_address_check(domain, entry, record, where, timeout))
    return out


def _address_check(domain: str, entry: str, record: str, where: str, timeout: float) -> Check:
    network = ipaddress.ip_network(entry.strip(), strict=False)
    ends = list(dict.fromkeys((str(network.network_address), str(network[-1]))))
    results = {ip: _evaluate(record, ip, domain, timeout) for ip in ends}
    failing = {ip: r for ip, r in results.items() if r[0] != "pass"}
    if not failing:
        decided = " and ".join(dict.fromkeys(r[2] for r in results.values() if r[2]))
        subject = entry if len(ends) == 1 else f"{entry} (its first and last addresses, {' and '.join(ends)})"
        return Check("spf", domain, entry, OK, f"pass: {where} authorises {subject}" + (f" through {decided}" if decided else ""))
    ip, (result, explanation, decided) = next(iter(failing.items()))
    subject = ip if len(ends) == 1 else f"{ip} (in {entry})"
    if result == "temperror":
        return Check("spf", domain, entry, PENDING, f"not ready yet: {where} could not be evaluated for {subject}: {explanation}")
    if result == "permerror":
        return Check("spf", domain, entry, FAILED, f"{where} is broken (permerror): {explanation}")
    return Check("spf", domain, entry, FAILED, f"{result} ({decided or 'no term matches'}): {where} does not authorise "
                                               f"{subject}; add {_ip_term(network)} before its 'all'")


def _include_check(domain: str, entry: str, tree: _Tree, probe: tuple[str, str, str], where: str) -> Check:
    target = _bare(entry.split(":", 1)[1])
    found = tree.includes.get(target)
    if found is None:
        if tree.error is not None:
            return Check("spf", domain, entry, tree.error[0], tree.error[1])
        return Check("spf", domain, entry, FAILED,
                     f"not in {where} nor in the records it includes; add include:{target} before its 'all'")
    result, via = found
    at = f" (through {via})" if via else ""
    if result != "pass":
        return Check("spf", domain, entry, FAILED,
                     f"{where} has include:{target}{at} with the {result} qualifier: only + (or none) authorises")
    if target in tree.empty:
        return Check("spf", domain, entry, FAILED,
                     f"{where} includes {target}{at}, but {target} publishes no SPF record: a permerror for every sender")
    if probe[0] == "temperror":
        return Check("spf", domain, entry, PENDING, f"not ready yet: {where} could not be evaluated: {probe[1]}")
    if probe[0] == "permerror":
        return Check("spf", domain, entry, FAILED, f"{where} includes {target}{at} but is broken (permerror): {probe[1]}")
    return Check("spf", domain, entry, OK, f"{where} includes {target}{at}")


# --------------------------------------------------------------------------- DMARC

DMARC_POLICIES = ("none", "quarantine", "reject")


def parse_dmarc(text: str) -> dict[str, str]:
    """A DMARC record's tags, names lower-cased (``{"v": "DMARC1", "p": "reject", ...}``)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def check_dmarc(zone: str, record: str | None, *, source: str = "") -> Check:
    """The ``dmarc`` check of ``record`` (the TXT at ``_dmarc.<zone>``, strings joined; None:
    absent). Informational, see the module: only a record receivers would ignore fails."""
    domain = _bare(zone)
    target = f"_dmarc.{domain}"
    origin = {"plan": " (the plan's)", "live": " (live)"}.get(source, "")
    if record is None:
        return Check("dmarc", target, domain, OK, f"no DMARC record{origin}: receivers apply their own policy "
                                                   "(informational; p=none with rua= is the usual first step)")
    tags = parse_dmarc(record)
    first = record.strip().split(";", 1)[0].replace(" ", "")
    if first.lower() != "v=dmarc1":
        return Check("dmarc", target, domain, FAILED, f"{record!r}{origin} does not start with v=DMARC1: receivers ignore it")
    policy = tags.get("p", "").lower()
    note = ""
    if policy not in DMARC_POLICIES:
        if "p" in tags or "rua" not in tags:
            return Check("dmarc", target, domain, FAILED,
                         f"{record!r}{origin} has no valid p= ({'/'.join(DMARC_POLICIES)}): receivers ignore it")
        policy, note = "none", " (no p=, but rua= is there: receivers treat it as p=none, RFC 7489 6.6.3)"
    shown = [f"p={policy}"] + [f"{k}={tags[k]}" for k in ("sp", "pct", "adkim", "aspf", "rua") if k in tags]
    return Check("dmarc", target, domain, OK, f"{', '.join(shown)}{origin}{note}")


# --------------------------------------------------------------------------- mail client records

#: What each client set-up name is for, by its first labels.
CLIENT_RECORDS = {
    "autodiscover": "Outlook and Microsoft 365 find the mail server here",
    "_autodiscover._tcp": "Outlook's SRV fallback for autodiscover",
    "autoconfig": "Thunderbird and other clients fetch their settings here",
    "_submission._tcp": "mail submission server (RFC 6186)",
    "_submissions._tcp": "mail submission over TLS (RFC 8314)",
    "_imap._tcp": "IMAP server (RFC 6186)",
    "_imaps._tcp": "IMAP over TLS (RFC 6186)",
    "_pop3._tcp": "POP3 server (RFC 6186)",
    "_pop3s._tcp": "POP3 over TLS (RFC 6186)",
}


def check_autodiscover(zone: str, records: Iterable[RecordSet]) -> list[Check]:
    """One ``autodiscover`` check per record set given (the plan's where it manages them,
    else the live zone's): what mail clients will find there after the change. Always
    ``ok``: the values are reported, so that an operator sees where clients will go."""
    domain = _bare(zone)
    out = []
    for rs in records:
        owner = _bare(rs.name)
        label = owner[: -len(domain) - 1] if owner.endswith("." + domain) else owner
        purpose = CLIENT_RECORDS.get(label, "")
        values = ", ".join(rs.values) or "(no values)"
        out.append(Check("autodiscover", owner, domain, OK, f"{rs.type} {values}" + (f": {purpose}" if purpose else "")))
    return out
