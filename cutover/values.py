"""Values as people write them in plans and options: durations, shares, counts, ``${ENV}``.

Imports nothing from the rest of cutover, so that providers and the plan loader share
one reading of ``15m`` or ``95%`` without depending on each other.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any, Mapping

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlist = 4
_short.maxdict = 4
_short.maxlevel = 2


def show(value: Any) -> str:
    """A bounded repr for messages: a hostile plan cannot make an error message huge."""
    return _short.repr(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


#: The longest duration taken (100 years): every moment a plan's durations lead to must
#: still be a date, and YAML's ``.inf`` is not a duration.
MAX_DURATION = 100 * 365 * 86400.0


def parse_duration(value: Any) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``48h``, ``7d`` (or ``2w``). ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)")
    if isinstance(value, (int, float)) and value >= 0:
        return _bounded(float(value), value)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{show(value)} is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)")
    return _bounded(float(m.group(1)) * _UNIT[m.group(2)], value)


def _bounded(seconds: float, value: Any) -> float:
    if not seconds <= MAX_DURATION:  # also false for NaN
        raise ValueError(f"{show(value)} is not a duration of at most 100 years (expected e.g. 90, 15m, 7d)")
    return seconds


def parse_share(value: Any) -> float:
    """A share 0..1 from ``100%``, ``95 %``, ``0.95`` or ``1``."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if isinstance(value, bool) or not 0.0 <= share <= 1.0:
        raise ValueError(f"{show(value)} is not a share (expected a percentage like 95% or a number 0..1)")
    return share


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_env(value: str, environ: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` by the environment's value; ``KeyError(NAME)`` if unset."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in environ:
            raise KeyError(m.group(1))
        return environ[m.group(1)]

    return _ENV.sub(one, value)


def substitute_tree(data: Any, environ: Mapping[str, str], path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """``${NAME}`` replaced in every string of a nested structure (provider settings such as
    ``auth: {token: ...}`` nest). Returns the result and the (path, NAME) of unset variables;
    an unset variable is left as written."""
    missing: list[tuple[str, str]] = []

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            def one(m: re.Match[str]) -> str:
                if m.group(1) in environ:
                    return environ[m.group(1)]
                missing.append((where, m.group(1)))
                return m.group(0)

            return _ENV.sub(one, value)
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    return walk(data, path), missing


def parse_quorum(value: Any) -> tuple[float, bool]:
    """``retire.min_answering``: a count (``3``) or a share (``50%``, ``0.5``); (value, is_count)."""
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a count or a share (expected e.g. 3 or 50%)")
    text = str(value).strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise ValueError(f"{show(value)} must be at least 1 (or a share such as 50%)")
        return float(count), True
    try:
        return parse_share(value), False
    except ValueError:
        raise ValueError(f"{show(value)} is not a count or a share (expected e.g. 3 or 50%)") from None
