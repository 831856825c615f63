"""Reading an audit's input: the DOMAINS file, ``--old``/``--new`` and ``--names``.

A hoster's list of customer domains comes from wherever it was kept: a plain file with
one domain a line, or a spreadsheet export with a ``domain`` column (and whatever else:
customer number, contact address). Both are read here, every problem is located as
``FILE:LINE: ...`` and reported together, and nothing is asked of DNS until the whole
input is good. The CSV's other columns are kept, so that the CSV written for a mail
merge can carry each customer's own fields beside the domain's status.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import dns.exception
import dns.name

from cutover.errors import UsageError

#: Header cells that name the domain column of a CSV file (compared case-insensitively).
DOMAIN_COLUMNS = ("domain", "domain_name", "domainname", "zone", "name")
#: Problems listed before "... and N more": a broken export must not flood the terminal.
MAX_PROBLEMS = 20
#: A DOMAINS file larger than this is not a list of domains (100,000 domains is about 2 MB).
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Domain:
    """One domain to audit: its absolute lower-case name, where it was read, and the
    other columns of its CSV row (empty for a plain list)."""

    name: str
    line: int
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DomainList:
    """Every domain of a DOMAINS file, in file order, each once."""

    path: Path
    domains: tuple[Domain, ...]
    columns: tuple[str, ...] = ()  # the CSV's other columns, in file order
    duplicates: int = 0


def read_domains(path: str | Path) -> DomainList:
    """The DOMAINS file: plain (one domain a line, ``#`` comments) or CSV with a header row
    naming a ``domain`` column. Raises ``UsageError`` (exit 2) listing every problem as
    ``FILE:LINE: 'value': why``."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    first = next(((i, ln) for i, ln in enumerate(lines, 1) if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        raise UsageError(f"{path}: no domains in the file (expected one domain a line, or CSV with a 'domain' column)")
    if _looks_like_csv(first[1]):
        return _read_csv(path, text, first[0])
    return _read_plain(path, lines)


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UsageError(f"{path}: {size // 2**20} MiB is too large for a list of domains (at most {MAX_BYTES // 2**20} MiB)")
        data = path.read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file of domains") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def _looks_like_csv(line: str) -> bool:
    """A header row: more than one cell, or a single cell that names a domain column."""
    cells = next(csv.reader([line]), [])
    return len(cells) > 1 or (len(cells) == 1 and cells[0].strip().lower() in DOMAIN_COLUMNS)


def _read_plain(path: Path, lines: Sequence[str]) -> DomainList:
    found: list[Domain] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            found.append(Domain(domain_name(text), number))
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}")
    return _finish(path, found, problems, ())


def _read_csv(path: Path, text: str, header_line: int) -> DomainList:
    rows = csv.reader(io.StringIO(text))
    header: list[str] = []
    found: list[Domain] = []
    problems: list[str] = []
    column = -1
    for row in rows:
        number = rows.line_num
        if number < header_line or not any(cell.strip() for cell in row):
            continue
        if not header:
            header = [cell.strip() for cell in row]
            lowered = [cell.lower() for cell in header]
            column = next((lowered.index(c) for c in DOMAIN_COLUMNS if c in lowered), -1)
            if column < 0:
                raise UsageError(f"{path}:{number}: no domain column in the CSV header "
                                 f"(found {', '.join(repr(h) for h in header)}; name one 'domain')")
            continue
        if column >= len(row):
            problems.append(f"{path}:{number}: the row has {len(row)} cells, no {header[column]!r} cell")
            continue
        try:
            name = domain_name(row[column])
        except ValueError as exc:
            problems.append(f"{path}:{number}: {exc}")
            continue
        fields = tuple((header[i] if i < len(header) else f"column{i + 1}", cell)
                       for i, cell in enumerate(row) if i != column)
        found.append(Domain(name, number, fields))
    if not header:  # pragma: no cover - _looks_like_csv saw a header line
        raise UsageError(f"{path}: no CSV header row")
    columns = tuple(h for i, h in enumerate(header) if i != column)
    return _finish(path, found, problems, columns)


def _finish(path: Path, found: list[Domain], problems: list[str], columns: tuple[str, ...]) -> DomainList:
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"{path}: ... and {len(problems) - MAX_PROBLEMS} more problems")
        raise UsageError("\n".join(shown))
    if not found:
        raise UsageError(f"{path}: no domains in the file")
    seen: set[str] = set()
    unique = []
    for d in found:
        if d.name not in seen:
            seen.add(d.name)
            unique.append(d)
    return DomainList(path, tuple(unique), columns, len(found) - len(unique))


def domain_name(text: str) -> str:
    """A domain as the audit asks it: absolute, lower case, IDNA for non-ASCII.
    Raises ``ValueError`` saying what is wrong with ``text``."""
    raw = text.strip()
    shown = repr(raw if len(raw) <= 80 else raw[:77] + "...")
    if not raw:
        raise ValueError("empty domain")
    try:
        ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError(f"{shown} is an IP address, not a domain")
    if "://" in raw or "/" in raw or "@" in raw or any(c.isspace() for c in raw):
        raise ValueError(f"{shown} is not a domain name (expected e.g. example.com, not a URL or an address)")
    try:
        name = dns.name.from_unicode(raw) if not raw.isascii() else dns.name.from_text(raw)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise ValueError(f"{shown} is not a domain name ({_why(exc)})") from None
    labels = [label.decode("ascii", "replace") for label in name.labels if label]
    if len(labels) < 2:
        raise ValueError(f"{shown} is not a domain name (expected at least two labels, e.g. example.com)")
    for label in labels:
        if not all(c.isalnum() or c in "-_" for c in label) or label.startswith("-") or label.endswith("-"):
            raise ValueError(f"{shown} is not a domain name (the label {label!r} has characters a host name cannot have)")
    return name.to_text().lower()


def _why(exc: BaseException) -> str:
    text = str(exc).rstrip(".")
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def addresses(text: str, option: str) -> frozenset[str]:
    """``--old``/``--new``: IP addresses, comma-separated (repeatable), in canonical form."""
    found = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            found.add(str(ipaddress.ip_address(part)))
        except ValueError:
            raise UsageError(f"{option}: {part!r} is not an IP address (expected e.g. 198.51.100.10 or 2001:db8::10)") from None
    if not found:
        raise UsageError(f"{option}: give at least one IP address")
    return frozenset(found)


def relative_names(given: Iterable[str]) -> tuple[str, ...]:
    """``--names``: names relative to each domain (``shop``, ``autodiscover``), comma-separated
    and repeatable; ``www`` and the apex are always asked."""
    out: list[str] = []
    for text in given:
        for part in text.split(","):
            part = part.strip().lower()
            if not part or part in ("@", "www") or part in out:
                continue
            if part.endswith("."):
                raise UsageError(f"--names: {part!r} is absolute; give names relative to each domain (e.g. shop)")
            labels = part.split(".")
            if any(not label or len(label) > 63 or not all(c.isalnum() or c in "-_" for c in label) for label in labels):
                raise UsageError(f"--names: {part!r} is not a name relative to a domain (e.g. shop or mail.eu)")
            out.append(part)
    return tuple(out)
