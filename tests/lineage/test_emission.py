"""Emission never slows or fails a run: dead endpoints, the file transport, unconfigured runs."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

import merkl.lineage
from tests.helpers import import_fresh, run_merkl_process

from .test_run_events import make_repo
from .validate import check_event


@pytest.fixture
def refused_url() -> str:
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def timed_run(root, url: str | None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    if url is not None:
        env["OPENLINEAGE_URL"] = url
    start = time.perf_counter()
    result = run_merkl_process("run", "pipe.pipeline", cwd=root, env=env)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("endpoint", ["refused_url", "silent_url"])
def test_a_dead_endpoint_costs_at_most_the_timeout_and_one_line(merkl_globals, endpoint, request):
    root = make_repo(merkl_globals)
    with (root / "merkl.toml").open("a") as config:
        config.write("\n[lineage]\ntimeout = 1\n")
    url = request.getfixturevalue(endpoint)
    baseline, baseline_time = timed_run(root, None)
    (root / "data.txt").write_bytes(b"changed, so that tasks run again")
    result, elapsed = timed_run(root, url)
    assert (baseline.code, result.code) == (0, 0), result.err
    assert result.out == "64\n"
    lineage_lines = [line for line in result.err.splitlines() if "OpenLineage" in line]
    assert len(lineage_lines) == 1, result.err
    assert elapsed < baseline_time + 1 + 1.5  # the timeout, plus slack for a loaded machine


def test_a_silent_endpoint_does_not_slow_evaluation_in_process(
    merkl_globals, silent_url, monkeypatch
):
    make_repo(merkl_globals)
    monkeypatch.setenv("OPENLINEAGE_URL", silent_url)
    merkl.lineage.reset()
    pipe = import_fresh(merkl_globals, "pipe")
    start = time.perf_counter()
    for size in range(20):
        assert pipe.double(pipe.count(b"x" * size)).get() == 2 * size
    assert time.perf_counter() - start < 2  # the endpoint's 5 s timeout is never waited for
    assert merkl.lineage.flush(0.2) is False


def test_the_file_transport_from_openlineage_yml(merkl_globals):
    root = make_repo(merkl_globals)
    (root / "openlineage.yml").write_text(
        "transport:\n  type: file\n  log_file_path: events.ndjson\n  append: true\n"
    )
    result = run_merkl_process("run", "pipe.pipeline", cwd=root)
    assert result.code == 0, result.err
    events = [json.loads(line) for line in (root / "events.ndjson").read_text().splitlines()]
    for event in events:
        check_event(event)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("pipe.pipeline", "START"),
        ("pipe.count", "START"),
        ("pipe.count", "COMPLETE"),
        ("pipe.double", "START"),
        ("pipe.double", "COMPLETE"),
        ("pipe.pipeline", "COMPLETE"),
    ]


def test_disabled_wins_over_a_configuration(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    env = {**os.environ, "OPENLINEAGE_URL": receiver.url, "OPENLINEAGE_DISABLED": "true"}
    result = run_merkl_process("run", "pipe.pipeline", cwd=root, env=env)
    assert result.code == 0, result.err
    assert receiver.events == []


def test_a_bad_lineage_table_warns_and_the_run_goes_on(merkl_globals, receiver):
    root = make_repo(merkl_globals)
    with (root / "merkl.toml").open("a") as config:
        config.write('\n[lineage]\ntimeout = "soon"\n')
    env = {**os.environ, "OPENLINEAGE_URL": receiver.url}
    result = run_merkl_process("run", "pipe.pipeline", cwd=root, env=env)
    assert result.code == 0, result.err
    assert "[lineage] timeout must be a number of seconds > 0, got 'soon'" in result.err
    assert receiver.events == []


def test_unconfigured_the_hook_removes_itself(merkl_globals):
    from merkl.observers import EVALUATION_HOOKS

    make_repo(merkl_globals)
    pipe = import_fresh(merkl_globals, "pipe")
    assert pipe.double(pipe.count(b"abc")).get() == 6
    assert EVALUATION_HOOKS == []  # later evaluations do not even ask
