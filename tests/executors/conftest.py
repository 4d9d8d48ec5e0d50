"""Fixtures for executor tests: pipeline modules on disk that log each body execution."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from merkl.repo import Repo
from tests.helpers import import_fresh, write_module

# Every module logs its body executions to calls.log beside it, so executions in worker
# processes are counted too. Names are unique per test: long-lived Dask workers keep
# imported modules, and a module of the same name and code would log to another folder.
LOGGING_HEADER = """
import os
from pathlib import Path

from merkl import task

LOG = Path(__file__).with_name("calls.log")


def _log(name):
    with open(LOG, "a") as handle:
        handle.write(f"{name}\\n")
"""

_counter = itertools.count()


class Pipelines:
    """Writes and imports pipeline modules into the test's repo."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.prefix = prefix

    def make(self, body: str, name: str | None = None) -> ModuleType:
        name = name or f"{self.prefix}_{next(_counter)}"
        write_module(self.root, name, LOGGING_HEADER + body)
        return import_fresh(self.root, name)

    def calls(self) -> list[str]:
        log = self.root / "calls.log"
        return log.read_text().split() if log.exists() else []

    def clear_calls(self) -> None:
        (self.root / "calls.log").unlink(missing_ok=True)


@pytest.fixture
def pipelines(repo: Repo, request: pytest.FixtureRequest) -> Pipelines:
    safe = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return Pipelines(repo.root, f"pipe_{safe}")


def output_rows(repo: Repo) -> list[tuple[str, str, str, int]]:
    """The `outputs` table: (out_hash, oid, serializer, size), sorted."""
    with contextlib.closing(sqlite3.connect(repo.dot_dir / "index.sqlite")) as conn:
        return sorted(conn.execute("SELECT out_hash, oid, serializer, size FROM outputs"))


def run_counts(repo: Repo) -> dict[str, int]:
    """Rows of the `runs` log per output hash: one per time an output was computed."""
    with contextlib.closing(sqlite3.connect(repo.dot_dir / "index.sqlite")) as conn:
        rows = conn.execute("SELECT out_hash, count(*) FROM runs GROUP BY out_hash")
        return dict(rows.fetchall())


def object_files(repo: Repo) -> set[str]:
    return {
        p.relative_to(repo.objects_dir).as_posix()
        for p in repo.objects_dir.rglob("*")
        if p.is_file()
    }
