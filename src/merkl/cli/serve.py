"""`merkl serve`: pipelines behind HTTP."""

from __future__ import annotations

from merkl.errors import UsageError
from merkl.serve.service import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_THREADS,
    DEFAULT_TIMEOUT,
    ServeConfig,
)
from merkl.serve.signing import DEFAULT_SECRET_ENV


def serve(
    *targets: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    threads: int = DEFAULT_THREADS,
    secret_env: str = DEFAULT_SECRET_ENV,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allow_unsafe_values: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    allow_outside_paths: bool = False,
    write_files: bool = False,
    debug: bool = False,
    access_log: bool = False,
    no_memo: bool = False,
) -> None:
    """Serve pipelines over HTTP with warm caches (Starlette on uvicorn).

    Each TARGET is `module.function`, importable from the current directory, imported once.
    Endpoints: `GET /healthz`; `POST /v1/run/TARGET` with `{"args": [...], "kwargs": {...}}`
    answers `{"result": ..., "hashes": [...]}`; `POST /v1/dry-run/TARGET` lists each output's
    hash, task and whether it is cached; `GET /openapi.json` describes them. Cached outputs are
    answered without running task bodies.

    A run body may carry `"cache": {"<output hash>": value}` to send values the client already
    computed; they are stored only when the `X-Merkl-Signature` header is the hex HMAC-SHA256
    of the raw body with the secret in $MERKL_SERVE_SECRET (see --secret-env), else 403.

    Requests whose outputs are cached are answered even while every task thread is busy or
    hung; a request taking longer than --timeout gets 504 (GET /healthz counts busy and hung
    workers). Files that pipelines name (merkl.path, read_file, write_file) must be inside the
    repository, and write_file writes nothing unless --write-files. A 500 names the failing
    task and exception type, not the exception's text (which may quote files or secrets)
    unless --debug. Stop with Ctrl-C or SIGTERM.

    :param targets: the pipelines to serve, as module.function
    :param host: the address to listen on (127.0.0.1: this machine only)
    :param port: the TCP port to listen on
    :param workers: the number of server processes; they share the repo's cache
    :param threads: the number of requests each process evaluates at once (task bodies are
        sync code and run in these threads)
    :param secret_env: the environment variable holding the secret that client-sent cache
        values must be signed with
    :param max_body_bytes: the largest request body accepted (larger: 413)
    :param allow_unsafe_values: accept client-sent values for outputs stored with an unsafe
        serializer (pickle)
    :param timeout: seconds a request may take, waiting included (then 504)
    :param allow_outside_paths: let pipelines read and write files outside the repository
    :param write_files: let write_file write into the work tree (one writer per file at a
        time); without it outputs are computed and cached but no file is written
    :param debug: put the exception's text into 500 answers
    :param access_log: log every request
    :param no_memo: build every request's DAG again, even when its code, arguments and input
        files are unchanged (as with MERKL_REQUEST_MEMO=0; for debugging and comparison)
    """
    from merkl.serve.runner import check_options, serve_forever

    if not targets:
        raise UsageError(
            "merkl serve needs at least one TARGET (module.function), "
            "e.g. `merkl serve pipeline1.my_pipeline`",
            exit_code=2,
        )
    check_options(host, port, workers, threads, max_body_bytes, timeout)
    config = ServeConfig(
        targets=tuple(dict.fromkeys(targets)),
        max_body_bytes=max_body_bytes,
        secret_env=secret_env,
        allow_unsafe_values=allow_unsafe_values,
        repo_root=None,
        threads=threads,
        timeout=timeout,
        allow_outside_paths=allow_outside_paths,
        write_files=write_files,
        debug=debug,
        memo=not no_memo,
    )
    serve_forever(config, host=host, port=port, workers=workers, access_log=access_log)
