"""The description's small language: dotted paths into a reply, ``{placeholder}`` templates.

Both are kept this small on purpose: a description is data an operator writes from an
API's documentation, and what they can write must be what they can debug. So a path
that does not fit a reply says what the reply held instead, and a placeholder a
template uses is checked against the known ones before any request is made.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import dns.name

from cutover.errors import ProviderError

_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\}")


class ReplyMismatch(ValueError):
    """A reply that does not have what the description says it has."""


def keys_of(data: Any) -> str:
    """What a piece of a reply is, in a few words ("keys: id, name", "a list of 3")."""
    if isinstance(data, Mapping):
        return f"keys: {', '.join(map(str, data)) or 'none'}"
    if isinstance(data, list):
        return f"a list of {len(data)}"
    return f"a {type(data).__name__}"


def dig(data: Any, path: str, _full: str = "", _at: str = "") -> Any:
    """The value at a dotted ``path``; ``a[].b`` maps ``.b`` over the list at ``a``.

    An empty path is the data itself. Raises ``ReplyMismatch`` saying what was there
    instead, because "not found" alone never helps anyone fix a description."""
    full = _full or path
    if path in ("", "."):
        return data
    head, _, rest = path.partition(".")
    each = head.endswith("[]")
    key = head[:-2] if each else head
    if key:
        if not isinstance(data, Mapping) or key not in data:
            if _at:
                raise ReplyMismatch(f"path {full!r} not found: no {key!r} in {_at} ({keys_of(data)})")
            raise ReplyMismatch(f"path {full!r} not found ({keys_of(data)})")
        data = data[key]
        _at = f"{_at}.{key}" if _at else key
    if not each:
        return dig(data, rest, full, _at) if rest else data
    if not isinstance(data, list):
        raise ReplyMismatch(f"path {full!r}: {_at or 'the reply'} is {keys_of(data)}, not a list")
    return [dig(item, rest, full, f"{_at}[{i}]") if rest else item for i, item in enumerate(data)]


def try_dig(data: Any, path: str) -> Any:
    """``dig``, or None where the path does not fit (an optional field)."""
    try:
        return dig(data, path)
    except ReplyMismatch:
        return None


def render(template: Any, lookup: Callable[[str], Any]) -> Any:
    """``template`` with its placeholders filled in by ``lookup(name)``.

    Mappings and lists are rendered item by item. A string that is exactly one
    placeholder becomes the value itself (a number stays a number, a list a list)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return lookup(whole.group(1))
        return _PLACEHOLDER.sub(lambda m: text(lookup(m.group(1))), template)
    if isinstance(template, Mapping):
        return {k: render(v, lookup) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, lookup) for v in template]
    return template


def text(value: Any) -> str:
    """A placeholder's value inside a longer string: None is empty, not "None"."""
    return "" if value is None else str(value)


def placeholders(template: Any) -> set[str]:
    """Every placeholder name a template uses (checked against the known ones up front)."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


def rdata_field(rdata: Any, name: str) -> Any:
    """``{value.NAME}``: a dnspython rdata field in a JSON-friendly form (names as text,
    bytes decoded), so a description writes an MX's ``preference`` without parsing it."""
    slots = [s for cls in type(rdata).__mro__ for s in getattr(cls, "__slots__", ()) if s not in ("rdclass", "rdtype", "rdcomment")]
    if name not in slots:
        known = ", ".join(dict.fromkeys(slots))
        raise ProviderError(f"placeholder {{value.{name}}}: a {rdata.rdtype.name} value has the fields {known}")
    value = getattr(rdata, name)
    if isinstance(value, dns.name.Name):
        return value.to_text()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, tuple):
        return [v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v for v in value]
    return value
