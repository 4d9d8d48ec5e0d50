"""The acceptance consequences of issue 24, each in real kernels: what re-runs when a notebook
is restarted, edited, or copied."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.notebook.conftest import run_notebook

pytestmark = pytest.mark.timeout(300)

LOAD = "%load_ext merkl"
HELPERS = "from merkl import task\nSCALE = 3\n\ndef helper(x):\n    return x * SCALE"
PREPARE = "@task\ndef prepare(x):\n    print('RAN prepare')\n    return helper(x)"
TRAIN = "@task\ndef train(y):\n    print('RAN train')\n    return y + 1"
OTHER = "@task\ndef other(z):\n    print('RAN other')\n    return -z"
PIPELINE = "out = train(prepare(2))\nprint(out.get(), other(5).get())"


def cells(**replace: str) -> list[str]:
    parts = {
        "load": LOAD,
        "helpers": HELPERS,
        "prepare": PREPARE,
        "train": TRAIN,
        "other": OTHER,
        "pipeline": PIPELINE,
    }
    parts.update(replace)
    return list(parts.values())


@pytest.fixture
def notebook(repo: Repo) -> Path:
    path = repo.root / "analysis.ipynb"
    first = run_notebook(path, cells())
    assert first.ran == ["prepare", "train", "other"], first.cells
    assert "7 -5" in first.cells[-1]
    return path


def test_restart_and_run_all_runs_no_task(notebook: Path) -> None:
    again = run_notebook(notebook)
    assert again.ran == []
    assert "7 -5" in again.cells[-1]


def test_an_unrelated_cell_added_or_edited_runs_no_task(notebook: Path) -> None:
    extra = "import math\nLIMIT = math.pi  # a new cell\n\ndef unused():\n    return LIMIT"
    edited = cells(helpers=HELPERS + "\nUNRELATED = 1\n# a comment")
    result = run_notebook(notebook, [LOAD, extra, *edited[1:]])
    assert result.ran == []


def test_editing_a_helper_reruns_the_task_calling_it_and_its_dependents(notebook: Path) -> None:
    result = run_notebook(notebook, cells(helpers=HELPERS.replace("SCALE = 3", "SCALE = 4")))
    assert result.ran == ["prepare", "train"]
    assert "9 -5" in result.cells[-1]


def test_editing_a_task_body_reruns_it_and_its_dependents_only(notebook: Path) -> None:
    result = run_notebook(notebook, cells(prepare=PREPARE.replace("helper(x)", "helper(x) + 1")))
    assert result.ran == ["prepare", "train"]
    result = run_notebook(notebook, cells(train=TRAIN.replace("y + 1", "y + 2")))
    assert result.ran == ["train"]


def test_cell_order_and_execution_count_are_not_hashed(notebook: Path) -> None:
    shuffled = [LOAD, HELPERS, OTHER, TRAIN, "print('a cell that runs first')", PREPARE, PIPELINE]
    assert run_notebook(notebook, shuffled).ran == []


def test_two_notebooks_with_a_same_named_task_do_not_collide(notebook: Path) -> None:
    other_notebook = notebook.parent / "sub" / "analysis.ipynb"
    other_notebook.parent.mkdir()
    different = PREPARE.replace("helper(x)", "helper(x) * 100")
    result = run_notebook(other_notebook, cells(prepare=different))
    assert result.ran == ["prepare", "train", "other"]
    assert "601 -5" in result.cells[-1]
    # The first notebook still gets its own results.
    assert run_notebook(notebook).ran == []


def test_in_one_kernel_redefining_a_helper_rehashes_the_tasks_using_it(repo: Repo) -> None:
    """No restart: a helper cell edited and run again, then the pipeline cell run again."""
    edit = "SCALE = 10"
    result = run_notebook(
        repo.root / "live.ipynb",
        [*cells(), PIPELINE, edit, PIPELINE, "print(prepare.module, prepare(2).hash[:8])"],
    )
    assert result.ran == ["prepare", "train", "other", "prepare", "train"]
    assert "7 -5" in result.cells[-4]
    assert "21 -5" in result.cells[-2]
    assert result.cells[-1].startswith("live.ipynb ")


def test_without_the_extension_a_cell_task_fails_naming_the_fix(repo: Repo) -> None:
    result = run_notebook(repo.root / "plain.ipynb", cells(load="pass"), allow_errors=True)
    assert "TaskDefinitionError" in result.cells[2]
    assert "the source of module '__main__' is not available" in result.cells[2]
    assert "run %load_ext merkl first" in result.cells[2]
