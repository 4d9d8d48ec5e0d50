"""`merkl why`: which component changed since an output's task last ran."""

from __future__ import annotations

import json

from tests.helpers import run_cli, write_module
from tests.provenance.conftest import edit, run_ok


def reasons(*argv: str) -> dict[str, list[tuple[str, str | None]]]:
    entries = json.loads(run_ok("why", "--json", *argv))
    return {e["task"]: [(r["kind"], r["argument"]) for r in e["reasons"]] for e in entries}


def test_never_run_then_nothing_to_do(examples):
    assert reasons("pipeline1.my_pipeline", "42") == {
        "pipeline1.task1": [("never-run", None)],
        "pipeline1.task2": [("never-run", None)],
    }
    run_ok("run", "pipeline1.my_pipeline", "42")
    assert run_ok("why", "pipeline1.my_pipeline", "42") == (
        "pipeline1.my_pipeline: every output is cached; nothing would run\n"
    )
    assert json.loads(run_ok("why", "--json", "pipeline1.my_pipeline", "42")) == []


def test_code_change_of_one_function(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    edit(examples / "pipeline1.py", "input_value**2", "input_value * input_value")
    out = run_ok("why", "pipeline1.my_pipeline", "42")
    lines = out.splitlines()
    assert lines[0].startswith("pipeline1.task2  ")
    assert lines[0].endswith("  missing")
    assert lines[1].startswith("  compared with its run of ")
    assert lines[2].startswith("  - code changed: the code of task2 changed (code hash ")
    assert len(lines) == 3, "task1 is still cached and must not be listed"


def test_module_code_change(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    edit(examples / "pipeline1.py", "return 2 * input_value", "return input_value * 2")
    found = reasons("pipeline1.my_pipeline", "42")
    assert found["pipeline1.task1"] == [("code", None)]
    assert found["pipeline1.task2"] == [("upstream", "input_value")]
    text = run_ok("why", "pipeline1.my_pipeline", "42")
    assert "code changed: module pipeline1" in text
    assert "argument 'input_value': upstream output pipeline1.task1 changed (" in text
    assert text.index("pipeline1.task1  ") < text.index("pipeline1.task2  ")  # cause first


def test_argument_value_change(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    found = reasons("pipeline1.my_pipeline", "43")
    assert found["pipeline1.task1"] == [("argument", "input_value")]
    assert found["pipeline1.task2"] == [("upstream", "input_value")]
    # The old value is logged for small scalars (issue 23).
    why = run_ok("why", "pipeline1.my_pipeline", "43")
    assert "argument 'input_value' changed: 42 → 43" in why


def test_input_file_change_reaches_everything_downstream(examples):
    run_ok("run", "pipeline2.pipeline")
    csv = examples / "data" / "train.csv"
    from merkl.hashing import hash_file

    old = hash_file(csv)
    csv.write_text(csv.read_text() + "11.0,35.0\n")
    entries = json.loads(run_ok("why", "--json", "pipeline2.pipeline"))
    assert [e["task"] for e in entries] == [
        "pipeline2.load_data[0,1]",
        "pipeline2.train",
        "pipeline2.evaluate",
    ]
    [file_reason] = entries[0]["reasons"]
    assert file_reason["kind"] == "input-file"
    assert (file_reason["old"], file_reason["new"]) == (old, hash_file(csv))
    assert "input file 'data/train.csv' changed (content " in file_reason["message"]
    assert [(r["kind"], r["argument"]) for r in entries[2]["reasons"]] == [
        ("upstream", "model"),
        ("upstream", "rows"),
    ]


def test_keyword_argument_and_file_together(examples):
    run_ok("run", "pipeline2.pipeline")
    found = reasons("pipeline2.pipeline", "--epochs", "100")
    assert found == {
        "pipeline2.train": [("argument", "epochs")],
        "pipeline2.evaluate": [("upstream", "model")],
    }


def test_closest_earlier_run_is_the_reference(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    run_ok("run", "pipeline1.my_pipeline", "7")  # newer, but further from the edited code
    edit(examples / "pipeline1.py", "input_value**2", "input_value * input_value")
    # Compared with the run of 42 (only the code differs), not the newer run of 7.
    assert reasons("pipeline1.my_pipeline", "42") == {"pipeline1.task2": [("code", None)]}


def test_output_removed_from_the_cache(examples, repo):
    run_ok("run", "pipeline1.my_pipeline", "42")
    [task2] = json.loads(run_ok("log", "--json", "--task", "task2"))
    repo.index.remove_outputs([task2["output"]])
    found = reasons("pipeline1.my_pipeline", "42")
    assert found == {"pipeline1.task2": [("evicted", None)]}
    assert "is no longer in the cache" in run_ok("why", "pipeline1.my_pipeline", "42")


def test_signature_change_and_policy(examples):
    write_module(
        examples,
        "sig",
        """
        from merkl import task, CachePolicy

        @task
        def f(a, b=1):
            return a + b

        @task(cache_policy=CachePolicy.NEVER)
        def never(x):
            return x

        def pipeline(a: int = 1):
            return f(a), never(a)
    """,
    )
    run_ok("run", "sig.pipeline")
    edit(examples / "sig.py", "def f(a, b=1):", "def f(a, c=1):")
    found = reasons("sig.pipeline")
    assert found["sig.f"] == [("code", None), ("argument-added", "c"), ("argument-removed", "b")]
    assert found["sig.never"] == [("not-cached-by-policy", None)]


def test_fill_missing_reports_unknown_outputs_last(examples):
    write_module(
        examples,
        "partial",
        """
        from merkl import task

        @task
        def f(x):
            return x

        def pipeline(a: int, b: int):
            return f(a), f(b)
    """,
    )
    found = json.loads(run_ok("why", "--json", "--fill-missing", "partial.pipeline", "1"))
    assert [(e["task"], e["reasons"][0]["kind"]) for e in found] == [
        ("partial.f", "never-run"),
        ("partial.f", "unknown"),
    ]
    assert found[1]["reasons"][0]["message"] == (
        "its hash depends on pipeline argument(s) not given: b"
    )
    text = run_ok("why", "--fill-missing", "partial.pipeline", "1")
    assert "partial.f  ????????  unknown" in text


def test_bad_input(examples):
    assert run_cli("why", "pipeline1.my_pipeline").code == 2  # missing pipeline argument
    bad = run_cli("why", "nomodule.fn")
    assert bad.code == 1
    assert "cannot import module 'nomodule'" in bad.err
    assert "--epochs" in run_ok("why", "pipeline2.pipeline", "--help")
