"""Fixtures for the `merkl ui` tests: a repository with run, tracked, pushed and edited state,
and a real uvicorn serving the UI over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from merkl.repo import Repo
from merkl.ui.app import create_app
from tests.helpers import REPO_ROOT, run_cli
from tests.serve.conftest import live_server

EXAMPLES = REPO_ROOT / "examples"


def ok(*argv: str) -> str:
    result = run_cli(*argv)
    assert result.code == 0, result.err
    return result.out


@pytest.fixture
def ui_repo(repo: Repo, tmp_path: Path) -> Repo:
    """The seed's pipelines run once; data/train.csv tracked and pushed to remote `origin`;
    data/notes.txt tracked, then edited (modified)."""
    for name in ("pipeline1.py", "pipeline2.py"):
        shutil.copy(EXAMPLES / name, repo.root / name)
    shutil.copytree(EXAMPLES / "data", repo.root / "data")
    ok("track", "data/train.csv")
    ok("run", "pipeline2.pipeline")
    ok("run", "pipeline1.my_pipeline", "42")
    (repo.root / "data" / "notes.txt").write_text("first notes\n")
    ok("track", "data/notes.txt")
    ok("remote", "add", "origin", str(tmp_path / "remote"), "--default")
    ok("push")
    (repo.root / "data" / "notes.txt").write_text("edited notes\n")
    return repo


@pytest.fixture
def ui_url(ui_repo: Repo) -> Iterator[str]:
    """A real uvicorn on a free loopback port serving `merkl ui` over `ui_repo` (read-only)."""
    with live_server(create_app(ui_repo)) as url:
        yield url
