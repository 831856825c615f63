"""cutover.checking: every problem of a plan at once, each at its field path.

An unset ``${NAME}`` is one mistake however often it is used: one problem, at its first
place, naming the others (three by name, the rest counted), kept at the position where
it was first found; and what only repeats that the variable is unset is not reported.
"""

from __future__ import annotations

import pytest

from cutover.checking import Checker
from cutover.errors import Problem
from cutover.values import parse_duration, parse_share


def checker(**environ: str) -> Checker:
    return Checker("plan.yaml", environ)


def messages(c: Checker) -> list[str]:
    return [p.render(c.source) for p in c.problems]


# --------------------------------------------------------------------------- unset variables


@pytest.mark.parametrize(("uses", "also"), [
    (1, ""),
    (2, " (also used at p1)"),
    (3, " (also used at p1 and p2)"),
    (4, " (also used at p1, p2 and p3)"),
    (5, " (also used at p1, p2, p3 and 1 more place)"),
    (6, " (also used at p1, p2, p3 and 2 more places)"),
    (100, " (also used at p1, p2, p3 and 96 more places)"),
])
def test_an_unset_variable_used_many_times_is_one_problem_with_bounded_places(uses, also):
    c = checker()
    for i in range(uses):
        assert c.env("${NEW_IP}", f"p{i}") == "${NEW_IP}"
    assert c.problems == [Problem("p0", f"environment variable NEW_IP is not set{also}")]
    assert c.unset == {"NEW_IP": [f"p{i}" for i in range(uses)]}


def test_the_same_place_is_named_once():
    c = checker()
    c.env("${A}-${A}", "records[0].to[0]")
    c.env("${A}", "records[0].to[0]")
    assert c.problems == [Problem("records[0].to[0]", "environment variable A is not set")]


def test_each_unset_variable_keeps_the_position_where_it_was_first_found():
    c = checker()
    c.env("${A}", "x")
    c.add("y", "a problem between the two")
    c.env("${B}", "z")
    c.env("${A}", "w")  # updates A's problem in place; B stays after it
    assert messages(c) == [
        "plan.yaml: x: environment variable A is not set (also used at w)",
        "plan.yaml: y: a problem between the two",
        "plan.yaml: z: environment variable B is not set",
    ]


def test_a_set_variable_is_substituted_and_no_problem():
    c = checker(NEW_IP="203.0.113.10")
    assert c.env(["${NEW_IP}", 3], "records[0].to") == ["203.0.113.10", 3]
    assert c.problems == [] and c.unset == {}


def test_nested_settings_name_the_inner_place():
    c = checker()
    c.env({"auth": {"token": "${TOKEN}"}}, "provider.auth")
    assert messages(c) == ["plan.yaml: provider.auth.auth.token: environment variable TOKEN is not set"]


# --------------------------------------------------------------------------- follow-on problems


@pytest.mark.parametrize(("unset_at", "problems_at", "reported"), [
    # "'${NEW_IP}' is not a valid IPv4 address" would only repeat that NEW_IP is unset
    ("records[1].to[0]", ["records[1].to[0]", "records[1].to[0].deeper", "records[1].to[0][2]"], ["records[1].to[0]"]),
    # a neighbour whose path merely starts alike, and the parent, are real problems
    ("records[1]", ["records[10]", "records[1]x", "records"], ["records[1]", "records[10]", "records[1]x", "records"]),
])
def test_only_problems_at_or_inside_an_unresolved_value_are_left_out(unset_at, problems_at, reported):
    c = checker()
    c.env("${NEW_IP}", unset_at)
    for path in problems_at:
        c.add(path, "a problem")
    assert [p.path for p in c.problems] == reported
    assert c.problems[0].message == "environment variable NEW_IP is not set"


def test_convert_reports_the_parse_error_at_its_path_unless_the_value_is_unset():
    c = checker(SHARE="95")
    assert c.convert("${SHARE}", "retire.threshold", parse_share) is None
    assert c.convert("${PERIOD}", "retire.parallel_period", parse_duration) is None
    assert c.convert("15m", "watch.interval", parse_duration) == 900.0
    assert messages(c) == [
        "plan.yaml: retire.threshold: '95' is not a share (expected a percentage like 95% or a number 0..1)",
        "plan.yaml: retire.parallel_period: environment variable PERIOD is not set",
    ]


def test_convert_takes_a_type_error_as_a_problem_too():
    c = checker()
    assert c.convert(None, "verify.timeout", float) is None  # float(None): TypeError
    assert messages(c) == ["plan.yaml: verify.timeout: float() argument must be a string or a real number, not 'NoneType'"]


# --------------------------------------------------------------------------- keys and mappings


def test_an_unknown_key_gets_the_nearest_known_one_or_the_list():
    c = checker()
    c.keys({"nmae": 1, "type": 2, "colour": 3}, ("name", "type", "to"), "records[0]")
    c.keys({"retier": {}}, ("zone", "retire"), "")
    assert messages(c) == [
        "plan.yaml: records[0].nmae: unknown key 'nmae' (did you mean 'name'?)",
        "plan.yaml: records[0].colour: unknown key 'colour' (expected one of: name, type, to)",
        "plan.yaml: retier: unknown key 'retier' (did you mean 'retire'?)",
    ]


def test_a_hostile_key_is_shown_bounded():
    c = checker()
    c.keys({"k" * 5000: 1}, ("name",), "")
    assert len(c.problems[0].message) < 200


def test_mapping_takes_nothing_as_empty_and_refuses_other_things():
    c = checker()
    assert c.mapping(None, "retire") == {}
    assert c.mapping({"threshold": 1}, "retire") == {"threshold": 1}
    assert c.mapping(["threshold"], "retire") is None
    assert c.mapping("95%", "retire") is None
    assert messages(c) == ["plan.yaml: retire: ['threshold'] is not a mapping", "plan.yaml: retire: '95%' is not a mapping"]
