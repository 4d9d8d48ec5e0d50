"""`merkl dag`: the DAG of the seed's pipelines as a tree, JSON, dot, svg and png."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.provenance.conftest import edit, normalise_hashes, run_ok

PIPELINE2_TREE = """\
pipeline2.pipeline
├── pipeline2.evaluate  #1  missing
│   ├── model: pipeline2.train  #2  missing
│   │   ├── epochs = 500
│   │   ├── learning_rate = 0.01
│   │   └── rows: pipeline2.load_data[0]  #3  missing
│   │       ├── test_every = 5
│   │       └── csv_bytes: file data/train.csv  #4
│   └── rows: pipeline2.load_data[1]  #5  missing  (see above)
├── pipeline2.train  #2  missing  (see above)
└── write model.bin  tracked
    └── pipeline2.train  #2  missing  (see above)
"""


def test_text_tree_snapshot(examples):
    assert normalise_hashes(run_ok("dag", "pipeline2.pipeline")) == PIPELINE2_TREE
    assert not (examples / "model.bin").exists(), "merkl dag must not run or write anything"
    assert "0 task(s) run" not in run_cli("run", "pipeline2.pipeline").err


def test_json_snapshot_and_hashes_match_a_dry_run(examples):
    graph = json.loads(run_ok("dag", "--format", "json", "pipeline2.pipeline"))
    assert graph["target"] == "pipeline2.pipeline"
    assert graph["roots"] == ["output3", "output1", "write0"]
    summary = [(n["id"], n["kind"], n["label"], n["state"]) for n in graph["nodes"]]
    assert summary == [
        ("file0", "file", "data/train.csv", "file"),
        ("task0", "task", "pipeline2.load_data", "task"),
        ("output0", "output", "pipeline2.load_data[0]", "missing"),
        ("task1", "task", "pipeline2.train", "task"),
        ("output1", "output", "pipeline2.train", "missing"),
        ("output2", "output", "pipeline2.load_data[1]", "missing"),
        ("task2", "task", "pipeline2.evaluate", "task"),
        ("output3", "output", "pipeline2.evaluate", "missing"),
        ("write0", "write", "model.bin", "planned"),
    ]
    edges = [(e["from"], e["to"], e["label"]) for e in graph["edges"]]
    assert edges == [
        ("file0", "task0", "csv_bytes"),
        ("task0", "output0", ""),
        ("output0", "task1", "rows"),
        ("task1", "output1", ""),
        ("task0", "output2", ""),
        ("output1", "task2", "model"),
        ("output2", "task2", "rows"),
        ("task2", "output3", ""),
        ("output1", "write0", ""),
    ]
    train = graph["nodes"][3]
    assert train["parameters"] == ["rows", "epochs", "learning_rate"]
    assert train["arguments"] == {"epochs": "500", "learning_rate": "0.01"}
    assert len(train["code_hash"]) == 64
    # The hashes are the ones `merkl run --dry` computes, and the file's is its content hash.
    dry = run_ok("run", "--dry", "pipeline2.pipeline").splitlines()
    dry_hashes = {line.split()[1]: line.split()[0] for line in dry if "pipeline2." in line}
    by_label = {n["label"]: n["hash"] for n in graph["nodes"] if n["kind"] == "output"}
    assert by_label == dry_hashes
    from merkl.hashing import hash_file

    assert graph["nodes"][0]["hash"] == hash_file(examples / "data" / "train.csv")


def test_states_turn_green_after_a_run_and_red_after_an_edit(examples):
    def states() -> dict[str, str]:
        graph = json.loads(run_ok("dag", "-f", "json", "pipeline1.my_pipeline", "42"))
        return {n["label"]: n["state"] for n in graph["nodes"] if n["kind"] == "output"}

    assert states() == {"pipeline1.task1": "missing", "pipeline1.task2": "missing"}
    run_ok("run", "pipeline1.my_pipeline", "42")
    assert states() == {"pipeline1.task1": "cached", "pipeline1.task2": "cached"}
    # task2 hashes only its own function: editing it leaves task1 cached.
    edit(examples / "pipeline1.py", "input_value**2", "input_value * input_value")
    assert states() == {"pipeline1.task1": "cached", "pipeline1.task2": "missing"}
    # Another argument is another DAG: nothing of it is cached.
    graph = json.loads(run_ok("dag", "-f", "json", "pipeline1.my_pipeline", "43"))
    assert {n["state"] for n in graph["nodes"] if n["kind"] == "output"} == {"missing"}


def test_colours_on_a_terminal(examples):
    from merkl.ops.dag import dag

    run_ok("run", "pipeline1.my_pipeline", "42")
    edit(examples / "pipeline1.py", "input_value**2", "input_value * input_value")
    coloured = dag("pipeline1.my_pipeline", ["42"], color=True)
    red, green = "\x1b[31mmissing", "\x1b[32mcached"
    assert red in coloured
    assert green in coloured
    assert coloured.index(red) < coloured.index(green)  # task2 (missing) above task1
    plain = run_ok("dag", "pipeline1.my_pipeline", "42")  # not a terminal: no colour
    assert "\x1b[" not in plain
    assert normalise_hashes(plain) == (
        "pipeline1.my_pipeline\n"
        "└── pipeline1.task2  #1  missing\n"
        "    └── input_value: pipeline1.task1  #2  cached\n"
        "        └── input_value = 42\n"
    )


def test_pipeline_options_after_the_target(examples):
    out = run_ok("dag", "pipeline2.pipeline", "--epochs", "100")
    assert "epochs = 100" in out
    help_text = run_ok("dag", "pipeline2.pipeline", "--help")
    assert "--epochs" in help_text


def test_fill_missing(examples):
    out = run_ok("dag", "--fill-missing", "pipeline1.my_pipeline")
    assert normalise_hashes(out) == (
        "pipeline1.my_pipeline\n"
        "└── pipeline1.task2  ????????  unknown\n"
        "    └── input_value: pipeline1.task1  ????????  unknown\n"
        "        └── input_value: missing argument input_value\n"
    )
    graph = json.loads(run_ok("dag", "--fill-missing", "-f", "json", "pipeline1.my_pipeline"))
    assert graph["nodes"][0] == {
        "id": "argument0",
        "kind": "argument",
        "label": "input_value",
        "hash": None,
        "state": "missing-argument",
    }


def test_dot_source(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    dot = run_ok("dag", "--format", "dot", "pipeline1.my_pipeline", "42")
    assert dot.startswith("digraph merkl {")
    assert dot.count("shape=parallelogram") == 2
    assert dot.count('<font color="darkgreen">') == 2
    assert '"output0" -> "task1" [label="input_value"];' in dot
    assert "input_value=42" in dot


@pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz is not installed (.ci/run installs it)"
)
def test_png_and_svg_through_graphviz(examples):
    result = run_cli("dag", "-f", "png", "-o", "dag.png", "pipeline2.pipeline")
    assert result.code == 0, result.err
    assert result.out == ""
    assert "wrote dag.png" in result.err
    assert (examples / "dag.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = run_ok("dag", "--format", "svg", "pipeline2.pipeline")
    assert svg.lstrip().startswith("<?xml")
    assert "pipeline2.load_data[0]" in svg


def test_missing_graphviz_is_one_clear_line(examples, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    result = run_cli("dag", "-f", "svg", "-o", "dag.svg", "pipeline1.my_pipeline", "42")
    assert result.code == 1
    assert result.err.startswith("merkl: error: --format svg needs Graphviz's `dot` program")
    assert "apt-get install graphviz" in result.err
    assert len(result.err.splitlines()) == 1
    assert not Path("dag.svg").exists()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["dag", "-f", "gif", "pipeline1.my_pipeline", "1"], 2, "unknown --format 'gif'"),
        (["dag", "-f", "png", "pipeline1.my_pipeline", "1"], 2, "give a file to write with -o"),
        (["dag", "nomodule.fn"], 1, "cannot import module 'nomodule'"),
        (["dag", "pipeline1"], 2, "is not of the form module.function"),
        (["dag", "pipeline1.nothing"], 1, "has no function 'nothing'"),
        (["dag", "pipeline1.my_pipeline", "notanint"], 2, "input-value"),
        (["dag"], 2, "Missing required arguments: target"),
    ],
)
def test_bad_input(examples, argv, code, message):
    result = run_cli(*argv)
    assert result.code == code, result.err
    assert result.err.startswith("merkl: error:")
    assert message in result.err
    assert result.out == ""


def test_outside_a_repository(merkl_globals):
    result = run_cli("dag", "pipeline1.my_pipeline", "1")
    assert result.code == 1
    assert "run `merkl init`" in result.err


def test_output_file_is_written_atomically_and_only_on_success(examples):
    target = examples / "graph.json"
    target.write_text("old")
    bad = run_cli("dag", "-f", "json", "-o", "graph.json", "pipeline1.my_pipeline", "x")
    assert bad.code == 2
    assert target.read_text() == "old"
    run_ok("dag", "-f", "json", "-o", "graph.json", "pipeline1.my_pipeline", "3")
    assert json.loads(target.read_text())["target"] == "pipeline1.my_pipeline"
    assert not [p for p in os.listdir(examples) if p.startswith(".graph.json")]


def test_a_long_chain_restarts_its_indentation(examples):
    from tests.helpers import write_module

    write_module(
        examples,
        "chain",
        """
        from merkl import task

        @task
        def step(x, i):
            return x + i

        def pipeline(n: int = 70):
            x = 0
            for i in range(n):
                x = step(x, i)
            return x
    """,
    )
    lines = run_ok("dag", "chain.pipeline").splitlines()
    # Title, one line per step, per `i` and the first `x = 0`, and a marker every 32 levels.
    assert len(lines) == 1 + 70 + 70 + 1 + 2
    markers = [line for line in lines if "indentation restarts" in line]
    assert markers == [
        "┄┄ depth 32: indentation restarts ┄┄",
        "┄┄ depth 64: indentation restarts ┄┄",
    ]
    assert max(len(line) for line in lines) < 32 * 4 + 40
    assert lines[-1].endswith("└── i = 0")


def test_fill_missing_for_parameters_without_annotation(examples):
    # clize needs a converter for a default value; a MissingArgument has none, so an
    # unannotated parameter left out used to fail with clize's ValueError.
    out = run_ok("dag", "--fill-missing", "pipeline2.train")
    assert "missing argument rows" in out
    assert "missing argument epochs" in out
    given = run_ok("dag", "--fill-missing", "pipeline2.train", "--", "[]", "7")
    assert "epochs = 7" in given
