"""Fixtures for provenance tests: the seed's example pipelines in a fresh repository."""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import REPO_ROOT, run_cli

EXAMPLES = REPO_ROOT / "examples"
HEX_RUN = re.compile(r"\b[0-9a-f]{8,64}\b")


@pytest.fixture
def examples(repo: Repo) -> Path:
    """`pipeline1.py`, `pipeline2.py` and `data/train.csv` copied into the test repository."""
    for name in ("pipeline1.py", "pipeline2.py"):
        shutil.copy(EXAMPLES / name, repo.root / name)
    shutil.copytree(EXAMPLES / "data", repo.root / "data")
    return repo.root


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in a pipeline module and make the next import see the change."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))
    sys.modules.pop(path.stem, None)
    importlib.invalidate_caches()


def run_ok(*argv: str) -> str:
    """`merkl ARGV…` in-process; fails the test unless it exits 0; returns stdout."""
    result = run_cli(*argv)
    assert result.code == 0, result.err
    return result.out


def normalise_hashes(text: str) -> str:
    """Hex hashes (8+ digits) replaced by `#1`, `#2`… in order of first appearance, so a
    snapshot pins the structure and which hashes are equal, not the digits."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        digest = match.group(0)
        key = next((k for k in numbers if k.startswith(digest) or digest.startswith(k)), digest)
        numbers.setdefault(key, len(numbers) + 1)
        return f"#{numbers[key]}"

    return HEX_RUN.sub(number, text)
