"""cutover.values: durations, shares, counts and ``${ENV}`` as operators write them.

The everyday forms (``15m``, ``7d``) are in tests/test_plan.py; these are the limits: a
duration of nothing or of forever, a share of exactly 0% or 100% (or a little past it),
a count that is really a share, and a variable used many times or nested deep.
"""

from __future__ import annotations

import pytest

from cutover.values import parse_duration, parse_quorum, parse_share, show, substitute_env, substitute_tree

DURATION_HINT = "is not a duration (expected e.g. 90, 90s, 15m, 48h, 7d)"
SHARE_HINT = "is not a share (expected a percentage like 95% or a number 0..1)"
QUORUM_HINT = "is not a count or a share (expected e.g. 3 or 50%)"


# --------------------------------------------------------------------------- show


def test_show_bounds_a_hostile_value_in_a_message():
    assert len(show("x" * 100_000)) <= 62
    assert show(list(range(1000))) == "[0, 1, 2, 3, ...]"
    assert show({"a": {"b": {"c": {"d": 1}}}}) == "{'a': {'b': {...}}}"
    assert show("15m") == "'15m'"


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("value", "seconds"), [
    (0, 0.0), ("0", 0.0), ("0s", 0.0), (0.25, 0.25), ("1.5h", 5400.0), (" 15 m ", 900.0), ("1w", 604800.0),
])
def test_durations_at_their_limits(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [-1, -0.5, None, False, [15], "15M", "1e3", "15 minutes", "m", "-0s", "1h30m"])
def test_what_is_not_a_duration_is_named_in_the_message(value):
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert str(info.value) == f"{show(value)} {DURATION_HINT}"


def test_an_infinite_duration_is_refused():
    """YAML reads ``parallel_period: .inf`` as a float; the verdict then cannot add it to a date
    (``timedelta(seconds=inf)`` raises OverflowError) and watch/status stop with a traceback."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(float("inf"))


def test_a_duration_no_date_can_hold_is_refused():
    """``parallel_period: 9999999999d`` is accepted today and makes ``verdict.decide`` raise
    OverflowError; it should be refused where it is read, with the field named."""
    with pytest.raises(ValueError):
        parse_duration("9999999999d")


# --------------------------------------------------------------------------- shares


@pytest.mark.parametrize(("value", "share"), [
    ("0%", 0.0), (0, 0.0), ("100%", 1.0), (1, 1.0), ("1", 1.0), ("95 %", 0.95), (" 95% ", 0.95), ("0.5", 0.5),
    ("99.9%", 0.999),
])
def test_shares_from_0_to_100_percent(value, share):
    assert parse_share(value) == pytest.approx(share)


@pytest.mark.parametrize("value", ["100.1%", "1.0001", 2, "-0.01", "-1%", "%", "", "nan", "inf", float("nan"), True, None])
def test_a_share_outside_0_to_100_percent_is_refused(value):
    with pytest.raises(ValueError) as info:
        parse_share(value)
    assert str(info.value) == f"{show(value)} {SHARE_HINT}"


def test_a_bare_50_is_not_taken_as_50_percent():
    """``threshold: 95`` is a likely slip for 95%: refused, not read as 9500% or silently capped."""
    with pytest.raises(ValueError, match=r"^'95' is not a share"):
        parse_share("95")


# --------------------------------------------------------------------------- quorum


@pytest.mark.parametrize(("value", "parsed"), [
    ("3", (3.0, True)), (3, (3.0, True)), (" 4 ", (4.0, True)), ("1", (1.0, True)),
    ("50%", (0.5, False)), (0.5, (0.5, False)), (1.0, (1.0, False)), ("100%", (1.0, False)),
])
def test_quorum_is_a_count_or_a_share(value, parsed):
    assert parse_quorum(value) == parsed


@pytest.mark.parametrize("value", ["0", 0])
def test_a_quorum_of_no_resolver_is_refused(value):
    with pytest.raises(ValueError) as info:
        parse_quorum(value)
    assert str(info.value) == f"{show(value)} must be at least 1 (or a share such as 50%)"


@pytest.mark.parametrize("value", ["-1", True, "150%", "many", None])
def test_a_quorum_that_is_neither_is_refused(value):
    with pytest.raises(ValueError) as info:
        parse_quorum(value)
    assert str(info.value) == f"{show(value)} {QUORUM_HINT}"


# --------------------------------------------------------------------------- ${ENV}


def test_a_variable_used_many_times_in_one_value_is_replaced_everywhere():
    assert substitute_env("${IP}/${IP},${IP}", {"IP": "203.0.113.10"}) == "203.0.113.10/203.0.113.10,203.0.113.10"


def test_an_unset_variable_raises_with_its_name():
    with pytest.raises(KeyError) as info:
        substitute_env("${SET}:${UNSET}", {"SET": "x"})
    assert info.value.args == ("UNSET",)


def test_only_braced_valid_names_are_variables():
    text = "$IP ${1IP} ${} ${IP-x} $${IP}"
    assert substitute_env(text, {"IP": "v"}) == "$IP ${1IP} ${} ${IP-x} $v"


def test_an_empty_value_is_a_value():
    assert substitute_env("a${E}b", {"E": ""}) == "ab"


def test_a_value_is_not_substituted_again():
    """A secret that happens to contain ``${...}`` is used as it is, never expanded."""
    assert substitute_env("${TOKEN}", {"TOKEN": "${OTHER}", "OTHER": "leak"}) == "${OTHER}"


def test_tree_reports_every_unset_place_with_its_path_and_leaves_it_as_written():
    settings = {"auth": {"token": "${TOKEN}", "user": "u-${USER}"}, "hosts": ["${HOST}", 5, None, True, "${HOST}:53"]}
    result, missing = substitute_tree(settings, {"USER": "me"}, "provider")
    assert result == {"auth": {"token": "${TOKEN}", "user": "u-me"}, "hosts": ["${HOST}", 5, None, True, "${HOST}:53"]}
    assert missing == [("provider.auth.token", "TOKEN"), ("provider.hosts[0]", "HOST"), ("provider.hosts[4]", "HOST")]


def test_tree_without_a_root_path_names_keys_alone():
    _, missing = substitute_tree({"a": "${X}", "b": ["${X}"]}, {})
    assert missing == [("a", "X"), ("b[0]", "X")]


def test_tree_leaves_the_input_untouched():
    settings = {"a": ["${X}"]}
    substitute_tree(settings, {"X": "1"})
    assert settings == {"a": ["${X}"]}
