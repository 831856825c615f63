"""``watch.probes`` entries: reading them, the published limits, and the plan's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover import plan as planmod
from cutover.errors import PlanError, UsageError
from cutover.observe.probes import SettingError
from cutover.observe.probes.services import cost_problems, parse_entries, unmeasurable
from cutover.observe.types import Target
from cutover.session import load_probes

WWW = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
APEX = Target(("example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
CAA = Target(("example.com.", "CAA"), ('0 issue "le.org"',), (), 300)


def test_an_entry_reads_into_its_services_settings():
    (entry,) = parse_entries([{"service": "globalping", "token": "t0k", "locations": [{"country": "JP", "limit": 10}],
                               "resolver": "8.8.8.8", "every": "15m", "url": "http://127.0.0.1:8080/"}])
    s = entry.settings
    assert (entry.service, entry.where) == ("globalping", "watch.probes[0]")
    assert (s.token, s.resolver, s.every, s.url, s.locations) == ("t0k", "8.8.8.8", 900.0, "http://127.0.0.1:8080",
                                                                  ({"country": "JP", "limit": 10},))
    assert "t0k" not in repr(entry) and "t0k" not in repr(s)


@pytest.mark.parametrize("entries, field, words", [
    ("globalping", "watch.probes", "must be a list"),
    (["globalping"], "watch.probes[0]", "must be a mapping"),
    ([{"service": "pingdom"}], "watch.probes[0].service", "'pingdom' is not a probe service"),
    ([{"service": "globalping", "every": "30s"}], "watch.probes[0].every", "shorter than a minute"),
    ([{"service": "globalping", "every": "soon"}], "watch.probes[0].every", "soon"),
    ([{"service": "globalping", "locations": [{"country": "JP", "limit": 500}]}], "watch.probes[0].locations[0].limit", "1..200"),
    ([{"service": "globalping", "locations": [{"planet": "Mars"}]}], "watch.probes[0].locations[0]", "planet"),
    ([{"service": "globalping", "locations": [{"country": "JP", "limit": 2}], "limit": 5}], "watch.probes[0].limit", "not both"),
    ([{"service": "globalping", "resolver": "dns.google"}], "watch.probes[0].resolver", "own or a resolver's IP"),
    ([{"service": "globalping", "url": "ftp://x"}], "watch.probes[0].url", "http"),
    ([{"service": "globalping", "tokn": "x"}], "watch.probes[0].tokn", "unknown key"),
])
def test_a_bad_entry_names_its_field(entries, field, words):
    with pytest.raises(SettingError) as caught:
        parse_entries(entries)
    assert caught.value.field == field and words in caught.value.message


def test_a_schedule_over_the_published_limit_is_refused_with_what_fits():
    entries = parse_entries([{"service": "globalping", "locations": [{"magic": "world", "limit": 50}], "every": "10m"}])
    (problem,) = cost_problems(entries, [WWW, APEX])
    assert problem.startswith("watch.probes[0]: globalping: 2 record(s) every 600s with 50 probes is 12 measurements")
    assert "600 tests an hour, over the 250 free tests/hour allowed anonymously" in problem
    assert "at most 20 probes or every: 1800s or longer or a token (500 tests/hour)" in problem
    assert cost_problems(entries, [WWW]) != []  # 6 x 50 = 300 tests an hour is still too many
    entries = parse_entries([{"service": "globalping", "locations": [{"magic": "world", "limit": 40}], "every": "10m"}])
    assert cost_problems(entries, [WWW]) == []  # 6 x 40 = 240


def test_entries_sharing_one_budget_are_checked_together():
    one = {"service": "globalping", "locations": [{"country": "JP", "limit": 25}], "every": "10m"}
    entries = parse_entries([one, {**one, "locations": [{"country": "DE", "limit": 25}]}])
    assert cost_problems(entries[:1], [WWW]) == []  # 150 tests an hour each
    (problem,) = cost_problems(entries, [WWW])
    assert problem == ("watch.probes[0], watch.probes[1]: together these globalping entries spend 300 tests an hour "
                       "of the one budget they share, over the 250 allowed; lengthen their every or use fewer probes")
    with_token = parse_entries([one, {**one, "token": "t"}])  # two budgets: anonymous and the token's
    assert cost_problems(with_token, [WWW]) == []


def test_records_a_service_cannot_query_are_said_not_counted():
    entries = parse_entries([{"service": "globalping", "locations": [{"magic": "world", "limit": 40}], "every": "10m"}])
    assert cost_problems(entries, [WWW, CAA]) == []
    assert unmeasurable(entries, [WWW, CAA]) == ["watch.probes[0]: globalping cannot measure example.com. CAA"]


def test_the_plan_names_the_probe_field_and_an_unset_token(tmp_path: Path):
    path = tmp_path / "plan.yaml"
    path.write_text("""
version: 1
zone: example.com
provider: {type: sandbox, path: zone}
records: [{name: www, type: A, to: [203.0.113.10]}]
watch:
  probes:
    - {service: globalping, token: "${GP_TOKEN}", every: 5s}
""")
    with pytest.raises(PlanError) as caught:
        planmod.load(path, environ={})
    text = str(caught.value)
    assert "watch.probes[0].every" in text and "shorter than a minute" in text
    assert "environment variable GP_TOKEN is not set" in text
    path.write_text(path.read_text().replace("every: 5s", "every: 10m"))
    plan = planmod.load(path, environ={"GP_TOKEN": "hush"})
    (entry,) = plan.watch.probes
    assert entry.settings.token == "hush" and "hush" not in repr(plan)


def test_probes_option_file_and_none(tmp_path: Path):
    assert load_probes(None) is None and load_probes("none") == ()
    f = tmp_path / "probes.yaml"
    f.write_text("- {service: globalping, token: '${GP}', locations: [{country: JP, limit: 3}]}\n")
    (entry,) = load_probes(str(f), environ={"GP": "x"})
    assert entry.where == "probes[0]" and entry.settings.token == "x"
    with pytest.raises(UsageError, match=r"--probes .*probes\[0\]\.token: environment variable GP is not set"):
        load_probes(str(f), environ={})
    f.write_text("- {service: globalping, every: 1s}\n")
    with pytest.raises(UsageError, match=r"--probes .*: probes\[0\]\.every: .*shorter than a minute"):
        load_probes(str(f))
    with pytest.raises(UsageError, match="no such file"):
        load_probes(str(tmp_path / "missing.yaml"))
