"""Progress bars: rich on a terminal (on stderr, so stdout stays for results), none in CI or
when output is redirected. Shared by transfers (`merkl push/pull`) and executors."""

from __future__ import annotations

import os
import sys
from typing import Any


def is_interactive() -> bool:
    """True when stderr is a terminal and `CI` is not set."""
    if os.environ.get("CI", "") not in ("", "0", "false"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def make_bar(unit: str) -> Any:
    """A transient rich `Progress`: description, bar, `done/total <unit>`, elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
