"""The sandbox's exceptions, in a module of their own.

The zone store raises them, the listener raises ``SandboxError`` when it cannot bind,
the authoritative server turns them into SERVFAIL, and the ``sandbox`` provider maps
them onto its own errors; keeping them here lets each of those import them without
importing the others.
"""

from __future__ import annotations


class SandboxError(Exception):
    """A sandbox operation that cannot be done; the message says why."""


class ZoneMissing(SandboxError, LookupError):
    """The store has no zone file for the zone asked for."""


class ChangeRejected(SandboxError):
    """A change was refused and nothing was written (drift, conflict, outside the zone)."""
