"""Choosing the executor of `merkl run` from --executor/--jobs/--scheduler and merkl.toml."""

from __future__ import annotations

import pytest

from merkl.errors import ConfigError, UsageError
from merkl.executors.dask import DaskExecutor
from merkl.executors.local import LocalExecutor
from merkl.executors.options import executor_for_run
from merkl.executors.pool import ProcessesExecutor, ThreadsExecutor


def test_nothing_given_is_in_process():
    assert isinstance(executor_for_run(None, None, None), LocalExecutor)
    assert isinstance(executor_for_run(None, 1, None), LocalExecutor)


def test_jobs_alone_means_worker_processes():
    executor = executor_for_run(None, 3, None)
    assert isinstance(executor, ProcessesExecutor)
    assert executor.jobs == 3


def test_an_explicit_executor_gets_the_jobs():
    executor = executor_for_run("threads", 5, None)
    assert isinstance(executor, ThreadsExecutor)
    assert executor.jobs == 5


def test_a_scheduler_means_dask():
    executor = executor_for_run(None, None, "tcp://10.0.0.1:8786")
    assert isinstance(executor, DaskExecutor)
    assert executor.scheduler == "tcp://10.0.0.1:8786"
    assert executor.jobs is None


def test_the_config_gives_defaults_and_options_win():
    config = {"run": {"executor": "threads", "jobs": 2}}
    configured = executor_for_run(None, None, None, config)
    assert isinstance(configured, ThreadsExecutor)
    assert configured.jobs == 2
    overridden = executor_for_run("processes", 4, None, config)
    assert isinstance(overridden, ProcessesExecutor)
    assert overridden.jobs == 4


def test_a_configured_scheduler_applies_to_dask_runs_only():
    config = {"run": {"executor": "dask", "scheduler": "tcp://h:1"}}
    assert executor_for_run(None, None, None, config).scheduler == "tcp://h:1"
    assert isinstance(executor_for_run("threads", None, None, config), ThreadsExecutor)


def test_a_scheduler_option_overrides_a_configured_executor():
    config = {"run": {"executor": "processes"}}
    assert isinstance(executor_for_run(None, None, "tcp://h:1", config), DaskExecutor)


@pytest.mark.parametrize(
    ("executor", "jobs", "scheduler", "message"),
    [
        (None, 0, None, r"--jobs must be a whole number >= 1, got 0"),
        ("processes", -2, None, r"--jobs must be a whole number >= 1, got -2"),
        ("gpu", None, None, r"unknown executor 'gpu'; choose one of dask, local, processes"),
        ("local", 4, None, r"--executor local runs one task at a time.*drop --jobs 4"),
        ("threads", None, "tcp://h:1", r"--scheduler 'tcp://h:1' needs --executor dask"),
    ],
)
def test_options_that_do_not_fit_are_usage_errors(executor, jobs, scheduler, message):
    with pytest.raises(UsageError, match=message) as info:
        executor_for_run(executor, jobs, scheduler)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"run": "fast"}, r"\[run\] must be a table, got 'fast'"),
        ({"run": {"jobs": "4"}}, r"\[run\] jobs must be a whole number, got '4'"),
        ({"run": {"jobs": True}}, r"\[run\] jobs must be a whole number, got True"),
        ({"run": {"executor": 3}}, r"\[run\] executor must be a string, got 3"),
    ],
)
def test_a_bad_run_table_names_the_key(config, message):
    with pytest.raises(ConfigError, match=message):
        executor_for_run(None, None, None, config)


def test_a_worker_remote_goes_to_dask_from_the_option_or_the_config():
    executor = executor_for_run(None, None, "tcp://10.0.0.1:8786", worker_remote="store")
    assert isinstance(executor, DaskExecutor)
    assert executor.worker_remote == "store"
    config = {"run": {"scheduler": "tcp://10.0.0.1:8786", "worker_remote": "shared"}}
    configured = executor_for_run(None, None, None, config)
    assert isinstance(configured, DaskExecutor)
    assert configured.worker_remote == "shared"
    assert executor_for_run(None, None, None, config, worker_remote="other").worker_remote == (
        "other"
    )
    assert executor_for_run("dask", 2, None).worker_remote is None  # today's behaviour


def test_a_worker_remote_without_dask_is_a_usage_error():
    with pytest.raises(UsageError, match=r"--worker-remote 'store' needs --executor dask") as err:
        executor_for_run("processes", 2, None, worker_remote="store")
    assert err.value.exit_code == 2
    # A configured one only applies to dask runs.
    local = executor_for_run(None, None, None, {"run": {"worker_remote": "shared"}})
    assert isinstance(local, LocalExecutor)


def test_a_worker_remote_in_the_config_must_be_a_name():
    with pytest.raises(ConfigError, match=r"\[run\] worker_remote must be a remote's name"):
        executor_for_run(None, None, None, {"run": {"worker_remote": 3}})
