"""Config values read the way Meteor's mapstructure decoding reads them."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from merkl.catalog.config_types import (
    GoDuration,
    WeakStr,
    format_go_duration,
    parse_go_duration,
)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("10s", 10_000_000_000),
        ("300ms", 300_000_000),
        ("1m30s", 90_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("2us", 2_000),
        ("2µs", 2_000),
        ("2μs", 2_000),
        ("7ns", 7),
        ("0", 0),
        ("-1s", -1_000_000_000),
        ("+2m", 120_000_000_000),
        ("1h2m3s4ms", 3_723_004_000_000),
    ],
)
def test_parse_go_duration(text, nanos):
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1.5.5s", "10 s", "ten seconds", "-", "."])
def test_parse_go_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_go_duration(text)


def test_format_go_duration():
    assert [format_go_duration(n) for n in (10**10, 1_500_000_000, 250_000_000, 900)] == [
        "10s",
        "1.5s",
        "250ms",
        "900ns",
    ]


class _Config(BaseModel):
    timeout: GoDuration = 0
    label: WeakStr = ""


def test_weak_typing_of_config_values():
    assert _Config(timeout="2s").timeout == 2_000_000_000
    assert _Config(timeout=1500).timeout == 1500  # a bare number is nanoseconds
    assert _Config(label=8080).label == "8080"
    assert _Config(label=True).label == "true"
    with pytest.raises(ValidationError):
        _Config(timeout="2 seconds")
    with pytest.raises(ValidationError):
        _Config(label=[1])
