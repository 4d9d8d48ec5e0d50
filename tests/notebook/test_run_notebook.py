"""`merkl run path/nb.ipynb:function`: a pipeline defined in a notebook, run from the command
line with the cache the notebook filled (and the reverse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import run_merkl_process
from tests.notebook.conftest import make_notebook, run_notebook

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "%load_ext merkl",
    "%%time\nprint('a cell magic: skipped by merkl run')",
    "from merkl import task\n\nOFFSET = 10\n\ndef helper(x):\n    return x + OFFSET",
    "@task\ndef prepare(x):\n    print('RAN prepare')\n    return helper(x)",
    "@task\ndef train(y):\n    print('RAN train')\n    return y * 2",
    "def pipeline(n: int = 1):\n    return train(prepare(n))",
    "!echo a shell line\npipeline(1).get()",
]


def test_merkl_run_a_notebook_function_hits_the_cache_the_notebook_filled(repo: Repo) -> None:
    folder = repo.root / "notebooks"
    folder.mkdir()
    notebook = folder / "proto.ipynb"
    assert run_notebook(notebook, CELLS).ran == ["prepare", "train"]
    result = run_merkl_process("run", "notebooks/proto.ipynb:pipeline", "1", cwd=repo.root)
    assert result.code == 0, result.err
    assert result.out.strip().endswith("22")
    assert "0 task(s) run" in result.err
    assert "RAN" not in result.out

    result = run_merkl_process("run", "notebooks/proto.ipynb:pipeline", "2", cwd=repo.root)
    assert result.code == 0, result.err
    assert "RAN prepare" in result.out
    assert "2 task(s) run" in result.err
    # ... and the notebook, restarted, finds what `merkl run` computed.
    cells = [*CELLS[:-1], "pipeline(2).get()"]
    assert run_notebook(notebook, cells).ran == []


def test_dry_run_of_a_notebook_names_tasks_by_its_path_and_computes_nothing(repo: Repo) -> None:
    """The notebook's last cell evaluates `pipeline(1).get()`: a cell output, not run."""
    make_notebook(repo.root / "proto.ipynb", [*CELLS, "print(pipeline(1).get())\nprepare(1)"])
    result = run_merkl_process("run", "--dry", "proto.ipynb:pipeline", "1", cwd=repo.root)
    assert result.code == 0, result.err
    assert "RAN" not in result.out
    lines = result.out.splitlines()
    assert [line.split()[1:] for line in lines] == [
        ["proto.ipynb.prepare", "missing"],
        ["proto.ipynb.train", "missing"],
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.ipynb:pipeline", "missing.ipynb: no such notebook"),
        ("proto.ipynb:nothing", "notebook proto.ipynb defines no function 'nothing'"),
    ],
)
def test_a_bad_notebook_target_is_a_one_line_error(repo: Repo, target: str, message: str) -> None:
    make_notebook(repo.root / "proto.ipynb", CELLS[:-1])
    result = run_merkl_process("run", target, cwd=repo.root)
    assert result.code == 1
    assert message in result.err
    assert "Traceback" not in result.err


def test_merkl_serve_refuses_a_notebook_target(repo: Repo, tmp_path: Path) -> None:
    from merkl.errors import UsageError
    from merkl.serve.pipeline import Pipeline

    with pytest.raises(UsageError, match="not a notebook"):
        Pipeline.load("proto.ipynb:pipeline")
