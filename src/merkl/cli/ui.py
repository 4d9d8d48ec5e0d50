"""`merkl ui`: the repository in a browser."""

from __future__ import annotations

DEFAULT_PORT = 8765


def ui(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, allow_writes: bool = False) -> None:
    """Browse this repository's pipelines, runs, tracked files and lineage in a web browser.

    Serves a local web app (Starlette on uvicorn, the serve extra): `/` lists the pipelines
    found in the repository's Python files, recent runs, tracked files and remotes;
    `/dag/MODULE.FUNCTION?arg=value` draws a pipeline's DAG without running it (cached
    outputs green, missing red; click a box for its hashes, run time and why it would
    run); `/runs`, `/files` and `/lineage` show the run log, tracked files and the lineage
    graph. Each page has a JSON twin under `/api/`. Pages refresh while `merkl run` works.

    Example: merkl ui, then open http://127.0.0.1:8765/

    :param host: the address to listen on (127.0.0.1: this machine only)
    :param port: the TCP port
    :param allow_writes: allow the pages to change the repository (forget a cached output,
        pull a missing one from the default remote; each after a confirmation); read-only
        otherwise
    """
    from merkl.ui.server import serve_ui

    serve_ui(host, port, allow_writes=allow_writes)
