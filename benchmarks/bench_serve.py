"""Serving benchmark (issue 6): a cached pipeline behind `merkl serve` vs `merkl run` as a process.

1. Latency: p50 of a cached `POST /v1/run/…` request (one keep-alive connection, one request at
   a time) against p50 of `merkl run` of the same, equally cached, pipeline as a new process
   (target: the request >= 50x faster).
2. Throughput: requests/second of the same cached request from 16 concurrent clients (16
   keep-alive connections), with 1 and with 2 uvicorn workers. The load generator runs on the
   same 2-core machine, so it competes with the server for CPU.

Everything stays on loopback. Run: `.venv-bench/bin/python benchmarks/bench_serve.py` (`make bench`
runs every benchmark).
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
def server(work: Path, workers: int) -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(work / f"serve-{workers}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "merkl",
            "serve",
            TARGET,
            "--port",
            str(port),
            "--workers",
            str(workers),
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
                    raise RuntimeError((work / f"serve-{workers}.log").read_text()) from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def bench_request_latency(port: int, requests: int = 2000) -> float:
    """p50 seconds of one cached run request, sent one at a time over one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    for i in range(requests + 100):
        start = time.perf_counter()
        connection.request("POST", f"/v1/run/{TARGET}", body=BODY)
        response = connection.getresponse()
        payload = json.loads(response.read())
        elapsed = time.perf_counter() - start
        assert response.status == 200, payload
        if i == 0:
            assert payload["stats"]["ran"] == 0, payload  # `merkl run` filled the cache
        if i >= 100:  # the first ones warm up the connection and the server
            times.append(elapsed)
    connection.close()
    return statistics.median(times)


async def _client(port: int, count: int, failures: list[str]) -> None:
    request = (
        f"POST /v1/run/{TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="merkl-bench-serve-") as tmp:
        work = Path(tmp)
        (work / "bench_pipeline.py").write_text(textwrap.dedent(PIPELINE))
        merkl("init", cwd=work)
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
    if ratio < 50:
        sys.exit(f"FAILED: serve is only {ratio:.1f}x faster than merkl run (target 50x)")


if __name__ == "__main__":
    main()
