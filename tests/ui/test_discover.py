"""Finding pipelines by reading the repository's Python files."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.ui import discover
from merkl.ui.discover import find_pipelines
from tests.helpers import write_module


def test_pipelines_tasks_and_imports(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "steps",
        """
        import merkl
        from merkl import task

        @task
        def clean(x):
            return x

        @merkl.task(outs=2)
        def split(x):
            return x, x

        def helper(x):
            return x + 1
        """,
    )
    write_module(
        tmp_path,
        "flows",
        '''
        from steps import clean, split, helper

        def main(path, *, fast: bool = False):
            """Clean then split.

            More text.
            """
            return split(clean(path))

        def only_helper(x):
            return helper(x)

        def _private(x):
            return clean(x)
        ''',
    )
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    write_module(
        tmp_path / ".venv" / "lib",
        "hidden",
        "from merkl import task\n@task\ndef t(x): return x\ndef p(x): return t(x)\n",
    )
    (tmp_path / "broken.py").write_text("def (:\n")
    pipelines = find_pipelines(tmp_path)
    assert [p.target for p in pipelines] == ["flows.main"]
    (main,) = pipelines
    assert set(main.tasks) == {"steps.clean", "steps.split"}
    assert main.parameters == ("path", "fast")
    assert main.doc == "Clean then split."


def test_a_package_module_gets_its_dotted_name(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    write_module(tmp_path / "pkg", "__init__", "")
    write_module(
        tmp_path / "pkg",
        "flow",
        "from merkl import task\n@task()\ndef t(x): return x\ndef run(x): return t(x)\n",
    )
    assert [p.target for p in find_pipelines(tmp_path)] == ["pkg.flow.run"]


def test_an_edit_is_seen_and_unchanged_files_are_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_module(tmp_path, "flow", "from merkl import task\n@task\ndef t(x): return x\n")
    assert find_pipelines(tmp_path) == []
    parsed: list[Path] = []
    original = discover._parse
    monkeypatch.setattr(discover, "_parse", lambda root, p: parsed.append(p) or original(root, p))
    assert find_pipelines(tmp_path) == []
    assert parsed == []
    path.write_text(path.read_text() + "def run(x):\n    return t(x)\n")
    assert [p.target for p in find_pipelines(tmp_path)] == ["flow.run"]
    assert parsed == [path]
