"""`deps.InteractiveModule`: the code identity of functions defined in cells run one by one (a
notebook's kernel), checked in-process; tests/notebook checks the same through real kernels."""

from __future__ import annotations

import contextlib
import linecache
import sys
import types
from collections.abc import Iterator

import pytest

from merkl.deps import InteractiveModule, register_interactive
from merkl.errors import TaskDefinitionError
from merkl.tasks import Task, task


class Cells:
    """A module whose code is run cell by cell, as a kernel runs a notebook."""

    def __init__(self, module: str, name: str = "nb.ipynb") -> None:
        self.sources: list[str] = []
        self.module = types.ModuleType(module)
        sys.modules[module] = self.module
        register_interactive(module, InteractiveModule(name, lambda: self.sources))

    def run(self, source: str) -> None:
        filename = f"<{self.module.__name__} cell {len(self.sources) + 1}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        self.sources.append(source)
        with contextlib.suppress(SyntaxError):  # a kernel reports it; the cell stays in history
            exec(compile(source, filename, "exec"), self.module.__dict__)

    def __getitem__(self, name: str) -> Task:
        value = self.module.__dict__[name]
        assert isinstance(value, Task)
        return value


@pytest.fixture
def cells() -> Iterator[Cells]:
    made = Cells("merkl_test_cells")
    yield made
    register_interactive("merkl_test_cells", None)
    del sys.modules["merkl_test_cells"]


TASK = "from merkl import task\n\n@task\ndef f(x):\n    return helper(x) * K\n"


def test_the_hash_follows_the_last_cell_binding_each_name(cells: Cells) -> None:
    cells.run("K = 2\n\ndef helper(x):\n    return x + 1\n")
    cells.run(TASK)
    first = cells["f"](1).hash
    cells.run("UNRELATED = 1  # other cells run: same hash")
    assert cells["f"](1).hash == first
    cells.run("K = 3")
    assert cells["f"](1).hash != first
    cells.run("K = 2")  # the helper cell's value again
    assert cells["f"](1).hash == first
    cells.run("def helper(x):\n    # a comment and formatting only\n    return x+1\n")
    assert cells["f"](1).hash == first
    cells.run("def helper(x):\n    return x + 2\n")
    assert cells["f"](1).hash != first


def test_a_cell_that_does_not_parse_is_skipped(cells: Cells) -> None:
    cells.run("K = 2\n\ndef helper(x):\n    return x\n")
    cells.run(TASK)
    first = cells["f"](1).hash
    cells.run("def broken(:\n")
    assert cells["f"](1).hash == first


def test_the_notebook_name_names_the_task_and_is_in_its_hash() -> None:
    hashes = []
    for module, name in (("merkl_test_a", "a/nb.ipynb"), ("merkl_test_b", "b/nb.ipynb")):
        notebook = Cells(module, name)
        notebook.run("K = 1\ndef helper(x):\n    return x\n")
        notebook.run(TASK)
        assert notebook["f"].module == name
        hashes.append(notebook["f"](1).hash)
        register_interactive(module, None)
    assert hashes[0] != hashes[1]


def test_a_function_from_exec_without_cell_source_asks_for_a_version(cells: Cells) -> None:
    exec("def g(x):\n    return x\n", cells.module.__dict__)
    with pytest.raises(TaskDefinitionError, match=r"not in the cells run so far.*version="):
        task(cells.module.__dict__["g"])
