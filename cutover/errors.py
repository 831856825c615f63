"""The failures cutover knows how to explain, each mapped to the contract's exit code.

Every error that reaches the CLI is one of these; anything else is a bug and still
gets a one-line message rather than a traceback (see ``cli.main``).
"""

from __future__ import annotations

from dataclasses import dataclass


class CutoverError(Exception):
    """Base class: a message meant for the operator, and the exit code that goes with it."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plan, located by its field path (``records[2].to[0]``)."""

    path: str
    message: str

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        return f"{where}: {self.message}"


class PlanError(CutoverError):
    """A plan (or argument) that cannot be used. Carries every problem found, not just the first."""

    exit_code = 2

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


class UsageError(CutoverError):
    """Bad command-line arguments or a request that makes no sense for this state."""

    exit_code = 2


class GuardError(CutoverError):
    """A safety check refused the change; ``--force`` overrides."""

    exit_code = 2


class StateError(CutoverError):
    """The state directory cannot be used (locked by another run, unwritable, corrupt)."""

    exit_code = 2


class ProviderError(CutoverError):
    """The DNS provider or the network failed after the retries that were safe to make."""

    exit_code = 3


class DriftError(ProviderError):
    """The provider refused, without changing anything, because the zone is no longer as
    cutover read it (a record changed in between). That is the drift guard firing at the
    last moment, so it exits 2 like a refused guard, not 3 like a failure."""

    exit_code = 2


class UnsupportedChange(ProviderError):
    """The provider refused, before sending anything, a change its backend cannot make: a
    record type it does not support, a name outside its zone, a record set it does not
    manage. The plan loader finds the record types already; reaching this is a plan it
    did not see, so it exits 2 like the plan problem it is."""

    exit_code = 2


class PartialApplyError(ProviderError):
    """Some changes landed and some did not (a backend without atomic updates).

    ``landed`` lists the keys that did, so the journal can say exactly what happened."""

    def __init__(self, message: str, landed: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.landed = landed
