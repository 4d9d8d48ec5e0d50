"""Execute a notebook headless in a new kernel (as "restart and run all" does) and print each
code cell's text output: `python run_notebook.py analysis.ipynb`. Used by `make demo`.

The kernel is told which notebook it runs through JPY_SESSION_NAME, as Jupyter's server does,
so `%load_ext merkl` names the notebook's tasks by its path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbclient
import nbformat


def main(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env={**os.environ, "JPY_SESSION_NAME": str(path.resolve())})
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        print(f"In: {cell.source.splitlines()[0]}")
        for output in cell.outputs:
            if output.output_type == "stream":
                print(output.text, end="")
            elif "data" in output:
                kinds = ", ".join(kind for kind in output.data if kind != "text/plain")
                print(output.data.get("text/plain", ""), f"[{kinds}]" if kinds else "")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
