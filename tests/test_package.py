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
