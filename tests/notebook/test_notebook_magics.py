"""`%merkl` magics, the DAG of a placeholder shown as SVG, and the progress bar of a long
`.get()`, in real kernels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.notebook.conftest import run_notebook

pytestmark = pytest.mark.timeout(300)

TASK = "from merkl import task\n\n@task\ndef f(x):\n    print('RAN f')\n    return x + 1"


def outputs(cell: dict) -> list[dict]:
    return list(cell["outputs"])


def test_init_dry_and_dag_magics_show_hashes_and_states_without_running(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    folder.mkdir()
    cells = [
        "%load_ext merkl",
        "%merkl init",
        TASK,
        "%%merkl dry\nout = f(f(1))\nout",
        "%merkl dag out",
        "out.get()",
        "%merkl dry out",
    ]
    result = run_notebook(folder / "nb.ipynb", cells)
    assert (folder / ".merkl").is_dir()
    assert "initialised a repository" in result.cells[1]
    dry = result.cells[3].splitlines()
    assert len(dry) == 2
    assert all(line.endswith("nb.ipynb.f  missing") for line in dry)
    assert "nb.ipynb.f" in result.cells[4]
    assert result.ran == ["f", "f"]  # only `.get()` ran anything
    assert result.cells[6].splitlines() == [line.replace("missing", "cached") for line in dry]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_a_placeholder_shown_as_a_cell_result_renders_its_dag_as_svg(repo: Repo) -> None:
    result = run_notebook(repo.root / "nb.ipynb", ["%load_ext merkl", TASK, "f(f(1))"])
    data = outputs(result.notebook.cells[2])[0]["data"]
    assert data["image/svg+xml"].lstrip().startswith(("<?xml", "<svg"))
    assert "nb.ipynb.f" in data["image/svg+xml"]
    assert data["text/plain"].startswith("<f(")
    assert result.ran == []


def test_a_long_get_shows_a_progress_bar_in_the_cell_and_a_short_one_none(repo: Repo) -> None:
    slow = "import time\nfrom merkl import task\n\n@task\ndef slow(x):\n"
    slow += "    time.sleep(0.7)\n    return x"
    cells = ["%load_ext merkl", slow, "slow(slow(1)).get()", "slow(2).hash and 0", "slow(1).get()"]
    result = run_notebook(repo.root / "nb.ipynb", cells)
    shown = [o for o in outputs(result.notebook.cells[2]) if o["output_type"] == "display_data"]
    assert len(shown) == 1
    assert '<progress value="2" max="2">' in shown[0]["data"]["text/html"]
    assert shown[0]["data"]["text/plain"].startswith("merkl running: 2/2 tasks")
    # A cache hit runs nothing: no bar.
    assert [o["output_type"] for o in outputs(result.notebook.cells[4])] == ["execute_result"]


def test_cell_tasks_run_on_threads_and_processes_refuse_them_naming_the_fix(repo: Repo) -> None:
    cells = [
        "%load_ext merkl",
        TASK,
        "f(1).get(executor='threads')",
        "try:\n    f(2).get(executor='processes')\nexcept Exception as exc:\n    print(exc)",
    ]
    result = run_notebook(repo.root / "nb.ipynb", cells)
    assert result.ran == ["f"]
    assert "2" in result.cells[2]
    assert "which has no source file (a notebook" in result.cells[3]
    assert "use the 'local' or 'threads' executor" in result.cells[3]
