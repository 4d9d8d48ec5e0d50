"""Whether OpenLineage is configured, and merkl's own `[lineage]` settings.

OpenLineage is configured the client's way (`OPENLINEAGE_URL`, `OPENLINEAGE_CONFIG`,
`openlineage.yml` in the working directory or `~/.openlineage/`, `OPENLINEAGE__TRANSPORT__*`
variables; `OPENLINEAGE_DISABLED=true` wins). This module only looks for those, so that nothing
of the client is imported when nothing is configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.errors import ConfigError

if TYPE_CHECKING:  # `import merkl` imports this module: the repository code comes later
    from merkl.repo import Repo

DEFAULT_TIMEOUT = 5.0  # seconds; the HTTP transport's own default


def openlineage_source() -> str | None:
    """What configures OpenLineage here (for messages), or None when nothing does."""
    env = os.environ
    if env.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OPENLINEAGE_URL"):
        return "OPENLINEAGE_URL"
    if any(key.startswith("OPENLINEAGE__TRANSPORT") for key in env):
        return "OPENLINEAGE__TRANSPORT__* variables"
    candidates = [
        env.get("OPENLINEAGE_CONFIG"),
        os.path.join(os.getcwd(), "openlineage.yml"),
        os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml"),
    ]
    return next((path for path in candidates if path and os.path.isfile(path)), None)


@dataclass(frozen=True)
class LineageSettings:
    """`[lineage]` in merkl.toml: the namespace of jobs and datasets, the send timeout."""

    namespace: str
    timeout: float = DEFAULT_TIMEOUT


def lineage_settings(repo: Repo | None) -> LineageSettings:
    """The settings of `repo` (defaults outside a repository).

    Raises:
        ConfigError: a `[lineage]` value of the wrong type.
    """
    root = repo.root if repo is not None else Path.cwd()
    table = repo.config.get("lineage", {}) if repo is not None else {}
    namespace = table.get("namespace", f"merkl://{root.name}")
    timeout = table.get("timeout", DEFAULT_TIMEOUT)
    where = root / "merkl.toml"
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError(
            f"{where}: [lineage] namespace must be a non-empty string, got {namespace!r}",
            path=where,
            key="lineage.namespace",
        )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(
            f"{where}: [lineage] timeout must be a number of seconds > 0, got {timeout!r}",
            path=where,
            key="lineage.timeout",
        )
    return LineageSettings(namespace, float(timeout))
