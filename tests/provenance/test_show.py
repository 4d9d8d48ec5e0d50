"""`merkl show`: one output's provenance from the run log, back to its input files."""

from __future__ import annotations

import json

import pytest

from merkl.cache.index import OutputEntry, RunRecord
from merkl.pointer import read_pointer
from tests.helpers import run_cli
from tests.provenance.conftest import normalise_hashes, run_ok


@pytest.fixture
def ran(examples):
    run_ok("track", "data/train.csv")
    run_ok("run", "pipeline2.pipeline")
    return examples


def model_hash(root) -> str:
    pointer = read_pointer(root / "model.bin.merkl")
    assert pointer.output is not None
    return pointer.output


def test_show_model_back_to_the_training_data(ran):
    out = run_ok("show", "model.bin")
    head, _, tree = out.partition("inputs\n")
    assert head.splitlines()[0] == f"output {model_hash(ran)}"
    assert "task       pipeline2.train, output 0" in head
    assert "cached     yes" in head
    assert "written to model.bin" in head
    assert normalise_hashes(tree) == (
        "├── epochs: value 500  #1\n"  # small scalars are logged by value (issue 23)
        "├── learning_rate: value 0.01  #2\n"
        "└── rows: pipeline2.load_data[0]  #3  cached\n"
        "    ├── test_every: value 5  #4\n"
        "    └── csv_bytes: file data/train.csv  #5  tracked\n"
    )
    from merkl.hashing import hash_file

    assert hash_file(ran / "data" / "train.csv")[:8] in tree


def test_show_by_prefix_and_full_hash_and_pointer(ran):
    digest = model_hash(ran)
    by_prefix = run_ok("show", digest[:6])
    assert by_prefix == run_ok("show", digest) == run_ok("show", f"blake3:{digest.upper()}")
    assert by_prefix == run_ok("show", "model.bin.merkl")


def test_show_json_links_every_output_and_file(ran):
    data = json.loads(run_ok("show", "--json", "model.bin"))
    root = data["outputs"][data["output"]]
    assert (root["module"], root["task"], root["index"]) == ("pipeline2", "train", 0)
    assert root["written_to"] == ["model.bin"]
    assert sorted(root["values"]) == ["epochs", "learning_rate"]
    [rows] = root["inputs"]
    assert rows["argument"] == "rows"
    assert rows["kind"] == "output"
    upstream = data["outputs"][rows["hash"]]
    assert upstream["task"] == "load_data"
    [csv] = upstream["inputs"]
    assert (csv["argument"], csv["kind"]) == ("csv_bytes", "file")
    assert data["files"] == {csv["hash"]: [{"path": "data/train.csv", "tracked": True}]}


def test_untracked_input_file_is_found_through_the_stat_cache(examples):
    run_ok("run", "pipeline2.pipeline")
    tree = run_ok("show", "model.bin").partition("inputs\n")[2]
    assert "csv_bytes: file data/train.csv  " in tree
    assert "tracked" not in tree


def test_depth_limits_the_walk(ran):
    out = run_ok("show", "--depth", "0", "model.bin")
    assert normalise_hashes(out.partition("inputs\n")[2]).endswith("└── rows: output  #3  …\n")
    assert len(json.loads(run_ok("show", "--json", "--depth", "0", "model.bin"))["outputs"]) == 1


def test_an_output_removed_from_the_cache_is_still_shown(ran, repo):
    digest = model_hash(ran)
    repo.index.remove_outputs([digest])
    out = run_ok("show", digest[:8])
    assert "cached     no" in out
    assert "task       pipeline2.train" in out


def test_ambiguous_and_unknown_prefixes(repo):
    runs = [
        RunRecord(f"abcd{n:060x}", 0, "t", "m", "0" * 64, "1" * 64, {}, [], 0.1, 1, 1.0)
        for n in (1, 2)
    ]
    repo.index.add_outputs(
        [OutputEntry(r.out_hash, "f" * 64, "json", 1, True) for r in runs], runs
    )
    result = run_cli("show", "abcd")
    assert result.code == 1
    assert "hash prefix 'abcd' is ambiguous: 2 outputs match" in result.err
    assert run_ok("show", "abcd" + "0" * 59 + "1").startswith(f"output {runs[0].out_hash}")
    unknown = run_cli("show", "ffff")
    assert unknown.code == 1
    assert "no recorded output hash starts with 'ffff'" in unknown.err


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("xyz!", 2, "'xyz!' is not an output hash"),
        ("ab", 2, "hash prefix 'ab' is too short"),
        ("a" * 65, 2, "is not an output hash"),
        ("data/train.csv", 1, "is a tracked file, not a pipeline output"),
    ],
)
def test_bad_references(ran, ref, code, message):
    result = run_cli("show", ref)
    assert result.code == code, result.err
    assert message in result.err
    assert result.out == ""


def test_bad_depth_and_broken_pointer(ran):
    assert run_cli("show", "--depth", "-1", "model.bin").code == 2
    (ran / "broken.bin.merkl").write_text("{not json")
    result = run_cli("show", "broken.bin")
    assert result.code == 1
    assert "broken.bin.merkl: not a valid merkl pointer" in result.err


def test_output_whose_run_was_not_logged(repo):
    digest = "ab" * 32
    repo.index.add_outputs([OutputEntry(digest, "f" * 64, "json", 1, True)])
    out = run_ok("show", digest[:8])
    assert "no run logged" in out
    assert "inputs: none logged" in out


def test_shared_upstream_is_expanded_once_where_it_is_printed_first(examples):
    from tests.helpers import write_module

    write_module(
        examples,
        "diamond",
        """
        from merkl import task

        @task
        def base(x):
            return x

        @task
        def left(b):
            return b + 1

        @task
        def top(a, b):
            return a + b

        def pipeline():
            b = base(1)
            return top(left(b), b)
    """,
    )
    run_ok("run", "diamond.pipeline")
    [entry] = json.loads(run_ok("log", "--json", "--task", "top"))
    tree = normalise_hashes(run_ok("show", entry["output"]).partition("inputs\n")[2])
    assert tree == (
        "├── a: diamond.left  #1  cached\n"
        "│   └── b: diamond.base  #2  cached\n"
        "│       └── x: value 1  #3\n"
        "└── b: diamond.base  #2  cached  (see above)\n"
    )
