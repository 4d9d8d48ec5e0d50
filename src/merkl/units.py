"""Human-readable quantities, one spelling everywhere merkl prints them."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: int) -> str:
    """`27 B`, `1.5 KiB`, `3.2 GiB` (binary units)."""
    power = 0
    while size >= 1024 ** (power + 1) and power < len(_UNITS) - 1:
        power += 1
    return f"{size} B" if power == 0 else f"{size / 1024**power:.1f} {_UNITS[power]}"
