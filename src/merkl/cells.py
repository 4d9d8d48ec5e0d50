"""A Jupyter notebook's code cells run as a module, so `merkl run nb.ipynb:function` runs a
pipeline prototyped in a notebook without copying its code.

The cells run in order, like a kernel's "run all" without outputs, in a module registered as an
`InteractiveModule` named by the notebook's path in the repository: its tasks get the names and
hashes they get in the notebook under `%load_ext merkl`, so both share their cached results.
IPython syntax is left out: a cell starting with a cell magic (`%%time`) is skipped, a line
magic or shell line (`%load_ext merkl`, `!pip …`) is dropped. So are the cells' outputs: a
top-level expression that only shows or evaluates something (`summary`, `print(…)`,
`display(…)`, `out.get()`) is not run, so `merkl run --dry`, `merkl dag` and `merkl why` of a
notebook compute nothing. Other top-level statements run as in "run all".
"""

from __future__ import annotations

import ast
import linecache
import re
import sys
import types
from pathlib import Path

import orjson

from merkl.deps import InteractiveModule, register_interactive
from merkl.errors import UsageError
from merkl.repo import find_root

SUFFIX = ".ipynb"
_IPYTHON_LINE = re.compile(r"^\s*[%!]")


def notebook_name(path: Path) -> str:
    """`path` relative to the root of the merkl repository around it (else its file name):
    what the tasks of a notebook are named by."""
    path = path.resolve()
    root = find_root(path.parent)
    return path.relative_to(root.resolve()).as_posix() if root is not None else path.name


def code_cells(path: Path) -> list[str]:
    """The Python source of each code cell of the notebook at `path`, IPython syntax left out."""
    try:
        notebook = orjson.loads(path.read_bytes())
        cells = notebook["cells"]
    except FileNotFoundError:
        raise UsageError(f"{path}: no such notebook") from None
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a Jupyter notebook ({exc})") from None
    sources = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if text.lstrip().startswith("%%"):
            continue
        lines = ["" if _IPYTHON_LINE.match(line) else line for line in text.splitlines()]
        sources.append("\n".join(lines) + "\n")
    return sources


def load_notebook(path: Path) -> types.ModuleType:
    """Run the code cells of the notebook at `path` in a new module and return it."""
    name = notebook_name(path)
    module_name = "merkl_notebook." + re.sub(r"\W", "_", name)
    sources = code_cells(path)
    module = types.ModuleType(module_name, f"The code cells of {name}")
    sys.modules[module_name] = module
    register_interactive(module_name, InteractiveModule(name, lambda: sources))
    for number, source in enumerate(sources, start=1):
        filename = f"<{name} cell {number}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)  # for inspect, deps
        try:
            tree = ast.parse(source, filename)
        except SyntaxError as exc:
            raise UsageError(
                f"{name}, code cell {number}: {exc.msg} (line {exc.lineno})"
            ) from None
        tree.body = [stmt for stmt in tree.body if not is_output(stmt)]
        # dont_inherit: not this module's `from __future__ import annotations` (clize reads them)
        exec(compile(tree, filename, "exec", dont_inherit=True), module.__dict__)
    return module


_SHOWS = frozenset({"print", "display"})


def is_output(stmt: ast.stmt) -> bool:
    """A top-level expression that only shows or evaluates a value: `x`, `x.y`, `x[0]`,
    `print(…)`, `display(…)`, `….get()`."""
    if not isinstance(stmt, ast.Expr):
        return False
    value = stmt.value
    if isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        return (isinstance(func, ast.Name) and func.id in _SHOWS) or (
            isinstance(func, ast.Attribute) and func.attr == "get"
        )
    return False
