"""Local pools (threads, processes): same results as in-process, concurrency, failures."""

from __future__ import annotations

import pytest

import merkl
from merkl.errors import EvaluationError, ExecutorError, SerializationError, UsageError
from merkl.evaluation import evaluate_value
from merkl.executors import get_executor
from merkl.executors.pool import ProcessesExecutor, ThreadsExecutor, check_jobs
from merkl.session import use_session
from tests.executors.conftest import output_rows, run_counts

POOLS = ["threads", "processes"]

DIAMOND = """
@task
def square(x):
    _log(f"square{x}")
    return x * x

@task(outs=2)
def split(values):
    _log("split")
    return tuple(values[::2]), values[1::2]

@task
def combine(evens, odds, squares):
    _log("combine")
    return {"evens": evens, "odds": odds, "total": sum(squares)}

def pipeline(n: int):
    squares = [square(i) for i in range(n)]
    evens, odds = split(squares)
    return combine(evens, odds, squares), evens
"""

RENDEZVOUS = '''
import time

def rendezvous(me, other):
    """Returns only once `other` runs at the same time (each waits for the other's mark)."""
    (LOG.parent / f"{me}.mark").touch()
    deadline = time.monotonic() + 30
    while not (LOG.parent / f"{other}.mark").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{me} ran alone")
        time.sleep(0.01)

@task
def meet(me, other):
    rendezvous(me, other)
    return me
'''

FAILING = """
class PipelineError(Exception):
    pass

@task
def ok(x):
    _log(f"ok{x}")
    return x

@task
def fragile(a, b):
    _log("fragile")
    if not (LOG.parent / "fixed").exists():
        raise PipelineError(f"cannot combine {a} and {b}")
    return a + b

@task
def after(x):
    _log("after")
    return x

def pipeline():
    return after(fragile(ok(1), ok(2))), ok(3)
"""


@pytest.mark.parametrize("name", POOLS)
def test_a_pool_gives_the_in_process_results_and_cache_entries(pipelines, repo, name):
    module = pipelines.make(DIAMOND)
    with use_session(repo=None, use_cache=False):
        raw = evaluate_value(module.pipeline(6), executor="local")
        assert evaluate_value(module.pipeline(6), executor=name) == raw
    assert raw[1] == (0, 4, 16)
    pipelines.clear_calls()
    # Cached: dependents see values as a cache hit returns them: the same values, exactly.
    assert evaluate_value(module.pipeline(6), executor=name) == raw
    assert sorted(pipelines.calls()) == sorted(
        [f"square{i}" for i in range(6)] + ["split", "combine"]
    )
    rows, counts = output_rows(repo), run_counts(repo)
    assert len(rows) == 6 + 2 + 1
    assert set(counts.values()) == {1}  # each output stored exactly once
    # Again: everything comes from the cache; nothing runs, nothing is stored twice.
    pipelines.clear_calls()
    assert evaluate_value(module.pipeline(6), executor=name) == raw
    assert pipelines.calls() == []
    assert output_rows(repo) == rows
    assert run_counts(repo) == counts


@pytest.mark.parametrize("name", POOLS)
def test_independent_calls_run_at_the_same_time(pipelines, name):
    module = pipelines.make(RENDEZVOUS)
    values = merkl.evaluate(
        [module.meet("a", "b"), module.meet("b", "a")], executor=get_executor(name, jobs=2)
    )
    assert values == ["a", "b"]


@pytest.mark.parametrize("name", POOLS)
def test_a_failure_names_the_task_keeps_finished_outputs_and_a_rerun_resumes(
    pipelines, repo, name
):
    module = pipelines.make(FAILING)
    with pytest.raises(module.PipelineError, match="cannot combine 1 and 2") as info:
        evaluate_value(module.pipeline(), executor=name)
    assert info.value.__notes__[0].startswith(f"in merkl task {module.__name__}.fragile [")
    assert "after" not in pipelines.calls()  # nothing downstream of the failure ran
    assert {"ok1", "ok2"} <= set(pipelines.calls())
    (pipelines.root / "fixed").touch()
    pipelines.clear_calls()
    assert evaluate_value(module.pipeline(), executor=name) == (3, 3)
    assert "ok1" not in pipelines.calls()
    assert "ok2" not in pipelines.calls()
    assert {"fragile", "after"} <= set(pipelines.calls())
    assert set(run_counts(repo).values()) == {1}


def test_a_wrong_number_of_outputs_fails_the_run(pipelines):
    module = pipelines.make("@task(outs=2)\ndef two():\n    return 1\n")
    with pytest.raises(EvaluationError, match="declares 2 outputs but returned one int"):
        merkl.evaluate([module.two()[0]], executor="processes")


def test_a_dead_worker_process_is_an_executor_error(pipelines):
    module = pipelines.make("@task\ndef crash():\n    os._exit(3)\n")
    with pytest.raises(ExecutorError, match=r"worker process died while running task .*crash"):
        merkl.evaluate([module.crash()], executor="processes")


def test_processes_refuse_a_task_defined_in_a_function_before_starting(repo):
    @merkl.task
    def local_task(x):
        return x

    with pytest.raises(ExecutorError, match="inside a function"):
        merkl.evaluate([local_task(1)], executor="processes")
    assert merkl.evaluate([local_task(1)], executor="threads") == [1]


def test_a_missing_argument_fails_before_its_task_runs(pipelines):
    module = pipelines.make("@task\ndef echo(x):\n    _log('echo')\n    return x\n")
    missing = merkl.MissingArgument("size")
    with pytest.raises(EvaluationError, match="'size' was not given"):
        merkl.evaluate([module.echo(missing)], executor="threads")
    assert pipelines.calls() == []


def test_thread_bodies_see_the_callers_session(pipelines, repo):
    module = pipelines.make(
        "from merkl.session import current_session\n"
        "@task\ndef uses_cache(i):\n    return current_session().use_cache\n"
    )
    with use_session(repo=repo, use_cache=False):
        values = merkl.evaluate([module.uses_cache(i) for i in range(4)], executor="threads")
    assert values == [False] * 4


def test_placeholder_get_accepts_an_executor_name_or_instance(pipelines):
    module = pipelines.make(DIAMOND)
    assert module.square(7).get(executor="threads") == 49
    assert module.square(8).get(executor=ProcessesExecutor(jobs=1)) == 64


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2", True])
def test_bad_jobs_are_refused(jobs):
    with pytest.raises(UsageError, match=r"jobs must be a whole number >= 1, got"):
        ThreadsExecutor(jobs=jobs)


def test_jobs_default_to_the_usable_cpus():
    assert check_jobs(None, "threads") >= 1
    assert ThreadsExecutor(jobs=3).jobs == 3


@pytest.mark.parametrize("name", POOLS)
def test_the_same_call_written_twice_runs_and_is_stored_once(pipelines, repo, name):
    module = pipelines.make(DIAMOND)
    squares = [module.square(3), module.square(3)]
    assert merkl.evaluate([*squares, module.combine([], [], squares)], executor=name) == [
        9,
        9,
        {"evens": [], "odds": [], "total": 18},
    ]
    assert pipelines.calls() == ["square3", "combine"]
    assert set(run_counts(repo).values()) == {1}


def test_worker_processes_see_the_current_environment(pipelines, monkeypatch):
    """Workers fork from a long-lived server; they must not see its stale environment."""
    module = pipelines.make("@task\ndef env(name, run):\n    return os.environ.get(name)\n")
    name = "MERKL_TEST_EXECUTOR_VARIABLE"
    assert merkl.evaluate([module.env(name, 1)], executor="processes") == [None]
    monkeypatch.setenv(name, "set later")
    assert merkl.evaluate([module.env(name, 2)], executor="processes") == ["set later"]


@pytest.mark.parametrize("name", POOLS)
def test_an_output_the_serializer_refuses_fails_the_run_naming_the_task(pipelines, name):
    module = pipelines.make("@task(outs=2)\ndef pair(x):\n    return x, {'x': object()}\n")
    with pytest.raises(SerializationError) as info:
        merkl.evaluate([module.pair(1)[0]], executor=name)
    assert str(info.value).startswith(
        f"task {module.__name__}.pair output 1: cannot store value['x'] (builtins.object) as "
        f"JSON: it would not come back as the same type; return plain data"
    )
    assert str(info.value).endswith("or use @task(serializers={1: PickleSerializer()})")
