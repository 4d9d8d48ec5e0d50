"""Dask distributed on a real LocalCluster of worker processes (one per module: start-up is
the slow part). Values and cache entries must match the in-process executor exactly."""

from __future__ import annotations

import ast
import contextlib
import gc
import logging
import os
import socket

import dask
import numpy as np
import pytest

import merkl
from merkl.cache import clear_memory_cache
from merkl.errors import EvaluationError, ExecutorError, SerializationError, UsageError
from merkl.evaluation import evaluate_value
from merkl.executors import dask as dask_executor
from merkl.executors.dask import DaskExecutor
from merkl.executors.local_cluster import start_method
from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.executors.conftest import object_files, output_rows, run_counts
from tests.executors.test_pool import DIAMOND, FAILING, RENDEZVOUS
from tests.helpers import import_fresh, run_cli, write_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    # A worker that dies fails its task at once (Dask would retry it on three more workers);
    # forkserver workers, as merkl starts them, stop in a fraction of a second.
    config = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.worker.multiprocessing-method": start_method(),
    }
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=None,
            silence_logs=logging.CRITICAL,
        )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


# Everything an executor could get wrong: tuples (JSON turns them into lists), sibling
# outputs, a diamond, a numpy output, a memory-only output and a file input.
EQUIVALENCE = """
import numpy as np
from merkl import CachePolicy, NumpySerializer, read_file, task

@task
def words(data):
    return data.decode().split()

@task(outs=2)
def halves(items):
    return items[::2], tuple(items[1::2])

@task
def stats(items):
    return {"n": len(items), "first": items[0], "kind": type(items).__name__}

@task(serializers={0: NumpySerializer()})
def vector(n):
    return np.arange(n, dtype="float64") ** 2

@task(cache_policy=CachePolicy.MEMORY)
def scaled(v, k):
    return float(v.sum()) * k

@task
def report(*parts):
    return list(parts)

def pipeline(n):
    even, odd = halves(words(read_file("words.txt")))
    vec = vector(n)
    return report(stats(even), stats(odd), odd, scaled(vec, 2)), vec
"""


def _run_in_fresh_repo(root, executor):
    """The EQUIVALENCE pipeline in a new repo under `root`: its values and its cache."""
    root.mkdir()
    clear_memory_cache()  # the memory-only output must be computed by each executor
    repo = Repo.init(root)
    write_module(root, "equivalence_pipeline", EQUIVALENCE)
    (root / "words.txt").write_text("alpha beta gamma delta epsilon")
    module = import_fresh(root, "equivalence_pipeline")
    with use_session(Session(repo)), contextlib.chdir(root):
        report, vec = evaluate_value(module.pipeline(5), executor=executor)
    return (report, vec.tolist()), output_rows(repo), object_files(repo), run_counts(repo)


def test_every_executor_gives_the_same_values_and_cache_entries(tmp_path, scheduler):
    runs = {
        name: _run_in_fresh_repo(tmp_path / name, executor)
        for name, executor in [
            ("local", "local"),
            ("threads", "threads"),
            ("processes", merkl.executors.get_executor("processes", jobs=2)),
            ("dask", DaskExecutor(scheduler=scheduler)),
        ]
    }
    values, rows, _, counts = runs["local"]
    assert values == (
        [
            {"n": 3, "first": "alpha", "kind": "list"},
            {"n": 2, "first": "beta", "kind": "tuple"},  # JSON gives back exactly a tuple
            ("beta", "delta"),
            60.0,
        ],
        [0.0, 1.0, 4.0, 9.0, 16.0],
    )
    assert len(rows) == 7  # the memory-only output is not in the index
    assert set(counts.values()) == {1}
    for name, run in runs.items():
        assert run == runs["local"], name


def test_cached_outputs_are_loaded_not_resubmitted(pipelines, repo, scheduler):
    module = pipelines.make(DIAMOND)
    executor = DaskExecutor(scheduler=scheduler)
    first = evaluate_value(module.pipeline(4), executor=executor)
    assert len(pipelines.calls()) == 4 + 2
    pipelines.clear_calls()
    assert evaluate_value(module.pipeline(4), executor=executor) == first
    assert pipelines.calls() == []
    # One more square: only it and what depends on it run; cached squares are sent as values.
    evaluate_value(module.pipeline(5), executor=executor)
    assert sorted(pipelines.calls()) == ["combine", "split", "square4"]
    assert set(run_counts(repo).values()) == {1}


def test_the_same_call_written_twice_runs_and_is_stored_once(pipelines, repo, scheduler):
    module = pipelines.make(DIAMOND)
    squares = [module.square(3), module.square(3)]
    executor = DaskExecutor(scheduler=scheduler)
    values = merkl.evaluate([*squares, module.combine([], [], squares)], executor=executor)
    assert values == [9, 9, {"evens": [], "odds": [], "total": 18}]
    assert pipelines.calls() == ["square3", "combine"]
    assert set(run_counts(repo).values()) == {1}


def test_independent_calls_run_on_different_workers(pipelines, scheduler):
    module = pipelines.make(RENDEZVOUS)
    values = merkl.evaluate(
        [module.meet("a", "b"), module.meet("b", "a")], executor=DaskExecutor(scheduler=scheduler)
    )
    assert values == ["a", "b"]


def test_a_failure_names_the_task_keeps_finished_outputs_and_a_rerun_resumes(
    pipelines, repo, scheduler
):
    module = pipelines.make(FAILING)
    executor = DaskExecutor(scheduler=scheduler)
    with pytest.raises(module.PipelineError, match="cannot combine 1 and 2") as info:
        evaluate_value(module.pipeline(), executor=executor)
    assert info.value.__notes__[0].startswith(f"in merkl task {module.__name__}.fragile [")
    assert "after" not in pipelines.calls()
    (pipelines.root / "fixed").touch()
    pipelines.clear_calls()
    assert evaluate_value(module.pipeline(), executor=executor) == (3, 3)
    assert "ok1" not in pipelines.calls()
    assert "ok2" not in pipelines.calls()
    assert set(run_counts(repo).values()) == {1}


def test_a_wrong_number_of_outputs_fails_the_run(pipelines, scheduler):
    module = pipelines.make("@task(outs=2)\ndef two():\n    return 1\n")
    with pytest.raises(EvaluationError, match="declares 2 outputs but returned one int"):
        merkl.evaluate([module.two()[0]], executor=DaskExecutor(scheduler=scheduler))


def test_an_output_the_serializer_refuses_fails_the_run_naming_the_task(pipelines, scheduler):
    module = pipelines.make("@task\ndef with_object(x):\n    return {'x': object()}\n")
    with pytest.raises(SerializationError) as info:
        merkl.evaluate([module.with_object(1)], executor=DaskExecutor(scheduler=scheduler))
    assert str(info.value).startswith(
        f"task {module.__name__}.with_object output 0: cannot store value['x'] "
        f"(builtins.object) as JSON"
    )


def test_a_missing_argument_fails_before_anything_is_submitted(pipelines, scheduler):
    module = pipelines.make("@task\ndef echo(x):\n    _log('echo')\n    return x\n")
    with pytest.raises(EvaluationError, match="'size' was not given"):
        merkl.evaluate(
            [module.echo(1), module.echo(merkl.MissingArgument("size"))],
            executor=DaskExecutor(scheduler=scheduler),
        )
    assert pipelines.calls() == []


def test_a_long_lived_worker_runs_the_edited_code(pipelines, scheduler):
    name = f"{pipelines.prefix}_edited"
    executor = DaskExecutor(scheduler=scheduler)
    module = pipelines.make("@task\ndef answer(x):\n    return x\n", name)
    assert module.answer(1).get(executor=executor) == 1
    module = pipelines.make("@task\ndef answer(x):\n    return [x, 'edited']\n", name)
    assert module.answer(1).get(executor=executor) == [1, "edited"]


def test_numpy_values_travel_between_workers(pipelines, scheduler):
    module = pipelines.make(
        "import numpy as np\nfrom merkl import NumpySerializer\n"
        "@task(serializers={0: NumpySerializer()})\ndef ones(n):\n    return np.ones(n)\n"
        "@task\ndef total(a):\n    return float(a.sum())\n"
    )
    executor = DaskExecutor(scheduler=scheduler)
    assert module.total(module.ones(1000)).get(executor=executor) == 1000.0
    assert np.array_equal(module.ones(3).get(executor=executor), np.ones(3))


def test_the_cli_runs_on_a_scheduler(pipelines, scheduler):
    module = pipelines.make(DIAMOND)
    result = run_cli("run", "--scheduler", scheduler, f"{module.__name__}.pipeline", "6")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == (
        "({'evens': (0, 4, 16), 'odds': [1, 9, 25], 'total': 55}, (0, 4, 16))"
    )
    failing = pipelines.make(FAILING)
    result = run_cli("run", "--scheduler", scheduler, f"{failing.__name__}.pipeline")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: in merkl task {failing.__name__}.fragile [")
    assert result.err.splitlines()[0].endswith("PipelineError: cannot combine 1 and 2")


# Each call returns its worker's process id, and runs only once the other call has started:
# so both workers of a 2-worker cluster run one (a lone worker would time out).
WORKER_PIDS = (
    RENDEZVOUS
    + """
@task
def pid(me, other, fail=False):
    rendezvous(me, other)
    (LOG.parent / f"{me}.pid").write_text(str(os.getpid()))
    if fail:
        raise RuntimeError(f"{me} failed")
    return os.getpid()

@task
def env():
    return os.environ['MERKL_TEST_EXECUTOR_VARIABLE']

def pipeline():
    return pid('a', 'b'), pid('b', 'a'), env()

def failing():
    return pid('a', 'b', fail=True), pid('b', 'a')
"""
)


def _assert_gone(pids):
    """No process with these ids is left (an exited child the forkserver has not reaped yet
    would show as a zombie)."""
    import psutil

    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"worker {pid} lives"


def test_without_a_scheduler_a_local_cluster_is_started_and_stopped(pipelines, monkeypatch):
    monkeypatch.setenv("MERKL_TEST_EXECUTOR_VARIABLE", "seen by workers")
    module = pipelines.make(WORKER_PIDS)
    result = run_cli("run", "--executor", "dask", "-j", "2", f"{module.__name__}.pipeline")
    assert result.code == 0, result.err
    first, second, env = ast.literal_eval(result.out.splitlines()[-1])
    assert env == "seen by workers"
    assert len({first, second, os.getpid()}) == 3  # two worker processes, not this one
    _assert_gone([first, second])
    # The collector is paused and frozen only around imports and in the worker forkserver;
    # the quieter config is the local cluster's own, not this process's.
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_a_failure_on_a_local_cluster_stops_its_workers_too(pipelines):
    module = pipelines.make(WORKER_PIDS)
    result = run_cli("run", "--executor", "dask", "-j", "2", f"{module.__name__}.failing")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: in merkl task {module.__name__}.pid [")
    assert "RuntimeError: a failed" in result.err.splitlines()[0]
    pids = [int((pipelines.root / f"{me}.pid").read_text()) for me in "ab"]
    assert len(set(pids)) == 2
    _assert_gone(pids)


def test_an_unreachable_scheduler_is_one_clear_error(pipelines, monkeypatch):
    monkeypatch.setattr(dask_executor, "_CONNECT_TIMEOUT", 1)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    module = pipelines.make(DIAMOND)
    address = f"tcp://127.0.0.1:{port}"
    result = run_cli("run", "--scheduler", address, f"{module.__name__}.pipeline", "2")
    assert result.code == 1
    assert result.err.startswith(f"merkl: error: cannot connect to the Dask scheduler {address!r}")
    assert "dask scheduler" in result.err
    assert pipelines.calls() == []


def test_a_bad_scheduler_value_is_refused():
    with pytest.raises(UsageError, match=r"scheduler must be an address like"):
        DaskExecutor(scheduler="")


def test_a_worker_that_dies_is_an_executor_error_naming_the_task(pipelines, scheduler):
    module = pipelines.make("@task\ndef crash():\n    os._exit(3)\n")
    with pytest.raises(ExecutorError, match=r"Dask lost the workers running task .*crash"):
        merkl.evaluate([module.crash()], executor=DaskExecutor(scheduler=scheduler))


def test_a_task_defined_in_a_function_is_refused_before_connecting(repo):
    @merkl.task
    def local_task(x):
        return x

    with pytest.raises(ExecutorError, match="inside a function"):
        merkl.evaluate([local_task(1)], executor=DaskExecutor(scheduler="tcp://127.0.0.1:9"))
