"""Fixtures for the reliability suite: a repo with a small pipeline evaluated in it."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import import_fresh, write_module

PIPELINE = """
    from merkl import BytesSerializer, task

    @task
    def square(x):
        return x * x

    @task(serializers=BytesSerializer())
    def blob(n):
        return bytes(range(256)) * n

    @task
    def total(a, b):
        return a + b
"""


@pytest.fixture
def session(repo: Repo) -> Iterator[Session]:
    """An open session on `repo`, as `merkl run` would use."""
    with use_session(Session(repo)) as active:
        yield active


@pytest.fixture
def pipe(repo: Repo, session: Session) -> ModuleType:
    """A pipeline module (square, blob, total) importable from the repo root."""
    write_module(repo.root, "pipe_rel", PIPELINE)
    return import_fresh(repo.root, "pipe_rel")
