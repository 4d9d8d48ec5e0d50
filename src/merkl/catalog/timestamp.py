"""Timestamps as Meteor emits them: protojson RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits.

Parsing follows Go's strict RFC 3339 reading of JSON timestamps (what Merlin's responses go
through in Meteor): `T` and `Z` upper case, a period before the fraction, any number of fraction
digits (beyond nine they are truncated, not rounded), `Z` or a `±hh:mm` offset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's zero `time.Time`, which Meteor prints for a missing timestamp."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:Z|([+-])(\d{2}):(\d{2}))"
)


class TimestampError(ValueError):
    """A string that is not an RFC 3339 timestamp (caught by decoders, never escapes them)."""


def format_timestamp(moment: datetime | None, nanos: int | None = None) -> str:
    """Format `moment` the way protojson prints a `google.protobuf.Timestamp`.

    Args:
        moment: an aware datetime (converted to UTC) or a naive one taken as UTC; None gives
            `ZERO_TIME`, which is what Meteor prints for a missing timestamp.
        nanos: the sub-second part in nanoseconds, when it is finer than `moment` can hold;
            defaults to `moment.microsecond * 1000`.
    """
    if moment is None:
        return ZERO_TIME
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    if nanos is None:
        nanos = moment.microsecond * 1000
    m = moment
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f"{_fraction(nanos)}Z"
    )


def _fraction(nanos: int) -> str:
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def normalize_timestamp(text: str) -> str:
    """Parse an RFC 3339 timestamp and return it formatted by `format_timestamp`.

    Raises:
        TimestampError: `text` is not a strict RFC 3339 timestamp or is out of range.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise TimestampError(f"parsing time {text!r}: not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12:
        raise TimestampError(f"parsing time {text!r}: month out of range")
    if not 1 <= day <= _days_in_month(year, month):
        raise TimestampError(f"parsing time {text!r}: day is out of range for month")
    if hour > 23 or minute > 59 or second > 59:
        raise TimestampError(f"parsing time {text!r}: time of day out of range")
    digits = (match.group(7) or "")[:9]
    nanos = int(digits.ljust(9, "0")) if digits else 0
    sign = match.group(8)
    if sign is None:  # already UTC: the date and time stay as written (the hot path)
        return text[:19] + _fraction(nanos) + "Z"
    off_hours, off_minutes = int(match.group(9)), int(match.group(10))
    if off_hours > 23 or off_minutes > 59:
        raise TimestampError(f"parsing time {text!r}: time zone offset out of range")
    offset = timedelta(hours=off_hours, minutes=off_minutes)
    moment = datetime(year, month, day, hour, minute, second)
    try:
        moment = moment - offset if sign == "+" else moment + offset
    except OverflowError:
        raise TimestampError(f"parsing time {text!r}: year out of range") from None
    return format_timestamp(moment, nanos)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31
