"""Code identity: the same on every Python version; FUNCTION mode follows what a task references;
docstrings never invalidate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from merkl import CodeHashMode, task
from tests.helpers import REPO_ROOT, import_fresh, run_cli, write_module
from tests.test_hashing import GOLDEN_MODULE

PIPELINE = (
    textwrap.dedent(GOLDEN_MODULE)
    + """

def pipeline(x: int = 2):
    return everything(x), module_mode(x)
"""
)


def _other_pythons() -> list[Path]:
    """Interpreters of other versions made by `make cross-python` (.venv-py3.13, …)."""
    return sorted(p / "bin" / "python" for p in REPO_ROOT.glob(".venv-py3.*"))


def _dry_run(python: Path | str, folder: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run(
        [str(python), "-m", "merkl", "run", "--dry", "pipe.pipeline"],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(not _other_pythons(), reason="no other interpreter: run `make cross-python`")
@pytest.mark.parametrize("python", _other_pythons(), ids=lambda p: p.parent.parent.name)
def test_dry_run_hashes_match_across_python_versions(repo, python):
    (repo.root / "pipe.py").write_text(PIPELINE)
    here = _dry_run(sys.executable, repo.root)
    there = _dry_run(python, repo.root)
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.strip() != str(sys.version_info[:2])
    assert len(here.splitlines()) == 2
    assert here == there


MODULE = '''
"""Version {doc}."""
from merkl import CodeHashMode, task

SCALE = {scale}
OTHER = {other}
TABLE = {{"offset": 1}}


def _inner(x):
    """Helper of a helper ({doc})."""
    return x + TABLE["offset"]


def helper(x):
    return _inner(x) * SCALE


def unrelated():
    return OTHER


class Model:
    factor = {factor}

    def fit(self, x):
        return helper(x) * self.factor


@task(code_hash_mode=CodeHashMode.FUNCTION)
def train(x):
    """Train ({doc})."""
    return Model().fit(x)


@task
def module_task(x):
    return x
'''
BASE = {"doc": "one", "scale": 3, "other": 5, "factor": 2}


def _hashes(root: Path, **changes: object) -> dict[str, str]:
    write_module(root, "refmod", MODULE.format(**{**BASE, **changes}))
    module = import_fresh(root, "refmod")
    return {"train": module.train(1).hash, "module_task": module.module_task(1).hash}


def test_function_mode_follows_referenced_names(repo):
    before = _hashes(repo.root)
    assert _hashes(repo.root, other=6)["train"] == before["train"]  # unrelated constant
    assert _hashes(repo.root, scale=4)["train"] != before["train"]  # through helper
    assert _hashes(repo.root, factor=3)["train"] != before["train"]  # a class attribute


def test_function_mode_follows_helpers_of_helpers(repo):
    before = _hashes(repo.root)["train"]
    source = MODULE.format(**BASE).replace('TABLE["offset"]', 'TABLE["offset"] + 1')
    write_module(repo.root, "refmod", source)
    assert import_fresh(repo.root, "refmod").train(1).hash != before


def test_docstring_edits_do_not_invalidate(repo):
    before = _hashes(repo.root)
    assert _hashes(repo.root, doc="two") == before  # module, helper and task docstrings


def test_function_parts_name_what_a_task_references(repo):
    write_module(repo.root, "refmod", MODULE.format(**BASE))
    parts = import_fresh(repo.root, "refmod").train.code.parts
    assert set(parts) == {
        "code of train",
        "class Model",
        "function helper",
        "function _inner",
        "assignment SCALE",
        "assignment TABLE",
        "import CodeHashMode",
        "import task",
    }


def test_a_local_function_is_found_in_its_module_with_what_it_references():
    def local(x):
        return [*_other_pythons(), x]

    parts = task(code_hash_mode=CodeHashMode.FUNCTION)(local).code.parts
    assert set(parts) == {
        "code of test_a_local_function_is_found_in_its_module_with_what_it_references.<locals>"
        ".local",
        "function _other_pythons",
        "import REPO_ROOT",  # from tests.helpers: followed only if listed in code_deps
        "import Path",
    }


def test_why_names_the_referenced_name_that_changed(repo):
    tail = "\n\ndef p():\n    return train(1)\n"
    write_module(repo.root, "refmod", MODULE.format(**BASE) + tail)
    assert run_cli("run", "refmod.p").code == 0
    write_module(repo.root, "refmod", MODULE.format(**{**BASE, "scale": 40}) + tail)
    sys.modules.pop("refmod", None)
    result = run_cli("why", "refmod.p")
    assert result.code == 0, result.err
    assert "code changed: assignment 'SCALE' changed (code hash" in result.out
    assert "helper" not in result.out


def test_a_function_from_another_module_in_code_deps_is_followed_in_its_module(repo):
    helpers = """
    RATE = {rate}

    def scale(x):
        return x * _factor()

    def _factor():
        return RATE

    def unrelated():
        return {other}
    """
    user = """
    from merkl import CodeHashMode, task
    from xhelpers import scale

    @task(code_hash_mode=CodeHashMode.FUNCTION, code_deps=[scale])
    def apply(x):
        return scale(x)
    """

    def code_hash(rate: int, other: int) -> str:
        write_module(repo.root, "xhelpers", helpers.format(rate=rate, other=other))
        write_module(repo.root, "xuser", user)
        import_fresh(repo.root, "xhelpers")
        return import_fresh(repo.root, "xuser").apply.code_hash

    before = code_hash(2, 0)
    assert code_hash(2, 1) == before  # an unrelated function of the helper module
    assert code_hash(3, 0) != before  # a constant the helper reads through another helper


def test_importing_another_name_on_the_same_line_changes_nothing(repo):
    before = _hashes(repo.root)["train"]
    source = MODULE.format(**BASE).replace(
        "from merkl import CodeHashMode, task", "from merkl import CodeHashMode, path, task"
    )
    write_module(repo.root, "refmod", source)
    assert import_fresh(repo.root, "refmod").train(1).hash == before
    source = source.replace(
        "from merkl import CodeHashMode, path, task",
        "from merkl import task\nfrom merkl.deps import CodeHashMode",
    )
    write_module(repo.root, "refmod", source)
    assert import_fresh(repo.root, "refmod").train(1).hash != before  # bound from elsewhere
