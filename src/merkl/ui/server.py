"""Start `merkl ui`: uvicorn serving the app over the repository found from here."""

from __future__ import annotations

import os
import sys

from merkl.errors import UsageError
from merkl.repo import Repo
from merkl.serve.runner import check_address


def serve_ui(host: str, port: int, *, allow_writes: bool = False) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    check_address(host, port)
    repo = Repo.find()
    # Pipelines are found by their path from the root and imported as `merkl run` imports
    # them, from the working directory: the two agree only at the root.
    os.chdir(repo.root)
    try:
        import uvicorn

        from merkl.ui.app import LOOPBACK_NAMES, create_app
    except ImportError as exc:
        raise UsageError(
            f"merkl ui needs the serve extra ({exc.name} is missing): pip install 'merkl[serve]'"
        ) from None
    mode = "changes allowed (--allow-writes)" if allow_writes else "read-only"
    print(f"merkl: ui for {repo.root} on http://{host}:{port}/ ({mode})", file=sys.stderr)
    uvicorn.run(
        create_app(
            repo,
            allow_writes=allow_writes,
            hosts=LOOPBACK_NAMES if host in LOOPBACK_NAMES else None,
        ),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
