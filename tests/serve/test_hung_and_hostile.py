"""`merkl serve` under hung tasks and hostile arguments, on a real server process.

- Requests whose outputs are cached are answered while every task slot is taken by hung tasks.
- A request running past `--timeout` gets 504 and gives its slot back; `/healthz` counts the
  hung requests; SIGTERM stops the server promptly although task threads are still hung.
- Path arguments stay inside the repository; a 500 does not echo the exception's text.
- `write_file` is skipped under serve unless `--write-files`, and then never leaves the pointer
  and the work tree disagreeing.
- Concurrent identical requests for a missing output compute it once.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from merkl.hashing import hash_bytes
from merkl.pointer import read_pointer
from merkl.repo import Repo
from tests.helpers import run_merkl_process, write_module
from tests.serve.conftest import server_process

pytestmark = pytest.mark.slow

HUNG_SOURCE = """
import os
import time
from pathlib import Path

import merkl
from merkl import task, write_file

HERE = os.path.dirname(os.path.abspath(__file__))


def _log(name):
    with open(os.path.join(HERE, "calls.txt"), "a") as handle:
        handle.write(name + "\\n")


@task
def square(x: int) -> int:
    _log(f"square {x}")
    return x * x


@task
def hang(x: int) -> int:
    time.sleep(600)  # a task that never finishes in the test's lifetime
    return x


@task
def slow_square(x: int) -> int:
    _log(f"slow_square {x}")
    time.sleep(1.0)
    return x * x


@task
def fail(text: str) -> str:
    raise ValueError(f"secret detail: {text}")


@task
def size(data: bytes) -> int:
    return len(data)


@task
def model(version: int) -> dict:
    return {"model": version, "padding": "x" * 2_000_000}


def cached(x: int):
    return square(x)


def hung(x: int):
    return hang(x)


def slow(x: int):
    return slow_square(x)


def failing(text: str):
    return fail(text)


def reads(path: str):
    return size(merkl.read_file(path))


def paths(path: str):
    return str(merkl.path(path))


def writes(version: int):
    out = model(version)
    write_file(out, "model.json", track=True)
    return version
"""

TARGETS = [
    "hung.cached",
    "hung.hung",
    "hung.slow",
    "hung.failing",
    "hung.reads",
    "hung.paths",
    "hung.writes",
]


@pytest.fixture
def hung_repo(repo: Repo) -> Repo:
    write_module(repo.root, "hung", HUNG_SOURCE)
    return repo


def _post(url: str, target: str, body: dict, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/v1/run/{target}", json=body, timeout=timeout)


def test_cached_requests_are_answered_while_every_slot_hangs(hung_repo):
    for x in range(5):  # fill the cache first, as earlier traffic would have
        assert run_merkl_process("run", "hung.cached", str(x), cwd=hung_repo.root).code == 0
    with server_process(hung_repo.root, *TARGETS, "--threads", "8", "--timeout", "4") as (
        proc,
        url,
    ):
        started = time.monotonic()
        with ThreadPoolExecutor(48) as pool:
            hung = [pool.submit(_post, url, "hung.hung", {"args": [i]}) for i in range(40)]
            time.sleep(0.5)  # every slot is taken, and 32 requests wait for one
            health = httpx.get(f"{url}/healthz", timeout=2).json()
            cached_times = []
            for x in range(5):
                t0 = time.monotonic()
                response = _post(url, "hung.cached", {"args": [x]}, timeout=2)
                cached_times.append(time.monotonic() - t0)
                assert response.status_code == 200, response.text
                assert response.json()["result"] == x * x
            statuses = [f.result().status_code for f in hung]
            waited = time.monotonic() - started
        print(
            f"\ncached answers with 8 hung + 32 queued: max {max(cached_times) * 1000:.0f} ms; "
            f"40 hung requests answered 504 after {waited:.2f} s (--timeout 4)"
        )
        assert max(cached_times) < 2.0, cached_times
        assert health["workers"]["busy"] == 8, health
        assert statuses == [504] * 40
        assert waited < 4 + 2.0, waited  # 504 within --timeout (plus slack), queued or not
        after = httpx.get(f"{url}/healthz", timeout=2).json()
        assert after["workers"]["hung"] >= 8, after
        assert after["workers"]["busy"] == 0, after  # the slots were given back
        fresh = _post(url, "hung.cached", {"args": [7]}, timeout=5)  # new work still runs
        assert fresh.status_code == 200
        assert fresh.json()["result"] == 49
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - t0 < 12  # uvicorn's grace period is 10 s


def test_paths_stay_inside_the_repository(hung_repo, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (hung_repo.root / "inside.txt").write_text("hello\n")
    with server_process(hung_repo.root, *TARGETS) as (_proc, url):
        for target in ("hung.reads", "hung.paths"):
            response = _post(url, target, {"args": [str(outside)]})
            assert response.status_code == 403, response.text
            assert "'path'" in response.json()["error"]
            assert "root:x" not in response.text
            dotted = _post(url, target, {"args": ["../outside.txt"]})
            assert dotted.status_code == 403, dotted.text
        inside = _post(url, "hung.reads", {"args": ["inside.txt"]})
        assert inside.status_code == 200, inside.text
    with server_process(hung_repo.root, *TARGETS, "--allow-outside-paths") as (_proc, url):
        allowed = _post(url, "hung.reads", {"args": [str(outside)]})
        assert allowed.status_code == 200, allowed.text


def test_a_500_names_the_task_and_type_but_not_the_text(hung_repo):
    with server_process(hung_repo.root, *TARGETS) as (_proc, url):
        response = _post(url, "hung.failing", {"args": ["hunter2"]})
        assert response.status_code == 500
        body = response.json()
        assert body["type"] == "ValueError"
        assert body["task"] == "hung.fail"
        assert "hunter2" not in response.text
    with server_process(hung_repo.root, *TARGETS, "--debug") as (_proc, url):
        response = _post(url, "hung.failing", {"args": ["hunter2"]})
        assert "secret detail: hunter2" in response.json()["error"]


def test_write_file_is_skipped_under_serve_by_default(hung_repo):
    with server_process(hung_repo.root, *TARGETS) as (_proc, url):
        response = _post(url, "hung.writes", {"args": [1]})
        assert response.status_code == 200, response.text
    assert not (hung_repo.root / "model.json").exists()
    assert not (hung_repo.root / "model.json.merkl").exists()


def test_concurrent_writes_leave_pointer_and_work_tree_in_agreement(hung_repo):
    """Two server processes writing different models to one tracked file: every answer is
    200, the pointer names the file's content, and the store holds no object under a wrong
    hash (unlocked, a track could move another request's bytes in under its own oid)."""
    args = ("--write-files", "--threads", "16", "--workers", "2")
    with (
        server_process(hung_repo.root, *TARGETS, *args) as (_proc, url),
        ThreadPoolExecutor(32) as pool,
    ):
        answers = list(pool.map(lambda v: _post(url, "hung.writes", {"args": [v]}), range(96)))
    failed = [a.text for a in answers if a.status_code != 200]
    assert not failed, failed
    pointer = read_pointer(hung_repo.root / "model.json.merkl")
    assert hash_bytes((hung_repo.root / "model.json").read_bytes()) == pointer.oid
    verify = run_merkl_process("verify", cwd=hung_repo.root)
    assert verify.code == 0, verify.out + verify.err


def test_concurrent_identical_requests_compute_once(hung_repo):
    with server_process(hung_repo.root, *TARGETS, "--threads", "8") as (_proc, url):
        barrier = threading.Barrier(6)

        def one(_: int) -> httpx.Response:
            barrier.wait()
            return _post(url, "hung.slow", {"args": [9]})

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(one, range(6)))
    assert [a.json()["result"] for a in answers] == [81] * 6
    calls = (hung_repo.root / "calls.txt").read_text().split("\n")
    assert calls.count("slow_square 9") == 1, calls
