"""Serving benchmark (issue 6): a cached pipeline behind `merkl serve` vs `merkl run` as a process.

1. Latency: p50 of a cached `POST /v1/run/…` request (one keep-alive connection, one request at
   a time) against p50 of `merkl run` of the same, equally cached, pipeline as a new process
   (target: the request >= 50x faster).
2. Throughput: requests/second of the same cached request from 16 concurrent clients (16
   keep-alive connections), with 1 and with 2 uvicorn workers. The load generator runs on the
   same 2-core machine, so it competes with the server for CPU.
3. A cached 10,001-task pipeline (issue 22; target: p50 < 50 ms for one client): p50/p95 of a
   request from one client and from 8 concurrent clients, with the request memo and with
   `--no-memo` (every request builds and hashes the DAG, as before the memo), and against
   `merkl run` of it as a process.

Everything stays on loopback. Run: `.venv-bench/bin/python benchmarks/bench_serve.py` (`make bench`
runs every benchmark); `--big-only` runs part 3 alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

PIPELINE = """
from merkl import task

@task
def load(n: int):
    return list(range(n))

@task
def features(data):
    return [x * x % 97 for x in data]

@task
def train(feats, lr: float):
    return {"weight": sum(feats) * lr, "count": len(feats)}

def pipeline(n: int = 1000, lr: float = 0.1):
    return train(features(load(n)), lr)
"""
TARGET = "bench_pipeline.pipeline"
BODY = json.dumps({"args": [1000, 0.1]}).encode()
CLIENTS = 16
BIG_PIPELINE = """
from merkl import read_file, task

@task
def leaf(i: int):
    return i * 2

@task
def total(values, data):
    return sum(values) + len(data)

def pipeline(n: int = 10000):
    return total([leaf(i) for i in range(n)], read_file("big_input.csv"))
"""
BIG_TARGET = "bench_big.pipeline"
BIG_BODY = json.dumps({"args": [10000]}).encode()
BIG_CLIENTS = 8


def merkl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "merkl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def bench_process_runs(work: Path, runs: int = 9) -> float:
    """p50 seconds of `merkl run` of the cached pipeline as a fresh process."""
    first = merkl("run", TARGET, "1000", "0.1", cwd=work)
    assert "task(s) run" in first.stderr, first.stderr
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = merkl("run", TARGET, "1000", "0.1", cwd=work)
        times.append(time.perf_counter() - start)
        assert "0 task(s) run" in result.stderr, result.stderr
    return statistics.median(times)


@contextlib.contextmanager
def server(work: Path, workers: int, *options: str, target: str = TARGET) -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_file = work / f"serve-{workers}{''.join(options)}.log"
    log = open(log_file, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "merkl",
            "serve",
            target,
            "--port",
            str(port),
            "--workers",
            str(workers),
            *options,
        ],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_file.read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def bench_request_latency(port: int, requests: int = 2000) -> float:
    """p50 seconds of one cached run request, sent one at a time over one connection (the
    first 100 warm up the connection and the server)."""
    return statistics.median(timed_requests(port, TARGET, BODY, requests, warm_up=100))


async def _client(
    port: int,
    count: int,
    failures: list[str],
    times: list[float] | None = None,
    target: str = TARGET,
    body: bytes = BODY,
) -> None:
    """`count` requests, one after another on one keep-alive connection (with `times`: the
    seconds of each)."""
    request = (
        f"POST /v1/run/{target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        if times is not None:
            times.append(time.perf_counter() - start)
        if status != b"200":
            failures.append(status.decode())
    writer.close()
    await writer.wait_closed()


def bench_throughput(port: int, requests: int = 8000) -> float:
    """Requests/second from CLIENTS concurrent keep-alive connections (a minimal asyncio client,
    so that the load generator takes as little of the 2 cores as it can)."""
    failures: list[str] = []

    async def run_all() -> None:
        per_client = requests // CLIENTS
        await asyncio.gather(*(_client(port, per_client, failures) for _ in range(CLIENTS)))

    start = time.perf_counter()
    asyncio.run(run_all())
    elapsed = time.perf_counter() - start
    assert not failures, failures[:5]
    return (requests // CLIENTS) * CLIENTS / elapsed


def timed_requests(port: int, target: str, body: bytes, count: int, warm_up: int) -> list[float]:
    """Seconds of each of `count` run requests sent one at a time over one connection, after
    `warm_up` unmeasured ones; every answer must come from the cache."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    times = []
    for i in range(warm_up + count):
        start = time.perf_counter()
        connection.request("POST", f"/v1/run/{target}", body=body)
        response = connection.getresponse()
        payload = json.loads(response.read())
        elapsed = time.perf_counter() - start
        assert response.status == 200, payload
        assert payload["stats"]["ran"] == 0, payload  # `merkl run` filled the cache
        if i >= warm_up:
            times.append(elapsed)
    connection.close()
    return times


def concurrent_requests(
    port: int, target: str, body: bytes, clients: int, each: int
) -> list[float]:
    """Seconds of each request from `clients` concurrent keep-alive connections sending `each`
    requests one after another."""
    times: list[float] = []
    failures: list[str] = []

    async def run_all() -> None:
        await asyncio.gather(
            *(_client(port, each, failures, times, target, body) for _ in range(clients))
        )

    asyncio.run(run_all())
    assert not failures, failures[:5]
    return times


def percentiles(times: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def bench_big(work: Path) -> None:
    """Part 3: the cached 10,001-task pipeline, with and without the request memo."""
    (work / "bench_big.py").write_text(textwrap.dedent(BIG_PIPELINE))
    (work / "big_input.csv").write_text("x,y\n" + "".join(f"{i},{i * i}\n" for i in range(100)))
    first = merkl("run", BIG_TARGET, "10000", cwd=work)
    assert "10001 task(s) run" in first.stderr, first.stderr
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        result = merkl("run", BIG_TARGET, "10000", cwd=work)
        runs.append(time.perf_counter() - start)
        assert "0 task(s) run" in result.stderr, result.stderr
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    for label, options, single, each in (
        ("memo", (), 500, 100),
        ("no memo", ("--no-memo",), 20, 4),
    ):
        with server(work, 1, *options, target=BIG_TARGET) as port:
            one = timed_requests(port, BIG_TARGET, BIG_BODY, single, warm_up=3)
            many = concurrent_requests(port, BIG_TARGET, BIG_BODY, BIG_CLIENTS, each)
        figures[label] = {"one": percentiles(one), "many": percentiles(many)}
    run_p50 = statistics.median(runs) * 1000
    print(f"cached 10,001-task pipeline, `merkl run` as a process: p50 {run_p50:.0f} ms")
    for label in ("memo", "no memo"):
        (p50, p95), (c50, c95) = figures[label]["one"], figures[label]["many"]
        print(
            f"  `merkl serve` {label:>7}: one client p50 {p50:8.2f} ms p95 {p95:8.2f} ms; "
            f"{BIG_CLIENTS} clients p50 {c50:8.2f} ms p95 {c95:8.2f} ms"
        )
    memo, plain = figures["memo"], figures["no memo"]
    print(
        f"  memo vs no memo: one client {plain['one'][0] / memo['one'][0]:.0f}x faster (p50), "
        f"{BIG_CLIENTS} clients {plain['many'][0] / memo['many'][0]:.0f}x faster (p50); "
        f"vs `merkl run`: {run_p50 / memo['one'][0]:.0f}x"
    )
    if memo["one"][0] >= 50:
        sys.exit(f"FAILED: one-client p50 {memo['one'][0]:.1f} ms (target < 50 ms)")


def main() -> None:
    big_only = "--big-only" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="merkl-bench-serve-") as tmp:
        work = Path(tmp)
        merkl("init", cwd=work)
        if big_only:
            bench_big(work)
            return
        (work / "bench_pipeline.py").write_text(textwrap.dedent(PIPELINE))
        process_p50 = bench_process_runs(work)
        with server(work, workers=1) as port:
            request_p50 = bench_request_latency(port)
            rps_one = bench_throughput(port)
        with server(work, workers=2) as port:
            rps_two = bench_throughput(port)
        ratio = process_p50 / request_p50
        print(f"cached pipeline, `merkl run` as a process: p50 {process_p50 * 1000:.1f} ms")
        print(f"cached pipeline, `merkl serve` request:    p50 {request_p50 * 1000:.3f} ms")
        print(f"serve vs run latency ratio: {ratio:.0f}x faster (target >= 50x)")
        print(f"throughput, {CLIENTS} concurrent clients, 1 worker:  {rps_one:,.0f} requests/s")
        print(f"throughput, {CLIENTS} concurrent clients, 2 workers: {rps_two:,.0f} requests/s")
        print(f"(machine: {os.cpu_count()} cores, load generator on the same machine)")
        bench_big(work)
    if ratio < 50:
        sys.exit(f"FAILED: serve is only {ratio:.1f}x faster than merkl run (target 50x)")


if __name__ == "__main__":
    main()
