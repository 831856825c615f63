"""The built-in resolver catalogue is data: these checks keep it usable and honest."""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

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


# --------------------------------------------------------------------------- specs (issue 14)

LONG_LIST = ",".join(f"192.0.2.{i}" for i in range(1, 71))  # 70 addresses, about 700 characters


def test_a_long_comma_list_is_a_list_not_a_file_name():
    assert len(LONG_LIST) > 255  # once: "[Errno 36] File name too long"
    chosen = resolvers.resolve_spec(LONG_LIST)
    assert [r.address for r in chosen] == [f"192.0.2.{i}" for i in range(1, 71)]


def test_a_long_comma_list_beside_a_plan_is_not_probed_either(tmp_path):
    assert len(resolvers.resolve_spec(LONG_LIST, base_dir=tmp_path)) == 70
    assert resolvers.spec_file(LONG_LIST, tmp_path) is None


@pytest.mark.parametrize("spec", ["x" * 300, "a\x00b", "resolvers" + "/x" * 2000])
def test_a_name_the_system_cannot_look_up_is_a_value_error(tmp_path, spec):
    assert resolvers.spec_file(spec, tmp_path) is None
    with pytest.raises(ValueError):
        resolvers.resolve_spec(spec, tmp_path)


def test_one_address_is_a_list_even_if_a_file_has_that_name(tmp_path):
    (tmp_path / "9.9.9.9").write_text("192.0.2.1\n")
    assert [r.address for r in resolvers.resolve_spec("9.9.9.9", tmp_path)] == ["9.9.9.9"]


def test_a_file_beside_the_plan_is_still_read(tmp_path):
    (tmp_path / "mine").write_text("192.0.2.1\n192.0.2.2:5353  # lab\n")
    assert resolvers.spec_file("mine", tmp_path) == tmp_path / "mine"
    assert [r.endpoint for r in resolvers.resolve_spec("mine", tmp_path)] == ["192.0.2.1", "192.0.2.2:5353"]


def test_a_broken_resolver_file_is_a_value_error_naming_it(tmp_path):
    (tmp_path / "bad.yaml").write_text("- [unclosed\n")
    with pytest.raises(ValueError, match=r"resolver file .*bad.yaml.* is not a YAML list"):
        resolvers.resolve_spec("bad.yaml", tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"bin.txt"):
        resolvers.resolve_spec("bin.txt", tmp_path)


def test_an_unreadable_resolver_file_is_a_value_error(tmp_path, monkeypatch):
    (tmp_path / "locked.txt").write_text("192.0.2.1\n")

    def refuse(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # chmod 0 does not stop root
    with pytest.raises(ValueError, match=r"locked.txt.* cannot be read: Permission denied"):
        resolvers.resolve_spec("locked.txt", tmp_path)


def test_the_same_resolver_twice_is_asked_once():
    chosen = resolvers.resolve_spec("192.0.2.1,192.0.2.1:53,[2001:db8::1],2001:0db8:0::1,192.0.2.1:5353")
    assert [r.endpoint for r in chosen] == ["192.0.2.1", "[2001:db8::1]", "192.0.2.1:5353"]


def test_a_repeat_keeps_the_first_entrys_details():
    chosen = resolvers.resolve_spec([{"address": "192.0.2.1", "name": "office"}, "192.0.2.1",
                                     {"address": "192.0.2.1", "name": "again"}])
    assert [(r.address, r.name) for r in chosen] == [("192.0.2.1", "office")]


def test_a_repeated_file_entry_is_asked_once(tmp_path):
    (tmp_path / "list.yaml").write_text("- 192.0.2.1\n- {address: 192.0.2.1, name: twice}\n- 192.0.2.2\n")
    assert [r.label for r in resolvers.resolve_spec("list.yaml", tmp_path)] == ["192.0.2.1", "192.0.2.2"]


def test_a_word_that_is_neither_file_nor_address_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"^'quad9' is neither a resolver file nor an IP address \(expected 'public'"):
        resolvers.resolve_spec("quad9", tmp_path)
    with pytest.raises(ValueError, match=r"^resolver file '.{50,70}\.\.\..{50,70}' does not exist$"):
        resolvers.resolve_spec("lists" + "/x" * 2000, tmp_path)
