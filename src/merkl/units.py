"""Human-readable quantities, one spelling everywhere merkl prints them."""

from __future__ import annotations

from merkl.errors import UsageError

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: int) -> str:
    """`27 B`, `1.5 KiB`, `3.2 GiB` (binary units)."""
    power = 0
    while size >= 1024 ** (power + 1) and power < len(_UNITS) - 1:
        power += 1
    return f"{size} B" if power == 0 else f"{size / 1024**power:.1f} {_UNITS[power]}"


_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str, what: str) -> float:
    """Seconds in `30s`, `15m`, `24h`, `7d`, `2w` or a bare number of seconds.

    Raises:
        UsageError: `text` is not a duration (the message names `what`).
    """
    raw = text.strip().lower()
    unit = _SECONDS.get(raw[-1:], 0.0)
    number = raw[:-1] if unit else raw
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UsageError(
            f"{what} must be a duration such as 30m, 24h or 7d, got {text!r}", exit_code=2
        )
    return value


_BYTES = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_BYTES |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """Bytes in `500MB`, `50GB`, `2GiB` or a bare number of bytes.

    Raises:
        UsageError: `text` is not a size (the message names `what`).
    """
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("kmgtib")
    unit = _BYTES.get(raw[len(number) :])
    try:
        value = float(number) * unit if unit is not None else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise UsageError(f"{what} must be a size such as 500MB or 50GB, got {text!r}", exit_code=2)
    return int(value)
