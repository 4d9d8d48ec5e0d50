"""Worker side: tasks found by reference, with exactly the code the parent hashed."""

from __future__ import annotations

import pickle
import sys

import pytest

from merkl import task
from merkl.errors import EvaluationError, ExecutorError, SerializationError
from merkl.executors.worker import (
    CallSpec,
    DepSlot,
    TaskRef,
    resolve_task,
    run_call,
    run_task,
    task_ref,
)
from tests.helpers import import_fresh, write_module


def test_a_reference_pickles_and_resolves_to_the_same_task(pipelines):
    module = pipelines.make("@task\ndef double(x):\n    return 2 * x\n")
    ref = pickle.loads(pickle.dumps(task_ref(module.double)))
    assert ref.import_root == str(pipelines.root)
    assert resolve_task(ref) is module.double
    assert run_task(ref, [21], {}, "label")[0] == 42


def test_the_import_root_of_a_package_module_is_above_the_package(repo):
    package = repo.root / "pkg" / "sub"
    package.mkdir(parents=True)
    (repo.root / "pkg" / "__init__.py").write_text("")
    write_module(package, "__init__", "from merkl import task\n@task\ndef f(x):\n    return x\n")
    write_module(package, "mod", "from merkl import task\n@task\ndef g(x):\n    return x\n")
    import_fresh(repo.root, "pkg")
    mod = import_fresh(repo.root, "pkg.sub.mod")
    init = sys.modules["pkg.sub"]
    assert task_ref(mod.g).import_root == str(repo.root)
    assert task_ref(init.f).import_root == str(repo.root)


def test_a_task_defined_in_a_function_is_refused(repo):
    @task
    def inner(x):
        return x

    with pytest.raises(ExecutorError, match=r"inside a function.*top level"):
        task_ref(inner)


def test_a_stale_module_is_imported_again(pipelines):
    """A long-lived worker holding an old version of the module re-imports the new one."""
    name = f"{pipelines.prefix}_stale"
    new_source = "@task\ndef value():\n    return 'new version'\n"
    new = pipelines.make(new_source, name)
    ref = task_ref(new.value)
    old = pipelines.make("@task\ndef value():\n    return 'old'\n", name)  # what the worker has
    assert old.value.code_hash != ref.code_hash
    write_module(
        pipelines.root,
        name,
        (pipelines.root / f"{name}.py").read_text().replace("'old'", "'new version'"),
    )
    task_obj = resolve_task(ref)
    assert task_obj.fn() == "new version"
    assert sys.modules[name].value is task_obj


def test_code_that_still_differs_after_reimport_is_refused(pipelines):
    module = pipelines.make("@task\ndef value():\n    return 1\n")
    good = task_ref(module.value)
    forged = TaskRef(good.module, good.qualname, "0" * 64, good.import_root)
    with pytest.raises(ExecutorError, match=r"different code for task .*value.*same version"):
        resolve_task(forged)


def test_an_unimportable_module_names_the_module_and_the_fix(repo):
    ref = TaskRef("no_such_pipeline_module", "f", "0" * 64, str(repo.root))
    with pytest.raises(ExecutorError, match=r"cannot import module 'no_such_pipeline_module'"):
        resolve_task(ref)


def test_a_name_that_is_not_a_task_is_refused(pipelines):
    module = pipelines.make("def plain():\n    return 1\n")
    ref = TaskRef(module.__name__, "plain", "0" * 64, str(pipelines.root))
    with pytest.raises(ExecutorError, match=r"has no task 'plain'"):
        resolve_task(ref)


def test_run_call_fills_slots_and_returns_values_as_a_cache_hit_would(pipelines):
    module = pipelines.make(
        "@task(outs=2)\ndef pair(a, b, *, extra):\n    return (a, b), {'extra': extra}\n"
    )
    ref = task_ref(module.pair)
    spec = CallSpec(
        ref,
        2,
        [DepSlot(0, 1), DepSlot(1, None)],
        {"extra": DepSlot(0, 0)},
        "label",
    )
    producer_result = (("zero", "one"), 0.0)
    outputs, _ = run_call(pickle.loads(pickle.dumps(spec)), producer_result, [1, 2])
    assert outputs == (("one", [1, 2]), {"extra": "zero"})
    assert type(outputs[0]) is tuple  # exactly what the body returned, through JSON
    refused = CallSpec(ref, 2, [{1.5}, object()], {"extra": 1}, "label")
    with pytest.raises(SerializationError, match=r"pair output 0: cannot store value\[1\]"):
        run_call(refused)


def test_run_call_checks_the_number_of_outputs(pipelines):
    module = pipelines.make("@task(outs=3)\ndef three():\n    return 1, 2\n")
    spec = CallSpec(task_ref(module.three), 3, [], {}, "label")
    with pytest.raises(EvaluationError, match="declares 3 outputs but returned 2"):
        run_call(spec)


def test_an_error_in_the_body_keeps_its_type_and_gains_a_note(pipelines):
    module = pipelines.make("@task\ndef fails(x):\n    raise KeyError(x)\n")
    with pytest.raises(KeyError) as info:
        run_task(task_ref(module.fails), ["k"], {}, "mod.fails [abc]")
    assert info.value.__notes__ == ["in merkl task mod.fails [abc]"]


def test_a_task_from_a_notebook_is_refused(repo, monkeypatch):
    @task(version="1")
    def cell_task(x):
        return x

    cell_task.fn.__qualname__ = "cell_task"  # as if defined at the top of a notebook cell
    monkeypatch.setattr(cell_task, "name", "cell_task")
    monkeypatch.setattr(cell_task.fn, "__module__", "__main__")
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    with pytest.raises(ExecutorError, match=r"no source file \(a notebook"):
        task_ref(cell_task)
