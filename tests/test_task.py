"""@task, placeholders and evaluation through the Python API."""

from __future__ import annotations

import sys

import pytest

from merkl import (
    BytesSerializer,
    CachePolicy,
    CodeHashMode,
    PickleSerializer,
    Placeholder,
    evaluate,
    task,
)
from merkl.errors import EvaluationError, HashingError, TaskDefinitionError, UsageError
from merkl.session import use_session
from tests.helpers import damage_object, import_fresh, write_module

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


@task
def double(x):
    CALLS.append("double")
    return 2 * x


@task
def square(x):
    CALLS.append("square")
    return x**2


@task(outs=2)
def divmod_task(a, b):
    CALLS.append("divmod")
    return a // b, a % b


@task(outs=lambda data, k: k)
def split(data, k):
    CALLS.append("split")
    size = len(data) // k
    return [data[i * size : (i + 1) * size] for i in range(k)]


@task(outs=3)
def wrong_count():
    return 1, 2


@task(cache_policy=CachePolicy.NEVER)
def never_cached(x):
    CALLS.append("never")
    return x


@task(cache_policy=CachePolicy.MEMORY)
def memory_cached(x):
    CALLS.append("memory")
    return x


@task(serializers={0: PickleSerializer()})
def make_set(x):
    return {x, x + 1}


@task(serializers={0: BytesSerializer()})
def make_bytes(x):
    return bytes([x])


@task
def boom(x):
    raise ValueError(f"bad value {x}")


@task
def with_defaults(a, b=2, *rest, c=3, **extra):
    return [a, b, list(rest), c, extra]


def test_hash_is_known_without_running(repo):
    placeholder = square(double(21))
    assert isinstance(placeholder, Placeholder)
    assert len(placeholder.hash) == 64
    assert CALLS == []


def test_get_computes_then_hits_cache(repo):
    assert square(double(42)).get() == 7056
    assert CALLS == ["double", "square"]
    CALLS.clear()
    assert square(double(42)).get() == 7056
    assert CALLS == []  # the final output is cached: nothing upstream is even looked at


def test_distinct_hashes_for_functions_args_and_outputs(repo):
    assert double(1).hash != square(1).hash
    assert double(1).hash != double(2).hash
    assert double(1).hash == double(1).hash
    quotient, remainder = divmod_task(7, 2)
    assert quotient.hash != remainder.hash
    assert double(1).hash != double(1.0).hash  # int and float hash differently


def test_defaults_are_applied_before_hashing(repo):
    assert with_defaults(1).hash == with_defaults(1, 2).hash == with_defaults(1, b=2).hash
    assert with_defaults(1, 2, 5).hash != with_defaults(1, 2).hash
    assert with_defaults(1, 2, 5, c=4, d=1).get() == [1, 2, [5], 4, {"d": 1}]


def test_sibling_outputs_are_computed_by_one_run(repo):
    quotient, remainder = divmod_task(7, 2)
    assert evaluate([quotient, remainder]) == [3, 1]
    assert CALLS == ["divmod"]
    CALLS.clear()
    assert remainder.get() == 1
    assert CALLS == []


def test_outs_callable(repo):
    parts = split([1, 2, 3, 4, 5, 6], 3)
    assert isinstance(parts, tuple)
    assert len(parts) == 3
    assert evaluate(parts) == [[1, 2], [3, 4], [5, 6]]
    assert CALLS == ["split"]


def test_wrong_number_of_outputs_names_task_and_counts(repo):
    with pytest.raises(EvaluationError, match=r"wrong_count declares 3 outputs but returned 2"):
        wrong_count()[0].get()


@pytest.mark.parametrize("outs", [0, -1, 1.0, True, "2", None])
def test_invalid_outs_rejected_at_decoration(outs):
    with pytest.raises(TaskDefinitionError, match=r"outs="):
        task(outs=outs)(lambda x: x)


def test_outs_callable_with_other_parameter_names_rejected():
    def split_fn(data, k):
        return data

    with pytest.raises(
        TaskDefinitionError, match=r"parameters \(data, n\) must match .*\(data, k\)"
    ):
        task(outs=lambda data, n: n)(split_fn)


def test_unknown_task_option_rejected():
    with pytest.raises(TaskDefinitionError, match="unknown option"):
        task(out=2)(lambda x: x)


def test_serializer_class_instead_of_instance_rejected():
    def fn(x):
        return x

    with pytest.raises(TaskDefinitionError, match=r"pass an instance: PickleSerializer\(\)"):
        task(serializers={0: PickleSerializer})(fn)


def test_placeholder_misuse_says_call_get(repo):
    placeholder = double(1)
    for misuse in (
        lambda: bool(placeholder),
        lambda: len(placeholder),
        lambda: list(placeholder),
        lambda: placeholder + 1,
        lambda: 1 + placeholder,
        lambda: placeholder < 2,
        lambda: placeholder[0],
        lambda: -placeholder,
    ):
        with pytest.raises(UsageError, match=r"call \.get\(\)"):
            misuse()


def test_unhashable_argument_names_task_and_argument(repo):
    with pytest.raises(HashingError, match=r"double\(\): cannot hash arguments\['x'\]"):
        double(object()).hash  # noqa: B018


def test_task_exception_propagates_unchanged_with_note(repo):
    with pytest.raises(ValueError, match="bad value 3") as info:
        boom(3).get()
    assert any("in merkl task" in note and "boom" in note for note in info.value.__notes__)


def test_failed_run_keeps_completed_outputs(repo):
    first = double(5)
    with pytest.raises(ValueError, match="bad value 10"):
        evaluate([first, boom(first)])
    CALLS.clear()
    assert double(5).get() == 10
    assert CALLS == []


def test_never_policy_recomputes(repo):
    never_cached(1).get()
    never_cached(1).get()
    assert CALLS == ["never", "never"]


def test_memory_policy_caches_in_process_only(repo):
    memory_cached(1).get()
    memory_cached(1).get()
    assert CALLS == ["memory"]
    assert repo.index.find_output(memory_cached(1).hash) is None


def test_local_policy_is_not_pushable(repo):
    @task(cache_policy=CachePolicy.LOCAL)
    def local_only(x):
        return x

    placeholder = local_only(1)
    placeholder.get()
    entry = repo.index.find_output(placeholder.hash)
    assert entry is not None
    assert entry.pushable is False


def test_serializers(repo):
    assert make_set(1).get() == {1, 2}
    assert make_set(1).get() == {1, 2}  # read back with pickle, not JSON
    assert make_bytes(7).get() == b"\x07"
    assert repo.index.find_output(make_bytes(7).hash).serializer == "bytes"


def test_json_values_round_trip_on_first_run_too(repo):
    @task
    def pair():
        return (1, 2)

    assert pair().get() == (1, 2)  # exactly what the body returned, first run and cache hit
    assert pair().get() == (1, 2)


def test_no_cache_session_neither_reads_nor_writes(repo):
    with use_session(repo=repo, use_cache=False):
        assert double(4).get() == 8
        assert double(4).get() == 8
    assert CALLS == ["double", "double"]
    assert repo.index.find_output(double(4).hash) is None


def test_run_log_records_provenance(repo):
    out = square(double(3))
    out.get()
    (run,) = repo.index.iter_runs(out_hash=out.hash)
    assert run.task == "square"
    assert run.module == "tests.test_task"
    assert run.parents == [double(3).hash]
    assert set(run.arg_hashes) == {"x"}
    assert run.size > 0
    assert run.duration >= 0


def test_corrupt_object_is_recomputed(repo):
    out = double(6)
    out.get()
    entry = repo.index.find_output(out.hash)
    damage_object(repo, entry.oid, b"999")  # inline (small): in the index
    CALLS.clear()
    assert double(6).get() == 12
    assert CALLS == ["double"]


def test_outside_a_repo_get_says_merkl_init():
    from merkl.errors import NotARepoError

    with pytest.raises(NotARepoError, match="merkl init"):
        double(1).get()


# --- code identity ---------------------------------------------------------------------------

MODULE_SOURCE = """
from merkl import task, CodeHashMode

@task
def first(x):
    return x + 1

@task(code_hash_mode=CodeHashMode.FUNCTION)
def second(x):
    return x * 2

def helper():
    return {helper_value!r}

@task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=[helper, "v1"])
def third(x):
    return helper()
"""


def _load(tmp, **values):
    params = {"helper_value": 1, **values}
    write_module(tmp, "codemod", MODULE_SOURCE.format(**params))
    return import_fresh(tmp, "codemod")


def test_module_vs_function_code_hash(repo):
    module = _load(repo.root)
    before = {name: getattr(module, name)(1).hash for name in ("first", "second", "third")}
    # A comment or formatting change alters nothing.
    path = repo.root / "codemod.py"
    path.write_text("# a comment\n\n" + path.read_text().replace("return x + 1", "return (x+1)"))
    module = import_fresh(repo.root, "codemod")
    same = {name: getattr(module, name)(1).hash for name in ("first", "second", "third")}
    assert same == before
    # Editing `second` (FUNCTION mode) changes only `second`.
    path.write_text(path.read_text().replace("return x * 2", "return x * 3"))
    module = import_fresh(repo.root, "codemod")
    after = {name: getattr(module, name)(1).hash for name in ("first", "second", "third")}
    assert after["second"] != before["second"]
    assert after["first"] == before["first"]
    assert after["third"] == before["third"]
    # Editing the module elsewhere changes MODULE-mode `first` only... and `third` through
    # its code_deps when the helper itself changes.
    module = _load(repo.root, helper_value=2)
    changed = {name: getattr(module, name)(1).hash for name in ("first", "second", "third")}
    assert changed["first"] != before["first"]
    assert changed["third"] != before["third"]


def test_code_deps_strings_and_bytes_hash_equal():
    def fn(x):
        return x

    a = task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=["v"])(fn)
    b = task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=[b"v"])(fn)
    c = task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=["w"])(fn)
    assert a.code_hash == b.code_hash != c.code_hash


def test_task_dependency_propagates_code_hash(repo):
    source = """
from merkl import task, CodeHashMode

@task(code_hash_mode=CodeHashMode.FUNCTION)
def inner(x):
    return x + {n}

@task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=[inner])
def outer(x):
    return inner.fn(x)
"""
    write_module(repo.root, "depmod", source.format(n=1))
    before = import_fresh(repo.root, "depmod").outer(1).hash
    write_module(repo.root, "depmod", source.format(n=2))
    after = import_fresh(repo.root, "depmod").outer(1).hash
    assert before != after


def test_bad_code_deps_rejected():
    with pytest.raises(TaskDefinitionError, match="code_deps"):
        task(code_deps=[42])(lambda x: x)
    with pytest.raises(TaskDefinitionError, match="code_deps"):
        task(code_deps="v1")(lambda x: x)


def test_unavailable_source_needs_version():
    namespace: dict = {}
    exec("def made_up(x):\n    return x\n", namespace)
    fn = namespace["made_up"]
    fn.__module__ = "not_a_real_module"
    with pytest.raises(TaskDefinitionError, match="version="):
        task(fn)
    with pytest.raises(TaskDefinitionError, match="version="):
        task(code_hash_mode=CodeHashMode.FUNCTION)(fn)
    pinned = task(version="1.0")(fn)
    assert len(pinned.code_hash) == 64
    assert task(version="1.1")(fn).code_hash != pinned.code_hash


def test_output_hash_is_the_documented_struct(repo):
    from merkl.hashing import HASH_SCHEMA, hash_struct

    for index, out in enumerate(divmod_task(7, 2)):
        expected = hash_struct(
            "merkl.output", HASH_SCHEMA, divmod_task.code_hash, out.call.args_hash, index
        )
        assert out.hash == expected


def test_fast_binding_matches_general_binding(repo):
    assert (
        divmod_task(7, 2)[0].hash == divmod_task(7, b=2)[0].hash == divmod_task(a=7, b=2)[0].hash
    )


def test_deep_chain_hashes_and_runs_without_recursion_error(repo):
    (repo.root / "merkl.toml").write_text("[core]\nfsync = false\n")  # 1,200 writes, fast
    out = double(1)
    for _ in range(1200):
        out = double(out)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # hashing and evaluation walk the DAG iteratively
    try:
        assert len(out.hash) == 64
        assert out.get() == 2**1201
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(HashingError) as info:
        double(double(double([object()]))).hash  # noqa: B018
    assert str(info.value).count("double()") == 1  # named once, not once per level


def test_fsync_can_be_turned_off(repo, monkeypatch):
    from merkl.repo import Repo

    assert Repo(repo.root).store.fsync is True
    (repo.root / "merkl.toml").write_text("[core]\nfsync = false\n")
    assert Repo(repo.root).store.fsync is False
    monkeypatch.setenv("MERKL_FSYNC", "1")
    assert Repo(repo.root).store.fsync is True


def test_identical_calls_in_one_dag_run_once(repo):
    outs = [double(i % 3) for i in range(9)]
    assert evaluate(outs) == [0, 2, 4] * 3
    assert CALLS == ["double"] * 3
