"""`%load_ext merkl`: cached tasks defined in the cells of a Jupyter notebook.

Loading the extension registers the kernel's `__main__` as an interactive module
(`merkl.deps.InteractiveModule`): a task defined in a cell is hashed by its own normalised AST
and the notebook-level functions, classes, constants and imports it references, transitively,
for each name as the last cell that bound it defined it. Cell positions, execution counts and
unrelated cells are not hashed, so a kernel restart followed by "run all" finds every result in
the cache. Tasks are named by the notebook's path in the repository (`notebooks/a.ipynb`), so
two notebooks with a function of the same name do not share results.

It also adds the `%merkl` magics (`init`, `name`, `dag`, `dry`), shows a progress bar in the
cell for long runs, and draws a `Placeholder` shown as a
cell's result as its DAG (SVG, with Graphviz's `dot`).
"""

from __future__ import annotations

import ast
import html
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from merkl.cells import notebook_name
from merkl.deps import InteractiveModule, register_interactive
from merkl.errors import MerklError, UsageError
from merkl.ops.run import dry_run_table
from merkl.placeholder import Placeholder
from merkl.progress import set_bar_maker
from merkl.provenance.dot import render_image, to_dot
from merkl.provenance.model import Dag, build_dag
from merkl.provenance.pipeline import Pipeline
from merkl.provenance.text import tree_text
from merkl.repo import Repo
from merkl.session import current_session, reset_sessions, use_session
from merkl.tasks import iter_lazy

# Where front ends say which notebook a kernel runs: jupyter_server (and nbclient in merkl's
# tests) set JPY_SESSION_NAME, ipykernel copies it to `__session__`, VS Code sets its own.
_PATH_ENV = "JPY_SESSION_NAME"
_PATH_GLOBALS = ("__session__", "__vsc_ipynb_file__")
UNNAMED = "notebook.ipynb"

_HELP = """\
%merkl init            make the notebook's folder a merkl repository
%merkl name PATH       name this notebook's tasks by PATH (when the front end does not say)
%merkl dag EXPR        draw the DAG of EXPR's placeholders (SVG)
%merkl dry EXPR        hashes of EXPR's DAG and whether each output is cached
%%merkl dry            the same for the value of the cell's last line
"""


def load_ipython_extension(ipython: Any) -> None:
    """Called by `%load_ext merkl` (through the `merkl` package)."""
    name = given_name(ipython.user_ns)
    if name is None:
        name = UNNAMED
        print(
            f"merkl: this kernel does not say which notebook it runs; tasks are named "
            f"{UNNAMED}.<function>: name them with %merkl name PATH",
            file=sys.stderr,
        )
    use_notebook(ipython, name)
    ipython.register_magic_function(_merkl_line_cell, magic_kind="line_cell", magic_name="merkl")
    svg = ipython.display_formatter.formatters["image/svg+xml"]
    svg.for_type(Placeholder, placeholder_svg)
    if "ipykernel" in sys.modules:  # a Jupyter kernel; a terminal IPython keeps rich's bar
        set_bar_maker(NotebookBar)


def unload_ipython_extension(ipython: Any) -> None:
    register_interactive("__main__", None)
    set_bar_maker(None)


def use_notebook(ipython: Any, name: str) -> None:
    """Hash and name the tasks of this kernel's cells as those of notebook `name`."""
    history = ipython.history_manager.input_hist_parsed  # grows by one source per cell run
    register_interactive("__main__", InteractiveModule(name, lambda: history))


def given_name(user_ns: dict[str, Any]) -> str | None:
    """The notebook's path relative to its repository's root (else as the front end gave it)."""
    given = os.environ.get(_PATH_ENV) or next(
        (user_ns[key] for key in _PATH_GLOBALS if isinstance(user_ns.get(key), str)), None
    )
    if not given:
        return None
    return repo_relative(Path(given))


def repo_relative(path: Path) -> str:
    """`path` relative to its repository's root; a relative path is the front end's, from its
    own root: the kernel runs in the notebook's folder."""
    if not path.is_absolute():
        here = Path.cwd() / path.name
        path = here if here.exists() else Path.cwd() / path
    return notebook_name(path)


class NotebookBar:
    """A progress bar in the cell's output, for runs longer than `SHOW_AFTER_S`: an HTML
    `<progress>` updated in place (at most every `EVERY_S`), left as a summary at the end.
    It has the methods of rich's Progress that `merkl.progress.Progress` calls."""

    SHOW_AFTER_S = 1.0
    EVERY_S = 0.25

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.description = ""
        self.total: float | None = None
        self.completed = 0.0
        self.label = ""
        self._started = time.monotonic()
        self._drawn = 0.0  # when last drawn; 0: not shown yet
        self._handle: Any = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        # Redraws while one long task runs, as rich's refresh thread does; ipykernel sends a
        # thread's output to the cell that started it.
        self._ticker = threading.Thread(target=self._tick, name="merkl-bar", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stopped.wait(self.EVERY_S * 2):
            self._draw()

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        self.description, self.total = description, total
        return 0

    def update(
        self,
        task: int,
        *,
        total: float | None = None,
        completed: float | None = None,
        call: str | None = None,
        **fields: Any,
    ) -> None:
        if total is not None:
            self.total = total
        if completed is not None:
            self.completed = completed
        if call is not None:
            self.label = call
        self._draw()

    def advance(self, task: int, count: float) -> None:
        self.completed += count
        self._draw()

    def stop(self) -> None:
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._handle is not None:
            self.label = ""
            self._draw(final=True)

    def _draw(self, final: bool = False) -> None:
        from IPython.display import display

        now = time.monotonic()
        with self._lock:
            if not final and (
                now - self._started < self.SHOW_AFTER_S or now - self._drawn < self.EVERY_S
            ):
                return
            self._drawn = now
            bundle = self._bundle(now - self._started)
            if self._handle is None:
                self._handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
            else:
                self._handle.update(bundle, raw=True)

    def _bundle(self, elapsed: float) -> dict[str, str]:
        """The bar as HTML (a notebook) and as text (a console, a notebook's text view)."""
        total = f"/{self.total:g}" if self.total is not None else ""
        running = f" · {self.label}" if self.label else ""
        text = (
            f"merkl {self.description}: {self.completed:g}{total} {self.unit}, "
            f"{elapsed:.1f}s{running}"
        )
        maximum = f' max="{self.total:g}"' if self.total else ""
        bar = f'<progress value="{self.completed:g}"{maximum}></progress>'
        return {"text/plain": text, "text/html": f"<div>{bar} {html.escape(text)}</div>"}


def placeholder_svg(placeholder: Placeholder) -> str | None:
    """A placeholder shown as a cell's result: its DAG as SVG (None without Graphviz or a
    repository: the notebook then shows its text form)."""
    try:
        return render_image(to_dot(value_dag(placeholder)), "svg").decode()
    except MerklError:
        return None


def value_dag(value: Any, title: str = "notebook") -> Dag:
    """The DAG of the placeholders in `value`, with their cache states."""
    repo = current_session().require_repo()
    roots = list(dict.fromkeys(iter_lazy(value)))
    return build_dag(Pipeline(title, value, roots, [], repo))


class DagImage:
    """A DAG shown as a cell's result: SVG in a notebook, the text tree elsewhere."""

    def __init__(self, dag: Dag) -> None:
        self.dag = dag

    def _repr_svg_(self) -> str:
        return render_image(to_dot(self.dag), "svg").decode()

    def __repr__(self) -> str:
        return tree_text(self.dag, color=False)


def dry_text(value: Any) -> str:
    """One line per node of `value`'s DAG: hash, task, cached/missing (nothing runs)."""
    with use_session() as session:
        return dry_run_table(value, [], session)


def _merkl_line_cell(line: str, cell: str | None = None) -> Any:
    """`%merkl` / `%%merkl`: see `_HELP`."""
    from IPython import get_ipython

    ipython = get_ipython()
    command, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    try:
        if command == "init":
            repo = Repo.init(Path.cwd())
            reset_sessions()
            name = given_name(ipython.user_ns)
            if name is not None:  # now relative to the new repository's root
                use_notebook(ipython, name)
            print(f"merkl: initialised a repository in {repo.root}")
            return None
        if command == "name":
            if not rest:
                raise UsageError("%merkl name needs the notebook's path, e.g. %merkl name a.ipynb")
            use_notebook(ipython, repo_relative(Path(rest)))
            return None
        if command in ("dag", "dry"):
            value = _evaluate_source(ipython, cell if cell is not None else rest)
            if command == "dry":
                print(dry_text(value), end="")
                return None
            return DagImage(value_dag(value))
    except MerklError as exc:
        print(f"merkl: {exc}", file=sys.stderr)
        return None
    print(_HELP, end="")
    return None


def _evaluate_source(ipython: Any, source: str) -> Any:
    """Run `source` in the notebook's namespace; the value of its last line when it is an
    expression (as a cell shows it)."""
    if not source.strip():
        raise UsageError("give an expression: %merkl dry out, or a cell under %%merkl dry")
    tree = ast.parse(ipython.transform_cell(source))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    namespace = ipython.user_ns
    exec(compile(tree, "<merkl cell>", "exec", dont_inherit=True), namespace)
    if last is None:
        return None
    expression = ast.Expression(last.value)
    return eval(compile(expression, "<merkl cell>", "eval", dont_inherit=True), namespace)
