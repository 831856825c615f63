"""Which continent a country is on, for probes whose service reports only the country.

Globalping reports each probe's continent; RIPE Atlas reports a country code only. The
world view groups by continent, so the table (``cutover/data/continents.yaml``, ISO
3166-1 codes as the UN geoscheme places them) fills it in. Data, not code, for review.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    text = resources.files("cutover").joinpath("data/continents.yaml").read_text(encoding="utf-8")
    return {country: continent for continent, countries in yaml.safe_load(text).items() for country in countries}


def continent_of(country: str) -> str:
    """``JP`` -> ``AS``; an unknown or empty code -> ``""``."""
    return _table().get(country.strip().upper(), "")
