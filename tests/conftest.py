"""Shared fixtures: every test runs in its own directory with fresh merkl state."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from merkl.cache import clear_memory_cache
from merkl.repo import Repo
from merkl.session import reset_sessions


@pytest.fixture(autouse=True)
def merkl_globals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Reset merkl's process-wide state around every test and run it in `tmp_path/work`."""
    for key in list(os.environ):
        if key.startswith("MERKL_") and not key.startswith("MERKL_TEST_"):
            monkeypatch.delenv(key)
    # The user's signing key lives in their config folder: never read or write the real one.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    modules_before = set(sys.modules)
    path_before = list(sys.path)
    reset_sessions()
    clear_memory_cache()
    yield work
    reset_sessions()
    clear_memory_cache()
    sys.path[:] = path_before
    for name in set(sys.modules) - modules_before:
        module = sys.modules.get(name)
        if module is not None and str(getattr(module, "__file__", "") or "").startswith(
            str(tmp_path)
        ):
            del sys.modules[name]


@pytest.fixture
def repo(merkl_globals: Path) -> Repo:
    """A fresh repository in the test's working directory."""
    return Repo.init(merkl_globals)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
