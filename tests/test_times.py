"""cutover.times: the instants and distances an operator reads in every output.

A round's time is stored to the millisecond and read back by ``status``, so a precise
time must survive ``parse_iso`` to the millisecond and name the same second that
``iso`` names; durations and shares are shown at their limits (0, just under a unit, a
share just short of 100%).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from cutover.times import duration, iso, iso_precise, parse_iso, percent, span, when

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
#: Moments from 1970 to 2100, at sub-millisecond resolution.
MOMENTS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False, allow_infinity=False)


# --------------------------------------------------------------------------- iso


def test_iso_is_utc_to_the_second_and_none_stays_none():
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(T0.timestamp() + 59.999) == "2024-05-01T12:00:59Z"  # never a second later than it was
    assert iso(None) is None and iso_precise(None) is None


def test_iso_takes_naive_datetimes_as_utc_and_converts_aware_ones():
    assert iso(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00Z"
    assert iso(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00Z"
    assert iso_precise(datetime(2024, 5, 1, 9, 0, 0, 250000, tzinfo=timezone(timedelta(hours=-3)))) == "2024-05-01T12:00:00.250Z"


def test_iso_precise_keeps_the_milliseconds():
    assert iso_precise(T0.timestamp() + 0.123456) == "2024-05-01T12:00:00.123Z"
    assert iso_precise(T0.timestamp()) == "2024-05-01T12:00:00.000Z"
    assert iso_precise(T0 + timedelta(microseconds=7000)) == "2024-05-01T12:00:00.007Z"


@given(MOMENTS)
def test_iso_precise_round_trips_through_parse_iso_to_the_millisecond(moment):
    text = iso_precise(moment)
    back = parse_iso(text)
    assert back.tzinfo is not None and back.utcoffset() == timedelta(0)
    assert -1e-6 <= moment - back.timestamp() < 0.001  # down to the millisecond, never later than it was
    assert iso_precise(back) == text  # a stored time read back and stored again does not drift


def test_a_precise_time_names_the_same_second_as_iso():
    """``status`` re-judges a stored round from its millisecond times and shows them with
    ``iso``; ``watch`` showed the same moments with ``iso`` of the full-precision time. In the
    last half millisecond of a second ``iso_precise`` rounds up into the next second
    (``12:00:00.9996`` is stored as ``12:00:01.000``), so the two name different seconds."""
    moment = T0.timestamp() + 0.9996
    assert iso(parse_iso(iso_precise(moment))) == iso(moment) == "2024-05-01T12:00:00Z"


def test_parse_iso_reads_every_form_the_tool_writes():
    assert parse_iso("2024-05-01T12:00:00Z") == T0
    assert parse_iso("2024-05-01T12:00:00.123Z") == T0 + timedelta(milliseconds=123)
    assert parse_iso("2024-05-01T12:00:00") == T0  # naive: UTC
    assert parse_iso("2024-05-01T14:00:00+02:00") == T0
    assert parse_iso(iso(T0.timestamp())).timestamp() == T0.timestamp()


def test_parse_iso_refuses_what_is_not_a_time():
    with pytest.raises(ValueError):
        parse_iso("yesterday")


# --------------------------------------------------------------------------- durations and distances


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (-5, "0s"), (0.4, "0s"), (59.4, "59s"), (60, "1m"), (90, "1m30s"), (3599, "59m59s"), (3600, "1h"),
    (3601, "1h1s"), (86399, "23h59m"), (86400, "1d"), (90061, "1d1h"), (604800, "7d"), (1209600, "14d"),
])
def test_duration_as_an_operator_writes_it_two_units_at_most(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "in 0s"), (119, "in 119s"), (120, "in 2m"), (7199, "in 119m"), (7200, "in 2.0h"), (172799, "in 48.0h"),
    (172800, "in 2.0d"), (-90, "90s ago"), (-5 * 3600, "5.0h ago"), (-8 * 86400, "8.0d ago"),
])
def test_span_switches_unit_at_two_of_the_next(seconds, text):
    assert span(seconds) == text


def test_when_gives_the_time_and_how_far_it_is():
    ts = T0.timestamp()
    assert when(ts, ts - 300) == "2024-05-01T12:00:00Z (in 5m)"
    assert when(ts, ts + 3 * 86400) == "2024-05-01T12:00:00Z (3.0d ago)"
    assert when(None) == "unknown"


# --------------------------------------------------------------------------- shares


@pytest.mark.parametrize(("share", "text"), [
    (0.0, "0%"), (0.5, "50%"), (0.955, "95.5%"), (1 / 3, "33.3%"), (2 / 3, "66.7%"), (0.999, "99.9%"), (1.0, "100%"),
    (None, "-"),
])
def test_percent_drops_a_needless_decimal(share, text):
    assert percent(share) == text


def test_a_share_short_of_100_percent_never_reads_100_percent():
    """2499 of 2500 resolvers new is below a 100% threshold; the verdict's reason must not
    say "below 100% new: ... (100%; 1 old)". ``percent`` rounds 99.96 to "100.0" -> "100%"."""
    assert percent(2499 / 2500) != "100%"
