"""The built-in resolver catalogue is data: these checks keep it usable and honest."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest
import yaml
from importlib import resources

from cutover import resolvers


@pytest.fixture(scope="module")
def raw() -> list[dict]:
    text = resources.files("cutover").joinpath("data/resolvers.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["resolvers"]


def test_catalogue_has_at_least_forty_resolvers():
    assert len(resolvers.catalogue()) >= 40


def test_every_address_is_a_valid_unique_public_ip(raw):
    addresses = [ipaddress.ip_address(e["address"]) for e in raw]
    duplicates = [a for a, n in Counter(addresses).items() if n > 1]
    assert not duplicates
    for address in addresses:
        assert address.is_global, f"{address} is not a public address"


def test_both_address_families_are_present():
    versions = {ipaddress.ip_address(r.address).version for r in resolvers.catalogue()}
    assert versions == {4, 6}


def test_every_entry_names_its_operator_country_and_filtering(raw):
    for entry in raw:
        assert set(entry) >= {"address", "name", "operator", "country", "filtering"}, entry
        assert entry["name"].strip() and entry["operator"].strip(), entry
        assert len(entry["country"]) == 2 and entry["country"].isupper(), entry
        assert isinstance(entry["filtering"], bool), entry


def test_catalogue_entries_are_public_group_port_53():
    for r in resolvers.catalogue():
        assert r.group == "public" and r.port == 53


@pytest.mark.parametrize(
    "operator",
    ["Google", "Cloudflare", "Quad9", "Cisco OpenDNS", "Lumen", "Comodo", "Yandex", "AdGuard",
     "CleanBrowsing", "DNS.WATCH", "Vercara UltraDNS", "Alibaba", "Hurricane Electric", "DNS4EU"],
)
def test_the_well_known_operators_are_there(operator):
    assert resolvers.resolve_spec(f"public:operator={operator}")


def test_filtering_flags_match_the_services():
    by_address = {r.address: r for r in resolvers.catalogue()}
    assert by_address["9.9.9.9"].filtering and not by_address["9.9.9.10"].filtering
    assert by_address["1.1.1.2"].filtering and not by_address["1.1.1.1"].filtering
    assert by_address["94.140.14.14"].filtering and not by_address["94.140.14.140"].filtering
    assert not by_address["8.8.8.8"].filtering


def test_unfiltered_selection_drops_every_filtering_resolver():
    chosen = resolvers.resolve_spec("public:unfiltered")
    assert chosen and not any(r.filtering for r in chosen)
    assert len(chosen) < len(resolvers.catalogue())
