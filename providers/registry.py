"""Finding provider plugins through the ``cutover.providers`` entry-point group.

The built-in providers are registered in cutover's own ``pyproject.toml`` exactly as a
third-party package would register its own, so there is one mechanism, not two.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Sequence

from cutover.errors import UsageError
from providers.base import Provider

GROUP = "cutover.providers"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every installed provider type."""
    return sorted(_entry_points())


def provider_class(name: str) -> type[Provider]:
    """The class registered under ``name``; ``UsageError`` if there is none or it is broken."""
    ep = _entry_points().get(name)
    if ep is None:
        raise UsageError(f"unknown provider type {name!r} (installed: {', '.join(available())})")
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not take the CLI down with a traceback
        raise UsageError(f"provider {name!r} ({ep.value}) failed to load: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise UsageError(f"provider {name!r} ({ep.value}) is not a cutover Provider")
    return cls


def create(type_name: str, zone: str, settings: dict, *, verify_nameservers: Sequence[str] = ()) -> Provider:
    """An instance of the provider ``type_name`` for ``zone`` with already-checked settings.

    ``verify_nameservers`` (the plan's) are offered to the provider as a default for
    its own servers (``Provider.with_verify_nameservers``): a provider that reads by DNS
    then needs no second copy of the list in its settings."""
    cls = provider_class(type_name)
    return cls(zone, cls.with_verify_nameservers(settings, list(verify_nameservers)))
