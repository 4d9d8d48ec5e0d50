"""Repeated requests answered from the request memo: never a stale value.

A real uvicorn on loopback serves `memopipe`; the pipeline functions log each call to
calls.txt, so a test sees whether a request was answered from the memo (no call) or built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from merkl import write_file
from merkl.repo import Repo
from merkl.request_memo import MEMO_ENV
from merkl.serve import ServeConfig, create_app
from merkl.session import Session, use_session
from tests.helpers import import_fresh, write_module
from tests.serve.conftest import live_server, read_calls, server_process

SOURCE = """
import os

from merkl import load, path, read_file, task

CALLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.txt")


def _log(name):
    with open(CALLS, "a") as handle:
        handle.write(name + "\\n")


@task
def count(data):
    _log("count")
    return len(data)


@task
def scale(n, factor):
    _log("scale")
    return n * factor


@task
def make(x):
    return x


def from_file(name: str, factor=1):
    _log("pipeline")
    return {"scaled": scale(count(read_file(name)), factor), "name": name}


def from_pointer(factor: int = 1):
    _log("pipeline")
    return scale(load("stored.json.merkl"), factor)


def from_folder(name: str):
    _log("pipeline")
    return make(path(name))
"""
TARGETS = ("memopipe.from_file", "memopipe.from_pointer", "memopipe.from_folder")


@pytest.fixture
def memo_repo(repo: Repo) -> Repo:
    write_module(repo.root, "memopipe", SOURCE)
    (repo.root / "data.txt").write_text("abcd")
    return repo


@pytest.fixture
def url(memo_repo: Repo) -> Any:
    with live_server(create_app(ServeConfig(targets=TARGETS))) as server_url:
        yield server_url


def run(url: str, target: str, *args: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/run/memopipe.{target}", json={"args": list(args)})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def pipeline_calls(repo: Repo) -> int:
    return read_calls(repo).count("pipeline")


def test_a_repeated_request_is_answered_without_calling_the_pipeline(memo_repo, url):
    first = run(url, "from_file", "data.txt", 2)
    assert first["result"] == {"scaled": 8, "name": "data.txt"}
    assert first["stats"]["ran"] == 2
    again = run(url, "from_file", "data.txt", 2)
    assert again == {**first, "stats": {"ran": 0, "loaded": 1, "client_values": 0}}
    calls = pipeline_calls(memo_repo)
    for _ in range(3):
        assert run(url, "from_file", "data.txt", 2) == again
    assert pipeline_calls(memo_repo) == calls  # these came from the memo


def test_an_input_file_changed_in_place_gives_the_new_value(memo_repo, url):
    data = memo_repo.root / "data.txt"
    assert run(url, "from_file", "data.txt", 1)["result"]["scaled"] == 4
    data.write_text("wxyz!")  # another size
    assert run(url, "from_file", "data.txt", 1)["result"]["scaled"] == 5
    before = os.stat(data)
    data.write_text("vwxyz")  # the same size, a later mtime (as the stat cache needs too)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert run(url, "from_file", "data.txt", 1)["result"]["scaled"] == 5
    assert read_calls(memo_repo).count("count") == 3  # the new content was counted each time
    # A replaced file (new inode), then one that disappeared.
    replacement = memo_repo.root / "new.txt"
    replacement.write_text("ab")
    replacement.replace(data)
    assert run(url, "from_file", "data.txt", 1)["result"]["scaled"] == 2
    data.unlink()
    response = httpx.post(f"{url}/v1/run/memopipe.from_file", json={"args": ["data.txt"]})
    assert response.status_code == 500
    assert "FileNotFoundError" in response.text


def test_a_changed_argument_gives_its_own_value(memo_repo, url):
    assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 8
    assert run(url, "from_file", "data.txt", 3)["result"]["scaled"] == 12
    # 2, 2.0 and True hash differently: each its own answer, of its own type.
    assert run(url, "from_file", "data.txt", 2.0)["result"]["scaled"] == 8.0
    assert isinstance(run(url, "from_file", "data.txt", 2.0)["result"]["scaled"], float)
    assert run(url, "from_file", "data.txt", True)["result"]["scaled"] == 4
    assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 8
    assert isinstance(run(url, "from_file", "data.txt", 2)["result"]["scaled"], int)
    response = httpx.post(
        f"{url}/v1/run/memopipe.from_file", json={"kwargs": {"name": "data.txt", "factor": 3}}
    )
    assert response.json()["result"]["scaled"] == 12


@pytest.fixture
def objects_as_files(memo_repo: Repo) -> None:
    """Outputs stored as object files, not inline: a process keeps the inline objects it read
    in memory (a value it can still serve, verified), so deleting one would change nothing."""
    config = memo_repo.dot_dir / "config.toml"
    before = config.read_text() if config.exists() else ""
    config.write_text(before + "\n[cache]\ninline_max = 0\n")


def test_an_output_gone_from_the_cache_is_computed_again(memo_repo, objects_as_files, url):
    first = run(url, "from_file", "data.txt", 2)
    assert run(url, "from_file", "data.txt", 2)["stats"]["ran"] == 0
    calls = pipeline_calls(memo_repo)
    # Evicted by another process (`merkl gc`, `cache prune`): its row and its object are gone.
    entry = memo_repo.index.find_output(first["hashes"][0])
    memo_repo.index.remove_outputs(first["hashes"])
    object_file = Path(memo_repo.store._path(entry.oid))
    if object_file.exists():
        object_file.unlink()
    again = run(url, "from_file", "data.txt", 2)
    assert again["result"] == first["result"]
    assert again["stats"]["ran"] == 1  # scale ran again, count came from the cache
    assert pipeline_calls(memo_repo) == calls + 1
    assert memo_repo.index.find_output(first["hashes"][0]) is not None


def test_a_changed_pointer_file_gives_the_new_value(memo_repo, url):
    module = import_fresh(memo_repo.root, "memopipe")
    with use_session(Session(memo_repo)):
        write_file(module.make(10), "stored.json", track=True)
    assert run(url, "from_pointer", 3)["result"] == 30
    assert run(url, "from_pointer", 3)["result"] == 30
    with use_session(Session(memo_repo)):
        write_file(module.make(20), "stored.json", track=True)
    assert run(url, "from_pointer", 3)["result"] == 60


def test_a_folder_input_is_built_every_time(memo_repo, url):
    folder = memo_repo.root / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    for _ in range(4):
        run(url, "from_folder", "folder")
    assert pipeline_calls(memo_repo) == 4


def test_an_edited_module_is_never_answered_from_the_memo(memo_repo, url):
    """serve imports its targets once: an edit takes effect at a restart (see below). Until
    then the memo steps aside, and the answer is the one a server without it gives."""
    assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 8
    run(url, "from_file", "data.txt", 2)
    calls = pipeline_calls(memo_repo)
    module = memo_repo.root / "memopipe.py"
    module.write_text(module.read_text().replace("n * factor", "n * factor + 1000"))
    edited = run(url, "from_file", "data.txt", 2)
    assert pipeline_calls(memo_repo) == calls + 1
    with live_server(create_app(ServeConfig(targets=TARGETS, memo=False))) as plain:
        assert run(plain, "from_file", "data.txt", 2) == edited


@pytest.mark.slow
def test_an_edited_task_gives_the_new_value_after_a_restart(memo_repo):
    with server_process(memo_repo.root, *TARGETS) as (_, url):
        assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 8
        assert run(url, "from_file", "data.txt", 2)["stats"]["ran"] == 0
        module = memo_repo.root / "memopipe.py"
        module.write_text(module.read_text().replace("n * factor", "n * factor + 1000"))
    with server_process(memo_repo.root, *TARGETS) as (_, url):
        answer = run(url, "from_file", "data.txt", 2)
        assert answer["result"]["scaled"] == 1008
        assert answer["stats"]["ran"] == 2  # MODULE mode: the edit re-runs both tasks
        assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 1008


def test_the_memo_can_be_turned_off(memo_repo, monkeypatch):
    monkeypatch.setenv(MEMO_ENV, "0")
    with live_server(create_app(ServeConfig(targets=TARGETS))) as url:
        for _ in range(4):
            assert run(url, "from_file", "data.txt", 2)["result"]["scaled"] == 8
    assert pipeline_calls(memo_repo) == 4
