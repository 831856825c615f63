"""Collecting problems, so that every problem of a file is reported at once.

An operator fixing a plan at midnight should not have to run the tool once per typo:
validation goes on after a problem, records each with its field path
(``records[2].to[0]``), and an unset ``${NAME}`` is one problem however often it is
used.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable, Mapping

from cutover.errors import Problem
from cutover.values import show, substitute_tree


class Checker:
    """Collects problems while building the plan, so that all are reported together."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[Problem] = []
        self.zone_known = True
        self.unset: dict[str, list[str]] = {}  # variable -> the places that use it, in order
        self._unset_at: dict[str, int] = {}  # variable -> index of its one problem
        self._unresolved: set[str] = set()  # paths whose value still holds an unset ${NAME}

    def add(self, path: str, message: str) -> None:
        """Record a problem, unless it is at (or inside) a value whose variable is unset:
        "'${NEW_IP}' is not a valid IPv4 address" only repeats that NEW_IP is not set."""
        if not self._follows_unset(path):
            self.problems.append(Problem(path, message))

    def _follows_unset(self, path: str) -> bool:
        return any(path == root or path.startswith((f"{root}.", f"{root}[")) for root in self._unresolved)

    def keys(self, mapping: Mapping[Any, Any], allowed: Iterable[str], path: str) -> None:
        allowed = tuple(allowed)
        for key in mapping:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            where = f"{path}.{key}" if path else str(key)
            extra = f" (did you mean {hint[0]!r}?)" if hint else f" (expected one of: {', '.join(allowed)})"
            self.add(where, f"unknown key {show(key)}{extra}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"{show(value)} is not a mapping")
            return None
        return value

    def convert(self, value: Any, path: str, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(self.env(value, path))
        except (ValueError, TypeError) as exc:
            self.add(path, str(exc))
            return None

    def env(self, value: Any, path: str) -> Any:
        """``${NAME}`` substituted; each unset variable is one problem per plan, at its first
        place, naming the others (a plan using ``${NEW_IP}`` ten times is one mistake)."""
        result, missing = substitute_tree(value, self.environ, path)
        for where, name in missing:
            self._unset_variable(name, where)
        if missing:
            self._unresolved.add(path)
        return result

    def _unset_variable(self, name: str, where: str) -> None:
        places = self.unset.setdefault(name, [])
        if where in places:
            return
        places.append(where)
        problem = Problem(places[0], f"environment variable {name} is not set{_also_used(places[1:])}")
        if name in self._unset_at:
            self.problems[self._unset_at[name]] = problem
        else:
            self._unset_at[name] = len(self.problems)
            self.problems.append(problem)


#: Places named in full in the unset-variable problem; the rest are counted.
_PLACES_SHOWN = 3


def _also_used(places: list[str]) -> str:
    """`` (also used at a, b and 4 more places)``: bounded, however often a variable is used."""
    if not places:
        return ""
    rest = len(places) - _PLACES_SHOWN
    named = places[:_PLACES_SHOWN] + ([f"{rest} more place{'s' if rest > 1 else ''}"] if rest > 0 else [])
    listed = f"{', '.join(named[:-1])} and {named[-1]}" if len(named) > 1 else named[0]
    return f" (also used at {listed})"
