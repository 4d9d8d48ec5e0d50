"""Fixtures for the server tests: a pipeline module in a fresh repo, and an in-process client."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from merkl.evaluation import evaluate_value
from merkl.repo import Repo
from merkl.serve import ServeConfig, create_app
from merkl.session import Session, use_session
from tests.helpers import import_fresh, write_module

PIPELINE_SOURCE = '''
import os
from pathlib import Path

from merkl import BytesSerializer, CachePolicy, PickleSerializer, task, write_file

CALLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.txt")


def _log(name):
    with open(CALLS, "a") as handle:
        handle.write(name + "\\n")


@task
def square(x: int) -> int:
    _log("square")
    return x * x


@task
def add(a, b):
    _log("add")
    return a + b


@task
def fail(x):
    _log("fail")
    raise ValueError(f"cannot handle {x}")


@task(serializers=PickleSerializer())
def pickled(x):
    _log("pickled")
    return {"x": x}


@task(serializers=BytesSerializer())
def raw(x):
    return b"raw"


@task(cache_policy=CachePolicy.NEVER)
def uncached(x):
    _log("uncached")
    return x


def pipeline(x: int, y: float = 2.0):
    """Square x, then add y."""
    return add(square(x), y)


def two(x: int):
    return square(x), add(x, 1)


def failing(x: int):
    return add(fail(x), 1)


def broken(x):
    raise RuntimeError("bug in the pipeline itself")


def with_pickle(x: int):
    return pickled(x)


def returns_bytes(x: int):
    return raw(x)


def plain(x: int):
    return {"double": 2 * x}


def typed(name: str, path: Path = Path("."), *, flag: bool = False, ratio: float = 1.0):
    return [name, str(path), flag, ratio]


def flexible(first, /, *rest, **options):
    return [first, list(rest), options]


def writes(x: int):
    out = square(x)
    write_file(out, "written.json")
    return out


def never(x: int):
    return uncached(x)
'''

TARGETS = (
    "servepipe.pipeline",
    "servepipe.two",
    "servepipe.failing",
    "servepipe.broken",
    "servepipe.with_pickle",
    "servepipe.returns_bytes",
    "servepipe.plain",
    "servepipe.typed",
    "servepipe.flexible",
    "servepipe.writes",
    "servepipe.never",
    "servepipe.square",
)
SECRET = "test-secret-value"


@pytest.fixture
def pipeline_repo(repo: Repo) -> Repo:
    """A repo whose root holds `servepipe.py`; task bodies append their name to calls.txt."""
    write_module(repo.root, "servepipe", PIPELINE_SOURCE)
    return repo


def read_calls(repo: Repo) -> list[str]:
    """The task bodies run so far, in order."""
    path = Path(repo.root) / "calls.txt"
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def client_repo(tmp_path: Path, pipeline_repo: Repo) -> Repo:
    """A second repo (a client's own cache), using the same pipeline code."""
    return Repo.init(tmp_path / "client-side")


def fill_cache(repo: Repo, target: str, *args: Any) -> Any:
    """Compute target(*args) into `repo`'s cache, as a client would have done earlier."""
    module_name, _, name = target.rpartition(".")
    module = import_fresh(repo.root.parent / "work", module_name)
    with use_session(Session(repo)) as session:
        return evaluate_value(getattr(module, name)(*args), session=session)


@pytest.fixture
def serve_config() -> ServeConfig:
    return ServeConfig(targets=TARGETS, max_body_bytes=64 * 1024)


@pytest.fixture
def client(
    pipeline_repo: Repo, serve_config: ServeConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """An in-process client of an app serving every pipeline of `servepipe`, with a secret."""
    monkeypatch.setenv("MERKL_SERVE_SECRET", SECRET)
    with TestClient(create_app(serve_config)) as test_client:
        yield test_client


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve `app` with a real uvicorn on a free loopback port (in a thread); yield its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server_url(
    pipeline_repo: Repo, serve_config: ServeConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The URL of a real uvicorn serving every pipeline of `servepipe`, with a secret."""
    monkeypatch.setenv("MERKL_SERVE_SECRET", SECRET)
    with live_server(create_app(serve_config)) as url:
        yield url


@contextlib.contextmanager
def server_process(
    cwd: Path, *args: str, secret: str | None = SECRET
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`merkl serve ARGS…` as a real process on a free loopback port; yields it and its URL.

    Its output goes to `serve.log` in `cwd` (a pipe nobody reads would block the server).
    """
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "MERKL_SERVE_SECRET"}
    if secret is not None:
        env["MERKL_SERVE_SECRET"] = secret
    log = open(cwd / "serve.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "merkl", "serve", *args, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"merkl serve exited: {(cwd / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"merkl serve did not answer: {(cwd / 'serve.log').read_text()}"
                )
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
