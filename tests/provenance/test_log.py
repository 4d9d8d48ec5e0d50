"""`merkl log`: recently computed outputs."""

from __future__ import annotations

import json

from tests.helpers import run_cli
from tests.provenance.conftest import run_ok


def test_empty_log(examples):
    assert "no outputs computed yet" in run_ok("log")


def test_log_lists_outputs_newest_first(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    run_ok("run", "pipeline2.pipeline")
    lines = run_ok("log").splitlines()
    assert lines[0].split() == ["TIME", "TASK", "DURATION", "SIZE", "CACHED", "OUTPUT"]
    tasks = [line.split()[3] for line in lines[1:]]
    assert tasks == [
        "pipeline2.evaluate",
        "pipeline2.train",
        "pipeline2.load_data[1]",
        "pipeline2.load_data[0]",
        "pipeline1.task2",
        "pipeline1.task1",
    ]
    assert all(line.split()[7] == "yes" for line in lines[1:])
    assert [line.split()[3] for line in run_ok("log", "-n", "2").splitlines()[1:]] == tasks[:2]


def test_log_filters_by_task_and_prints_json(examples):
    run_ok("run", "pipeline1.my_pipeline", "42")
    run_ok("run", "pipeline1.my_pipeline", "43")
    entries = json.loads(run_ok("log", "--json", "--task", "task2"))
    assert [e["task"] for e in entries] == ["task2", "task2"]
    assert json.loads(run_ok("log", "--json", "--task", "pipeline1.task2")) == entries
    assert all(len(e["output"]) == 64 and e["cached"] for e in entries)
    shown = run_ok("show", entries[0]["output"])
    assert "pipeline1.task2" in shown
    unknown = run_cli("log", "--json", "--task", "nope")  # issue 23: says so, exit 1
    assert unknown.code == 1
    assert "no task 'nope' in the run log" in unknown.err


def test_bad_limit(examples):
    result = run_cli("log", "--limit", "0")
    assert result.code == 2
    assert "--limit must be 1 or more, got 0" in result.err
    assert run_cli("log", "--limit", "x").code == 2
