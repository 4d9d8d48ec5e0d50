"""Fixtures for command-line tests: a small pipeline module in a fresh repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import write_module

PIPELINE = '''
from merkl import task


@task
def add(a, b):
    return a + b


def pipe(a, b=2):
    """Add two numbers in a task."""
    return add(a, b)


def concat(a, b):
    return add(a, b)


def typed(a: int, b: int = 2):
    return add(a, b)


def plain(a, b=2):
    return a + b


def formats(x, *, format="csv"):
    return add(x, format)


def many(n: int = 3):
    return [add(i, 0) for i in range(n)]


def big(n: int = 1_000_000):
    return "x" * n
'''


@pytest.fixture
def project(repo: Repo) -> Path:
    """A repository holding `p.py` (the pipelines above)."""
    write_module(repo.root, "p", PIPELINE)
    return repo.root
