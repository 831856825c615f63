"""An in-process provider for unit tests of the core. Never a substitute for the real
servers in tests/integration: it exists to drive the journal and guards through
failures that are hard to provoke on a real backend."""

from __future__ import annotations

from typing import Callable, Collection, Sequence

from cutover.errors import PartialApplyError, ProviderError
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
        self.land_only_first = False  # a two-batch provider whose second batch is refused

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        return sorted(self.zone_data.values())

    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        if self.fail:
            self.fail("before")
        for c in changes:
            if self.zone_data.get(c.key) != c.before:
                raise ProviderError(f"{c.name} {c.type} changed since it was read")
        landing = changes[:1] if self.land_only_first and len(changes) > 1 else changes
        for c in landing:
            self.zone_data.pop(c.key, None)
            if c.after:
                self.zone_data[c.key] = c.after
        self.applied.append(list(landing))
        if len(landing) < len(changes):
            raise PartialApplyError("second batch refused", landed=[c.key for c in landing])
        if self.fail:
            self.fail("after")
        return ApplyReceipt(token=str(len(self.applied)))

    def nameservers(self) -> list[str]:
        return []


#: A small web-and-mail plan and the zone it starts from, for the window's unit tests.
PLAN = """
zone: example.com
provider: {type: rfc2136, server: 127.0.0.1}
records:
  - {name: www, type: A, ttl: 300, from: [198.51.100.10], to: [203.0.113.10]}
  - {name: "@", type: MX, ttl: 300, from: ["10 mail.old-host.net."], to: ["10 mail.example.com."]}
prepare: {ttl: 300}
retire: {parallel_period: 1h}
safety: {max_change_share: 100%}
"""

ZONE = [
    RecordSet.build("example.com.", "SOA", 3600, ["ns1.example.com. host.example.com. 1 7200 900 1209600 600"]),
    RecordSet.build("example.com.", "NS", 3600, ["ns1.example.com."]),
    RecordSet.build("www.example.com.", "A", 3600, ["198.51.100.10"]),
    RecordSet.build("example.com.", "MX", 3600, ["10 mail.old-host.net."]),
    RecordSet.build("mail.example.com.", "A", 3600, ["203.0.113.25"]),  # the new MX host, ready in advance
]


class Clock:
    """A clock the test moves by hand, so TTL waits take no time."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t
