"""A bounded load test on loopback: 10,000 requests from 16 concurrent clients, zero errors.

Two uvicorn worker processes, each with its thread pool, race to compute the same outputs into
one repo; every answer must still be exactly the expected one.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from tests.serve.conftest import read_calls, server_process

REQUESTS = 10_000
CLIENTS = 16
DISTINCT = 41  # distinct arguments (coprime with 10, so each is also run, not just dry-run)


def request_for(n: int) -> tuple[str, dict, int, object]:
    """The n-th request: (path, body, expected status, expected answer)."""
    x = n % DISTINCT
    if n % 10 == 7:
        return "/v1/dry-run/servepipe.pipeline", {"args": [x]}, 200, 2
    if n % 10 == 9:
        return "/v1/run/servepipe.pipeline", {"args": [str(x)]}, 422, None
    return "/v1/run/servepipe.pipeline", {"args": [x]}, 200, x * x + 2.0


def hammer(url: str) -> tuple[list[str], float]:
    """Send every request from CLIENTS threads, each with its own keep-alive connection."""
    host, port = url.removeprefix("http://").split(":")
    errors: list[str] = []
    counter = iter(range(REQUESTS))
    lock = threading.Lock()
    deadline = time.monotonic() + 120

    def one_client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                problem = check(connection, n)
                if problem:
                    errors.append(problem)
        except Exception as exc:  # a dropped connection: report it, stop this client
            errors.append(repr(exc))
        finally:
            connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=one_client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if next(counter, None) is not None:
        errors.append("the load test ran out of time")
    return errors, time.perf_counter() - start


def check(connection: http.client.HTTPConnection, n: int) -> str | None:
    path, body, status, expected = request_for(n)
    connection.request("POST", path, body=json.dumps(body).encode())
    response = connection.getresponse()
    data = json.loads(response.read())
    if response.status != status:
        return f"{n}: HTTP {response.status} {data}"
    if status == 200 and "outputs" in data and len(data["outputs"]) != expected:
        return f"{n}: dry run {data}"
    if status == 200 and "result" in data and data["result"] != expected:
        return f"{n}: result {data['result']!r} != {expected!r}"
    return None


@pytest.mark.slow
def test_ten_thousand_requests_from_sixteen_clients(pipeline_repo):
    with server_process(pipeline_repo.root, "servepipe.pipeline", "--workers", "2") as (_, url):
        errors, elapsed = hammer(url)
    assert errors == [], errors[:5]
    calls = read_calls(pipeline_repo)
    # Each distinct argument computed at least once; racing duplicates stay rare.
    assert set(calls) == {"square", "add"}
    assert DISTINCT <= calls.count("square") <= 4 * DISTINCT
    print(f"{REQUESTS} requests from {CLIENTS} clients in {elapsed:.1f}s")
