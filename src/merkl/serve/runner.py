"""Start uvicorn on the app: in this process, or in `workers` processes sharing one repo.

The targets are imported here first, so a bad target fails `merkl serve` at once with a one-line
error instead of in each worker. Workers get the config through `$MERKL_SERVE_CONFIG` and build
their own app (`merkl.serve.app:app_from_environment`); the secret stays in its own variable.
"""

from __future__ import annotations

import os
import sys

from merkl.errors import UsageError
from merkl.serve.service import PipelineService, ServeConfig
from merkl.serve.signing import read_secret

_APP_FACTORY = "merkl.serve.app:app_from_environment"


def check_address(host: str, port: int) -> None:
    """Raises: UsageError (exit code 2) for an empty host or a port out of range."""
    if not host:
        raise UsageError("--host must not be empty (e.g. 127.0.0.1)", exit_code=2)
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port!r}: expected a TCP port from 0 to 65535", exit_code=2)


def check_options(host: str, port: int, workers: int, threads: int, max_body_bytes: int) -> None:
    """Refuse impossible settings before anything is imported or bound.

    Raises:
        UsageError: (exit code 2) naming the bad option.
    """
    check_address(host, port)
    if workers < 1:
        raise UsageError(f"--workers {workers!r}: expected 1 or more processes", exit_code=2)
    if threads < 1:
        raise UsageError(f"--threads {threads!r}: expected 1 or more threads", exit_code=2)
    if max_body_bytes < 1:
        raise UsageError(f"--max-body-bytes {max_body_bytes!r}: expected 1 or more", exit_code=2)


def serve_forever(
    config: ServeConfig, *, host: str, port: int, workers: int = 1, access_log: bool = False
) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    import uvicorn

    from merkl.serve.app import CONFIG_ENV, create_app

    service = PipelineService.load(config)  # import errors surface here, once
    secret_state = (
        "accepted when signed"
        if read_secret(config.secret_env)
        else f"refused (no secret in ${config.secret_env})"
    )
    print(
        f"merkl: serving {', '.join(config.targets)} on http://{host}:{port} with "
        f"{workers} worker(s); client-sent cache values {secret_state}",
        file=sys.stderr,
    )
    options = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "timeout_graceful_shutdown": 10,
        "log_level": "info",
    }
    if workers == 1:
        uvicorn.run(create_app(service), **options)  # type: ignore[arg-type]
        return
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run(_APP_FACTORY, factory=True, workers=workers, **options)  # type: ignore[arg-type]
