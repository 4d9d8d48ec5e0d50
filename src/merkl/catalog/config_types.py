"""Config value types that read recipes the way Meteor's Go config decoding does.

`GoDuration` takes Go duration strings (`300ms`, `10s`, `1m30s`, `1h`); `WeakStr` takes any
scalar and spells it as Go would (`true`, `3`), like mapstructure's weakly typed input.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNIT_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_TERM = re.compile(r"(\d*)(?:\.(\d*))?([a-zµμ]+)")
_MAX_NANOS = 2**63 - 1


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration string, as `time.ParseDuration` reads it.

    Raises:
        ValueError: not a Go duration; the message shows the accepted forms.
    """
    invalid = ValueError(
        f"invalid duration {text!r}: expected a Go duration such as '300ms', '10s' or '1m30s' "
        "(units ns, us, ms, s, m, h)"
    )
    rest = text
    sign = 1
    if rest[:1] in ("-", "+"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    position = 0
    while position < len(rest):
        match = _TERM.match(rest, position)
        if match is None or not (match.group(1) or match.group(2)):
            raise invalid
        whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
        if unit not in _UNIT_NANOS:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}") from None
        scale = _UNIT_NANOS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        position = match.end()
    if total > _MAX_NANOS:
        raise ValueError(f"invalid duration {text!r}: longer than Go's maximum (about 292 years)")
    return sign * total


def format_go_duration(nanos: int) -> str:
    """A short Go-style spelling of `nanos` for messages (`10s`, `1.5s`, `250ms`)."""
    for unit in ("h", "m", "s", "ms", "us"):
        scale = _UNIT_NANOS[unit]
        if abs(nanos) >= scale:
            return f"{nanos / scale:g}{unit}"
    return f"{nanos}ns"


def _to_nanos(value: Any) -> Any:
    # mapstructure's weak typing: a string goes through ParseDuration, a number is nanoseconds.
    if isinstance(value, str):
        return parse_go_duration(value.strip())
    if isinstance(value, bool):
        return value  # let pydantic reject it as an int
    if isinstance(value, float):
        return int(value)
    return value


GoDuration = Annotated[int, BeforeValidator(_to_nanos)]
"""A config field holding a duration in nanoseconds, written as a Go duration string."""


def _to_go_string(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return value


WeakStr = Annotated[str, BeforeValidator(_to_go_string)]
"""A string config value that also accepts numbers and booleans (`port: 8080`)."""
