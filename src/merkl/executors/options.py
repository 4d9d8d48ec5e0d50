"""`merkl run --executor/--jobs/--scheduler/--worker-remote` and the `[run]` table of merkl.toml
→ an executor.

Command-line options win over the config; the config's `[run]` table may set `executor`,
`jobs`, `scheduler` and `worker_remote` as project defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from merkl.errors import ConfigError, UsageError
from merkl.executors import KNOWN_EXECUTORS, get_executor
from merkl.executors.base import Executor

_CONFIG_KEYS = {
    "executor": (str, "a string"),
    "jobs": (int, "a whole number"),
    "scheduler": (str, "a string"),
    "worker_remote": (str, "a remote's name"),
}


def executor_for_run(
    executor: str | None,
    jobs: int | None,
    scheduler: str | None,
    config: Mapping[str, Any] | None = None,
    setting_file: Callable[[str, str], Path] | None = None,
    worker_remote: str | None = None,
) -> Executor:
    """The executor `merkl run` uses; a UsageError (exit 2) for options that do not fit.

    Args:
        executor: `local`, `threads`, `processes` or `dask`; None: from config, else `local`
            (or `processes` with --jobs N > 1, `dask` with --scheduler).
        jobs: number of workers (threads, processes, local Dask workers).
        scheduler: a Dask scheduler address; implies `dask`.
        config: the repository's config (its `[run]` table is read).
        setting_file: `Repo.setting_file`, to name the file at fault in errors.
        worker_remote: a configured remote Dask workers store outputs on themselves (dask
            runs only; the config's is ignored by other executors).
    """
    defaults = _read_config(config or {}, setting_file)
    cli_scheduler = scheduler
    executor = executor or ("dask" if cli_scheduler else defaults.get("executor"))
    jobs = jobs if jobs is not None else defaults.get("jobs")
    scheduler = cli_scheduler or defaults.get("scheduler")
    if jobs is not None and (isinstance(jobs, bool) or jobs < 1):
        raise UsageError(f"--jobs must be a whole number >= 1, got {jobs!r}", exit_code=2)
    if executor is None:
        executor = "dask" if scheduler else ("processes" if jobs and jobs > 1 else "local")
    if executor not in KNOWN_EXECUTORS:
        raise UsageError(
            f"unknown executor {executor!r}; choose one of {', '.join(sorted(KNOWN_EXECUTORS))}",
            exit_code=2,
        )
    if scheduler and executor != "dask":
        if cli_scheduler:
            raise UsageError(
                f"--scheduler {scheduler!r} needs --executor dask (got --executor {executor})",
                exit_code=2,
            )
        scheduler = None  # the configured scheduler is for dask runs only
    cli_worker_remote = worker_remote
    worker_remote = cli_worker_remote or defaults.get("worker_remote")
    if cli_worker_remote and executor != "dask":
        raise UsageError(
            f"--worker-remote {cli_worker_remote!r} needs --executor dask or --scheduler "
            f"(got --executor {executor})",
            exit_code=2,
        )
    if executor == "local":
        if jobs is not None and jobs > 1:
            raise UsageError(
                f"--executor local runs one task at a time in this process; drop --jobs {jobs} "
                f"or choose --executor threads, processes or dask",
                exit_code=2,
            )
        return get_executor("local")
    options: dict[str, Any] = {"jobs": jobs}
    if executor == "dask":
        options["scheduler"] = scheduler
        options["worker_remote"] = worker_remote
    return get_executor(executor, **options)


def _read_config(
    config: Mapping[str, Any], setting_file: Callable[[str, str], Path] | None
) -> dict[str, Any]:
    def where(key: str) -> str:
        return str(setting_file("run", key)) if setting_file else "merkl.toml"

    table = config.get("run", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where('')}: [run] must be a table, got {table!r}", key="run")
    values: dict[str, Any] = {}
    for key, (expected, description) in _CONFIG_KEYS.items():
        if key not in table:
            continue
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise ConfigError(
                f"{where(key)}: [run] {key} must be {description}, got {value!r}",
                key=f"run.{key}",
            )
        values[key] = value
    return values
