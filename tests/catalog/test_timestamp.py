"""Timestamps as protojson prints them (spec §2.6), parsed as Go's strict RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from merkl.catalog.timestamp import (
    ZERO_TIME,
    TimestampError,
    format_timestamp,
    normalize_timestamp,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-10-28T06:11:52.148118Z", "2022-10-28T06:11:52.148118Z"),
        ("2023-01-02T03:04:34.64483Z", "2023-01-02T03:04:34.644830Z"),
        ("2023-01-02T03:04:40.000Z", "2023-01-02T03:04:40Z"),
        ("2023-01-02T03:04:40.5Z", "2023-01-02T03:04:40.500Z"),
        ("2023-01-02T03:04:40.1234Z", "2023-01-02T03:04:40.123400Z"),
        ("2023-01-02T03:04:40.1234567Z", "2023-01-02T03:04:40.123456700Z"),
        ("2023-01-02T03:04:40.123456789999Z", "2023-01-02T03:04:40.123456789Z"),  # truncated
        ("2023-01-02T03:04:40+07:00", "2023-01-01T20:04:40Z"),
        ("2023-01-01T23:30:00-01:45", "2023-01-02T01:15:00Z"),
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ("0001-01-01T00:00:00Z", ZERO_TIME),
    ],
)
def test_normalize(text, expected):
    assert normalize_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2023-01-02 03:04:40Z",
        "2023-01-02t03:04:40Z",
        "2023-01-02T03:04:40",
        "2023-01-02T03:04:40.Z",
        "2023-01-02T03:04:40,5Z",
        "2023-1-02T03:04:40Z",
        "2023-13-02T03:04:40Z",
        "2023-02-29T03:04:40Z",
        "2023-01-02T24:00:00Z",
        "2023-01-02T23:60:00Z",
        "2023-01-02T23:59:60Z",
        "2023-01-02T03:04:40+24:00",
        "2023-01-02T03:04:40+0700",
        "",
        "yesterday",
    ],
)
def test_rejects_what_go_rejects(text):
    with pytest.raises(TimestampError, match="parsing time"):
        normalize_timestamp(text)


def test_format_none_is_go_zero_time():
    assert format_timestamp(None) == "0001-01-01T00:00:00Z"


def test_format_aware_and_naive_datetimes():
    moment = datetime(2020, 5, 6, 7, 8, 9, 120000, tzinfo=timezone(timedelta(hours=-3)))
    assert format_timestamp(moment) == "2020-05-06T10:08:09.120Z"
    assert format_timestamp(datetime(999, 1, 1)) == "0999-01-01T00:00:00Z"


@given(st.datetimes(min_value=datetime(2, 1, 1), timezones=st.just(UTC)))
def test_formatting_round_trips_through_the_parser(moment):
    text = format_timestamp(moment)
    assert normalize_timestamp(text) == text
    assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment
