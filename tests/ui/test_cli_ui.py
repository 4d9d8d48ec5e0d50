"""`merkl ui` as a command: a real process serving the pages; bad options and places refused."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from merkl.repo import Repo
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_the_repository_until_interrupted(ui_repo: Repo) -> None:
    port = free_port()
    log = ui_repo.root / "ui.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "merkl", "ui", "--port", str(port)],
            cwd=ui_repo.root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                answer = httpx.get(url + "/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert answer.status_code == 200
        assert "pipeline2.pipeline" in answer.text
        dag = httpx.get(url + "/api/dag/pipeline2.pipeline", timeout=30).json()
        assert {n["state"] for n in dag["nodes"] if n["kind"] == "output"} == {"cached"}
        assert httpx.post(url + "/api/outputs/" + "0" * 64 + "/forget").status_code == 403
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert (
        f"merkl: ui for {ui_repo.root} on http://127.0.0.1:{port}/ (read-only)" in log.read_text()
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--port", "70000"), "--port 70000: expected a TCP port from 0 to 65535"),
        (("--host", ""), "--host must not be empty"),
    ],
)
def test_bad_options(repo: Repo, argv: tuple[str, ...], message: str) -> None:
    result = run_cli("ui", *argv)
    assert result.code == 2
    assert message in result.err


def test_outside_a_repository(merkl_globals: object) -> None:
    result = run_cli("ui")
    assert result.code == 1
    assert "merkl init" in result.err or "not inside a merkl repository" in result.err


def test_listed_in_help() -> None:
    result = run_cli("ui", "--help")
    assert result.code == 0
    assert "--allow-writes" in result.out
