"""The provider interface: the only way cutover reads or changes a zone.

A provider is small on purpose. It reads the zone's record sets, applies a list of
changes (atomically when the backend can), names the zone's authoritative servers,
and may wait for the backend's own "the change is live" signal. Everything else
(diffing, guards, journaling, verification by DNS) is the core's job, so a new
backend is a few hundred lines and behaves like every other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Mapping, Sequence

from cutover.records import Change, RecordKey, RecordSet


@dataclass(frozen=True)
class ApplyReceipt:
    """What a provider says about changes it accepted.

    ``token`` identifies the change at the backend (a Route 53 change id) for
    ``wait``; ``atomic`` says whether all changes landed as one unit.
    """

    token: str | None = None
    atomic: bool = True
    detail: str = ""


class Provider(ABC):
    """Base class of every DNS provider plugin.

    Subclasses are constructed with the zone (absolute, lower-case, trailing dot) and
    the plan's ``provider`` settings with ``${ENV}`` already substituted. They must
    never print, log or store secret settings.
    """

    #: Settings the provider understands; plans with other keys are refused with a hint.
    settings_keys: ClassVar[tuple[str, ...]] = ()
    #: Settings that must be present.
    required_settings: ClassVar[tuple[str, ...]] = ()
    #: Settings whose values are secrets (never echoed, even in error messages).
    secret_settings: ClassVar[tuple[str, ...]] = ()
    #: False when ``records`` can only see the names it is asked for (DNS-query based).
    lists_whole_zone: ClassVar[bool] = True

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        self.zone = zone
        self.settings = dict(settings)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with the settings as (key, message) pairs; the plan loader locates them."""
        return []

    @classmethod
    def with_verify_nameservers(cls, settings: Mapping[str, Any], nameservers: Sequence[str]) -> dict[str, Any]:
        """The settings to construct with, given the plan's ``verify.nameservers``.

        A provider that reads the zone by DNS needs the zone's servers, and a plan that
        names them for verification has already said where they are (an internal zone's
        servers are in no public DNS); such a provider takes them as a default for its
        own setting. Every other provider reads through its API and ignores them."""
        return dict(settings)

    @abstractmethod
    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        """The zone's record sets. ``wanted`` names the managed ones; providers that
        cannot list a whole zone read only those."""

    @abstractmethod
    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Make the changes. ``before`` of each change is what was read; a provider that
        can make the backend check it (prerequisites, DELETE with live values) does so.
        Raises ``ProviderError`` if nothing landed, or ``PartialApplyError`` if some did."""

    @abstractmethod
    def nameservers(self) -> list[str]:
        """The zone's authoritative servers: host names, or ``address[:port]``."""

    def parent_nameservers(self) -> list[str]:
        """For a provider that changes the delegation at the parent (an apex NS change is
        then a move between DNS hosts): the parent zone's servers. Others: none."""
        return []

    def wait(self, receipt: ApplyReceipt, timeout: float) -> bool:
        """Wait for the backend's own completion signal; True when it came.

        Backends without one are complete when ``apply`` returns."""
        return True

    def close(self) -> None:
        """Release connections; called once the run is over."""
