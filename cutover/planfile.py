"""Reading a plan file: a regular file, at most ``MAX_PLAN_BYTES``, strict YAML.

A plan path can be anything an operator types: a FIFO that never ends, ``/dev/zero``
that never stops, a 50 MB log. Each is refused with the file named and nothing read
past the limit, before any YAML is parsed; duplicate keys are refused too, since the
second ``to:`` silently winning is a classic.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from cutover.errors import PlanError, Problem

#: Large enough for a plan of about 180,000 record sets (an export of a big zone), small
#: enough that a wrong file (a log, a dump) is refused before it is read.
MAX_PLAN_BYTES = 16 * 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys: the second ``to:`` silently winning is a classic."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: resolved by the base constructor
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", mark
            )
        seen.add(key) if isinstance(key, (str, int, float, bool)) else None
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; ``PlanError`` for I/O, size, encoding or syntax trouble."""
    source = str(path)
    try:
        text = _read_plan_bytes(path, source).decode("utf-8-sig")
    except FileNotFoundError:
        raise PlanError(source, [Problem("", "no such file")]) from None
    except IsADirectoryError:
        raise PlanError(source, [Problem("", "is a directory, not a plan file")]) from None
    except UnicodeDecodeError as exc:
        raise PlanError(source, [Problem("", f"is not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise PlanError(source, [Problem("", f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "invalid YAML"
        if "\t" in what or "'\\t'" in what:
            what += " (YAML indentation must use spaces, not tabs)"
        raise PlanError(source, [Problem(where, f"invalid YAML: {what}")]) from None
    except yaml.YAMLError as exc:
        raise PlanError(source, [Problem("", f"invalid YAML: {exc}")]) from None


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(source: str, mode: int) -> None:
    """Refuse anything but a regular file, naming what it is."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for is_kind, name in _KINDS if is_kind(mode)), "not a regular file")
    hint = "" if kind == "a directory" else "; give the path of a regular file"
    raise PlanError(source, [Problem("", f"is {kind}, not a plan file{hint}")])


def _read_plan_bytes(path: Path, source: str) -> bytes:
    """At most ``MAX_PLAN_BYTES`` of a regular file, whatever ``stat`` claims.

    A device or FIFO is refused before it is opened (opening one can block or have side
    effects), and checked again on the open descriptor, opened non-blocking, in case the
    path was swapped in between. ``/dev/zero`` reports size 0 and never ends, and
    ``/proc`` files report 0 while holding data, so the size from ``stat`` only refuses
    early and the read itself stops one byte past the limit."""
    _not_regular(source, os.stat(path).st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        _not_regular(source, info.st_mode)
        if info.st_size > MAX_PLAN_BYTES:
            raise PlanError(source, [Problem("", f"file is {info.st_size / 1e6:.1f} MB; a plan is at most {MAX_PLAN_BYTES // 2**20} MiB")])
        data = _read_at_most(f, MAX_PLAN_BYTES + 1)
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(source, [Problem("", f"file is larger than {MAX_PLAN_BYTES // 2**20} MiB; a plan is at most that")])
    return data


def _read_at_most(f: Any, limit: int) -> bytes:
    """Read until end of file or ``limit`` bytes, whichever comes first."""
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
