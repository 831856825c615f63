"""Resolver endpoints: the public catalogue, user lists, and the ``host[:port]`` syntax.

The catalogue is data (``cutover/data/resolvers.yaml``), not code, so that it can be
reviewed and extended without touching the query engine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml


@dataclass(frozen=True)
class Resolver:
    """A DNS server to ask: where it is, and who runs it (for the report, not the query)."""

    address: str
    port: int = 53
    name: str = ""
    operator: str = ""
    country: str = ""
    filtering: bool = False
    group: str = "custom"

    @property
    def label(self) -> str:
        """How the resolver is named in output: its name, else its address."""
        return self.name or self.endpoint

    @property
    def endpoint(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return host if self.port == 53 else f"{host}:{self.port}"


def parse_address(text: str, default_port: int = 53) -> tuple[str, int]:
    """Split ``"9.9.9.9"``, ``"127.0.0.1:5353"``, ``"[2001:db8::1]:53"``, ``"2001:db8::1"``.

    Raises ``ValueError`` naming what was expected.
    """
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r} is not an address: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r} is not an address: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (expected e.g. 9.9.9.9, 127.0.0.1:5353 or [2001:db8::1]:53)") from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r} has an invalid port {text!r} (expected 1-65535)")
    return int(text)


ENTRY_KEYS = ("address", "port", "name", "operator", "country", "filtering", "group")


def parse_entry(entry: Any, group: str = "custom") -> Resolver:
    """One list entry: an address string or a mapping with ``address`` and optional details."""
    if isinstance(entry, str):
        address, port = parse_address(entry)
        return Resolver(address=address, port=port, group=group)
    if not isinstance(entry, dict):
        raise ValueError(f"{entry!r} is not a resolver (expected an address or a mapping with 'address')")
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (expected one of {', '.join(ENTRY_KEYS)})")
    if "address" not in entry:
        raise ValueError("a resolver mapping needs 'address'")
    address, port = parse_address(str(entry["address"]))
    if "port" in entry:
        port = _port(str(entry["port"]), str(entry["port"]))
    filtering = entry.get("filtering", False)
    if not isinstance(filtering, bool):
        raise ValueError(f"filtering: {filtering!r} is not true or false")
    return Resolver(
        address=address,
        port=port,
        name=str(entry.get("name", "")),
        operator=str(entry.get("operator", "")),
        country=str(entry.get("country", "")),
        filtering=filtering,
        group=str(entry.get("group", group)),
    )


def parse_list(entries: Iterable[Any], group: str = "custom") -> list[Resolver]:
    return [parse_entry(e, group) for e in entries]


@lru_cache(maxsize=1)
def catalogue() -> tuple[Resolver, ...]:
    """The built-in list of widely used public resolvers."""
    text = resources.files("cutover").joinpath("data/resolvers.yaml").read_text(encoding="utf-8")
    return tuple(parse_list(yaml.safe_load(text)["resolvers"], group="public"))


def resolve_spec(spec: Any, base_dir: Path | None = None) -> list[Resolver]:
    """Turn a ``watch.resolvers`` value or ``--resolvers`` argument into resolvers.

    ``"public"`` is the catalogue, optionally narrowed (``public:unfiltered``,
    ``public:country=DE``, ``public:operator=Quad9``); an existing file holds a YAML
    list (or one address per line); anything else is a comma-separated address list.
    Raises ``ValueError`` for anything that cannot be used.
    """
    if isinstance(spec, list):
        return parse_list(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{spec!r} is not a resolver list (expected 'public', a file, or addresses)")
    spec = spec.strip()
    if spec == "public" or spec.startswith("public:"):
        return _select(list(catalogue()), spec.partition(":")[2])
    path = Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.is_file():
        return _from_file(path)
    if "/" in spec or spec.endswith((".yaml", ".yml", ".txt")):
        raise ValueError(f"resolver file {str(path)!r} does not exist")
    return parse_list(part for part in spec.split(",") if part.strip())


def _select(resolvers: list[Resolver], selector: str) -> list[Resolver]:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if term == "unfiltered":
            resolvers = [r for r in resolvers if not r.filtering]
            continue
        key, _, value = term.partition("=")
        if key not in ("country", "operator") or not value:
            raise ValueError(f"{term!r} is not a selector (expected unfiltered, country=XX or operator=NAME)")
        resolvers = [r for r in resolvers if getattr(r, key).lower() == value.lower()]
    if not resolvers:
        raise ValueError(f"no public resolver matches {selector!r}")
    return resolvers


def _from_file(path: Path) -> list[Resolver]:
    text = path.read_text(encoding="utf-8-sig")
    data = yaml.safe_load(text)
    if isinstance(data, dict) and "resolvers" in data:
        data = data["resolvers"]
    if isinstance(data, list):
        return parse_list(data)
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    return parse_list(ln for ln in lines if ln)
