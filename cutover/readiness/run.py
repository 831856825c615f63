"""Running a plan's readiness checks: every server at once, none through the plan's DNS.

The checks themselves live in ``web``, ``mail`` and ``sending``; this module turns the
``Targets`` of a plan into calls, runs them concurrently (a server that does not answer
costs its timeout once, not once per name), and keeps the network where it belongs:

* a documentation address (RFC 5737, RFC 3849) is never connected to, and a reserved
  name (RFC 2606, RFC 6761: ``example.com``, ``.test``, ``.invalid``, ...) is never
  resolved unless ``ready.resolver`` says where to ask: such a check is ``skipped``,
  with the reason, rather than failed or leaked to the internet;
* an MX host outside the zone is resolved through ``ready.resolver`` when set, else the
  system's resolver (the plan's own records give the addresses of hosts in the zone).
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, Sequence

import dns.exception
import dns.resolver

from cutover.readiness import FAILED, SKIPPED, Check, mail, sending, web
from cutover.readiness.config import ReadyConfig
from cutover.readiness.targets import Server, Targets

#: Servers checked at once.
WORKERS = 8
DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in
                      ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "233.252.0.0/24", "2001:db8::/32"))
RESERVED_SUFFIXES = (".example", ".invalid", ".test", ".localhost", ".example.com", ".example.net", ".example.org")


def documentation(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in DOCUMENTATION if net.version == ip.version)


def reserved(name: str) -> bool:
    dotted = "." + name.rstrip(".").lower()
    return dotted.endswith(RESERVED_SUFFIXES) or dotted in (".example.com", ".example.net", ".example.org")


def web_settings(config: ReadyConfig) -> web.WebSettings:
    return web.WebSettings(path=config.web_path, statuses=config.web_status, http_port=config.http_port,
                           https_port=config.https_port, ca_file=config.ca_file, cert_days=config.cert_days,
                           timeout=config.timeout)


def check_plan(targets: Targets, config: ReadyConfig) -> list[Check]:
    """Every check the plan calls for, in a stable order: web, mail, sending."""
    jobs: list[Callable[[], list[Check]]] = []
    for server in targets.web:
        jobs += [partial(_web, server.name, address, config) for address in server.addresses]
    for server in targets.mail:
        jobs.append(partial(_mail_server, server, targets.zone, config))
    jobs.append(partial(_sending, targets, config))
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="ready") as pool:
        return [check for found in pool.map(lambda job: job(), jobs) for check in found]


def check_old_mail(targets: Targets, config: ReadyConfig) -> list[Check]:
    """During the parallel period: does every old MX still accept mail for the zone?
    (Caches still send mail there; if it stopped, that mail bounces.)"""
    settings = mail.MailSettings.from_config(config)
    out: list[Check] = []
    for server in targets.old_mail:
        addresses, problem = addresses_of(server, config)
        if problem is not None:
            out.append(Check("old-mx", server.name, server.name, problem[0], problem[1]))
            continue
        for address in addresses:
            out.append(_skip_documentation("old-mx", address, server.name, settings.port)
                       or mail.check_old_mx(server.name, address, targets.zone, settings))
    return out


def _web(name: str, address: str, config: ReadyConfig) -> list[Check]:
    skipped = _skip_documentation("web", address, name, config.http_port)
    return [skipped] if skipped else web.check_web(name, address, web_settings(config))


def _mail_server(server: Server, zone: str, config: ReadyConfig) -> list[Check]:
    addresses, problem = addresses_of(server, config)
    if problem is not None:
        return [Check("smtp", server.name, server.name, problem[0], problem[1])]
    out: list[Check] = []
    for address in addresses:
        skipped = _skip_documentation("smtp", address, server.name, config.smtp_port)
        out += [skipped] if skipped else mail.check_mx(server.name, address, zone, mail.MailSettings.from_config(config))
    return out


def _sending(targets: Targets, config: ReadyConfig) -> list[Check]:
    out: list[Check] = []
    if config.sending:
        out += sending.check_spf(targets.zone, targets.spf, list(config.sending), _nameservers(config),
                                 source=targets.spf_source, timeout=config.timeout)
    if targets.mail or targets.dmarc or config.sending:
        out.append(sending.check_dmarc(targets.zone, targets.dmarc))
    out += sending.check_autodiscover(targets.zone, targets.client_setup)
    return out


def addresses_of(server: Server, config: ReadyConfig) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """A server's addresses: the plan's or the zone's, else resolved; or (state, why) not."""
    if server.addresses:
        return server.addresses, None
    if config.resolver is None and reserved(server.name):
        return (), (SKIPPED, f"not checked: {server.name} is a reserved name (RFC 2606), never resolved")
    resolver = dns.resolver.Resolver(configure=config.resolver is None)
    if config.resolver is not None:
        resolver.nameservers, resolver.port = [config.resolver[0]], config.resolver[1]
    resolver.lifetime = config.timeout
    found: list[str] = []
    reasons = []
    for rtype in ("A", "AAAA"):
        try:
            found += [rd.to_text() for rd in resolver.resolve(server.name, rtype)]
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.DNSException as exc:
            reasons.append(f"{rtype}: {type(exc).__name__}")
    if not found:
        why = "; ".join(reasons) or "no A or AAAA record"
        return (), (FAILED, f"{server.name} has no address ({why})")
    return tuple(found), None


def _nameservers(config: ReadyConfig) -> Sequence[tuple[str, int]] | None:
    return None if config.resolver is None else [config.resolver]


def _skip_documentation(check: str, address: str, name: str, port: int) -> Check | None:
    if not documentation(address):
        return None
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return Check(check, where, name, SKIPPED, f"not checked: {address} is a documentation address (RFC 5737/3849)")
