"""Notebooks executed by real IPython kernels (ipykernel), driven by nbclient as Jupyter would.

`run_notebook` starts a fresh kernel for each call (a kernel restart followed by "run all"), in
the notebook's folder, with JPY_SESSION_NAME naming the notebook as jupyter_server does. The
kernel is this interpreter, through a kernel spec of its own installed for the test session
(so a `python3` spec elsewhere on the machine, for another Python, cannot be picked up).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

RAN = re.compile(r"^RAN (\S+)$", re.MULTILINE)
KERNEL = "merkl-test-python"


@functools.cache
def kernel_path() -> str:
    """A folder for JUPYTER_PATH holding the `merkl-test-python` kernel spec (this Python)."""
    from ipykernel.kernelspec import install

    prefix = tempfile.mkdtemp(prefix="merkl-kernelspec-")
    install(kernel_name=KERNEL, prefix=prefix)
    return os.path.join(prefix, "share", "jupyter")


@dataclass
class Executed:
    """What a notebook's run printed: the task bodies that ran and each cell's text output."""

    ran: list[str]
    cells: list[str]
    notebook: object


def make_notebook(path: Path, cells: list[str]) -> None:
    """Write a notebook of `cells` (code) to `path`."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path.write_text(nbformat.writes(notebook))


def cell_text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif output.get("output_type") == "error":
            parts.append("\n".join(output["traceback"]))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def run_notebook(
    path: Path, cells: list[str] | None = None, *, allow_errors: bool = False
) -> Executed:
    """Execute the notebook at `path` (written from `cells` first, when given) in a new kernel."""
    if cells is not None:
        make_notebook(path, cells)
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        allow_errors=allow_errors,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
    )
    env = {**os.environ, "JPY_SESSION_NAME": str(path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    before = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = kernel_path()  # where the client looks the kernel spec up
    try:
        client.execute(env=env)
    finally:
        if before is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = before
    texts = [cell_text(cell) for cell in notebook.cells]
    return Executed(RAN.findall("\n".join(texts)), texts, notebook)
