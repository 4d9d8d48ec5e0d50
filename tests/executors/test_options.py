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
