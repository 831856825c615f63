"""The ``sandbox`` provider: a zone kept as a file by ``cutover.sandbox.ZoneStore``.

It is what ``cutover demo`` changes, and what a person uses to rehearse a cutover
against ``python -m cutover.sandbox serve DIR``: the provider edits the zone file
under the store's lock, and the sandbox's authoritative server serves every change
the moment it is written.

Settings:

- ``path`` (required): the directory of the zone files (in a plan, a relative path is
  taken from the plan's folder; given to the class directly, from the current directory).
- ``server``: ``address:port`` of the sandbox's authoritative server, which is what
  ``nameservers()`` reports so that ``apply`` verifies against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from cutover.errors import DriftError, ProviderError, UsageError
from cutover.records import Change, RecordKey, RecordSet
from cutover.resolvers import parse_address
from cutover.sandbox import ChangeRejected, SandboxError, ZoneMissing, ZoneStore
from providers.base import ApplyReceipt, Provider


class SandboxProvider(Provider):
    """Reads and changes a sandbox zone file; every apply is atomic and checks ``before``."""

    settings_keys = ("path", "server")
    required_settings = ("path",)
    path_settings = ("path",)
    #: ``ZoneStore.apply(check=True)`` compares each ``before`` under the store's lock.
    backend_checks_before = True
    #: Zone files hold any type dnspython knows.
    supported_types = None
    service = "sandbox"

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        problems = self.check_settings(self.settings)
        if "path" not in self.settings:
            problems.insert(0, ("path", "missing (the sandbox provider needs the zone directory)"))
        if problems:
            raise UsageError("; ".join(f"sandbox provider setting {k!r}: {m}" for k, m in problems))
        self.path = Path(str(self.settings["path"])).expanduser()
        self.server = str(self.settings["server"]) if self.settings.get("server") else None
        self._store: ZoneStore | None = None

    def __repr__(self) -> str:
        return f"SandboxProvider({self.zone!r}, path={str(self.path)!r})"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        path = settings.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            problems.append(("path", f"{path!r} is not a directory path"))
        server = settings.get("server")
        if server is not None:
            try:
                parse_address(str(server))
            except ValueError as exc:
                problems.append(("server", f"{exc} (expected the sandbox's authoritative server, e.g. 127.0.0.1:5353)"))
        return problems

    @property
    def store(self) -> ZoneStore:
        if self._store is None:
            if not self.path.is_dir():
                raise ProviderError(
                    f"sandbox directory {str(self.path)!r} does not exist "
                    f"(start one with: python -m cutover.sandbox serve {self.path} --zone {self.zone})"
                )
            self._store = ZoneStore(self.path)
        return self._store

    def zones(self) -> list[str]:
        return self.store.zones()

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        try:
            return self.store.records(self.zone)
        except ZoneMissing:
            raise ProviderError(self._missing()) from None
        except (SandboxError, OSError) as exc:
            raise ProviderError(f"sandbox zone {self.zone} cannot be read: {exc}") from exc

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """One locked write of the zone file, which checks every ``before`` first."""
        try:
            serial = self.store.apply(self.zone, changes, check=True)
        except ZoneMissing:
            raise ProviderError(self._missing()) from None
        except ChangeRejected as exc:
            raise DriftError(f"sandbox refused the changes, nothing was changed: {exc}") from exc
        except SandboxError as exc:
            raise ProviderError(f"sandbox refused the changes, nothing was changed: {exc}") from exc
        except OSError as exc:
            raise ProviderError(f"sandbox zone {self.zone} cannot be written, nothing was changed: {exc}") from exc
        return ApplyReceipt(token=str(serial), atomic=True, detail=f"zone {self.zone} now at serial {serial}")

    def nameservers(self) -> list[str]:
        if self.server:
            return [self.server]
        apex = [r for r in self.records() if r.name == self.zone and r.type == "NS"]
        return list(apex[0].values) if apex else []

    def _missing(self) -> str:
        return (
            f"the sandbox in {str(self.path)!r} has no zone {self.zone} "
            f"(start one with: python -m cutover.sandbox serve {self.path} --zone {self.zone})"
        )
