"""An in-process provider for unit tests of the core. Never a substitute for the real
servers in tests/integration: it exists to drive the journal and guards through
failures that are hard to provoke on a real backend."""

from __future__ import annotations

from typing import Callable, Collection, Sequence

from cutover.errors import ProviderError
from cutover.records import Change, RecordKey, RecordSet, index
from providers.base import ApplyReceipt, Provider


class MemoryProvider(Provider):
    """A zone in a dict, with a hook that can fail an apply before or after it lands."""

    lists_whole_zone = True

    def __init__(self, zone: str, records: Sequence[RecordSet]) -> None:
        super().__init__(zone, {})
        self.zone_data: dict[RecordKey, RecordSet] = index(records)
        self.applied: list[list[Change]] = []
        self.fail: Callable[[str], None] | None = None  # called with "before" / "after"

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        return sorted(self.zone_data.values())

    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        if self.fail:
            self.fail("before")
        for c in changes:
            if self.zone_data.get(c.key) != c.before:
                raise ProviderError(f"{c.name} {c.type} changed since it was read")
        for c in changes:
            self.zone_data.pop(c.key, None)
            if c.after:
                self.zone_data[c.key] = c.after
        self.applied.append(list(changes))
        if self.fail:
            self.fail("after")
        return ApplyReceipt(token=str(len(self.applied)))

    def nameservers(self) -> list[str]:
        return []
