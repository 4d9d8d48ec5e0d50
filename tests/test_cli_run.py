"""`merkl init` and `merkl run`, in-process and as real processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import merkl
from tests.helpers import REPO_ROOT, run_cli, run_merkl_process, write_module

EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture
def examples(repo):
    for name in ("pipeline1.py", "outs_lambda.py", "pipeline2.py"):
        shutil.copy(EXAMPLES / name, repo.root / name)
    shutil.copytree(EXAMPLES / "data", repo.root / "data")
    return repo.root


def test_init_creates_repo_and_gitignore_once(merkl_globals):
    assert run_cli("init").code == 0
    assert run_cli("init").code == 0
    assert (merkl_globals / ".merkl" / "index.sqlite").exists()
    assert (merkl_globals / "merkl.toml").exists()
    assert (merkl_globals / ".gitignore").read_text().splitlines().count("/.merkl/") == 1


def test_pipeline1_as_processes(examples):
    first = run_merkl_process("run", "pipeline1.my_pipeline", "42", cwd=examples)
    assert first.code == 0, first.err
    assert first.out.splitlines()[-1] == "7056"
    assert "2 task(s) run" in first.err
    second = run_merkl_process("run", "pipeline1.my_pipeline", "42", cwd=examples)
    assert second.out.splitlines()[-1] == "7056"
    assert "0 task(s) run" in second.err
    # Editing only task2 (FUNCTION mode) re-executes only task2.
    source = examples / "pipeline1.py"
    source.write_text(source.read_text().replace("input_value**2", "input_value * input_value"))
    third = run_merkl_process("run", "pipeline1.my_pipeline", "42", cwd=examples)
    assert third.out.splitlines()[-1] == "7056"
    assert "1 task(s) run, 1 output(s) from cache" in third.err


def test_outs_lambda_example(examples):
    result = run_cli("run", "outs_lambda.pipeline")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "([1, 2, 3], [4, 5, 6])"


def test_pipeline2_example_writes_model_and_tracks_it(examples):
    result = run_cli("run", "pipeline2.pipeline")
    assert result.code == 0, result.err
    score, model = eval(result.out.splitlines()[-1])
    assert 0.9 < score <= 1
    assert json.loads((examples / "model.bin").read_bytes()) == model
    loaded = merkl.load(examples / "model.bin.merkl")
    assert loaded.get() == model
    again = run_cli("run", "pipeline2.pipeline")
    assert "0 task(s) run" in again.err
    # Changing the input data re-runs everything downstream of it.
    csv = examples / "data" / "train.csv"
    csv.write_text(csv.read_text() + "11.0,35.0\n")
    changed = run_cli("run", "pipeline2.pipeline")
    assert "3 task(s) run" in changed.err


def test_dry_run_executes_nothing(examples):
    result = run_cli("run", "--dry", "pipeline1.my_pipeline", "42")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split()[1:] for line in lines] == [
        ["pipeline1.task1", "missing"],
        ["pipeline1.task2", "missing"],
    ]
    assert all(len(line.split()[0]) == 64 for line in lines)
    run_cli("run", "pipeline1.my_pipeline", "42")
    cached = run_cli("run", "--dry", "pipeline1.my_pipeline", "42")
    assert [line.split()[2] for line in cached.out.splitlines()] == ["cached", "cached"]


def test_dry_run_does_not_write_files(examples):
    result = run_cli("run", "--dry", "pipeline2.pipeline")
    assert result.code == 0, result.err
    assert "write model.bin  planned" in result.out
    assert not (examples / "model.bin").exists()


def test_fill_missing(examples):
    result = run_cli("run", "--dry", "--fill-missing", "pipeline1.my_pipeline")
    assert result.code == 0, result.err
    assert "argument input_value  missing-argument" in result.out
    assert "?" * 64 + "  pipeline1.task2  unknown" in result.out


def test_no_cache(examples):
    run_cli("run", "pipeline1.my_pipeline", "42")
    result = run_cli("run", "--no-cache", "pipeline1.my_pipeline", "42")
    assert result.out.splitlines()[-1] == "7056"
    assert "2 task(s) run" in result.err


def test_output_files(examples):
    result = run_cli("run", "outs_lambda.pipeline", "-0", "a.json", "-1", "b.json")
    assert result.code == 0, result.err
    assert json.loads(Path("a.json").read_text()) == [1, 2, 3]
    assert json.loads(Path("b.json").read_text()) == [4, 5, 6]
    bad = run_cli("run", "outs_lambda.pipeline", "-2", "c.json")
    assert bad.code == 2
    assert "-2: outs_lambda.pipeline returns 2 output(s)" in bad.err
    assert not Path("c.json").exists()


def test_kwargs_and_help(examples):
    result = run_cli("run", "outs_lambda.pipeline", "3")
    assert result.out.splitlines()[-1] == "([1, 2], [3, 4], [5, 6])"
    helped = run_cli("run", "pipeline2.pipeline", "--help")
    assert "--epochs" in helped.out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "nosuchmodule.fn"], 1, "cannot import module 'nosuchmodule'"),
        (["run", "pipeline1.nope"], 1, "module 'pipeline1' has no function 'nope'"),
        (["run", "pipeline1"], 2, "is not of the form module.function"),
        (["run", "pipeline1.my_pipeline"], 2, "Missing required arguments: input-value"),
        (["run", "pipeline1.my_pipeline", "x"], 2, "input-value"),
        (["run", "pipeline1.my_pipeline", "1", "2"], 2, "Received extra arguments"),
        (["run", "--bogus", "pipeline1.my_pipeline"], 2, "Unknown option '--bogus'"),
        (["nosuchcommand"], 2, "nosuchcommand"),
    ],
)
def test_errors_are_one_line(examples, argv, code, message):
    result = run_cli(*argv)
    assert result.code == code
    assert message in result.err
    assert result.err.startswith("merkl: error: ")
    assert "Traceback" not in result.err


def test_unhashable_argument_and_task_error(repo):
    write_module(
        repo.root,
        "badpipe",
        """
        from merkl import task
        @task
        def fails(x):
            raise RuntimeError("exploded " + str(x))
        def unhashable():
            return fails(object())
        def failing(x: int):
            return fails(x)
    """,
    )
    result = run_cli("run", "badpipe.unhashable")
    assert result.code == 1
    assert "cannot hash arguments['x'] of type builtins.object" in result.err
    result = run_cli("run", "badpipe.failing", "3")
    assert result.code == 1
    assert "in merkl task badpipe.fails" in result.err
    assert "RuntimeError: exploded 3" in result.err
    assert "Traceback" not in result.err
    debug = run_cli("--debug", "run", "badpipe.failing", "3")
    assert "Traceback" in debug.err


def test_run_outside_repo_says_init(merkl_globals):
    result = run_merkl_process("run", "x.y", cwd=merkl_globals)
    assert result.code == 1
    assert "run `merkl init`" in result.err
    assert result.err.count("\n") == 1


def test_help_lists_commands():
    result = run_cli("--help")
    assert result.code == 0
    assert "init" in result.out
    assert "run" in result.out


def test_write_file_does_not_rewrite_unchanged_output(repo):
    write_module(
        repo.root,
        "writer",
        """
        from merkl import task, write_file
        @task
        def make(x):
            return {"x": x}
        def pipeline(x: int):
            out = make(x)
            write_file(out, "out.json")
            return out
        """,
    )
    assert run_cli("run", "writer.pipeline", "1").code == 0
    target = repo.root / "out.json"
    before = target.stat()
    assert run_cli("run", "writer.pipeline", "1").code == 0
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert run_cli("run", "writer.pipeline", "2").code == 0
    assert json.loads(target.read_text()) == {"x": 2}


BIG = """
from merkl import task

@task
def leaf(i):
    return i

def pipeline(n: int):
    return [leaf(i) for i in range(n)]
"""


def test_run_builds_with_the_collector_paused_and_leaves_it_as_it_was(repo, monkeypatch):
    import gc

    write_module(repo.root, "big_build", BIG)
    collected = []
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(a) or 0)
    counts = []
    import merkl.ops.run as run_module

    monkeypatch.setattr(run_module, "_MANY_OBJECTS", 1000)
    real_call = run_module.call_with_cli_args

    def call(*args):
        counts.append(gc.isenabled())
        return real_call(*args)

    monkeypatch.setattr(run_module, "call_with_cli_args", call)
    assert run_cli("run", "--dry", "big_build.pipeline", "3000").code == 0
    assert counts == [False]  # off while the DAG is built
    assert gc.isenabled()
    assert len(collected) == 1  # many objects: one full collection after
    gc.disable()
    try:
        assert run_cli("run", "--dry", "big_build.pipeline", "10").code == 0
        assert not gc.isenabled()  # left off, as it was
    finally:
        gc.enable()
