"""What the zone's own servers (and, for a delegation change, the parent's) serve.

A resolver can only ever hand out what some authoritative server gave it, so the
verdict first needs every authoritative server, every NS name and every address, to
serve the new data: a secondary whose zone transfer has not happened keeps feeding old
data to every resolver that asks it. Each server is reduced to one view per round:
``new`` (every watched record new), ``lagging`` (something else, named with the SOA
serial it serves) or ``unreachable`` (no answer at all, which holds the verdict back
just the same: we cannot know what it serves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from cutover.observe.types import AUTHORITATIVE, PARENT, UNREACHABLE, Answer, Round, Target

#: Servers whose data resolvers use: the zone's and, for a delegation, the parent's.
AGREEING = (AUTHORITATIVE, PARENT)


@dataclass(frozen=True)
class ServerView:
    """One server's state in one round."""

    server: str
    address: str
    group: str
    serial: int | None
    state: str  # new | lagging | unreachable
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"server": self.server, "address": self.address, "group": self.group,
                "serial": self.serial, "state": self.state, "detail": self.detail}

    @property
    def label(self) -> str:
        named = self.server if self.server == self.address else f"{self.server} ({self.address})"
        return f"{named} serial {self.serial}" if self.serial is not None else named


def serial_probe(zone: str) -> Target:
    """The SOA question each server is asked once per round, for its serial."""
    return Target((zone, "SOA"), (), (), 0, "probe", recursive=False)


def views(round: Round, targets: Sequence[Target], groups: Sequence[str] = AGREEING) -> list[ServerView]:
    """Per server of ``groups``, in the order first seen, what it serves of ``targets``."""
    keys = {t.key for t in targets}
    mine: dict[tuple[str, str, str], list[Answer]] = {}
    serials: dict[tuple[str, str, str], int | None] = {}
    for a in round.of_group(*groups):
        ident = (a.resolver.label, a.resolver.endpoint, a.resolver.group)
        answers = mine.setdefault(ident, [])
        if a.key in keys:
            answers.append(a)
        elif a.key[1] == "SOA":
            serials[ident] = _serial(a)
    return [_view(*ident, serials.get(ident), answers) for ident, answers in mine.items()]


def _view(label: str, endpoint: str, group: str, serial: int | None, answers: Sequence[Answer]) -> ServerView:
    behind = [a for a in answers if a.state != "new"]
    if answers and not behind:
        return ServerView(label, endpoint, group, serial, "new", "serves the new data")
    if not answers or all(a.state in UNREACHABLE for a in behind) and len(behind) == len(answers):
        reason = behind[0].detail or behind[0].state if behind else "no answer"
        return ServerView(label, endpoint, group, serial, "unreachable", reason)
    what = "; ".join(f"{a.key[0]} {a.key[1]}: {a.state}" + (f" {list(a.values)}" if a.values else "") for a in behind)
    return ServerView(label, endpoint, group, serial, "lagging", what)


def _serial(answer: Answer) -> int | None:
    if not answer.values:
        return None
    try:
        return int(answer.values[0].split()[2])
    except (IndexError, ValueError):
        return None


def all_new(server_views: Sequence[ServerView]) -> bool:
    """True when at least one server was asked and every one serves the new data."""
    return bool(server_views) and all(v.state == "new" for v in server_views)


def describe_lagging(server_views: Sequence[ServerView]) -> str:
    """"ns2 (127.0.0.1:5301) serial 3: www A: old; ns3: unreachable (timeout)"."""
    parts = []
    for v in server_views:
        if v.state == "lagging":
            parts.append(f"{v.label} still serves {v.detail}")
        elif v.state == "unreachable":
            parts.append(f"{v.label} is unreachable ({v.detail})")
    return "; ".join(parts)
