"""``cutover export``: what the skeleton holds (no TTLs unless asked, ``--only``), and
that every option is checked as the plan loader checks a plan before any provider is
contacted (issue 14, "Export and plans")."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover import cli
from cutover import export as exportmod
from cutover import plan as planmod
from cutover.errors import UsageError
from cutover.records import RecordSet
from cutover import session as session_mod
from providers import registry
from tests.fakes import MemoryProvider

ZONE = "example.com."
LIVE = [
    RecordSet.build(ZONE, "SOA", 3600, ["ns1.example.com. host.example.com. 1 7200 900 1209600 600"]),
    RecordSet.build(ZONE, "NS", 3600, ["ns1.example.com."]),
    RecordSet.build(ZONE, "MX", 3600, ["10 mail.example.com."]),
    RecordSet.build(f"www.{ZONE}", "A", 3600, ["198.51.100.10"]),
    RecordSet.build(f"mail.{ZONE}", "A", 3600, ["198.51.100.25"]),
    RecordSet.build(f"a.shop.{ZONE}", "A", 3600, ["198.51.100.30"]),
    RecordSet.build(f"b.c.shop.{ZONE}", "A", 3600, ["198.51.100.31"]),
    RecordSet.build(f"shop.{ZONE}", "A", 3600, ["198.51.100.32"]),
]
SETTINGS = ["server=127.0.0.1"]


@pytest.fixture(autouse=True)
def _keep_sigterm(monkeypatch):
    """``cli.main`` installs a SIGTERM handler; the test process keeps its own."""
    monkeypatch.setattr(cli.signal, "signal", lambda *_a: None)


def export(only: str | None = None, ttl: bool = False) -> dict:
    req = exportmod.request("rfc2136", "example.com", SETTINGS, {}, only=only, ttl=ttl)
    return exportmod.skeleton(MemoryProvider(ZONE, LIVE), req)


def names(doc: dict) -> list[tuple[str, str]]:
    return [(r["name"], r["type"]) for r in doc["records"]]


def usage_lines(**kwargs) -> list[str]:
    args = {"type_name": "rfc2136", "zone_text": "example.com", "settings": SETTINGS, "environ": {}, **kwargs}
    with pytest.raises(UsageError) as info:
        exportmod.request(**args)
    return str(info.value).splitlines()


# --------------------------------------------------------------------------- TTLs


def test_entries_carry_no_ttl_by_default():
    assert all("ttl" not in r for r in export()["records"])


def test_ttl_option_writes_the_live_ttls():
    assert {r["ttl"] for r in export(ttl=True)["records"]} == {3600}


def test_an_exported_plan_keeps_the_ttl_prepare_lowered(tmp_path):
    """Editing only the ``to`` lines must not make apply raise the TTL back to 3600."""
    path = tmp_path / "plan.yaml"
    path.write_text(exportmod.to_yaml(export()))
    plan = planmod.load(path, environ={})
    www = next(r for r in plan.records if r.name == f"www.{ZONE}")
    lowered = RecordSet.build(f"www.{ZONE}", "A", 300, ["198.51.100.10"])  # after prepare
    assert www.ttl is None and www.desired(lowered, plan.default_ttl).ttl == 300


# --------------------------------------------------------------------------- --only


def test_only_names_and_the_apex():
    assert names(export(only="www,@")) == [("@", "MX"), ("www", "A")]


def test_only_patterns_are_shell_style_relative_to_the_zone():
    assert names(export(only="*.shop")) == [("a.shop", "A"), ("b.c.shop", "A")]
    assert names(export(only="WWW, mail.example.com.")) == [("mail", "A"), ("www", "A")]


def test_only_with_a_term_that_matches_nothing_is_refused():
    with pytest.raises(UsageError, match=r"^--only: 'mial' matches no record set in example.com. "
                                         r"\(names there: @, a.shop, b.c.shop, mail, shop, www\)$"):
        export(only="www,mial")


def test_only_outside_the_zone_or_empty_is_refused_before_contacting():
    assert usage_lines(only="www.example.net.") == ["--only: 'www.example.net.' is outside the zone example.com."]
    assert usage_lines(only=" , ") == ["--only: ' , ' names nothing (expected e.g. www,mail,*.shop)"]


# --------------------------------------------------------------------------- checked first


def test_unknown_setting_is_refused_with_a_hint_as_the_loader_does():
    assert usage_lines(settings=["servr=127.0.0.1"]) == [
        "--setting servr: unknown key 'servr' (did you mean 'server'?)",
        "--setting server: missing (the rfc2136 provider needs it)",
    ]


def test_unknown_setting_without_a_close_match_lists_the_keys():
    keys = ", ".join(registry.provider_class("rfc2136").settings_keys)
    assert usage_lines(settings=["server=127.0.0.1", "region=x"]) == [
        f"--setting region: unknown key 'region' (expected one of: {keys})"]


def test_unset_variable_bad_pair_and_conflicting_repeat_are_all_listed():
    lines = usage_lines(settings=["server=${DNS_SERVER}", "oops", "port=53", "port=54"])
    assert lines == [
        "--setting 'oops': expected KEY=VALUE (use ${ENV} for secrets)",
        "--setting port: given twice with different values",
        "--setting server: environment variable DNS_SERVER is not set",
    ]


def test_unknown_provider_is_named():
    assert usage_lines(type_name="route35", settings=[]) == ["--provider: unknown provider 'route35' (did you mean 'route53'?)"]


@pytest.mark.parametrize("zone", ["bad zone!", "-bad.example", "under score!.example"])
def test_a_zone_that_is_no_host_name_is_refused(zone):
    (line,) = usage_lines(zone_text=zone)
    assert line.startswith(f"--zone: {zone!r} is not a zone name: the label")


def test_the_root_and_idn_zones():
    assert usage_lines(zone_text=".")[0].startswith("--zone: '.' is the root")
    assert exportmod.export_zone("bücher.example") == "xn--bcher-kva.example."
    assert exportmod.export_zone("_tcp.Example.COM") == "_tcp.example.com."


def test_every_exported_setting_loads_as_a_plan(tmp_path):
    """What export accepts, the loader accepts: the plan is one ``diff`` will read."""
    req = exportmod.request("rfc2136", "example.com", ["server=127.0.0.1", "port=5353", "tsig_name=k",
                                                     "tsig_secret=${TSIG}"], {"TSIG": "c2VjcmV0"})
    path = tmp_path / "plan.yaml"
    path.write_text(exportmod.to_yaml(exportmod.skeleton(MemoryProvider(ZONE, LIVE), req)))
    plan = planmod.load(path, environ={"TSIG": "c2VjcmV0"})
    assert plan.provider.settings["tsig_secret"] == "c2VjcmV0" and "c2VjcmV0" not in path.read_text()


def test_the_cli_never_creates_a_provider_for_bad_options(monkeypatch, capsys):
    def contacted(*_a, **_k):
        raise AssertionError("the provider was contacted")

    monkeypatch.setattr(session_mod.registry, "create", contacted)
    for argv in (["--zone", "bad zone!", "--setting", "server=127.0.0.1"],
                 ["--zone", "example.com", "--setting", "server=127.0.0.1", "--setting", "region=x"],
                 ["--zone", "example.com", "--setting", "server=127.0.0.1", "--only", ","]):
        assert cli.main(["export", "--provider", "rfc2136", *argv]) == 2
    err = capsys.readouterr().err
    assert "--zone: 'bad zone!'" in err and "--setting region: unknown key" in err and "AssertionError" not in err


def test_the_cli_writes_the_file_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(session_mod.registry, "create", lambda *_a, **_k: MemoryProvider(ZONE, LIVE))
    target = tmp_path / "out.yaml"
    assert cli.main(["export", "--provider", "rfc2136", "--zone", "example.com", "--setting", "server=127.0.0.1",
                     "--only", "www", "-o", str(target)]) == 0
    assert [p.name for p in Path(tmp_path).iterdir()] == ["out.yaml"]
    assert "ttl: 300" in target.read_text() and "ttl: 3600" not in target.read_text()  # prepare's, not www's
