"""`merkl run --jobs/--executor/--scheduler` from the command line."""

from __future__ import annotations

import pytest

from tests.executors.test_pool import DIAMOND, FAILING, RENDEZVOUS
from tests.helpers import run_cli

PAIR_PIPELINE = "\ndef pipeline():\n    return meet('a', 'b'), meet('b', 'a')\n"
EXPECTED = "({'evens': (0, 4, 16), 'odds': [1, 9, 25], 'total': 55}, (0, 4, 16))"


@pytest.mark.parametrize("options", [["-j", "2"], ["--executor", "threads", "--jobs=3"]])
def test_run_with_workers_prints_the_in_process_result(pipelines, options):
    module = pipelines.make(DIAMOND)
    result = run_cli("run", *options, f"{module.__name__}.pipeline", "6")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == EXPECTED
    # Not a terminal: no progress bar, only the summary line.
    assert result.err.splitlines() == [result.err.splitlines()[0]]
    assert result.err.startswith("merkl: 8 task(s) run, 0 output(s) from cache")
    again = run_cli("run", f"{module.__name__}.pipeline", "6")
    assert again.out.splitlines()[-1] == EXPECTED
    assert "0 task(s) run" in again.err


def test_jobs_from_merkl_toml(pipelines, repo):
    module = pipelines.make(RENDEZVOUS + PAIR_PIPELINE)
    with open(repo.root / "merkl.toml", "a") as handle:
        handle.write("\n[run]\njobs = 2\n")
    result = run_cli("run", f"{module.__name__}.pipeline")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "('a', 'b')"


def test_a_failing_task_is_one_line_naming_it_and_exit_1(pipelines):
    module = pipelines.make(FAILING)
    result = run_cli("run", "-j", "2", f"{module.__name__}.pipeline")
    assert result.code == 1
    lines = result.err.splitlines()
    assert lines[0].startswith(f"merkl: error: in merkl task {module.__name__}.fragile [")
    assert lines[0].endswith("PipelineError: cannot combine 1 and 2")
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--jobs", "0"], "merkl: error: --jobs must be a whole number >= 1, got 0"),
        (["-j", "two"], "merkl: error: Bad value for --jobs: 'two'"),
        (["--executor", "gpu"], "merkl: error: unknown executor 'gpu'"),
        (["--executor", "local", "-j", "2"], "merkl: error: --executor local runs one task"),
        (["--executor", "threads", "--scheduler", "tcp://h:1"], "merkl: error: --scheduler"),
    ],
)
def test_bad_options_exit_2_and_run_nothing(pipelines, options, message):
    module = pipelines.make(DIAMOND)
    result = run_cli("run", *options, f"{module.__name__}.pipeline", "6")
    assert result.code == 2
    assert result.err.startswith(message), result.err
    assert pipelines.calls() == []
