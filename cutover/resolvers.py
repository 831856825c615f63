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


#: A resolver file is a short list; a larger "file" is a mistake (a log, a dump), refused unread.
MAX_FILE_BYTES = 1024 * 1024


def resolve_spec(spec: Any, base_dir: Path | None = None) -> list[Resolver]:
    """Turn a ``watch.resolvers`` value or ``--resolvers`` argument into resolvers.

    ``"public"`` is the catalogue, optionally narrowed (``public:unfiltered``,
    ``public:country=DE``, ``public:operator=Quad9``); a comma list or a single address
    is a list of addresses; anything else names a file holding a YAML list (or one
    address per line). A list is never probed as a file name: a long list once failed
    as "File name too long". The same resolver given twice is asked once.
    Raises ``ValueError`` for anything that cannot be used.
    """
    if isinstance(spec, list):
        return unique(parse_list(spec))
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{spec!r} is not a resolver list (expected 'public', a file, or addresses)")
    spec = spec.strip()
    if spec == "public" or spec.startswith("public:"):
        return _select(list(catalogue()), spec.partition(":")[2])
    if _is_address_list(spec):
        return unique(parse_list(part for part in spec.split(",") if part.strip()))
    path = spec_file(spec, base_dir)
    if path is not None:
        return unique(_from_file(path))
    if "/" in spec or spec.endswith((".yaml", ".yml", ".txt")):
        raise ValueError(f"resolver file {_shown(str(_joined(spec, base_dir)))} does not exist")
    raise ValueError(f"{_shown(spec)} is neither a resolver file nor an IP address "
                     "(expected 'public', a file, or addresses such as 9.9.9.9,127.0.0.1:5353)")


def spec_file(spec: Any, base_dir: Path | None = None) -> Path | None:
    """The resolver file ``spec`` names, or ``None`` when it is not one (a list, ``public``,
    a missing file, or a name the system cannot even look up). Never raises: probing a
    path must not turn a usable value into a "system failure"."""
    if not isinstance(spec, str) or not spec.strip():
        return None
    spec = spec.strip()
    if spec == "public" or spec.startswith("public:") or _is_address_list(spec):
        return None
    path = _joined(spec, base_dir)
    try:
        return path if path.is_file() else None
    except (OSError, ValueError):  # name too long, a NUL byte, a loop of links, no permission
        return None


def unique(resolvers: Iterable[Resolver]) -> list[Resolver]:
    """Each (address, port) once, the first entry's details kept.

    The same resolver counted twice would weigh its one answer double in the verdict
    ("0/2" for one silent server). Dropped without a word: a repeat changes nothing
    about what is asked, and the watch shows the resolvers it does ask."""
    seen: set[tuple[Any, int]] = set()
    out = []
    for r in resolvers:
        key = (ipaddress.ip_address(r.address), r.port)  # 2001:db8::1 and 2001:0db8::1 are one
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _is_address_list(spec: str) -> bool:
    """A comma anywhere, or one address: a list, decided without touching the file system."""
    if "," in spec:
        return True
    try:
        parse_address(spec)
    except ValueError:
        return False
    return True


def _shown(text: str, limit: int = 120) -> str:
    """A path for a message, bounded: a mangled value must not make the message huge."""
    return repr(text) if len(text) <= limit else repr(text[: limit // 2] + "..." + text[-limit // 2 :])


def _joined(spec: str, base_dir: Path | None) -> Path:
    path = Path(spec)
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


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
    """A YAML list (or ``resolvers:`` mapping), else one address per line. Every failure to
    read it is a ``ValueError`` naming the file, never an ``OSError`` for the caller."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"resolver file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"resolver file {str(path)!r} is larger than {MAX_FILE_BYTES // 2**20} MiB; "
                         "it should hold a list of addresses")
    try:
        text = data.decode("utf-8-sig")
        loaded = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"resolver file {str(path)!r} is not a YAML list or address lines: "
                         f"{str(exc).splitlines()[0]}") from None
    if isinstance(loaded, dict) and "resolvers" in loaded:
        loaded = loaded["resolvers"]
    if isinstance(loaded, list):
        return parse_list(loaded)
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    return parse_list(ln for ln in lines if ln)
