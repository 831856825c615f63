"""The plan's ``ready:`` section: how the new servers are checked before and after a move.

Every key is optional: a plan without the section is still checked, with the defaults
an operator would pick (HTTP and HTTPS on 80 and 443 answering 200 or a redirect, SMTP
on 25 with STARTTLS required, ``postmaster`` as the recipient, certificates valid for
14 more days, the old MX asked hourly during the parallel period).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cutover.checking import Checker
from cutover.resolvers import parse_address
from cutover.values import parse_duration, show

KEYS = ("web", "mail", "old", "ca_file", "cert_days", "timeout", "resolver")
WEB_KEYS = ("names", "path", "status", "ports")
MAIL_KEYS = ("rcpt", "port", "starttls", "sending", "helo")
STARTTLS = ("required", "optional")


@dataclass(frozen=True)
class ReadyConfig:
    """``ready:`` as read. ``web_names`` None: every name whose A/AAAA moves (mail hosts
    excepted); ``resolver`` None: the system's, for the DNS the checks need (an MX host
    outside the zone, the includes of an SPF record)."""

    web_names: tuple[str, ...] | None = None
    web_path: str = "/"
    web_status: tuple[int, ...] = (200, 301, 302)
    http_port: int = 80
    https_port: int = 443
    rcpt: str = "postmaster"
    smtp_port: int = 25
    starttls: str = "required"
    sending: tuple[str, ...] = ()
    helo: str | None = None  # the EHLO name (None: the machine's name; see cutover.readiness.mail)
    old_every: float = 3600.0
    ca_file: str | None = None
    cert_days: int = 14
    timeout: float = 10.0
    resolver: tuple[str, int] | None = None


def parse(c: Checker, section: Any, base_dir: Path) -> ReadyConfig:
    """``ready:`` checked field by field (every problem at once, as the rest of the plan)."""
    ready = c.mapping(section, "ready")
    if not ready:
        return ReadyConfig()
    c.keys(ready, KEYS, "ready")
    web = c.mapping(ready.get("web"), "ready.web") or {}
    mail = c.mapping(ready.get("mail"), "ready.mail") or {}
    old = c.mapping(ready.get("old"), "ready.old") or {}
    c.keys(web, WEB_KEYS, "ready.web")
    c.keys(mail, MAIL_KEYS, "ready.mail")
    c.keys(old, ("every",), "ready.old")
    ports = c.mapping(web.get("ports"), "ready.web.ports") or {}
    c.keys(ports, ("http", "https"), "ready.web.ports")
    defaults = ReadyConfig()
    found = {
        "web_names": c.convert(web["names"], "ready.web.names", _names) if "names" in web else None,
        "web_path": c.convert(web.get("path", "/"), "ready.web.path", _path),
        "web_status": c.convert(web.get("status", list(defaults.web_status)), "ready.web.status", _statuses),
        "http_port": c.convert(ports.get("http", 80), "ready.web.ports.http", _port),
        "https_port": c.convert(ports.get("https", 443), "ready.web.ports.https", _port),
        "rcpt": c.convert(mail.get("rcpt", "postmaster"), "ready.mail.rcpt", _rcpt),
        "smtp_port": c.convert(mail.get("port", 25), "ready.mail.port", _port),
        "starttls": c.convert(mail.get("starttls", "required"), "ready.mail.starttls", _starttls),
        "sending": c.convert(mail.get("sending", []), "ready.mail.sending", _sending),
        "helo": c.convert(mail["helo"], "ready.mail.helo", _helo) if "helo" in mail else None,
        "old_every": c.convert(old.get("every", "1h"), "ready.old.every", _every),
        "ca_file": c.convert(ready["ca_file"], "ready.ca_file", lambda v: _ca_file(v, base_dir)) if "ca_file" in ready else None,
        "cert_days": c.convert(ready.get("cert_days", 14), "ready.cert_days", _days),
        "timeout": c.convert(ready.get("timeout", "10s"), "ready.timeout", _every),
        "resolver": c.convert(ready["resolver"], "ready.resolver", parse_address) if "resolver" in ready else None,
    }
    return ReadyConfig(**{k: v for k, v in found.items() if v is not None or k in ("web_names", "ca_file", "resolver", "helo")})


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{show(value)} must be a list of names such as [www, \"@\"]")
    return tuple(v.strip() for v in value)


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(ch.isspace() for ch in value):
        raise ValueError(f"{show(value)} must be a URL path starting with / (no spaces)")
    return value


def _statuses(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599 for v in items):
        raise ValueError(f"{show(value)} must be HTTP status codes, e.g. [200, 301, 302]")
    return tuple(items)


def _port(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ValueError(f"{show(value)} must be a port number, 1-65535")
    return value


def _rcpt(value: Any) -> str:
    """A local part (``postmaster``, used @zone) or a whole address (``ops@example.com``)."""
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() or ch in "<>" for ch in value):
        raise ValueError(f"{show(value)} must be a local part such as postmaster, or an address")
    return value.strip()


def _helo(value: Any) -> str:
    """A name a strict server can look up (the sending host's), or an address literal."""
    text = str(value).strip()
    if not text or any(ch.isspace() for ch in text) or ("." not in text and not text.startswith("[")):
        raise ValueError(f"{show(value)} must be a fully qualified host name or an address literal such as [192.0.2.5]")
    return text


def _starttls(value: Any) -> str:
    if value not in STARTTLS:
        raise ValueError(f"{show(value)} must be one of: {', '.join(STARTTLS)}")
    return str(value)


def _sending(value: Any) -> tuple[str, ...]:
    """Addresses (or networks) that must be allowed to send, and ``include:DOMAIN`` terms."""
    if not isinstance(value, list):
        raise ValueError(f"{show(value)} must be a list of addresses and include:DOMAIN terms")
    out = []
    for item in value:
        text = str(item).strip()
        if text.startswith("include:") and len(text) > len("include:"):
            out.append(text)
            continue
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{show(item)} is neither an address (203.0.113.25, 2001:db8::/64) "
                             "nor an include:DOMAIN term") from None
        out.append(text)
    return tuple(out)


def _every(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{show(value)} must be longer than 0 seconds")
    return seconds


def _days(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{show(value)} must be a whole number of days, 0 or more")
    return value


def _ca_file(value: Any, base_dir: Path) -> str:
    """A PEM file, relative to the plan's folder like every other path in a plan."""
    path = Path(str(value)).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise ValueError(f"{show(value)}: no such file ({path})")
    return str(path.resolve())


def as_mapping(config: ReadyConfig) -> Mapping[str, Any]:
    """The settings as the JSON shows them (nothing secret lives here)."""
    return {k: getattr(config, k) for k in ReadyConfig.__dataclass_fields__}
