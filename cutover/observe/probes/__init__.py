"""Answers from probe networks: DNS measured from other people's machines and resolvers.

From one machine, ``watch`` sees one site of each anycast resolver. Probe networks
(Globalping, RIPE Atlas) ask from thousands of homes and networks through each probe's
own resolver, the caches real users sit behind. Each service's client turns its results
into ordinary ``Answer`` values, classified exactly like a resolver's, with the probe's
vantage on the answer (and its place in the ``Resolver`` label, group ``probe``).

Every service module offers the same small surface, which ``schedule`` drives:

* ``SERVICE`` (its name in plans and output) and ``settings_from(entry)``, which reads
  one ``watch.probes`` entry or raises ``SettingError`` naming the field;
* ``settings_problem(settings, records)``: why that schedule would exceed the service's
  published limits or credits, or None (checked before anything is sent);
* a client, ``client(settings)``, implementing ``ProbeClient``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import requests

from cutover.observe.types import Answer, Target
from cutover.records import shorten
from providers.httpclient import ApiError

#: ``Resolver.group`` of every probe answer, so that output can show and count them apart.
PROBE = "probe"


def api_session(authorization: str | None) -> requests.Session:
    """An HTTP session for one service's API: JSON, a User-Agent that says who asks, and
    the credential in the ``Authorization`` header only (never in a URL, which logs keep)."""
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "User-Agent": "cutover (DNS cutover watch)"})
    if authorization:
        session.headers["Authorization"] = authorization
    return session


def error_message(response: requests.Response, describe: Callable[[Mapping[str, Any]], str]) -> str:
    """An API's error text, short enough for a round: the JSON ``error`` object as
    ``describe`` words it (each service shapes it its own way), else the body itself."""
    try:
        body = response.json()
    except ValueError:
        return shorten(" ".join(response.text.split()), 200) or response.reason or ""
    err = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping):
        return shorten(str(body), 200)
    return shorten(describe(err), 300)


class ServiceClient:
    """What every service's client shares: one HTTP session carrying the credential, and
    each measurement's next allowed read, which the scheduler asks for (``ready_at``)
    instead of blocking in a poll. Subclasses set ``settings`` (with its ``url``)."""

    settings: ProbeSettings

    def __init__(self, authorization: str | None) -> None:
        self._session = api_session(authorization)
        self._next_read: dict[str, float] = {}  # measurement id -> clock() of its next allowed read

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.url!r})"

    def close(self) -> None:
        self._session.close()

    def ready_at(self, measurement_id: str) -> float:
        """The ``clock()`` time before which this measurement is not read again: the
        service's poll interval after the previous read, or what a ``Retry-After`` said."""
        return self._next_read.get(measurement_id, 0.0)


class RateLimited(ApiError):
    """A service refused for rate: ``wait`` seconds (None: unknown) before it will accept
    again. The scheduler starts nothing new there before then."""

    def __init__(self, message: str, wait: float | None) -> None:
        super().__init__(message, status=429)
        self.wait = wait


class SettingError(ValueError):
    """A ``watch.probes`` entry's field that cannot be used: which field, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Progress:
    """One poll of a measurement: the answers so far, and whether the service is done
    with it (a measurement cut short by our timeout uses its last ``Progress``; tests
    still running are then ``timeout`` answers)."""

    final: bool
    answers: tuple[Answer, ...]


class ProbeSettings(Protocol):
    """What the scheduler needs of any service's parsed settings."""

    @property
    def every(self) -> float: ...

    @property
    def url(self) -> str: ...


class ProbeClient(Protocol):
    """One service endpoint with its credentials, pacing itself as its API asks.

    ``create`` starts a measurement of one record and returns its id; ``ready_at`` is
    the monotonic clock time before which the service does not want it read again;
    ``progress`` reads it once (None: the service asked us to come back later). Errors
    are ``providers.httpclient.ApiError`` (or ``requests`` / ``OSError``): the scheduler
    reports them in the round and never lets them stop the watch.
    """

    settings: Any

    def create(self, target: Target) -> str: ...

    def ready_at(self, measurement_id: str) -> float: ...

    def progress(self, measurement_id: str, target: Target) -> Progress | None: ...

    def close(self) -> None: ...
