"""Helpers shared by tests: pipeline modules on disk, CLI runs, call counters."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from merkl.cli import main
from merkl.repo import Repo

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write `name.py` (dedented source) into `folder`, importable once `folder` is on sys.path."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return path


def import_fresh(folder: Path, name: str) -> ModuleType:
    """Import (or re-import after an edit) module `name` from `folder`."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> CliResult:
    """Run `merkl ARGV…` in this process."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return CliResult(code, out.getvalue(), err.getvalue())


def run_merkl_process(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """Run `merkl ARGV…` as a separate process (fresh imports, real exit code)."""
    proc = subprocess.run(
        [sys.executable, "-m", "merkl", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def damage_object(repo: Repo, oid: str, data: bytes | None = None) -> None:
    """Overwrite a store object with `data` (default: one bit flipped), simulating bit rot:
    its file if it has one, else its inline bytes in the index (small task outputs)."""
    import os
    import sqlite3

    path = repo.store.oid_to_path(oid)
    old = path.read_bytes() if path.exists() else repo.store.get_bytes(oid, verify=False)
    if data is None:
        raw = bytearray(old)
        raw[len(raw) // 2] ^= 0x01
        data = bytes(raw)
    if path.exists():
        os.chmod(path, 0o644)
        path.write_bytes(data)
        return
    with sqlite3.connect(repo.index.path) as conn:
        conn.execute("UPDATE blobs SET data = ? WHERE oid = ?", (data, oid))
