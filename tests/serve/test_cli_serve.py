"""`merkl serve` as a command: option errors, and end to end through a real uvicorn process."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from merkl.client import Client, ServerError
from tests.helpers import run_cli
from tests.serve.conftest import SECRET, fill_cache, read_calls, server_process


@pytest.mark.parametrize(
    ("argv", "code", "fragment"),
    [
        ([], 2, "needs at least one TARGET"),
        (["servepipe.pipeline", "--port", "70000"], 2, "--port 70000: expected a TCP port"),
        (["servepipe.pipeline", "--workers", "0"], 2, "--workers 0: expected 1 or more"),
        (["servepipe.pipeline", "--max-body-bytes", "0"], 2, "--max-body-bytes 0"),
        (["servepipe.pipeline", "--port", "eighty"], 2, "eighty"),
        (["nosuchmodule.fn"], 1, "cannot import module 'nosuchmodule'"),
        (["servepipe.nosuchfunction"], 1, "has no function 'nosuchfunction'"),
        (["pipeline"], 2, "not of the form module.function"),
    ],
)
def test_bad_options_and_targets_fail_in_one_line(pipeline_repo, argv, code, fragment):
    result = run_cli("serve", *argv)
    assert result.code == code, result.err
    assert fragment in result.err
    assert result.err.startswith("merkl: error: ")
    assert "Traceback" not in result.err


def test_outside_a_repo_it_says_to_run_merkl_init():
    result = run_cli("serve", "servepipe.pipeline")
    assert result.code == 1
    assert "merkl init" in result.err


def test_help_describes_the_endpoints():
    result = run_cli("serve", "--help")
    assert result.code == 0
    for word in ("/v1/run/TARGET", "/v1/dry-run/TARGET", "X-Merkl-Signature", "--max-body-bytes"):
        assert word in result.out


@pytest.mark.slow
def test_end_to_end_through_uvicorn_workers(pipeline_repo, client_repo):
    argv = (
        "servepipe.pipeline",
        "servepipe.failing",
        "--workers",
        "2",
        "--max-body-bytes",
        "4096",
    )
    with server_process(pipeline_repo.root, *argv) as (proc, url):
        with Client(url) as client:
            assert client.run("servepipe.pipeline", 2) == 6.0
            with pytest.raises(ServerError) as failed:
                client.run("servepipe.failing", 2)
            assert failed.value.status == 500
            assert failed.value.task == "servepipe.fail"
            for _ in range(4):  # whichever worker answers, the cache is shared
                response = client.run_response("servepipe.pipeline", [2])
                assert response["stats"]["ran"] == 0
            with pytest.raises(ServerError) as too_big:
                client.run("servepipe.pipeline", 2, y=[0] * 4096)
            assert too_big.value.status == 413
        assert fill_cache(client_repo, "servepipe.pipeline", 10) == 102.0
        with Client(url, SECRET, repo=client_repo) as signed:
            response = signed.run_response("servepipe.pipeline", [10])
            assert response["result"] == 102.0
            assert response["stats"] == {"ran": 0, "loaded": 1, "client_values": 1}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    # The server ran square/add for 2 and fail; the client computed 10 in its own repo.
    assert read_calls(pipeline_repo) == ["square", "add", "fail", "square", "add"]
    log = (pipeline_repo.root / "serve.log").read_text()
    assert "client-sent cache values accepted when signed" in log
    assert SECRET not in log


def test_importing_merkl_serve_and_the_cli_stays_light():
    code = (
        "import sys, merkl, merkl.serve, merkl.cli, merkl.client; "
        "print([m for m in ('starlette', 'uvicorn', 'httpx', 'anyio') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
