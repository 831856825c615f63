"""The provider interface: the only way cutover reads or changes a zone.

A provider is small on purpose. It reads the zone's record sets, makes a list of
changes (atomically when the backend can), names the zone's authoritative servers,
and may wait for the backend's own "the change is live" signal. Everything else
(diffing, guards, journaling, verification by DNS) is the core's job, so a new
backend is a few hundred lines and behaves like every other.

``apply`` is a template (octodns's ``BaseProvider.apply`` calling ``_apply``): the
refusals every backend needs are made here, once, with one wording, and a plugin only
writes ``_apply``, the part that talks to its backend:

1. every change's record type is one the backend supports (``supported_types``) and
   its name is in the zone; otherwise ``UnsupportedChange``;
2. unless the backend itself refuses a change whose ``before`` is no longer live
   (``backend_checks_before``), the zone is read again and each change's ``before``
   compared with it; a difference is ``DriftError`` and nothing is sent;
3. ``_apply(changes)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Collection, Generic, Mapping, Sequence, TypeVar

from cutover.errors import DriftError, ProviderError, UnsupportedChange
from cutover.records import Change, RecordKey, RecordSet, in_zone, index, shorten

#: Drifted record sets named in full in a drift message; the rest are counted.
DRIFT_SHOWN = 10
#: Values shown per record set in a drift message.
VALUES_SHOWN = 4

#: What a backend keeps per record set besides its values (its records, with their ids).
M = TypeVar("M")


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
    #: Settings that name a file or directory. In a plan, a relative one is taken from
    #: the plan's folder (as ``watch.resolvers`` is), so a plan works from any directory.
    path_settings: ClassVar[tuple[str, ...]] = ()
    #: False when ``records`` can only see the names it is asked for (DNS-query based).
    #: An instance may change it: rfc2136 reads by query when a transfer is refused.
    lists_whole_zone: bool = True
    #: The record types the backend can hold and this provider can write; None: any
    #: type DNS knows (a backend that speaks DNS itself). Checked when a plan is loaded,
    #: before the journal begins, and again by ``apply``.
    supported_types: ClassVar[frozenset[str] | None] = None
    #: True when the backend itself refuses a change whose ``before`` is no longer live
    #: (RFC 2136 prerequisites, Route 53's DELETE with the live values): ``apply`` then
    #: skips the shared re-read, which would only cost a read.
    backend_checks_before: ClassVar[bool] = False

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        self.zone = zone
        self.settings = dict(settings)

    # ----------------------------------------------------------------- settings

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with the settings as (key, message) pairs; the plan loader locates them."""
        return []

    @classmethod
    def prepare_settings(cls, settings: Mapping[str, Any],
                         environ: Mapping[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The settings to construct with, and their problems (``check_settings``'s).

        The plan loader calls this once, with ``${ENV}`` in the plan already substituted
        and ``path_settings`` already taken from the plan's folder. A provider whose
        settings name a file of further settings (the http provider's description) reads
        it here, substituting ``${ENV}`` in what it read from ``environ``, and returns
        what it read: the provider built from the plan then reads nothing again."""
        return dict(settings), cls.check_settings(settings)

    @classmethod
    def with_verify_nameservers(cls, settings: Mapping[str, Any], nameservers: Sequence[str]) -> dict[str, Any]:
        """The settings to construct with, given the plan's ``verify.nameservers``.

        A provider that reads the zone by DNS needs the zone's servers, and a plan that
        names them for verification has already said where they are (an internal zone's
        servers are in no public DNS); such a provider takes them as a default for its
        own setting. Every other provider reads through its API and ignores them."""
        return dict(settings)

    @classmethod
    def type_problem(cls, rtype: str) -> str | None:
        """Why this provider cannot change ``rtype`` record sets, or None when it can.

        One sentence for the plan loader and for ``apply``, which both prefix their own
        subject ("the powerdns provider", "PowerDNS")."""
        if cls.supported_types is None or rtype in cls.supported_types:
            return None
        return cls._cannot([rtype])

    @classmethod
    def _cannot(cls, rtypes: Sequence[str]) -> str:
        return f"cannot change {', '.join(rtypes)} records (it supports {', '.join(sorted(cls.supported_types or ()))})"

    # ----------------------------------------------------------------- the interface

    @abstractmethod
    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        """The zone's record sets. ``wanted`` names the managed ones; providers that
        cannot list a whole zone read only those."""

    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Make the changes: the shared refusals (see the module docstring), then ``_apply``.

        Raises ``UnsupportedChange`` or ``DriftError`` before anything is sent,
        ``ProviderError`` if nothing landed, ``PartialApplyError`` if some did."""
        if not changes:
            return ApplyReceipt(detail="nothing to change")
        self.refuse_unsupported(changes)
        if not self.backend_checks_before:
            self.refuse_drift(changes, self._live({c.key for c in changes}))
        return self._apply(changes)

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Send the changes to the backend; every refusal ``apply`` makes has passed.

        Not abstract, so that a plugin written before ``_apply`` existed (it overrides
        ``apply`` itself) still loads; a new plugin always writes this one."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _apply nor apply")

    @abstractmethod
    def nameservers(self) -> list[str]:
        """The zone's authoritative servers: host names, or ``address[:port]``."""

    def zones(self) -> list[str]:
        """Every zone this account or server holds (absolute names), for a fleet plan's
        ``fleet: all``. Backends that cannot list them say so; the plan then lists its zones."""
        raise ProviderError(f"the {self.service} provider cannot list its zones: give fleet: a list of zones "
                            "or a file with one zone a line")

    def parent_nameservers(self) -> list[str]:
        """For a provider that changes the delegation at the parent (an apex NS change is
        then a move between DNS hosts): the parent zone's servers. Others: none."""
        return []

    def wait(self, receipt: ApplyReceipt, timeout: float) -> bool:
        """Wait for the backend's own completion signal; True when it came.

        Backends without one are complete when ``apply`` returns."""
        return True

    def close(self) -> None:
        """Release connections; called once the run is over. Most backends hold none."""
        return None

    # ----------------------------------------------------------------- the shared refusals

    @property
    def service(self) -> str:
        """The backend's name at the start of this provider's messages ("PowerDNS")."""
        return type(self).__name__

    def scrub(self, text: str) -> str:
        """``text`` without the provider's secrets. Every message built from what a
        backend returned passes through here, in case the backend echoes a credential."""
        return text

    def refuse_unsupported(self, changes: Sequence[Change]) -> None:
        """``UnsupportedChange`` for names outside the zone and types the backend lacks."""
        outside = [c.name for c in changes if not in_zone(c.name, self.zone)]
        if outside:
            raise UnsupportedChange(f"{self.service}: not in zone {self.zone}: {', '.join(outside)}; nothing was sent")
        lacking = sorted({c.type for c in changes if self.type_problem(c.type)})
        if lacking:
            raise UnsupportedChange(f"{self.service} {self._cannot(lacking)}; nothing was sent")

    def _live(self, keys: Collection[RecordKey]) -> Mapping[RecordKey, RecordSet]:
        """The live record sets the shared check compares ``before`` with.

        A provider whose ``_apply`` needs more of that same read (record ids) overrides
        this to keep it: one read then serves both, and nothing can change between the
        check and the ids the change is made with."""
        return index(self.records(keys))

    def refuse_drift(self, changes: Sequence[Change], live: Mapping[RecordKey, RecordSet]) -> None:
        """``DriftError`` naming every change whose ``before`` is not what is ``live``.

        Public so that a provider which reads the zone inside ``_apply`` anyway (Route 53
        needs the live values for its DELETE) compares with that read in the same words."""
        lines = drifted(changes, live)
        if lines:
            raise DriftError(self.scrub(drift_message(self.service, self.zone, lines, "nothing was sent")))

    def _error(self, message: str) -> ProviderError:
        """A ``ProviderError`` whose text cannot carry a secret, whatever went into it."""
        return ProviderError(self.scrub(message))


class ProviderWithIds(Provider, Generic[M]):
    """A backend whose writes address its own records by id (Cloudflare, most REST APIs).

    The read behind the shared ``before`` check is the one the ids come from: ``_live``
    keeps each set's members and ``_apply`` takes them (``_members``), so one read serves
    the check and the write, and no change can slip in between the two."""

    _checked: dict[RecordKey, M] | None = None

    @abstractmethod
    def _read(self, wanted: set[RecordKey]) -> tuple[dict[RecordKey, RecordSet], dict[RecordKey, M]]:
        """The zone as record sets, and each set's members as the backend holds them."""

    def _live(self, keys: Collection[RecordKey]) -> Mapping[RecordKey, RecordSet]:
        sets, self._checked = self._read(set(keys))
        return sets

    def _members(self, changes: Sequence[Change]) -> dict[RecordKey, M]:
        """The members the shared check read, taken once; a fresh read without one."""
        members = self._checked if self._checked is not None else self._read({c.key for c in changes})[1]
        self._checked = None
        return members


# --------------------------------------------------------------------------- drift, in words


def _same(now: RecordSet | None, before: RecordSet | None) -> bool:
    return now == before


def drifted(changes: Sequence[Change], live: Mapping[RecordKey, RecordSet],
            same: Callable[[RecordSet | None, RecordSet | None], bool] = _same) -> list[str]:
    """One line per change whose ``before`` differs from what is ``live`` (by ``same``)."""
    return [f"{c.name} {c.type} is now {shown(live.get(c.key))} (read as {shown(c.before)})"
            for c in changes if not same(live.get(c.key), c.before)]


def drift_message(service: str, zone: str, lines: Sequence[str], outcome: str) -> str:
    """The one wording of drift, whoever found it: cutover's re-read or the backend."""
    listed = "; ".join(lines[:DRIFT_SHOWN])
    if len(lines) > DRIFT_SHOWN:
        listed += f"; and {len(lines) - DRIFT_SHOWN} more"
    details = f": {listed}" if listed else ""
    return (f"{service}: the zone {zone} changed since it was read, {outcome}{details}. "
            "Run `cutover diff` to see the zone now.")


def shown(rs: RecordSet | None) -> str:
    """A record set in a message, bounded: a 200-value set must not make a page of text."""
    if rs is None:
        return "absent"
    values = [shorten(v, 40) for v in rs.values[:VALUES_SHOWN]]
    more = f" and {len(rs.values) - VALUES_SHOWN} more" if len(rs.values) > VALUES_SHOWN else ""
    return f"ttl {rs.ttl} {values}{more}"
