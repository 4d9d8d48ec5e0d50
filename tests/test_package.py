"""The public surface: sorted __all__, and `import merkl` stays light."""

from __future__ import annotations

import subprocess
import sys

import merkl

HEAVY = [
    "dask",
    "distributed",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "redis",
    "httpx",
    "boto3",
    "botocore",
    "s3fs",
    "pydantic",
    "yaml",
    "numpy",
    "google",
]


def test_all_is_sorted_and_exported():
    assert merkl.__all__ == sorted(merkl.__all__)
    for name in merkl.__all__:
        assert hasattr(merkl, name), name


def test_import_merkl_does_not_import_optional_dependencies():
    code = (
        f"import sys, merkl, merkl.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_status_starts_without_clize(tmp_path):
    """`merkl status` with plain arguments skips clize (most of start-up); anything else,
    such as `--help` or a bad option, is still clize's to read."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    code = (
        "import sys; from merkl.cli import main; code = main(sys.argv[1:]); "
        "print(code, 'clize' in sys.modules, file=sys.stderr)"
    )

    def run(*args):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True
        )
        return proc.stderr.strip().splitlines()[-1]

    assert run("init") == "0 True"
    assert run("status") == "0 False"
    assert run("status", "--json") == "0 False"
    assert run("status", "--bogus") == "2 True"
    assert run("status", "--help") == "0 True"
